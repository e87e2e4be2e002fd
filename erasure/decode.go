package erasure

import (
	"fmt"
	"hash/crc32"
	"io"
	"slices"
)

// Decode writes the clip of size bytes to w, decoded from its shard streams
// (len k+m; shards[i] nil when shard i is missing). Every byte written was
// verified against its piece CRC, or rebuilt and verified against the CRC
// list of a verified trailer.
//
// Each stream is read sequentially from its start. Only the data shards are
// read while they are healthy; a parity shard is first read when a block
// needs it, and is then advanced to that block with Seek if it is an
// io.Seeker and by reading and discarding otherwise, so pass seekable or
// lazily opened readers to avoid fetching parity that is never used. A
// stream that returns an error or ends early is treated as missing from then
// on. Memory is about one unit per shard read.
//
// The Report lists the pieces that could not be used. If a block cannot be
// recovered Decode returns an error wrapping ErrUnrecoverable; the blocks
// before it have already been written to w, but no byte of that block nor
// of any later one.
func (c *Code) Decode(w io.Writer, shards []io.Reader, size int64) (Report, error) {
	var rep Report
	l, err := c.layoutFor(size, len(shards))
	if err != nil {
		return rep, err
	}
	d := newDecoder(l, newStreamSource(l, &rep, shards), &rep)
	for b := range l.Blocks() {
		if err := d.decodeTo(w, l.Extent(b)); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// DecodeRange writes the clip bytes [off, off+n) to w, like Decode but
// reading only the units of the blocks that hold the range, and of those
// only the data pieces that hold it unless some of them must be rebuilt.
// Whole units are read because a piece is verified as a whole. A range
// outside the clip returns an error wrapping ErrRange.
func (c *Code) DecodeRange(w io.Writer, shards []io.ReaderAt, size, off, n int64) (Report, error) {
	var rep Report
	l, err := c.layoutFor(size, len(shards))
	if err != nil {
		return rep, err
	}
	ext, err := l.Extents(off, n)
	if err != nil {
		return rep, err
	}
	d := newDecoder(l, newReaderAtSource(l, &rep, shards), &rep)
	for _, e := range ext {
		if err := d.decodeTo(w, e); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// Rebuild writes shard stream index of the clip of size bytes to w,
// regenerated from the other shards (len k+m; shards[index] is ignored).
// The output is byte-identical to what the encoder wrote; every rebuilt
// piece is verified against the block's CRC list before it is written.
// It reads k units per block, in index order, and reads streams like Decode.
// It returns the rebuilt shard's ShardSum, to compare with the one recorded
// for the shard.
func (c *Code) Rebuild(w io.Writer, index int, shards []io.Reader, size int64) (uint32, Report, error) {
	var rep Report
	l, err := c.layoutFor(size, len(shards))
	if err != nil {
		return 0, rep, err
	}
	if index < 0 || index >= c.Shards() {
		return 0, rep, invalid("shard index %d, want 0 to %d", index, c.Shards()-1)
	}
	d := newDecoder(l, newStreamSource(l, &rep, shards), &rep)
	var sum ShardSum
	for b := range l.Blocks() {
		unit, crc, err := d.rebuild(index, b)
		if err != nil {
			return 0, rep, err
		}
		if _, err := w.Write(unit); err != nil {
			return 0, rep, fmt.Errorf("erasure: write shard %d block %d: %w", index, b, err)
		}
		sum.Add(crc)
	}
	return sum.Sum32(), rep, nil
}

// layoutFor checks the number of shard streams and returns the layout.
func (c *Code) layoutFor(size int64, shards int) (Layout, error) {
	if shards != c.Shards() {
		return Layout{}, invalid("%d shard streams, want %d", shards, c.Shards())
	}
	return c.Layout(size)
}

// appendExtent appends the bytes of extent e from the decoded pieces.
func (d *decoder) appendExtent(dst []byte, e Extent) []byte {
	for i := e.First; i <= e.Last; i++ {
		lo, hi := e.Span(i)
		dst = append(dst, d.shards[i][lo:hi]...)
	}
	return dst
}

// decodeTo decodes extent e and writes its bytes to w.
func (d *decoder) decodeTo(w io.Writer, e Extent) error {
	if _, err := d.block(e.Block, e.pieces()); err != nil {
		return err
	}
	for i := e.First; i <= e.Last; i++ {
		lo, hi := e.Span(i)
		if _, err := w.Write(d.shards[i][lo:hi]); err != nil {
			return fmt.Errorf("erasure: write clip block %d: %w", e.Block, err)
		}
	}
	return nil
}

// rebuild regenerates unit b of shard index. It returns the unit (valid
// until the next call) and the piece's CRC.
func (d *decoder) rebuild(index int, b int64) ([]byte, uint32, error) {
	d.exclude = index
	defer func() { d.exclude = -1 }()
	if _, err := d.block(b, 1<<index); err != nil {
		return nil, 0, err
	}
	// Index was excluded, so its piece was rebuilt into a scratch buffer
	// with room for the trailer.
	return AppendTrailer(d.shards[index], index, b, d.crcs), d.crcs[index], nil
}

// BlockDecoder decodes blocks of one clip from units the caller fetched
// itself (say, from k+m storage nodes in parallel). It keeps its buffers and
// a Report across calls; it is not safe for concurrent use, so use one per
// goroutine.
type BlockDecoder struct {
	l   Layout
	src sliceSource
	rep Report
	d   *decoder
	out [][]byte // Pieces' result

	// Of Pieces' last result, for ContentCRC: the block, the first
	// piece's index and the pieces' length, the piece each slice of out
	// is part of (j: piece outFirst+j; a piece may come in several
	// slices), and each piece's verified CRC (whole pieces only: whole[j]
	// says which).
	outBlock    int64
	outFirst    int
	outPieceLen int
	outOf       []int
	outCRC      []uint32
	whole       []bool

	// SegmentPieces' buffers: the CRC lists of the units it verifies,
	// a trailer gathered from its segments, a piece's slices, and units
	// copied out of their segments when it falls back to Pieces.
	segLists []uint32
	trailer  []byte
	spans    [][]byte
	flat     [][]byte
	flatBuf  [][]byte
	// shift caches crcShift(shiftLen), the operator for one piece length.
	shiftLen int
	shift    uint32
}

// NewBlockDecoder returns a BlockDecoder for the clip.
func (l Layout) NewBlockDecoder() *BlockDecoder {
	bd := &BlockDecoder{l: l}
	bd.d = newDecoder(l, &bd.src, &bd.rep)
	return bd
}

// Decode appends the bytes of extent e (from Layout.Extents or
// Layout.Extent) to dst; on error it returns dst unchanged. units[i] is
// unit e.Block of shard i (piece and trailer, UnitLen bytes) or nil if the
// caller does not have it; len(units) must be k+m. Units of pieces outside
// [e.First, e.Last] are read only if a piece in it must be rebuilt, so a
// caller may first fetch just those and, on an error wrapping
// ErrUnrecoverable, fetch more and call again (VerifyUnit tells early
// whether a fetched unit is intact). The units are not modified and not
// retained.
func (bd *BlockDecoder) Decode(dst []byte, e Extent, units [][]byte) ([]byte, error) {
	if err := bd.use(units); err != nil {
		return dst, err
	}
	defer bd.done()
	if err := bd.checkExtent(e); err != nil {
		return dst, err
	}
	// Copy first and verify after (the copy leaves the pieces in cache for
	// the CRC); the bytes are returned only once they are verified.
	start := len(dst)
	if e.Lo == 0 && e.Hi == bd.l.BlockLen(e.Block) {
		return bd.decodeWhole(dst, e, units)
	}
	dst, copied := appendUnits(dst, e, units)
	rebuilt, err := bd.d.block(e.Block, e.pieces())
	switch {
	case err != nil:
		return dst[:start], err
	case copied && !rebuilt:
		return dst, nil
	}
	return bd.d.appendExtent(dst[:start], e), nil
}

// Pieces is Decode without the copy: it verifies (and if need be
// rebuilds) the pieces of extent e and returns the extent's bytes as
// slices, in order, of the caller's units or of the decoder's own buffers.
// They are valid until the next call and until the units change; a caller
// that writes them out (to a file, a socket) saves copying every byte into
// a block first.
func (bd *BlockDecoder) Pieces(e Extent, units [][]byte) ([][]byte, error) {
	if err := bd.use(units); err != nil {
		return nil, err
	}
	defer bd.done()
	if err := bd.checkExtent(e); err != nil {
		return nil, err
	}
	if _, err := bd.d.block(e.Block, e.pieces()); err != nil {
		return nil, err
	}
	bd.startOut(e)
	for i := e.First; i <= e.Last; i++ {
		lo, hi := e.Span(i)
		bd.out = append(bd.out, bd.d.shards[i][lo:hi:hi])
		bd.outOf = append(bd.outOf, i-e.First)
		bd.outCRC = append(bd.outCRC, bd.d.crcs[i])
		bd.whole = append(bd.whole, lo == 0 && hi == e.PieceLen)
	}
	return bd.out, nil
}

// startOut empties Pieces' result for extent e.
func (bd *BlockDecoder) startOut(e Extent) {
	bd.out, bd.outOf, bd.outCRC, bd.whole = bd.out[:0], bd.outOf[:0], bd.outCRC[:0], bd.whole[:0]
	bd.outBlock, bd.outFirst, bd.outPieceLen = e.Block, e.First, e.PieceLen
}

// ContentCRC extends crc, the CRC32C of the clip's bytes before the extent
// Pieces last returned, with that extent's bytes. A whole piece counts
// through the CRC it was verified against, with no second pass over its
// bytes (CRC arithmetic, as the Encoder derives the content checksum);
// only a partial piece, at the ends of a range or a clip, is read again.
func (bd *BlockDecoder) ContentCRC(crc uint32) uint32 {
	for s, p := range bd.out {
		j := bd.outOf[s]
		if !bd.whole[j] {
			crc = crc32.Update(crc, castagnoli, p)
			continue
		}
		if s > 0 && bd.outOf[s-1] == j {
			continue // the rest of a whole piece already counted
		}
		if bd.outPieceLen != bd.shiftLen {
			bd.shiftLen, bd.shift = bd.outPieceLen, crcShift(int64(bd.outPieceLen))
		}
		crc = appendPieceToContent(crc, bd.outCRC[j], bd.shift, bd.outFirst+j, bd.outBlock)
	}
	return crc
}

// checkExtent rejects an extent that Layout.Extents or Layout.Extent
// would not have produced for this clip.
func (bd *BlockDecoder) checkExtent(e Extent) error {
	if n := bd.l.BlockLen(e.Block); e.Lo < 0 || e.Lo >= e.Hi || e.Hi > n || e != bd.l.extent(e.Block, e.Lo, e.Hi) {
		return fmt.Errorf("%w: extent %+v is not one of this clip's", ErrRange, e)
	}
	return nil
}

// decodeWhole decodes a whole block in place in dst. Missing or corrupt
// data pieces are rebuilt straight into their place (except the last one,
// whose padding does not fit: it is rebuilt aside and copied). The healthy
// ones are copied in before verification if all of them are there (the
// copy brings them into cache for the CRC), else after reedsolomon has
// read them.
func (bd *BlockDecoder) decodeWhole(dst []byte, e Extent, units [][]byte) ([]byte, error) {
	start, p, ulen := len(dst), e.PieceLen, bd.l.UnitLen(e.Block)
	dst = slices.Grow(dst, e.Hi)
	out := dst[start : start+e.Hi]
	present := true
	for i := 0; i <= e.Last; i++ {
		present = present && len(units[i]) == ulen
	}
	for i := 0; i <= e.Last; i++ {
		lo, hi := i*p, min((i+1)*p, e.Hi)
		if present {
			copy(out[lo:hi], units[i])
		}
		if hi-lo == p {
			bd.d.slots[i] = out[lo:hi:hi]
		}
	}
	_, err := bd.d.block(e.Block, e.pieces())
	clear(bd.d.slots)
	if err != nil {
		return dst[:start], err
	}
	for i := 0; i <= e.Last; i++ {
		lo := i * p
		rebuiltInPlace := bd.d.need[i] && lo+p <= e.Hi
		if !rebuiltInPlace && (!present || bd.d.need[i]) {
			copy(out[lo:], bd.d.shards[i])
		}
	}
	return dst[:start+e.Hi], nil
}

// appendUnits appends the extent's bytes straight from the units, if all
// of its pieces are there.
func appendUnits(dst []byte, e Extent, units [][]byte) ([]byte, bool) {
	for i := e.First; i <= e.Last; i++ {
		if len(units[i]) < e.PieceLen {
			return dst, false
		}
	}
	for i := e.First; i <= e.Last; i++ {
		lo, hi := e.Span(i)
		dst = append(dst, units[i][lo:hi]...)
	}
	return dst, true
}

// Rebuild regenerates unit b (piece and trailer) of shard index from the
// units of the other shards (units[index] is ignored) and appends it to
// dst, after verifying the piece against the block's CRC list. It also
// returns the piece's CRC, to fold into the shard's ShardSum. It reads k
// units, in index order. On error it returns dst unchanged.
func (bd *BlockDecoder) Rebuild(dst []byte, index int, b int64, units [][]byte) ([]byte, uint32, error) {
	if err := bd.use(units); err != nil {
		return dst, 0, err
	}
	defer bd.done()
	if index < 0 || index >= len(units) {
		return dst, 0, invalid("shard index %d, want 0 to %d", index, len(units)-1)
	}
	if b < 0 || b >= bd.l.Blocks() {
		return dst, 0, fmt.Errorf("%w: block %d of %d", ErrRange, b, bd.l.Blocks())
	}
	unit, crc, err := bd.d.rebuild(index, b)
	if err != nil {
		return dst, 0, err
	}
	return append(dst, unit...), crc, nil
}

func (bd *BlockDecoder) use(units [][]byte) error {
	if len(units) != bd.l.c.Shards() {
		return invalid("%d units, want %d", len(units), bd.l.c.Shards())
	}
	bd.src.units = units
	return nil
}

// done drops the references to the caller's units.
func (bd *BlockDecoder) done() {
	bd.src.units = nil
	bd.d.reset()
}

// Report returns the faults met by all calls so far.
func (bd *BlockDecoder) Report() Report { return bd.rep }
