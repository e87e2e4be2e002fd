package client_test

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/meta"
)

// TestMultipartPages reads a clip of 50 parts from a meta that answers 7
// parts a page: Get, Stat, fsck and sequential Reads page through them all;
// ranges (across page boundaries too) ask for the parts they overlap only;
// StatPart and OpenPart for the one part; a read whose key is overwritten
// meanwhile fails with ErrClipChanged once it needs another page; and
// reads with a storage node down still return the right bytes.
func TestMultipartPages(t *testing.T) {
	t.Parallel()
	const page = 7
	tc := newClusterWith(t, 6, client.Config{RequestTimeout: 5 * time.Second}, func(c *meta.Config) { c.GetClipPageParts = page })
	p := client.Profile{DataShards: 4, ParityShards: 2, BlockSize: testBlock}
	tc.mkBucket("pages", &p)
	sizes := make([]int, 50)
	for i := range sizes {
		sizes[i] = 1000 + 997*i
	}
	sizes[10], sizes[21] = 2*testBlock+5, 3 // several blocks; a tiny one
	data, _ := putMultipart(t, tc, "pages", "clip", 81, sizes...)
	offs := []int64{0}
	for _, n := range sizes {
		offs = append(offs, offs[len(offs)-1]+int64(n))
	}
	ctx := t.Context()

	t.Run("whole", func(t *testing.T) {
		got, info, err := getBytes(t, tc.client, "pages", "clip")
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("get: %d bytes of %d, %v", len(got), len(data), err)
		}
		if len(info.Parts) != len(sizes) || info.PartCount != len(sizes) || info.Parts[49].Offset != offs[49] || info.Parts[49].Number != 50 {
			t.Fatalf("get's record: %d parts of %d", len(info.Parts), info.PartCount)
		}
		st, err := tc.client.Stat(ctx, "pages", "clip")
		if err != nil || len(st.Parts) != len(sizes) || st.PartCount != len(sizes) || st.Shards == nil {
			t.Fatalf("stat: %+v, %v", st, err)
		}
		for i, part := range st.Parts {
			if part.Offset != offs[i] || part.Size != int64(sizes[i]) || part.Number != i+1 {
				t.Fatalf("stat: part %d is %+v", i, part)
			}
		}
		rep, err := tc.client.Fsck(ctx, nil)
		if err != nil || rep.Clips != 1 || rep.Shards != len(sizes)*6 || len(rep.Problems) != 0 {
			t.Fatalf("fsck: %+v, %v", rep, err)
		}
	})

	t.Run("one part", func(t *testing.T) {
		st, err := tc.client.StatPart(ctx, "pages", "clip", 23)
		if err != nil || len(st.Parts) != 1 || st.Parts[0].Number != 23 || st.Parts[0].Offset != offs[22] || st.PartCount != 50 || st.Shards != nil {
			t.Fatalf("stat part 23: %+v, %v", st, err)
		}
		if st, err := tc.client.StatPart(ctx, "pages", "clip", 51); err != nil || len(st.Parts) != 0 || st.PartCount != 50 {
			t.Fatalf("stat part 51: %+v, %v", st, err)
		}
		r, err := tc.client.OpenPart(ctx, "pages", "clip", 23)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if info := r.Info(); len(info.Parts) != 1 || info.Parts[0].Number != 23 {
			t.Fatalf("OpenPart(23): parts %+v", info.Parts)
		}
		got := make([]byte, sizes[22])
		if _, err := r.ReadAt(got, offs[22]); err != nil || !bytes.Equal(got, data[offs[22]:offs[23]]) {
			t.Fatalf("read part 23: %v", err)
		}
		if parts, _ := client.ReaderParts(r); !slices.Equal(parts, []int{22}) {
			t.Fatalf("reading part 23 made views of parts %v", parts)
		}
	})

	t.Run("ranges", func(t *testing.T) {
		r, err := tc.client.Open(ctx, "pages", "clip")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if info := r.Info(); len(info.Parts) != 1 || info.PartCount != 50 || r.Size() != int64(len(data)) {
			t.Fatalf("Open: %d parts of %d, size %d", len(info.Parts), info.PartCount, r.Size())
		}
		// A range inside two parts asks for those two.
		buf := make([]byte, 100)
		if _, err := r.ReadAt(buf, offs[31]-50); err != nil || !bytes.Equal(buf, data[offs[31]-50:offs[31]+50]) {
			t.Fatalf("ReadAt across parts 30 and 31: %v", err)
		}
		if parts, pages := client.ReaderParts(r); !slices.Equal(parts, []int{0, 30, 31}) || !slices.Equal(pages, []int{0, 30}) {
			t.Fatalf("a read of parts 30 and 31 made views of parts %v, keeps pages from %v", parts, pages)
		}
		// Ranges over more parts than a page, crossing pages, and every boundary.
		spans := append(boundarySpans(sizes), span{offs[3] + 5, offs[20] - offs[3]}, span{offs[6] - 1, offs[15] - offs[6] + 2},
			span{offs[1], offs[49] - offs[1]})
		readSpans(t, r, data, spans)
		if _, pages := client.ReaderParts(r); len(pages) > 16 {
			t.Fatalf("the reader keeps %d pages", len(pages))
		}
		// Sequential reads from the start page through all.
		r2, err := tc.client.Open(ctx, "pages", "clip")
		if err != nil {
			t.Fatal(err)
		}
		defer r2.Close()
		all, err := io.ReadAll(iotestSmallReads{r2})
		if err != nil || !bytes.Equal(all, data) {
			t.Fatalf("sequential reads: %d bytes, %v", len(all), err)
		}
	})

	t.Run("degraded", func(t *testing.T) {
		st, err := tc.client.Stat(ctx, "pages", "clip")
		if err != nil {
			t.Fatal(err)
		}
		tc.stopNode(st.Shards[0].Node) // a data shard of part 0, and a shard of every part
		got, _, err := getBytes(t, tc.client, "pages", "clip")
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("degraded get: %d bytes, %v", len(got), err)
		}
		r, err := tc.client.Open(ctx, "pages", "clip")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		readSpans(t, r, data, []span{{0, int64(len(data))}, {offs[6] - 10, offs[9] - offs[6]}, {offs[40] + 1, offs[48] - offs[40]}})
	})

	t.Run("overwritten", func(t *testing.T) {
		r, err := tc.client.Open(ctx, "pages", "clip")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		buf := make([]byte, 500)
		if _, err := r.ReadAt(buf, offs[2]); err != nil {
			t.Fatal(err)
		}
		// A Get that sees the key overwritten after its first bytes: what
		// it wrote is of the old clip, and it fails.
		var w bytes.Buffer
		over := randBytes(99, 5000)
		_, err = tc.client.Get(ctx, "pages", "clip", &w, &client.GetOptions{Progress: func(int64) {
			if over != nil {
				if _, err := tc.client.Put(ctx, "pages", "clip", bytes.NewReader(over), nil); err != nil {
					t.Errorf("overwrite: %v", err)
				}
				over = nil
			}
		}})
		if !errors.Is(err, client.ErrClipChanged) || !bytes.HasPrefix(data, w.Bytes()) || w.Len() == 0 {
			t.Fatalf("get overwritten after %d bytes (a prefix of the old clip: %v): %v", w.Len(), bytes.HasPrefix(data, w.Bytes()), err)
		}
		// The Reader opened before: a range it has no page for fails.
		if _, err := r.ReadAt(buf, offs[44]); !errors.Is(err, client.ErrClipChanged) {
			t.Fatalf("ReadAt of another page after the overwrite: %v", err)
		}
		if _, err := r.Seek(offs[40], io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Read(buf); !errors.Is(err, client.ErrClipChanged) {
			t.Fatalf("Read of another page after the overwrite: %v", err)
		}
	})
}
