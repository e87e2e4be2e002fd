package meta

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/clipstore/clipstore/internal/hclogslog"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"
)

// raftLogCache is how many of the newest Raft entries each member keeps
// decoded in memory (about 0.5 KiB each for a CommitPut).
const raftLogCache = 1024

// Files under DataDir.
const (
	fsmFile     = "state.db"
	raftLogFile = "raft.db"
)

// raftStores are the durable parts of a member's Raft: log and stable store
// in one bbolt file, snapshots as files.
type raftStores struct {
	logs  *raftboltdb.BoltStore
	snaps *raft.FileSnapshotStore
}

func openRaftStores(dir string, logger hclog.Logger) (*raftStores, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logs, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, raftLogFile), BoltOptions: raftLogBoltOptions()})
	if err != nil {
		return nil, fmt.Errorf("open raft log: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, logger) // in dir/snapshots
	if err != nil {
		logs.Close()
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	return &raftStores{logs: logs, snaps: snaps}, nil
}

// catchUpFromSnapshot restores the FSM from the newest snapshot when the FSM
// is behind it. Raft may persist an installed snapshot before the FSM's
// Restore finished (a crash in between); with NoSnapshotRestoreOnStart raft
// would then skip the entries the snapshot covers and the FSM would miss
// them for good.
func catchUpFromSnapshot(f *fsm, snaps *raft.FileSnapshotStore) error {
	list, err := snaps.List()
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	if len(list) == 0 || list[0].Index <= f.appliedIndex() {
		return nil
	}
	newest := list[0]
	f.log.Warn("meta state is behind the newest snapshot; restoring it",
		"applied_index", f.appliedIndex(), "snapshot_index", newest.Index, "snapshot", newest.ID)
	_, rc, err := snaps.Open(newest.ID)
	if err != nil {
		return fmt.Errorf("open snapshot %s: %w", newest.ID, err)
	}
	if err := f.Restore(rc); err != nil {
		return err
	}
	if f.appliedIndex() < newest.Index {
		return fmt.Errorf("snapshot %s restored to index %d, below its own index %d", newest.ID, f.appliedIndex(), newest.Index)
	}
	return nil
}

func (n *Node) raftConfig(logger hclog.Logger) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(n.cfg.ID)
	c.Logger = logger
	c.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	c.ElectionTimeout = n.cfg.ElectionTimeout
	c.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	c.CommitTimeout = n.cfg.CommitTimeout
	c.SnapshotInterval = n.cfg.SnapshotInterval
	c.SnapshotThreshold = n.cfg.SnapshotThreshold
	c.TrailingLogs = n.cfg.TrailingLogs
	c.NoSnapshotRestoreOnStart = true
	// No buffered apply channel: a future that sits in raft's buffer when
	// it shuts down or changes state is never answered (a read barrier or
	// proposal would wait forever). The leader still commits in groups: it
	// drains every Apply waiting on the channel into one batch.
	c.BatchApplyCh = false
	c.MaxAppendEntries = 256
	c.NoLegacyTelemetry = true
	return c
}

// transport returns the configured transport or a TCP one on RaftBind.
func (n *Node) transport(logger hclog.Logger) (raft.Transport, error) {
	if n.cfg.Transport != nil {
		return n.cfg.Transport, nil
	}
	addr, err := net.ResolveTCPAddr("tcp", n.cfg.RaftBind)
	if err != nil {
		return nil, fmt.Errorf("raft bind address %q: %w", n.cfg.RaftBind, err)
	}
	newTransport := newTCPTransport
	if n.cfg.TLS != nil {
		newTransport = func(bind string, logger hclog.Logger) (*raft.NetworkTransport, error) {
			return newTLSTransport(bind, n.cfg.TLS, logger)
		}
	}
	t, err := newTransport(n.cfg.RaftBind, logger)
	if err != nil {
		return nil, fmt.Errorf("raft transport on %s: %w", addr, err)
	}
	return t, nil
}

// newTCPTransport returns Raft's TCP transport on bind, without pipelined
// replication (MaxRPCsInFlight 1: one AppendEntries in flight per
// follower). hashicorp/raft's pipeline can deadlock: when a follower
// answers an AppendEntries with failure, the pipeline's decoder stops
// reading responses, and the next send can block forever while the
// decoder waits for a reader. The leader then never replicates to that
// follower again, though heartbeats still reach it, and Shutdown hangs
// (hashicorp/raft#612; Grafana Pyroscope disabled pipelining for it, in
// its pull request 5518). It happened here in a leadership transfer test.
// HashiCorp measured pipelining to gain little once entries are batched
// (hashicorp/raft#541).
func newTCPTransport(bind string, logger hclog.Logger) (*raft.NetworkTransport, error) {
	return raft.NewTCPTransportWithConfig(bind, nil, &raft.NetworkTransportConfig{
		Logger: logger, MaxPool: 3, Timeout: 10 * time.Second, MaxRPCsInFlight: 1})
}

// startRaft opens the stores, reconciles the FSM with the snapshots,
// creates the Raft instance and bootstraps a new cluster if asked to.
func (n *Node) startRaft() error {
	logger := hclogslog.New(n.log.With("component", "raft"))
	stores, err := openRaftStores(n.cfg.DataDir, logger)
	if err != nil {
		return err
	}
	n.stores = stores
	if err := catchUpFromSnapshot(n.fsm, stores.snaps); err != nil {
		return err
	}
	trans, err := n.transport(logger)
	if err != nil {
		return err
	}
	n.trans = trans
	conf := n.raftConfig(logger)
	hasState, err := raft.HasExistingState(stores.logs, stores.logs, stores.snaps)
	if err != nil {
		return err
	}
	// The last entries stay in memory: the leader reads every entry back
	// to replicate it, once per follower, and would otherwise decode each
	// from bbolt (Consul's raft_logstore does the same).
	logs, err := raft.NewLogCache(raftLogCache, stores.logs)
	if err != nil {
		return err
	}
	r, err := raft.NewRaft(conf, n.fsm, logs, stores.logs, stores.snaps, trans)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	n.raft = r
	if n.cfg.Bootstrap && !hasState {
		cfg := raft.Configuration{Servers: []raft.Server{{ID: conf.LocalID, Address: trans.LocalAddr()}}}
		if err := r.BootstrapCluster(cfg).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("bootstrap: %w", err)
		}
		n.log.Info("bootstrapped a new meta cluster", "id", n.cfg.ID, "raft", trans.LocalAddr())
	}
	return nil
}

// RaftAddress is the address other members reach this member's Raft at.
func (n *Node) RaftAddress() string { return string(n.trans.LocalAddr()) }

// raftLogBoltOptions: the log's freelist is not written on every commit
// (bbolt rebuilds it on open; etcd's backend and Consul's
// raft_logstore.boltdb.no_freelist_sync do the same), so that a StoreLogs
// commit does not rewrite a freelist that log compaction keeps growing.
// BenchmarkCommitPut, on a young log, shows no difference either way.
func raftLogBoltOptions() *bolt.Options {
	return &bolt.Options{Timeout: 5 * time.Second, FreelistType: bolt.FreelistMapType, NoFreelistSync: true}
}
