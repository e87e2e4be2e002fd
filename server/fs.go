package server

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// FS is the filesystem seam of one data directory. Names are slash-separated
// and relative to the directory; the OS implementation resolves them through
// an os.Root so that no name can leave it.
type FS interface {
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	// CreateUnnamed creates a file with no name in the directory dir
	// (O_TMPFILE), for UnnamedFile.Link to name once it is complete: until
	// then no directory is written, and a process that dies leaves nothing
	// behind (the kernel frees the file; after a power cut, the
	// filesystem's own recovery does). flag is OpenFile's for a new file (a
	// write mode, and O_DIRECT for a directFile). errors.ErrUnsupported if
	// the filesystem cannot.
	CreateUnnamed(dir string, flag int, perm fs.FileMode) (UnnamedFile, error)
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

// UnnamedFile is a file made by FS.CreateUnnamed. Close before Link
// drops it.
type UnnamedFile interface {
	File
	// Link gives the file the name name (no slash) in its directory;
	// fs.ErrExist if the name is taken. The link is durable once the file
	// is synced again (its link count) and then its directory.
	Link(name string) error
	// SyncDir fsyncs the file's directory.
	SyncDir() error
}

// osFS is the real filesystem of one data directory.
type osFS struct {
	root      *os.Root
	path      string
	noDirect  atomic.Bool // the filesystem refused O_DIRECT (fs_direct.go)
	noUnnamed atomic.Bool // the filesystem refused O_TMPFILE, or /proc/self/fd is missing
	linkable  atomic.Bool // /proc/self/fd was found once
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
	return osFile{File: file}, nil
}

// CreateUnnamed opens an O_TMPFILE file in dir, which Link names through
// /proc/self/fd (linkat(2) with AT_EMPTY_PATH would need
// CAP_DAC_READ_SEARCH). On ext4 without a journal, fsync of a file created
// under a name also writes its directory; a shard's temp file in tmp/ made
// every write wait for tmp/ as well as the shard's own directory
// (docs/performance.md).
func (f *osFS) CreateUnnamed(dir string, flag int, perm fs.FileMode) (UnnamedFile, error) {
	if f.noUnnamed.Load() {
		return nil, errors.ErrUnsupported
	}
	d, err := f.root.Open(dir)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Openat(int(d.Fd()), ".", unix.O_TMPFILE|(flag&(unix.O_WRONLY|unix.O_RDWR))|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		d.Close()
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) {
			// EISDIR: a kernel that predates O_TMPFILE (3.11) took it for
			// O_DIRECTORY.
			f.noUnnamed.Store(true)
			return nil, errors.ErrUnsupported
		}
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	file := os.NewFile(uintptr(fd), path.Join(dir, "(unnamed)"))
	if !f.linkable.Load() {
		if _, err := os.Stat(procFd(fd)); err != nil {
			file.Close()
			d.Close()
			f.noUnnamed.Store(true)
			return nil, errors.ErrUnsupported
		}
		f.linkable.Store(true)
	}
	of := osFile{File: file, dir: d}
	if flag&unix.O_DIRECT == 0 {
		return of, nil
	}
	return f.withDirect(of), nil
}

func procFd(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// osFile is an open file of an osFS.
type osFile struct {
	*os.File
	dir *os.File // the directory of a file made by CreateUnnamed, else nil
}

func (f osFile) Close() error {
	err := f.File.Close()
	if f.dir != nil {
		if derr := f.dir.Close(); err == nil {
			err = derr
		}
	}
	return err
}

// Link is UnnamedFile.Link, for a file made by CreateUnnamed; name must
// not leave the directory.
func (f osFile) Link(name string) error {
	if f.dir == nil || name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return fmt.Errorf("link %s as %q: not an unnamed file, or a name that leaves its directory", f.Name(), name)
	}
	if err := unix.Linkat(unix.AT_FDCWD, procFd(int(f.Fd())), int(f.dir.Fd()), name, unix.AT_SYMLINK_FOLLOW); err != nil {
		return &os.LinkError{Op: "link", Old: f.Name(), New: path.Join(path.Dir(f.Name()), name), Err: err}
	}
	return nil
}

// SyncDir is UnnamedFile.SyncDir, for a file made by CreateUnnamed.
func (f osFile) SyncDir() error {
	if f.dir == nil {
		return fmt.Errorf("sync directory of %s: not an unnamed file", f.Name())
	}
	return f.dir.Sync()
}

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
