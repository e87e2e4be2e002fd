package meta_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/meta"
	"github.com/clipstore/clipstore/meta/metatest"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"google.golang.org/grpc/codes"
)

// TestRebalanceAfterJoin: two nodes join six full ones; a rebalance starts
// by itself, its moves (copies of healthy shards onto the new nodes) land,
// and it ends by itself with every node within the threshold of the mean,
// having moved no more than 1.1x the excess over the mean, never two shards
// of a clip on one node. A dry run plans without moving; bad input is
// refused.
func TestRebalanceAfterJoin(t *testing.T) {
	const capacity = 4 << 20
	c := metatest.New(t, 1, metatest.Options{Configure: func(cfg *meta.Config) {
		cfg.MinFreeBytes, cfg.MoveDeleteDelay = 0, 0
	}})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	register := func(from, to int) []string {
		var ids []string
		for i := from; i < to; i++ {
			id := fmt.Sprintf("s%d", i)
			if _, err := cl.RegisterNode(t.Context(), &pb.RegisterNodeRequest{NodeId: id, Address: fmt.Sprintf("127.0.0.1:%d", 7400+i), Zone: "z0"}); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		return ids
	}
	heard := func(n int) {
		await.True(t, 10*time.Second, fmt.Sprintf("%d nodes heard with their capacity", n), func() bool {
			resp, err := cl.ListNodes(t.Context(), &pb.ListNodesRequest{})
			heard := 0
			for _, nd := range resp.GetNodes() {
				if nd.Capacity == capacity {
					heard++
				}
			}
			return err == nil && heard == n
		})
	}
	h := startHeartbeatsCap(t, cl, register(0, 6), capacity)
	heard(6)
	keys := map[string]string{}
	for i := range 12 {
		key := fmt.Sprintf("clip%d", i)
		keys[string(put(t, cl, "bk1", key, 1_000_000, nil).Clip.ClipId)] = key
	}
	_, err := cl.Rebalance(t.Context(), &pb.RebalanceRequest{Action: pb.RebalanceAction_REBALANCE_START, Threshold: 2})
	wantCode(t, err, codes.InvalidArgument)

	h2 := startHeartbeatsCap(t, cl, register(6, 8), capacity)
	heard(8)
	dry, err := cl.Rebalance(t.Context(), &pb.RebalanceRequest{Action: pb.RebalanceAction_REBALANCE_DRY_RUN})
	if err != nil || dry.PlannedMoves == 0 || dry.SpreadAfter > 0.05 || dry.SpreadBefore <= 0.05 {
		t.Fatalf("dry run: %v, %v", dry, err)
	}
	excess := dry.ExcessBytes

	status := func() *pb.RebalanceResponse {
		st, err := cl.Rebalance(t.Context(), &pb.RebalanceRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	await.TrueWhy(t, 10*time.Second, "a rebalance started by the join", func() (bool, string) {
		st := status()
		return st.State.GetRunning() && strings.Contains(st.State.StartedBy, "joined"), fmt.Sprint(st.State)
	})
	landed := 0
	await.TrueWhy(t, 30*time.Second, "the rebalance to end by itself", func() (bool, string) {
		landed += landWork(t, cl, "bk1", keys, []*heartbeater{h, h2}, func(_ string, w *pb.RepairWork) {
			if w.CopyFrom == nil {
				t.Fatalf("a rebalance move without a copy source: %v", w)
			}
		})
		st := status()
		return !st.State.GetRunning() && st.State.EndedUnixNano != 0, fmt.Sprintf("%v; %d moves landed", st.State, landed)
	})
	st := status()
	if !strings.HasPrefix(st.State.EndedWhy, "balanced") {
		t.Fatalf("the rebalance ended: %q", st.State.EndedWhy)
	}
	if float64(st.MovedBytes) > 1.1*float64(excess) || st.MovedBytes == 0 {
		t.Fatalf("moved %d bytes for an excess of %d", st.MovedBytes, excess)
	}
	after, err := cl.Rebalance(t.Context(), &pb.RebalanceRequest{Action: pb.RebalanceAction_REBALANCE_DRY_RUN})
	if err != nil || after.SpreadBefore > 0.05 || after.PlannedMoves != 0 {
		t.Fatalf("after the rebalance: spread %.3f, %d moves planned, %v", after.GetSpreadBefore(), after.GetPlannedMoves(), err)
	}
	for _, key := range keys {
		got, err := cl.GetClip(t.Context(), &pb.GetClipRequest{Bucket: "bk1", Key: key})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, s := range got.Clip.Parts[0].Shards {
			if seen[s.NodeId] {
				t.Fatalf("%s has two shards on %s", key, s.NodeId)
			}
			seen[s.NodeId] = true
		}
	}
	t.Logf("%d moves, %d bytes moved for an excess of %d; spread %.3f -> %.3f", landed, st.MovedBytes, excess, dry.SpreadBefore, after.SpreadBefore)
}
