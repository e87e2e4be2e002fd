package erasure

import (
	"encoding/binary"
	"hash/crc32"
)

// castagnoli is the CRC32C table; the standard library uses the SSE4.2 /
// ARMv8 CRC instructions for it when the CPU has them.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// PieceCRC returns the CRC32C of one piece, seeded with the shard index and
// the block number it belongs to. The seed makes a piece that landed in the
// wrong place (another block of the same shard, or another shard's file)
// fail verification even when its bytes are intact.
func PieceCRC(index int, block int64, piece []byte) uint32 {
	return crc32.Update(seedCRC(index, block), castagnoli, piece)
}

// CRC32C returns the plain CRC32C (Castagnoli) of p. Exported so that every
// package computes checksums with the same table.
func CRC32C(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

// UpdateCRC32C extends crc with p.
func UpdateCRC32C(crc uint32, p []byte) uint32 { return crc32.Update(crc, castagnoli, p) }

// TrailerSize is the size in bytes of the trailer that follows every piece
// in a shard stream of a code with n = k+m shards: the n piece CRCs of the
// block, then a CRC32C of those 4n bytes (seeded like PieceCRC with the
// shard index and block number) so that a damaged trailer is detected.
func TrailerSize(n int) int { return 4*n + 4 }

// AppendTrailer appends the trailer for shard index of block to dst.
func AppendTrailer(dst []byte, index int, block int64, crcs []uint32) []byte {
	start := len(dst)
	for _, c := range crcs {
		dst = binary.LittleEndian.AppendUint32(dst, c)
	}
	sum := PieceCRC(index, block, dst[start:])
	return binary.LittleEndian.AppendUint32(dst, sum)
}

// ParseTrailer checks a trailer written by AppendTrailer for shard index of
// block and decodes its n piece CRCs into crcs (which must have room for n).
// It reports false if the trailer's own checksum does not match.
func ParseTrailer(trailer []byte, index int, block int64, crcs []uint32) bool {
	n := len(crcs)
	if len(trailer) != TrailerSize(n) {
		return false
	}
	body := trailer[:4*n]
	if PieceCRC(index, block, body) != binary.LittleEndian.Uint32(trailer[4*n:]) {
		return false
	}
	for i := range crcs {
		crcs[i] = binary.LittleEndian.Uint32(body[4*i:])
	}
	return true
}

// VerifyUnit reports whether unit (a piece followed by its trailer, as laid
// out in a shard stream) is intact for shard index of block: the trailer's
// own checksum holds and the piece matches the CRC the trailer records for
// index. crcs (len k+m) receives the block's piece CRCs when it does.
func VerifyUnit(unit []byte, index int, block int64, crcs []uint32) bool {
	ts := TrailerSize(len(crcs))
	if len(unit) < ts || index < 0 || index >= len(crcs) {
		return false
	}
	piece := unit[:len(unit)-ts]
	if !ParseTrailer(unit[len(unit)-ts:], index, block, crcs) {
		return false
	}
	return PieceCRC(index, block, piece) == crcs[index]
}

// ShardSum accumulates a shard's checksum: the CRC32C of the sequence of its
// piece CRCs (little-endian). The storage node and the writer compute it
// independently, block by block, at no cost per byte beyond the piece CRCs
// they already have; meta records it per shard.
type ShardSum struct{ crc uint32 }

// Add folds the CRC of the shard's next piece into the sum.
func (s *ShardSum) Add(pieceCRC uint32) {
	s.crc = updateSmall(s.crc, uint64(pieceCRC), 4)
}

// Sum32 returns the checksum of the pieces added so far.
func (s *ShardSum) Sum32() uint32 { return s.crc }
