package meta_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/clipstore/clipstore/meta"
	"github.com/clipstore/clipstore/meta/metatest"
	pb "github.com/clipstore/clipstore/proto/metapb"
)

// TestServeJoinShutdown pins meta.Node's server lifecycle: Serve once, Join
// through any member and again without harm, Shutdown bounded by its
// context, and nothing served after it.
func TestServeJoinShutdown(t *testing.T) {
	c := metatest.New(t, 3, metatest.Options{})
	leader := c.WaitLeader()
	follower := c.Followers()[0]

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	if err := leader.Node.Serve(lis); !errors.Is(err, meta.ErrFailedPrecondition) {
		t.Fatalf("second Serve: %v, want ErrFailedPrecondition", err)
	}

	// A member joins again through a follower (forwarded to the leader):
	// nothing changes.
	other := c.Followers()[1]
	if err := follower.Node.Join(t.Context(), other.GRPCAddr); err != nil {
		t.Fatalf("rejoin through a follower: %v", err)
	}
	ms, err := leader.Client.ListMembers(t.Context(), &pb.ListMembersRequest{})
	if err != nil || len(ms.Members) != 3 {
		t.Fatalf("members after a rejoin: %v, %v", ms, err)
	}

	// Join gives up when its context ends, with the last answer.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	jctx, cancel := context.WithTimeout(t.Context(), 600*time.Millisecond)
	defer cancel()
	if err := follower.Node.Join(jctx, deadAddr); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("join through a closed port: %v, want the deadline", err)
	}

	// Shutdown with a context that has ended: the leadership transfer is
	// abandoned, calls are cut, and the member still stops at once.
	sctx, scancel := context.WithCancel(t.Context())
	scancel()
	start := time.Now()
	if err := leader.Node.Shutdown(sctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown with an ended context: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Shutdown with an ended context took %v", d)
	}
	if err := leader.Node.Shutdown(t.Context()); err != nil {
		t.Fatalf("second Shutdown: %v, want nil", err)
	}
	if err := leader.Node.Serve(lis); !errors.Is(err, meta.ErrShutdown) {
		t.Fatalf("Serve after Shutdown: %v, want ErrShutdown", err)
	}
	leader.Stop() // reaps Serve, which returned nil
	if l := c.WaitLeader(); l == leader {
		t.Fatal("the stopped member still leads")
	}
}
