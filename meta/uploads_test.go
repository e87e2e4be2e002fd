package meta_test

import (
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

// TestDrainWaitsForUploads: a draining node that holds only parts of an
// upload in progress says so; once the upload completes, its shards move.
func TestDrainWaitsForUploads(t *testing.T) {
	c := metatest.New(t, 1, metatest.Options{Configure: func(cfg *meta.Config) { cfg.AutoRebalance = false }})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	h := heartbeatingNodes(t, cl, 7)
	up, err := cl.CreateUpload(t.Context(), &pb.CreateUploadRequest{Bucket: "bk1", Key: "clip"})
	if err != nil {
		t.Fatal(err)
	}
	u := up.Upload
	begin, err := cl.BeginPart(t.Context(), &pb.BeginPartRequest{Bucket: "bk1", Key: "clip", UploadId: u.UploadId, Number: 1})
	if err != nil {
		t.Fatal(err)
	}
	commit := commitFor(begin, "bk1", "clip", 100_000, nil)
	if _, err := cl.CommitPart(t.Context(), &pb.CommitPartRequest{Bucket: "bk1", Key: "clip", UploadId: u.UploadId, Number: 1,
		CommitDeadlineUnixNano: begin.CommitDeadlineUnixNano, Size: commit.Size, Shards: commit.Shards}); err != nil {
		t.Fatal(err)
	}
	drained := commit.Shards[0].NodeId
	if _, err := setAdmin(t, cl, &pb.SetNodeAdminStateRequest{NodeId: drained, State: pb.AdminState_ADMIN_STATE_DRAINING}); err != nil {
		t.Fatal(err)
	}
	await.TrueWhy(t, 10*time.Second, "the drain to say it waits for the upload", func() (bool, string) {
		n := nodeByID(t, cl, drained)
		return strings.Contains(n.DrainBlocked, "1 shards belong to multipart uploads in progress"), n.DrainBlocked
	})
	if _, err := cl.CompleteUpload(t.Context(), &pb.CompleteUploadRequest{Bucket: "bk1", Key: "clip", UploadId: u.UploadId,
		Parts: []*pb.CompletedPart{{Number: 1}}}); err != nil {
		t.Fatal(err)
	}
	await.TrueWhy(t, 10*time.Second, "a move off the drained node once the upload completed", func() (bool, string) {
		for _, ws := range h.repairWork() {
			for _, w := range ws {
				if w.CopyFrom.GetNodeId() == drained {
					return nodeByID(t, cl, drained).DrainBlocked == "", "reason still set"
				}
			}
		}
		return false, "no move planned"
	})
}
