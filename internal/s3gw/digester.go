package s3gw

import (
	"errors"
	"hash"
	"io"
)

// Buffers of a digester: the bytes read ahead of the hashing, at most.
const (
	digestBufSize = 256 << 10
	digestBuffers = 4
)

// digester passes a body through to its reader (client.Put's encoder)
// while a goroutine of its own hashes the bytes, so that hashing overlaps
// encoding instead of adding to it. Read copies what it passes into one of
// a few buffers for the hashing goroutine; when that goroutine falls
// behind by all of them, Read waits. Read is for one goroutine at a time;
// sums and stop may follow it from another one once it has returned.
type digester struct {
	r      io.Reader
	hashes []hash.Hash
	n      int64 // bytes passed
	eof    bool  // r returned io.EOF

	cur    []byte      // the buffer being filled; nil if none
	full   chan []byte // buffers for the hashing goroutine
	free   chan []byte // buffers it is done with (nil ones until first used)
	done   chan struct{}
	closed bool
}

// newDigester starts the hashing goroutine; stop (or sums) ends it.
func newDigester(r io.Reader, hashes []hash.Hash) *digester {
	d := &digester{r: r, hashes: hashes, full: make(chan []byte, digestBuffers),
		free: make(chan []byte, digestBuffers), done: make(chan struct{})}
	for range digestBuffers {
		d.free <- nil // allocated on first use: most objects are small
	}
	go d.hash()
	return d
}

func (d *digester) hash() {
	defer close(d.done)
	for b := range d.full {
		for _, h := range d.hashes {
			h.Write(b)
		}
		d.free <- b[:0]
	}
}

// Read reads from the body. A body cut short is IncompleteBody, never an
// io.ErrUnexpectedEOF that the encoder would take for the end of a clip.
func (d *digester) Read(p []byte) (int, error) {
	if d.closed {
		return 0, errors.New("s3gw: read after the digests were taken")
	}
	n, err := d.r.Read(p)
	d.n += int64(n)
	d.feed(p[:n])
	switch {
	case err == io.EOF:
		d.eof = true
		if len(d.cur) > 0 {
			d.full <- d.cur
		}
		d.cur = nil
	case err != nil:
		err = bodyError(err)
	}
	return n, err
}

// feed copies p into buffers and hands every full one to the hashing;
// with nothing to hash (fast ETags, no checksum), it does nothing.
func (d *digester) feed(p []byte) {
	if len(d.hashes) == 0 {
		return
	}
	for len(p) > 0 {
		if d.cur == nil {
			d.cur = <-d.free
			if d.cur == nil {
				d.cur = make([]byte, 0, digestBufSize)
			}
		}
		k := copy(d.cur[len(d.cur):cap(d.cur)], p)
		d.cur, p = d.cur[:len(d.cur)+k], p[k:]
		if len(d.cur) == cap(d.cur) {
			d.full <- d.cur
			d.cur = nil
		}
	}
}

// stop ends the hashing goroutine, waits for it and releases the hashes
// (a multi-buffer MD5 holds a lane of its server). Idempotent; the sums
// are not to be taken after it.
func (d *digester) stop() {
	d.drain()
	for _, h := range d.hashes {
		if c, ok := h.(interface{ Close() }); ok {
			c.Close()
		}
	}
	d.hashes = nil
}

// drain ends the hashing goroutine and waits for it. Idempotent.
func (d *digester) drain() {
	if !d.closed {
		d.closed = true
		close(d.full)
	}
	<-d.done
}

// sums waits for the hashing to finish and returns the digests of the
// whole body, which must have been read to io.EOF.
func (d *digester) sums() ([][]byte, error) {
	if !d.eof {
		return nil, errors.New("s3gw: digests taken before the end of the body")
	}
	d.drain()
	out := make([][]byte, len(d.hashes))
	for i, h := range d.hashes {
		out[i] = h.Sum(nil)
	}
	return out, nil
}
