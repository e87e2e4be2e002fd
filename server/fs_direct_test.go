package server

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDirectFile writes sequences of writes through a directFile and checks
// that the file holds exactly their concatenation, whatever their sizes
// against the alignment and the staging buffer, and that a Stat or Sync
// in the middle (which ends O_DIRECT) loses and reorders nothing.
func TestDirectFile(t *testing.T) {
	const header = 128
	piece := 1<<20/4 + 40 // a 256 KiB piece and a trailer: never aligned
	cases := []struct {
		name   string
		writes []int // sizes; -1 syncs, -2 stats
		segs   bool  // write each as two segments with WriteBuffers
		direct bool  // O_DIRECT is on before the final Sync
	}{
		{name: "empty"},
		{name: "header only", writes: []int{header}},
		{name: "one aligned block", writes: []int{directAlign}},
		{name: "small shard", writes: []int{header, 16 << 10, 20, 16 << 10, 20}},
		{name: "exactly one staging buffer", writes: []int{directChunk}, direct: true},
		{name: "one byte over a buffer", writes: []int{directChunk, 1}, direct: true},
		{name: "header and pieces", writes: []int{header, piece, piece, piece, piece, piece, 17}, direct: true},
		{name: "header and pieces as segments", writes: []int{header, piece, piece, piece, piece, 1000}, segs: true, direct: true},
		{name: "larger than two buffers at once", writes: []int{header, 2*directChunk + 5}, direct: true},
		{name: "sync midway then more", writes: []int{header, piece, -1, piece, 3}},
		{name: "stat midway then more", writes: []int{header, directChunk + 100, -2, piece}},
	}
	dir := t.TempDir()
	fsys, err := OpenOSFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fsys.Close() })
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := filepath.Base(t.Name()) + ".shard"
			f, err := fsys.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_DIRECT, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			df, ok := f.(*directFile)
			if !ok {
				t.Fatalf("OpenFile with O_DIRECT on %s gave a %T", dir, f)
			}
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			var want []byte
			for _, n := range tc.writes {
				switch n {
				case -1:
					if err := f.Sync(); err != nil {
						t.Fatal(err)
					}
					continue
				case -2:
					info, err := f.Stat()
					if err != nil {
						t.Fatal(err)
					}
					if info.Size() != int64(len(want)) {
						t.Fatalf("Stat midway: size %d, want %d", info.Size(), len(want))
					}
					continue
				}
				p := make([]byte, n)
				for j := range p {
					p[j] = byte(rng.Uint32())
				}
				want = append(want, p...)
				if tc.segs {
					got, err := f.WriteBuffers([][]byte{p[:n/3], p[n/3:]})
					if err != nil || got != int64(n) {
						t.Fatalf("WriteBuffers(%d): %d, %v", n, got, err)
					}
				} else if got, err := f.Write(p); err != nil || got != n {
					t.Fatalf("Write(%d): %d, %v", n, got, err)
				}
			}
			if flags, err := unix.FcntlInt(df.Fd(), unix.F_GETFL, 0); err != nil {
				t.Fatal(err)
			} else if on := flags&unix.O_DIRECT != 0; on != tc.direct || df.direct != tc.direct {
				t.Fatalf("after %d bytes: O_DIRECT on the descriptor %v, in the file's state %v, want %v", len(want), on, df.direct, tc.direct)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("file holds %d bytes, want %d (first difference at %d)", len(got), len(want), firstDiff(got, want))
			}
		})
	}
}

// TestDirectFileCloseWithoutSync: what was written reaches the file on
// Close even without a Sync (an aborted writer closes, then removes it).
func TestDirectFileCloseWithoutSync(t *testing.T) {
	dir := t.TempDir()
	fsys, err := OpenOSFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	f, err := fsys.OpenFile("x", os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_DIRECT, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte("clip"), 3000)
	if _, err := f.Write(want); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "x")); !bytes.Equal(got, want) {
		t.Fatalf("after Close the file holds %d bytes, want %d", len(got), len(want))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
