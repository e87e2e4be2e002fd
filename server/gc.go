package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/clipstore/clipstore/internal/metacall"
	metapb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/prometheus/client_golang/prometheus"
)

// gcPageSize is how many shards one CheckShards call carries at most (the
// limit meta accepts).
const gcPageSize = 1000

// collector is the node's garbage collector: it deletes the shards no
// record references — crashed uploads, overwritten or deleted clips whose
// deletes were lost, shards replaced by a repair while the node was away.
// Meta decides, linearizably: a shard is collectable only when no record
// places it on this node and the commit deadline in its header is past by
// meta's GC grace, so that no CommitPut or repair can still name it. The
// node never deletes on an error or an answer it did not ask for.
type collector struct {
	n       *Node
	log     *slog.Logger
	metrics *gcMetrics
	turn    chan struct{} // a token per running pass: one at a time
}

func newCollector(n *Node) *collector {
	return &collector{n: n, log: n.log, metrics: newGCMetrics(n.cfg.Registerer), turn: make(chan struct{}, 1)}
}

// CollectGarbage runs one garbage collection pass on the calling goroutine
// and returns how many shards it deleted. It walks every shard, asks meta
// about those whose commit deadline is past and deletes exactly the ones
// meta names collectable. It stops at the first failed or ambiguous answer
// from meta, deleting nothing of that page. It needs a node configured with
// Meta, and stops when ctx ends or the node shuts down.
func (n *Node) CollectGarbage(ctx context.Context) (deleted int, err error) {
	if n.gc == nil {
		return 0, fmt.Errorf("%w: garbage collection needs a node configured with meta", ErrInvalidArgument)
	}
	err = n.bg.runNow(ctx, func(ctx context.Context) error {
		deleted, err = n.gc.run(ctx)
		return err
	})
	return deleted, err
}

// start runs a pass every GCInterval (the first after a random part of
// it, so that nodes started together do not ask meta at once).
// Every run, and once right at start (a node back with a wiped or replaced
// disk is found at once), it also checks the node's inventory against meta.
func (c *collector) start() {
	interval := c.n.cfg.GCInterval
	c.n.bg.start(func(ctx context.Context) {
		c.checkInventory(ctx)
		if interval <= 0 {
			return
		}
		sleep(ctx, jitter(interval))
		for ctx.Err() == nil {
			if _, err := c.run(ctx); err != nil && ctx.Err() == nil {
				c.log.Warn("garbage collection failed", "err", err)
			}
			c.checkInventory(ctx)
			sleep(ctx, interval)
		}
	})
}

// checkInventory runs an inventory pass, retrying while meta is not
// reachable yet (the node may start before its meta members).
func (c *collector) checkInventory(ctx context.Context) {
	for attempt := 0; ctx.Err() == nil; attempt++ {
		missing, err := c.inventory(ctx)
		if err == nil {
			if missing > 0 {
				c.log.Warn("shards meta places on this node are missing; reported for repair", "missing", missing)
			}
			return
		}
		c.log.Info("inventory check failed; retrying", "err", err)
		sleep(ctx, min(time.Duration(attempt+1)*time.Second, 30*time.Second))
	}
}

// run waits for its turn and runs one pass.
func (c *collector) run(ctx context.Context) (int, error) {
	select {
	case c.turn <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-c.turn }()
	start := time.Now()
	deleted, err := c.collect(ctx)
	result := "ok"
	if err != nil {
		result = "failed"
	}
	c.metrics.runs.WithLabelValues(result).Inc()
	c.log.Info("garbage collection done", "deleted", deleted, "duration", time.Since(start), "err", err)
	return deleted, err
}

func (c *collector) collect(ctx context.Context) (int, error) {
	deleted := 0
	var errs []error
	var after *ShardID
	for {
		if err := ctx.Err(); err != nil {
			return deleted, err
		}
		entries, more, err := c.n.store.List(after, gcPageSize)
		if err != nil {
			return deleted, fmt.Errorf("gc: list shards: %w", err)
		}
		refs, err := c.candidates(entries, time.Now())
		errs = append(errs, err)
		if len(refs) > 0 {
			n, err := c.collectPage(ctx, refs)
			deleted += n
			if err != nil {
				return deleted, errors.Join(append(errs, err)...)
			}
		}
		if !more || len(entries) == 0 {
			return deleted, errors.Join(errs...)
		}
		after = &entries[len(entries)-1].ID
	}
}

// candidates reads the headers of a page of shards and keeps those whose
// commit deadline is past: meta would refuse the others anyway. Shards
// deleted meanwhile and shards with a damaged header (the scrubber reports
// those) are left out; other read errors are returned, joined.
func (c *collector) candidates(entries []ShardEntry, now time.Time) ([]*metapb.ShardRef, error) {
	var refs []*metapb.ShardRef
	var errs []error
	for _, e := range entries {
		h, err := c.n.store.Header(e.ID)
		switch {
		case errors.Is(err, ErrNotFound) || errors.Is(err, ErrCorrupt):
			continue
		case err != nil:
			errs = append(errs, err)
			continue
		}
		if h.CommitDeadline < now.UnixNano() {
			refs = append(refs, &metapb.ShardRef{ShardId: e.ID[:], CommitDeadlineUnixNano: h.CommitDeadline})
		}
	}
	if len(errs) > 0 {
		return refs, fmt.Errorf("gc: %d shard headers unreadable: %w", len(errs), errors.Join(errs...))
	}
	return refs, nil
}

// collectPage asks meta about refs and deletes exactly what it names
// collectable. An answer naming a shard that was not asked about is
// ambiguous: nothing of the page is deleted.
func (c *collector) collectPage(ctx context.Context, refs []*metapb.ShardRef) (int, error) {
	asked := make(map[ShardID]int64, len(refs))
	for _, r := range refs {
		asked[ShardID(r.ShardId)] = r.CommitDeadlineUnixNano
	}
	resp, err := c.check(ctx, refs)
	if err != nil {
		return 0, err
	}
	ids := make([]ShardID, 0, len(resp.GetCollectable()))
	for _, b := range resp.GetCollectable() {
		id, err := ParseShardID(b)
		if _, ok := asked[id]; err != nil || !ok {
			return 0, fmt.Errorf("gc: meta named shard %x collectable, which was not asked about; deleting nothing", b)
		}
		ids = append(ids, id)
	}
	deleted := 0
	var errs []error
	for i, r := range c.n.store.DeleteMany(ids) {
		id := ids[i]
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("gc: %w", r.Err))
			continue
		}
		if r.Existed {
			deleted++
			c.metrics.deleted.Inc()
			c.log.Info("garbage shard deleted", "shard", id,
				"commit_deadline", time.Unix(0, asked[id]).UTC().Format(time.RFC3339Nano))
		}
	}
	return deleted, errors.Join(errs...)
}

// check sends one CheckShards call.
func (c *collector) check(ctx context.Context, refs []*metapb.ShardRef) (*metapb.CheckShardsResponse, error) {
	req := &metapb.CheckShardsRequest{NodeId: c.n.cfg.NodeID, Shards: refs}
	resp, err := metacall.Call(ctx, c.n.meta, func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.CheckShardsResponse, error) {
		return mc.CheckShards(ctx, req)
	})
	if err != nil {
		return nil, fmt.Errorf("gc: check shards with meta: %w", err)
	}
	return resp, nil
}

// gcMetrics count the node's garbage collection.
type gcMetrics struct {
	runs    *prometheus.CounterVec
	deleted prometheus.Counter
}

func newGCMetrics(reg prometheus.Registerer) *gcMetrics {
	m := &gcMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "clipstore", Subsystem: "storage", Name: "gc_runs_total",
			Help: "Garbage collection passes by result: ok or failed (meta unreachable, a read error).",
		}, []string{"result"}),
		deleted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "clipstore", Subsystem: "storage", Name: "gc_deleted_total",
			Help: "Shards deleted by garbage collection: unreferenced and past their commit deadline by meta's GC grace.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.runs, m.deleted)
	}
	return m
}
