package server

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/clipstore/clipstore/erasure"
)

// Shard file layout (little-endian), version 1:
//
//	offset size
//	0      8    magic "CLIPSHRD"
//	8      2    format version (1)
//	10     2    header size (128)
//	12     2    shard index
//	14     2    k (data shards)
//	16     2    m (parity shards)
//	18     2    reserved, zero
//	20     4    block size
//	24     16   clip id
//	40     16   shard id
//	56     8    commit deadline, Unix nanoseconds
//	64     60   reserved, zero
//	124    4    CRC32C of bytes [0, 124)
//
// The shard stream follows: for block b, at offset headerSize +
// b*(pieceSize+trailerSize), the piece and its trailer (package erasure).
const (
	headerSize    = 128
	formatVersion = 1
	headerCRCAt   = headerSize - 4
)

var headerMagic = [8]byte{'C', 'L', 'I', 'P', 'S', 'H', 'R', 'D'}

// ShardHeader is the decoded header of a shard file.
type ShardHeader struct {
	ShardID        ShardID
	ClipID         ClipID
	Index          int
	DataShards     int // k
	ParityShards   int // m
	BlockSize      int
	CommitDeadline int64 // Unix nanoseconds
}

// validate checks the header's fields against each other and the node's
// piece size limit.
func (h *ShardHeader) validate(maxPiece int) error {
	switch {
	case h.DataShards < 1:
		return fmt.Errorf("%w: data shards (k) must be at least 1, got %d", ErrInvalidArgument, h.DataShards)
	case h.ParityShards < 0:
		return fmt.Errorf("%w: parity shards (m) must not be negative, got %d", ErrInvalidArgument, h.ParityShards)
	case h.DataShards+h.ParityShards > erasure.MaxShards:
		return fmt.Errorf("%w: k+m must be at most %d, got %d", ErrInvalidArgument, erasure.MaxShards, h.DataShards+h.ParityShards)
	case h.Index < 0 || h.Index >= h.DataShards+h.ParityShards:
		return fmt.Errorf("%w: shard index %d out of range for %d+%d", ErrInvalidArgument, h.Index, h.DataShards, h.ParityShards)
	case h.BlockSize < 1:
		return fmt.Errorf("%w: block size must be positive, got %d", ErrInvalidArgument, h.BlockSize)
	case maxPiece > 0 && h.pieceSize() > maxPiece:
		return fmt.Errorf("%w: piece size %d (block size %d / k %d) exceeds the node's limit of %d bytes",
			ErrInvalidArgument, h.pieceSize(), h.BlockSize, h.DataShards, maxPiece)
	}
	return nil
}

func (h *ShardHeader) shards() int      { return h.DataShards + h.ParityShards }
func (h *ShardHeader) pieceSize() int   { return erasure.PieceSize(h.BlockSize, h.DataShards) }
func (h *ShardHeader) trailerSize() int { return erasure.TrailerSize(h.shards()) }
func (h *ShardHeader) unitSize() int    { return h.pieceSize() + h.trailerSize() }

// unitOffset is the file offset of block b's piece.
func (h *ShardHeader) unitOffset(b uint64) int64 {
	return headerSize + int64(b)*int64(h.unitSize())
}

// geometry derives the number of blocks and the piece bytes from a shard
// file's size. Only the last piece may be shorter than the full piece size,
// and every piece holds at least one byte.
func (h *ShardHeader) geometry(fileSize int64) (blocks uint64, length uint64, err error) {
	body := fileSize - headerSize
	if body < 0 {
		return 0, 0, fmt.Errorf("%w: file of %d bytes is shorter than its header", ErrCorrupt, fileSize)
	}
	unit, trailer := int64(h.unitSize()), int64(h.trailerSize())
	full, rest := body/unit, body%unit
	blocks, length = uint64(full), uint64(full)*uint64(h.pieceSize())
	if rest != 0 {
		if rest <= trailer {
			return 0, 0, fmt.Errorf("%w: file of %d bytes ends inside a trailer", ErrCorrupt, fileSize)
		}
		blocks++
		length += uint64(rest - trailer)
	}
	return blocks, length, nil
}

// marshalHeader encodes h into a headerSize-byte slice.
func marshalHeader(h *ShardHeader) []byte {
	b := make([]byte, headerSize)
	copy(b[0:8], headerMagic[:])
	le := binary.LittleEndian
	le.PutUint16(b[8:], formatVersion)
	le.PutUint16(b[10:], headerSize)
	le.PutUint16(b[12:], uint16(h.Index))
	le.PutUint16(b[14:], uint16(h.DataShards))
	le.PutUint16(b[16:], uint16(h.ParityShards))
	le.PutUint32(b[20:], uint32(h.BlockSize))
	copy(b[24:40], h.ClipID[:])
	copy(b[40:56], h.ShardID[:])
	le.PutUint64(b[56:], uint64(h.CommitDeadline))
	le.PutUint32(b[headerCRCAt:], erasure.CRC32C(b[:headerCRCAt]))
	return b
}

// parseHeader decodes and checks a shard file header. Any damage (a bad
// magic, version, CRC or an impossible field) is ErrCorrupt.
func parseHeader(b []byte) (*ShardHeader, error) {
	if len(b) < headerSize {
		return nil, fmt.Errorf("%w: header is %d bytes, want %d", ErrCorrupt, len(b), headerSize)
	}
	b = b[:headerSize]
	le := binary.LittleEndian
	if !bytes.Equal(b[0:8], headerMagic[:]) {
		return nil, fmt.Errorf("%w: bad header magic %q", ErrCorrupt, b[0:8])
	}
	if want, got := erasure.CRC32C(b[:headerCRCAt]), le.Uint32(b[headerCRCAt:]); want != got {
		return nil, fmt.Errorf("%w: header checksum mismatch (stored %08x, computed %08x)", ErrCorrupt, got, want)
	}
	if v := le.Uint16(b[8:]); v != formatVersion {
		return nil, fmt.Errorf("%w: unsupported shard format version %d", ErrCorrupt, v)
	}
	if s := le.Uint16(b[10:]); s != headerSize {
		return nil, fmt.Errorf("%w: header size %d, want %d", ErrCorrupt, s, headerSize)
	}
	h := &ShardHeader{
		Index:          int(le.Uint16(b[12:])),
		DataShards:     int(le.Uint16(b[14:])),
		ParityShards:   int(le.Uint16(b[16:])),
		BlockSize:      int(le.Uint32(b[20:])),
		CommitDeadline: int64(le.Uint64(b[56:])),
	}
	copy(h.ClipID[:], b[24:40])
	copy(h.ShardID[:], b[40:56])
	if err := h.validate(0); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return h, nil
}
