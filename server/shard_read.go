package server

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/clipstore/clipstore/erasure"
)

// ShardReader reads the pieces of one stored shard, verifying each.
type ShardReader struct {
	s      *Store
	id     ShardID
	f      File
	h      *ShardHeader
	size   int64
	blocks uint64
	length uint64
	crcs   []uint32
}

// Open opens a stored shard for reading. A damaged header is ErrCorrupt.
func (s *Store) Open(id ShardID) (*ShardReader, error) {
	e, err := s.lookup(id)
	if err != nil {
		return nil, err
	}
	return s.open(e)
}

func (s *Store) open(e indexEntry) (*ShardReader, error) {
	f, err := e.disk.fs.OpenFile(e.id.relPath(), os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, s.fileGone(e)
	}
	if err != nil {
		return nil, fmt.Errorf("open shard %s: %w", e.id, err)
	}
	r, err := s.readerFor(e.id, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

func (s *Store) readerFor(id ShardID, f File) (*ShardReader, error) {
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat shard %s: %w", id, err)
	}
	h, err := s.readHeader(id, f)
	if err != nil {
		return nil, err
	}
	blocks, length, err := h.geometry(info.Size())
	if err != nil {
		s.metrics.corruptPiece()
		return nil, fmt.Errorf("shard %s: %w", id, err)
	}
	return &ShardReader{s: s, id: id, f: f, h: h, size: info.Size(), blocks: blocks, length: length,
		crcs: make([]uint32, h.shards())}, nil
}

// Header reads and checks only the 128-byte header of a stored shard:
// what garbage collection needs (the commit deadline) without the cost of
// Open's stat or Stat's trailer walk. A damaged header, or one naming
// another shard, is ErrCorrupt.
func (s *Store) Header(id ShardID) (ShardHeader, error) {
	e, err := s.lookup(id)
	if err != nil {
		return ShardHeader{}, err
	}
	f, err := e.disk.fs.OpenFile(id.relPath(), os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return ShardHeader{}, s.fileGone(e)
	}
	if err != nil {
		return ShardHeader{}, fmt.Errorf("open shard %s: %w", id, err)
	}
	defer f.Close()
	h, err := s.readHeader(id, f)
	if err != nil {
		return ShardHeader{}, err
	}
	return *h, nil
}

// readHeader reads and checks the header of shard id's file.
func (s *Store) readHeader(id ShardID, f File) (*ShardHeader, error) {
	buf := make([]byte, headerSize)
	if _, err := f.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read shard %s header: %w", id, err)
	}
	h, err := parseHeader(buf)
	if err != nil {
		s.metrics.corruptPiece()
		return nil, fmt.Errorf("shard %s: %w", id, err)
	}
	if h.ShardID != id {
		s.metrics.corruptPiece()
		return nil, fmt.Errorf("shard %s: %w: header names shard %s", id, ErrCorrupt, h.ShardID)
	}
	return h, nil
}

// Header returns the shard's header.
func (r *ShardReader) Header() ShardHeader { return *r.h }

// Blocks returns the number of pieces in the shard.
func (r *ShardReader) Blocks() uint64 { return r.blocks }

// UnitSize is the size of the buffer ReadPiece needs.
func (r *ShardReader) UnitSize() int { return r.h.unitSize() }

// ReadPiece reads and verifies the piece of block b into buf (at least
// UnitSize bytes) and returns the piece and its trailer, both slices of buf.
// A piece that fails verification is a *CorruptPieceError wrapping
// ErrCorrupt; the shard's other pieces stay readable.
func (r *ShardReader) ReadPiece(b uint64, buf []byte) (data, trailer []byte, err error) {
	if b >= r.blocks {
		return nil, nil, fmt.Errorf("%w: block %d of a shard with %d blocks", ErrOutOfRange, b, r.blocks)
	}
	off := r.h.unitOffset(b)
	n := min(int64(r.h.unitSize()), r.size-off)
	unit := buf[:n]
	if _, err := r.f.ReadAt(unit, off); err != nil {
		return nil, nil, fmt.Errorf("read shard %s block %d: %w", r.id, b, err)
	}
	if !erasure.VerifyUnit(unit, r.h.Index, int64(b), r.crcs) {
		r.s.metrics.corruptPiece()
		return nil, nil, &CorruptPieceError{Shard: r.id, Block: b,
			Err: fmt.Errorf("%w: piece checksum mismatch", ErrCorrupt)}
	}
	r.s.metrics.read(len(unit))
	ts := r.h.trailerSize()
	return unit[:len(unit)-ts], unit[len(unit)-ts:], nil
}

// Close releases the file.
func (r *ShardReader) Close() error { return r.f.Close() }

// ShardInfo describes a stored shard.
type ShardInfo struct {
	Header   ShardHeader
	Blocks   uint64
	Length   uint64 // piece bytes
	FileSize int64
	Checksum uint32 // erasure.ShardSum over the CRCs recorded in the trailers
	Disk     string
	ModTime  int64 // Unix nanoseconds
}

// Stat describes a stored shard from its header and trailers, without
// reading its pieces. A damaged header or trailer is ErrCorrupt.
func (s *Store) Stat(id ShardID) (ShardInfo, error) {
	e, err := s.lookup(id)
	if err != nil {
		return ShardInfo{}, err
	}
	return s.stat(e)
}

func (s *Store) stat(e indexEntry) (ShardInfo, error) {
	r, err := s.open(e)
	if err != nil {
		return ShardInfo{}, err
	}
	defer r.Close()
	fi, err := r.f.Stat()
	if err != nil {
		return ShardInfo{}, fmt.Errorf("stat shard %s: %w", e.id, err)
	}
	info := ShardInfo{Header: *r.h, Blocks: r.blocks, Length: r.length, FileSize: r.size,
		Disk: e.disk.fs.Path(), ModTime: fi.ModTime().UnixNano()}
	var sum erasure.ShardSum
	trailer := make([]byte, r.h.trailerSize())
	for b := range r.blocks {
		off := r.h.unitOffset(b) + int64(r.h.pieceSize())
		if b == r.blocks-1 {
			off = r.size - int64(len(trailer))
		}
		if _, err := r.f.ReadAt(trailer, off); err != nil {
			return ShardInfo{}, fmt.Errorf("read shard %s block %d trailer: %w", e.id, b, err)
		}
		if !erasure.ParseTrailer(trailer, r.h.Index, int64(b), r.crcs) {
			s.metrics.corruptPiece()
			return ShardInfo{}, &CorruptPieceError{Shard: e.id, Block: b,
				Err: fmt.Errorf("%w: trailer checksum mismatch", ErrCorrupt)}
		}
		sum.Add(r.crcs[r.h.Index])
	}
	info.Checksum = sum.Sum32()
	return info, nil
}
