package erasure

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
)

// codes are the small codes most tests run over.
var testCodes = []struct{ k, m int }{{2, 1}, {3, 2}, {4, 2}}

func mustCode(t testing.TB, k, m, blockSize int) *Code {
	t.Helper()
	c, err := New(k, m, WithBlockSize(blockSize))
	if err != nil {
		t.Fatalf("New(%d, %d, %d): %v", k, m, blockSize, err)
	}
	return c
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// encodeAll encodes data and returns its k+m shard streams.
func encodeAll(t testing.TB, c *Code, data []byte) ([][]byte, EncodeResult) {
	t.Helper()
	bufs := make([]bytes.Buffer, c.Shards())
	ws := make([]io.Writer, c.Shards())
	for i := range bufs {
		ws[i] = &bufs[i]
	}
	res, err := c.Encode(bytes.NewReader(data), ws)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	streams := make([][]byte, len(bufs))
	for i := range bufs {
		streams[i] = bufs[i].Bytes()
	}
	return streams, res
}

// readers returns a reader per stream, nil for the indices in lost.
func readers(streams [][]byte, lost ...int) []io.Reader {
	rs := make([]io.Reader, len(streams))
	for i, s := range streams {
		rs[i] = bytes.NewReader(s)
	}
	for _, i := range lost {
		rs[i] = nil
	}
	return rs
}

// readerAts is readers for DecodeRange.
func readerAts(streams [][]byte, lost ...int) []io.ReaderAt {
	rs := make([]io.ReaderAt, len(streams))
	for i, s := range streams {
		rs[i] = bytes.NewReader(s)
	}
	for _, i := range lost {
		rs[i] = nil
	}
	return rs
}

func clone(streams [][]byte) [][]byte {
	out := make([][]byte, len(streams))
	for i, s := range streams {
		out[i] = bytes.Clone(s)
	}
	return out
}

// subsets calls f with every subset of {0..n-1} of size at most max.
func subsets(n, max int, f func(set []int)) {
	var rec func(start int, set []int)
	rec = func(start int, set []int) {
		f(set)
		if len(set) == max {
			return
		}
		for i := start; i < n; i++ {
			rec(i+1, append(set, i))
		}
	}
	rec(0, nil)
}

// subsetsOf calls f with every subset of exactly size k drawn from from.
func subsetsOf(from []int, k int, f func(set []int)) {
	subsets(len(from), k, func(pos []int) {
		if len(pos) != k {
			return
		}
		set := make([]int, k)
		for j, p := range pos {
			set[j] = from[p]
		}
		f(set)
	})
}

func decodeAll(t testing.TB, c *Code, streams [][]byte, size int64, lost ...int) ([]byte, Report, error) {
	t.Helper()
	var out bytes.Buffer
	rep, err := c.Decode(&out, readers(streams, lost...), size)
	return out.Bytes(), rep, err
}

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r     io.ReaderAt
	reads int
	bytes int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.reads++
	n, err := c.r.ReadAt(p, off)
	c.bytes += int64(n)
	return n, err
}

// countingReader counts the bytes read through it (and hides Seek).
type countingReader struct {
	r     io.Reader
	bytes int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.bytes += int64(n)
	return n, err
}

// failingReader delivers n bytes of r, then fails with err.
type failingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	p = p[:min(int64(len(p)), f.n)]
	n, err := f.r.Read(p)
	f.n -= int64(n)
	return n, err
}
