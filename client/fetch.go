package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/clipstore/clipstore/erasure"
	"github.com/clipstore/clipstore/internal/rawshard"
	"github.com/clipstore/clipstore/internal/wire"
	storagepb "github.com/clipstore/clipstore/proto/storagepb"
)

// maxSkip is how many blocks a shard stream is read ahead and discarded
// to reach a later block before it is reopened there instead.
const maxSkip = 8

// unitMsg is one unit of a shard stream, or the stream's failure.
type unitMsg struct {
	block   int64
	unit    wire.RefUnit // piece then trailer, in the buffers the connection read it into
	sum     uint32       // erasure.UnitPieceCRC of unit, computed as it arrived
	corrupt bool         // the node found the piece corrupt (skip_corrupt)
	err     error
}

// unitStream reads one shard's units [first, end) with a ReadShard stream.
// A goroutine receives ahead of the consumer, at most depth units, so that
// k streams fetch in parallel while the consumer decodes in lockstep.
type unitStream struct {
	index    int
	shards   int // of the code: where a unit's trailer starts
	shardID  []byte
	next     int64 // the block the next unit carries
	end      int64
	ch       chan unitMsg
	cancel   context.CancelFunc
	done     chan struct{}
	timedOut atomic.Bool
	err      error // sticky, consumer side
}

func openUnitStream(ctx context.Context, raw *rawshard.Pool, addr string, sc storagepb.StorageServiceClient, shardID []byte, index, shards int,
	first, end int64, depth int, idle time.Duration) *unitStream {
	sctx, cancel := context.WithCancel(ctx)
	s := &unitStream{index: index, shards: shards, shardID: shardID, next: first, end: end, ch: make(chan unitMsg, depth), cancel: cancel, done: make(chan struct{})}
	req := &storagepb.ReadShardRequest{ShardId: shardID, FirstBlock: uint64(first), BlockCount: uint64(end - first), SkipCorrupt: true}
	go func() {
		defer close(s.done)
		defer close(s.ch)
		s.rawPump(sctx, raw, addr, sc, req, idle) // over gRPC when raw reads are off

	}()
	return s
}

// pump receives the stream's units into s.ch until the stream ends or
// fails. A node silent for longer than idle while the pump waits for it is
// cut off: a slow node counts as a failed one.
//
// Each unit stays in the frame buffers gRPC read it into (wire.PieceRefs):
// the only copy of its bytes on the client is the kernel's, and the next
// is the caller's own (or none, for a Get writing them out). rangeRead
// frees the unit once the block is decoded.
func (s *unitStream) pump(ctx context.Context, sc storagepb.StorageServiceClient, req *storagepb.ReadShardRequest, idle time.Duration) {
	watchdog := time.AfterFunc(idle, func() {
		s.timedOut.Store(true)
		s.cancel()
	})
	defer watchdog.Stop()
	stream, err := sc.ReadShard(ctx, req)
	for err == nil {
		watchdog.Reset(idle)
		var resp wire.PieceRefs
		err = stream.RecvMsg(&resp)
		watchdog.Stop()
		if err != nil {
			break
		}
		if !resp.HasPiece {
			continue // the header of an empty range
		}
		m := unitMsg{block: int64(resp.Block), corrupt: resp.Corrupt, unit: resp.Unit}
		if m.corrupt {
			m.unit.Free()
		} else {
			m.sum = s.sum(m)
		}
		if !s.deliver(ctx, m) {
			m.unit.Free()
			return
		}
	}
	if !errors.Is(err, io.EOF) {
		s.deliver(ctx, unitMsg{err: err})
	}
}

// sum is m's piece CRC. The pump computes it right after the unit's read,
// while its bytes are still in the CPU's cache: by the time the decoder
// gets to the unit, several others have been read, and the same CRC cost
// twice as much (reading it from memory) in profiles of 8 MiB gets.
func (s *unitStream) sum(m unitMsg) uint32 {
	return erasure.UnitPieceCRC(m.unit.Segs, s.index, m.block, s.shards)
}

func (s *unitStream) deliver(ctx context.Context, m unitMsg) bool {
	select {
	case s.ch <- m:
		return true
	case <-ctx.Done():
		return false
	}
}

// get returns unit b, discarding the units before it.
func (s *unitStream) get(ctx context.Context, b int64) (unitMsg, error) {
	for s.err == nil {
		select {
		case m, ok := <-s.ch:
			switch {
			case !ok && s.timedOut.Load():
				s.err = fmt.Errorf("%w: shard %d: storage node too slow (no data within the request timeout)", ErrUnavailable, s.index)
			case !ok:
				s.err = fmt.Errorf("%w: shard %d: stream ended before block %d", ErrUnavailable, s.index, b)
			case m.err != nil:
				s.err = fromStatus(fmt.Sprintf("read shard %d", s.index), m.err)
			case m.block < b:
				m.unit.Free()
				s.next = m.block + 1
			case m.block > b:
				s.err = fmt.Errorf("shard %d: stream sent block %d, expected %d", s.index, m.block, b)
			default:
				s.next = b + 1
				return m, nil
			}
		case <-ctx.Done():
			return unitMsg{}, ctx.Err()
		}
	}
	return unitMsg{}, s.err
}

// usableFor reports whether the stream can deliver block b soon.
func (s *unitStream) usableFor(b int64) bool {
	return s.err == nil && s.next <= b && b-s.next <= maxSkip && b < s.end
}

// close stops the stream and frees the units it fetched and nobody took.
func (s *unitStream) close() {
	s.cancel()
	<-s.done
	for m := range s.ch {
		m.unit.Free()
	}
}

// rangeRead decodes the blocks of one byte range of one part of a pinned
// clip. It keeps one stream per shard it reads, so a range of many blocks
// costs one call per shard, not one per block. It is used by one
// goroutine.
type rangeRead struct {
	p       *partView
	ctx     context.Context
	end     int64 // block after the range
	streams []*unitStream
	dec     *erasure.BlockDecoder
	units   []wire.RefUnit // of the block at hand; no segments: none
	sums    []uint32       // units' piece CRCs (unitMsg.sum)
	segs    [][][]byte     // units' segments, for dec
	tried   []bool
	// followed says a shard was found moved and read at its new place
	// (once per shard and range read).
	followed []bool
	faults   int // faults of dec's report already handled
}

func (p *partView) newRangeRead(ctx context.Context, end int64) *rangeRead {
	n := p.shardCount()
	return &rangeRead{p: p, ctx: ctx, end: end, streams: make([]*unitStream, n), dec: p.layout.NewBlockDecoder(),
		units: make([]wire.RefUnit, n), sums: make([]uint32, n), segs: make([][][]byte, n), tried: make([]bool, n), followed: make([]bool, n)}
}

// close stops the streams, waits for their goroutines and frees the last
// block's units.
func (rr *rangeRead) close() {
	for i, s := range rr.streams {
		if s != nil {
			s.close()
			rr.streams[i] = nil
		}
	}
	rr.recycle()
}

// decode appends extent e's bytes to dst: pieces, then one copy. On
// error it returns dst unchanged.
func (rr *rangeRead) decode(dst []byte, e erasure.Extent) ([]byte, error) {
	pieces, err := rr.pieces(e)
	if err != nil {
		return dst, err
	}
	for _, p := range pieces {
		dst = append(dst, p...)
	}
	return dst, nil
}

// pieces returns extent e's bytes as verified slices, valid until the
// next call: of the fetched units themselves when they are intact (see
// erasure.BlockDecoder.SegmentPieces), else of the decoder's buffers. It
// fetches the data pieces the extent needs; if one is missing, corrupt,
// or its node fails, it fetches further pieces (data, then parity) until
// the block can be rebuilt. contentCRC extends a CRC32C with the result.
func (rr *rangeRead) pieces(e erasure.Extent) ([][]byte, error) {
	var out [][]byte
	err := rr.run(e, func() (err error) {
		for i, u := range rr.units {
			rr.segs[i] = u.Segs
		}
		out, err = rr.dec.SegmentPieces(e, rr.segs, rr.sums)
		return err
	})
	return out, err
}

func (rr *rangeRead) contentCRC(crc uint32) uint32 { return rr.dec.ContentCRC(crc) }

// run fetches the units extent e needs and calls decode until it
// succeeds, fetching more units after each ErrUnrecoverable.
func (rr *rangeRead) run(e erasure.Extent, decode func() error) error {
	rr.recycle()
	clear(rr.tried)
	complete := true
	for i := e.First; i <= e.Last; i++ {
		if err := rr.fetch(e.Block, i); err != nil {
			return err
		}
		complete = complete && rr.units[i].Segs != nil
	}
	for {
		if !complete {
			if _, err := rr.fill(e.Block); err != nil {
				return err
			}
		}
		err := decode()
		rr.noteFaults()
		if err == nil {
			return nil
		}
		if !errors.Is(err, erasure.ErrUnrecoverable) {
			return err
		}
		added, ferr := rr.fill(e.Block)
		if ferr != nil {
			return ferr
		}
		if added == 0 {
			return fmt.Errorf("%w: %s: %w", ErrUnrecoverable, rr.p.name(), err)
		}
		complete = false
	}
}

// recycle frees the units of the last block: nothing refers to them once
// the block is decoded.
func (rr *rangeRead) recycle() {
	for i := range rr.units {
		rr.units[i].Free()
	}
	clear(rr.segs)
}

// fill fetches untried units, in the clip's preference order, until k are
// at hand or none is left, and returns how many it added.
func (rr *rangeRead) fill(b int64) (int, error) {
	have := 0
	for _, u := range rr.units {
		if u.Segs != nil {
			have++
		}
	}
	added := 0
	for _, i := range rr.p.order {
		if have >= rr.p.k {
			break
		}
		if rr.tried[i] {
			continue
		}
		if err := rr.fetch(b, i); err != nil {
			return added, err
		}
		if rr.units[i].Segs != nil {
			have++
			added++
		}
	}
	return added, nil
}

// fetch gets unit b of shard i into rr.units[i], or leaves it nil when the
// shard is unusable. It fails only when the whole read must stop (the
// clip changed, ctx ended).
func (rr *rangeRead) fetch(b int64, i int) error {
	rr.tried[i] = true
	if !rr.p.usable(i) {
		return nil
	}
	s, err := rr.stream(i, b)
	if err != nil {
		return rr.failed(b, i, err)
	}
	m, err := s.get(rr.ctx, b)
	switch {
	case rr.ctx.Err() != nil:
		return rr.ctx.Err()
	case err != nil:
		return rr.failed(b, i, err)
	case m.corrupt:
		rr.p.report(i, s.shardID, shardCorrupt, fmt.Sprintf("block %d failed verification on the storage node", b))
	default:
		rr.units[i], rr.sums[i] = m.unit, m.sum
	}
	return nil
}

// failed handles shard i's failure at block b; a shard found moved is
// fetched again at its new place, once.
func (rr *rangeRead) failed(b int64, i int, err error) error {
	moved, err := rr.p.shardFailed(rr.ctx, i, rr.shardID(i), err)
	if err != nil || !moved || rr.followed[i] {
		return err
	}
	rr.followed[i] = true
	if s := rr.streams[i]; s != nil {
		s.close()
		rr.streams[i] = nil
	}
	return rr.fetch(b, i)
}

// shardID is the shard rr reads at index i: its stream's (the entry may
// have moved on since), or the entry's if no stream is open.
func (rr *rangeRead) shardID(i int) []byte {
	if s := rr.streams[i]; s != nil {
		return s.shardID
	}
	sh, _ := rr.p.shard(i)
	return sh.ShardId
}

// stream returns a stream of shard i positioned at or shortly before
// block b, opening one from b to the end of the range if need be.
func (rr *rangeRead) stream(i int, b int64) (*unitStream, error) {
	if s := rr.streams[i]; s != nil {
		if s.usableFor(b) {
			return s, nil
		}
		s.close()
		rr.streams[i] = nil
	}
	sh, addr := rr.p.shard(i)
	sc, err := rr.p.v.c.storage(addr)
	if err != nil {
		return nil, err
	}
	c := rr.p.v.c
	s := openUnitStream(withCapability(rr.ctx, rr.p.v.capability()), c.raw, addr, sc, sh.ShardId, i, rr.p.shardCount(), b, rr.end, c.cfg.BlocksInFlight, c.cfg.RequestTimeout)
	rr.streams[i] = s
	return s, nil
}

// noteFaults handles the pieces the decoder could not use since the last
// call: they are dropped from the units at hand, and corrupt ones are
// reported.
func (rr *rangeRead) noteFaults() {
	rep := rr.dec.Report()
	for _, f := range rep.Faults[rr.faults:] {
		rr.units[f.Index].Free()
		if errors.Is(f.Err, erasure.ErrCorrupt) {
			rr.p.report(f.Index, rr.shardID(f.Index), shardCorrupt, f.Error())
		}
	}
	rr.faults = len(rep.Faults)
}
