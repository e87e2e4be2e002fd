package s3gw

import "hash/crc32"

// crcPolys are the (reflected) polynomials of the checksum algorithms that
// are CRCs: those whose checksum of a multipart object can be made from
// its parts' (FULL_OBJECT).
var crcPolys = map[string]uint64{
	"crc32":     crc32.IEEE,
	"crc32c":    crc32.Castagnoli,
	"crc64nvme": 0x9a6c9329ac4bc9b5,
}

// crcCombine returns the CRC of a followed by b, given crcA = CRC(a),
// crcB = CRC(b) and the length of b, for a reflected CRC of width bits
// whose initial value and final XOR are all ones (CRC-32, CRC-32C,
// CRC-64/NVME). It is zlib's crc32_combine for any such CRC: crcA
// advanced over lenB zero bytes is crcA times x^(8·lenB) modulo the
// polynomial, and that power takes O(log lenB) multiplications.
func crcCombine(crcA, crcB uint64, lenB int64, poly uint64, width int) uint64 {
	return multModP(x8nModP(lenB, poly, width), crcA, poly, width) ^ crcB
}

// multModP multiplies a and b modulo the polynomial, in the reflected bit
// order (x^0 is the top bit). a must not be zero.
func multModP(a, b, poly uint64, width int) uint64 {
	m := uint64(1) << (width - 1)
	var p uint64
	for {
		if a&m != 0 {
			p ^= b
			if a&(m-1) == 0 {
				return p
			}
		}
		m >>= 1
		if b&1 != 0 {
			b = b>>1 ^ poly
		} else {
			b >>= 1
		}
	}
}

// x8nModP returns x^(8n) modulo the polynomial.
func x8nModP(n int64, poly uint64, width int) uint64 {
	p := uint64(1) << (width - 1)  // x^0
	sq := uint64(1) << (width - 9) // x^8
	for ; n > 0; n >>= 1 {
		if n&1 != 0 {
			p = multModP(sq, p, poly, width)
		}
		sq = multModP(sq, sq, poly, width)
	}
	return p
}
