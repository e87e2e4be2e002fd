package meta_test

import (
	"bytes"
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

// landWork finishes the repair work the heartbeaters were handed, as the
// nodes would (check sees each piece of work first): it commits the new
// shard with the entry's length and checksum, and returns how many updates
// landed. keys maps clip ids to their keys in bucket.
func landWork(t *testing.T, cl pb.MetaServiceClient, bucket string, keys map[string]string, hs []*heartbeater,
	check func(target string, w *pb.RepairWork)) int {
	t.Helper()
	landed := 0
	for _, h := range hs {
		for target, ws := range h.repairWork() {
			for _, w := range ws {
				check(target, w)
				got, err := cl.GetClip(t.Context(), &pb.GetClipRequest{Bucket: bucket, Key: keys[string(w.ClipId)]})
				if err != nil {
					continue // retired meanwhile
				}
				old := got.Clip.Parts[w.Part].Shards[w.Index]
				if _, err := cl.UpdateShard(t.Context(), &pb.UpdateShardRequest{ClipId: w.ClipId, Generation: w.Generation,
					Index: w.Index, OldShardId: w.OldShardId, NewShard: &pb.Shard{Index: w.Index, NodeId: target,
						ShardId: w.NewShardId, Length: old.Length, Checksum: old.Checksum, State: pb.ShardState_SHARD_STATE_OK}}); err == nil {
					landed++
				}
			}
		}
	}
	return landed
}

func setAdmin(t *testing.T, cl pb.MetaServiceClient, req *pb.SetNodeAdminStateRequest) (*pb.StorageNode, error) {
	t.Helper()
	resp, err := cl.SetNodeAdminState(t.Context(), req)
	return resp.GetNode(), err
}

func nodeByID(t *testing.T, cl pb.MetaServiceClient, id string) *pb.StorageNode {
	t.Helper()
	resp, err := cl.ListNodes(t.Context(), &pb.ListNodesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range resp.Nodes {
		if n.NodeId == id {
			return n
		}
	}
	return nil
}

// TestAdminStateTransitions: every refused transition names the node and
// why, and changes nothing; the allowed ones land in Raft.
func TestAdminStateTransitions(t *testing.T) {
	c := metatest.New(t, 1, metatest.Options{})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	heartbeatingNodes(t, cl, 7)
	rec := put(t, cl, "bk1", "clip", 100_000, nil).Clip
	holder := rec.Parts[0].Shards[0].NodeId
	var empty string
	for i := range 7 {
		id := fmt.Sprintf("s%d", i)
		found := false
		for _, s := range rec.Parts[0].Shards {
			found = found || s.NodeId == id
		}
		if !found {
			empty = id
		}
	}
	const active, maint, decom = pb.AdminState_ADMIN_STATE_ACTIVE, pb.AdminState_ADMIN_STATE_MAINTENANCE, pb.AdminState_ADMIN_STATE_DECOMMISSIONED
	cases := []struct {
		name string
		req  *pb.SetNodeAdminStateRequest
		code codes.Code
		want string // in the message
	}{
		{"unknown node", &pb.SetNodeAdminStateRequest{NodeId: "nope", State: maint, MaintenanceMs: 1000}, codes.NotFound, `"nope" is not registered`},
		{"no window", &pb.SetNodeAdminStateRequest{NodeId: holder, State: maint}, codes.InvalidArgument, "maintenance window"},
		{"unknown state", &pb.SetNodeAdminStateRequest{NodeId: holder, State: 9}, codes.InvalidArgument, "unknown admin state"},
		{"decommission a node with shards", &pb.SetNodeAdminStateRequest{NodeId: holder, State: decom}, codes.FailedPrecondition, "still holds 1 shards"},
		{"decommission --dead of an up node", &pb.SetNodeAdminStateRequest{NodeId: holder, State: decom, Dead: true}, codes.FailedPrecondition, "is up and holds 1 shards"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := setAdmin(t, cl, tc.req)
			wantCode(t, err, tc.code)
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q lacks %q", err, tc.want)
			}
			if n := nodeByID(t, cl, holder); n.AdminState != active {
				t.Fatalf("a refused transition changed %s to %v", holder, n.AdminState)
			}
		})
	}
	_, err := cl.RemoveNode(t.Context(), &pb.RemoveNodeRequest{NodeId: empty})
	wantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(err.Error(), "is active; decommission it") {
		t.Fatalf("remove of an active node: %v", err)
	}

	// An empty node is decommissioned, which is final, then removed.
	n, err := setAdmin(t, cl, &pb.SetNodeAdminStateRequest{NodeId: empty, State: decom})
	if err != nil || n.AdminState != decom {
		t.Fatalf("decommission of empty %s: %v, %v", empty, n, err)
	}
	_, err = setAdmin(t, cl, &pb.SetNodeAdminStateRequest{NodeId: empty, State: active})
	wantCode(t, err, codes.FailedPrecondition)
	for range 10 { // it takes no new shard
		if r := put(t, cl, "bk1", "more", 1000, nil).Clip; strings.Contains(fmt.Sprint(r.Parts[0].Shards), `node_id:"`+empty+`"`) {
			t.Fatalf("a shard placed on decommissioned %s", empty)
		}
	}
	if _, err := cl.RemoveNode(t.Context(), &pb.RemoveNodeRequest{NodeId: empty}); err != nil {
		t.Fatal(err)
	}
	if nodeByID(t, cl, empty) != nil {
		t.Fatalf("%s still listed after remove", empty)
	}
}

// TestMaintenanceWindow: a node in maintenance takes no new shards, is not
// marked down while silent inside its window and its shards are not
// repaired; when the window ends with the node still silent, it is marked
// down and repaired. Maintenance that would leave a clip with fewer than
// k+1 available shards is refused unless forced.
func TestMaintenanceWindow(t *testing.T) {
	const downAfter, repairAfter = 400 * time.Millisecond, 300 * time.Millisecond
	c := metatest.New(t, 1, metatest.Options{Configure: func(cfg *meta.Config) {
		cfg.NodeDownAfter, cfg.RepairAfter = downAfter, repairAfter
	}})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	h := heartbeatingNodes(t, cl, 6) // exactly k+m: every clip has a shard on every node
	rec := put(t, cl, "bk1", "clip", 100_000, nil).Clip
	const window = 3 * time.Second
	n, err := setAdmin(t, cl, &pb.SetNodeAdminStateRequest{NodeId: "s0", State: pb.AdminState_ADMIN_STATE_MAINTENANCE,
		MaintenanceMs: window.Milliseconds()})
	if err != nil || n.AdminState != pb.AdminState_ADMIN_STATE_MAINTENANCE || n.MaintenanceUntilUnixNano == 0 {
		t.Fatalf("maintenance of s0: %v, %v", n, err)
	}
	start := time.Now()
	// A second node would leave the clip 4 available shards of 4+2: refused.
	_, err = setAdmin(t, cl, &pb.SetNodeAdminStateRequest{NodeId: "s1", State: pb.AdminState_ADMIN_STATE_MAINTENANCE, MaintenanceMs: 1000})
	wantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(err.Error(), "bk1/clip (4 available, k+1 = 5)") {
		t.Fatalf("refusal does not name the clip: %v", err)
	}
	if nodeByID(t, cl, "s1").AdminState != pb.AdminState_ADMIN_STATE_ACTIVE {
		t.Fatal("a refused maintenance changed s1")
	}

	h.kill("s0")
	// With s0 out of placement, 5 nodes remain for 6 shards: a put leaves
	// one index missing, never on s0.
	r2 := put(t, cl, "bk1", "during", 100_000, nil).Clip
	for _, s := range r2.Parts[0].Shards {
		if s.NodeId == "s0" {
			t.Fatal("a shard placed on s0 during its maintenance")
		}
	}
	for time.Since(start) < window-500*time.Millisecond {
		if n := nodeByID(t, cl, "s0"); n.State != pb.NodeState_NODE_STATE_UP {
			t.Fatalf("s0 marked %v %v into its maintenance window", n.State, time.Since(start))
		}
		for node, ws := range h.repairWork() {
			for _, w := range ws {
				if bytes.Equal(w.ClipId, rec.ClipId) {
					t.Fatalf("repair of the clip planned on %s during s0's maintenance", node)
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Past the window, still silent: active again, marked down, repaired.
	await.True(t, 5*time.Second, "s0 active and down after its window", func() bool {
		n := nodeByID(t, cl, "s0")
		return n.AdminState == pb.AdminState_ADMIN_STATE_ACTIVE && n.State == pb.NodeState_NODE_STATE_DOWN
	})
	// 5 live nodes all hold a shard of clip: nowhere to rebuild, but the
	// loss is counted (degraded) as a down node's is.
	await.True(t, 5*time.Second, "the clip counted degraded", func() bool {
		st, err := cl.ClusterStatus(t.Context(), &pb.ClusterStatusRequest{})
		return err == nil && st.DegradedClips >= 1
	})
}

// TestDecommissionDead: a node down for good is decommissioned with --dead:
// its shards are rebuilt elsewhere at once (no repair grace), and the
// leader decommissions it when nothing references it any more; a commit
// that names a decommissioned node records that shard missing.
func TestDecommissionDead(t *testing.T) {
	c := metatest.New(t, 1, metatest.Options{Configure: func(cfg *meta.Config) {
		cfg.NodeDownAfter, cfg.RepairAfter = 400*time.Millisecond, time.Hour
	}})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	h := heartbeatingNodes(t, cl, 7)
	rec := put(t, cl, "bk1", "clip", 100_000, nil).Clip
	dead := rec.Parts[0].Shards[1]
	h.kill(dead.NodeId)
	await.True(t, 5*time.Second, "the node marked down", func() bool {
		return nodeByID(t, cl, dead.NodeId).State == pb.NodeState_NODE_STATE_DOWN
	})
	n, err := setAdmin(t, cl, &pb.SetNodeAdminStateRequest{NodeId: dead.NodeId, State: pb.AdminState_ADMIN_STATE_DECOMMISSIONED, Dead: true})
	if err != nil || n.AdminState != pb.AdminState_ADMIN_STATE_DRAINING || !n.DrainDead {
		t.Fatalf("decommission --dead: %v, %v", n, err)
	}
	var work *pb.RepairWork
	var target string
	await.True(t, 5*time.Second, "repair planned at once, within the hour of repair grace", func() bool {
		for node, ws := range h.repairWork() {
			for _, w := range ws {
				target, work = node, w
			}
		}
		return work != nil
	})
	if _, err := cl.UpdateShard(t.Context(), &pb.UpdateShardRequest{ClipId: work.ClipId, Generation: work.Generation,
		Index: work.Index, OldShardId: work.OldShardId, NewShard: &pb.Shard{Index: work.Index, NodeId: target,
			ShardId: work.NewShardId, Length: dead.Length, Checksum: dead.Checksum, State: pb.ShardState_SHARD_STATE_OK}}); err != nil {
		t.Fatal(err)
	}
	await.True(t, 5*time.Second, "the drained node decommissioned", func() bool {
		return nodeByID(t, cl, dead.NodeId).AdminState == pb.AdminState_ADMIN_STATE_DECOMMISSIONED
	})

	if _, err := cl.RemoveNode(t.Context(), &pb.RemoveNodeRequest{NodeId: dead.NodeId}); err != nil {
		t.Fatal(err)
	}
}

// TestCommitNamingDecommissionedNode: an upload placed before its target
// was decommissioned commits with that shard recorded missing, on no node,
// so that a decommission never waits for uploads in flight.
func TestCommitNamingDecommissionedNode(t *testing.T) {
	c := metatest.New(t, 1, metatest.Options{})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	heartbeatingNodes(t, cl, 7)
	begin, err := cl.BeginPut(t.Context(), &pb.BeginPutRequest{Bucket: "bk1", Key: "late"})
	if err != nil {
		t.Fatal(err)
	}
	gone := begin.Targets[2].NodeId // nothing committed references it yet
	if _, err := setAdmin(t, cl, &pb.SetNodeAdminStateRequest{NodeId: gone, State: pb.AdminState_ADMIN_STATE_DECOMMISSIONED}); err != nil {
		t.Fatal(err)
	}
	resp, err := cl.CommitPut(t.Context(), commitFor(begin, "bk1", "late", 100_000, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range resp.Clip.Parts[0].Shards {
		if s.NodeId == gone {
			t.Fatalf("the record places shard %d on decommissioned %s", s.Index, gone)
		}
	}
	if s := resp.Clip.Parts[0].Shards[2]; s.State != pb.ShardState_SHARD_STATE_MISSING || s.NodeId != "" {
		t.Fatalf("shard 2 was for %s: %v, want missing on no node", gone, s)
	}
	if _, err := cl.RemoveNode(t.Context(), &pb.RemoveNodeRequest{NodeId: gone}); err != nil {
		t.Fatalf("remove %s: %v", gone, err)
	}
}

// TestDrainMovesShards: draining a live node plans a move for every shard
// on it, each rebuilt elsewhere from k other shards while it stays in
// place; each move's conditional update sends the old shard to the node's
// delete queue, and once it holds nothing the node can be decommissioned.
// A second drain is refused; undrain stops planning.
func TestDrainMovesShards(t *testing.T) {
	const deleteDelay = 2 * time.Second
	c := metatest.New(t, 1, metatest.Options{Configure: func(cfg *meta.Config) { cfg.MoveDeleteDelay = deleteDelay }})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	h := heartbeatingNodes(t, cl, 8)
	keys := map[string]string{} // clip id -> key
	for i := range 6 {
		key := fmt.Sprintf("clip%d", i)
		keys[string(put(t, cl, "bk1", key, 100_000, nil).Clip.ClipId)] = key
	}
	const drained = "s3"
	if _, err := setAdmin(t, cl, &pb.SetNodeAdminStateRequest{NodeId: drained, State: pb.AdminState_ADMIN_STATE_DRAINING}); err != nil {
		t.Fatal(err)
	}
	_, err := setAdmin(t, cl, &pb.SetNodeAdminStateRequest{NodeId: drained, State: pb.AdminState_ADMIN_STATE_DRAINING})
	wantCode(t, err, codes.FailedPrecondition)
	left := nodeByID(t, cl, drained).ShardsToMove
	if left == 0 {
		t.Fatalf("%s holds no shard to drain", drained)
	}
	done := 0
	await.TrueWhy(t, 20*time.Second, "every shard moved off the drained node", func() (bool, string) {
		done += landWork(t, cl, "bk1", keys, []*heartbeater{h}, func(target string, w *pb.RepairWork) {
			if target == drained {
				t.Fatalf("a move targets the draining node")
			}
			for _, s := range w.Sources {
				if s.Index == w.Index {
					t.Fatalf("a move's sources include the shard it moves")
				}
			}
			if cf := w.CopyFrom; cf == nil || cf.NodeId != drained || !bytes.Equal(cf.ShardId, w.OldShardId) || cf.Index != w.Index {
				t.Fatalf("a move does not copy the shard it moves: %v", cf)
			}
		})
		n := nodeByID(t, cl, drained)
		return n.ShardsToMove == 0, fmt.Sprintf("%d shards to move, %d moved", n.ShardsToMove, done)
	})
	if done != int(left) {
		t.Fatalf("%d moves landed for %d shards", done, left)
	}
	st, err := cl.ClusterStatus(t.Context(), &pb.ClusterStatusRequest{})
	if err != nil || st.DegradedClips != 0 || st.PendingDeletes < left {
		t.Fatalf("after the drain: %d degraded clips, %d deletes pending (want >= %d), %v", st.GetDegradedClips(), st.GetPendingDeletes(), left, err)
	}
	// The old copies are deleted only after the move-delete delay, so that
	// reads holding the old records finish.
	deletes := func() int {
		resp, err := cl.Heartbeat(t.Context(), &pb.HeartbeatRequest{NodeId: drained})
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Deletes)
	}
	if n := deletes(); n != 0 {
		t.Fatalf("%d deletions handed to %s before the move-delete delay", n, drained)
	}
	await.True(t, 3*deleteDelay, "the moved shards' deletions handed out after the delay", func() bool {
		return deletes() == int(left)
	})
	if _, err := setAdmin(t, cl, &pb.SetNodeAdminStateRequest{NodeId: drained, State: pb.AdminState_ADMIN_STATE_DECOMMISSIONED}); err != nil {
		t.Fatalf("decommission of the drained node: %v", err)
	}

	// Undrain: a node that drains no longer does once active again.
	if _, err := setAdmin(t, cl, &pb.SetNodeAdminStateRequest{NodeId: "s5", State: pb.AdminState_ADMIN_STATE_DRAINING}); err != nil {
		t.Fatal(err)
	}
	if _, err := setAdmin(t, cl, &pb.SetNodeAdminStateRequest{NodeId: "s5", State: pb.AdminState_ADMIN_STATE_ACTIVE}); err != nil {
		t.Fatal(err)
	}
	if n := nodeByID(t, cl, "s5"); n.AdminState != pb.AdminState_ADMIN_STATE_ACTIVE || n.ShardsToMove != 0 {
		t.Fatalf("s5 after undrain: %v", n)
	}
}

// TestDrainBlockedSaysWhy: a drain that cannot go on (every other node
// holds a shard of the clip) says why and stays draining, nothing lost;
// once a node joins, the moves go on and the reason clears.
func TestDrainBlockedSaysWhy(t *testing.T) {
	c := metatest.New(t, 1, metatest.Options{})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	heartbeatingNodes(t, cl, 6) // exactly k+m
	put(t, cl, "bk1", "clip", 100_000, nil)
	if _, err := setAdmin(t, cl, &pb.SetNodeAdminStateRequest{NodeId: "s0", State: pb.AdminState_ADMIN_STATE_DRAINING}); err != nil {
		t.Fatal(err)
	}
	await.TrueWhy(t, 10*time.Second, "the drain to say why it is blocked", func() (bool, string) {
		n := nodeByID(t, cl, "s0")
		return strings.Contains(n.DrainBlocked, "no active, up node with room holds no shard of clip bk1/clip (4+2 needs 6 distinct nodes)"),
			n.DrainBlocked
	})
	if n := nodeByID(t, cl, "s0"); n.AdminState != pb.AdminState_ADMIN_STATE_DRAINING || n.ShardsToMove != 1 {
		t.Fatalf("blocked drain: %v", n)
	}
	if _, err := cl.RegisterNode(t.Context(), &pb.RegisterNodeRequest{NodeId: "s6", Address: "127.0.0.1:7406", Zone: "z0"}); err != nil {
		t.Fatal(err)
	}
	h2 := startHeartbeats(t, cl, []string{"s6"})
	await.TrueWhy(t, 10*time.Second, "a move planned onto the new node, the reason cleared", func() (bool, string) {
		n := nodeByID(t, cl, "s0")
		return len(h2.repairWork()["s6"]) == 1 && n.DrainBlocked == "", n.DrainBlocked
	})
}

// TestMoveLimits: moves have limits of their own, kept apart from repair's:
// with move concurrency 0 a drain plans nothing; raised at run time, at
// most that many moves run at once; repair's limits are untouched.
func TestMoveLimits(t *testing.T) {
	c := metatest.New(t, 1, metatest.Options{Configure: func(cfg *meta.Config) { cfg.MoveConcurrency = 0 }})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	h := heartbeatingNodes(t, cl, 8)
	held := map[string]int{}
	for i := range 8 {
		for _, sh := range put(t, cl, "bk1", fmt.Sprintf("clip%d", i), 100_000, nil).Clip.Parts[0].Shards {
			held[sh.NodeId]++
		}
	}
	drained := "s0" // the node holding the most shards: 6 at least, of 48 on 8 nodes
	for id, n := range held {
		if n > held[drained] {
			drained = id
		}
	}
	if _, err := setAdmin(t, cl, &pb.SetNodeAdminStateRequest{NodeId: drained, State: pb.AdminState_ADMIN_STATE_DRAINING}); err != nil {
		t.Fatal(err)
	}
	if left := nodeByID(t, cl, drained).ShardsToMove; left < 3 {
		t.Fatalf("%s holds %d shards; the test needs 3 or more", drained, left)
	}
	inFlight := func() int {
		n := 0
		for _, ws := range h.repairWork() {
			n += len(ws)
		}
		return n
	}
	time.Sleep(time.Second) // several planning passes
	if n := inFlight(); n != 0 {
		t.Fatalf("%d moves planned with move concurrency 0", n)
	}
	two := uint32(2)
	resp, err := cl.RepairLimits(t.Context(), &pb.RepairLimitsRequest{Moves: true, Concurrency: &two})
	if err != nil || resp.Limits.Concurrency != 2 {
		t.Fatalf("set move limits: %v, %v", resp, err)
	}
	await.True(t, 5*time.Second, "two moves planned", func() bool { return inFlight() == 2 })
	time.Sleep(500 * time.Millisecond)
	if n := inFlight(); n != 2 {
		t.Fatalf("%d moves in flight with move concurrency 2", n)
	}
	repair, err := cl.RepairLimits(t.Context(), &pb.RepairLimitsRequest{})
	if err != nil || repair.Limits.Concurrency != uint32(meta.DefaultConfig().RepairConcurrency) {
		t.Fatalf("repair limits after a change of move limits: %v, %v", repair, err)
	}
}
