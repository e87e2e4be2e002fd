package meta_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/internal/rpcerr"
	"github.com/clipstore/clipstore/meta"
	"github.com/clipstore/clipstore/meta/metatest"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"google.golang.org/grpc/codes"
)

// heartbeater sends heartbeats for the given nodes every 50 ms, as storage
// nodes do, and collects the repair work the answers carry.
type heartbeater struct {
	mu     sync.Mutex
	alive  map[string]bool
	work   map[string][]*pb.RepairWork
	stop   chan struct{}
	done   chan struct{}
	client pb.MetaServiceClient
}

func startHeartbeats(t *testing.T, c pb.MetaServiceClient, nodes []string) *heartbeater {
	return startHeartbeatsCap(t, c, nodes, 100<<30)
}

// startHeartbeatsCap is startHeartbeats with nodes of the given capacity,
// half of it free.
func startHeartbeatsCap(t *testing.T, c pb.MetaServiceClient, nodes []string, capacity uint64) *heartbeater {
	h := &heartbeater{alive: map[string]bool{}, work: map[string][]*pb.RepairWork{}, stop: make(chan struct{}),
		done: make(chan struct{}), client: c}
	for _, n := range nodes {
		h.alive[n] = true
	}
	go func() {
		defer close(h.done)
		for {
			select {
			case <-h.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			h.mu.Lock()
			var ids []string
			for id, ok := range h.alive {
				if ok {
					ids = append(ids, id)
				}
			}
			h.mu.Unlock()
			for _, id := range ids {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				resp, err := c.Heartbeat(ctx, &pb.HeartbeatRequest{NodeId: id, Capacity: capacity, Free: capacity / 2})
				cancel()
				if err == nil {
					h.mu.Lock()
					h.work[id] = resp.Repairs
					h.mu.Unlock()
				}
			}
		}
	}()
	t.Cleanup(func() { close(h.stop); <-h.done })
	return h
}

func (h *heartbeater) kill(node string) {
	h.mu.Lock()
	h.alive[node] = false
	h.mu.Unlock()
}

func (h *heartbeater) revive(node string) {
	h.mu.Lock()
	h.alive[node] = true
	h.mu.Unlock()
}

// repairWork returns every node's current repair work.
func (h *heartbeater) repairWork() map[string][]*pb.RepairWork {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string][]*pb.RepairWork{}
	for k, v := range h.work {
		if len(v) > 0 {
			out[k] = v
		}
	}
	return out
}

// TestDownNodeShardsAreRepaired: a node silent past NodeDownAfter is marked
// down; after RepairAfter its shard of a clip is handed, through a
// heartbeat answer, to a live node that holds no other shard of the clip,
// with k healthy sources; the conditional update that a repair ends with
// makes the record whole again and retires the task.
func TestDownNodeShardsAreRepaired(t *testing.T) {
	c := metatest.New(t, 1, metatest.Options{Configure: func(cfg *meta.Config) {
		cfg.NodeDownAfter = 500 * time.Millisecond
		cfg.RepairAfter = 300 * time.Millisecond
	}})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	h := heartbeatingNodes(t, cl, 7)
	commit := put(t, cl, "bk1", "clip", 1<<20, nil)
	holders := map[string]bool{}
	var lost *pb.Shard
	for _, s := range commit.Clip.Parts[0].Shards {
		holders[s.NodeId] = true
		if s.Index == 2 {
			lost = s
		}
	}
	h.kill(lost.NodeId)

	var work *pb.RepairWork
	var target string
	await.True(t, 10*time.Second, "repair work in a heartbeat answer", func() bool {
		for node, ws := range h.repairWork() {
			for _, w := range ws {
				target, work = node, w
			}
		}
		return work != nil
	})
	if holders[target] || target == lost.NodeId {
		t.Fatalf("repair target %s already holds a shard of the clip (holders %v)", target, holders)
	}
	if work.Index != 2 || !bytes.Equal(work.OldShardId, lost.ShardId) || len(work.Sources) < 4 || work.Generation != commit.Clip.Generation {
		t.Fatalf("repair work %v", work)
	}
	for _, s := range work.Sources {
		if s.NodeId == lost.NodeId || s.Index == 2 || s.Address == "" {
			t.Fatalf("source %v is not a healthy shard", s)
		}
	}
	// The repair's last step, as a storage node runs it.
	_, err := cl.UpdateShard(t.Context(), &pb.UpdateShardRequest{ClipId: work.ClipId, Generation: work.Generation,
		Index: work.Index, OldShardId: work.OldShardId, NewShard: &pb.Shard{Index: 2, NodeId: target,
			ShardId: work.NewShardId, Length: lost.Length, Checksum: lost.Checksum, State: pb.ShardState_SHARD_STATE_OK}})
	if err != nil {
		t.Fatal(err)
	}
	await.True(t, 10*time.Second, "the task to retire", func() bool {
		st, err := cl.ClusterStatus(t.Context(), &pb.ClusterStatusRequest{})
		return err == nil && st.RepairsInFlight == 0 && len(h.repairWork()) == 0
	})
	got, err := cl.GetClip(t.Context(), &pb.GetClipRequest{Bucket: "bk1", Key: "clip"})
	if err != nil {
		t.Fatal(err)
	}
	if s := got.Clip.Parts[0].Shards[2]; s.NodeId != target || !bytes.Equal(s.ShardId, work.NewShardId) {
		t.Fatalf("record after repair: shard 2 on %s (%x), want %s (%x)", s.NodeId, s.ShardId, target, work.NewShardId)
	}
}

// TestMissingShardAtCommitIsRepaired: a clip committed with a MISSING
// index (a target failed during the put) is repaired without waiting.
func TestMissingShardAtCommitIsRepaired(t *testing.T) {
	c := metatest.New(t, 1, metatest.Options{})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	h := heartbeatingNodes(t, cl, 7)
	begin := commitMissing(t, cl, "k")
	await.True(t, 10*time.Second, "repair work for the missing index", func() bool {
		for _, ws := range h.repairWork() {
			for _, w := range ws {
				if w.Index == 5 && bytes.Equal(w.ClipId, begin.ClipId) {
					return true
				}
			}
		}
		return false
	})
}

// TestCorruptReportsAndShardChecks: a shard a node reports corrupt in its
// heartbeat is marked and repair is planned; CheckShards tells a node which
// of its shards no record references; a repair's update past its deadline
// is refused.
func TestCorruptReportsAndShardChecks(t *testing.T) {
	c := metatest.New(t, 1, metatest.Options{})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	registerNodes(t, cl, 7)
	commit := put(t, cl, "bk1", "clip", 100_000, nil)
	bad := commit.Clip.Parts[0].Shards[1]
	report(t, cl, &pb.HeartbeatRequest{NodeId: bad.NodeId, Free: 50 << 30,
		CorruptShardIds: [][]byte{bad.ShardId, bytes.Repeat([]byte{9}, 16)}})
	got, err := cl.GetClip(t.Context(), &pb.GetClipRequest{Bucket: "bk1", Key: "clip"})
	if err != nil {
		t.Fatal(err)
	}
	if st := got.Clip.Parts[0].Shards[1].State; st != pb.ShardState_SHARD_STATE_CORRUPT {
		t.Fatalf("reported shard is %v, want CORRUPT", st)
	}
	status, _ := cl.ClusterStatus(t.Context(), &pb.ClusterStatusRequest{})
	if status.DegradedClips != 1 {
		t.Fatalf("%d degraded clips, want 1", status.DegradedClips)
	}

	unknown := bytes.Repeat([]byte{7}, 16)
	old := time.Now().Add(-2 * time.Hour).UnixNano()
	resp, err := cl.CheckShards(t.Context(), &pb.CheckShardsRequest{NodeId: bad.NodeId, Shards: []*pb.ShardRef{
		{ShardId: bad.ShardId, CommitDeadlineUnixNano: old},                                   // referenced
		{ShardId: unknown, CommitDeadlineUnixNano: old},                                       // collectable
		{ShardId: bytes.Repeat([]byte{8}, 16), CommitDeadlineUnixNano: time.Now().UnixNano()}, // within the grace
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Collectable) != 1 || !bytes.Equal(resp.Collectable[0], unknown) {
		t.Fatalf("collectable %x, want only the unknown old id", resp.Collectable)
	}
	wantCode(t, func() error {
		_, err := cl.CheckShards(t.Context(), &pb.CheckShardsRequest{NodeId: bad.NodeId, Shards: []*pb.ShardRef{{ShardId: []byte{1, 2}}}})
		return err
	}(), codes.InvalidArgument)

	_, err = cl.UpdateShard(t.Context(), &pb.UpdateShardRequest{ClipId: got.Clip.ClipId, Generation: got.Clip.Generation,
		Index: 1, OldShardId: bad.ShardId, CommitDeadlineUnixNano: time.Now().Add(-time.Minute).UnixNano(),
		NewShard: &pb.Shard{Index: 1, NodeId: "s6", ShardId: bytes.Repeat([]byte{5}, 16), Length: bad.Length, State: pb.ShardState_SHARD_STATE_OK}})
	wantReason(t, err, codes.FailedPrecondition, rpcerr.DeadlinePassed)
}

// TestRepairLimitsAtRunTime: limits changed through any member are
// replicated and bound the repairs in flight; concurrency 0 pauses repair;
// a bad value changes nothing.
func TestRepairLimitsAtRunTime(t *testing.T) {
	c := metatest.New(t, 3, metatest.Options{})
	leader := c.WaitLeader()
	f := c.Followers()[0].Client
	one := uint32(1)
	resp, err := f.RepairLimits(t.Context(), &pb.RepairLimitsRequest{Concurrency: &one})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Limits.Concurrency != 1 || resp.Limits.BytesPerSec != 200<<20 {
		t.Fatalf("limits %v, want concurrency 1 and the default rate", resp.Limits)
	}
	tooMany, zero := uint32(10001), uint32(0)
	_, err = f.RepairLimits(t.Context(), &pb.RepairLimitsRequest{Concurrency: &tooMany})
	wantCode(t, err, codes.InvalidArgument)
	got, err := c.Followers()[1].Client.RepairLimits(t.Context(), &pb.RepairLimitsRequest{})
	if err != nil || got.Limits.Concurrency != 1 {
		t.Fatalf("read on another member: %v, %v", got, err)
	}
	if _, err := f.RepairLimits(t.Context(), &pb.RepairLimitsRequest{Concurrency: &zero}); err != nil {
		t.Fatal(err)
	}

	cl := leader.Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	h := heartbeatingNodes(t, cl, 8)
	for i := range 3 {
		begin, err := cl.BeginPut(t.Context(), &pb.BeginPutRequest{Bucket: "bk1", Key: fmt.Sprintf("k%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		req := commitFor(begin, "bk1", fmt.Sprintf("k%d", i), 1000, nil)
		req.Shards[5].State, req.Shards[5].NodeId, req.Shards[5].Length = pb.ShardState_SHARD_STATE_MISSING, "", 0
		if _, err := cl.CommitPut(t.Context(), req); err != nil {
			t.Fatal(err)
		}
	}
	// Paused: the lost shards are counted but nothing is planned.
	for range 10 {
		st, err := cl.ClusterStatus(t.Context(), &pb.ClusterStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if st.RepairsInFlight != 0 || len(h.repairWork()) != 0 {
			t.Fatalf("%d repairs in flight, work %v, with repair paused", st.RepairsInFlight, h.repairWork())
		}
		if len(st.ClipsByLostShards) != 1 || st.ClipsByLostShards[0] != 3 {
			t.Fatalf("clips by lost shards %v, want [3]", st.ClipsByLostShards)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := f.RepairLimits(t.Context(), &pb.RepairLimitsRequest{Concurrency: &one}); err != nil {
		t.Fatal(err)
	}
	await.True(t, 10*time.Second, "a repair in flight", func() bool {
		st, err := cl.ClusterStatus(t.Context(), &pb.ClusterStatusRequest{})
		return err == nil && st.RepairsInFlight > 0
	})
	for range 10 {
		st, err := cl.ClusterStatus(t.Context(), &pb.ClusterStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		work := 0
		for _, ws := range h.repairWork() {
			work += len(ws)
		}
		if st.RepairsInFlight > 1 || work > 1 {
			t.Fatalf("%d repairs in flight, %d handed out, with concurrency 1", st.RepairsInFlight, work)
		}
		if len(st.ClipsByLostShards) != 1 || st.ClipsByLostShards[0] != 3 {
			t.Fatalf("clips by lost shards %v, want [3]", st.ClipsByLostShards)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLeaderChangeMarksNoHealthyNodeDown: a new leader restarts every
// liveness timer when it wins, so nodes that keep heartbeating are never
// marked down by a leader change, even one longer than NodeDownAfter ago
// since the old leader last heard them.
func TestLeaderChangeMarksNoHealthyNodeDown(t *testing.T) {
	c := metatest.New(t, 3, metatest.Options{Configure: func(cfg *meta.Config) {
		cfg.NodeDownAfter = time.Second
	}})
	leader := c.WaitLeader()
	survivor := c.Followers()[0]
	registerNodes(t, survivor.Client, 6)
	var ids []string
	for i := range 6 {
		ids = append(ids, fmt.Sprintf("s%d", i))
	}
	startHeartbeats(t, survivor.Client, ids)
	time.Sleep(300 * time.Millisecond)
	leader.Crash()
	c.WaitLeader()
	deadline := time.Now().Add(3 * time.Second) // three NodeDownAfter periods
	for time.Now().Before(deadline) {
		resp, err := survivor.Client.ListNodes(t.Context(), &pb.ListNodesRequest{Read: &pb.ReadOptions{Stale: true}})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range resp.Nodes {
			if n.State != pb.NodeState_NODE_STATE_UP || n.DownSinceUnixNano != 0 {
				t.Fatalf("healthy node %s marked %v after a leader change", n.NodeId, n.State)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFailedRepairIsReplanned: a node that gives up on a repair says so in
// its heartbeat, and the leader plans the shard again at once, as a new task.
func TestFailedRepairIsReplanned(t *testing.T) {
	c := metatest.New(t, 1, metatest.Options{})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	h := heartbeatingNodes(t, cl, 7)
	commitMissing(t, cl, "k")
	var first *pb.RepairWork
	var target string
	await.True(t, 10*time.Second, "repair work", func() bool {
		for node, ws := range h.repairWork() {
			first, target = ws[0], node
		}
		return first != nil
	})
	if _, err := cl.Heartbeat(t.Context(), &pb.HeartbeatRequest{NodeId: target, Free: 50 << 30,
		FailedRepairTasks: [][]byte{first.TaskId}}); err != nil {
		t.Fatal(err)
	}
	await.True(t, 5*time.Second, "the shard to be planned again as a new task", func() bool {
		for _, ws := range h.repairWork() {
			for _, w := range ws {
				if w.Index == 5 && !bytes.Equal(w.TaskId, first.TaskId) {
					return true
				}
			}
		}
		return false
	})
}

// heartbeatingNodes registers n storage nodes s0..s(n-1) and heartbeats
// them until the test ends.
func heartbeatingNodes(t *testing.T, cl pb.MetaServiceClient, n int) *heartbeater {
	t.Helper()
	registerNodes(t, cl, n)
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprintf("s%d", i))
	}
	return startHeartbeats(t, cl, ids)
}

// commitMissing commits a 4+2 clip in bucket bk1 whose shard 5 was never
// written (recorded MISSING, as when a target fails during a put).
func commitMissing(t *testing.T, cl pb.MetaServiceClient, key string) *pb.BeginPutResponse {
	t.Helper()
	begin, err := cl.BeginPut(t.Context(), &pb.BeginPutRequest{Bucket: "bk1", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	req := commitFor(begin, "bk1", key, 1000, nil)
	req.Shards[5].State, req.Shards[5].NodeId, req.Shards[5].Length = pb.ShardState_SHARD_STATE_MISSING, "", 0
	if _, err := cl.CommitPut(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	return begin
}

// TestUnrecoverableClipsDoNotStarveRepair: with repair concurrency 1 a
// planning pass collects needs from at most 16 clips. 20 clips that lost
// three shards of a 4+2 part (nothing to rebuild them from) sort before a
// clip that lost one: the latter is still planned, the others are counted
// unrecoverable and left out of the repair queue. (Repair is paused while
// the clips are set up, so that none is planned while it still has two
// shards to lose.)
func TestUnrecoverableClipsDoNotStarveRepair(t *testing.T) {
	c := metatest.New(t, 1, metatest.Options{Configure: func(cfg *meta.Config) { cfg.RepairConcurrency = 0 }})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	registerNodes(t, cl, 7)
	for i := range 20 { // clip ids are time-ordered: these sort first
		begin := commitMissing(t, cl, fmt.Sprintf("lost/%02d", i))
		got, err := cl.GetClip(t.Context(), &pb.GetClipRequest{Bucket: "bk1", Key: fmt.Sprintf("lost/%02d", i)})
		if err != nil {
			t.Fatal(err)
		}
		for _, index := range []uint32{0, 1} {
			_, err := cl.ReportShard(t.Context(), &pb.ReportShardRequest{ClipId: begin.ClipId, Generation: got.Clip.Generation,
				Index: index, ShardId: got.Clip.Parts[0].Shards[index].ShardId, State: pb.ShardState_SHARD_STATE_CORRUPT, Reporter: "test"})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	ok := commitMissing(t, cl, "recoverable")
	one := uint32(1)
	if _, err := cl.RepairLimits(t.Context(), &pb.RepairLimitsRequest{Concurrency: &one}); err != nil {
		t.Fatal(err)
	}
	h := startHeartbeats(t, cl, []string{"s0", "s1", "s2", "s3", "s4", "s5", "s6"})
	await.True(t, 10*time.Second, "the recoverable clip's repair to be handed out", func() bool {
		for _, ws := range h.repairWork() {
			for _, w := range ws {
				if bytes.Equal(w.ClipId, ok.ClipId) {
					return true
				}
			}
		}
		return false
	})
	st := clusterStatus(t, cl)
	if st.UnrecoverableClips != 20 || st.RepairQueueShards != 1 || st.DegradedClips != 21 {
		t.Fatalf("%d unrecoverable, %d shards queued, %d degraded; want 20, 1, 21", st.UnrecoverableClips, st.RepairQueueShards, st.DegradedClips)
	}
}

// TestRepairOfADownTargetIsReplanned: the target of a repair dies before
// it lands; once it is marked down, the repair goes to another node at
// once, not at the task's deadline.
func TestRepairOfADownTargetIsReplanned(t *testing.T) {
	c := metatest.New(t, 1, metatest.Options{Configure: func(cfg *meta.Config) {
		cfg.NodeDownAfter, cfg.RepairAfter, cfg.RepairTaskTimeout = 500*time.Millisecond, 300*time.Millisecond, time.Hour
	}})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	h := heartbeatingNodes(t, cl, 8)
	commit := put(t, cl, "bk1", "clip", 1<<20, nil)
	lost := commit.Clip.Parts[0].Shards[2]
	h.kill(lost.NodeId)
	first := ""
	await.True(t, 10*time.Second, "repair work for shard 2", func() bool {
		for node, ws := range h.repairWork() {
			for _, w := range ws {
				if w.Index == 2 {
					first = node
				}
			}
		}
		return first != ""
	})
	h.kill(first)
	await.TrueWhy(t, 5*time.Second, "the repair planned on another node", func() (bool, string) {
		for node, ws := range h.repairWork() {
			for _, w := range ws {
				if w.Index == 2 && node != first {
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("work %v", h.repairWork())
	})
}
