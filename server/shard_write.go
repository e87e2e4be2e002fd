package server

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"time"

	"github.com/clipstore/clipstore/erasure"
	"github.com/clipstore/clipstore/internal/wire"
	"golang.org/x/sys/unix"
)

// ShardWriter receives one shard, piece by piece, into a file with no name
// yet (FS.CreateUnnamed) in the shard's directory, or, on a filesystem
// that cannot make one, into a temp file under tmp/. Nothing is visible
// until Commit returns; Abort (or a crash) leaves nothing.
type ShardWriter struct {
	s       *Store
	d       *disk
	h       ShardHeader
	f       File
	u       UnnamedFile // f, when it has no name yet
	tmp     string      // f's name under tmp/, when it has one
	start   time.Time
	next    uint64 // block number expected next
	short   bool   // a short (last) piece was received
	length  uint64 // piece bytes received
	sum     erasure.ShardSum
	crcs    []uint32
	done    bool
	written int64     // file bytes
	iov     [][]byte  // WritePieceSegments' scratch
	one     [1][]byte // WritePiece's data as one segment
	trailer []byte    // ReadPiece's trailer
}

// WriteResult describes a committed shard.
type WriteResult struct {
	Blocks   uint64
	Length   uint64 // piece bytes
	Checksum uint32 // erasure.ShardSum of the piece CRCs
	Existed  bool   // an identical shard was already stored
}

// Create starts writing a new shard described by h.
func (s *Store) Create(h ShardHeader) (*ShardWriter, error) {
	if err := h.validate(s.cfg.MaxPieceSize); err != nil {
		return nil, err
	}
	if err := s.claim(h.ShardID); err != nil {
		return nil, err
	}
	w, err := s.create(h)
	if err != nil {
		s.release(h.ShardID)
		return nil, err
	}
	return w, nil
}

func (s *Store) create(h ShardHeader) (*ShardWriter, error) {
	d, err := s.pickDisk()
	if err != nil {
		return nil, err
	}
	flag := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if !s.cfg.BufferedWrites {
		flag |= unix.O_DIRECT // fs_direct.go
	}
	w := &ShardWriter{s: s, d: d, h: h, start: time.Now(), crcs: make([]uint32, h.shards())}
	var u UnnamedFile
	dir := parentDir(h.ShardID.relPath())
	err = d.inDir(s.log, dir, func() (err error) {
		u, err = d.fs.CreateUnnamed(dir, flag, 0o644)
		return err
	})
	switch {
	case err == nil:
		w.f, w.u = u, u
	case errors.Is(err, errors.ErrUnsupported):
		if w.f, w.tmp, err = s.createTemp(d, h, flag); err != nil {
			return nil, err
		}
	default:
		return nil, diskError("create shard file", err)
	}
	if err := w.write(marshalHeader(&h)); err != nil {
		w.Abort()
		return nil, err
	}
	return w, nil
}

// createTemp creates the named temp file of a shard's write under tmp/.
func (s *Store) createTemp(d *disk, h ShardHeader, flag int) (File, string, error) {
	var suffix [8]byte
	rand.Read(suffix[:])
	tmp := path.Join(tmpDir, h.ShardID.String()+"."+hex.EncodeToString(suffix[:]))
	var f File
	err := d.inDir(s.log, tmpDir, func() (err error) {
		f, err = d.fs.OpenFile(tmp, flag, 0o644)
		return err
	})
	if err != nil {
		return nil, "", diskError("create temp file", err)
	}
	return f, tmp, nil
}

// claim marks id as being written, refusing a second concurrent write.
func (s *Store) claim(id ShardID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return ErrClosed
	}
	if _, busy := s.mu.writing[id]; busy {
		return fmt.Errorf("%w: %s", ErrWriteInProgress, id)
	}
	s.mu.writing[id] = struct{}{}
	return nil
}

func (s *Store) release(id ShardID) {
	s.mu.Lock()
	delete(s.mu.writing, id)
	s.mu.Unlock()
}

func (w *ShardWriter) write(p []byte) error {
	n, err := w.f.Write(p)
	w.written += int64(n)
	if err != nil {
		return diskError("write shard "+w.h.ShardID.String(), err)
	}
	return nil
}

// WritePiece verifies one piece against its trailer and appends both. Pieces
// come in block order; every piece but the last is exactly the full piece
// size.
func (w *ShardWriter) WritePiece(block uint64, data, trailer []byte) error {
	w.one[0] = data
	err := w.WritePieceSegments(block, w.one[:], trailer)
	w.one[0] = nil
	return err
}

// WritePieceSegments is WritePiece for a piece held in segments, in order
// (a piece left in the frame buffers it arrived in): it is verified and
// written, with its trailer, by one writev(2), without being gathered
// first.
func (w *ShardWriter) WritePieceSegments(block uint64, data [][]byte, trailer []byte) error {
	if w.done {
		return errors.New("shard writer already finished")
	}
	n := 0
	for _, seg := range data {
		n += len(seg)
	}
	if err := w.checkPiece(block, data, n, trailer); err != nil {
		return err
	}
	w.iov = append(append(w.iov[:0], data...), trailer)
	written, err := w.f.WriteBuffers(w.iov)
	clear(w.iov) // drop the references to the caller's buffers
	w.written += written
	if err != nil {
		return diskError("write shard "+w.h.ShardID.String(), err)
	}
	w.accepted(n)
	return nil
}

func (w *ShardWriter) checkPiece(block uint64, data [][]byte, n int, trailer []byte) error {
	if err := w.checkPlace(block, n); err != nil {
		return err
	}
	got := erasure.PieceCRC(w.h.Index, int64(block), nil)
	for _, seg := range data {
		got = erasure.UpdateCRC32C(got, seg)
	}
	return w.checkTrailer(block, got, trailer)
}

// checkPlace checks that a piece of n bytes may come as block.
func (w *ShardWriter) checkPlace(block uint64, n int) error {
	ps := w.h.pieceSize()
	switch {
	case block != w.next:
		return fmt.Errorf("%w: piece for block %d, expected block %d", ErrInvalidArgument, block, w.next)
	case w.short:
		return fmt.Errorf("%w: block %d follows a short piece; only the last piece may be shorter than %d bytes",
			ErrInvalidArgument, block, ps)
	case n == 0 || n > ps:
		return fmt.Errorf("%w: block %d: piece of %d bytes, header implies 1..%d", ErrInvalidArgument, block, n, ps)
	}
	return nil
}

// checkTrailer checks block's trailer and the piece's CRC (got) against it.
func (w *ShardWriter) checkTrailer(block uint64, got uint32, trailer []byte) error {
	if len(trailer) != w.h.trailerSize() {
		return fmt.Errorf("%w: block %d: trailer of %d bytes, want %d", ErrInvalidArgument, block, len(trailer), w.h.trailerSize())
	}
	if !erasure.ParseTrailer(trailer, w.h.Index, int64(block), w.crcs) {
		return fmt.Errorf("%w: block %d: trailer checksum mismatch", ErrInvalidArgument, block)
	}
	if got != w.crcs[w.h.Index] {
		return fmt.Errorf("%w: block %d: piece checksum mismatch (sent %08x, computed %08x)",
			ErrInvalidArgument, block, w.crcs[w.h.Index], got)
	}
	return nil
}

// stagedReader is a File that can take bytes straight from a reader into
// its staging buffer (directFile): they are copied once, by the kernel.
type stagedReader interface {
	// ReadFull reads n bytes of r into the file, handing each run of them
	// to seen as it lands.
	ReadFull(r io.Reader, n int, seen func([]byte)) (int64, error)
}

// ReadPiece is WritePiece for a piece of n bytes and its trailer read
// from r, as a raw write's unit frame carries them. A file that stages its
// writes receives the piece straight into its staging buffer, its CRC
// computed as it lands, and the trailer checked after it: a piece that
// fails a check (or does not arrive whole) has reached the temp file, so
// it ends the write as Abort does. Other files get the piece through a
// buffer and WritePiece. Errors reading r are returned as they are.
func (w *ShardWriter) ReadPiece(block uint64, n int, r io.Reader) error {
	if w.done {
		return errors.New("shard writer already finished")
	}
	if err := w.checkPlace(block, n); err != nil {
		return err
	}
	ts := w.h.trailerSize()
	sr, ok := w.f.(stagedReader)
	if !ok {
		buf := wire.Pool.Get(n + ts)
		defer wire.Pool.Put(buf)
		if _, err := io.ReadFull(r, *buf); err != nil {
			return err
		}
		return w.WritePiece(block, (*buf)[:n], (*buf)[n:])
	}
	crc := erasure.PieceCRC(w.h.Index, int64(block), nil)
	written, err := sr.ReadFull(r, n, func(b []byte) { crc = erasure.UpdateCRC32C(crc, b) })
	w.written += written
	if w.trailer == nil {
		w.trailer = make([]byte, ts)
	}
	if err == nil {
		_, err = io.ReadFull(r, w.trailer)
	}
	if err == nil {
		err = w.checkTrailer(block, crc, w.trailer)
	}
	if err == nil {
		err = w.write(w.trailer)
	}
	if err != nil {
		w.Abort()
		return err
	}
	w.accepted(n)
	return nil
}

// accepted counts a piece of n bytes written.
func (w *ShardWriter) accepted(n int) {
	w.sum.Add(w.crcs[w.h.Index])
	w.length += uint64(n)
	w.next++
	if n < w.h.pieceSize() {
		w.short = true
	}
}

// Commit checks that the shard is complete (blocks pieces, and the given
// checksum when not nil), makes it durable and visible, and returns what was
// stored. On any error nothing is visible.
func (w *ShardWriter) Commit(blocks uint64, checksum *uint32) (WriteResult, error) {
	if w.done {
		return WriteResult{}, errors.New("shard writer already finished")
	}
	res := WriteResult{Blocks: w.next, Length: w.length, Checksum: w.sum.Sum32()}
	if blocks != w.next {
		w.Abort()
		return res, fmt.Errorf("%w: finish says %d blocks, received %d", ErrInvalidArgument, blocks, w.next)
	}
	if checksum != nil && *checksum != res.Checksum {
		w.Abort()
		return res, fmt.Errorf("%w: shard checksum %08x, sender says %08x", ErrInvalidArgument, res.Checksum, *checksum)
	}
	if err := w.f.Sync(); err != nil {
		w.Abort()
		return res, diskError("fsync shard", err)
	}
	if w.u == nil {
		err := w.f.Close()
		w.f = nil
		if err != nil {
			w.Abort()
			return res, diskError("close shard", err)
		}
	}
	existed, err := w.publish(res)
	if err != nil {
		w.Abort()
		return res, err
	}
	res.Existed = existed
	w.finish()
	w.s.metrics.observeWrite(w.start, w.written, existed)
	return res, nil
}

// publish links or renames the file into place, unless the shard exists,
// in which case the new copy must be identical and is dropped.
func (w *ShardWriter) publish(res WriteResult) (existed bool, err error) {
	id := w.h.ShardID
	if old, err := w.s.lookup(id); err == nil {
		if err := w.sameAs(old, res); err != nil {
			return false, err
		}
		w.drop()
		return true, nil
	} else if !errors.Is(err, ErrNotFound) {
		return false, err
	}
	rel := id.relPath() // its directory was made when the disk was opened
	if w.u != nil {
		err = w.link(rel)
	} else {
		err = w.rename(rel)
	}
	if err != nil {
		return false, err
	}
	w.s.mu.Lock()
	w.s.insertLocked(indexEntry{id: id, disk: w.d, size: w.written})
	w.s.mu.Unlock()
	return false, nil
}

// link names the unnamed file rel and makes the name durable: the file is
// synced again, for the link count the link changed (on ext4 without a
// journal that also writes its directory), and then its directory.
func (w *ShardWriter) link(rel string) error {
	if err := w.u.Link(path.Base(rel)); err != nil {
		return diskError("link shard into place", err)
	}
	err, what := w.u.Sync(), "fsync linked shard"
	if err == nil {
		err, what = w.u.SyncDir(), "fsync shard directory"
	}
	if cerr := w.u.Close(); err == nil {
		err, what = cerr, "close shard"
	}
	w.f, w.u = nil, nil
	if err != nil {
		// The file may or may not survive a crash now; report failure and
		// remove it so that what is visible matches what was acknowledged.
		w.d.fs.Remove(rel)
		return diskError(what, err)
	}
	return nil
}

// rename moves the closed temp file to rel and makes that durable.
func (w *ShardWriter) rename(rel string) error {
	err := w.d.inDir(w.s.log, parentDir(rel), func() error { return w.d.fs.Rename(w.tmp, rel) })
	if err != nil {
		return diskError("rename shard into place", err)
	}
	w.tmp = ""
	if err := w.d.fs.SyncDir(parentDir(rel)); err != nil {
		// As in link.
		w.d.fs.Remove(rel)
		return diskError("fsync shard directory", err)
	}
	return nil
}

// sameAs compares the new shard with the stored one: the same header, the
// same size and the same checksum over every piece CRC.
func (w *ShardWriter) sameAs(old indexEntry, res WriteResult) error {
	info, err := w.s.stat(old)
	if err != nil {
		return fmt.Errorf("compare with stored shard: %w", err)
	}
	if info.Header != w.h || info.FileSize != w.written || info.Checksum != res.Checksum {
		return fmt.Errorf("%w: %s", ErrExists, w.h.ShardID)
	}
	return nil
}

// Abort drops the shard being written. It is safe to call more than once
// and after Commit.
func (w *ShardWriter) Abort() {
	if w.done {
		return
	}
	w.drop()
	w.s.metrics.writeFailed()
	w.finish()
}

// drop closes the file if it is open (an unnamed one is gone with it) and
// removes the temp file if there is one.
func (w *ShardWriter) drop() {
	if w.f != nil {
		w.f.Close()
		w.f, w.u = nil, nil
	}
	if w.tmp == "" {
		return
	}
	if err := w.d.fs.Remove(w.tmp); err != nil {
		w.s.log.Warn("remove temp file", "disk", w.d.fs.Path(), "file", w.tmp, "err", err)
	}
	w.tmp = ""
}

func (w *ShardWriter) finish() {
	w.done = true
	w.s.release(w.h.ShardID)
}
