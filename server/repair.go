package server

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clipstore/clipstore/erasure"
	"github.com/clipstore/clipstore/internal/wire"
	metapb "github.com/clipstore/clipstore/proto/metapb"
	pb "github.com/clipstore/clipstore/proto/storagepb"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
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
// pool of workers fed by a bounded queue, deduplicated by task id. It owns
// the connections to the peers it reads sources from.
type repairer struct {
	n       *Node
	log     *slog.Logger
	metrics *repairMetrics
	queue   chan *metapb.RepairWork
	next    atomic.Uint32 // the meta member to send UpdateShard to
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu struct {
		sync.Mutex
		tasks   map[string]*repairTask
		conns   map[string]*grpc.ClientConn // by peer address
		started bool
		stopped bool
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
	// The repairer's lifetime is the node's: Shutdown cancels it.
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.mu.tasks = make(map[string]*repairTask)
	r.mu.conns = make(map[string]*grpc.ClientConn)
	return r
}

// start starts the workers once, unless stopped.
func (r *repairer) start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.started || r.mu.stopped {
		return
	}
	r.mu.started = true
	for range r.n.cfg.RepairConcurrency {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.work()
		}()
	}
}

// stop cancels every repair, waits for them and closes the peer
// connections. Repairs cut short leave no half-written shard.
func (r *repairer) stop() {
	r.mu.Lock()
	r.mu.stopped = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	for addr, c := range r.mu.conns {
		c.Close()
		delete(r.mu.conns, addr)
	}
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
	if r.mu.stopped {
		return
	}
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

// work runs queued repairs until the repairer stops.
func (r *repairer) work() {
	for {
		select {
		case <-r.ctx.Done():
			return
		case w := <-r.queue:
			r.setState(w, taskRunning, nil)
			err := r.repair(r.ctx, w)
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
	r.mu.Lock()
	if r.mu.stopped {
		r.mu.Unlock()
		return ErrClosed
	}
	r.wg.Add(1)
	r.mu.Unlock()
	defer r.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(r.ctx, cancel)
	defer stop()
	return r.repair(ctx, w)
}

// repairJob is one validated RepairWork.
type repairJob struct {
	w         *metapb.RepairWork
	h         ShardHeader // of the new shard
	layout    erasure.Layout
	sources   []*metapb.ShardSource // usable ones, by index
	requestID []byte
	stored    bool // the new shard is stored: this job's to delete if it fails
}

func (j *repairJob) String() string {
	return fmt.Sprintf("clip %x index %d", j.w.GetClipId(), j.w.GetIndex())
}

// repair runs one job end to end and accounts for it.
func (r *repairer) repair(ctx context.Context, w *metapb.RepairWork) error {
	start := time.Now()
	job, err := r.plan(w)
	if err != nil {
		r.metrics.result("invalid")
		r.log.Warn("repair work refused", "task", fmt.Sprintf("%x", w.GetTaskId()), "err", err)
		return err
	}
	res, err := r.rebuild(ctx, job)
	if err == nil {
		err = r.commit(ctx, job, res)
	}
	if err != nil {
		r.failed(job, err)
		return fmt.Errorf("repair %s: %w", job, err)
	}
	elapsed := time.Since(start)
	if r.n.hb != nil {
		r.n.hb.hurry() // meta may have more work for this node
	}
	r.metrics.result("ok")
	r.metrics.bytes.Add(float64(res.Length))
	r.metrics.seconds.Observe(elapsed.Seconds())
	r.log.Info("shard repaired", "clip", fmt.Sprintf("%x", w.GetClipId()), "index", w.GetIndex(),
		"shard", job.h.ShardID, "bytes", res.Length, "duration", elapsed,
		"mb_per_s", float64(res.Length)/1e6/max(elapsed.Seconds(), 1e-9))
	return nil
}

// failed drops the new shard, if the job stored it, unless the commit's
// outcome is unknown, and counts and logs the failure.
func (r *repairer) failed(job *repairJob, err error) {
	result := "failed"
	switch {
	case errors.Is(err, ErrRepairRefused):
		result = "refused"
	case errors.Is(err, erasure.ErrUnrecoverable):
		result = "unrecoverable"
	}
	r.metrics.result(result)
	if job.stored && !errors.Is(err, ErrRepairOutcomeUnknown) {
		if _, derr := r.n.store.Delete(job.h.ShardID); derr != nil {
			r.log.Warn("delete shard of failed repair", "shard", job.h.ShardID, "err", derr)
		}
	}
	r.log.Warn("repair failed", "clip", fmt.Sprintf("%x", job.w.GetClipId()), "index", job.w.GetIndex(),
		"shard", job.h.ShardID, "result", result, "err", err)
	if !errors.Is(err, ErrRepairOutcomeUnknown) && r.n.hb != nil && len(job.w.GetTaskId()) > 0 {
		r.n.hb.reportFailedRepair(job.w.GetTaskId()) // meta plans it again at once
	}
}

// plan validates the work and derives the new shard's header and layout.
func (r *repairer) plan(w *metapb.RepairWork) (*repairJob, error) {
	p := w.GetProfile()
	if p == nil {
		return nil, fmt.Errorf("%w: repair work without a profile", ErrInvalidArgument)
	}
	newID, err := ParseShardID(w.GetNewShardId())
	if err != nil {
		return nil, fmt.Errorf("new shard id: %w", err)
	}
	clip, err := ParseClipID(w.GetClipId())
	if err != nil {
		return nil, err
	}
	if _, err := ParseShardID(w.GetOldShardId()); err != nil {
		return nil, fmt.Errorf("old shard id: %w", err)
	}
	h := ShardHeader{ShardID: newID, ClipID: clip, Index: int(w.GetIndex()),
		DataShards: int(p.GetDataShards()), ParityShards: int(p.GetParityShards()),
		BlockSize: int(p.GetBlockSize()), CommitDeadline: w.GetCommitDeadlineUnixNano()}
	if err := h.validate(r.n.cfg.MaxPieceSize); err != nil {
		return nil, err
	}
	code, err := erasure.New(h.DataShards, h.ParityShards, erasure.WithBlockSize(h.BlockSize), erasure.WithBlockCache(0))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	layout, err := code.Layout(int64(min(w.GetPartLength(), 1<<62)))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return &repairJob{w: w, h: h, layout: layout, sources: usableSources(w, h.shards()),
		requestID: updateRequestID(w.GetTaskId())}, nil
}

// usableSources keeps the sources that name another index of the code, one
// per index, sorted by index: data pieces first, so that a block whose data
// pieces are all there needs the least reconstruction.
func usableSources(w *metapb.RepairWork, n int) []*metapb.ShardSource {
	seen := map[uint32]bool{}
	var out []*metapb.ShardSource
	for _, s := range w.GetSources() {
		if int(s.GetIndex()) >= n || s.GetIndex() == w.GetIndex() || seen[s.GetIndex()] ||
			len(s.GetShardId()) != len(ShardID{}) || s.GetAddress() == "" {
			continue
		}
		seen[s.GetIndex()] = true
		out = append(out, s)
	}
	slices.SortStableFunc(out, func(a, b *metapb.ShardSource) int { return cmp.Compare(a.GetIndex(), b.GetIndex()) })
	return out
}

// updateRequestID is the UpdateShard idempotency key of a task: derived
// from the task id, so that retries and re-sends of the same task (after an
// update whose outcome was unknown) get meta's remembered answer instead of
// a refusal of their own success. Work without a task id gets a random key.
func updateRequestID(taskID []byte) []byte {
	id := make([]byte, 16)
	if len(taskID) == 0 {
		rand.Read(id)
		return id
	}
	sum := sha256.Sum256(append([]byte("clipstore repair update shard\x00"), taskID...))
	copy(id, sum[:])
	return id
}

// rebuild writes the new shard: block by block, the units of k sources
// rebuilt into the lost piece. A shard already stored under the new id by an
// earlier run of the same work is reused.
func (r *repairer) rebuild(ctx context.Context, job *repairJob) (WriteResult, error) {
	blocks := uint64(job.layout.Blocks())
	if info, err := r.n.store.Stat(job.h.ShardID); err == nil {
		if info.Header != job.h || info.Blocks != blocks ||
			(job.w.ExpectedChecksum != nil && info.Checksum != *job.w.ExpectedChecksum) {
			return WriteResult{}, fmt.Errorf("%w: %s", ErrExists, job.h.ShardID)
		}
		job.stored = true
		return WriteResult{Blocks: info.Blocks, Length: info.Length, Checksum: info.Checksum, Existed: true}, nil
	} else if !errors.Is(err, ErrNotFound) {
		return WriteResult{}, err
	}
	sw, err := r.n.store.Create(job.h)
	if err != nil {
		return WriteResult{}, err
	}
	defer sw.Abort() // no-op after Commit
	f := &fetcher{ctx: ctx, r: r, job: job, pending: job.sources, units: make([][]byte, job.h.shards())}
	defer f.close()
	bd := job.layout.NewBlockDecoder()
	var unit []byte
	for b := range int64(blocks) {
		if unit, err = f.rebuildBlock(bd, unit[:0], b); err != nil {
			return WriteResult{}, err
		}
		p := job.layout.PieceLen(b)
		if err := sw.WritePiece(uint64(b), unit[:p], unit[p:]); err != nil {
			return WriteResult{}, err
		}
	}
	// The rebuilt shard must have the checksum the record holds for the lost
	// one, when the record knows it; Commit refuses (and drops) it otherwise.
	res, err := sw.Commit(blocks, job.w.ExpectedChecksum)
	job.stored = err == nil
	return res, err
}

// fetcher reads the units of a repair's sources block by block. It starts
// with k sources and opens further ones, in the work's order, whenever a
// block has fewer than k usable units (a source failed, or sent a corrupt
// piece) or the units it has do not rebuild the piece. A source that fails
// is dropped for good; one that sent a corrupt piece keeps serving the
// blocks after it.
type fetcher struct {
	ctx     context.Context
	r       *repairer
	job     *repairJob
	pending []*metapb.ShardSource // not opened yet
	open    []*sourceStream
	units   [][]byte // of the current block, by index
	errs    []error  // why sources were dropped
}

func (f *fetcher) close() {
	for _, s := range f.open {
		s.cancel()
	}
	f.open = nil
}

// rebuildBlock appends the rebuilt unit b of the job's index to dst.
func (f *fetcher) rebuildBlock(bd *erasure.BlockDecoder, dst []byte, b int64) ([]byte, error) {
	clear(f.units)
	have := 0
	kept := f.open[:0]
	for _, s := range f.open {
		u, err := s.unit(f.job, b)
		if err != nil {
			f.drop(s, err)
			continue
		}
		kept = append(kept, s)
		if u != nil {
			f.units[s.index] = u
			have++
		}
	}
	clear(f.open[len(kept):])
	f.open = kept
	for have < f.job.h.DataShards && f.addSource(b) {
		have++
	}
	for {
		out, _, err := bd.Rebuild(dst, f.job.h.Index, b, f.units)
		if err == nil {
			return out, nil
		}
		if !errors.Is(err, erasure.ErrUnrecoverable) || !f.addSource(b) {
			if len(f.errs) > 0 {
				return dst, fmt.Errorf("%w (sources dropped: %w)", err, errors.Join(f.errs...))
			}
			return dst, err
		}
	}
}

// addSource opens pending sources at block b until one delivers a usable
// unit of it, and reports whether one did.
func (f *fetcher) addSource(b int64) bool {
	for len(f.pending) > 0 && f.ctx.Err() == nil {
		src := f.pending[0]
		f.pending = f.pending[1:]
		s, err := f.r.openSource(f.ctx, src, b)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("index %d on %s: %w", src.GetIndex(), src.GetAddress(), err))
			continue
		}
		u, err := s.unit(f.job, b)
		if err != nil {
			f.drop(s, err)
			continue
		}
		f.open = append(f.open, s)
		if u != nil {
			f.units[s.index] = u
			return true
		}
	}
	return false
}

func (f *fetcher) drop(s *sourceStream, err error) {
	s.cancel()
	err = fmt.Errorf("index %d on %s: %w", s.index, s.src.GetAddress(), err)
	f.errs = append(f.errs, err)
	f.r.log.Warn("repair source failed; trying another", "clip", fmt.Sprintf("%x", f.job.w.GetClipId()),
		"err", err)
}

// sourceStream is a ReadShard stream of one source, from some block on.
type sourceStream struct {
	src     *metapb.ShardSource
	index   int
	stream  grpc.ServerStreamingClient[pb.ReadShardResponse]
	cancel  context.CancelFunc
	checked bool   // the header was checked
	buf     []byte // the current unit, and where the next is received
}

func (r *repairer) openSource(ctx context.Context, src *metapb.ShardSource, first int64) (*sourceStream, error) {
	conn, err := r.peer(src.GetAddress())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	stream, err := pb.NewStorageServiceClient(conn).ReadShard(ctx, &pb.ReadShardRequest{
		ShardId: src.GetShardId(), FirstBlock: uint64(first), SkipCorrupt: true})
	if err != nil {
		cancel()
		return nil, err
	}
	return &sourceStream{src: src, index: int(src.GetIndex()), stream: stream, cancel: cancel}, nil
}

// unit receives the source's unit of block b: nil if the source reported
// the piece corrupt, an error if the stream failed or sent something else.
func (s *sourceStream) unit(job *repairJob, b int64) ([]byte, error) {
	resp := wire.PieceInto(new(pb.ReadShardResponse), s.buf) // decoded in place once buf is sized
	err := s.stream.RecvMsg(resp)
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("stream ended before block %d: %w", b, io.ErrUnexpectedEOF)
	}
	if err != nil {
		return nil, err
	}
	if !s.checked {
		if err := job.checkSource(resp.GetHeader(), s.src); err != nil {
			return nil, err
		}
		s.checked = true
	}
	p := resp.GetPiece()
	switch {
	case p == nil || p.GetBlock() != uint64(b):
		return nil, fmt.Errorf("%w: source sent block %d, want %d", ErrInvalidArgument, p.GetBlock(), b)
	case p.GetCorrupt():
		return nil, nil
	}
	s.buf = wire.Unit(p, s.buf)
	return s.buf, nil
}

// checkSource checks that a source's header is the shard the work names.
func (j *repairJob) checkSource(h *pb.ShardHeader, src *metapb.ShardSource) error {
	if h == nil || string(h.GetShardId()) != string(src.GetShardId()) || string(h.GetClipId()) != string(j.h.ClipID[:]) ||
		h.GetIndex() != src.GetIndex() || int(h.GetDataShards()) != j.h.DataShards ||
		int(h.GetParityShards()) != j.h.ParityShards || int(h.GetBlockSize()) != j.h.BlockSize {
		return fmt.Errorf("%w: source header %v does not match the repair of %s", ErrInvalidArgument, h, j)
	}
	return nil
}

// peer returns the cached connection to a storage node, dialling it on
// first use (connections are lazy, like the node's to meta).
func (r *repairer) peer(addr string) (*grpc.ClientConn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.stopped {
		return nil, ErrClosed
	}
	if c, ok := r.mu.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, append(wire.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(r.n.cfg.maxMessageSize())))...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	r.mu.conns[addr] = c
	return c, nil
}

// commit asks meta to move the shard entry to the new shard, trying the
// meta members in turn. Meta's refusal is ErrRepairRefused; no answer at
// all is ErrRepairOutcomeUnknown.
func (r *repairer) commit(ctx context.Context, job *repairJob, res WriteResult) error {
	w := job.w
	req := &metapb.UpdateShardRequest{RequestId: job.requestID, ClipId: w.GetClipId(), Generation: w.GetGeneration(),
		Part: w.GetPart(), Index: w.GetIndex(), OldShardId: w.GetOldShardId(),
		CommitDeadlineUnixNano: w.GetCommitDeadlineUnixNano(),
		NewShard: &metapb.Shard{Index: w.GetIndex(), NodeId: r.n.cfg.NodeID, ShardId: job.h.ShardID[:],
			Length: res.Length, Checksum: res.Checksum, State: metapb.ShardState_SHARD_STATE_OK}}
	conns := r.n.hb.conns
	var err error
	for attempt := range updateAttempts {
		if attempt > 0 {
			sleep(ctx, time.Duration(attempt)*100*time.Millisecond)
		}
		if ctx.Err() != nil {
			err = errors.Join(err, ctx.Err())
			break
		}
		i := int(r.next.Load()) % len(conns)
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = metapb.NewMetaServiceClient(conns[i]).UpdateShard(cctx, req)
		cancel()
		switch status.Code(err) {
		case codes.OK:
			return nil
		case codes.FailedPrecondition, codes.NotFound, codes.InvalidArgument:
			return fmt.Errorf("%w: %w", ErrRepairRefused, err)
		}
		r.next.CompareAndSwap(uint32(i), uint32(i+1)%uint32(len(conns)))
	}
	return fmt.Errorf("%w: update shard: %w", ErrRepairOutcomeUnknown, err)
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
