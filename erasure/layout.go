package erasure

import "fmt"

// PieceSize returns the size of each of the k pieces of a full block of
// blockSize bytes: blockSize/k rounded up. Every block but the last has
// pieces of exactly this size; the last block's pieces are
// ceil(lastBlockLen/k) bytes. A shard stream is therefore a sequence of
// units (piece + trailer) at fixed offsets b*(PieceSize+TrailerSize(k+m)).
func PieceSize(blockSize, k int) int { return (blockSize + k - 1) / k }

// Layout is the geometry of one clip's shard streams under a Code: how many
// blocks it has, how long each block, piece and unit is, where each unit
// starts, and which pieces hold a byte range. Get one with Code.Layout.
type Layout struct {
	c    *Code
	size int64
}

// Layout returns the layout of a clip of size bytes. size must be at least
// 0 and small enough for a shard stream's length to fit in an int64.
func (c *Code) Layout(size int64) (Layout, error) {
	if size < 0 {
		return Layout{}, invalid("clip size %d, want at least 0", size)
	}
	l := Layout{c: c, size: size}
	if l.Blocks() > (1<<63-1)/int64(l.fullUnit()) {
		return Layout{}, invalid("clip size %d too large for block size %d", size, c.blockSize)
	}
	return l, nil
}

// Code returns the code the layout belongs to.
func (l Layout) Code() *Code { return l.c }

// Size returns the clip size in bytes.
func (l Layout) Size() int64 { return l.size }

// Blocks returns the number of blocks: ceil(size/blockSize).
func (l Layout) Blocks() int64 {
	bs := int64(l.c.blockSize)
	n := l.size / bs
	if l.size%bs != 0 {
		n++
	}
	return n
}

// BlockLen returns the number of clip bytes in block b (0 if there is no
// block b).
func (l Layout) BlockLen(b int64) int {
	bs := int64(l.c.blockSize)
	if b < 0 || b >= l.Blocks() {
		return 0
	}
	return int(min(bs, l.size-b*bs))
}

// PieceLen returns the length of each of the k+m pieces of block b.
func (l Layout) PieceLen(b int64) int { return PieceSize(l.BlockLen(b), l.c.k) }

// UnitLen returns the length of unit b of every shard stream: its piece and
// its trailer (0 if there is no block b).
func (l Layout) UnitLen(b int64) int {
	if p := l.PieceLen(b); p > 0 {
		return p + TrailerSize(l.c.Shards())
	}
	return 0
}

// UnitOffset returns where unit b starts in every shard stream; for
// b = Blocks() it is ShardLen().
func (l Layout) UnitOffset(b int64) int64 { return b * int64(l.fullUnit()) }

// ShardLen returns the length in bytes of each shard stream.
func (l Layout) ShardLen() int64 {
	n := l.Blocks()
	if n == 0 {
		return 0
	}
	return l.UnitOffset(n-1) + int64(l.UnitLen(n-1))
}

// fullUnit is the unit length of a full block.
func (l Layout) fullUnit() int { return l.c.pieceSize + TrailerSize(l.c.Shards()) }

// Extent is the part of one block that a byte range of the clip covers.
type Extent struct {
	Block    int64
	Lo, Hi   int // the range's bytes within the block's data: [Lo, Hi)
	First    int // first data piece holding them
	Last     int // last data piece holding them (inclusive)
	PieceLen int // length of the block's pieces
}

// Span returns which bytes [lo, hi) of data piece i the extent covers
// (lo == hi when it covers none).
func (e Extent) Span(i int) (lo, hi int) {
	start := i * e.PieceLen
	lo = min(max(e.Lo-start, 0), e.PieceLen)
	hi = max(min(e.Hi-start, e.PieceLen), lo)
	return lo, hi
}

// pieces returns the set of data pieces the extent needs, as a bit mask.
func (e Extent) pieces() uint64 { return bitRange(e.First, e.Last) }

// bitRange returns a mask with bits first..last set.
func bitRange(first, last int) uint64 {
	return (uint64(1)<<(last-first+1) - 1) << first
}

// Extent returns the extent covering all of block b (the zero Extent if
// there is no block b).
func (l Layout) Extent(b int64) Extent {
	n := l.BlockLen(b)
	if n == 0 {
		return Extent{}
	}
	return l.extent(b, 0, n)
}

func (l Layout) extent(b int64, lo, hi int) Extent {
	p := l.PieceLen(b)
	return Extent{Block: b, Lo: lo, Hi: hi, First: lo / p, Last: (hi - 1) / p, PieceLen: p}
}

// Extents maps the clip bytes [off, off+n) to the blocks holding them, in
// order. It returns an error wrapping ErrRange if the range is not within
// the clip, and no extents for n = 0.
func (l Layout) Extents(off, n int64) ([]Extent, error) {
	if off < 0 || n < 0 || off > l.size || n > l.size-off {
		return nil, fmt.Errorf("%w: offset %d length %d in a clip of %d bytes", ErrRange, off, n, l.size)
	}
	if n == 0 {
		return nil, nil
	}
	bs := int64(l.c.blockSize)
	first, last := off/bs, (off+n-1)/bs
	ext := make([]Extent, 0, last-first+1)
	for b := first; b <= last; b++ {
		start := b * bs
		lo := max(off, start) - start
		hi := min(off+n, start+int64(l.BlockLen(b))) - start
		ext = append(ext, l.extent(b, int(lo), int(hi)))
	}
	return ext, nil
}
