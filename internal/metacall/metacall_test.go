package metacall_test

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/conns"
	"github.com/clipstore/clipstore/internal/metacall"
	"github.com/clipstore/clipstore/internal/rpcerr"
	"github.com/clipstore/clipstore/meta/metatest"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newCaller(t *testing.T, members []string, timeout time.Duration, attempts int) *metacall.Caller {
	t.Helper()
	cache := conns.New(grpc.WithTransportCredentials(insecure.NewCredentials()))
	t.Cleanup(func() { cache.Close() })
	c, err := metacall.New(metacall.Config{Members: members, Conns: cache, AttemptTimeout: timeout, Attempts: attempts})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func listMembers(ctx context.Context, mc pb.MetaServiceClient) (*pb.ListMembersResponse, error) {
	return mc.ListMembers(ctx, &pb.ListMembersRequest{})
}

// TestLearnsTheLeader: a call through a follower teaches the Caller the
// leader (from the answer's header); the next call goes there.
func TestLearnsTheLeader(t *testing.T) {
	c := metatest.New(t, 3, metatest.Options{})
	leader := c.WaitLeader()
	follower := c.Followers()[0]
	caller := newCaller(t, []string{follower.GRPCAddr}, 5*time.Second, 3)
	if _, err := metacall.Call(t.Context(), caller, listMembers); err != nil {
		t.Fatal(err)
	}
	if got := caller.Leader(); got != leader.GRPCAddr {
		t.Fatalf("leader learned %q, want %s (the follower answered)", got, leader.GRPCAddr)
	}
}

// frozen accepts TCP connections and never answers, as a stopped process
// does (the kernel completes the handshake).
func frozen(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		<-done
	})
	return lis.Addr().String()
}

// fake is a meta member whose ListMembers answers with the errors queued,
// then succeeds.
type fake struct {
	pb.UnimplementedMetaServiceServer
	errs  []error
	calls atomic.Int32
}

func (f *fake) ListMembers(context.Context, *pb.ListMembersRequest) (*pb.ListMembersResponse, error) {
	n := int(f.calls.Add(1)) - 1
	if n < len(f.errs) {
		return nil, f.errs[n]
	}
	return &pb.ListMembersResponse{LeaderId: "fake"}, nil
}

func serve(t *testing.T, f *fake) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	pb.RegisterMetaServiceServer(s, f)
	done := make(chan struct{})
	go func() {
		s.Serve(lis)
		close(done)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return lis.Addr().String()
}

func notLeader(hint string) error {
	st, _ := status.New(codes.Unavailable, "not the leader").WithDetails(&errdetails.ErrorInfo{
		Reason: string(rpcerr.NotLeader), Domain: rpcerr.MetaDomain, Metadata: map[string]string{rpcerr.LeaderAddress: hint}})
	return st.Err()
}

func TestAttempts(t *testing.T) {
	t.Run("a frozen member costs one attempt deadline", func(t *testing.T) {
		ok := &fake{}
		caller := newCaller(t, []string{frozen(t), serve(t, ok)}, 300*time.Millisecond, 3)
		start := time.Now()
		if _, err := metacall.Call(t.Context(), caller, listMembers); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("call took %v past a frozen member with 300ms attempts", d)
		}
		// The member that answered goes first from now on.
		start = time.Now()
		if _, err := metacall.Call(t.Context(), caller, listMembers); err != nil || time.Since(start) > 200*time.Millisecond {
			t.Fatalf("second call: %v after %v", err, time.Since(start))
		}
	})
	t.Run("a leader hint is followed at once", func(t *testing.T) {
		leader := &fake{}
		leaderAddr := serve(t, leader)
		follower := &fake{errs: []error{notLeader(leaderAddr)}}
		caller := newCaller(t, []string{serve(t, follower)}, time.Second, 2)
		if _, err := metacall.Call(t.Context(), caller, listMembers); err != nil {
			t.Fatal(err)
		}
		if follower.calls.Load() != 1 || leader.calls.Load() != 1 || caller.Leader() != leaderAddr {
			t.Fatalf("follower asked %d times, leader %d; leader now %q", follower.calls.Load(), leader.calls.Load(), caller.Leader())
		}
	})
	t.Run("answers that no retry changes end the call", func(t *testing.T) {
		f := &fake{errs: []error{status.Error(codes.NotFound, "no such thing")}}
		caller := newCaller(t, []string{serve(t, f)}, time.Second, 5)
		if _, err := metacall.Call(t.Context(), caller, listMembers); status.Code(err) != codes.NotFound || f.calls.Load() != 1 {
			t.Fatalf("%v after %d calls", err, f.calls.Load())
		}
	})
	t.Run("attempts are bounded", func(t *testing.T) {
		unavailable := status.Error(codes.Unavailable, "no leader")
		f := &fake{errs: []error{unavailable, unavailable, unavailable, unavailable}}
		caller := newCaller(t, []string{serve(t, f)}, time.Second, 3)
		if _, err := metacall.Call(t.Context(), caller, listMembers); status.Code(err) != codes.Unavailable || f.calls.Load() != 3 {
			t.Fatalf("%v after %d calls, want Unavailable after 3", err, f.calls.Load())
		}
	})
	t.Run("the context ends the call", func(t *testing.T) {
		caller := newCaller(t, []string{frozen(t)}, 10*time.Second, 3)
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := metacall.Call(ctx, caller, listMembers); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
			t.Fatalf("%v after %v, want the context's deadline after 200ms", err, time.Since(start))
		}
	})
}
