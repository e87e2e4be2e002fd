package server

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Shard files larger than a staging buffer are written with O_DIRECT: the
// bytes go from the buffer to the device without a copy into the page
// cache, and no page cache has to be reclaimed behind them. The buffered
// copy (copy_folio_from_iter_atomic) was the largest single cost of a
// storage node during puts (docs/performance.md). The file's content and
// layout are the same either way: O_DIRECT only asks that each write start
// at an aligned offset and have an aligned length, so a directFile stages
// what it is given and writes it in aligned chunks, and writes the
// unaligned tail through the page cache when the file is synced or closed.
// fsync still follows: O_DIRECT makes no promise about the file's size,
// its allocation or the device's write cache.
const (
	directAlign = 4096    // offsets, lengths and buffers: a multiple of any logical block size
	directChunk = 1 << 20 // bytes per write(2)
)

// directBuffers hold directChunk bytes at an address aligned to directAlign.
var directBuffers = sync.Pool{New: func() any {
	b := make([]byte, directChunk+directAlign)
	off := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) & (directAlign - 1)); r != 0 {
		off = directAlign - r
	}
	b = b[off : off+directChunk : off+directChunk]
	return &b
}}

// openDirect creates name for a directFile (flag holds O_DIRECT, which
// is only set on the descriptor once a full staging buffer is written: a
// file smaller than that goes through the page cache in one write, as a
// direct write that waits for the device costs small files more than the
// copy it saves).
func (f *osFS) openDirect(name string, flag int, perm fs.FileMode) (File, error) {
	file, err := f.root.OpenFile(name, flag&^unix.O_DIRECT, perm)
	if err != nil {
		return nil, err
	}
	return f.withDirect(osFile{File: file}), nil
}

// withDirect makes of, a new file, a directFile, unless the filesystem
// refused O_DIRECT. An unnamed file stays one (directFile has its Link and
// SyncDir).
func (f *osFS) withDirect(of osFile) UnnamedFile {
	if f.noDirect.Load() {
		return of
	}
	return &directFile{osFile: of, fs: f, staging: true}
}

// directFile is a new file written sequentially, with O_DIRECT once it
// outgrows the staging buffer. Writes are staged in an aligned buffer and
// written a full buffer at a time; Sync, Stat and Close write what is
// staged first: the aligned part with O_DIRECT, the rest after clearing
// it (later writes then go straight through the page cache). Not safe for
// concurrent use.
type directFile struct {
	osFile
	fs      *osFS
	buf     *[]byte // staging buffer from directBuffers; nil until the first write
	n       int     // staged bytes
	staging bool    // writes are staged; false once flushed
	direct  bool    // O_DIRECT is set on the descriptor
	err     error   // the first write error; every later write returns it
}

func (f *directFile) Write(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	if !f.staging {
		return f.osFile.Write(p)
	}
	if f.buf == nil {
		f.buf = directBuffers.Get().(*[]byte)
	}
	written := 0
	for len(p) > 0 {
		k := copy((*f.buf)[f.n:], p)
		f.n += k
		written += k
		p = p[k:]
		if f.n == directChunk {
			if err := f.writeChunk(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

func (f *directFile) WriteBuffers(bufs [][]byte) (int64, error) {
	if !f.staging && f.err == nil {
		return f.osFile.WriteBuffers(bufs)
	}
	var total int64
	for _, b := range bufs {
		n, err := f.Write(b)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// ReadFull reads n bytes of r into the staging buffer, writing it out
// whenever it fills, and hands each run read to seen. Once staging has
// ended (Sync, Stat) it reads through a buffer and writes.
func (f *directFile) ReadFull(r io.Reader, n int, seen func([]byte)) (int64, error) {
	if f.err != nil {
		return 0, f.err
	}
	if !f.staging {
		return io.CopyN(f.osFile, &seenReader{r: r, seen: seen}, int64(n))
	}
	if f.buf == nil {
		f.buf = directBuffers.Get().(*[]byte)
	}
	var read int64
	for left := n; left > 0; {
		k, err := r.Read((*f.buf)[f.n:min(directChunk, f.n+left)])
		seen((*f.buf)[f.n : f.n+k])
		f.n += k
		read += int64(k)
		left -= k
		if f.n == directChunk {
			if werr := f.writeChunk(); werr != nil {
				return read, werr
			}
		}
		switch {
		case left == 0:
		case err == io.EOF:
			return read, io.ErrUnexpectedEOF
		case err != nil:
			return read, err
		}
	}
	return read, nil
}

// seenReader hands what it reads to seen.
type seenReader struct {
	r    io.Reader
	seen func([]byte)
}

func (s *seenReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.seen(p[:n])
	return n, err
}

// writeChunk writes the full staging buffer, with O_DIRECT unless the
// filesystem refuses it.
func (f *directFile) writeChunk() error {
	if !f.direct && !f.fs.noDirect.Load() {
		switch err := f.setDirect(true); {
		case errors.Is(err, unix.EINVAL):
			f.fs.noDirect.Store(true) // this filesystem does not do O_DIRECT
		case err != nil:
			return err
		default:
			f.direct = true
		}
	}
	return f.writeStaged(directChunk)
}

func (f *directFile) setDirect(on bool) error {
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err == nil {
		if on {
			flags |= unix.O_DIRECT
		} else {
			flags &^= unix.O_DIRECT
		}
		_, err = unix.FcntlInt(f.Fd(), unix.F_SETFL, flags)
	}
	if err != nil && !errors.Is(err, unix.EINVAL) {
		f.err = &fs.PathError{Op: "fcntl", Path: f.Name(), Err: err}
		return f.err
	}
	return err
}

// writeStaged writes the first n staged bytes (n aligned when direct) and
// keeps the rest at the start of the buffer.
func (f *directFile) writeStaged(n int) error {
	buf := *f.buf
	for off := 0; off < n; {
		k, err := unix.Write(int(f.Fd()), buf[off:n])
		if err == unix.EINTR {
			continue
		}
		if err == nil && k == 0 {
			err = unix.EIO
		}
		if err != nil {
			f.err = &fs.PathError{Op: "write", Path: f.Name(), Err: err}
			return f.err
		}
		off += k
		if f.direct && k%directAlign != 0 && off < n {
			// A short write that ends off alignment cannot be continued
			// with O_DIRECT; a full one never does this.
			f.err = &fs.PathError{Op: "write", Path: f.Name(), Err: fmt.Errorf("short direct write of %d bytes", k)}
			return f.err
		}
	}
	f.n = copy(buf, buf[n:f.n])
	return nil
}

// flush writes everything staged and ends staging: the aligned part with
// O_DIRECT if it is set, the rest without.
func (f *directFile) flush() error {
	if f.err != nil {
		return f.err
	}
	if !f.staging {
		return nil
	}
	if f.direct {
		if aligned := f.n &^ (directAlign - 1); aligned > 0 {
			if err := f.writeStaged(aligned); err != nil {
				return err
			}
		}
		if err := f.setDirect(false); err != nil {
			f.err = &fs.PathError{Op: "fcntl", Path: f.Name(), Err: err}
			return f.err
		}
		f.direct = false
	}
	if f.n > 0 {
		if err := f.writeStaged(f.n); err != nil {
			return err
		}
	}
	f.staging = false
	f.release()
	return nil
}

func (f *directFile) release() {
	if f.buf != nil {
		directBuffers.Put(f.buf)
		f.buf = nil
	}
}

func (f *directFile) Sync() error {
	if err := f.flush(); err != nil {
		return err
	}
	return f.osFile.Sync()
}

func (f *directFile) Stat() (fs.FileInfo, error) {
	if err := f.flush(); err != nil {
		return nil, err
	}
	return f.osFile.Stat()
}

func (f *directFile) Close() error {
	err := f.flush()
	f.release()
	if cerr := f.osFile.Close(); err == nil {
		err = cerr
	}
	return err
}
