package server

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/clipstore/clipstore/erasure"
	"github.com/clipstore/clipstore/internal/rawshard"
	"github.com/clipstore/clipstore/internal/wire"
	metapb "github.com/clipstore/clipstore/proto/metapb"
	pb "github.com/clipstore/clipstore/proto/storagepb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

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

// sourceStream is a ReadShard stream of one source, from some block on:
// a raw connection when the source's node serves raw reads (and this node
// reads raw: plain text), else gRPC.
type sourceStream struct {
	src     *metapb.ShardSource
	index   int
	stream  grpc.ServerStreamingClient[pb.ReadShardResponse] // nil on a raw connection
	raw     *rawshard.Conn
	cancel  func()
	checked bool   // the header was checked
	buf     []byte // the current unit, and where the next is received
}

func (r *repairer) openSource(ctx context.Context, src *metapb.ShardSource, first int64) (*sourceStream, error) {
	req := &pb.ReadShardRequest{ShardId: src.GetShardId(), FirstBlock: uint64(first), SkipCorrupt: true}
	c, _, err := r.raw.Get(ctx, src.GetAddress(), rawshard.ServesReads, false)
	switch {
	case err == nil:
		// Cancelling closes the connection (a repair's source is never
		// reused: it is read to the end of what the job needs, not of the
		// answer).
		stop := context.AfterFunc(ctx, func() { c.Close() })
		s := &sourceStream{src: src, index: int(src.GetIndex()), raw: c, cancel: func() { stop(); c.Close() }}
		if err := rawshard.WriteRequest(c, req); err != nil {
			s.cancel()
			return nil, status.Errorf(codes.Unavailable, "raw read from %s: %v", src.GetAddress(), err)
		}
		return s, nil
	case !errors.Is(err, rawshard.ErrNoRaw):
		return nil, err
	}
	conn, err := r.n.conns.Get(src.GetAddress())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	stream, err := pb.NewStorageServiceClient(conn).ReadShard(ctx, req)
	if err != nil {
		cancel()
		return nil, err
	}
	return &sourceStream{src: src, index: int(src.GetIndex()), stream: stream, cancel: cancel}, nil
}

// unit receives the source's unit of block b: nil if the source reported
// the piece corrupt, an error if the stream failed or sent something else.
func (s *sourceStream) unit(job *repairJob, b int64) ([]byte, error) {
	if s.raw != nil {
		return s.rawUnit(job, b)
	}
	resp := wire.PieceInto(new(pb.ReadShardResponse), s.buf) // decoded in place once buf is sized
	err := s.stream.RecvMsg(resp)
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("stream ended before block %d: %w", b, io.ErrUnexpectedEOF)
	}
	if err != nil {
		return nil, err
	}
	if err := s.check(job, resp.GetHeader()); err != nil {
		return nil, err
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

// check checks the source's header, which comes with its first message.
func (s *sourceStream) check(job *repairJob, h *pb.ShardHeader) error {
	if !s.checked {
		if err := job.checkSource(h, s.src); err != nil {
			return err
		}
		s.checked = true
	}
	return nil
}

// rawUnit is unit on a raw connection: the answer's frames, the header
// first.
func (s *sourceStream) rawUnit(job *repairJob, b int64) ([]byte, error) {
	var hdr [rawshard.FrameHeaderSize]byte
	for {
		typ, block, n, err := rawshard.ReadFrameHeader(s.raw.R, hdr[:])
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "raw read from %s: %v", s.src.GetAddress(), err)
		}
		switch typ {
		case rawshard.FrameHeader:
			h := &pb.ShardHeader{}
			if err := rawshard.ReadMessage(s.raw.R, n, h); err != nil {
				return nil, status.Errorf(codes.Unavailable, "raw read from %s: %v", s.src.GetAddress(), err)
			}
			if s.checked {
				return nil, fmt.Errorf("%w: source sent a second header", ErrInvalidArgument)
			}
			if err := s.check(job, h); err != nil {
				return nil, err
			}
			continue
		case rawshard.FrameError:
			nodeErr, err := rawshard.ReadError(s.raw.R, n)
			if err != nil {
				return nil, status.Errorf(codes.Unavailable, "raw read from %s: %v", s.src.GetAddress(), err)
			}
			return nil, nodeErr
		case rawshard.FrameEnd:
			return nil, fmt.Errorf("stream ended before block %d: %w", b, io.ErrUnexpectedEOF)
		case rawshard.FrameUnit, rawshard.FrameCorrupt:
		default:
			return nil, fmt.Errorf("%w: source sent a frame %q", ErrInvalidArgument, typ)
		}
		switch {
		case !s.checked:
			return nil, fmt.Errorf("%w: source sent block %d before its header", ErrInvalidArgument, block)
		case block != uint64(b):
			return nil, fmt.Errorf("%w: source sent block %d, want %d", ErrInvalidArgument, block, b)
		case typ == rawshard.FrameCorrupt:
			return nil, nil
		case int(n) > job.h.unitSize():
			return nil, fmt.Errorf("%w: source sent a unit of %d bytes, at most %d", ErrInvalidArgument, n, job.h.unitSize())
		}
		if cap(s.buf) < int(n) {
			s.buf = make([]byte, job.h.unitSize())
		}
		s.buf = s.buf[:n]
		if _, err := io.ReadFull(s.raw.R, s.buf); err != nil {
			return nil, status.Errorf(codes.Unavailable, "raw read from %s: %v", s.src.GetAddress(), err)
		}
		return s.buf, nil
	}
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
