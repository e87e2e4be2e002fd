package client

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/rpcerr"
	metapb "github.com/clipstore/clipstore/proto/metapb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// flakyMeta answers CommitPut with Unavailable or DeadlineExceeded a few
// times, then succeeds; it records the request ids it saw.
type flakyMeta struct {
	metapb.UnimplementedMetaServiceServer
	mu     sync.Mutex
	fails  []codes.Code
	reason rpcerr.Reason // of the failures; none if empty
	ids    [][]byte
}

func (f *flakyMeta) CommitPut(ctx context.Context, req *metapb.CommitPutRequest) (*metapb.CommitPutResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids = append(f.ids, req.RequestId)
	if len(f.fails) > 0 {
		code := f.fails[0]
		f.fails = f.fails[1:]
		if f.reason != "" {
			return nil, statusWith(code, f.reason, nil)
		}
		return nil, status.Error(code, "try again")
	}
	return &metapb.CommitPutResponse{Clip: &metapb.ClipRecord{Key: req.Key}}, nil
}

func serveFlaky(t *testing.T, f *flakyMeta) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	metapb.RegisterMetaServiceServer(s, f)
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

// TestCommitRetryKeepsRequestID: a CommitPut retried after Unavailable or a
// timeout, on either member, carries the request id of the first attempt.
func TestCommitRetryKeepsRequestID(t *testing.T) {
	a := &flakyMeta{fails: []codes.Code{codes.Unavailable, codes.DeadlineExceeded}}
	b := &flakyMeta{fails: []codes.Code{codes.Unavailable}}
	c, err := New(context.Background(), Config{Meta: []string{serveFlaky(t, a), serveFlaky(t, b)}, MaxRetries: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := &metapb.CommitPutRequest{RequestId: newRequestID(), Key: "k"}
	resp, err := c.commit(context.Background(), "commit", req)
	if err != nil || resp.Clip.Key != "k" {
		t.Fatalf("commit: %v, %v", resp, err)
	}
	ids := append(a.ids, b.ids...)
	if len(ids) != 4 {
		t.Fatalf("%d attempts, want 4", len(ids))
	}
	for _, id := range ids {
		if !bytes.Equal(id, req.RequestId) {
			t.Fatalf("attempt carried request id %x, want %x", id, req.RequestId)
		}
	}

	// Non-retryable codes are returned at once; retries stop at MaxRetries.
	bad := &flakyMeta{fails: []codes.Code{codes.FailedPrecondition}}
	c2, _ := New(context.Background(), Config{Meta: []string{serveFlaky(t, bad)}})
	defer c2.Close()
	if _, err := c2.commit(context.Background(), "commit", req); !errors.Is(err, ErrPrecondition) || len(bad.ids) != 1 {
		t.Fatalf("precondition: %v after %d attempts", err, len(bad.ids))
	}
	// A write whose outcome is unknown is retried with its request id, and
	// says so when the retries run out.
	unknown := &flakyMeta{fails: []codes.Code{codes.Unavailable, codes.Unavailable, codes.Unavailable}, reason: rpcerr.OutcomeUnknown}
	c4, _ := New(context.Background(), Config{Meta: []string{serveFlaky(t, unknown)}, MaxRetries: 2})
	defer c4.Close()
	if _, err := c4.commit(context.Background(), "commit", req); !errors.Is(err, ErrOutcomeUnknown) ||
		errors.Is(err, ErrUnavailable) || len(unknown.ids) != 3 {
		t.Fatalf("outcome unknown: %v after %d attempts", err, len(unknown.ids))
	}
	down := &flakyMeta{fails: []codes.Code{codes.Unavailable, codes.Unavailable, codes.Unavailable, codes.Unavailable}}
	c3, _ := New(context.Background(), Config{Meta: []string{serveFlaky(t, down)}, MaxRetries: 2})
	defer c3.Close()
	start := time.Now()
	if _, err := c3.commit(context.Background(), "commit", req); !errors.Is(err, ErrUnavailable) || len(down.ids) != 3 {
		t.Fatalf("unavailable: %v after %d attempts", err, len(down.ids))
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("retries took %v", time.Since(start))
	}
}
