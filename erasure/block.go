package erasure

import "io"

// Block is one encoded block, as an Encoder returns it: the k+m pieces and
// their CRCs. Its fields are read-only. Pieces[i] and Trailer(i) form unit
// Num of shard stream i; send piece i to the node holding shard i. The
// memory belongs to the Code: call Release once every piece has been sent,
// and do not touch the block afterwards. Its methods may be called from
// several goroutines at once (one per shard, say).
type Block struct {
	Num     int64    // block number
	DataLen int      // clip bytes in the block
	Pieces  [][]byte // k data then m parity pieces, all the same length
	CRCs    []uint32 // PieceCRC of each piece

	data     []byte // k+m pieces back to back; the data pieces hold the clip bytes
	trailers []byte // the k+m trailers back to back
	owner    *Code
}

func newBlock(shards, pieceSize int) *Block {
	return &Block{
		Pieces:   make([][]byte, shards),
		CRCs:     make([]uint32, shards),
		data:     make([]byte, shards*pieceSize),
		trailers: make([]byte, shards*TrailerSize(shards)),
	}
}

// Bytes returns the block's clip bytes (the data pieces without padding).
func (b *Block) Bytes() []byte { return b.data[:b.DataLen] }

// Trailer returns the trailer that follows piece i in shard stream i, or nil
// if there is no shard i.
func (b *Block) Trailer(i int) []byte {
	n := len(b.Pieces)
	if i < 0 || i >= n {
		return nil
	}
	ts := TrailerSize(n)
	return b.trailers[i*ts : (i+1)*ts : (i+1)*ts]
}

// AppendUnit appends unit i (piece then trailer) to dst.
func (b *Block) AppendUnit(dst []byte, i int) []byte {
	if i < 0 || i >= len(b.Pieces) {
		return dst
	}
	return append(append(dst, b.Pieces[i]...), b.Trailer(i)...)
}

// WriteUnit writes unit i (piece then trailer) to w.
func (b *Block) WriteUnit(w io.Writer, i int) (int64, error) {
	if i < 0 || i >= len(b.Pieces) {
		return 0, invalid("shard index %d, want 0 to %d", i, len(b.Pieces)-1)
	}
	n, err := w.Write(b.Pieces[i])
	if err != nil {
		return int64(n), err
	}
	t, err := w.Write(b.Trailer(i))
	return int64(n + t), err
}

// Release hands the block's memory back to its Code for reuse. Calling it
// again is a no-op.
func (b *Block) Release() {
	c := b.owner
	if c == nil {
		return
	}
	b.owner = nil
	c.putBlock(b)
}

// encode lays out dataLen clip bytes already in b.data as block num: it pads
// the last data piece, computes parity, CRCs and trailers.
func (c *Code) encode(b *Block, num int64, dataLen int) error {
	n := c.Shards()
	p := PieceSize(dataLen, c.k)
	clear(b.data[dataLen : c.k*p])
	for i := range n {
		b.Pieces[i] = b.data[i*p : (i+1)*p : (i+1)*p]
	}
	b.Num, b.DataLen = num, dataLen
	if c.m > 0 {
		if err := c.rs.Encode(b.Pieces); err != nil {
			return err
		}
	}
	for i, piece := range b.Pieces {
		b.CRCs[i] = PieceCRC(i, num, piece)
	}
	ts := TrailerSize(n)
	for i := range n {
		AppendTrailer(b.trailers[i*ts:i*ts], i, num, b.CRCs)
	}
	return nil
}
