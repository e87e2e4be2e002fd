package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"sync/atomic"

	"github.com/google/uuid"
)

// Names inside a data directory.
const (
	identityFile = "CLIPSTORE_DISK"
	shardsDir    = "shards"
	tmpDir       = "tmp"
)

// diskFormat is the version of a data directory's layout, kept in its
// identity file. Format 1 had two fan-out levels made on demand
// (shards/ab/cd/<id>), so a young disk created and fsynced a new directory
// for almost every shard it stored; format 2 has one level of 256
// directories (shards/cd/<id>), all made when the disk is first opened.
const diskFormat = 2

// diskIdentity is the content of a data directory's identity file.
type diskIdentity struct {
	Format      int    `json:"format"`
	Incarnation string `json:"incarnation"`
}

// disk is one data directory of the node.
type disk struct {
	fs          FS
	incarnation string
	shards      atomic.Int64 // shard files
	shardBytes  atomic.Int64 // their sizes on disk
}

// openDisk prepares a data directory: its layout, its incarnation UUID
// (created the first time the directory is used) and a clean tmp/.
func openDisk(fsys FS, log *slog.Logger) (*disk, error) {
	for _, dir := range []string{shardsDir, tmpDir} {
		if err := fsys.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("disk %s: create %s: %w", fsys.Path(), dir, err)
		}
	}
	d := &disk{fs: fsys}
	inc, err := loadOrCreateIdentity(fsys, log)
	if err != nil {
		return nil, fmt.Errorf("disk %s: %w", fsys.Path(), err)
	}
	d.incarnation = inc
	for i := range fanout {
		if err := fsys.MkdirAll(fanoutDir(byte(i)), 0o755); err != nil {
			return nil, fmt.Errorf("disk %s: create %s: %w", fsys.Path(), fanoutDir(byte(i)), err)
		}
	}
	if err := d.cleanTmp(log); err != nil {
		return nil, fmt.Errorf("disk %s: clean %s: %w", fsys.Path(), tmpDir, err)
	}
	// A process that died (this node's last run, or a tool) may have left
	// directory entries only in the page cache: a fan-out directory made
	// just now or by a run that died before it synced, say. A write trusts
	// the fan-out directory and fsyncs only it, so make everything durable
	// before serving, as PostgreSQL does when it recovers (syncfs at
	// start). It costs one flush of the filesystem.
	if err := fsys.SyncFS(); err != nil {
		return nil, fmt.Errorf("disk %s: syncfs at start: %w", fsys.Path(), err)
	}
	return d, nil
}

func loadOrCreateIdentity(fsys FS, log *slog.Logger) (string, error) {
	if id, err := readIdentity(fsys); err == nil {
		return id.Incarnation, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	id := diskIdentity{Format: diskFormat, Incarnation: uuid.NewString()}
	b, _ := json.Marshal(id)
	if err := writeFileDurable(fsys, identityFile, append(b, '\n')); err != nil {
		return "", fmt.Errorf("write identity: %w", err)
	}
	log.Info("new disk incarnation", "disk", fsys.Path(), "incarnation", id.Incarnation)
	return id.Incarnation, nil
}

func readIdentity(fsys FS) (diskIdentity, error) {
	var id diskIdentity
	f, err := fsys.OpenFile(identityFile, os.O_RDONLY, 0)
	if err != nil {
		return id, err
	}
	defer f.Close()
	if err := json.NewDecoder(f).Decode(&id); err != nil {
		return id, fmt.Errorf("%w: identity file %s: %w", ErrDiskFormat, identityFile, err)
	}
	if id.Format == 1 {
		return id, fmt.Errorf("%w: identity file %s: disk format 1 (shards/ab/cd/<id>) predates this version, "+
			"which reads format %d (shards/cd/<id>); drain the node with the release that wrote it, then wipe the directory",
			ErrDiskFormat, identityFile, diskFormat)
	}
	if _, err := uuid.Parse(id.Incarnation); err != nil || id.Format != diskFormat {
		return id, fmt.Errorf("%w: identity file %s: format %d, incarnation %q", ErrDiskFormat, identityFile, id.Format, id.Incarnation)
	}
	return id, nil
}

// writeFileDurable writes name through a temp file, fsync, rename and a
// directory fsync.
func writeFileDurable(fsys FS, name string, data []byte) error {
	tmp := path.Join(tmpDir, name+".tmp")
	f, err := fsys.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fsys.Rename(tmp, name); err != nil {
		return err
	}
	return fsys.SyncDir(".")
}

// cleanTmp removes what interrupted writes left behind. Nothing in tmp/ was
// ever visible, so removing it loses nothing.
func (d *disk) cleanTmp(log *slog.Logger) error {
	entries, err := d.fs.ReadDir(tmpDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := d.fs.Remove(path.Join(tmpDir, e.Name())); err != nil {
			return err
		}
	}
	if len(entries) > 0 {
		log.Info("removed interrupted writes", "disk", d.fs.Path(), "files", len(entries))
		return d.fs.SyncDir(tmpDir)
	}
	return nil
}

// scan walks shards/ and calls found for every shard file. Names that are
// not shard files in their right place are logged and left alone.
func (d *disk) scan(log *slog.Logger, found func(id ShardID, size int64)) error {
	dirs, err := d.fs.ReadDir(shardsDir)
	if err != nil {
		return err
	}
	for _, dir := range dirs {
		name := path.Join(shardsDir, dir.Name())
		if !dir.IsDir() {
			log.Warn("unexpected file in shard directory", "disk", d.fs.Path(), "path", name)
			continue
		}
		files, err := d.fs.ReadDir(name)
		if err != nil {
			return err
		}
		for _, f := range files {
			id, ok := parseShardIDHex(f.Name())
			if !ok || id.relPath() != path.Join(name, f.Name()) || !f.Type().IsRegular() {
				log.Warn("unexpected file in shard directory", "disk", d.fs.Path(), "path", path.Join(name, f.Name()))
				continue
			}
			info, err := f.Info()
			if err != nil {
				return err
			}
			found(id, info.Size())
		}
	}
	return nil
}

func (d *disk) add(size int64) {
	d.shards.Add(1)
	d.shardBytes.Add(size)
}

func (d *disk) sub(size int64) {
	d.shards.Add(-1)
	d.shardBytes.Add(-size)
}
