package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/clipstore/clipstore/internal/wire"
	pb "github.com/clipstore/clipstore/proto/storagepb"
	"google.golang.org/grpc"
)

// service adapts the Store to the generated gRPC interface: it decodes and
// checks requests, calls the store and translates errors with toStatus.
type service struct {
	pb.UnimplementedStorageServiceServer
	store  *Store
	nodeID string
	// onDamage hears of every shard a read found lost or corrupt (a read
	// reports what it meets, as a scrub does); nil: nobody.
	onDamage func(ShardID, error)
}

// noteDamage passes a read's error on to onDamage.
func (s *service) noteDamage(id ShardID, err error) {
	if err != nil && s.onDamage != nil {
		s.onDamage(id, err)
	}
}

func (s *service) WriteShard(stream grpc.ClientStreamingServer[pb.WriteShardRequest, pb.WriteShardResponse]) error {
	s.store.metrics.shardWrite("grpc")
	res, err := s.writeShard(stream)
	if err != nil {
		return toStatus(err)
	}
	return stream.SendAndClose(res.proto())
}

func (s *service) writeShard(stream grpc.ClientStreamingServer[pb.WriteShardRequest, pb.WriteShardResponse]) (WriteResult, error) {
	msgs := s.receive(stream)
	first, err := msgs.next("header")
	if err != nil {
		return WriteResult{}, err
	}
	first.Data.Free()
	if first.Header == nil {
		return WriteResult{}, fmt.Errorf("%w: the first message of a write must be the header", ErrInvalidArgument)
	}
	w, err := s.create(stream.Context(), first.Header)
	if err != nil {
		return WriteResult{}, err
	}
	defer w.Abort() // no-op after Commit
	for {
		m, err := msgs.next("finish")
		if err != nil {
			return WriteResult{}, err
		}
		switch {
		case m.HasPiece:
			err := w.WritePieceSegments(m.Block, m.Data.Segs, m.Trailer)
			m.Data.Free()
			if err != nil {
				return WriteResult{}, err
			}
		case m.Finish != nil:
			return w.Commit(m.Finish.GetBlocks(), m.Finish.Checksum)
		case m.Header != nil:
			return WriteResult{}, fmt.Errorf("%w: a second header after the header", ErrInvalidArgument)
		default:
			return WriteResult{}, fmt.Errorf("%w: an empty message after the header", ErrInvalidArgument)
		}
	}
}

// create starts the write of the shard p describes, if the caller may
// write it.
func (s *service) create(ctx context.Context, p *pb.ShardHeader) (*ShardWriter, error) {
	h, err := headerFromProto(p)
	if err != nil {
		return nil, err
	}
	if err := checkWrite(ctx, h); err != nil {
		return nil, err
	}
	return s.store.Create(h)
}

// receiver delivers a write stream's messages and gives up on a client that
// sends nothing for the idle timeout: a stalled writer must not hold a
// temp file and a goroutine forever. Its goroutine ends when the handler
// returns, because gRPC then cancels the stream and Recv fails.
type receiver struct {
	ctx  context.Context
	idle time.Duration
	msgs chan recvResult
}

type recvResult struct {
	msg *wire.WriteRefs
	err error
}

func (s *service) receive(stream grpc.ClientStreamingServer[pb.WriteShardRequest, pb.WriteShardResponse]) *receiver {
	r := &receiver{ctx: stream.Context(), idle: s.store.cfg.WriteIdleTimeout, msgs: make(chan recvResult)}
	go func() {
		// A piece stays in the frame buffers gRPC read it into until the
		// handler has written it (wire.WriteRefs): no copy in user space.
		// Messages are received into two structs in turn: the handler is
		// done with message i when it asks for i+1, which is before this
		// goroutine can hand over i+1 and receive i+2 into i's struct.
		var msgs [2]wire.WriteRefs
		for i := 0; ; i++ {
			m := &msgs[i%2]
			err := stream.RecvMsg(m)
			select {
			case r.msgs <- recvResult{m, err}:
			case <-r.ctx.Done():
				m.Data.Free()
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return r
}

func (r *receiver) next(waiting string) (*wire.WriteRefs, error) {
	timer := time.NewTimer(r.idle)
	defer timer.Stop()
	select {
	case m := <-r.msgs:
		if m.err != nil {
			return nil, recvError(r.ctx, m.err, waiting)
		}
		return m.msg, nil
	case <-timer.C:
		return nil, fmt.Errorf("%w: no message for %v while waiting for the %s (write abandoned)",
			ErrTimeout, r.idle, waiting)
	case <-r.ctx.Done():
		return nil, fmt.Errorf("write interrupted: %w", r.ctx.Err())
	}
}

// recvError explains why a write stream ended early: the client cancelled,
// or the stream closed before the message the node waited for.
func recvError(ctx context.Context, err error, waiting string) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: stream ended before the %s message (truncated write)", ErrInvalidArgument, waiting)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("write interrupted: %w", ctx.Err())
	}
	return err
}

func headerFromProto(p *pb.ShardHeader) (ShardHeader, error) {
	id, err := ParseShardID(p.GetShardId())
	if err != nil {
		return ShardHeader{}, err
	}
	clip, err := ParseClipID(p.GetClipId())
	if err != nil {
		return ShardHeader{}, err
	}
	const max16 = 1<<16 - 1
	if p.GetIndex() > max16 || p.GetDataShards() > max16 || p.GetParityShards() > max16 || p.GetBlockSize() > 1<<31-1 {
		return ShardHeader{}, fmt.Errorf("%w: header field out of range (index %d, k %d, m %d, block size %d)",
			ErrInvalidArgument, p.GetIndex(), p.GetDataShards(), p.GetParityShards(), p.GetBlockSize())
	}
	return ShardHeader{
		ShardID: id, ClipID: clip,
		Index: int(p.GetIndex()), DataShards: int(p.GetDataShards()), ParityShards: int(p.GetParityShards()),
		BlockSize: int(p.GetBlockSize()), CommitDeadline: p.GetCommitDeadlineUnixNano(),
	}, nil
}

func (r WriteResult) proto() *pb.WriteShardResponse {
	return &pb.WriteShardResponse{Blocks: r.Blocks, Length: r.Length, Checksum: r.Checksum, Existed: r.Existed}
}

func headerToProto(h ShardHeader) *pb.ShardHeader {
	return &pb.ShardHeader{
		ShardId: h.ShardID[:], ClipId: h.ClipID[:],
		Index: uint32(h.Index), DataShards: uint32(h.DataShards), ParityShards: uint32(h.ParityShards),
		BlockSize: uint32(h.BlockSize), CommitDeadlineUnixNano: h.CommitDeadline,
	}
}

func (s *service) ReadShard(req *pb.ReadShardRequest, stream grpc.ServerStreamingServer[pb.ReadShardResponse]) error {
	s.store.metrics.shardRead("grpc")
	return toStatus(s.readShard(req, grpcSink{stream}))
}

// pieceSink is where readShard sends a shard's pieces: a gRPC stream, or
// a raw connection (raw.go).
type pieceSink interface {
	Context() context.Context
	// sendHeader answers an empty range: the shard's header alone.
	sendHeader(header *pb.ShardHeader) error
	// sendPiece sends block b's piece and trailer, held in buf (header: the
	// shard's, with the first piece only). It reports whether it took buf.
	sendPiece(header *pb.ShardHeader, b uint64, data, trailer []byte, buf *[]byte) (taken bool, err error)
	// sendCorrupt says block b's piece is corrupt (skip_corrupt).
	sendCorrupt(header *pb.ShardHeader, b uint64) error
}

// grpcSink sends a shard's pieces as ReadShardResponse messages.
type grpcSink struct {
	stream grpc.ServerStreamingServer[pb.ReadShardResponse]
}

func (g grpcSink) Context() context.Context { return g.stream.Context() }

func (g grpcSink) sendHeader(header *pb.ShardHeader) error {
	return g.stream.Send(&pb.ReadShardResponse{Header: header})
}

// sendPiece hands buf to gRPC without a copy (see wire.OwnedPiece).
func (g grpcSink) sendPiece(header *pb.ShardHeader, b uint64, data, trailer []byte, buf *[]byte) (bool, error) {
	msg := &wire.OwnedPiece{Header: header, Block: b, Data: data, Trailer: trailer, Buf: buf}
	err := g.stream.SendMsg(msg)
	return msg.Taken, err
}

func (g grpcSink) sendCorrupt(header *pb.ShardHeader, b uint64) error {
	return g.stream.Send(&pb.ReadShardResponse{Header: header, Piece: &pb.Piece{Block: b, Corrupt: true}})
}

func (s *service) readShard(req *pb.ReadShardRequest, sink pieceSink) error {
	id, err := ParseShardID(req.GetShardId())
	if err != nil {
		return err
	}
	r, err := s.store.Open(id)
	s.noteDamage(id, err) // a lost file or a damaged header
	if err != nil {
		return err
	}
	defer r.Close()
	if err := checkRead(sink.Context(), "ReadShard", r.Header().ClipID); err != nil {
		return err
	}
	first, end, err := blockRange(req.GetFirstBlock(), req.GetBlockCount(), r.Blocks())
	if err != nil {
		return err
	}
	header := headerToProto(r.Header())
	if first == end { // empty range: the header alone
		return sink.sendHeader(header)
	}
	for b := first; b < end; b++ {
		if err := sink.Context().Err(); err != nil {
			return err
		}
		// Each unit is read into its own pooled buffer, which a sink may
		// keep (gRPC sends it without a copy).
		buf := wire.Pool.Get(r.UnitSize())
		data, trailer, err := r.ReadPiece(b, *buf)
		var corrupt *CorruptPieceError
		if errors.As(err, &corrupt) {
			s.noteDamage(id, err)
		}
		switch {
		case errors.As(err, &corrupt) && req.GetSkipCorrupt():
			wire.Pool.Put(buf)
			err = sink.sendCorrupt(header, b)
		case err != nil:
			wire.Pool.Put(buf)
			return err
		default:
			var taken bool
			taken, err = sink.sendPiece(header, b, data, trailer, buf)
			if !taken { // copied, or never sent: buf is still ours
				wire.Pool.Put(buf)
			}
		}
		if err != nil {
			return err
		}
		header = nil
	}
	return nil
}

// blockRange checks a requested range against a shard of n blocks.
func blockRange(first, count, n uint64) (uint64, uint64, error) {
	if first > n || (first == n && n != 0) {
		return 0, 0, fmt.Errorf("%w: first block %d of a shard with %d blocks", ErrOutOfRange, first, n)
	}
	if count == 0 {
		return first, n, nil
	}
	if count > n-first {
		return 0, 0, fmt.Errorf("%w: blocks %d..%d of a shard with %d blocks", ErrOutOfRange, first, first+count-1, n)
	}
	return first, first + count, nil
}

func (s *service) DeleteShard(ctx context.Context, req *pb.DeleteShardRequest) (*pb.DeleteShardResponse, error) {
	id, err := ParseShardID(req.GetShardId())
	if err != nil {
		return nil, toStatus(err)
	}
	existed, err := s.store.Delete(id)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.DeleteShardResponse{Existed: existed}, nil
}

func (s *service) StatShard(ctx context.Context, req *pb.StatShardRequest) (*pb.StatShardResponse, error) {
	id, err := ParseShardID(req.GetShardId())
	if err != nil {
		return nil, toStatus(err)
	}
	info, err := s.store.Stat(id)
	s.noteDamage(id, err)
	if err != nil {
		return nil, toStatus(err)
	}
	if err := checkRead(ctx, "StatShard", info.Header.ClipID); err != nil {
		return nil, err
	}
	return &pb.StatShardResponse{Shard: &pb.ShardInfo{
		Header: headerToProto(info.Header), Blocks: info.Blocks, Length: info.Length,
		FileSize: uint64(info.FileSize), Checksum: info.Checksum, Disk: info.Disk,
		ModTimeUnixNano: info.ModTime,
	}}, nil
}

func (s *service) ListShards(ctx context.Context, req *pb.ListShardsRequest) (*pb.ListShardsResponse, error) {
	if err := checkInventory(ctx); err != nil {
		return nil, err
	}
	var after *ShardID
	if len(req.GetStartAfter()) > 0 {
		id, err := ParseShardID(req.GetStartAfter())
		if err != nil {
			return nil, toStatus(fmt.Errorf("start_after: %w", err))
		}
		after = &id
	}
	limit := int(req.GetPageSize())
	if limit == 0 {
		limit = s.store.cfg.ListPageSize
	}
	limit = min(limit, s.store.cfg.ListPageSizeMax)
	entries, more, err := s.store.List(after, limit)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &pb.ListShardsResponse{Shards: make([]*pb.ShardEntry, len(entries))}
	for i, e := range entries {
		resp.Shards[i] = &pb.ShardEntry{ShardId: e.ID[:], FileSize: uint64(e.FileSize), Disk: e.Disk}
	}
	if more {
		last := entries[len(entries)-1].ID
		resp.NextStartAfter = last[:]
	}
	return resp, nil
}

func (s *service) NodeInfo(ctx context.Context, req *pb.NodeInfoRequest) (*pb.NodeInfoResponse, error) {
	disks, err := s.store.Usage()
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &pb.NodeInfoResponse{NodeId: s.nodeID}
	for _, d := range disks {
		resp.Disks = append(resp.Disks, &pb.DiskInfo{
			Path: d.Path, Incarnation: d.Incarnation, Capacity: d.Capacity, Used: d.Used, Free: d.Free,
			ShardCount: d.ShardCount, ShardBytes: d.ShardSize,
		})
		resp.Capacity += d.Capacity
		resp.Used += d.Used
		resp.Free += d.Free
		resp.ShardCount += d.ShardCount
	}
	return resp, nil
}
