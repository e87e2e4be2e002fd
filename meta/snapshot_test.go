package meta_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/clipstore/clipstore/meta"
	"github.com/clipstore/clipstore/meta/metatest"
	pb "github.com/clipstore/clipstore/proto/metapb"
)

// smallLogs makes members snapshot and compact their Raft logs early.
func smallLogs(cfg *meta.Config) {
	cfg.SnapshotThreshold = 64
	cfg.TrailingLogs = 16
	cfg.SnapshotInterval = 50 * time.Millisecond
	cfg.NodeDownAfter = time.Minute // the test heartbeats once; keep the nodes placeable
}

// newestSnapshot returns the directory and index of a member's newest
// snapshot (raft's FileSnapshotStore layout), or "" if it has none.
func newestSnapshot(t *testing.T, m *metatest.Member) (string, uint64) {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(m.Dir, "snapshots"))
	var dir string
	var index uint64
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(m.Dir, "snapshots", e.Name(), "meta.json"))
		if err != nil {
			continue
		}
		var meta struct{ Index uint64 }
		if json.Unmarshal(b, &meta) == nil && meta.Index > index {
			dir, index = filepath.Join(m.Dir, "snapshots", e.Name()), meta.Index
		}
	}
	return dir, index
}

func fill(t *testing.T, c pb.MetaServiceClient, prefix string, n int) {
	t.Helper()
	for i := range n {
		put(t, c, "bk1", fmt.Sprintf("%s%04d", prefix, i), uint64(i), nil)
	}
}

// TestFollowerCatchesUpBySnapshot: a follower that was down while the
// leader compacted its log past the follower's last entry comes back
// through InstallSnapshot and ends with the same state.
func TestFollowerCatchesUpBySnapshot(t *testing.T) {
	c := metatest.New(t, 3, metatest.Options{Configure: smallLogs})
	leader := c.WaitLeader()
	if _, err := leader.Client.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	registerNodes(t, leader.Client, 6)
	down := c.Followers()[0]
	_, before, _ := down.Node.StateDigest()
	down.Crash()
	fill(t, leader.Client, "a", 150)
	if err := leader.Node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	_, snapIndex := newestSnapshot(t, leader)
	if snapIndex < before+16+50 {
		t.Fatalf("leader snapshot at %d does not compact past the follower's %d", snapIndex, before)
	}
	down.Start(false)
	c.WaitConverged()
	if _, got := newestSnapshot(t, down); got < snapIndex {
		t.Fatalf("restarted follower holds snapshot %d, want at least the leader's %d (installed)", got, snapIndex)
	}
	fill(t, down.Client, "b", 10) // and it keeps working
	c.WaitConverged()
}

// TestSnapshotPersistedBeforeRestore: raft may persist an installed
// snapshot and crash before the FSM's Restore finishes. The member must
// notice at start-up that its FSM is behind the snapshot and restore it,
// or it would skip the entries the snapshot covers for good.
func TestSnapshotPersistedBeforeRestore(t *testing.T) {
	c := metatest.New(t, 3, metatest.Options{Configure: smallLogs})
	leader := c.WaitLeader()
	if _, err := leader.Client.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	registerNodes(t, leader.Client, 6)
	victim := c.Followers()[0]
	victim.Crash()
	fill(t, leader.Client, "a", 120)
	if err := leader.Node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	src, index := newestSnapshot(t, leader)
	dst := filepath.Join(victim.Dir, "snapshots", filepath.Base(src))
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	victim.Start(false)
	_, applied, _ := victim.Node.StateDigest()
	if applied < index {
		t.Fatalf("after start-up the FSM is at %d, behind the persisted snapshot %d", applied, index)
	}
	c.WaitConverged()
}

// TestRestartEveryMember stops all members and starts them again: every
// committed clip is still there and the members agree.
func TestRestartEveryMember(t *testing.T) {
	c := metatest.New(t, 3, metatest.Options{})
	leader := c.WaitLeader()
	if _, err := leader.Client.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	registerNodes(t, leader.Client, 6)
	fill(t, leader.Client, "k", 30)
	c.WaitConverged()
	digest, _, _ := leader.Node.StateDigest()
	for _, m := range c.Members {
		m.Stop()
	}
	for _, m := range c.Members {
		m.Start(false)
	}
	leader = c.WaitLeader()
	c.WaitConverged()
	after, _, _ := leader.Node.StateDigest()
	if string(after) != string(digest) {
		// Only the members' own SetMember records may differ (none here:
		// addresses are unchanged), so the digests must be equal.
		t.Fatal("state differs after restarting every member")
	}
	list, err := c.Members[2].Client.ListClips(t.Context(), &pb.ListClipsRequest{Bucket: "bk1", PageSize: 100})
	if err != nil || len(list.Clips) != 30 {
		t.Fatalf("after restart: %d clips, %v", len(list.GetClips()), err)
	}
}

// TestReplaceWipedMember removes a member whose disk was wiped and adds it
// back empty: it catches up from the others.
func TestReplaceWipedMember(t *testing.T) {
	c := metatest.New(t, 3, metatest.Options{})
	leader := c.WaitLeader()
	if _, err := leader.Client.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	registerNodes(t, leader.Client, 6)
	fill(t, leader.Client, "k", 20)
	victim := c.Followers()[0]
	victim.Crash()
	if _, err := leader.Client.RemoveMember(t.Context(), &pb.RemoveMemberRequest{Id: victim.ID}); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(victim.Dir); err != nil {
		t.Fatal(err)
	}
	fill(t, leader.Client, "after", 5)
	victim.RaftAddr, victim.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
	victim.Start(false)
	if _, err := c.Members[0].Client.JoinMember(t.Context(), &pb.JoinMemberRequest{Id: victim.ID,
		RaftAddress: victim.RaftAddr, GrpcAddress: victim.GRPCAddr}); err != nil {
		t.Fatal(err)
	}
	c.WaitConverged()
	got, err := victim.Client.GetClip(t.Context(), &pb.GetClipRequest{Bucket: "bk1", Key: "after0004", Read: &pb.ReadOptions{Stale: true}})
	if err != nil || got.Clip.Size != 4 {
		t.Fatalf("stale read on the re-added member: %v, %v", got, err)
	}
}
