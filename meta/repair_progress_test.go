package meta_test

import (
	"bytes"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/meta"
	"github.com/clipstore/clipstore/meta/metatest"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/prometheus/client_golang/prometheus"
)

// missingShardBytes is the piece bytes of the shard commitMissing leaves
// out: a 1000-byte clip under 4+2 holds 250 bytes per shard.
const missingShardBytes = 250

// TestRepairProgressInStatus: the queue counts the lost shard entries and
// their bytes; each repair whose update commits counts once (a replayed
// retry does not count again) and drains the queue; the rate and the ETA
// follow, and the metrics say the same.
func TestRepairProgressInStatus(t *testing.T) {
	reg := prometheus.NewRegistry()
	start := time.Now()
	c := metatest.New(t, 1, metatest.Options{Configure: func(cfg *meta.Config) { cfg.Registerer = reg }})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	registerNodes(t, cl, 7)
	for i := range 3 {
		commitMissing(t, cl, fmt.Sprintf("k%d", i))
	}
	st := clusterStatus(t, cl)
	if st.RepairQueueShards != 3 || st.RepairQueueBytes != 3*missingShardBytes {
		t.Fatalf("queue %d shards, %d bytes; want 3 and %d", st.RepairQueueShards, st.RepairQueueBytes, 3*missingShardBytes)
	}
	if st.RepairedShards != 0 || st.RepairBytesPerSec != 0 || st.RepairEtaSeconds != nil {
		t.Fatalf("before any repair: %d repaired, %v B/s, ETA %v; want 0, 0, unknown", st.RepairedShards, st.RepairBytesPerSec, st.RepairEtaSeconds)
	}
	if since := time.Unix(0, st.RepairStatsSinceUnixNano); since.Before(start) || since.After(time.Now()) {
		t.Fatalf("figures since %v, want the election, after %v", since, start)
	}
	if got := gauge(t, reg, "clipstore_meta_repair_queue_shards"); got != 3 {
		t.Fatalf("queue gauge %v, want 3", got)
	}
	if _, ok := gatherOne(t, reg, "clipstore_meta_repair_eta_seconds"); ok {
		t.Fatal("an ETA is exported while it is unknown")
	}

	tasks := collectWork(t, cl, 7, 3)
	for i, task := range tasks {
		req := landRepair(t, cl, task)
		if i == 0 { // the storage node's retry of an update whose answer it lost
			if _, err := cl.UpdateShard(t.Context(), req); err != nil {
				t.Fatalf("replayed update: %v", err)
			}
		}
		st := clusterStatus(t, cl)
		left := uint64(len(tasks) - i - 1)
		if st.RepairedShards != uint64(i+1) || st.RepairedBytes != uint64(i+1)*missingShardBytes {
			t.Fatalf("after %d repairs: %d repaired (%d bytes)", i+1, st.RepairedShards, st.RepairedBytes)
		}
		if st.RepairQueueShards != left || st.RepairQueueBytes != left*missingShardBytes {
			t.Fatalf("after %d repairs: queue %d shards, %d bytes", i+1, st.RepairQueueShards, st.RepairQueueBytes)
		}
		// The minute's bytes: at most all of them in one second, at least
		// all of them over the time since the election.
		rate := st.RepairBytesPerSec
		if rate > float64(st.RepairedBytes) || rate < float64(st.RepairedBytes)/max(time.Since(start), time.Second).Seconds() {
			t.Fatalf("rate %v B/s for %d bytes repaired within %v", rate, st.RepairedBytes, time.Since(start))
		}
		if st.RepairEtaSeconds == nil || math.Abs(*st.RepairEtaSeconds-float64(left*missingShardBytes)/rate) > 1e-9 {
			t.Fatalf("ETA %v for %d bytes at %v B/s", st.RepairEtaSeconds, left*missingShardBytes, rate)
		}
	}
	for name, want := range map[string]float64{
		"clipstore_meta_repaired_shards_total": 3,
		"clipstore_meta_repaired_bytes_total":  3 * missingShardBytes,
		"clipstore_meta_repair_queue_shards":   0,
		"clipstore_meta_repair_queue_bytes":    0,
		"clipstore_meta_repair_eta_seconds":    0,
	} {
		if got := gauge(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := gauge(t, reg, "clipstore_meta_repair_bytes_per_second"); got <= 0 {
		t.Errorf("rate gauge %v, want > 0", got)
	}
}

// TestRepairQueueCountsNodesDownPastGrace: a down node's shards are lost
// at once (clips by lost shards) but join the repair queue only once the
// node has been down for RepairAfter.
func TestRepairQueueCountsNodesDownPastGrace(t *testing.T) {
	c := metatest.New(t, 1, metatest.Options{Configure: func(cfg *meta.Config) {
		cfg.NodeDownAfter = 300 * time.Millisecond
		cfg.RepairAfter = 3 * time.Second
		cfg.RepairConcurrency = 0 // nothing leaves the queue
	}})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	h := heartbeatingNodes(t, cl, 7)
	a := put(t, cl, "bk1", "a", 1<<20, nil)
	b := put(t, cl, "bk1", "b", 1<<20, nil)
	victim := ""
	for _, s := range a.Clip.Parts[0].Shards {
		for _, o := range b.Clip.Parts[0].Shards {
			if s.NodeId == o.NodeId {
				victim = s.NodeId
			}
		}
	}
	h.kill(victim)
	var st *pb.ClusterStatusResponse
	await.True(t, 10*time.Second, "the node to be marked down", func() bool {
		st = clusterStatus(t, cl)
		return st.DegradedClips == 2
	})
	if st.RepairQueueShards != 0 {
		t.Fatalf("queue %d shards within the repair grace, want 0", st.RepairQueueShards)
	}
	await.True(t, 10*time.Second, "the down node's shards to be queued", func() bool {
		st = clusterStatus(t, cl)
		return st.RepairQueueShards != 0
	})
	const shard = 1 << 18 // a 1 MiB clip under 4+2
	if st.RepairQueueShards != 2 || st.RepairQueueBytes != 2*shard || st.RepairEtaSeconds != nil {
		t.Fatalf("queue %d shards, %d bytes, ETA %v; want 2, %d, unknown", st.RepairQueueShards, st.RepairQueueBytes,
			st.RepairEtaSeconds, 2*shard)
	}
}

// TestScrubStatusFromHeartbeats: the leader keeps each node's latest scrub
// report and adds up the passes in progress; nodes that report none are
// left out.
func TestScrubStatusFromHeartbeats(t *testing.T) {
	c := metatest.New(t, 1, metatest.Options{})
	cl := c.Members[0].Client
	registerNodes(t, cl, 3)
	beat(t, cl, "s0", &pb.ScrubStatus{Running: true, PassesCompleted: 2, BytesDone: 100, BytesTotal: 1000, CorruptFound: 1})
	beat(t, cl, "s1", &pb.ScrubStatus{Running: true, BytesDone: 1, BytesTotal: 10})
	beat(t, cl, "s2", &pb.ScrubStatus{PassesCompleted: 4, BytesDone: 500, BytesTotal: 500, CorruptFound: 3,
		LastPassCorrupt: 2, LastPassEndUnixNano: 12345})
	beat(t, cl, "s1", &pb.ScrubStatus{Running: true, BytesDone: 7, BytesTotal: 10}) // the latest counts
	st := clusterStatus(t, cl)
	if len(st.NodeScrubs) != 3 {
		t.Fatalf("%d node scrubs, want 3", len(st.NodeScrubs))
	}
	for i, ns := range st.NodeScrubs {
		if ns.NodeId != fmt.Sprintf("s%d", i) {
			t.Fatalf("node scrubs out of order: %v", st.NodeScrubs)
		}
	}
	if s := st.NodeScrubs[2].Scrub; s.LastPassEndUnixNano != 12345 || s.LastPassCorrupt != 2 || s.PassesCompleted != 4 {
		t.Fatalf("s2 scrub %v", s)
	}
	if st.ScrubBytesDone != 107 || st.ScrubBytesTotal != 1010 || st.ScrubCorruptFound != 4 {
		t.Fatalf("scrub totals %d of %d, %d corrupt; want 107 of 1010, 4", st.ScrubBytesDone, st.ScrubBytesTotal, st.ScrubCorruptFound)
	}
	beat(t, cl, "s0", nil) // a node that stops reporting
	if st := clusterStatus(t, cl); len(st.NodeScrubs) != 2 || st.ScrubBytesTotal != 10 || st.ScrubCorruptFound != 3 {
		t.Fatalf("after s0 reported nothing: %v", st.NodeScrubs)
	}
}

// TestLeaderChangeResetsRepairFigures: a new leader starts its repair and
// scrub figures afresh (nothing repaired, no rate, the ETA unknown, no
// scrub report until the nodes heartbeat to it) while the queue, read from
// the replicated state, carries over; a stale read on a follower has none
// of the leader's memory.
func TestLeaderChangeResetsRepairFigures(t *testing.T) {
	c := metatest.New(t, 3, metatest.Options{})
	old := c.WaitLeader()
	survivor := c.Followers()[0]
	cl := survivor.Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	registerNodes(t, cl, 7)
	commitMissing(t, cl, "k0")
	commitMissing(t, cl, "k1")
	work := collectWork(t, cl, 7, 2)
	beat(t, cl, "s0", &pb.ScrubStatus{Running: true, BytesDone: 1, BytesTotal: 2, CorruptFound: 5})
	landRepair(t, cl, work[0])
	st := clusterStatus(t, cl)
	if st.RepairedShards != 1 || st.RepairQueueShards != 1 || st.ScrubCorruptFound != 5 {
		t.Fatalf("before the leader change: %d repaired, %d queued, %d corrupt found", st.RepairedShards,
			st.RepairQueueShards, st.ScrubCorruptFound)
	}
	stale, err := cl.ClusterStatus(t.Context(), &pb.ClusterStatusRequest{Read: &pb.ReadOptions{Stale: true}})
	if err != nil {
		t.Fatal(err)
	}
	if stale.RepairStatsSinceUnixNano != 0 || stale.RepairedShards != 0 || len(stale.NodeScrubs) != 0 || stale.RepairEtaSeconds != nil {
		t.Fatalf("a follower's stale status has leader memory: %v", stale)
	}

	crashed := time.Now()
	old.Crash()
	c.WaitLeader()
	st = clusterStatus(t, cl)
	if st.RepairedShards != 0 || st.RepairedBytes != 0 || st.RepairBytesPerSec != 0 || len(st.NodeScrubs) != 0 {
		t.Fatalf("new leader: %d repaired (%d bytes) at %v B/s, scrubs %v; want nothing", st.RepairedShards,
			st.RepairedBytes, st.RepairBytesPerSec, st.NodeScrubs)
	}
	if st.RepairQueueShards != 1 || st.RepairQueueBytes != missingShardBytes || st.RepairEtaSeconds != nil {
		t.Fatalf("new leader: queue %d shards (%d bytes), ETA %v; want 1 (%d), unknown", st.RepairQueueShards,
			st.RepairQueueBytes, st.RepairEtaSeconds, missingShardBytes)
	}
	if since := time.Unix(0, st.RepairStatsSinceUnixNano); since.Before(crashed) {
		t.Fatalf("new leader's figures since %v, before the old leader crashed at %v", since, crashed)
	}
	work = collectWork(t, cl, 7, 1)
	beat(t, cl, "s0", &pb.ScrubStatus{BytesDone: 2, BytesTotal: 2, PassesCompleted: 1, CorruptFound: 5})
	landRepair(t, cl, work[0])
	st = clusterStatus(t, cl)
	if st.RepairedShards != 1 || st.RepairQueueShards != 0 || st.RepairEtaSeconds == nil || *st.RepairEtaSeconds != 0 ||
		len(st.NodeScrubs) != 1 || st.ScrubCorruptFound != 5 {
		t.Fatalf("new leader after a repair and a scrub report: %d repaired, %d queued, ETA %v, scrubs %v",
			st.RepairedShards, st.RepairQueueShards, st.RepairEtaSeconds, st.NodeScrubs)
	}
}

func clusterStatus(t *testing.T, cl pb.MetaServiceClient) *pb.ClusterStatusResponse {
	t.Helper()
	st, err := cl.ClusterStatus(t.Context(), &pb.ClusterStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// beat sends one heartbeat for node with its scrub report.
func beat(t *testing.T, cl pb.MetaServiceClient, node string, scrub *pb.ScrubStatus) *pb.HeartbeatResponse {
	t.Helper()
	resp, err := cl.Heartbeat(t.Context(), &pb.HeartbeatRequest{NodeId: node, Capacity: 100 << 30, Free: 50 << 30, Scrub: scrub})
	if err != nil {
		t.Fatalf("heartbeat %s: %v", node, err)
	}
	return resp
}

// plannedRepair is a repair task and the node it was handed to.
type plannedRepair struct {
	node string
	work *pb.RepairWork
}

// collectWork heartbeats nodes s0..s(n-1) until their answers carry want
// distinct repair tasks.
func collectWork(t *testing.T, cl pb.MetaServiceClient, n, want int) []plannedRepair {
	t.Helper()
	var out []plannedRepair
	seen := map[string]bool{}
	await.True(t, 10*time.Second, fmt.Sprintf("%d repair tasks", want), func() bool {
		for i := range n {
			node := fmt.Sprintf("s%d", i)
			for _, w := range beat(t, cl, node, nil).Repairs {
				if !seen[string(w.TaskId)] {
					seen[string(w.TaskId)] = true
					out = append(out, plannedRepair{node: node, work: w})
				}
			}
		}
		return len(out) >= want
	})
	return out
}

// landRepair ends a task as its storage node does: the conditional update
// to the rebuilt shard. It returns the request.
func landRepair(t *testing.T, cl pb.MetaServiceClient, r plannedRepair) *pb.UpdateShardRequest {
	t.Helper()
	w := r.work
	req := &pb.UpdateShardRequest{RequestId: bytes.Clone(w.NewShardId), ClipId: w.ClipId, Generation: w.Generation,
		Part: w.Part, Index: w.Index, OldShardId: w.OldShardId, CommitDeadlineUnixNano: w.CommitDeadlineUnixNano,
		NewShard: &pb.Shard{Index: w.Index, NodeId: r.node, ShardId: w.NewShardId, Length: missingShardBytes,
			State: pb.ShardState_SHARD_STATE_OK}}
	if _, err := cl.UpdateShard(t.Context(), req); err != nil {
		t.Fatalf("update shard: %v", err)
	}
	return req
}

// gatherOne returns the value of an unlabelled counter or gauge, and
// whether it was exported.
func gatherOne(t *testing.T, reg *prometheus.Registry, name string) (float64, bool) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) > 0 {
			m := f.GetMetric()[0]
			return m.GetCounter().GetValue() + m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	v, ok := gatherOne(t, reg, name)
	if !ok {
		t.Fatalf("metric %s not exported", name)
	}
	return v
}
