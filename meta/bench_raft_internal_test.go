package meta

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/await"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// BenchmarkRaftApply is the reference for BenchmarkCommitPut: hashicorp/raft
// by itself, on the same stack a meta member uses (3 members, TCP on
// loopback, raft-boltdb with fsync and meta's log cache, meta's Raft
// configuration), with an FSM that does nothing, driven by 64 goroutines
// calling Apply on the leader with entries the size of a CommitPut
// command. No gRPC, no state file: what CommitPut costs beyond this is
// meta's own.
func BenchmarkRaftApply(b *testing.B) {
	const clients = 64
	rafts := startNoopRafts(b, 3)
	var leader *raft.Raft
	await.True(b, 10*time.Second, "a leader", func() bool {
		for _, r := range rafts {
			if r.State() == raft.Leader {
				leader = r
			}
		}
		return leader != nil
	})
	entry := make([]byte, 480) // a 4+2 CommitPut command, as BenchmarkCommitPut proposes it
	b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
		lat := make([]time.Duration, b.N)
		var next atomic.Int64
		var wg sync.WaitGroup
		b.ResetTimer()
		start := time.Now()
		for range clients {
			wg.Go(func() {
				for {
					i := int(next.Add(1) - 1)
					if i >= len(lat) {
						return
					}
					t0 := time.Now()
					if err := leader.Apply(entry, 10*time.Second).Error(); err != nil {
						b.Error(err)
						return
					}
					lat[i] = time.Since(t0)
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		b.StopTimer()
		slices.Sort(lat)
		pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "ops/s")
		b.ReportMetric(pct(0.50), "p50-ms")
		b.ReportMetric(pct(0.99), "p99-ms")
	})
}

// startNoopRafts starts n Raft members with an FSM that does nothing and
// meta's Raft configuration, the first bootstrapping all of them.
func startNoopRafts(b *testing.B, n int) []*raft.Raft {
	logger := hclog.NewNullLogger()
	var rafts []*raft.Raft
	var servers []raft.Server
	var confs []*raft.Config
	type parts struct {
		logs  *raftboltdb.BoltStore
		snaps raft.SnapshotStore
		trans *raft.NetworkTransport
	}
	var ps []parts
	for i := range n {
		dir := b.TempDir()
		logs, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, raftLogFile), BoltOptions: raftLogBoltOptions()})
		if err != nil {
			b.Fatal(err)
		}
		snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, logger)
		if err != nil {
			b.Fatal(err)
		}
		trans, err := newTCPTransport("127.0.0.1:0", logger)
		if err != nil {
			b.Fatal(err)
		}
		cfg := DefaultConfig()
		cfg.ID = fmt.Sprintf("r%d", i)
		conf := (&Node{cfg: cfg}).raftConfig(logger)
		ps = append(ps, parts{logs, snaps, trans})
		confs = append(confs, conf)
		servers = append(servers, raft.Server{ID: conf.LocalID, Address: trans.LocalAddr()})
	}
	for i, p := range ps {
		logs, err := raft.NewLogCache(raftLogCache, p.logs) // as startRaft does
		if err != nil {
			b.Fatal(err)
		}
		r, err := raft.NewRaft(confs[i], noopFSM{}, logs, p.logs, p.snaps, p.trans)
		if err != nil {
			b.Fatal(err)
		}
		rafts = append(rafts, r)
		b.Cleanup(func() {
			r.Shutdown().Error()
			p.trans.CloseStreams() // pooled connections too, so that peers' readers end
			p.trans.Close()
			p.logs.Close()
		})
	}
	if err := rafts[0].BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		b.Fatal(err)
	}
	return rafts
}

// noopFSM applies nothing, in batches as meta's FSM does.
type noopFSM struct{}

func (noopFSM) Apply(*raft.Log) any                       { return nil }
func (noopFSM) ApplyBatch(logs []*raft.Log) []any         { return make([]any, len(logs)) }
func (noopFSM) Snapshot() (raft.FSMSnapshot, error)       { return noopSnapshot{}, nil }
func (noopFSM) Restore(rc io.ReadCloser) error            { return rc.Close() }
func (noopSnapshot) Persist(sink raft.SnapshotSink) error { return sink.Close() }
func (noopSnapshot) Release()                             {}

type noopSnapshot struct{}
