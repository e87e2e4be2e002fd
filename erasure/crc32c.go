package erasure

import "hash/crc32"

// CRC32C arithmetic over GF(2) in the reflected bit order hash/crc32 uses
// (as zlib's crc32_combine). It lets the Encoder derive the clip's content
// checksum from the piece CRCs it computes anyway, instead of running a
// second CRC pass over every byte.

// crcMul returns a*b modulo the Castagnoli polynomial.
func crcMul(a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
		}
		if b&1 != 0 {
			b = b>>1 ^ crc32.Castagnoli
		} else {
			b >>= 1
		}
	}
	return p
}

// crcShift returns the operator x^(8n) mod P: crcMul(crcShift(n), crc)
// turns the CRC of A into what it would contribute to the CRC of A||B for
// len(B) = n.
func crcShift(n int64) uint32 {
	sq := uint32(1) << (31 - 8) // x^8, one byte (bit 31-d stands for x^d)
	p := uint32(1) << 31        // x^0
	for ; n > 0; n >>= 1 {
		if n&1 != 0 {
			p = crcMul(sq, p)
		}
		sq = crcMul(sq, sq)
	}
	return p
}

// seedCRC is the CRC32C of the 12-byte seed PieceCRC puts before a piece:
// the shard index (uint32) and block number (uint64), little-endian.
func seedCRC(index int, block int64) uint32 {
	crc := updateSmall(0, uint64(uint32(index)), 4)
	return updateSmall(crc, uint64(block), 8)
}

// updateSmall extends crc with the n low bytes of v, little-endian. It
// equals crc32.Update over those bytes but never makes them escape to the
// heap, which a byte array handed to hash/crc32 does (the hot paths call it
// once or twice per piece and must not allocate).
func updateSmall(crc uint32, v uint64, n int) uint32 {
	crc = ^crc
	for range n {
		crc = castagnoli[byte(crc)^byte(v)] ^ crc>>8
		v >>= 8
	}
	return ^crc
}

// appendPieceToContent extends the content CRC with a piece of n bytes
// (shift = crcShift(n)) given only the piece's seeded CRC: PieceCRC(i, b, p)
// = CRC(seed||p), so CRC(content||p) = (content ^ CRC(seed))*x^8n ^ PieceCRC.
func appendPieceToContent(content, pieceCRC, shift uint32, index int, block int64) uint32 {
	return crcMul(shift, content^seedCRC(index, block)) ^ pieceCRC
}
