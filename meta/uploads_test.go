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

// TestUploadExpires: an upload left open past UploadExpiry is aborted by
// the leader: it is gone, and its part's shards are queued for deletion.
func TestUploadExpires(t *testing.T) {
	c := metatest.New(t, 1, metatest.Options{Configure: func(cfg *meta.Config) { cfg.UploadExpiry = 2 * time.Second }})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	heartbeatingNodes(t, cl, 6)
	up, err := cl.CreateUpload(t.Context(), &pb.CreateUploadRequest{Bucket: "bk1", Key: "clip"})
	if err != nil {
		t.Fatal(err)
	}
	u := up.Upload
	begin, err := cl.BeginPart(t.Context(), &pb.BeginPartRequest{Bucket: "bk1", Key: "clip", UploadId: u.UploadId, Number: 1})
	if err != nil || string(begin.ClipId) != string(u.ClipId) {
		t.Fatalf("begin part: %v (clip id %x, the upload's %x)", err, begin.GetClipId(), u.ClipId)
	}
	commit := commitFor(begin, "bk1", "clip", 100_000, nil)
	part, err := cl.CommitPart(t.Context(), &pb.CommitPartRequest{Bucket: "bk1", Key: "clip", UploadId: u.UploadId, Number: 1,
		CommitDeadlineUnixNano: begin.CommitDeadlineUnixNano, Size: commit.Size, Shards: commit.Shards, Etag: "e1"})
	if err != nil || part.Part.Part.Etag != "e1" {
		t.Fatalf("commit part: %v, %v", part, err)
	}
	// The part's shards are referenced: garbage collection keeps them.
	var refs []*pb.ShardRef
	for _, s := range commit.Shards {
		refs = append(refs, &pb.ShardRef{ShardId: s.ShardId})
	}
	kept, err := cl.CheckShards(t.Context(), &pb.CheckShardsRequest{NodeId: commit.Shards[0].NodeId, Shards: refs})
	if err != nil || len(kept.Collectable) != len(refs)-1 {
		t.Fatalf("check shards of a recorded part: %d collectable of %d (one is on the node), %v", len(kept.GetCollectable()), len(refs), err)
	}
	await.True(t, 15*time.Second, "the upload to expire", func() bool {
		_, err := cl.ListParts(t.Context(), &pb.ListPartsRequest{Bucket: "bk1", Key: "clip", UploadId: u.UploadId})
		return err != nil
	})
	_, err = cl.ListParts(t.Context(), &pb.ListPartsRequest{Bucket: "bk1", Key: "clip", UploadId: u.UploadId})
	wantCode(t, err, codes.NotFound)
	st := clusterStatus(t, cl)
	if st.PendingDeletes != uint64(len(commit.Shards)) {
		t.Fatalf("%d deletes pending after the expiry; want the part's %d shards", st.PendingDeletes, len(commit.Shards))
	}
	if _, err := cl.DeleteBucket(t.Context(), &pb.DeleteBucketRequest{Name: "bk1"}); err != nil {
		t.Fatalf("delete the bucket once its upload is gone: %v", err)
	}
}

// TestUploadPartsRepairedAndMoved: the parts of an upload in progress are
// kept as a clip's are: a shard reported corrupt is rebuilt, a draining
// node's shard moves off it, each as a task naming the upload (its part by
// number, generation 0); the update that lands it changes the part, which
// the completed clip then has; a stale update is refused.
func TestUploadPartsRepairedAndMoved(t *testing.T) {
	c := metatest.New(t, 1, metatest.Options{Configure: func(cfg *meta.Config) { cfg.AutoRebalance = false }})
	cl := c.Members[0].Client
	ctx := t.Context()
	if _, err := cl.CreateBucket(ctx, &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	h := heartbeatingNodes(t, cl, 8)
	up, err := cl.CreateUpload(ctx, &pb.CreateUploadRequest{Bucket: "bk1", Key: "clip"})
	if err != nil {
		t.Fatal(err)
	}
	u := up.Upload
	begin, err := cl.BeginPart(ctx, &pb.BeginPartRequest{Bucket: "bk1", Key: "clip", UploadId: u.UploadId, Number: 3})
	if err != nil {
		t.Fatal(err)
	}
	commit := commitFor(begin, "bk1", "clip", 100_000, nil)
	if _, err := cl.CommitPart(ctx, &pb.CommitPartRequest{Bucket: "bk1", Key: "clip", UploadId: u.UploadId, Number: 3,
		CommitDeadlineUnixNano: begin.CommitDeadlineUnixNano, Size: commit.Size, Shards: commit.Shards}); err != nil {
		t.Fatal(err)
	}
	taskFor := func(index uint32) (*pb.RepairWork, string) {
		var work *pb.RepairWork
		var target string
		await.True(t, 10*time.Second, fmt.Sprintf("a task for shard %d of the part", index), func() bool {
			for node, ws := range h.repairWork() {
				for _, w := range ws {
					if w.Index == index && bytes.Equal(w.UploadId, u.UploadId) {
						work, target = w, node
						return true
					}
				}
			}
			return false
		})
		if work.Part != 3 || work.Generation != 0 || !bytes.Equal(work.ClipId, u.ClipId) ||
			!bytes.Equal(work.OldShardId, commit.Shards[index].ShardId) {
			t.Fatalf("task %+v: want part 3, generation 0, the upload's clip id and the old shard", work)
		}
		return work, target
	}
	land := func(w *pb.RepairWork, target string) *pb.Shard {
		ns := &pb.Shard{Index: w.Index, NodeId: target, ShardId: w.NewShardId, Length: commit.Shards[w.Index].Length,
			Checksum: commit.Shards[w.Index].Checksum, State: pb.ShardState_SHARD_STATE_OK}
		if _, err := cl.UpdateShard(ctx, &pb.UpdateShardRequest{ClipId: w.ClipId, Part: w.Part, Index: w.Index,
			OldShardId: w.OldShardId, UploadId: w.UploadId, CommitDeadlineUnixNano: w.CommitDeadlineUnixNano, NewShard: ns}); err != nil {
			t.Fatalf("land the task: %v", err)
		}
		return ns
	}

	// A shard scrub found corrupt is rebuilt elsewhere from the others.
	bad := commit.Shards[1]
	report(t, cl, &pb.HeartbeatRequest{NodeId: bad.NodeId, Free: 50 << 30, CorruptShardIds: [][]byte{bad.ShardId}})
	w, target := taskFor(1)
	if w.CopyFrom != nil || len(w.Sources) < 4 {
		t.Fatalf("a rebuild of a corrupt shard: copy from %v, %d sources", w.CopyFrom, len(w.Sources))
	}
	rebuilt := land(w, target)

	// A draining node's shard moves: copied, the others the fallback.
	drained := commit.Shards[0].NodeId
	if _, err := setAdmin(t, cl, &pb.SetNodeAdminStateRequest{NodeId: drained, State: pb.AdminState_ADMIN_STATE_DRAINING}); err != nil {
		t.Fatal(err)
	}
	w, target = taskFor(0)
	if w.CopyFrom.GetNodeId() != drained {
		t.Fatalf("a drain's move copies from %q, want the drained node %s", w.CopyFrom.GetNodeId(), drained)
	}
	moved := land(w, target)
	// The same update again names a shard the part no longer has.
	_, err = cl.UpdateShard(ctx, &pb.UpdateShardRequest{ClipId: w.ClipId, Part: w.Part, Index: w.Index, OldShardId: w.OldShardId,
		UploadId: w.UploadId, NewShard: &pb.Shard{Index: 0, NodeId: target, ShardId: bytes.Repeat([]byte{4}, 16),
			Length: moved.Length, State: pb.ShardState_SHARD_STATE_OK}})
	wantCode(t, err, codes.FailedPrecondition)
	await.TrueWhy(t, 10*time.Second, "the drained node to hold nothing", func() (bool, string) {
		n := nodeByID(t, cl, drained)
		return n.ShardsToMove == 0 && n.DrainBlocked == "", fmt.Sprintf("%d to move, %q", n.ShardsToMove, n.DrainBlocked)
	})
	if st := clusterStatus(t, cl); st.DegradedClips != 0 {
		t.Fatalf("%d degraded clips after the part was repaired", st.DegradedClips)
	}

	resp, err := cl.CompleteUpload(ctx, &pb.CompleteUploadRequest{Bucket: "bk1", Key: "clip", UploadId: u.UploadId,
		Parts: []*pb.CompletedPart{{Number: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	shards := resp.Clip.Parts[0].Shards
	for _, want := range []*pb.Shard{rebuilt, moved} {
		got := shards[want.Index]
		if !bytes.Equal(got.ShardId, want.ShardId) || got.NodeId != want.NodeId || got.State != pb.ShardState_SHARD_STATE_OK {
			t.Errorf("the clip's shard %d: %v, want the one landed %v", want.Index, got, want)
		}
	}
}

// TestUploadAndRequestLimits: a key may have at most MaxUploadsPerKey
// uploads in progress (refused with the limit named, and allowed again
// once one is aborted), and a request above MaxRequestBytes is refused
// whole.
func TestUploadAndRequestLimits(t *testing.T) {
	c := metatest.New(t, 1, metatest.Options{Configure: func(cfg *meta.Config) {
		cfg.MaxUploadsPerKey, cfg.MaxRequestBytes = 2, 64<<10
	}})
	cl := c.Members[0].Client
	ctx := t.Context()
	if _, err := cl.CreateBucket(ctx, &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	var ids [][]byte
	for range 2 {
		up, err := cl.CreateUpload(ctx, &pb.CreateUploadRequest{Bucket: "bk1", Key: "clip"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, up.Upload.UploadId)
	}
	_, err := cl.CreateUpload(ctx, &pb.CreateUploadRequest{Bucket: "bk1", Key: "clip"})
	wantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(err.Error(), "2 multipart uploads in progress") {
		t.Errorf("the refusal does not name the limit: %v", err)
	}
	if _, err := cl.CreateUpload(ctx, &pb.CreateUploadRequest{Bucket: "bk1", Key: "other"}); err != nil {
		t.Fatalf("another key's upload: %v", err)
	}
	if _, err := cl.AbortUpload(ctx, &pb.AbortUploadRequest{Bucket: "bk1", Key: "clip", UploadId: ids[0]}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CreateUpload(ctx, &pb.CreateUploadRequest{Bucket: "bk1", Key: "clip"}); err != nil {
		t.Fatalf("an upload once one was aborted: %v", err)
	}
	_, err = cl.CreateBucket(ctx, &pb.CreateBucketRequest{Name: "bk2", RequestId: bytes.Repeat([]byte{1}, 100<<10)})
	wantCode(t, err, codes.ResourceExhausted)
	if _, err := cl.ListBuckets(ctx, &pb.ListBucketsRequest{}); err != nil {
		t.Fatalf("the member after a request too large: %v", err)
	}
}
