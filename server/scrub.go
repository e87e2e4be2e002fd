package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// scrubPageSize is how many shards a scrub pass lists at a time.
const scrubPageSize = 1000

// ScrubResult is the outcome of one scrub pass.
type ScrubResult struct {
	// Shards were read through; Bytes is what was read of them.
	Shards int
	Bytes  int64
	// Corrupt lists the shards with a damaged header, piece or trailer, in
	// the order the pass read them. They were handed to the heartbeater to
	// report to meta.
	Corrupt []ShardID
	// Lost lists the shards whose file was gone, removed behind the node's
	// back; they were dropped from the index and reported missing.
	Lost []ShardID
	// Skipped counts shards the node deleted itself while the pass ran;
	// Errors those that could not be read for another reason (logged, not
	// reported).
	Skipped, Errors int
	Start, End      time.Time
}

// ScrubStatus describes the node's scrubbing, for status commands and the
// heartbeats.
type ScrubStatus struct {
	// Passes is the number of completed passes since start-up; LastPassEnd
	// and LastPassCorrupt describe the latest one.
	Passes          uint64
	LastPassEnd     time.Time
	LastPassCorrupt int
	LastPassLost    int
	// Running reports a pass in progress, Done of its Total shards and
	// BytesDone of its BytesTotal bytes read (the shard bytes on the node
	// when it began). Idle, they describe the last pass.
	Running               bool
	Done, Total           int64
	BytesDone, BytesTotal int64
	// CorruptFound counts the corrupt shards every pass since start-up found
	// (a shard still there at the next pass counts again).
	CorruptFound uint64
}

// scrubber re-reads every shard of the node, verifying every piece,
// trailer and header, at a bounded rate, and hands the corrupt ones to the
// heartbeater, which reports them to meta (meta marks them and repairs
// them). One pass runs at a time.
type scrubber struct {
	n       *Node
	log     *slog.Logger
	metrics *scrubMetrics
	pass    chan struct{} // a token per running pass: one at a time

	mu struct {
		sync.Mutex
		status ScrubStatus
	}
}

func newScrubber(n *Node) *scrubber {
	return &scrubber{n: n, log: n.log, metrics: newScrubMetrics(n.cfg.Registerer), pass: make(chan struct{}, 1)}
}

// ScrubNow runs one full scrub pass on the calling goroutine and returns
// what it found. Corrupt shards are reported to meta through the
// heartbeats, as the background passes do (a stand-alone node only returns
// them). It waits for a background pass that is running to end first, and
// stops when ctx ends or the node shuts down.
func (n *Node) ScrubNow(ctx context.Context) (ScrubResult, error) {
	var res ScrubResult
	err := n.bg.runNow(ctx, func(ctx context.Context) error {
		var err error
		res, err = n.scrub.run(ctx)
		return err
	})
	return res, err
}

// ScrubStatus reports the scrubber's progress.
func (n *Node) ScrubStatus() ScrubStatus {
	n.scrub.mu.Lock()
	defer n.scrub.mu.Unlock()
	return n.scrub.mu.status
}

// start runs the background passes: the first after a random delay of at
// most min(ScrubInterval, ScrubStartDelay), then one every ScrubInterval.
func (s *scrubber) start() {
	interval := s.n.cfg.ScrubInterval
	if interval <= 0 || s.n.hb == nil {
		return
	}
	s.n.bg.start(func(ctx context.Context) {
		sleep(ctx, jitter(min(interval, s.n.cfg.ScrubStartDelay)))
		for ctx.Err() == nil {
			if _, err := s.run(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("scrub pass failed", "err", err)
			}
			sleep(ctx, interval)
		}
	})
}

// jitter returns a random duration in [d/2, d].
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// run waits for its turn and runs one pass.
func (s *scrubber) run(ctx context.Context) (ScrubResult, error) {
	select {
	case s.pass <- struct{}{}:
	case <-ctx.Done():
		return ScrubResult{}, ctx.Err()
	}
	defer func() { <-s.pass }()
	return s.scrubAll(ctx)
}

// scrubAll walks every shard in index order. A pass cut short reports what it
// found so far.
func (s *scrubber) scrubAll(ctx context.Context) (ScrubResult, error) {
	res := ScrubResult{Start: time.Now()}
	total, totalBytes := s.n.store.shardCount(), s.n.store.shardBytes()
	s.progress(&res, total, totalBytes, true)
	pace := &pacer{rate: s.n.cfg.ScrubRate}
	var buf []byte
	var after *ShardID
	var err error
	for err == nil {
		var entries []ShardEntry
		var more bool
		entries, more, err = s.n.store.List(after, scrubPageSize)
		for i := 0; i < len(entries) && err == nil; i++ {
			id := entries[i].ID
			buf, err = s.scrubShard(ctx, id, pace, buf, &res)
			res.Shards++
			s.progress(&res, total, totalBytes, true)
		}
		if !more || len(entries) == 0 {
			break
		}
		after = &entries[len(entries)-1].ID
	}
	res.End = time.Now()
	s.n.shardsCorrupt(res.Corrupt, lostByScrub)
	s.n.shardsLost(res.Lost, lostByScrub)
	if err != nil {
		s.progress(&ScrubResult{}, 0, 0, false)
		return res, fmt.Errorf("scrub: %w", err)
	}
	s.finished(res)
	return res, nil
}

// scrubShard reads every piece of one shard. Only a failure to go on with
// the pass (the context ended, the store closed) is returned; what is found
// in the shard goes into res.
func (s *scrubber) scrubShard(ctx context.Context, id ShardID, pace *pacer, buf []byte, res *ScrubResult) ([]byte, error) {
	if err := pace.wait(ctx, headerSize); err != nil {
		return buf, err
	}
	res.Bytes += headerSize
	s.metrics.bytes.Add(headerSize)
	r, err := s.n.store.Open(id)
	if err == nil {
		defer r.Close()
		if cap(buf) < r.UnitSize() {
			buf = make([]byte, r.UnitSize())
		}
		for b := uint64(0); b < r.Blocks() && err == nil; b++ {
			n := min(int64(r.UnitSize()), r.size-r.h.unitOffset(b)) // the last unit may be short
			if err = pace.wait(ctx, int(n)); err != nil {
				return buf, err
			}
			res.Bytes += n
			s.metrics.bytes.Add(float64(n))
			_, _, err = r.ReadPiece(b, buf[:r.UnitSize()])
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, ErrClosed):
		return buf, err
	case errors.Is(err, ErrShardLost):
		res.Lost = append(res.Lost, id)
	case errors.Is(err, ErrNotFound):
		res.Skipped++
	case errors.Is(err, ErrCorrupt) || errors.Is(err, syscall.EIO):
		// A media error makes the shard as unreadable as a bad checksum.
		res.Corrupt = append(res.Corrupt, id)
		s.metrics.corrupt.Inc()
		s.mu.Lock()
		s.mu.status.CorruptFound++
		s.mu.Unlock()
		s.log.Warn("scrub found a corrupt shard", "shard", id, "err", err)
	default:
		res.Errors++
		s.metrics.errors.Inc()
		s.log.Warn("scrub could not read a shard", "shard", id, "err", err)
	}
	return buf, nil
}

// progress publishes how far the pass is: res read so far of total shards
// and totalBytes.
func (s *scrubber) progress(res *ScrubResult, total, totalBytes int64, running bool) {
	done, bytesDone := int64(res.Shards), res.Bytes
	total, totalBytes = max(total, done), max(totalBytes, bytesDone) // shards written during the pass count too
	s.metrics.done.Set(float64(done))
	s.metrics.total.Set(float64(total))
	s.metrics.bytesDone.Set(float64(bytesDone))
	s.metrics.bytesTotal.Set(float64(totalBytes))
	s.metrics.running.Set(b2f(running))
	s.mu.Lock()
	st := &s.mu.status
	st.Running, st.Done, st.Total, st.BytesDone, st.BytesTotal = running, done, total, bytesDone, totalBytes
	s.mu.Unlock()
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (s *scrubber) finished(res ScrubResult) {
	s.metrics.passes.Inc()
	s.metrics.running.Set(0)
	s.metrics.lastEnd.Set(float64(res.End.UnixNano()) / 1e9)
	s.mu.Lock()
	s.mu.status.Passes++
	s.mu.status.Running = false
	s.mu.status.LastPassEnd, s.mu.status.LastPassCorrupt, s.mu.status.LastPassLost = res.End, len(res.Corrupt), len(res.Lost)
	s.mu.Unlock()
	s.log.Info("scrub pass done", "shards", res.Shards, "bytes", res.Bytes, "corrupt", len(res.Corrupt),
		"lost", len(res.Lost), "skipped", res.Skipped, "errors", res.Errors, "duration", res.End.Sub(res.Start))
}

// pacer spaces reads so that they average at most rate bytes per second.
// Each read is paid for before it is made, and time not used (a slow disk,
// a pause) is not saved up for a burst.
type pacer struct {
	rate int64 // bytes per second; 0: no limit
	next time.Time
}

// minPause is the shortest sleep the pacer makes: shorter debts add up
// until they reach it.
const minPause = 2 * time.Millisecond

func (p *pacer) wait(ctx context.Context, n int) error {
	if p.rate <= 0 {
		return ctx.Err()
	}
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	p.next = p.next.Add(time.Duration(float64(n) / float64(p.rate) * float64(time.Second)))
	if d := p.next.Sub(now); d >= minPause {
		sleep(ctx, d)
	}
	return ctx.Err()
}

// scrubMetrics describe the node's scrubbing.
type scrubMetrics struct {
	bytes, corrupt, errors, passes prometheus.Counter
	done, total                    prometheus.Gauge
	bytesDone, bytesTotal          prometheus.Gauge
	running, lastEnd               prometheus.Gauge
}

func newScrubMetrics(reg prometheus.Registerer) *scrubMetrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "clipstore", Subsystem: "storage", Name: name, Help: help})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "clipstore", Subsystem: "storage", Name: name, Help: help})
	}
	m := &scrubMetrics{
		bytes:   counter("scrubbed_bytes_total", "Bytes of shard files read and verified by the scrubber."),
		corrupt: counter("scrub_corrupt_shards_total", "Shards the scrubber found corrupt (reported to meta)."),
		errors:  counter("scrub_errors_total", "Shards the scrubber could not read for a reason other than corruption."),
		passes:  counter("scrub_passes_total", "Scrub passes completed."),
		done:    gauge("scrub_pass_shards_done", "Shards read so far by the scrub pass in progress."),
		total:   gauge("scrub_pass_shards", "Shards the scrub pass in progress is to read."),
		bytesDone: gauge("scrub_pass_bytes_done",
			"Bytes of shard files read so far by the scrub pass in progress (by the last one when idle)."),
		bytesTotal: gauge("scrub_pass_bytes",
			"Bytes of shard files the scrub pass in progress is to read: the node's shard bytes when it began."),
		running: gauge("scrub_running", "1 while a scrub pass runs."),
		lastEnd: gauge("scrub_last_pass_end_timestamp_seconds",
			"Unix time the last complete scrub pass ended; 0 before the first."),
	}
	if reg != nil {
		reg.MustRegister(m.bytes, m.corrupt, m.errors, m.passes, m.done, m.total, m.bytesDone, m.bytesTotal,
			m.running, m.lastEnd)
	}
	return m
}
