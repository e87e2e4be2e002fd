package server

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"sync"
	"syscall"

	"github.com/google/btree"
)

// Store is the shard store of one node: its disks and an in-memory index of
// the shards on them, rebuilt from the directories at start-up. It is safe
// for concurrent use; its lock is never held across disk I/O.
type Store struct {
	cfg     Config
	log     *slog.Logger
	disks   []*disk
	metrics *metrics

	mu struct {
		sync.Mutex
		index    *btree.BTreeG[indexEntry] // every visible shard, by id
		writing  map[ShardID]struct{}      // ids with a write in flight
		deleting map[ShardID]struct{}      // ids the node is deleting
		seq      uint64                    // of the last entry indexed
		closed   bool
	}
}

type indexEntry struct {
	id   ShardID
	disk *disk
	size int64  // file size
	seq  uint64 // when it was indexed: entries with a larger seq are younger
}

func entryLess(a, b indexEntry) bool { return a.id.Less(b.id) }

// OpenStore opens every data directory of cfg, removes what interrupted
// writes left behind and indexes the shards found.
func OpenStore(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.mu.index = btree.NewG(32, entryLess)
	s.mu.writing = make(map[ShardID]struct{})
	s.mu.deleting = make(map[ShardID]struct{})
	openFS := cfg.OpenFS
	if openFS == nil {
		openFS = OpenOSFS
	}
	for _, dir := range cfg.DataDirs {
		fsys, err := openFS(dir)
		if err != nil {
			s.closeDisks()
			return nil, fmt.Errorf("open data dir %s: %w", dir, err)
		}
		d, err := openDisk(fsys, s.log)
		if err != nil {
			fsys.Close()
			s.closeDisks()
			return nil, err
		}
		s.disks = append(s.disks, d)
		if err := s.indexDisk(d); err != nil {
			s.closeDisks()
			return nil, err
		}
	}
	s.metrics = newMetrics(cfg.Registerer, s)
	return s, nil
}

func (s *Store) indexDisk(d *disk) error {
	err := d.scan(s.log, func(id ShardID, size int64) {
		if old, dup := s.mu.index.Get(indexEntry{id: id}); dup {
			s.log.Warn("shard found on two disks; serving the first", "shard", id,
				"disk", old.disk.fs.Path(), "ignored", d.fs.Path())
			return
		}
		s.insertLocked(indexEntry{id: id, disk: d, size: size})
	})
	if err != nil {
		return fmt.Errorf("scan disk %s: %w", d.fs.Path(), err)
	}
	s.log.Info("disk ready", "disk", d.fs.Path(), "incarnation", d.incarnation, "shards", d.shards.Load())
	return nil
}

// Close refuses new work and closes the disks. Callers stop the gRPC server
// first so that no request is still using them.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return nil
	}
	s.mu.closed = true
	s.mu.Unlock()
	return s.closeDisks()
}

func (s *Store) closeDisks() error {
	var errs []error
	for _, d := range s.disks {
		errs = append(errs, d.fs.Close())
	}
	return errors.Join(errs...)
}

// insertLocked indexes a shard file, younger than every entry before it.
func (s *Store) insertLocked(e indexEntry) {
	s.mu.seq++
	e.seq = s.mu.seq
	s.mu.index.ReplaceOrInsert(e)
	e.disk.add(e.size)
}

// forgetLost drops e from the index if its file is gone behind the node's
// back: e is still the indexed entry of its id (not one written since) and
// the node is not deleting it itself. It reports whether it dropped it: a
// shard lost, which the caller reports to meta. The node's own deletions
// mark their ids before unlinking, under the same lock, so a file a
// deletion removed is never taken for a loss.
func (s *Store) forgetLost(e indexEntry) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.mu.index.Get(indexEntry{id: e.id})
	if _, deleting := s.mu.deleting[e.id]; !ok || deleting || cur.disk != e.disk || cur.seq != e.seq {
		return false
	}
	s.mu.index.Delete(cur)
	cur.disk.sub(cur.size)
	return true
}

// fileGone is the error for an indexed shard whose file is not there:
// ErrShardLost if it was lost behind the node's back (and is now dropped
// from the index), plain ErrNotFound if the node deleted it meanwhile.
func (s *Store) fileGone(e indexEntry) error {
	if s.forgetLost(e) {
		return fmt.Errorf("%w: %s", ErrShardLost, e.id)
	}
	return fmt.Errorf("%w: %s (deleted)", ErrNotFound, e.id)
}

// lookup finds the disk holding id.
func (s *Store) lookup(id ShardID) (indexEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return indexEntry{}, ErrClosed
	}
	e, ok := s.mu.index.Get(indexEntry{id: id})
	if !ok {
		return indexEntry{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return e, nil
}

// Delete removes a shard and makes the removal durable. It reports whether
// the shard existed; deleting a missing shard is not an error.
func (s *Store) Delete(id ShardID) (existed bool, err error) {
	r := s.DeleteMany([]ShardID{id})[0]
	return r.Existed, r.Err
}

// DeleteResult is the outcome of deleting one shard.
type DeleteResult struct {
	Existed bool
	Err     error
}

// DeleteMany removes shards and makes the removals durable, fsyncing each
// fan-out directory once for all the shards removed from it: meta hands
// deletions over in batches, and one fsync per shard would cost a disk
// write each. Results are in the order of ids; an id given twice is
// reported as a second Delete would report it.
func (s *Store) DeleteMany(ids []ShardID) []DeleteResult {
	res := make([]DeleteResult, len(ids))
	type dirKey struct {
		d   *disk
		dir string
	}
	removed := make(map[dirKey][]int) // the shards unlinked from each directory
	first := make(map[ShardID]int, len(ids))
	var dups []int
	s.markDeleting(ids, true)
	defer s.markDeleting(ids, false)
	for i, id := range ids {
		if _, ok := first[id]; ok {
			dups = append(dups, i)
			continue
		}
		first[id] = i
		e, err := s.lookup(id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			res[i].Err = err
			continue
		}
		rel := id.relPath()
		if err := e.disk.fs.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
			res[i].Err = fmt.Errorf("delete shard %s: %w", id, err)
			continue
		}
		k := dirKey{e.disk, parentDir(rel)}
		removed[k] = append(removed[k], i)
	}
	for k, idx := range removed {
		err := k.d.fs.SyncDir(k.dir)
		s.mu.Lock()
		for _, i := range idx {
			if err != nil {
				res[i].Err = fmt.Errorf("delete shard %s: sync dir: %w", ids[i], err)
				continue
			}
			res[i].Existed = true
			if cur, ok := s.mu.index.Get(indexEntry{id: ids[i]}); ok && cur.disk == k.d {
				s.mu.index.Delete(cur)
				cur.disk.sub(cur.size)
			}
		}
		s.mu.Unlock()
	}
	for _, i := range dups {
		res[i] = DeleteResult{Err: res[first[ids[i]]].Err}
	}
	return res
}

// markDeleting marks ids as being deleted by the node (on) or no longer
// (off), so that their files vanishing is not taken for a loss.
func (s *Store) markDeleting(ids []ShardID, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if on {
			s.mu.deleting[id] = struct{}{}
		} else {
			delete(s.mu.deleting, id)
		}
	}
}

// List returns up to limit shards with ids after startAfter (all ids when
// startAfter is nil), in index order (ShardID.Less), and whether more follow.
func (s *Store) List(startAfter *ShardID, limit int) (entries []ShardEntry, more bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return nil, false, ErrClosed
	}
	visit := func(e indexEntry) bool {
		if startAfter != nil && e.id == *startAfter {
			return true
		}
		if len(entries) == limit {
			more = true
			return false
		}
		entries = append(entries, ShardEntry{ID: e.id, FileSize: e.size, Disk: e.disk.fs.Path()})
		return true
	}
	if startAfter == nil {
		s.mu.index.Ascend(visit)
	} else {
		s.mu.index.AscendGreaterOrEqual(indexEntry{id: *startAfter}, visit)
	}
	return entries, more, nil
}

// ShardEntry is one line of a listing.
type ShardEntry struct {
	ID       ShardID
	FileSize int64
	Disk     string
}

// DiskUsage describes one disk for NodeInfo and the heartbeats.
type DiskUsage struct {
	Path                  string
	Incarnation           string
	Capacity, Used, Free  uint64
	ShardCount, ShardSize uint64
	// Failed says why the disk is failed (see AuditFiles); empty when it
	// is usable. A failed disk reports no free space.
	Failed string
}

// Usage reports every disk's capacity and shard totals.
func (s *Store) Usage() ([]DiskUsage, error) {
	out := make([]DiskUsage, 0, len(s.disks))
	for _, d := range s.disks {
		total, free, err := d.fs.Usage()
		if err != nil {
			return nil, fmt.Errorf("disk %s: statfs: %w", d.fs.Path(), err)
		}
		u := DiskUsage{
			Path: d.fs.Path(), Incarnation: d.incarnation,
			Capacity: total, Free: free, Used: total - min(free, total),
			ShardCount: uint64(d.shards.Load()), ShardSize: uint64(d.shardBytes.Load()),
		}
		if ferr := d.failure(); ferr != nil {
			u.Free, u.Failed = 0, ferr.Error()
		}
		out = append(out, u)
	}
	return out, nil
}

// pickDisk chooses a disk for a new shard at random, weighted by free
// space, so that disks fill evenly and writes spread over all of them.
func (s *Store) pickDisk() (*disk, error) {
	if len(s.disks) == 1 {
		if err := s.disks[0].failure(); err != nil {
			return nil, fmt.Errorf("no usable disk: %s failed: %w", s.disks[0].fs.Path(), err)
		}
		return s.disks[0], nil
	}
	free := make([]uint64, len(s.disks))
	var total uint64
	var errs []error
	for i, d := range s.disks {
		if err := d.failure(); err != nil {
			errs = append(errs, fmt.Errorf("disk %s failed: %w", d.fs.Path(), err))
			continue
		}
		_, f, err := d.fs.Usage()
		if err != nil {
			errs = append(errs, fmt.Errorf("disk %s: %w", d.fs.Path(), err))
			continue
		}
		free[i] = f + 1 // a full disk keeps a tiny chance: its error is the one to report
		total += free[i]
	}
	if total == 0 {
		return nil, fmt.Errorf("no usable disk: %w", errors.Join(errs...))
	}
	x := rand.Uint64N(total)
	for i, f := range free {
		if x < f {
			return s.disks[i], nil
		}
		x -= f
	}
	return s.disks[len(s.disks)-1], nil
}

// diskError classifies a filesystem error: a full disk is ErrNoSpace.
func diskError(op string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%s: %w: %w", op, ErrNoSpace, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func parentDir(rel string) string {
	for i := len(rel) - 1; i >= 0; i-- {
		if rel[i] == '/' {
			return rel[:i]
		}
	}
	return "."
}
