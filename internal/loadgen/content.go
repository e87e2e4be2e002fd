package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
)

// poolSize is the length of the random pool clip content is cut from: a
// little over 1 MiB, and not a multiple of any block or piece size, so a
// piece served from the wrong place or the wrong key cannot match.
const poolSize = 1<<20 + 4093

// ErrContent: bytes read back differ from the bytes written (a wrong byte,
// or too few or too many of them).
var ErrContent = errors.New("content differs from what was written")

// Content is the deterministic content of every clip of a run: byte j of
// the clip under key is pool[(offset(key)+j) % len(pool)], the pool being
// filled from a PRNG with the seed. It is cheap to produce and to check,
// and differs from key to key. A Content is read-only and safe for
// concurrent use.
type Content struct {
	pool []byte
}

// NewContent returns the content of the given seed.
func NewContent(seed uint64) *Content {
	r := rand.New(rand.NewPCG(seed, 0x636c697073746f72)) // "clipstor"
	pool := make([]byte, poolSize)
	for i := 0; i < len(pool); i += 8 {
		v := r.Uint64()
		for j := i; j < min(i+8, len(pool)); j++ {
			pool[j] = byte(v)
			v >>= 8
		}
	}
	return &Content{pool: pool}
}

// offset is where key's content starts in the pool: FNV-64a of the key.
func (c *Content) offset(key string) int {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	return int(h % uint64(len(c.pool)))
}

// Fill writes the bytes of key's clip starting at off into p.
func (c *Content) Fill(key string, off int64, p []byte) {
	pos := c.at(c.offset(key), off)
	for len(p) > 0 {
		n := copy(p, c.pool[pos:])
		p, pos = p[n:], 0
	}
}

// Mismatch returns the index of the first byte of p that differs from
// key's clip at off, or -1 if p matches.
func (c *Content) Mismatch(key string, off int64, p []byte) int {
	return c.mismatchAt(c.at(c.offset(key), off), p)
}

// at is the pool position of byte off of a clip whose byte 0 is at base.
func (c *Content) at(base int, off int64) int {
	return int((int64(base) + off%int64(len(c.pool))) % int64(len(c.pool)))
}

// mismatchAt compares p with the pool from pos on, wrapping around, a
// chunk at a time; only a chunk that differs is searched byte by byte.
func (c *Content) mismatchAt(pos int, p []byte) int {
	done := 0
	for done < len(p) {
		n := min(len(p)-done, len(c.pool)-pos)
		if got, want := p[done:done+n], c.pool[pos:pos+n]; !bytes.Equal(got, want) {
			for i := range got {
				if got[i] != want[i] {
					return done + i
				}
			}
		}
		done, pos = done+n, 0
	}
	return -1
}

// ClipReader produces one clip's content: exactly size bytes, then io.EOF.
// Reset reuses it for another clip without allocating.
type ClipReader struct {
	c    *Content
	pos  int   // pool position of the next byte
	left int64 // bytes still to produce
}

// NewReader returns a reader of key's clip of size bytes.
func (c *Content) NewReader(key string, size int64) *ClipReader {
	r := &ClipReader{c: c}
	r.Reset(key, size)
	return r
}

// Reset starts the reader over on key's clip of size bytes.
func (r *ClipReader) Reset(key string, size int64) {
	r.pos, r.left = r.c.offset(key), size
}

// Read fills p with the clip's next bytes.
func (r *ClipReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.left)]
	done := 0
	for done < len(p) {
		n := copy(p[done:], r.c.pool[r.pos:])
		done += n
		if r.pos += n; r.pos == len(r.c.pool) {
			r.pos = 0
		}
	}
	r.left -= int64(done)
	return done, nil
}

// Verifier checks a stream of bytes against one clip's content. Write
// fails at the first byte that differs or goes past the clip's end; Err
// reports what went wrong once the stream has ended, including a short
// one. Reset reuses it for another clip without allocating.
type Verifier struct {
	c        *Content
	size     int64
	base     int   // pool position of the clip's byte 0
	written  int64 // bytes received
	verified int64 // bytes received that matched
	bad      int64 // offset of the first wrong byte; -1 if none
}

// NewVerifier returns a verifier of key's clip of size bytes.
func (c *Content) NewVerifier(key string, size int64) *Verifier {
	v := &Verifier{c: c}
	v.Reset(key, size)
	return v
}

// Reset starts the verifier over on key's clip of size bytes.
func (v *Verifier) Reset(key string, size int64) {
	v.size, v.base = size, v.c.offset(key)
	v.written, v.verified, v.bad = 0, 0, -1
}

// Write checks p, the clip's next bytes.
func (v *Verifier) Write(p []byte) (int, error) {
	if v.bad >= 0 {
		return 0, v.Err()
	}
	n := int(min(int64(len(p)), max(v.size-v.written, 0)))
	if i := v.c.mismatchAt(v.c.at(v.base, v.written), p[:n]); i >= 0 {
		n, v.bad = i, v.written+int64(i)
	} else if n < len(p) {
		v.bad = v.size // a byte past the end
	}
	v.written += int64(n)
	v.verified += int64(n)
	if v.bad >= 0 {
		return n, v.Err()
	}
	return n, nil
}

// Verified returns how many bytes were received and matched.
func (v *Verifier) Verified() int64 { return v.verified }

// Err reports whether the stream so far is the whole clip: nil if every
// byte matched and exactly size bytes came; else an error wrapping
// ErrContent.
func (v *Verifier) Err() error {
	switch {
	case v.bad >= 0 && v.bad == v.size:
		return fmt.Errorf("%w: more than the %d bytes written", ErrContent, v.size)
	case v.bad >= 0:
		return fmt.Errorf("%w: byte %d of %d differs", ErrContent, v.bad, v.size)
	case v.written < v.size:
		return fmt.Errorf("%w: %d of %d bytes read", ErrContent, v.written, v.size)
	}
	return nil
}
