package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clipstore/clipstore/erasure"
	"github.com/clipstore/clipstore/internal/conns"
	"github.com/clipstore/clipstore/internal/rawshard"
	"github.com/clipstore/clipstore/internal/wire"
	metapb "github.com/clipstore/clipstore/proto/metapb"
	storagepb "github.com/clipstore/clipstore/proto/storagepb"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
)

// PutOptions are the optional parts of a Put.
type PutOptions struct {
	ContentType string
	Metadata    map[string]string
	Capture     *Capture
	// Profile overrides the bucket's default erasure-coding profile.
	Profile *Profile
	// IfGenerationMatch commits only if the key is at this generation
	// (0: only if the key does not exist); otherwise ErrPrecondition.
	IfGenerationMatch *uint64
	// SizeHint is the expected clip size, if known; placement uses it.
	SizeHint int64
	// Progress, if set, is called with the clip bytes read and handed to
	// the storage streams so far.
	Progress func(written int64)
	// ChecksumAlgorithm, for CreateUpload only, is recorded with the
	// upload for its writer (an S3 gateway: the checksum its parts are
	// hashed with, "crc32 COMPOSITE"); meta does not read it.
	ChecksumAlgorithm string
	// Finish, if set, is called once every byte of the clip is read and
	// stored, just before the commit: the ETag and checksums it returns are
	// stored in the record. An error aborts the put (nothing becomes
	// visible) and Put returns it, wrapped. An S3 gateway verifies
	// Content-MD5 and the client's checksums here, computed beside the
	// upload.
	Finish func() (*PutFinish, error)
}

// PutFinish is what PutOptions.Finish stores with a clip.
type PutFinish struct {
	ETag string
	// Checksums by algorithm name ("crc32c", "sha256", ...), as the
	// writer's protocol prints them (S3: base64).
	Checksums map[string]string
}

// Put stores the clip read from r (until io.EOF) under bucket/key,
// replacing any clip there, and returns its record. The clip is encoded
// block by block as it is read and streamed to k+m storage nodes in
// parallel; memory stays at Config.BlocksInFlight blocks whatever the
// clip's size. The clip becomes visible only when Put returns nil; an
// error leaves the key as it was (nothing is committed below the write
// quorum). If ctx ends while r.Read blocks, Put returns when Read does.
func (c *Client) Put(ctx context.Context, bucket, key string, r io.Reader, opts *PutOptions) (*ClipInfo, error) {
	if opts == nil {
		opts = &PutOptions{}
	}
	prof, err := profileToProto(opts.Profile)
	if err != nil {
		return nil, err
	}
	what := "put " + bucket + "/" + key
	beginReq := &metapb.BeginPutRequest{Bucket: bucket, Key: key, Profile: prof, SizeHint: uint64(max(opts.SizeHint, 0))}
	begin, err := callMeta(ctx, c, what+": begin", func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.BeginPutResponse, error) {
		return mc.BeginPut(ctx, beginReq)
	})
	if err != nil {
		return nil, err
	}
	code, err := c.code(profileFromProto(begin.Profile))
	if err != nil {
		return nil, err
	}
	if len(begin.Targets) != code.Shards() {
		return nil, fmt.Errorf("%s: meta returned %d targets for a %d-shard profile", what, len(begin.Targets), code.Shards())
	}
	up := newUpload(c, begin, code)
	res, shards, err := up.run(ctx, r, opts.Progress)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	req := &metapb.CommitPutRequest{
		RequestId: newRequestID(), Bucket: bucket, Key: key, UploadId: begin.UploadId, ClipId: begin.ClipId,
		CommitDeadlineUnixNano: begin.CommitDeadlineUnixNano, Size: uint64(res.Size), ContentCrc32C: res.Checksum,
		Profile: begin.Profile, Shards: shards, ContentType: opts.ContentType, UserMetadata: opts.Metadata,
		Capture: captureToProto(opts.Capture), IfGenerationMatch: opts.IfGenerationMatch,
	}
	if opts.Finish != nil {
		fin, err := opts.Finish()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if fin != nil {
			req.Etag, req.Checksums = fin.ETag, fin.Checksums
		}
	}
	resp, err := c.commit(ctx, what+": commit", req)
	if err != nil {
		return nil, err
	}
	return clipInfoFromProto(resp.Clip, 0, len(resp.Clip.GetParts())), nil
}

// commit sends CommitPut, retrying with the same request id: if an earlier
// attempt was applied, the FSM answers the retry with that first outcome.
func (c *Client) commit(ctx context.Context, what string, req *metapb.CommitPutRequest) (*metapb.CommitPutResponse, error) {
	return callMeta(ctx, c, what, func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.CommitPutResponse, error) {
		return mc.CommitPut(ctx, req)
	})
}

// upload streams one clip's shards to their storage nodes.
type upload struct {
	c      *Client
	begin  *metapb.BeginPutResponse
	code   *erasure.Code
	quorum int
	abort  context.CancelCauseFunc
	failed atomic.Int32
	res    erasure.EncodeResult // set by the producer before it closes the channels

	spares struct {
		sync.Mutex
		list []*metapb.Spare
	}
}

func newUpload(c *Client, begin *metapb.BeginPutResponse, code *erasure.Code) *upload {
	n := code.Shards()
	u := &upload{c: c, begin: begin, code: code, quorum: min(code.DataShards()+1, n)}
	u.spares.list = append(u.spares.list, begin.Spares...)
	return u
}

// blockRef is an encoded block shared by the k+m shard writers. The last
// writer done with it gives back its slot among the blocks in flight; the
// block's memory goes back to the Code once, in addition, gRPC has written
// out every piece that was handed to it without a copy (pin).
//
// gRPC holds at most about one message per stream beyond what SendMsg has
// returned from (its per-stream write quota is 64 KiB), so the blocks that
// are no longer in flight but still pinned are few; and a piece gRPC never
// gives back (a connection that died under it) only keeps its block from
// being reused, never a slot.
type blockRef struct {
	b       *erasure.Block
	writers atomic.Int32 // writers not done with the block
	refs    atomic.Int32 // those writers plus the pieces gRPC holds
	tokens  chan struct{}
}

func newBlockRef(b *erasure.Block, writers int, tokens chan struct{}) *blockRef {
	r := &blockRef{b: b, tokens: tokens}
	r.writers.Store(int32(writers))
	r.refs.Store(int32(writers))
	return r
}

func (r *blockRef) done() {
	if r.writers.Add(-1) == 0 {
		<-r.tokens
	}
	r.unref()
}

func (r *blockRef) unref() {
	if r.refs.Add(-1) == 0 {
		r.b.Release()
	}
}

// pin returns a buffer pool for one piece of the block that gRPC is about
// to own (wire.OwnedPiece): giving the buffer back unpins the block.
func (r *blockRef) pin() *piecePin {
	r.refs.Add(1)
	return &piecePin{ref: r}
}

// piecePin is the mem.BufferPool of one piece handed to gRPC. Put is
// called once, when gRPC is done with the piece; release is for a piece
// that gRPC never took.
type piecePin struct {
	ref  *blockRef
	once sync.Once
}

func (p *piecePin) Get(int) *[]byte { panic("client: piecePin hands out no buffers") }
func (p *piecePin) Put(*[]byte)     { p.release() }
func (p *piecePin) release()        { p.once.Do(p.ref.unref) }

// zeroCopyPiece is the smallest piece handed to gRPC without a copy: below
// it the copy costs less than the pin.
const zeroCopyPiece = 64 << 10

// run encodes r and streams every shard, and returns the clip's totals and
// the shard entries to commit. It fails if fewer than the write quorum of
// shards were written.
func (u *upload) run(ctx context.Context, r io.Reader, progress func(int64)) (erasure.EncodeResult, []*metapb.Shard, error) {
	ctx, cancel := context.WithDeadline(ctx, time.Unix(0, u.begin.CommitDeadlineUnixNano))
	defer cancel()
	ctx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	u.abort = abort
	n := u.code.Shards()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(n + 1)
	chans := make([]chan *blockRef, n)
	writers := make([]*shardWriter, n)
	for i, t := range u.begin.Targets {
		chans[i] = make(chan *blockRef, u.c.cfg.BlocksInFlight)
		writers[i] = &shardWriter{up: u, index: i, node: t.NodeId, addr: t.Address, shardID: t.ShardId}
		g.Go(func() error {
			writers[i].run(gctx, chans[i])
			return nil
		})
	}
	g.Go(func() error { return u.produce(gctx, r, chans, progress) })
	if err := g.Wait(); err != nil {
		return u.res, nil, err // the reader's error, or why the upload was aborted
	}
	return u.result(writers)
}

// produce reads and encodes the clip block by block and hands every block
// to every shard writer, keeping at most BlocksInFlight blocks alive. The
// channels have that many slots, so sends never block.
func (u *upload) produce(ctx context.Context, r io.Reader, chans []chan *blockRef, progress func(int64)) (err error) {
	defer func() {
		if err != nil {
			// Before the channels close: a writer that sees its channel
			// closed finishes its shard unless the upload is aborted, and a
			// clip that was not read whole has no result to finish with.
			u.abort(err)
		}
		for _, ch := range chans {
			close(ch)
		}
	}()
	enc := u.code.NewEncoder(r)
	tokens := make(chan struct{}, u.c.cfg.BlocksInFlight)
	var written int64
	for {
		select {
		case tokens <- struct{}{}:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		b, err := enc.Next()
		if errors.Is(err, io.EOF) {
			u.res = enc.Result()
			return nil
		}
		if err != nil {
			return err
		}
		written += int64(b.DataLen) // before the sends: the writers may release b at once
		ref := newBlockRef(b, len(chans), tokens)
		for _, ch := range chans {
			ch <- ref
		}
		if progress != nil {
			progress(written)
		}
	}
}

// result checks the write quorum and builds the shard entries: written
// shards OK, the others MISSING without a node.
func (u *upload) result(writers []*shardWriter) (erasure.EncodeResult, []*metapb.Shard, error) {
	shards := make([]*metapb.Shard, len(writers))
	ok := 0
	var errs []error
	for i, w := range writers {
		s := &metapb.Shard{Index: uint32(i), ShardId: w.shardID, State: metapb.ShardState_SHARD_STATE_MISSING}
		if w.err == nil {
			ok++
			s.NodeId, s.Length, s.Checksum, s.State = w.node, w.length, u.res.ShardSums[i], metapb.ShardState_SHARD_STATE_OK
		} else {
			errs = append(errs, w.err)
			u.c.log.Warn("shard not written; recorded missing", "index", i, "node", w.node, "err", w.err)
		}
		shards[i] = s
	}
	if ok < u.quorum {
		return u.res, nil, fmt.Errorf("%w: %d of %d shards written, the write quorum is %d: %w",
			ErrUnavailable, ok, len(writers), u.quorum, errors.Join(errs...))
	}
	return u.res, shards, nil
}

// takeSpare hands out the next spare, if any.
func (u *upload) takeSpare() *metapb.Spare {
	u.spares.Lock()
	defer u.spares.Unlock()
	if len(u.spares.list) == 0 {
		return nil
	}
	s := u.spares.list[0]
	u.spares.list = u.spares.list[1:]
	return s
}

// shardFailed counts a lost shard and aborts the upload once the write
// quorum can no longer be reached.
func (u *upload) shardFailed() {
	n := u.code.Shards()
	if lost := int(u.failed.Add(1)); n-lost < u.quorum {
		u.abort(fmt.Errorf("%w: %d of %d shard writes failed, the write quorum of %d cannot be reached",
			ErrUnavailable, lost, n, u.quorum))
	}
}

type writeStream = grpc.ClientStreamingClient[storagepb.WriteShardRequest, storagepb.WriteShardResponse]

// connectWait bounds how long a write waits for a connection to a target
// that is not ready (connecting, or in its reconnect backoff) before it
// moves to a spare.
const connectWait = 2 * conns.MaxReconnectDelay

// shardWriter streams one shard index to its node. Until the first piece
// is sent it may move to a spare node; after that a failure makes the
// index missing.
type shardWriter struct {
	up         *upload
	index      int
	node, addr string
	shardID    []byte
	raw        *rawTx // the write on a raw connection, or nil
	stream     writeStream
	cancel     context.CancelFunc // ends stream
	watchdog   *time.Timer        // cancels a stream stuck in one call
	sent       int64              // pieces sent
	length     uint64             // piece bytes sent
	err        error              // why the shard failed; nil while it is healthy
}

// run sends every block's piece, then finishes the shard. It drains ch
// whatever happens, so that every block is released.
func (w *shardWriter) run(ctx context.Context, ch <-chan *blockRef) {
	defer w.closeStream()
	for ref := range ch {
		if w.err == nil {
			if err := w.sendPiece(ctx, ref); err != nil {
				w.fail(err)
			}
		}
		ref.done()
	}
	if w.err == nil {
		if err := ctx.Err(); err != nil {
			w.err = err
			return
		}
		if err := w.finish(ctx); err != nil {
			w.fail(err)
		}
	}
}

func (w *shardWriter) fail(err error) {
	w.err = err
	w.closeStream()
	w.up.shardFailed()
}

// sendPiece sends the block's piece of this shard. A large piece is handed
// to gRPC as it lies in the block, pinning the block until gRPC has
// written it out: no copy of it is made in user space.
func (w *shardWriter) sendPiece(ctx context.Context, ref *blockRef) error {
	piece := ref.b.Pieces[w.index]
	for {
		err := w.open(ctx)
		if err == nil {
			err = w.sendOnce(ref, piece)
		}
		if err == nil {
			w.sent++
			w.length += uint64(len(piece))
			return nil
		}
		if w.sent > 0 || !w.swap(ctx, err) {
			return err
		}
	}
}

// sendOnce sends the piece on the open write: on a raw connection, or
// handed to gRPC (pinning the block) when it is large, copied into the
// message when it is small.
func (w *shardWriter) sendOnce(ref *blockRef, piece []byte) error {
	b := ref.b
	if w.raw != nil {
		return w.wrap(w.raw.piece(uint64(b.Num), piece, b.Trailer(w.index)))
	}
	if len(piece) < zeroCopyPiece {
		return w.send(&storagepb.WriteShardRequest{Msg: &storagepb.WriteShardRequest_Piece{Piece: &storagepb.Piece{
			Block: uint64(b.Num), Data: piece, Trailer: b.Trailer(w.index)}}})
	}
	buf := piece[:len(piece):len(piece)]
	pin := ref.pin()
	owned := &wire.OwnedPiece{Block: uint64(b.Num), Data: buf, Trailer: b.Trailer(w.index), Buf: &buf, Pool: pin}
	err := w.send(owned)
	if !owned.Taken {
		pin.release()
	}
	return err
}

// finish ends the shard with its block count and checksum and checks the
// node's answer against what was sent.
func (w *shardWriter) finish(ctx context.Context) error {
	res := &w.up.res
	sum := res.ShardSums[w.index]
	msg := &storagepb.WriteShardRequest{Msg: &storagepb.WriteShardRequest_Finish{Finish: &storagepb.WriteFinish{
		Blocks: uint64(res.Blocks), Checksum: &sum}}}
	for {
		err := w.open(ctx)
		var resp *storagepb.WriteShardResponse
		switch {
		case err == nil && w.raw != nil:
			resp, err = w.raw.finish(msg.GetFinish())
			err = w.wrap(err)
		case err == nil:
			if err = w.send(msg); err == nil {
				resp, err = w.closeAndRecv()
			}
		}
		if err == nil {
			if resp.Blocks != uint64(res.Blocks) || resp.Checksum != sum || resp.Length != w.length {
				return fmt.Errorf("shard %d on node %s: the node stored %d blocks, %d bytes, checksum %08x; sent %d, %d, %08x",
					w.index, w.node, resp.Blocks, resp.Length, resp.Checksum, res.Blocks, w.length, sum)
			}
			return nil
		}
		if w.sent > 0 || !w.swap(ctx, err) {
			return err
		}
	}
}

// open starts the write and sends the header, unless it runs: on a raw
// connection when the client and the node write raw, else on a gRPC
// stream.
func (w *shardWriter) open(ctx context.Context) error {
	if w.stream != nil || w.raw != nil {
		return nil
	}
	if w.node == "" {
		return fmt.Errorf("%w: no storage node for shard %d", ErrUnavailable, w.index)
	}
	b := w.up.begin
	k, m := w.up.code.DataShards(), w.up.code.ParityShards()
	header := &storagepb.ShardHeader{
		ShardId: w.shardID, ClipId: b.ClipId, Index: uint32(w.index), DataShards: uint32(k), ParityShards: uint32(m),
		BlockSize: uint32(w.up.code.BlockSize()), CommitDeadlineUnixNano: b.CommitDeadlineUnixNano}
	raw, err := openRawTx(ctx, w.up.c.raw, w.addr, header, w.up.c.cfg.RequestTimeout)
	if err == nil {
		w.raw = raw
		return nil
	}
	if !errors.Is(err, rawshard.ErrNoRaw) {
		return w.wrap(err)
	}
	cc, err := w.up.c.conn(w.addr)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(withCapability(ctx, w.up.begin.Capability))
	w.cancel, w.watchdog = cancel, time.AfterFunc(time.Hour, cancel)
	w.watchdog.Stop()
	var opts []grpc.CallOption
	if cc.GetState() == connectivity.Ready {
		w.arm()
	} else {
		// A node meta just saw come back may still be in this connection's
		// reconnect backoff (at most conns.MaxReconnectDelay): give it that
		// long to be ready before the shard goes to a spare (or is recorded
		// missing). (Not ResetConnectBackoff: in grpc-go it reads the
		// connection's subchannel set unlocked, a race the detector sees.)
		cc.Connect()
		opts = append(opts, grpc.WaitForReady(true))
		w.watchdog.Reset(min(connectWait, w.up.c.cfg.RequestTimeout))
	}
	stream, err := storagepb.NewStorageServiceClient(cc).WriteShard(sctx, opts...)
	w.disarm()
	if err != nil {
		w.closeStream()
		return w.wrap(err)
	}
	w.stream = stream
	return w.send(&storagepb.WriteShardRequest{Msg: &storagepb.WriteShardRequest_Header{Header: header}})
}

// send sends one message. A node that ended the stream answers with its
// status, which is returned instead of io.EOF.
func (w *shardWriter) send(msg any) error {
	w.arm()
	err := w.stream.SendMsg(msg)
	if errors.Is(err, io.EOF) {
		err = w.stream.RecvMsg(new(storagepb.WriteShardResponse))
	}
	w.disarm()
	return w.wrap(err)
}

func (w *shardWriter) closeAndRecv() (*storagepb.WriteShardResponse, error) {
	w.arm()
	resp, err := w.stream.CloseAndRecv()
	w.disarm()
	return resp, w.wrap(err)
}

// arm and disarm bound one call on the stream by RequestTimeout: a node
// that stops taking pieces must not stall the whole put.
func (w *shardWriter) arm()    { w.watchdog.Reset(w.up.c.cfg.RequestTimeout) }
func (w *shardWriter) disarm() { w.watchdog.Stop() }

func (w *shardWriter) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fromStatus(fmt.Sprintf("write shard %d to node %s", w.index, w.node), err)
}

// swap moves the shard to a spare node after err, if one is left.
func (w *shardWriter) swap(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	w.closeStream()
	s := w.up.takeSpare()
	if s == nil {
		return false
	}
	w.up.c.log.Info("shard target failed before its first piece; using a spare",
		"index", w.index, "node", w.node, "spare", s.NodeId, "err", err)
	w.node, w.addr, w.shardID = s.NodeId, s.Address, s.ShardId
	return true
}

func (w *shardWriter) closeStream() {
	if w.raw != nil {
		w.raw.close()
		w.raw = nil
	}
	if w.cancel != nil {
		w.watchdog.Stop()
		w.cancel()
	}
	w.stream, w.cancel = nil, nil
}
