package meta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	pb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// fsm is the meta state machine: all state lives in one bbolt file, and
// entries are applied in bbolt transactions that also record the index of
// the last entry, so a re-applied entry is a no-op.
//
// Commits are grouped, as etcd's backend groups them: applied entries
// accumulate in one open write transaction across Raft batches, and it
// commits (two fsyncs) once it is commitInterval old or holds
// commitEntries entries, before any read, before a snapshot and on close.
// Answers go out as soon as an entry is applied to the open transaction:
// the entry is already durable in the Raft log of a quorum, and a member
// that dies with an uncommitted transaction re-applies those entries from
// its own log when it restarts (raft replays from the newest snapshot's
// index, and Snapshot commits first, so the log always covers them). Reads
// always see every applied entry, because view commits first.
type fsm struct {
	path string
	log  *slog.Logger
	opts fsmOptions
	// batchSize observes entries per ApplyBatch; nil in bare FSM tests.
	batchSize prometheus.Observer

	// mu guards db: readers hold it shared for a whole bbolt transaction;
	// Restore swaps the file under it exclusively.
	mu sync.RWMutex
	db *bolt.DB

	// wmu guards the open write transaction: ApplyBatch, commits and
	// Restore hold it (inside mu). wtx is nil when nothing is pending;
	// pendingSince and pending are its age and entry count.
	wmu          sync.Mutex
	wtx          *bolt.Tx
	pendingSince time.Time
	pending      int

	// applied is the last applied Raft index, for waiters (linearizable
	// reads). Guarded by appliedMu; appliedCond broadcasts advances.
	appliedMu   sync.Mutex
	appliedCond *sync.Cond
	applied     uint64

	stop    chan struct{}
	stopped chan struct{}
}

type fsmOptions struct {
	// requestTTL is how long a request id's outcome is remembered. It must
	// be the same on every member: it is part of the replicated behaviour.
	requestTTL time.Duration
	// fatal is called on a local disk error inside Apply, after which the
	// member must not go on (its state would diverge). Default: panic.
	fatal func(error)
	// commitInterval and commitEntries bound how long and how many applied
	// entries wait in the open write transaction before it commits
	// (defaults: defaultCommitInterval, defaultCommitEntries). A negative
	// commitInterval commits every batch at once.
	commitInterval time.Duration
	commitEntries  int
}

// Group commit defaults: etcd's backend commits every 100 ms or 10,000
// changes; a shorter interval keeps the work a crash leaves to replay
// small, and commits this rare already cost little.
const (
	defaultCommitInterval = 20 * time.Millisecond
	defaultCommitEntries  = 10_000
)

// bboltOptions: a large initial mmap so that a long read transaction (a
// snapshot being streamed) does not block the remap a growing file needs;
// the freelist is not synced on every commit (it is rebuilt on open, as
// etcd does), which keeps commit cost flat as the file grows.
func bboltOptions() *bolt.Options {
	return &bolt.Options{Timeout: 5 * time.Second, InitialMmapSize: 1 << 30,
		FreelistType: bolt.FreelistMapType, NoFreelistSync: true}
}

func openFSM(path string, log *slog.Logger, opts fsmOptions) (*fsm, error) {
	f := &fsm{path: path, log: log, opts: opts}
	f.appliedCond = sync.NewCond(&f.appliedMu)
	if f.opts.fatal == nil {
		f.opts.fatal = func(err error) { panic(err) }
	}
	if f.opts.commitInterval == 0 {
		f.opts.commitInterval = defaultCommitInterval
	}
	if f.opts.commitEntries <= 0 {
		f.opts.commitEntries = defaultCommitEntries
	}
	if err := f.open(); err != nil {
		return nil, err
	}
	f.stop, f.stopped = make(chan struct{}), make(chan struct{})
	go f.commitLoop()
	return f, nil
}

// commitLoop commits the open write transaction once it is commitInterval
// old, when no read or batch has done so first.
func (f *fsm) commitLoop() {
	defer close(f.stopped)
	if f.opts.commitInterval < 0 {
		return
	}
	t := time.NewTicker(f.opts.commitInterval / 2)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
		}
		f.mu.RLock()
		f.wmu.Lock()
		if f.wtx != nil && time.Since(f.pendingSince) >= f.opts.commitInterval {
			f.commitLocked()
		}
		f.wmu.Unlock()
		f.mu.RUnlock()
	}
}

// commit commits the open write transaction, if any.
func (f *fsm) commit() error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	return f.commitLocked()
}

// commitLocked commits under wmu. A failed commit stops the member: its
// state would no longer follow the log.
func (f *fsm) commitLocked() error {
	if f.wtx == nil {
		return nil
	}
	tx := f.wtx
	f.wtx, f.pending = nil, 0
	if err := tx.Commit(); err != nil {
		f.log.Error("meta state write failed; stopping this member", "err", err)
		f.opts.fatal(err)
		return fmt.Errorf("commit meta state: %w", err)
	}
	return nil
}

func (f *fsm) open() error {
	db, err := bolt.Open(f.path, 0o600, bboltOptions())
	if err != nil {
		return fmt.Errorf("open meta state %s: %w", f.path, err)
	}
	var applied uint64
	err = db.Update(func(tx *bolt.Tx) error {
		if err := initState(tx); err != nil {
			return err
		}
		applied = appliedIndex(tx)
		return nil
	})
	if err != nil {
		db.Close()
		return fmt.Errorf("init meta state %s: %w", f.path, err)
	}
	f.db = db
	f.setApplied(applied)
	return nil
}

// close commits what is pending and closes the file.
func (f *fsm) close() error {
	f.stopLoop()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.db == nil {
		return nil
	}
	err := f.commit()
	err = errors.Join(err, f.db.Close())
	f.db = nil
	return err
}

func (f *fsm) stopLoop() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	<-f.stopped
}

// viewApplied runs fn, a short read, so that it sees every applied entry
// without committing them: in the open write transaction if there is one
// (Apply waits meanwhile), else in a read transaction. It is for point
// reads on hot paths (BeginPut, GetClip, heartbeats, forwarding), which
// would otherwise turn every group commit into one commit per read; fn
// must not write. Long reads (listings, scans) use view.
func (f *fsm) viewApplied(fn func(tx *bolt.Tx) error) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return ErrShutdown
	}
	f.wmu.Lock()
	if f.wtx != nil {
		defer f.wmu.Unlock()
		return fn(f.wtx)
	}
	f.wmu.Unlock()
	return f.db.View(fn)
}

// view runs fn in a read transaction that sees every applied entry.
func (f *fsm) view(fn func(tx *bolt.Tx) error) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return ErrShutdown
	}
	if err := f.commit(); err != nil {
		return err
	}
	return f.db.View(fn)
}

func (f *fsm) setApplied(idx uint64) {
	f.appliedMu.Lock()
	f.applied = idx
	f.appliedMu.Unlock()
	f.appliedCond.Broadcast()
}

// waitApplied waits until the FSM has applied index (0: nothing to wait
// for) or deadline passes.
func (f *fsm) waitApplied(index uint64, deadline time.Time) error {
	f.appliedMu.Lock()
	defer f.appliedMu.Unlock()
	if f.applied >= index {
		return nil
	}
	timer := time.AfterFunc(time.Until(deadline), func() {
		// Under the lock, so that the wake-up cannot fall between a
		// waiter's deadline check and its Wait.
		f.appliedMu.Lock()
		defer f.appliedMu.Unlock()
		f.appliedCond.Broadcast()
	})
	defer timer.Stop()
	for f.applied < index {
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%w: the state machine did not apply index %d within the read timeout (at %d)", ErrUnavailable, index, f.applied)
		}
		f.appliedCond.Wait()
	}
	return nil
}

// appliedIndex returns the index of the last entry the FSM applied.
func (f *fsm) appliedIndex() uint64 {
	f.appliedMu.Lock()
	defer f.appliedMu.Unlock()
	return f.applied
}

// Apply applies one entry; raft calls ApplyBatch instead, this is for
// completeness of the raft.FSM interface.
func (f *fsm) Apply(l *raft.Log) interface{} { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies a batch of committed entries to the open write
// transaction, which it commits if it has grown old or large enough.
// Commands that fail validation answer with an error value and change
// nothing; the rest of the batch still applies. Entries at or below the
// applied index (replayed after a restart) are skipped. A disk error drops
// the open transaction and stops the member (fatal): what it held is in
// the Raft log and is applied again at the restart.
func (f *fsm) ApplyBatch(logs []*raft.Log) []interface{} {
	results := make([]interface{}, len(logs))
	if f.batchSize != nil {
		f.batchSize.Observe(float64(len(logs)))
	}
	f.mu.RLock() // excludes Restore; Apply is the only writer
	defer f.mu.RUnlock()
	f.wmu.Lock()
	defer f.wmu.Unlock()
	last, err := f.applyLocked(logs, results)
	if err != nil {
		if f.wtx != nil {
			f.wtx.Rollback()
			f.wtx, f.pending = nil, 0
		}
		f.log.Error("meta state write failed; stopping this member", "err", err)
		f.opts.fatal(err)
		return results
	}
	if last != 0 {
		f.setApplied(last)
	}
	if f.wtx != nil && (f.opts.commitInterval < 0 || f.pending >= f.opts.commitEntries ||
		time.Since(f.pendingSince) >= f.opts.commitInterval) {
		f.commitLocked()
	}
	return results
}

// applyLocked applies logs to the open write transaction (opening one if
// none is) and returns the index of the last entry applied, 0 if none.
func (f *fsm) applyLocked(logs []*raft.Log, results []interface{}) (uint64, error) {
	if f.wtx == nil {
		tx, err := f.db.Begin(true)
		if err != nil {
			return 0, err
		}
		f.wtx, f.pendingSince = tx, time.Now()
	}
	tx := f.wtx
	applied := appliedIndex(tx)
	a := &applier{tx: tx, ttl: f.opts.requestTTL}
	var last uint64
	for i, l := range logs {
		if l.Index <= applied {
			results[i] = &applyResult{err: errAlreadyApplied}
			continue
		}
		if l.Type == raft.LogCommand {
			res, err := a.applyEntry(l)
			if err != nil {
				return 0, fmt.Errorf("apply index %d: %w", l.Index, err)
			}
			results[i] = res
		}
		last = l.Index
	}
	if last == 0 {
		if f.pending == 0 { // nothing to commit
			tx.Rollback()
			f.wtx = nil
		}
		return 0, nil
	}
	f.pending += len(logs)
	return last, setAppliedIndex(tx, last)
}

// Snapshot commits what is pending and captures the state in a read
// transaction; Persist streams it while Apply goes on. Raft calls it
// between batches, so the state is exactly that of the snapshot's index,
// and committing it first means the log raft keeps after the snapshot
// covers every entry the file may lack after a crash.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if err := f.commit(); err != nil {
		return nil, err
	}
	tx, err := f.db.Begin(false)
	if err != nil {
		return nil, err
	}
	return &fsmSnapshot{tx: tx}, nil
}

type fsmSnapshot struct{ tx *bolt.Tx }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.tx.WriteTo(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("write snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() { s.tx.Rollback() }

// Restore replaces the state with a snapshot: the new file is written
// beside the old one, fsynced, checked (Tx.Check), renamed over it and the
// directory fsynced, then reopened.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	tmp := f.path + ".restore"
	if err := writeSynced(tmp, rc); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("restore: %w", err)
	}
	if err := checkDB(tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("restore: snapshot fails its check: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wmu.Lock()
	if f.wtx != nil { // superseded by the snapshot
		f.wtx.Rollback()
		f.wtx, f.pending = nil, 0
	}
	f.wmu.Unlock()
	if f.db != nil {
		if err := f.db.Close(); err != nil {
			return fmt.Errorf("restore: close state: %w", err)
		}
		f.db = nil
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := syncDir(filepath.Dir(f.path)); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := f.open(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	f.log.Info("meta state restored from snapshot", "applied_index", f.appliedIndex())
	return nil
}

func writeSynced(path string, r io.Reader) error {
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(file, r); err != nil {
		file.Close()
		return err
	}
	if err := file.Sync(); err != nil {
		file.Close()
		return err
	}
	return file.Close()
}

// checkDB opens a bbolt file read-only and runs its consistency check.
func checkDB(path string) error {
	if err := checkDBSize(path); err != nil {
		return err
	}
	opts := bboltOptions()
	opts.ReadOnly = true
	db, err := bolt.Open(path, 0o600, opts)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if tx.Bucket(bktMeta) == nil {
			errs = append(errs, errors.New("no meta bucket: not a clipstore meta state"))
		}
		return errors.Join(errs...)
	})
}

// checkDBSize refuses a bbolt file shorter than its meta page says (a
// truncated snapshot): opening it would map pages past the end of the file.
// Meta page layout (bbolt, little-endian): a 16-byte page header, then
// magic, version, page size, flags (4 bytes each), the root bucket (16),
// the freelist page id (8) and the high-water page id (8) at offset 56.
func checkDBSize(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	b := make([]byte, 64)
	if _, err := io.ReadFull(f, b); err != nil || binary.LittleEndian.Uint32(b[16:]) != 0xED0CDAED {
		return errors.New("not a bbolt file")
	}
	pageSize := uint64(binary.LittleEndian.Uint32(b[24:]))
	hwm := binary.LittleEndian.Uint64(b[56:])
	if size := uint64(info.Size()); size < hwm*pageSize {
		return fmt.Errorf("file of %d bytes is shorter than its %d pages of %d bytes", size, hwm, pageSize)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// applyResult is what ApplyBatch returns for one command: the response or
// the error the request ends with.
type applyResult struct {
	resp proto.Message
	err  error
}

var _ raft.BatchingFSM = (*fsm)(nil)

// unmarshalCommand decodes a LogCommand entry.
func unmarshalCommand(data []byte) (*pb.Command, error) {
	cmd := &pb.Command{}
	if err := proto.Unmarshal(data, cmd); err != nil {
		return nil, err
	}
	return cmd, nil
}
