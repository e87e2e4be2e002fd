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
// each batch of Raft entries is applied in one bbolt transaction together
// with the index of the last entry, so a restart neither replays nor
// rebuilds anything and a re-applied entry is a no-op.
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

	// applied is the last applied Raft index, for waiters (linearizable
	// reads). Guarded by appliedMu; appliedCond broadcasts advances.
	appliedMu   sync.Mutex
	appliedCond *sync.Cond
	applied     uint64
}

type fsmOptions struct {
	// requestTTL is how long a request id's outcome is remembered. It must
	// be the same on every member: it is part of the replicated behaviour.
	requestTTL time.Duration
	// fatal is called on a local disk error inside Apply, after which the
	// member must not go on (its state would diverge). Default: panic.
	fatal func(error)
}

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
	if err := f.open(); err != nil {
		return nil, err
	}
	return f, nil
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

func (f *fsm) close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.db == nil {
		return nil
	}
	err := f.db.Close()
	f.db = nil
	return err
}

// view runs fn in a read transaction.
func (f *fsm) view(fn func(tx *bolt.Tx) error) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return ErrShutdown
	}
	return f.db.View(fn)
}

func (f *fsm) setApplied(idx uint64) {
	f.appliedMu.Lock()
	f.applied = idx
	f.appliedMu.Unlock()
	f.appliedCond.Broadcast()
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

// ApplyBatch applies a batch of committed entries in one bbolt transaction.
// Commands that fail validation answer with an error value and change
// nothing; the rest of the batch still applies. Entries at or below the
// applied index (replayed after a restart) are skipped.
func (f *fsm) ApplyBatch(logs []*raft.Log) []interface{} {
	results := make([]interface{}, len(logs))
	if f.batchSize != nil {
		f.batchSize.Observe(float64(len(logs)))
	}
	f.mu.RLock() // excludes Restore; Apply is the only writer
	defer f.mu.RUnlock()
	var last uint64
	err := f.db.Update(func(tx *bolt.Tx) error {
		applied := appliedIndex(tx)
		a := &applier{tx: tx, ttl: f.opts.requestTTL}
		for i, l := range logs {
			if l.Index <= applied {
				results[i] = &applyResult{err: errAlreadyApplied}
				continue
			}
			if l.Type == raft.LogCommand {
				res, err := a.applyEntry(l)
				if err != nil {
					return fmt.Errorf("apply index %d: %w", l.Index, err)
				}
				results[i] = res
			}
			last = l.Index
		}
		if last == 0 {
			return nil
		}
		return setAppliedIndex(tx, last)
	})
	if err != nil {
		f.log.Error("meta state write failed; stopping this member", "err", err)
		f.opts.fatal(err)
		return results
	}
	if last != 0 {
		f.setApplied(last)
	}
	return results
}

// Snapshot captures the state in a read transaction; Persist streams it
// while Apply goes on.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
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
