package erasure

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

func TestLayout(t *testing.T) {
	tests := []struct {
		k, m, bs    int
		size        int64
		blocks      int64
		lastBlock   int // length of the last block
		lastPiece   int // piece length of the last block
		fullPiece   int
		shardLen    int64
		unitOffset1 int64
	}{
		{4, 2, 1000, 0, 0, 0, 0, 250, 0, 250 + 28},
		{4, 2, 1000, 1, 1, 1, 1, 250, 1 + 28, 278},
		{4, 2, 1000, 999, 1, 999, 250, 250, 278, 278},
		{4, 2, 1000, 1000, 1, 1000, 250, 250, 278, 278},
		{4, 2, 1000, 1001, 2, 1, 1, 250, 278 + 29, 278},
		{3, 2, 1000, 2500, 3, 500, 167, 334, 2*(334+24) + 167 + 24, 358},
		{1, 0, 7, 15, 3, 1, 1, 7, 2*(7+8) + 1 + 8, 15},
	}
	for _, tt := range tests {
		c := mustCode(t, tt.k, tt.m, tt.bs)
		l, err := c.Layout(tt.size)
		if err != nil {
			t.Fatal(err)
		}
		last := l.Blocks() - 1
		if l.Blocks() != tt.blocks || l.ShardLen() != tt.shardLen || l.UnitOffset(1) != tt.unitOffset1 ||
			l.PieceLen(0) != min(tt.fullPiece, PieceSize(int(tt.size), tt.k)) {
			t.Errorf("%d+%d B=%d size %d: blocks %d shardLen %d unitOffset(1) %d piece0 %d", tt.k, tt.m, tt.bs, tt.size,
				l.Blocks(), l.ShardLen(), l.UnitOffset(1), l.PieceLen(0))
		}
		if tt.blocks > 0 && (l.BlockLen(last) != tt.lastBlock || l.PieceLen(last) != tt.lastPiece ||
			l.UnitLen(last) != tt.lastPiece+TrailerSize(tt.k+tt.m)) {
			t.Errorf("%d+%d B=%d size %d: last block %d piece %d unit %d", tt.k, tt.m, tt.bs, tt.size,
				l.BlockLen(last), l.PieceLen(last), l.UnitLen(last))
		}
		if l.BlockLen(-1) != 0 || l.BlockLen(tt.blocks) != 0 || l.UnitLen(tt.blocks) != 0 {
			t.Errorf("blocks outside the clip have a length")
		}
		if l.UnitOffset(l.Blocks()) != l.ShardLen() && tt.size%int64(tt.bs) == 0 {
			t.Errorf("UnitOffset(Blocks()) = %d, ShardLen %d", l.UnitOffset(l.Blocks()), l.ShardLen())
		}
	}
}

func TestLayoutInvalidSize(t *testing.T) {
	c := mustCode(t, 1, 63, 1)
	for _, size := range []int64{-1, 1 << 62} {
		if _, err := c.Layout(size); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("Layout(%d) = %v, want ErrInvalidParams", size, err)
		}
	}
}

// TestExtents checks, for random ranges, that the spans the extents name
// within the data pieces are exactly the range's bytes.
func TestExtents(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, km := range []struct{ k, m int }{{1, 0}, {3, 2}, {4, 2}, {5, 3}} {
		c := mustCode(t, km.k, km.m, 1000)
		for _, size := range []int64{1, 999, 1000, 1001, 4567} {
			data := randBytes(uint64(size), int(size))
			l, _ := c.Layout(size)
			blocks := blocksOf(t, c, data)
			for range 200 {
				off := rng.Int64N(size + 1)
				n := rng.Int64N(size - off + 1)
				ext, err := l.Extents(off, n)
				if err != nil {
					t.Fatalf("Extents(%d, %d): %v", off, n, err)
				}
				var got []byte
				for _, e := range ext {
					if e != l.extent(e.Block, e.Lo, e.Hi) || e.Lo >= e.Hi {
						t.Fatalf("extent %+v is inconsistent", e)
					}
					for i := e.First; i <= e.Last; i++ {
						lo, hi := e.Span(i)
						got = append(got, blocks[e.Block].Pieces[i][lo:hi]...)
					}
				}
				if !bytes.Equal(got, data[off:off+n]) {
					t.Fatalf("%d+%d size %d: extents of [%d,+%d) map to the wrong bytes", km.k, km.m, size, off, n)
				}
			}
		}
	}
}

func TestExtentsOutOfRange(t *testing.T) {
	c := mustCode(t, 4, 2, 1000)
	l, _ := c.Layout(5000)
	tests := []struct{ off, n int64 }{
		{-1, 1}, {0, -1}, {5001, 0}, {4999, 2}, {0, 5001}, {1, 1<<63 - 1},
	}
	for _, tt := range tests {
		if _, err := l.Extents(tt.off, tt.n); !errors.Is(err, ErrRange) {
			t.Errorf("Extents(%d, %d) = %v, want ErrRange", tt.off, tt.n, err)
		}
	}
	for _, tt := range []struct{ off, n int64 }{{0, 0}, {5000, 0}, {0, 5000}, {4999, 1}} {
		if _, err := l.Extents(tt.off, tt.n); err != nil {
			t.Errorf("Extents(%d, %d) = %v", tt.off, tt.n, err)
		}
	}
}

// blocksOf encodes data and keeps copies of its blocks.
func blocksOf(t testing.TB, c *Code, data []byte) []*Block {
	t.Helper()
	var out []*Block
	e := c.NewEncoder(bytes.NewReader(data))
	for {
		b, err := e.Next()
		if err != nil {
			return out
		}
		cp := newBlock(c.Shards(), len(b.Pieces[0]))
		cp.Num, cp.DataLen = b.Num, b.DataLen
		for i, p := range b.Pieces {
			cp.Pieces[i] = bytes.Clone(p)
		}
		copy(cp.CRCs, b.CRCs)
		out = append(out, cp)
		b.Release()
	}
}
