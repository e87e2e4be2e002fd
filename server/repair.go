package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/clipstore/clipstore/internal/rawshard"
	metapb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/prometheus/client_golang/prometheus"
)

// Repair errors. A repair that fails for want of healthy pieces wraps
// erasure.ErrUnrecoverable instead.
var (
	// ErrRepairRefused: meta refused the conditional update (the clip
	// changed, or another repair won); the rebuilt shard was deleted.
	ErrRepairRefused = errors.New("repair refused by meta")
	// ErrRepairOutcomeUnknown: meta could not be reached to commit the new
	// placement, or did not answer. The rebuilt shard is kept: if the
	// update did land it is referenced, and if not, garbage collection
	// takes it after the commit deadline in its header.
	ErrRepairOutcomeUnknown = errors.New("repair commit outcome unknown")
)

const (
	// repairQueueLen bounds the repairs waiting for a worker; meta re-sends
	// work that was dropped.
	repairQueueLen = 64
	// repairRetryAfter is how long a failed task id is ignored before a
	// re-send of it runs again.
	repairRetryAfter = 5 * time.Second
	// repairForgetAfter is how long finished task ids are remembered.
	repairForgetAfter = time.Hour
	// repairMaxTasks bounds the task ids remembered.
	repairMaxTasks = 16384
	// updateAttempts bounds the UpdateShard calls of one repair.
	updateAttempts = 5
)

// repairer runs the repairs meta hands out in heartbeat responses: a fixed
// pool of workers (Config.RepairConcurrency, run by the node's background)
// fed by a bounded queue, deduplicated by task id.
type repairer struct {
	n       *Node
	log     *slog.Logger
	metrics *repairMetrics
	queue   chan *metapb.RepairWork
	raw     *rawshard.Pool // reads sources raw; nil: over gRPC

	mu struct {
		sync.Mutex
		tasks map[string]*repairTask
	}
}

type repairState uint8

const (
	taskQueued repairState = iota
	taskRunning
	taskDone   // succeeded or failed for good: re-sends are ignored
	taskFailed // failed for now: a re-send after retryAt runs again
)

type repairTask struct {
	state   repairState
	retryAt time.Time // taskFailed
	ended   time.Time // taskDone, taskFailed
}

func newRepairer(n *Node) *repairer {
	r := &repairer{n: n, log: n.log, metrics: newRepairMetrics(n.cfg.Registerer),
		queue: make(chan *metapb.RepairWork, repairQueueLen)}
	if n.cfg.rawServes()&rawshard.ServesReads != 0 { // a node that reads raw serves raw reads
		r.raw = rawshard.NewPool(rawshard.ServesReads)
	}
	r.mu.tasks = make(map[string]*repairTask)
	return r
}

// submit queues the repairs of a heartbeat response. A task already
// queued, running or done is ignored, and so is a failed one until its
// retry time; work that finds the queue full is dropped (meta re-sends it).
func (r *repairer) submit(works []*metapb.RepairWork) {
	if len(works) == 0 {
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forget(now)
	for _, w := range works {
		key := string(w.GetTaskId())
		if t, ok := r.mu.tasks[key]; ok && (t.state != taskFailed || now.Before(t.retryAt)) {
			continue
		}
		select {
		case r.queue <- w:
			r.mu.tasks[key] = &repairTask{state: taskQueued}
		default:
			r.metrics.dropped.Inc()
			r.log.Debug("repair queue full; dropping work", "task", fmt.Sprintf("%x", w.GetTaskId()))
		}
	}
}

// forget drops finished tasks that are old, or all finished tasks when too
// many are remembered.
func (r *repairer) forget(now time.Time) {
	if len(r.mu.tasks) < repairMaxTasks/2 {
		return
	}
	for key, t := range r.mu.tasks {
		finished := t.state == taskDone || t.state == taskFailed
		if finished && (now.Sub(t.ended) > repairForgetAfter || len(r.mu.tasks) >= repairMaxTasks) {
			delete(r.mu.tasks, key)
		}
	}
}

// work runs queued repairs until ctx ends (the node shuts down).
func (r *repairer) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case w := <-r.queue:
			r.setState(w, taskRunning, nil)
			err := r.repair(ctx, w)
			r.setState(w, taskDone, err)
		}
	}
}

func (r *repairer) setState(w *metapb.RepairWork, s repairState, err error) {
	now := time.Now()
	t := &repairTask{state: s}
	if s == taskDone {
		t.ended = now
		if err != nil && !permanent(err) {
			t.state, t.retryAt = taskFailed, now.Add(repairRetryAfter)
		}
	}
	r.mu.Lock()
	r.mu.tasks[string(w.GetTaskId())] = t
	r.mu.Unlock()
}

// permanent reports whether a repair failed in a way a re-send of the same
// work cannot change.
func permanent(err error) bool {
	return errors.Is(err, ErrRepairRefused) || errors.Is(err, ErrInvalidArgument)
}

// Repair runs one repair now, on the calling goroutine, and returns its
// outcome: it reads k healthy shards of the clip from the work's sources,
// rebuilds shard index w.Index block by block (every rebuilt piece verified
// against the block's CRC list), stores it under w.NewShardId and asks meta
// to move the shard entry to it (UpdateShard: same generation, same old
// shard id). If meta refuses (ErrRepairRefused) or the shard cannot be
// rebuilt (an error wrapping erasure.ErrUnrecoverable) the node keeps
// nothing of it. This is what the node's repair workers run for the work
// meta sends in heartbeat responses; it is exported for tests and admin
// tooling, and does not consult the workers' task list. It needs a node
// configured with Meta, and stops when ctx ends or the node shuts down.
func (n *Node) Repair(ctx context.Context, w *metapb.RepairWork) error {
	if n.rep == nil {
		return fmt.Errorf("%w: repair needs a node configured with meta", ErrInvalidArgument)
	}
	return n.rep.runNow(ctx, w)
}

func (r *repairer) runNow(ctx context.Context, w *metapb.RepairWork) error {
	return r.n.bg.runNow(ctx, func(ctx context.Context) error { return r.repair(ctx, w) })
}

// repairMetrics count the node's repairs.
type repairMetrics struct {
	repairs *prometheus.CounterVec
	bytes   prometheus.Counter
	seconds prometheus.Histogram
	dropped prometheus.Counter
}

func newRepairMetrics(reg prometheus.Registerer) *repairMetrics {
	m := &repairMetrics{
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "clipstore", Subsystem: "storage", Name: "repairs_total",
			Help: "Shard repairs by result: ok, refused (meta's conditional update failed), unrecoverable " +
				"(fewer than k healthy pieces), invalid (bad work) or failed.",
		}, []string{"result"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "clipstore", Subsystem: "storage", Name: "repaired_bytes_total",
			Help: "Piece bytes of shards rebuilt and committed by repairs.",
		}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "clipstore", Subsystem: "storage", Name: "repair_seconds",
			Help:    "Time of a successful repair, from its start to meta's commit.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "clipstore", Subsystem: "storage", Name: "repairs_dropped_total",
			Help: "Repair work dropped because the node's repair queue was full (meta re-sends it).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.repairs, m.bytes, m.seconds, m.dropped)
	}
	return m
}

func (m *repairMetrics) result(r string) { m.repairs.WithLabelValues(r).Inc() }
