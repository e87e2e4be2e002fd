// Package faultfs wraps a storage node filesystem (server.FS) to inject
// faults: failing opens, writes, fsyncs, renames and directory syncs with an
// error of the test's choosing (syscall.ENOSPC, syscall.EIO, ...), and
// corrupting bytes as they are read. It wraps the real filesystem, in the
// manner of pebble's errorfs, so that everything not injected is real I/O.
package faultfs

import (
	"io/fs"
	"path"
	"sync"

	"github.com/clipstore/clipstore/server"
)

// Op is a filesystem operation that can fail.
type Op int

// The operations an Injector sees.
const (
	OpOpen Op = iota
	OpWrite
	OpSync
	OpRead
	OpRename
	OpRemove
	OpMkdir
	OpSyncDir
	OpReadDir
	OpSyncFS
	OpLink
)

var opNames = [...]string{"open", "write", "sync", "read", "rename", "remove", "mkdir", "syncdir", "readdir", "syncfs", "link"}

func (o Op) String() string { return opNames[o] }

// Injector decides whether op on name fails, and with which error. It is
// called before the real operation; a nil return lets it proceed.
// CreateUnnamed is OpOpen of the directory's name and a slash ("shards/0a/"),
// which is also the name of the file's later operations; its Link is OpLink
// of the name it gives, and its SyncDir OpSyncDir of the directory. An
// Injector that answers errors.ErrUnsupported to CreateUnnamed makes the
// node write through named temp files, as on a filesystem without
// O_TMPFILE.
type Injector func(op Op, name string) error

// Corrupter may change the bytes p just read from name at offset off.
type Corrupter func(name string, off int64, p []byte)

// FS is a server.FS with injectable faults. Its zero faults pass every call
// through.
type FS struct {
	server.FS
	mu      sync.Mutex
	inject  Injector
	corrupt Corrupter
}

// Wrap returns fsys with fault injection.
func Wrap(fsys server.FS) *FS { return &FS{FS: fsys} }

// SetInjector replaces the injector; nil removes it.
func (f *FS) SetInjector(inj Injector) {
	f.mu.Lock()
	f.inject = inj
	f.mu.Unlock()
}

// SetCorrupter replaces the read corrupter; nil removes it.
func (f *FS) SetCorrupter(c Corrupter) {
	f.mu.Lock()
	f.corrupt = c
	f.mu.Unlock()
}

func (f *FS) check(op Op, name string) error {
	f.mu.Lock()
	inj := f.inject
	f.mu.Unlock()
	if inj == nil {
		return nil
	}
	return inj(op, name)
}

func (f *FS) corrupter() Corrupter {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.corrupt
}

func (f *FS) OpenFile(name string, flag int, perm fs.FileMode) (server.File, error) {
	if err := f.check(OpOpen, name); err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &File{File: file, fs: f, name: name}, nil
}

func (f *FS) CreateUnnamed(dir string, flag int, perm fs.FileMode) (server.UnnamedFile, error) {
	name := dir + "/"
	if err := f.check(OpOpen, name); err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	file, err := f.FS.CreateUnnamed(dir, flag, perm)
	if err != nil {
		return nil, err
	}
	return &Unnamed{File: File{File: file, fs: f, name: name}, u: file, dir: dir}, nil
}

// Unnamed is a file of a faulty FS made by CreateUnnamed.
type Unnamed struct {
	File
	u   server.UnnamedFile
	dir string
}

func (f *Unnamed) Link(name string) error {
	full := path.Join(f.dir, name)
	if err := f.fs.check(OpLink, full); err != nil {
		return &fs.PathError{Op: "link", Path: full, Err: err}
	}
	return f.u.Link(name)
}

func (f *Unnamed) SyncDir() error {
	if err := f.fs.check(OpSyncDir, f.dir); err != nil {
		return &fs.PathError{Op: "fsync", Path: f.dir, Err: err}
	}
	return f.u.SyncDir()
}

func (f *FS) Rename(oldname, newname string) error {
	if err := f.check(OpRename, newname); err != nil {
		return &fs.PathError{Op: "rename", Path: newname, Err: err}
	}
	return f.FS.Rename(oldname, newname)
}

func (f *FS) Remove(name string) error {
	if err := f.check(OpRemove, name); err != nil {
		return &fs.PathError{Op: "remove", Path: name, Err: err}
	}
	return f.FS.Remove(name)
}

func (f *FS) MkdirAll(name string, perm fs.FileMode) error {
	if err := f.check(OpMkdir, name); err != nil {
		return &fs.PathError{Op: "mkdir", Path: name, Err: err}
	}
	return f.FS.MkdirAll(name, perm)
}

func (f *FS) SyncDir(name string) error {
	if err := f.check(OpSyncDir, name); err != nil {
		return &fs.PathError{Op: "fsync", Path: name, Err: err}
	}
	return f.FS.SyncDir(name)
}

func (f *FS) SyncFS() error {
	if err := f.check(OpSyncFS, "."); err != nil {
		return &fs.PathError{Op: "syncfs", Path: ".", Err: err}
	}
	return f.FS.SyncFS()
}

func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	if err := f.check(OpReadDir, name); err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	return f.FS.ReadDir(name)
}

// File is a file of a faulty FS.
type File struct {
	server.File
	fs   *FS
	name string
	off  int64 // for sequential reads
}

func (f *File) Write(p []byte) (int, error) {
	if err := f.fs.check(OpWrite, f.name); err != nil {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: err}
	}
	return f.File.Write(p)
}

func (f *File) WriteBuffers(bufs [][]byte) (int64, error) {
	if err := f.fs.check(OpWrite, f.name); err != nil {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: err}
	}
	return f.File.WriteBuffers(bufs)
}

func (f *File) Sync() error {
	if err := f.fs.check(OpSync, f.name); err != nil {
		return &fs.PathError{Op: "fsync", Path: f.name, Err: err}
	}
	return f.File.Sync()
}

func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if err := f.fs.check(OpRead, f.name); err != nil {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: err}
	}
	n, err := f.File.ReadAt(p, off)
	if c := f.fs.corrupter(); c != nil && n > 0 {
		c(f.name, off, p[:n])
	}
	return n, err
}

func (f *File) Read(p []byte) (int, error) {
	if err := f.fs.check(OpRead, f.name); err != nil {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: err}
	}
	n, err := f.File.Read(p)
	if c := f.fs.corrupter(); c != nil && n > 0 {
		c(f.name, f.off, p[:n])
	}
	f.off += int64(n)
	return n, err
}
