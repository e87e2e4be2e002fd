package server

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/clipstore/clipstore/erasure"
	"github.com/clipstore/clipstore/internal/metacall"
	"github.com/clipstore/clipstore/internal/rpcerr"
	metapb "github.com/clipstore/clipstore/proto/metapb"
	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// repairJob is one validated RepairWork.
type repairJob struct {
	w         *metapb.RepairWork
	h         ShardHeader // of the new shard
	layout    erasure.Layout
	sources   []*metapb.ShardSource // usable ones, by index
	requestID []byte
	stored    bool          // the new shard is stored: this job's to delete if it fails
	pacer     *rate.Limiter // the work's byte rate; nil: no bound
}

// pace waits until the work's byte rate allows n more bytes written.
func (j *repairJob) pace(ctx context.Context, n int) error {
	if j.pacer == nil {
		return nil
	}
	return j.pacer.WaitN(ctx, min(n, j.pacer.Burst()))
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
	r.log.Debug("repair started", "job", job.String(), "move", w.GetCopyFrom() != nil, "bytes_per_sec", w.GetBytesPerSec())
	res, err := r.rebuild(ctx, job)
	if err == nil {
		err = r.commit(ctx, job, res)
	}
	if err != nil {
		r.failed(job, err)
		return fmt.Errorf("repair %s: %w", job, err)
	}
	elapsed := time.Since(start)
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
	job := &repairJob{w: w, h: h, layout: layout, sources: usableSources(w, h.shards()),
		requestID: updateRequestID(w.GetTaskId())}
	if bps := w.GetBytesPerSec(); bps > 0 {
		// A burst of a second's worth, and at least a piece: the first
		// piece goes at once, the rest at the rate.
		burst := int(min(max(bps, uint64(h.BlockSize)), 1<<30))
		job.pacer = rate.NewLimiter(rate.Limit(bps), burst)
	}
	return job, nil
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
	if cf := job.w.GetCopyFrom(); cf != nil && cf.GetIndex() == job.w.GetIndex() && cf.GetAddress() != "" {
		res, err := r.copyShard(ctx, job, cf, blocks)
		if err == nil || ctx.Err() != nil {
			job.stored = err == nil
			return res, err
		}
		r.log.Warn("move: copying the shard failed; rebuilding it from other shards", "job", job.String(),
			"from", cf.GetAddress(), "err", err)
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
		if err := job.pace(ctx, len(unit)); err != nil {
			return WriteResult{}, err
		}
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

// copyShard writes the new shard as a verbatim copy of the one it moves:
// one source instead of k. The source's node verifies every piece it
// sends (one it finds corrupt fails the copy), the new shard's writer
// checks every piece against its trailer, and the result must have the
// record's checksum.
func (r *repairer) copyShard(ctx context.Context, job *repairJob, cf *metapb.ShardSource, blocks uint64) (WriteResult, error) {
	sw, err := r.n.store.Create(job.h)
	if err != nil {
		return WriteResult{}, err
	}
	defer sw.Abort() // no-op after Commit
	s, err := r.openSource(ctx, cf, 0)
	if err != nil {
		return WriteResult{}, err
	}
	defer s.cancel()
	for b := range int64(blocks) {
		u, err := s.unit(job, b)
		if err != nil {
			return WriteResult{}, err
		}
		if u == nil {
			return WriteResult{}, fmt.Errorf("%w: the source's piece of block %d is corrupt", ErrCorrupt, b)
		}
		p := job.layout.PieceLen(b)
		if len(u) < p {
			return WriteResult{}, fmt.Errorf("%w: block %d: a unit of %d bytes, the piece alone is %d", ErrInvalidArgument, b, len(u), p)
		}
		if err := job.pace(ctx, len(u)); err != nil {
			return WriteResult{}, err
		}
		if err := sw.WritePiece(uint64(b), u[:p], u[p:]); err != nil {
			return WriteResult{}, err
		}
	}
	return sw.Commit(blocks, job.w.ExpectedChecksum)
}

// commit asks meta to move the shard entry to the new shard (at most
// updateAttempts attempts, through the node's meta caller). Meta's refusal
// is ErrRepairRefused; no answer at all is ErrRepairOutcomeUnknown.
func (r *repairer) commit(ctx context.Context, job *repairJob, res WriteResult) error {
	w := job.w
	req := &metapb.UpdateShardRequest{RequestId: job.requestID, ClipId: w.GetClipId(), Generation: w.GetGeneration(),
		Part: w.GetPart(), Index: w.GetIndex(), OldShardId: w.GetOldShardId(),
		CommitDeadlineUnixNano: w.GetCommitDeadlineUnixNano(), UploadId: w.GetUploadId(),
		NewShard: &metapb.Shard{Index: w.GetIndex(), NodeId: r.n.cfg.NodeID, ShardId: job.h.ShardID[:],
			Length: res.Length, Checksum: res.Checksum, State: metapb.ShardState_SHARD_STATE_OK}}
	resp, err := metacall.Call(ctx, r.n.meta.WithAttempts(updateAttempts),
		func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.UpdateShardResponse, error) {
			return mc.UpdateShard(ctx, req)
		})
	switch {
	case err == nil:
		// The slot this job frees is filled at once: meta answers with
		// the node's next work (a heartbeat answer would bring it later).
		if len(resp.GetRepairs()) > 0 {
			r.submit(resp.GetRepairs())
		} else if r.n.hb != nil {
			r.n.hb.hurry() // meta may have more work for this node
		}
		return nil
	case metaRefused(err):
		return fmt.Errorf("%w: %w", ErrRepairRefused, err)
	}
	return fmt.Errorf("%w: update shard: %w", ErrRepairOutcomeUnknown, err)
}

// metaRefused reports whether meta's answer err is a refusal that holds
// (the record changed, the update is malformed, its deadline passed), as
// opposed to an answer that leaves the outcome open (meta unavailable, a
// timeout, an outcome meta does not know).
func metaRefused(err error) bool {
	switch rpcerr.ReasonOf(err) {
	case rpcerr.FailedPrecondition, rpcerr.DeadlinePassed, rpcerr.NotFound, rpcerr.InvalidArgument:
		return true
	case "": // a meta that sends no reason
		switch status.Code(err) {
		case codes.FailedPrecondition, codes.NotFound, codes.InvalidArgument:
			return true
		}
	}
	return false
}
