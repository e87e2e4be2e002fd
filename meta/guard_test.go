package meta_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/meta"
	"github.com/clipstore/clipstore/meta/metatest"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"google.golang.org/protobuf/proto"
)

// TestHeartbeatReportsAreAcknowledged: a heartbeat's report is applied
// once, asynchronously, and acknowledged in a later answer; re-sending it
// (as a node does until it is acknowledged) changes nothing, and a report
// numbered below the last applied is ignored.
func TestHeartbeatReportsAreAcknowledged(t *testing.T) {
	c := metatest.New(t, 1, metatest.Options{})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	registerNodes(t, cl, 6)
	rec := put(t, cl, "bk1", "clip", 100_000, nil).Clip
	s := rec.Parts[0].Shards[2]
	report(t, cl, &pb.HeartbeatRequest{NodeId: s.NodeId, Free: 50 << 30, DeletedShardIds: [][]byte{s.ShardId}}) // nothing to delete: only the number moves
	req := &pb.HeartbeatRequest{NodeId: s.NodeId, Free: 50 << 30, MissingShardIds: [][]byte{s.ShardId}}
	report(t, cl, req)
	if req.ReportSeq != 2 {
		t.Fatalf("second report numbered %d", req.ReportSeq)
	}
	got, err := cl.GetClip(t.Context(), &pb.GetClipRequest{Bucket: "bk1", Key: "clip"})
	if err != nil || got.Clip.Parts[0].Shards[2].State != pb.ShardState_SHARD_STATE_MISSING {
		t.Fatalf("reported shard: %v, %v; want MISSING", got, err)
	}
	before, _, _ := c.Members[0].Node.StateDigest()
	resp, err := cl.Heartbeat(t.Context(), req) // the same report again
	if err != nil || resp.ReportSeqApplied != req.ReportSeq {
		t.Fatalf("re-sent report: %v, %v", resp, err)
	}
	stale := proto.Clone(req).(*pb.HeartbeatRequest)
	stale.ReportSeq, stale.MissingShardIds, stale.CorruptShardIds = req.ReportSeq-1, nil, [][]byte{s.ShardId}
	if _, err := cl.Heartbeat(t.Context(), stale); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if after, _, _ := c.Members[0].Node.StateDigest(); string(after) != string(before) {
		t.Fatal("a re-sent or stale report changed the state")
	}
	if resp.MetaTimeoutMs == 0 || time.Duration(resp.MetaTimeoutMs)*time.Millisecond >= meta.DefaultConfig().NodeDownAfter {
		t.Fatalf("meta timeout %d ms, want a fraction of the node-down time", resp.MetaTimeoutMs)
	}
}

// TestMassDownGuard: when more nodes go silent at once than the guard
// allows (here 4 of 10, the guard's share being max(m+1, 30%) = 3), they
// are marked down but nothing is repaired; the hold is kept in Raft, so a
// new leader keeps it; when the nodes return, the hold ends with nothing
// moved. When they stay away past the hold, repair runs; and a single node
// that goes silent is repaired after RepairAfter as ever.
func TestMassDownGuard(t *testing.T) {
	const downAfter, repairAfter, hold = 600 * time.Millisecond, 800 * time.Millisecond, 3 * time.Second
	c := metatest.New(t, 3, metatest.Options{Configure: func(cfg *meta.Config) {
		cfg.NodeDownAfter, cfg.RepairAfter, cfg.MassDownHold = downAfter, repairAfter, hold
	}})
	cl := c.Followers()[0].Client // forwards to whoever leads
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 10 {
		ids = append(ids, fmt.Sprintf("s%d", i))
	}
	registerNodes(t, cl, 10)
	h := startHeartbeats(t, cl, ids)
	var keys []string
	records := map[string]*pb.ClipRecord{}
	for i := range 6 {
		k := fmt.Sprintf("clip%d", i)
		keys = append(keys, k)
		records[k] = put(t, cl, "bk1", k, 100_000, nil).Clip
	}
	// Silence two nodes that hold shards of clip0 and two that do not, so
	// that clip0 loses two shards (its parity) and has live nodes left to
	// rebuild them on.
	holders := map[string]bool{}
	for _, s := range records["clip0"].Parts[0].Shards {
		holders[s.NodeId] = true
	}
	var with, without []string
	for _, id := range ids {
		if holders[id] {
			with = append(with, id)
		} else {
			without = append(without, id)
		}
	}
	four := []string{with[0], with[1], without[0], without[1]}
	status := func() *pb.ClusterStatusResponse {
		st, err := cl.ClusterStatus(t.Context(), &pb.ClusterStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	set := func(nodes []string, alive bool) {
		for _, id := range nodes {
			if alive {
				h.revive(id)
			} else {
				h.kill(id)
			}
		}
	}

	set(four, false)
	var since int64
	await.True(t, 5*time.Second, "4 nodes down and the hold on", func() bool {
		st := status()
		if st.RepairHold != nil {
			since = st.RepairHold.SinceUnixNano
		}
		return st.StorageNodesUp == 6 && st.RepairHold != nil && st.RepairHold.Threshold == 3
	})
	// Past RepairAfter, nothing is planned.
	for end := time.Now().Add(repairAfter + 500*time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if st := status(); st.RepairsInFlight != 0 || st.RepairQueueShards != 0 || len(h.repairWork()) != 0 {
			t.Fatalf("repair planned during the hold: %d in flight, queue %d", st.RepairsInFlight, st.RepairQueueShards)
		}
	}
	// A new leader keeps the hold, from the same start.
	if err := c.WaitLeader().Node.TransferLeadership(); err != nil {
		t.Fatal(err)
	}
	c.WaitLeader()
	if st := status(); st.RepairHold == nil || st.RepairHold.SinceUnixNano != since {
		t.Fatalf("hold after a leader change: %v, want it since %d", st.RepairHold, since)
	}
	set(four, true)
	await.True(t, 5*time.Second, "the nodes back and the hold off", func() bool {
		st := status()
		return st.StorageNodesUp == 10 && st.RepairHold == nil
	})
	for _, k := range keys {
		got, err := cl.GetClip(t.Context(), &pb.GetClipRequest{Bucket: "bk1", Key: k})
		if err != nil || !proto.Equal(got.Clip, records[k]) {
			t.Fatalf("clip %s changed during the hold: %v, %v", k, got, err)
		}
	}

	// Away past the hold: repair runs.
	set(four, false)
	await.True(t, 5*time.Second, "the hold on again", func() bool { return status().RepairHold != nil })
	await.True(t, hold+5*time.Second, "repair after the hold", func() bool {
		st := status()
		return st.RepairHold == nil && st.RepairsInFlight > 0
	})
	set(four, true)
	await.True(t, 5*time.Second, "every node back", func() bool { return status().StorageNodesUp == 10 })

	// One node silent: no hold, repaired after RepairAfter.
	set(with[2:3], false)
	await.True(t, 5*time.Second, "repair of a single down node", func() bool {
		st := status()
		if st.RepairHold != nil {
			t.Fatalf("hold for a single silent node: %v", st.RepairHold)
		}
		return st.StorageNodesUp == 9 && st.RepairsInFlight > 0
	})
}

// TestSilentNodeDownAtSlowestTick: with the heartbeat interval at its
// largest allowed (half of NodeDownAfter), the leader's loop wakes once per
// interval; that is its rhythm, not a pause, and a silent node is still
// marked down within a few NodeDownAfter periods.
func TestSilentNodeDownAtSlowestTick(t *testing.T) {
	const downAfter = 400 * time.Millisecond
	c := metatest.New(t, 1, metatest.Options{Configure: func(cfg *meta.Config) {
		cfg.HeartbeatInterval, cfg.NodeDownAfter = downAfter/2, downAfter
	}})
	cl := c.Members[0].Client
	h := heartbeatingNodes(t, cl, 3)
	h.kill("s0")
	await.True(t, 8*downAfter, "s0 marked down", func() bool {
		st, err := cl.ClusterStatus(t.Context(), &pb.ClusterStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return st.StorageNodesUp == 2
	})
}
