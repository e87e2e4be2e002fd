package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/meta"
)

// TestMultipartUpload: parts are stored and recorded as they come (a number
// uploaded again replaces the earlier part); completing with some of them
// makes one clip of those, in order, and deletes the others; refused
// completions change nothing; an aborted upload is gone with its parts.
func TestMultipartUpload(t *testing.T) {
	tc := newCluster(t, 6, client.Config{})
	tc.mkBucket("mpu", &client.Profile{DataShards: 4, ParityShards: 2, BlockSize: testBlock})
	ctx := t.Context()
	up, err := tc.client.CreateUpload(ctx, "mpu", "clip", &client.PutOptions{ContentType: "video/mp4", Metadata: map[string]string{"rig": "r1"}})
	if err != nil || len(up.UploadID) != 32 || up.Expires.Before(time.Now().Add(time.Hour)) {
		t.Fatalf("create upload: %+v, %v", up, err)
	}
	sizes := map[int]int{1: 3*testBlock + 11, 2: 2 * testBlock, 3: 17}
	data := map[int][]byte{}
	put := func(n int, seed uint64) *client.PartInfo {
		t.Helper()
		data[n] = randBytes(seed, sizes[n])
		p, err := tc.client.PutPart(ctx, "mpu", "clip", up.UploadID, n, bytes.NewReader(data[n]), &client.PartOptions{
			Finish: func() (*client.PutFinish, error) {
				return &client.PutFinish{ETag: fmt.Sprintf("etag-%d-%d", n, seed)}, nil
			}})
		if err != nil || p.Number != n || p.Size != int64(sizes[n]) || p.ETag != fmt.Sprintf("etag-%d-%d", n, seed) {
			t.Fatalf("put part %d: %+v, %v", n, p, err)
		}
		return p
	}
	put(1, 1)
	put(2, 2)
	put(3, 3)
	put(2, 22) // replaces part 2
	info, parts, truncated, err := tc.client.ListParts(ctx, "mpu", "clip", up.UploadID, 0, 2)
	if err != nil || info.UploadID != up.UploadID || len(parts) != 2 || !truncated || parts[1].ETag != "etag-2-22" {
		t.Fatalf("list parts: %+v %+v %v %v", info, parts, truncated, err)
	}
	if _, parts, truncated, err = tc.client.ListParts(ctx, "mpu", "clip", up.UploadID, 2, 2); err != nil || len(parts) != 1 || parts[0].Number != 3 || truncated {
		t.Fatalf("list parts after 2: %+v %v %v", parts, truncated, err)
	}
	ups, _, err := tc.client.ListUploads(ctx, "mpu", "cl", "", "", 0)
	if err != nil || len(ups) != 1 || ups[0].UploadID != up.UploadID || ups[0].ContentType != "video/mp4" {
		t.Fatalf("list uploads: %+v, %v", ups, err)
	}
	mustErr(t, tc.client.DeleteBucket(ctx, "mpu"), client.ErrPrecondition) // an upload is open

	for _, bad := range []struct {
		parts []client.CompletedPart
		want  error
	}{
		{[]client.CompletedPart{{Number: 3}, {Number: 1}}, client.ErrInvalidArgument},                // not ascending
		{[]client.CompletedPart{{Number: 1}, {Number: 4}}, client.ErrPrecondition},                   // never uploaded
		{[]client.CompletedPart{{Number: 1}, {Number: 2, ETag: "etag-2-2"}}, client.ErrPrecondition}, // the replaced part's ETag
	} {
		_, err := tc.client.CompleteUpload(ctx, "mpu", "clip", up.UploadID, bad.parts, nil)
		mustErr(t, err, bad.want)
	}
	if _, err := tc.client.Stat(ctx, "mpu", "clip"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("stat after refused completions: %v", err)
	}

	clip, err := tc.client.CompleteUpload(ctx, "mpu", "clip", up.UploadID,
		[]client.CompletedPart{{Number: 1, ETag: `"etag-1-1"`}, {Number: 3}}, &client.CompleteOptions{ETag: "whole-2"})
	if err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Clone(data[1]), data[3]...)
	if clip.Size != int64(len(want)) || len(clip.Parts) != 2 || clip.Parts[0].Number != 1 || clip.Parts[1].Number != 3 ||
		clip.Parts[1].Offset != int64(sizes[1]) || clip.ETag != "whole-2" || clip.ContentType != "video/mp4" ||
		clip.Metadata["rig"] != "r1" || clip.ClipID != up.ClipID {
		t.Fatalf("completed clip: %+v", clip)
	}
	if _, _, _, err := tc.client.ListParts(ctx, "mpu", "clip", up.UploadID, 0, 0); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("list parts of a completed upload: %v", err)
	}
	// A Complete sent again (a client that missed the answer) answers with
	// the clip the upload became, as S3 does.
	again, err := tc.client.CompleteUpload(ctx, "mpu", "clip", up.UploadID, []client.CompletedPart{{Number: 1}, {Number: 3}}, nil)
	if err != nil || again.Generation != clip.Generation || again.ClipID != clip.ClipID {
		t.Fatalf("complete again: %+v, %v; want generation %d", again, err, clip.Generation)
	}
	mustErr(t, tc.client.AbortUpload(ctx, "mpu", "clip", up.UploadID), client.ErrNotFound)
	// Part 2 (both of its uploads) is deleted; parts 1 and 3 are the clip's.
	await.True(t, 15*time.Second, "the unchosen and replaced parts deleted", func() bool {
		st, err := tc.client.ClusterStatus(context.Background())
		return err == nil && st.PendingDeletes == 0
	})
	rep, err := tc.client.Fsck(ctx, &client.FsckOptions{})
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("fsck after the completion: %+v, %v", rep, err)
	}

	// Once the key holds another clip, the completed upload is gone.
	if _, err := tc.client.Put(ctx, "mpu", "clip", bytes.NewReader([]byte("newer")), nil); err != nil {
		t.Fatal(err)
	}
	_, err = tc.client.CompleteUpload(ctx, "mpu", "clip", up.UploadID, []client.CompletedPart{{Number: 1}, {Number: 3}}, nil)
	mustErr(t, err, client.ErrNotFound)

	// An aborted upload leaves nothing.
	up2, err := tc.client.CreateUpload(ctx, "mpu", "other", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tc.client.PutPart(ctx, "mpu", "other", up2.UploadID, 1, bytes.NewReader(randBytes(5, 1000)), nil); err != nil {
		t.Fatal(err)
	}
	if err := tc.client.AbortUpload(ctx, "mpu", "other", up2.UploadID); err != nil {
		t.Fatal(err)
	}
	mustErr(t, tc.client.AbortUpload(ctx, "mpu", "other", up2.UploadID), client.ErrNotFound)
	_, err = tc.client.PutPart(ctx, "mpu", "other", up2.UploadID, 2, bytes.NewReader([]byte("late")), nil)
	mustErr(t, err, client.ErrNotFound)
	if ups, _, err := tc.client.ListUploads(ctx, "mpu", "", "", "", 0); err != nil || len(ups) != 0 {
		t.Fatalf("uploads after the abort: %+v, %v", ups, err)
	}
}

// TestFsckKeepsUploadParts: the shards of an upload's recorded parts are
// referenced by no record until it completes, yet they are no orphans,
// even past their commit deadline.
func TestFsckKeepsUploadParts(t *testing.T) {
	tc := newClusterWith(t, 6, client.Config{}, func(c *meta.Config) { c.MaxUploadDuration = time.Second })
	tc.mkBucket("fsk", &client.Profile{DataShards: 4, ParityShards: 2, BlockSize: testBlock})
	ctx := t.Context()
	up, err := tc.client.CreateUpload(ctx, "fsk", "clip", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tc.client.PutPart(ctx, "fsk", "clip", up.UploadID, 1, bytes.NewReader(randBytes(9, 2*testBlock)), nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // past the part shards' commit deadline
	rep, err := tc.client.Fsck(ctx, &client.FsckOptions{})
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("fsck with an upload in progress: %+v, %v", rep, err)
	}
}
