package server

import (
	"io"
	"io/fs"
	"os"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// FS is the filesystem seam of one data directory. Names are slash-separated
// and relative to the directory; the OS implementation resolves them through
// an os.Root so that no name can leave it.
type FS interface {
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	Rename(oldname, newname string) error
	Remove(name string) error
	MkdirAll(name string, perm fs.FileMode) error
	ReadDir(name string) ([]fs.DirEntry, error)
	Stat(name string) (fs.FileInfo, error)
	// SyncDir fsyncs a directory so that renames and removals in it are durable.
	SyncDir(name string) error
	// SyncFS makes durable everything the filesystem holding the directory
	// has not made durable yet (syncfs(2)).
	SyncFS() error
	// Usage reports the size of the filesystem holding the directory and the
	// bytes available to an unprivileged writer.
	Usage() (total, free uint64, err error)
	// Path is a printable name of the directory.
	Path() string
	Close() error
}

// File is an open file of an FS.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.Closer
	// WriteBuffers writes the buffers in order, as one write(2) would
	// write them concatenated (writev(2)). It may reslice bufs' elements.
	WriteBuffers(bufs [][]byte) (int64, error)
	Sync() error
	Stat() (fs.FileInfo, error)
}

// osFS is the real filesystem of one data directory.
type osFS struct {
	root     *os.Root
	path     string
	noDirect atomic.Bool // the filesystem refused O_DIRECT (fs_direct.go)
}

// OpenOSFS opens (creating it if needed) the data directory dir.
func OpenOSFS(dir string) (FS, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &osFS{root: root, path: dir}, nil
}

// OpenFile opens name. With O_DIRECT in flag (which then must hold
// O_CREATE|O_EXCL and a write mode), the file is a new one written
// sequentially through aligned buffers (directFile); a filesystem that
// refuses O_DIRECT gets an ordinary file instead.
func (f *osFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	if flag&unix.O_DIRECT != 0 {
		return f.openDirect(name, flag, perm)
	}
	file, err := f.root.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{file}, nil
}

// osFile is an open file of an osFS.
type osFile struct{ *os.File }

func (f osFile) WriteBuffers(bufs [][]byte) (int64, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var total int64
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		for {
			for len(bufs) > 0 && len(bufs[0]) == 0 {
				bufs = bufs[1:]
			}
			if len(bufs) == 0 {
				return true
			}
			n, err := unix.Writev(int(fd), bufs[:min(len(bufs), 1024)]) // IOV_MAX
			if err == unix.EINTR {
				continue
			}
			if n > 0 {
				total += int64(n)
			}
			if err != nil {
				werr = &fs.PathError{Op: "write", Path: f.Name(), Err: err}
				return true
			}
			if n == 0 {
				werr = io.ErrShortWrite
				return true
			}
			for n > 0 { // skip what was written
				k := min(n, len(bufs[0]))
				bufs[0], n = bufs[0][k:], n-k
				if len(bufs[0]) == 0 {
					bufs = bufs[1:]
				}
			}
		}
	})
	if err == nil {
		err = werr
	}
	return total, err
}

func (f *osFS) Rename(oldname, newname string) error         { return f.root.Rename(oldname, newname) }
func (f *osFS) Remove(name string) error                     { return f.root.Remove(name) }
func (f *osFS) MkdirAll(name string, perm fs.FileMode) error { return f.root.MkdirAll(name, perm) }
func (f *osFS) Stat(name string) (fs.FileInfo, error)        { return f.root.Stat(name) }
func (f *osFS) Path() string                                 { return f.path }
func (f *osFS) Close() error                                 { return f.root.Close() }

func (f *osFS) ReadDir(name string) ([]fs.DirEntry, error) {
	d, err := f.root.Open(name)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.ReadDir(-1)
}

func (f *osFS) SyncDir(name string) error {
	d, err := f.root.Open(name)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}

func (f *osFS) SyncFS() error {
	d, err := f.root.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Syncfs(int(d.Fd()))
}

func (f *osFS) Usage() (total, free uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(f.path, &st); err != nil {
		return 0, 0, err
	}
	return st.Blocks * uint64(st.Bsize), st.Bavail * uint64(st.Bsize), nil
}
