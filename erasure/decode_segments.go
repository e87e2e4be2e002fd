package erasure

import (
	"hash/crc32"
	"slices"
)

// SegmentPieces is Pieces for units held in segments: units[i] is unit
// e.Block of shard i as slices that, end to end, make the unit (say, the
// buffers a network read left it in), or nil if the caller does not have
// it. When every piece of the extent is there, intact, and from one write
// (their trailers agree), the extent's bytes are returned as slices of the
// segments, with no copy: a piece may come in several slices. Otherwise
// the units at hand are copied into the decoder's own buffers and decoded
// as Pieces does: lost or corrupt pieces rebuilt from parity, faults in
// the Report, ErrUnrecoverable when more units are needed. The result is
// valid until the next call and until the units change; ContentCRC works
// on it as on Pieces'.
//
// sums, if not nil, holds for each unit at hand the CRC of its piece as
// UnitPieceCRC computes it over those same bytes: a reader computes it as
// each unit arrives, while the bytes are still in the CPU's cache, and
// SegmentPieces then checks that CRC against the unit's trailer instead of
// reading the piece again (from memory, by then). A unit whose sum does not
// match is copied and verified as above, so a wrong sum can cost a copy
// but never pass a corrupt piece off as intact, provided each sum was
// computed from the unit's bytes.
func (bd *BlockDecoder) SegmentPieces(e Extent, units [][][]byte, sums []uint32) ([][]byte, error) {
	if len(units) != bd.l.c.Shards() {
		return nil, invalid("%d units, want %d", len(units), bd.l.c.Shards())
	}
	if err := bd.checkExtent(e); err != nil {
		return nil, err
	}
	if sums != nil && len(sums) != len(units) {
		return nil, invalid("%d sums for %d units", len(sums), len(units))
	}
	if bd.segmentsIntact(e, units, sums) {
		bd.startOut(e)
		n := bd.l.c.Shards()
		for i := e.First; i <= e.Last; i++ {
			lo, hi := e.Span(i)
			before := len(bd.out)
			bd.out = appendSpan(bd.out, units[i], lo, hi)
			for range len(bd.out) - before {
				bd.outOf = append(bd.outOf, i-e.First)
			}
			bd.outCRC = append(bd.outCRC, bd.segLists[i*n+i])
			bd.whole = append(bd.whole, lo == 0 && hi == e.PieceLen)
		}
		return bd.out, nil
	}
	return bd.Pieces(e, bd.flatten(units))
}

// segmentsIntact reports whether every piece of extent e is at hand, of
// the right length, matches the CRC its trailer records (sums[i], if sums
// is not nil, else computed here), and whether all of their trailers carry
// the same CRC list; bd.segLists then holds unit i's list at
// [i*n, (i+1)*n).
func (bd *BlockDecoder) segmentsIntact(e Extent, units [][][]byte, sums []uint32) bool {
	n := bd.l.c.Shards()
	ulen, ts := bd.l.UnitLen(e.Block), TrailerSize(n)
	plen := ulen - ts
	if len(bd.segLists) < n*n {
		bd.segLists = make([]uint32, n*n)
	}
	for i := e.First; i <= e.Last; i++ {
		segs := units[i]
		if segs == nil || segmentsLen(segs) != ulen {
			return false
		}
		bd.spans, bd.trailer = appendSpan(bd.spans[:0], segs, plen, ulen), bd.trailer[:0]
		for _, s := range bd.spans {
			bd.trailer = append(bd.trailer, s...)
		}
		list := bd.segLists[i*n : (i+1)*n]
		if !ParseTrailer(bd.trailer, i, e.Block, list) {
			return false
		}
		var crc uint32
		if sums != nil {
			crc = sums[i]
		} else {
			crc = UnitPieceCRC(segs, i, e.Block, n)
		}
		if crc != list[i] || !slices.Equal(list, bd.segLists[e.First*n:(e.First+1)*n]) {
			return false
		}
	}
	return true
}

// UnitPieceCRC returns the CRC of the piece of a unit of shard index in
// block (PieceCRC's), given the unit's bytes end to end in segs: the piece,
// then the trailer of a code with n shards. It is what SegmentPieces
// expects in its sums. A unit too short to hold a trailer has no piece and
// gets the CRC of an empty one, which SegmentPieces' length check rejects
// anyway.
func UnitPieceCRC(segs [][]byte, index int, block int64, n int) uint32 {
	plen := max(segmentsLen(segs)-TrailerSize(n), 0)
	crc := seedCRC(index, block)
	for _, s := range segs {
		if plen == 0 {
			break
		}
		s = s[:min(len(s), plen)]
		crc = crc32.Update(crc, castagnoli, s)
		plen -= len(s)
	}
	return crc
}

// flatten copies the units out of their segments into the decoder's own
// buffers.
func (bd *BlockDecoder) flatten(units [][][]byte) [][]byte {
	if bd.flat == nil {
		bd.flat = make([][]byte, len(units))
		bd.flatBuf = make([][]byte, len(units))
	}
	for i, segs := range units {
		bd.flat[i] = nil
		if segs == nil {
			continue
		}
		buf := bd.flatBuf[i][:0]
		for _, s := range segs {
			buf = append(buf, s...)
		}
		bd.flatBuf[i] = buf
		bd.flat[i] = buf
	}
	return bd.flat
}

func segmentsLen(segs [][]byte) int {
	n := 0
	for _, s := range segs {
		n += len(s)
	}
	return n
}

// appendSpan appends to dst the slices of segs that hold bytes [lo, hi) of
// their concatenation.
func appendSpan(dst [][]byte, segs [][]byte, lo, hi int) [][]byte {
	pos := 0
	for _, s := range segs {
		if pos >= hi {
			break
		}
		a, b := max(lo-pos, 0), min(hi-pos, len(s))
		if a < b {
			dst = append(dst, s[a:b:b])
		}
		pos += len(s)
	}
	return dst
}
