package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
)

// AuditResult is what a file audit found.
type AuditResult struct {
	// Shards counts the index entries checked against their files.
	Shards int
	// Lost lists the shards whose file is gone, removed behind the node's
	// back; they are dropped from the index. Corrupt lists those whose file
	// no longer has the size it was written with.
	Lost, Corrupt []ShardID
	// DirsMade counts the directories of the layout (shards/, its fan-out
	// directories, tmp/) that were missing and were made again.
	DirsMade int
	// Failed lists the disks the audit could not read or repair; they take
	// no new shards until an audit succeeds on them.
	Failed []string
}

// AuditFiles checks the node's index against the files on its disks, the
// cheap way: one directory listing per fan-out directory (and a stat of
// each file it lists, for its size), not an open per shard. A shard whose
// file is gone is lost: it is dropped from the index, so that it is
// reported missing to meta and later reads and inventories agree. A file
// whose size changed is damaged. A layout directory that is missing is made
// again, so that writes keep working; a disk whose layout cannot be read or
// made is marked failed, and gets no new shards until an audit of it
// succeeds. Shards indexed while a directory is listed, and shards the
// node is deleting, are left for the next audit: neither is a loss.
func (s *Store) AuditFiles(ctx context.Context) (AuditResult, error) {
	var res AuditResult
	for _, d := range s.disks {
		if err := s.auditDisk(ctx, d, &res); err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return res, err
			}
			d.fail(s.log, err)
			res.Failed = append(res.Failed, d.fs.Path())
			continue
		}
		d.recover(s.log)
	}
	return res, nil
}

func (s *Store) auditDisk(ctx context.Context, d *disk, res *AuditResult) error {
	made, err := d.repairLayout()
	res.DirsMade += made
	if made > 0 {
		s.log.Warn("shard directories were missing; made them again", "disk", d.fs.Path(), "dirs", made)
	}
	if err != nil {
		return err
	}
	for b := range fanout {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.auditDir(d, byte(b), res); err != nil {
			return err
		}
	}
	return nil
}

// auditDir checks the index entries of one fan-out directory of d.
func (s *Store) auditDir(d *disk, b byte, res *AuditResult) error {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	snapshot := s.mu.seq // entries indexed after it may be missing from the listing
	s.mu.Unlock()
	dir := fanoutDir(b)
	files, err := d.listDir(dir)
	if err != nil {
		return err
	}
	var check []indexEntry
	s.mu.Lock()
	var first ShardID
	first[len(first)-1] = b
	s.mu.index.AscendGreaterOrEqual(indexEntry{id: first}, func(e indexEntry) bool {
		if e.id[len(e.id)-1] != b {
			return false
		}
		if _, deleting := s.mu.deleting[e.id]; e.disk == d && e.seq <= snapshot && !deleting {
			check = append(check, e)
		}
		return true
	})
	s.mu.Unlock()
	for _, e := range check {
		res.Shards++
		size, ok := files[e.id]
		switch {
		case !ok:
			if s.forgetLost(e) {
				res.Lost = append(res.Lost, e.id)
			}
		case size >= 0 && size != e.size:
			res.Corrupt = append(res.Corrupt, e.id)
		}
	}
	return nil
}

// listDir lists the shard files of one fan-out directory with their sizes
// (-1 when a stat failed for another reason than the file being gone). A
// directory that vanished is made again and listed as empty.
func (d *disk) listDir(dir string) (map[ShardID]int64, error) {
	entries, err := d.fs.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := d.makeDirs([]string{dir}); err != nil {
			return nil, err
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	files := make(map[ShardID]int64, len(entries))
	for _, e := range entries {
		id, ok := parseShardIDHex(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue // deleted since the listing
		case err != nil:
			files[id] = -1
		default:
			files[id] = info.Size()
		}
	}
	return files, nil
}

// repairLayout makes the layout directories that are missing (shards/, its
// 256 fan-out directories, tmp/), durably, and returns how many it made.
func (d *disk) repairLayout() (int, error) {
	var missing []string
	entries, err := d.fs.ReadDir(shardsDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		missing = append(missing, shardsDir)
	case err != nil:
		return 0, fmt.Errorf("list %s: %w", shardsDir, err)
	}
	have := make(map[string]bool, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			have[path.Join(shardsDir, e.Name())] = true
		}
	}
	for b := range fanout {
		if dir := fanoutDir(byte(b)); !have[dir] {
			missing = append(missing, dir)
		}
	}
	if _, err := d.fs.Stat(tmpDir); errors.Is(err, fs.ErrNotExist) {
		missing = append(missing, tmpDir)
	} else if err != nil {
		return 0, fmt.Errorf("stat %s: %w", tmpDir, err)
	}
	if err := d.makeDirs(missing); err != nil {
		return 0, err
	}
	return len(missing), nil
}

// inDir runs op, which works in the layout's directory dir. If op finds
// dir missing (someone removed it behind the node's back: the next audit
// reports what was in it), dir is made again and op runs once more.
func (d *disk) inDir(log *slog.Logger, dir string, op func() error) error {
	err := op()
	if errors.Is(err, fs.ErrNotExist) && d.makeDirs([]string{dir}) == nil {
		log.Warn("directory was missing; made it again", "disk", d.fs.Path(), "dir", dir)
		err = op()
	}
	return err
}

// makeDirs makes directories of the layout and fsyncs their parents, so
// that a shard renamed into one of them is durable once its own directory
// is synced.
func (d *disk) makeDirs(dirs []string) error {
	parents := map[string]bool{}
	for _, dir := range dirs {
		if err := d.fs.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("make %s: %w", dir, err)
		}
		parents[parentDir(dir)] = true
		if parentDir(dir) != "." {
			parents["."] = true // shards/ itself may be new
		}
	}
	for p := range parents {
		if err := d.fs.SyncDir(p); err != nil {
			return fmt.Errorf("sync %s: %w", p, err)
		}
	}
	return nil
}
