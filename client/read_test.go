package client_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/meta"
)

func TestReaderRanges(t *testing.T) {
	tc := newCluster(t, 6, client.Config{})
	p := client.Profile{DataShards: 4, ParityShards: 2, BlockSize: testBlock}
	tc.mkBucket("ranges", &p)
	data := randBytes(3, 20*testBlock+4321)
	if _, err := tc.client.Put(t.Context(), "ranges", "clip", bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	r, err := tc.client.Open(t.Context(), "ranges", "clip")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	size := int64(len(data))
	if r.Info().Size != size {
		t.Fatalf("info size %d", r.Info().Size)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	type span struct{ off, n int64 }
	spans := []span{{0, 1}, {testBlock - 1, 2}, {testBlock - 10, 3 * testBlock}, {size - 1, 1}, {size - 100, 100},
		{0, size}, {testBlock * 5, testBlock}, {123, 0}}
	for range 20 {
		off := rng.Int64N(size)
		spans = append(spans, span{off, rng.Int64N(min(size-off, 3*testBlock) + 1)})
	}
	var wg sync.WaitGroup
	for _, s := range spans {
		wg.Go(func() { // ReadAt is safe for concurrent use
			buf := make([]byte, s.n)
			n, err := r.ReadAt(buf, s.off)
			if err != nil || int64(n) != s.n || !bytes.Equal(buf, data[s.off:s.off+s.n]) {
				t.Errorf("ReadAt(%d, %d) = %d, %v; bytes equal: %v", s.off, s.n, n, err, bytes.Equal(buf[:n], data[s.off:s.off+int64(n)]))
			}
		})
	}
	wg.Wait()

	// Past the end: io.EOF as os.File answers.
	buf := make([]byte, 200)
	if n, err := r.ReadAt(buf, size-50); n != 50 || err != io.EOF || !bytes.Equal(buf[:50], data[size-50:]) {
		t.Fatalf("ReadAt across the end = %d, %v", n, err)
	}
	if n, err := r.ReadAt(buf, size); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt at the end = %d, %v", n, err)
	}
	if n, err := r.ReadAt(buf, size+10); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt past the end = %d, %v", n, err)
	}
	if _, err := r.ReadAt(buf, -1); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("ReadAt(-1): %v", err)
	}

	// Sequential small reads, then seeks.
	all, err := io.ReadAll(iotestSmallReads{r})
	if err != nil || !bytes.Equal(all, data) {
		t.Fatalf("ReadAll: %d bytes, %v", len(all), err)
	}
	for _, s := range spans {
		if pos, err := r.Seek(s.off, io.SeekStart); err != nil || pos != s.off {
			t.Fatalf("Seek(%d): %d, %v", s.off, pos, err)
		}
		got := make([]byte, s.n)
		if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, data[s.off:s.off+s.n]) {
			t.Fatalf("Read %d at %d: %v", s.n, s.off, err)
		}
	}
	if pos, err := r.Seek(-10, io.SeekEnd); err != nil || pos != size-10 {
		t.Fatalf("Seek from end: %d, %v", pos, err)
	}
	rest, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(rest, data[size-10:]) {
		t.Fatalf("tail: %q, %v", rest, err)
	}
	if n, err := r.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read at the end = %d, %v", n, err)
	}
	if _, err := r.Seek(-1, io.SeekStart); err == nil {
		t.Fatal("seek to -1 succeeded")
	}
}

// iotestSmallReads reads in 1000-byte steps, as a parser might.
type iotestSmallReads struct{ r io.Reader }

func (s iotestSmallReads) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), 1000)]) }

// TestDegraded stops m storage nodes after a put: reads return identical
// bytes. One more node down and the clip is unrecoverable, never wrong.
func TestDegraded(t *testing.T) {
	tc := newCluster(t, 6, client.Config{RequestTimeout: 5 * time.Second})
	p := client.Profile{DataShards: 4, ParityShards: 2, BlockSize: testBlock}
	tc.mkBucket("degraded", &p)
	data := randBytes(11, 9*testBlock+99)
	info, err := tc.client.Put(t.Context(), "degraded", "clip", bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Lose two data shards: the read must rebuild from parity.
	tc.stopNode(info.Shards[0].Node)
	tc.stopNode(info.Shards[2].Node)
	got, _, err := getBytes(t, tc.client, "degraded", "clip")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("degraded get: %d bytes, %v", len(got), err)
	}
	r, err := tc.client.Open(t.Context(), "degraded", "clip")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2*testBlock)
	if _, err := r.ReadAt(buf, testBlock/2); err != nil || !bytes.Equal(buf, data[testBlock/2:testBlock/2+len(buf)]) {
		t.Fatalf("degraded ReadAt: %v", err)
	}
	r.Close()
	tc.stopNode(info.Shards[5].Node)
	_, _, err = getBytes(t, tc.client, "degraded", "clip")
	mustErr(t, err, client.ErrUnrecoverable)
	r, err = tc.client.Open(t.Context(), "degraded", "clip")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.ReadAt(buf[:10], 0); !errors.Is(err, client.ErrUnrecoverable) {
		t.Fatalf("ReadAt with m+1 shards lost: %v", err)
	}
}

// TestCorruptShard flips a byte of a data piece on disk: reads return
// identical bytes and meta learns that the shard is corrupt.
func TestCorruptShard(t *testing.T) {
	tc := newCluster(t, 6, client.Config{})
	p := client.Profile{DataShards: 4, ParityShards: 2, BlockSize: testBlock}
	tc.mkBucket("corrupt", &p)
	data := randBytes(13, 6*testBlock)
	info, err := tc.client.Put(t.Context(), "corrupt", "clip", bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := info.Shards[1]
	unit := int64(testBlock/4 + 4*6 + 4)  // piece + trailer
	tc.flipByte(s.Node, s.ID, 2*unit+100) // block 2's piece
	got, _, err := getBytes(t, tc.client, "corrupt", "clip")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get with a corrupt piece: %d bytes, %v", len(got), err)
	}
	st, err := tc.client.Stat(t.Context(), "corrupt", "clip")
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range st.Shards {
		want := client.ShardOK
		if sh.Index == 1 {
			want = client.ShardCorrupt
		}
		if sh.State != want {
			t.Fatalf("shard %d is %v, want %v", sh.Index, sh.State, want)
		}
	}
	// The corrupt shard stays readable as a last resort, and reads stay right.
	r, err := tc.client.Open(t.Context(), "corrupt", "clip")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, len(data))
	if _, err := r.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, data) {
		t.Fatalf("ReadAt after the report: %v", err)
	}
}

// TestTargetDownAtPut stops a node that meta still places shards on: with
// 6 nodes and 4+2 every node is a target and there is no spare, so its
// index is recorded missing; with 2+1 a spare takes its place.
func TestTargetDownAtPut(t *testing.T) {
	tc := newCluster(t, 6, client.Config{RequestTimeout: 5 * time.Second})
	wide := client.Profile{DataShards: 4, ParityShards: 2, BlockSize: testBlock}
	narrow := client.Profile{DataShards: 2, ParityShards: 1, BlockSize: testBlock}
	tc.mkBucket("wide", &wide)
	tc.mkBucket("narrow", &narrow)
	tc.stopNode("s0")
	data := randBytes(17, 3*testBlock+5)
	info, err := tc.client.Put(t.Context(), "wide", "clip", bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	for _, s := range info.Shards {
		switch {
		case s.State == client.ShardMissing && s.Node == "":
			missing++
		case s.State != client.ShardOK || s.Node == "s0":
			t.Fatalf("shard %+v", s)
		}
	}
	if missing != 1 {
		t.Fatalf("%d shards missing, want 1: %+v", missing, info.Shards)
	}
	if got, _, err := getBytes(t, tc.client, "wide", "clip"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %v", err)
	}
	// 2+1 on 6 nodes: 3 targets and 1 spare. s0 is a target in about half
	// of the puts; each must still end with 3 OK shards on live nodes.
	for i := range 6 {
		info, err := tc.client.Put(t.Context(), "narrow", "clip", bytes.NewReader(data), nil)
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		for _, s := range info.Shards {
			if s.State != client.ShardOK || s.Node == "s0" {
				t.Fatalf("put %d: shard %+v", i, s)
			}
		}
	}
	// Below the write quorum nothing is committed.
	tc.stopNode("s1")
	_, err = tc.client.Put(t.Context(), "wide", "clip2", bytes.NewReader(data), nil)
	mustErr(t, err, client.ErrUnavailable)
	_, err = tc.client.Stat(t.Context(), "wide", "clip2")
	mustErr(t, err, client.ErrNotFound)
}

// TestOverwriteDuringRead overwrites a clip under an open Reader: once the
// old shards are deleted, the Reader fails with ErrClipChanged and nothing
// is reported corrupt.
func TestOverwriteDuringRead(t *testing.T) {
	tc := newCluster(t, 6, client.Config{})
	p := client.Profile{DataShards: 4, ParityShards: 2, BlockSize: testBlock}
	tc.mkBucket("over", &p)
	old := randBytes(19, 8*testBlock)
	if _, err := tc.client.Put(t.Context(), "over", "clip", bytes.NewReader(old), nil); err != nil {
		t.Fatal(err)
	}
	r, err := tc.client.Open(t.Context(), "over", "clip")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	head := make([]byte, 1000)
	if _, err := io.ReadFull(r, head); err != nil || !bytes.Equal(head, old[:1000]) {
		t.Fatalf("first read: %v", err)
	}
	fresh := randBytes(23, 5*testBlock)
	info, err := tc.client.Put(t.Context(), "over", "clip", bytes.NewReader(fresh), nil)
	if err != nil {
		t.Fatal(err)
	}
	await.True(t, 10*time.Second, "the old shards to be deleted", func() bool {
		st, err := tc.client.ClusterStatus(t.Context())
		return err == nil && st.PendingDeletes == 0
	})
	buf := make([]byte, testBlock)
	if _, err := r.ReadAt(buf, 3*testBlock); !errors.Is(err, client.ErrClipChanged) {
		t.Fatalf("ReadAt after the overwrite: %v", err)
	}
	if _, err := r.Seek(4*testBlock, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(buf); !errors.Is(err, client.ErrClipChanged) {
		t.Fatalf("Read after the overwrite: %v", err)
	}
	st, err := tc.client.Stat(t.Context(), "over", "clip")
	if err != nil || st.Generation != info.Generation {
		t.Fatalf("stat: %+v, %v", st, err)
	}
	for _, s := range st.Shards {
		if s.State != client.ShardOK {
			t.Fatalf("shard %d is %v after the overwrite", s.Index, s.State)
		}
	}
	if got, _, err := getBytes(t, tc.client, "over", "clip"); err != nil || !bytes.Equal(got, fresh) {
		t.Fatalf("get of the new generation: %v", err)
	}
	// Deleted under a reader: also ErrClipChanged.
	r2, err := tc.client.Open(t.Context(), "over", "clip")
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if err := tc.client.Delete(t.Context(), "over", "clip"); err != nil {
		t.Fatal(err)
	}
	await.True(t, 10*time.Second, "the shards to be deleted", func() bool {
		st, err := tc.client.ClusterStatus(t.Context())
		return err == nil && st.PendingDeletes == 0
	})
	if _, err := r2.ReadAt(buf, 0); !errors.Is(err, client.ErrClipChanged) {
		t.Fatalf("ReadAt after delete: %v", err)
	}
}

// TestShardMovedDuringRead: a reader that pinned a record before one of
// its shards moved (a drain), and meets NotFound where the shard was,
// re-reads the record, finds the same generation, and reads the shard at
// its new place.
func TestShardMovedDuringRead(t *testing.T) {
	tc := newClusterWith(t, 7, client.Config{}, func(c *meta.Config) { c.MoveDeleteDelay = 0 })
	p := client.Profile{DataShards: 4, ParityShards: 2, BlockSize: testBlock}
	tc.mkBucket("moving", &p)
	data := randBytes(29, 6*testBlock+17)
	info, err := tc.client.Put(t.Context(), "moving", "clip", bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := tc.client.Open(t.Context(), "moving", "clip")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, testBlock)
	if _, err := r.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, data[:testBlock]) {
		t.Fatalf("first read: %v", err)
	}
	from := info.Shards[0].Node
	if _, err := tc.client.Drain(t.Context(), from); err != nil {
		t.Fatal(err)
	}
	var to string
	await.True(t, 20*time.Second, "shard 0 moved and its old copy deleted", func() bool {
		st, err := tc.client.Stat(t.Context(), "moving", "clip")
		if err != nil || st.Generation != info.Generation || st.Shards[0].Node == from {
			return false
		}
		to = st.Shards[0].Node
		cs, err := tc.client.ClusterStatus(t.Context())
		return err == nil && cs.PendingDeletes == 0
	})
	if _, err := r.ReadAt(buf, 3*testBlock); err != nil || !bytes.Equal(buf, data[3*testBlock:4*testBlock]) {
		t.Fatalf("read after the move: %v", err)
	}
	if got := client.ReaderShardNode(r, 0); got != to {
		t.Fatalf("the reader reads shard 0 from %s; it moved from %s to %s", got, from, to)
	}
	st, err := tc.client.Stat(t.Context(), "moving", "clip")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Shards {
		if s.State != client.ShardOK {
			t.Fatalf("shard %d is %v after the read: the move was reported as a loss", s.Index, s.State)
		}
	}
}

// TestReaderWriteTo: io.Copy of a Reader (its WriteTo) gives the whole
// clip from the start, and the rest of it after a Seek.
func TestReaderWriteTo(t *testing.T) {
	tc := newCluster(t, 6, client.Config{})
	p := client.Profile{DataShards: 4, ParityShards: 2, BlockSize: testBlock}
	tc.mkBucket("writeto", &p)
	data := randBytes(5, 7*testBlock+999)
	if _, err := tc.client.Put(t.Context(), "writeto", "clip", bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 1, testBlock + 17, int64(len(data))} {
		r, err := tc.client.Open(t.Context(), "writeto", "clip")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Seek(off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		n, err := io.Copy(&got, r)
		r.Close()
		if err != nil || n != int64(len(data))-off || !bytes.Equal(got.Bytes(), data[off:]) {
			t.Fatalf("from %d: %d bytes, %v; want the %d after it", off, n, err, int64(len(data))-off)
		}
	}
}
