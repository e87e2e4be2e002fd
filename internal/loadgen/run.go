package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clipstore/clipstore/internal/bytesize"
	"golang.org/x/sync/errgroup"
)

// progressInterval is how often Config.Progress is called.
const progressInterval = 250 * time.Millisecond

// cleanupTimeout bounds the deletion of a run's clips once the caller's
// context has ended.
const cleanupTimeout = time.Minute

// bench is one run.
type bench struct {
	cfg     Config
	store   Store
	content *Content // what is written
	check   *Content // what reads are checked against: content, unless a test says otherwise
	keys    createdKeys
	samples errorSamples
	live    counters

	deadline time.Time // with Duration: no operation starts after it; set before the workers start
	claimed  atomic.Int64
}

// counters are the live totals of the current phase.
type counters struct {
	ops, bytes, errors atomic.Int64
}

func (c *counters) reset() {
	c.ops.Store(0)
	c.bytes.Store(0)
	c.errors.Store(0)
}

// Run runs the benchmark cfg describes against st (a cluster through the
// client library, an S3 endpoint) and reports what it measured. It
// creates the bucket if need be, stores the clips the workload reads (not
// measured; a failure there fails the run), measures, and deletes the
// clips it created unless cfg.Keep.
//
// Failed operations are counted in the report (Report.Err), not returned:
// the error is for a run that could not be set up, prepared or cleaned
// up. The report is nil only if the measurement did not take place.
func Run(ctx context.Context, st Store, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, store: st, content: NewContent(cfg.Seed)}
	b.check = b.content
	if cfg.verifySeed != nil {
		b.check = NewContent(*cfg.verifySeed)
	}
	if err := st.CreateBucket(ctx, cfg.Bucket); err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", cfg.Bucket, err)
	}
	rep, err := b.run(ctx)
	if !cfg.Keep {
		err = errors.Join(err, b.clean(ctx))
	}
	return rep, err
}

func (b *bench) run(ctx context.Context) (*Report, error) {
	var wl workload
	switch b.cfg.Workload {
	case WorkloadPut:
		wl = &putWorkload{}
	case WorkloadGet:
		wl = &getWorkload{}
	case WorkloadMixed:
		wl = &mixedWorkload{}
	case WorkloadList:
		wl = &listWorkload{}
	}
	if err := wl.prepare(ctx, b); err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	return b.measure(ctx, wl), nil
}

// measure starts the workers, starts the clock once they are all ready,
// and stops it when the last one has finished its last operation.
func (b *bench) measure(ctx context.Context, wl workload) *Report {
	workers := make([]*worker, b.cfg.Concurrency)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i := range workers {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			w := b.newWorker(i)
			workers[i] = w
			ready.Done()
			<-start
			for n, ok := b.next(ctx); ok; n, ok = b.next(ctx) {
				wl.op(ctx, w, n)
			}
		}()
	}
	ready.Wait()
	b.live.reset()
	began := time.Now()
	b.deadline = began.Add(b.cfg.Duration)
	stopProgress := b.reportProgress("measure", began)
	close(start)
	done.Wait()
	wall := time.Since(began)
	stopProgress()
	stats := make([]map[seriesKey]*series, len(workers))
	for i, w := range workers {
		stats[i] = w.stats
	}
	return report(b.cfg, wall, stats, b.samples.list())
}

// next claims the number of the next operation, or reports that the run
// is over: Count operations claimed, the deadline passed or ctx ended.
func (b *bench) next(ctx context.Context) (int64, bool) {
	if ctx.Err() != nil || (b.cfg.Count == 0 && !time.Now().Before(b.deadline)) {
		return 0, false
	}
	n := b.claimed.Add(1) - 1
	if b.cfg.Count > 0 && n >= b.cfg.Count {
		return 0, false
	}
	return n, true
}

// reportProgress calls Config.Progress every progressInterval until the
// returned function is called; that function waits for the goroutine.
func (b *bench) reportProgress(phase string, began time.Time) (stop func()) {
	if b.cfg.Progress == nil {
		return func() {}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				b.cfg.Progress(Progress{Phase: phase, Elapsed: time.Since(began), Ops: b.live.ops.Load(),
					Bytes: b.live.bytes.Load(), Errors: b.live.errors.Load()})
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// size returns the clip size of operation n: the sizes in turn.
func (b *bench) size(n int64) int64 {
	return b.cfg.Sizes[n%int64(len(b.cfg.Sizes))]
}

// clip is a clip of the run: its key and size.
type clip struct {
	key  string
	size int64
}

// prepareClips stores Objects clips of each size, Concurrency at a time,
// and returns them by size index. It stops at the first failure.
func (b *bench) prepareClips(ctx context.Context) ([][]clip, error) {
	clips := make([][]clip, len(b.cfg.Sizes))
	for si, size := range b.cfg.Sizes {
		for i := range b.cfg.Objects {
			key := fmt.Sprintf("%sprep/%02d-%s/%07d", b.cfg.Prefix, si, bytesize.Format(size), i)
			clips[si] = append(clips[si], clip{key: key, size: size})
		}
	}
	b.live.reset()
	defer b.reportProgress("prepare", time.Now())()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.cfg.Concurrency)
	for i := range b.cfg.Objects {
		for si := range clips {
			if gctx.Err() != nil {
				break
			}
			c := clips[si][i]
			g.Go(func() error {
				if err := b.put(gctx, b.content.NewReader(c.key, c.size), c); err != nil {
					return err
				}
				b.live.ops.Add(1)
				b.live.bytes.Add(c.size)
				return nil
			})
		}
	}
	return clips, g.Wait()
}

// put stores c with content from r (which must produce c's bytes); the
// key is remembered for the cleanup whatever the outcome.
func (b *bench) put(ctx context.Context, r *ClipReader, c clip) error {
	b.keys.add(c.key)
	return b.store.Put(ctx, b.cfg.Bucket, c.key, r, c.size)
}

// clean deletes the clips the run created, Concurrency at a time. Clips
// already gone are fine. If ctx has ended it still tries, for a while.
func (b *bench) clean(ctx context.Context) error {
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
	}
	keys := b.keys.list()
	b.live.reset()
	defer b.reportProgress("clean", time.Now())()
	var g errgroup.Group
	g.SetLimit(b.cfg.Concurrency)
	var failed atomic.Int64
	var first error
	var once sync.Once
	for _, key := range keys {
		g.Go(func() error {
			if err := b.store.Delete(ctx, b.cfg.Bucket, key); err != nil && !errors.Is(err, ErrNotFound) {
				failed.Add(1)
				once.Do(func() { first = err })
				return nil
			}
			b.keys.remove(key)
			b.live.ops.Add(1)
			return nil
		})
	}
	g.Wait()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("clean up: %d of %d clips under %s/%s not deleted (first: %w)", n, len(keys), b.cfg.Bucket, b.cfg.Prefix, first)
	}
	return nil
}

// createdKeys are the keys the run may have created and not deleted.
type createdKeys struct {
	mu struct {
		sync.Mutex
		set map[string]struct{}
	}
}

func (k *createdKeys) add(key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.mu.set == nil {
		k.mu.set = map[string]struct{}{}
	}
	k.mu.set[key] = struct{}{}
}

func (k *createdKeys) remove(key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.mu.set, key)
}

func (k *createdKeys) list() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]string, 0, len(k.mu.set))
	for key := range k.mu.set {
		out = append(out, key)
	}
	return out
}

// worker is one of the goroutines that run operations, with its own
// random source, buffers and statistics.
type worker struct {
	b        *bench
	rng      *rand.Rand
	reader   *ClipReader
	verifier *Verifier
	buf      []byte // range reads
	stats    map[seriesKey]*series
}

func (b *bench) newWorker(i int) *worker {
	return &worker{b: b, rng: rand.New(rand.NewPCG(b.cfg.Seed, uint64(i))),
		reader: b.content.NewReader("", 0), verifier: b.check.NewVerifier("", 0),
		buf: make([]byte, b.cfg.Range), stats: map[seriesKey]*series{}}
}

// outcome is what a successful operation moved.
type outcome struct {
	bytes, verified, entries int64
}

// record adds an operation that began at start to the statistics: its
// outcome and latency if it succeeded, else only the error.
func (w *worker) record(op string, size int64, what string, start time.Time, out outcome, err error) {
	lat := time.Since(start)
	k := seriesKey{op: op, size: size}
	s := w.stats[k]
	if s == nil {
		s = &series{}
		w.stats[k] = s
	}
	s.count++
	w.b.live.ops.Add(1)
	if err != nil {
		s.errors++
		w.b.live.errors.Add(1)
		w.b.samples.add(fmt.Errorf("%s %s: %w", op, what, err))
		return
	}
	s.bytes += out.bytes
	s.verified += out.verified
	s.entries += out.entries
	s.latencies = append(s.latencies, lat)
	w.b.live.bytes.Add(out.bytes)
}
