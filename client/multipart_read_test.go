package client_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/meta"
	metapb "github.com/clipstore/clipstore/proto/metapb"
)

// mpSizes are the part sizes of the multipart clips below: unequal, a
// tiny one between larger ones, none a multiple of the block size but the
// first.
var mpSizes = []int{300 << 10, 1<<20 + 7, 17, 200<<10 + 3}

// putMultipart stores a clip of parts of the given sizes with a multipart
// upload and returns its bytes and record.
func putMultipart(t *testing.T, tc *testCluster, bucket, key string, seed uint64, sizes ...int) ([]byte, *client.ClipInfo) {
	t.Helper()
	ctx := t.Context()
	up, err := tc.client.CreateUpload(ctx, bucket, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	var done []client.CompletedPart
	for i, n := range sizes {
		part := randBytes(seed+uint64(i), n)
		p, err := tc.client.PutPart(ctx, bucket, key, up.UploadID, i+1, bytes.NewReader(part), nil)
		if err != nil {
			t.Fatalf("put part %d: %v", i+1, err)
		}
		data = append(data, part...)
		done = append(done, client.CompletedPart{Number: p.Number, ETag: p.ETag})
	}
	info, err := tc.client.CompleteUpload(ctx, bucket, key, up.UploadID, done, nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(data)) || len(info.Parts) != len(sizes) {
		t.Fatalf("completed clip: size %d, %d parts", info.Size, len(info.Parts))
	}
	return data, info
}

// clipRecord returns the record meta holds for bucket/key, with every
// part's shards.
func clipRecord(t *testing.T, tc *testCluster, bucket, key string) *metapb.GetClipResponse {
	t.Helper()
	resp, err := tc.meta.Members[0].Client.GetClip(t.Context(), &metapb.GetClipRequest{Bucket: bucket, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

type span struct{ off, n int64 }

// boundarySpans are byte ranges of a clip of parts of the given sizes:
// across every part boundary (a byte either side, a few blocks either
// side, one that covers a tiny part whole), at the edges of each part, and
// inside one part.
func boundarySpans(sizes []int) []span {
	var total int64
	for _, n := range sizes {
		total += int64(n)
	}
	clamp := func(off, n int64) span {
		off = max(off, 0)
		return span{off, min(n, total-off)}
	}
	spans := []span{{0, total}, {total - 1, 1}, {0, 1}, clamp(1000, 5000)}
	var off int64
	for i, n := range sizes[:len(sizes)-1] {
		off += int64(n)
		next := int64(sizes[i+1])
		spans = append(spans, clamp(off-1, 2), clamp(off-1, 1), clamp(off, 1),
			clamp(off-2*testBlock-5, 4*testBlock+10), // blocks of both parts
			clamp(off-3, next+6),                     // all of the next part
			clamp(off+next/3, max(next/3, 1)))        // inside the next part
	}
	return spans
}

// readSpans checks ReadAt (concurrently) and then Read after Seek over
// every span.
func readSpans(t *testing.T, r *client.Reader, data []byte, spans []span) {
	t.Helper()
	var wg sync.WaitGroup
	for _, s := range spans {
		wg.Go(func() { // ReadAt is safe for concurrent use
			buf := make([]byte, s.n)
			if n, err := r.ReadAt(buf, s.off); err != nil || int64(n) != s.n || !bytes.Equal(buf, data[s.off:s.off+s.n]) {
				t.Errorf("ReadAt(%d, %d) = %d, %v; bytes equal: %v", s.off, s.n, n, err, bytes.Equal(buf[:n], data[s.off:s.off+int64(n)]))
			}
		})
	}
	wg.Wait()
	for _, s := range spans {
		if pos, err := r.Seek(s.off, io.SeekStart); err != nil || pos != s.off {
			t.Fatalf("Seek(%d): %d, %v", s.off, pos, err)
		}
		got := make([]byte, s.n)
		if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, data[s.off:s.off+s.n]) {
			t.Fatalf("Read %d at %d: %v", s.n, s.off, err)
		}
	}
}

// TestMultipartRead reads a clip of four unequal parts every way: Get,
// ReadAt across each part boundary and within parts, sequential small
// Reads through all parts, Seek; and a record of parts of different
// profiles and block sizes.
func TestMultipartRead(t *testing.T) {
	t.Parallel()
	tc := newCluster(t, 6, client.Config{})
	p := client.Profile{DataShards: 4, ParityShards: 2, BlockSize: testBlock}
	tc.mkBucket("mpr", &p)
	data, info := putMultipart(t, tc, "mpr", "clip", 31, mpSizes...)
	if info.CRC32C != 0 {
		t.Fatalf("a multipart clip's record has content CRC %08x", info.CRC32C)
	}

	var progress int64
	var buf bytes.Buffer
	got, err := tc.client.Get(t.Context(), "mpr", "clip", &buf, &client.GetOptions{Progress: func(n int64) { progress = n }})
	if err != nil || !bytes.Equal(buf.Bytes(), data) || progress != int64(len(data)) || len(got.Parts) != len(mpSizes) {
		t.Fatalf("get: %d bytes (equal %v), progress %d, %v", buf.Len(), bytes.Equal(buf.Bytes(), data), progress, err)
	}

	r, err := tc.client.Open(t.Context(), "mpr", "clip")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Size() != int64(len(data)) {
		t.Fatalf("size %d, want %d", r.Size(), len(data))
	}
	all, err := io.ReadAll(iotestSmallReads{r})
	if err != nil || !bytes.Equal(all, data) {
		t.Fatalf("sequential small reads: %d bytes, %v", len(all), err)
	}
	readSpans(t, r, data, boundarySpans(mpSizes))
	end := make([]byte, 100)
	if n, err := r.ReadAt(end, int64(len(data)-40)); n != 40 || err != io.EOF || !bytes.Equal(end[:40], data[len(data)-40:]) {
		t.Fatalf("ReadAt across the end = %d, %v", n, err)
	}

	t.Run("profiles", func(t *testing.T) { testMixedProfiles(t, tc) })
}

// testMixedProfiles reads a record of parts written with different
// profiles and block sizes. No client call writes one (an upload's parts
// share its profile), so the record is made of the parts of two clips.
func testMixedProfiles(t *testing.T, tc *testCluster) {
	narrow := client.Profile{DataShards: 2, ParityShards: 1, BlockSize: 48 << 10}
	tc.mkBucket("narrow", &narrow)
	a := randBytes(41, 3*testBlock+333)
	b := randBytes(43, 5*(48<<10)+1)
	if _, err := tc.client.Put(t.Context(), "mpr", "a", bytes.NewReader(a), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.client.Put(t.Context(), "narrow", "b", bytes.NewReader(b), nil); err != nil {
		t.Fatal(err)
	}
	ra, rb := clipRecord(t, tc, "mpr", "a"), clipRecord(t, tc, "narrow", "b")
	rec := ra.Clip
	rec.Size, rec.ContentCrc32C = 0, 0
	var data []byte
	parts := []*metapb.Part{ra.Clip.Parts[0], rb.Clip.Parts[0], ra.Clip.Parts[0]}
	rec.Parts = nil
	for i, p := range parts {
		p := &metapb.Part{Profile: p.Profile, Offset: rec.Size, Length: p.Length, ContentCrc32C: p.ContentCrc32C, Shards: p.Shards, Number: uint32(i + 1)}
		rec.Parts = append(rec.Parts, p)
		rec.Size += p.Length
		data = append(data, [][]byte{a, b, a}[i]...)
	}
	resp := &metapb.GetClipResponse{Clip: rec, Nodes: append(ra.Nodes, rb.Nodes...)}

	var buf bytes.Buffer
	if err := client.GetRecord(t.Context(), tc.client, resp, &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("get: %d bytes, %v", buf.Len(), err)
	}
	r, err := client.OpenRecord(t.Context(), tc.client, resp)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	all, err := io.ReadAll(iotestSmallReads{r})
	if err != nil || !bytes.Equal(all, data) {
		t.Fatalf("sequential small reads: %d bytes, %v", len(all), err)
	}
	readSpans(t, r, data, boundarySpans([]int{len(a), len(b), len(a)}))

	// A part whose bytes are not what its record says fails the part's check.
	rec.Parts[1].ContentCrc32C ^= 1
	err = client.GetRecord(t.Context(), tc.client, resp, io.Discard)
	mustErr(t, err, client.ErrUnrecoverable)
	if want := "part 1: content checksum"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name the part", err)
	}
}

// TestMultipartDegraded reads a multipart clip with a data shard's node
// down and a corrupt piece in a later part: the bytes are right, and the
// corrupt shard is reported with its part's index, the other parts' shard
// of the same index left OK.
func TestMultipartDegraded(t *testing.T) {
	t.Parallel()
	tc := newCluster(t, 6, client.Config{RequestTimeout: 5 * time.Second})
	p := client.Profile{DataShards: 4, ParityShards: 2, BlockSize: testBlock}
	tc.mkBucket("mpd", &p)
	data, _ := putMultipart(t, tc, "mpd", "clip", 51, mpSizes...)
	rec := clipRecord(t, tc, "mpd", "clip").Clip
	down := rec.Parts[1].Shards[0].NodeId // a data shard of part 1 (and some shard of every part)
	const bad = 3                         // the last part: 200 KiB+3, four blocks
	idx := 1
	for rec.Parts[bad].Shards[idx].NodeId == down {
		idx++
	}
	sh := rec.Parts[bad].Shards[idx]
	unit := int64(testBlock/4 + 4*6 + 4)                            // piece + trailer
	tc.flipByte(sh.NodeId, fmt.Sprintf("%x", sh.ShardId), unit+100) // block 1's piece
	tc.stopNode(down)

	got, _, err := getBytes(t, tc.client, "mpd", "clip")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("degraded get: %d bytes, %v", len(got), err)
	}
	rec = clipRecord(t, tc, "mpd", "clip").Clip
	for pi, part := range rec.Parts {
		for i, s := range part.Shards {
			want := metapb.ShardState_SHARD_STATE_OK
			if pi == bad && i == idx {
				want = metapb.ShardState_SHARD_STATE_CORRUPT
			}
			if s.State != want {
				t.Errorf("part %d shard %d is %v, want %v", pi, i, s.State, want)
			}
		}
	}

	r, err := tc.client.Open(t.Context(), "mpd", "clip")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	readSpans(t, r, data, boundarySpans(mpSizes))
}

// TestMultipartClipChanged: a multipart clip overwritten under an open
// Reader fails its reads in any part with ErrClipChanged, and a Reader
// whose shard moved (a drain) reads it at its new place, in every part.
func TestMultipartClipChanged(t *testing.T) {
	t.Parallel()
	tc := newClusterWith(t, 7, client.Config{}, func(c *meta.Config) { c.MoveDeleteDelay = 0 })
	p := client.Profile{DataShards: 4, ParityShards: 2, BlockSize: testBlock}
	tc.mkBucket("mpc", &p)
	sizes := []int{2*testBlock + 1, 3 * testBlock, 17}
	data, _ := putMultipart(t, tc, "mpc", "moving", 61, sizes...)
	old, _ := putMultipart(t, tc, "mpc", "over", 71, sizes...)
	moving, err := tc.client.Open(t.Context(), "mpc", "moving")
	if err != nil {
		t.Fatal(err)
	}
	defer moving.Close()
	over, err := tc.client.Open(t.Context(), "mpc", "over")
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	buf := make([]byte, 1000)
	for _, c := range []struct {
		r    *client.Reader
		want []byte
	}{{moving, data}, {over, old}} {
		if _, err := io.ReadFull(c.r, buf); err != nil || !bytes.Equal(buf, c.want[:len(buf)]) {
			t.Fatalf("first read: %v", err)
		}
	}

	// Move every shard off one node, overwrite the other clip, and wait
	// until the old shards are gone.
	rec := clipRecord(t, tc, "mpc", "moving").Clip
	from := rec.Parts[1].Shards[0].NodeId
	if _, err := tc.client.Drain(t.Context(), from); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.client.Put(t.Context(), "mpc", "over", bytes.NewReader(randBytes(73, 5000)), nil); err != nil {
		t.Fatal(err)
	}
	await.True(t, 20*time.Second, "the shards moved off "+from+" and the old shards deleted", func() bool {
		resp, err := tc.meta.Members[0].Client.GetClip(t.Context(), &metapb.GetClipRequest{Bucket: "mpc", Key: "moving"})
		if err != nil || resp.Clip.Generation != rec.Generation {
			return false
		}
		for _, part := range resp.Clip.Parts {
			for _, s := range part.Shards {
				if s.NodeId == from {
					return false
				}
			}
		}
		cs, err := tc.client.ClusterStatus(t.Context())
		return err == nil && cs.PendingDeletes == 0
	})

	readSpans(t, moving, data, boundarySpans(sizes))
	now := clipRecord(t, tc, "mpc", "moving").Clip
	for pi, part := range now.Parts {
		for i, s := range part.Shards {
			if s.State != metapb.ShardState_SHARD_STATE_OK {
				t.Errorf("part %d shard %d is %v after the reads: the move was reported as a loss", pi, i, s.State)
			}
			if i < p.DataShards && rec.Parts[pi].Shards[i].NodeId == from { // the data shards are read
				if got := client.ReaderPartShardNode(moving, pi, i); got != s.NodeId {
					t.Errorf("the reader reads part %d shard %d from %s; it moved from %s to %s", pi, i, got, from, s.NodeId)
				}
			}
		}
	}

	for _, s := range []span{{int64(sizes[0]) + 10, 100}, {int64(sizes[0]+sizes[1]) - 5, 10}, {int64(sizes[0] + sizes[1]), 17}} {
		if _, err := over.ReadAt(make([]byte, s.n), s.off); !errors.Is(err, client.ErrClipChanged) {
			t.Fatalf("ReadAt(%d, %d) after the overwrite: %v", s.off, s.n, err)
		}
	}
	if _, err := over.Seek(int64(sizes[0])+5, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := over.Read(buf); !errors.Is(err, client.ErrClipChanged) {
		t.Fatalf("Read after the overwrite: %v", err)
	}
}
