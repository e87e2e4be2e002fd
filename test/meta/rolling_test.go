package meta

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/await"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/clipstore/clipstore/test/e2e"
)

// TestRollingRestart restarts the three members one at a time, as a rolling
// upgrade does, each while it leads, with SIGTERM: each hands leadership to
// another member before it stops (no election timeout to wait out), writes
// committed meanwhile all land, and the members agree at the end.
func TestRollingRestart(t *testing.T) {
	root := t.TempDir()
	members := make([]*e2e.MetaMember, 3)
	for i := range members {
		members[i] = &e2e.MetaMember{ID: fmt.Sprintf("m%d", i), Dir: filepath.Join(root, fmt.Sprintf("m%d", i))}
	}
	members[0].Start(t, "--bootstrap")
	members[1].Start(t, "--join", members[0].GRPCAddr)
	members[2].Start(t, "--join", members[0].GRPCAddr)
	if err := e2e.Retry(t, func(ctx context.Context) error {
		_, err := members[0].Client.CreateBucket(ctx, &pb.CreateBucketRequest{Name: "fleet", RequestId: []byte("create-bucket-01")})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	leaderOf := func() *e2e.MetaMember {
		var leader *e2e.MetaMember
		await.True(t, 15*time.Second, "a leader", func() bool {
			for _, m := range members {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				resp, err := m.Client.ListMembers(ctx, &pb.ListMembersRequest{})
				cancel()
				if err != nil {
					continue
				}
				for _, l := range members {
					if l.ID == resp.LeaderId {
						leader = l
						return true
					}
				}
			}
			return false
		})
		return leader
	}

	// A writer commits buckets through every member in turn, retrying, the
	// whole time.
	var mu sync.Mutex
	acked := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			m := members[i%len(members)]
			name := fmt.Sprintf("b%04d", i)
			reqID := []byte(fmt.Sprintf("%-16.16s", name))
			if err := e2e.Retry(t, func(ctx context.Context) error {
				mu.Lock()
				c := m.Client
				mu.Unlock()
				_, err := c.CreateBucket(ctx, &pb.CreateBucketRequest{Name: name, RequestId: reqID})
				return err
			}); err != nil {
				t.Errorf("create bucket %s: %v", name, err)
				return
			}
			mu.Lock()
			acked++
			mu.Unlock()
		}
	})
	for range members {
		leader := leaderOf()
		mu.Lock()
		before := acked
		mu.Unlock()
		if err := leader.Proc.Stop(); err != nil {
			t.Fatalf("SIGTERM %s: %v", leader.ID, err)
		}
		log := leader.Proc.Log.String()
		if !strings.Contains(log, "starting leadership transfer") || strings.Contains(log, "leadership transfer on shutdown failed") {
			t.Fatalf("%s stopped without handing leadership over:\n%s", leader.ID, log)
		}
		if next := leaderOf(); next == leader {
			t.Fatalf("%s still leads after it stopped", leader.ID)
		}
		mu.Lock()
		leader.Start(t)
		mu.Unlock()
		await.True(t, 15*time.Second, "writes to go on", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return acked > before+5
		})
	}
	close(stop)
	wg.Wait()
	await.True(t, 15*time.Second, "every member to list every acknowledged bucket", func() bool {
		mu.Lock()
		want := acked + 1 // and fleet
		mu.Unlock()
		for _, m := range members {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			resp, err := m.Client.ListBuckets(ctx, &pb.ListBucketsRequest{})
			cancel()
			if err != nil || len(resp.Buckets) < want {
				return false
			}
		}
		return true
	})
}
