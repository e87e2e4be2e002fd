package erasure

import (
	"errors"
	"fmt"
	"io"
)

// Encoder cuts a clip into blocks and encodes them one at a time, keeping
// the clip's running size, content checksum and shard checksums. It is not
// safe for concurrent use, but the blocks it returns may be used and
// released from other goroutines.
//
// Next never waits for blocks to be released: memory is the blocks the
// caller holds plus the Code's small cache, so a caller bounds it by keeping
// a fixed number of blocks in flight (say 2–4) and releasing each one once
// its pieces are sent. Within the cache size (WithBlockCache) steady-state
// encoding allocates nothing.
type Encoder struct {
	c      *Code
	r      io.Reader
	next   int64 // number of the next block
	size   int64
	sum    uint32 // CRC32C of the content so far
	shards []ShardSum
	err    error // sticky: io.EOF after the last block, or the failure
}

// EncodeResult describes an encoded clip.
type EncodeResult struct {
	Size      int64    // clip bytes
	Blocks    int64    // blocks
	Checksum  uint32   // CRC32C of the clip's content
	ShardLen  int64    // bytes in each shard stream
	ShardSums []uint32 // ShardSum of each shard stream, by index
}

// NewEncoder returns an Encoder reading the clip from r.
func (c *Code) NewEncoder(r io.Reader) *Encoder {
	return &Encoder{c: c, r: r, shards: make([]ShardSum, c.Shards())}
}

// Next reads and encodes the next block. It returns io.EOF after the last
// block; an empty clip has no blocks. A read error from r is returned
// wrapped and is sticky.
func (e *Encoder) Next() (*Block, error) {
	if e.err != nil {
		return nil, e.err
	}
	b := e.c.getBlock()
	n, err := io.ReadFull(e.r, b.data[:e.c.blockSize])
	switch {
	case errors.Is(err, io.EOF):
		b.Release()
		e.err = io.EOF
		return nil, e.err
	case errors.Is(err, io.ErrUnexpectedEOF):
		e.err = io.EOF // a short block is the last one
	case err != nil:
		b.Release()
		e.err = fmt.Errorf("erasure: read clip: %w", err)
		return nil, e.err
	}
	if err := e.c.encode(b, e.next, n); err != nil {
		b.Release()
		e.err = fmt.Errorf("erasure: encode block %d: %w", e.next, err)
		return nil, e.err
	}
	e.account(b)
	return b, nil
}

// account folds an encoded block into the running totals.
func (e *Encoder) account(b *Block) {
	for i, crc := range b.CRCs {
		e.shards[i].Add(crc)
	}
	e.size += int64(b.DataLen)
	e.next++
	p := len(b.Pieces[0])
	if p != e.c.pieceSize {
		e.sum = UpdateCRC32C(e.sum, b.Bytes())
		return
	}
	// Whole data pieces come from their CRCs; only a partly filled piece
	// of a full block (B not a multiple of k) is read again.
	i := 0
	for ; (i+1)*p <= b.DataLen; i++ {
		e.sum = appendPieceToContent(e.sum, b.CRCs[i], e.c.shiftP, i, b.Num)
	}
	e.sum = UpdateCRC32C(e.sum, b.data[i*p:b.DataLen])
}

// Result returns the totals of the blocks encoded so far; after Next has
// returned io.EOF they describe the whole clip.
func (e *Encoder) Result() EncodeResult {
	sums := make([]uint32, len(e.shards))
	for i := range e.shards {
		sums[i] = e.shards[i].Sum32()
	}
	l, _ := e.c.Layout(e.size)
	return EncodeResult{
		Size:      e.size,
		Blocks:    e.next,
		Checksum:  e.sum,
		ShardLen:  l.ShardLen(),
		ShardSums: sums,
	}
}

// Encode reads the clip from r and writes its k+m shard streams to shards
// (len k+m; a nil writer skips that index). It stops at the first read or
// write error; a write error names the shard index.
func (c *Code) Encode(r io.Reader, shards []io.Writer) (EncodeResult, error) {
	if len(shards) != c.Shards() {
		return EncodeResult{}, invalid("%d shard writers, want %d", len(shards), c.Shards())
	}
	e := c.NewEncoder(r)
	for {
		b, err := e.Next()
		if errors.Is(err, io.EOF) {
			return e.Result(), nil
		}
		if err != nil {
			return EncodeResult{}, err
		}
		err = writeUnits(b, shards)
		b.Release()
		if err != nil {
			return EncodeResult{}, err
		}
	}
}

func writeUnits(b *Block, shards []io.Writer) error {
	for i, w := range shards {
		if w == nil {
			continue
		}
		if _, err := b.WriteUnit(w, i); err != nil {
			return fmt.Errorf("erasure: write shard %d block %d: %w", i, b.Num, err)
		}
	}
	return nil
}
