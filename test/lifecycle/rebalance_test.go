package lifecycle

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/test/e2e"
)

// TestRebalanceAfterNodesJoin: 6 storage nodes of 16 MiB each hold clips of
// 0 B to 1 MiB; 2 nodes join. A rebalance starts by itself, goes on under a
// new meta leader when the old one is killed, and ends by itself with every
// node within 5 points of the mean fill, having moved no more than 1.1x
// the excess over the mean; every clip reads back identical, fsck is clean
// and no node holds two shards of a clip.
func TestRebalanceAfterNodesJoin(t *testing.T) {
	c := e2e.StartCluster(t, e2e.ClusterOptions{StorageNodes: 6, Zones: 1,
		MetaArgs: []string{"--node-down-after", "2s", "--min-free", "0", "--move-delete-delay", "0s", "--gc-grace", "0s",
			"--max-upload-duration", "3s"},
		StorageArgs: []string{"--capacity", "16MiB", "--gc-interval", "1s"}})
	cl := c.Client()
	ctx := context.Background()
	if err := cl.CreateBucket(ctx, "fleet", e2e.DurabilityProfile); err != nil {
		t.Fatal(err)
	}
	want := map[string]e2e.Stored{}
	var keys []string
	for i := range 60 {
		key := fmt.Sprintf("clip/%02d", i)
		s, _, err := e2e.PutClip(cl, "fleet", key, uint64(7000+i), (i*104_729)%(1<<20))
		if err != nil {
			t.Fatal(err)
		}
		want[key] = s
		keys = append(keys, key)
	}
	c.AddStorage()
	c.AddStorage()
	c.WaitNodesUp(8)

	status := func() *client.RebalanceStatus {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		st, err := cl.Rebalance(sctx, client.RebalanceStatusOnly, 0)
		if err != nil {
			return nil
		}
		return st
	}
	var first *client.RebalanceStatus
	await.TrueWhy(t, 30*time.Second, "a rebalance started by the joins, with a plan", func() (bool, string) {
		st := status()
		if st != nil && st.Running && strings.Contains(st.StartedBy, "joined") && st.PlannedMoves > 0 {
			first = st
		}
		return first != nil, fmt.Sprintf("%+v", st)
	})
	// Mid-rebalance, the leader dies; the new one goes on.
	leader, _ := c.MetaLeader(cl)
	leader.Proc.Kill()
	await.TrueWhy(t, 90*time.Second, "the rebalance to end by itself", func() (bool, string) {
		st := status()
		return st != nil && !st.Running && st.EndedWhy != "", fmt.Sprintf("%+v", st)
	})
	leader.Start(t)
	st := status()
	if !strings.HasPrefix(st.EndedWhy, "balanced") {
		t.Fatalf("the rebalance ended: %s", st.EndedWhy)
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	after, err := cl.Rebalance(dctx, client.RebalanceDryRun, 0)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if after.SpreadBefore > 0.05 || after.PlannedMoves != 0 {
		t.Fatalf("after the rebalance: spread %.3f, %d moves planned", after.SpreadBefore, after.PlannedMoves)
	}
	before := map[string]uint64{}
	for _, n := range first.Nodes {
		before[n.ID] = n.PlacedBytes
	}
	var moved uint64
	for _, n := range after.Nodes {
		if n.PlacedBytes > before[n.ID] {
			moved += n.PlacedBytes - before[n.ID]
		}
	}
	if float64(moved) > 1.1*float64(first.ExcessBytes) || moved == 0 {
		t.Fatalf("moved %d bytes for an excess of %d over the mean\nfirst %+v\nafter %+v\nend %+v", moved, first.ExcessBytes, first, after, st)
	}
	t.Logf("spread %.1f -> %.1f points; %d bytes moved for an excess of %d (%.2fx), across a leader kill",
		100*first.SpreadBefore, 100*after.SpreadBefore, moved, first.ExcessBytes, float64(moved)/float64(first.ExcessBytes))
	if ok, why := e2e.ClipsFull(cl, "fleet", keys, nil); !ok {
		t.Fatal(why)
	}
	e2e.CheckAll(t, cl, "fleet", want)
	await.TrueWhy(t, 30*time.Second, "fsck --deep clean", c.FsckClean)
}
