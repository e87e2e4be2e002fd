package loadgen

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestClipReaderYieldsExactlySize(t *testing.T) {
	c := NewContent(1)
	for _, size := range []int64{0, 1, 4093, poolSize - 1, poolSize, poolSize + 1, 3*poolSize + 17} {
		for _, bufSize := range []int{1, 7, 64 << 10, 4 << 20} {
			r := c.NewReader("k", size)
			got, err := io.ReadAll(struct{ io.Reader }{io.LimitReader(&chunked{r, bufSize}, 1<<40)})
			if err != nil || int64(len(got)) != size {
				t.Fatalf("size %d, reads of %d: %d bytes, %v", size, bufSize, len(got), err)
			}
			want := make([]byte, size)
			c.Fill("k", 0, want)
			if !bytes.Equal(got, want) {
				t.Fatalf("size %d, reads of %d: content differs from Fill", size, bufSize)
			}
			if n, err := r.Read(make([]byte, 10)); n != 0 || err != io.EOF {
				t.Fatalf("read after the end: %d, %v", n, err)
			}
		}
	}
}

// chunked reads from r at most n bytes at a time.
type chunked struct {
	r io.Reader
	n int
}

func (c *chunked) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

func TestContentDiffersByKeyAndSeed(t *testing.T) {
	read := func(c *Content, key string) []byte {
		b := make([]byte, 4096)
		c.Fill(key, 0, b)
		return b
	}
	a, b := NewContent(1), NewContent(2)
	if bytes.Equal(read(a, "x"), read(a, "y")) || bytes.Equal(read(a, "x"), read(b, "x")) {
		t.Fatal("two keys or two seeds share their content")
	}
	if !bytes.Equal(read(a, "x"), read(NewContent(1), "x")) {
		t.Fatal("content is not deterministic")
	}
	// Fill and Mismatch agree at any offset, across the pool's end.
	for _, off := range []int64{0, 5, poolSize - 3, poolSize, 7*poolSize + 11} {
		p := make([]byte, 100)
		a.Fill("x", off, p)
		if i := a.Mismatch("x", off, p); i != -1 {
			t.Fatalf("offset %d: Mismatch = %d on Fill's bytes", off, i)
		}
		p[42] ^= 1
		if i := a.Mismatch("x", off, p); i != 42 {
			t.Fatalf("offset %d: Mismatch = %d, want 42", off, i)
		}
	}
}

func TestVerifier(t *testing.T) {
	const size = 3*poolSize + 1234
	c := NewContent(1)
	clip := func(key string, n int) []byte {
		b := make([]byte, n)
		c.Fill(key, 0, b)
		return b
	}
	flipped := clip("k", size)
	flipped[poolSize+77] ^= 0x10
	last := clip("k", size)
	last[size-1]++
	for _, tc := range []struct {
		name     string
		stream   []byte
		check    *Content
		wantErr  bool
		verified int64
	}{
		{name: "intact", stream: clip("k", size), verified: size},
		{name: "flipped byte", stream: flipped, wantErr: true, verified: poolSize + 77},
		{name: "last byte", stream: last, wantErr: true, verified: size - 1},
		{name: "short", stream: clip("k", size-1), wantErr: true, verified: size - 1},
		{name: "empty", stream: nil, wantErr: true, verified: 0},
		{name: "long", stream: clip("k", size+1), wantErr: true, verified: size},
		{name: "another key", stream: clip("other", size), wantErr: true},
		{name: "another seed", stream: clip("k", size), check: NewContent(2), wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := c
			if tc.check != nil {
				check = tc.check
			}
			v := check.NewVerifier("k", size)
			var werr error
			for p := tc.stream; len(p) > 0 && werr == nil; p = p[min(len(p), 100_000):] {
				_, werr = v.Write(p[:min(len(p), 100_000)])
			}
			err := v.Err()
			if tc.wantErr != (err != nil) || (err != nil && !errors.Is(err, ErrContent)) {
				t.Fatalf("Err() = %v, want an ErrContent: %v", err, tc.wantErr)
			}
			if werr != nil && !errors.Is(werr, ErrContent) {
				t.Fatalf("Write failed with %v", werr)
			}
			if tc.verified > 0 && v.Verified() != tc.verified {
				t.Fatalf("Verified() = %d, want %d", v.Verified(), tc.verified)
			}
			if !tc.wantErr {
				return
			}
			// The verifier stays failed, and Reset makes it usable again.
			if _, err := v.Write(clip("k", 10)); err == nil && v.Err() == nil {
				t.Fatal("a failed verifier accepted more bytes")
			}
			v.Reset("k", 10)
			ok := make([]byte, 10)
			check.Fill("k", 0, ok)
			if _, err := v.Write(ok); err != nil || v.Err() != nil || v.Verified() != 10 {
				t.Fatalf("after Reset: %v, %v, %d verified", err, v.Err(), v.Verified())
			}
		})
	}
}

func TestReaderAndVerifierDoNotAllocate(t *testing.T) {
	c := NewContent(1)
	r, v := c.NewReader("", 0), c.NewVerifier("", 0)
	buf := make([]byte, 64<<10)
	allocs := testing.AllocsPerRun(20, func() {
		r.Reset("key", 1<<20)
		v.Reset("key", 1<<20)
		for {
			n, err := r.Read(buf)
			if err != nil {
				break
			}
			v.Write(buf[:n])
		}
	})
	if allocs != 0 || v.Err() != nil {
		t.Fatalf("%v allocations per clip, verifier: %v", allocs, v.Err())
	}
}

// BenchmarkContent measures the generator: a put's content reader and a
// get's verifier, in the block-sized chunks the client uses. Both must run
// far faster than the store they help measure.
func BenchmarkContent(b *testing.B) {
	const size = 64 << 20
	c := NewContent(1)
	buf := make([]byte, 1<<20)
	b.Run("reader", func(b *testing.B) {
		b.SetBytes(size)
		r := c.NewReader("", 0)
		for b.Loop() {
			r.Reset("bench/key", size)
			for {
				if _, err := r.Read(buf); err != nil {
					break
				}
			}
		}
	})
	b.Run("verifier", func(b *testing.B) {
		b.SetBytes(size)
		clip := make([]byte, size)
		c.Fill("bench/key", 0, clip)
		v := c.NewVerifier("", 0)
		for b.Loop() {
			v.Reset("bench/key", size)
			for p := clip; len(p) > 0; p = p[len(buf):] {
				v.Write(p[:len(buf)])
			}
			if err := v.Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
