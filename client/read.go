package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/clipstore/clipstore/erasure"
	metapb "github.com/clipstore/clipstore/proto/metapb"
	"google.golang.org/grpc/codes"
)

// Shard states a read reports to meta.
const (
	shardMissing = metapb.ShardState_SHARD_STATE_MISSING
	shardCorrupt = metapb.ShardState_SHARD_STATE_CORRUPT
)

// clipView is one generation of a clip, pinned by a read: its record, its
// geometry and what the read has learned about its shards.
type clipView struct {
	c      *Client
	rec    *metapb.ClipRecord
	info   *ClipInfo
	layout erasure.Layout
	k      int
	order  []int // shard indices in the order reads try them

	mu struct {
		sync.Mutex
		// shards and addrs are as the record was read, but for shards
		// found moved since (a drain or a rebalance): those are as the
		// record was re-read.
		shards   []*metapb.Shard
		addrs    map[string]string // storage node id -> address
		failed   []bool            // the shard's node failed, or the shard is gone
		reported []bool
		pending  []*metapb.ReportShardRequest
	}
}

// view reads a clip's record (linearizably) and pins that generation.
func (c *Client) view(ctx context.Context, bucket, key string) (*clipView, error) {
	resp, err := c.getClip(ctx, bucket, key)
	if err != nil {
		return nil, err
	}
	rec := resp.Clip
	if len(rec.Parts) != 1 {
		return nil, fmt.Errorf("%w: %s/%s has %d parts; this client reads single-part clips", ErrInvalidArgument, bucket, key, len(rec.Parts))
	}
	part := rec.Parts[0]
	code, err := c.code(profileFromProto(part.Profile))
	if err != nil {
		return nil, err
	}
	layout, err := code.Layout(int64(rec.Size))
	if err != nil {
		return nil, fmt.Errorf("%w: %s/%s: %v", ErrInvalidArgument, bucket, key, err)
	}
	if len(part.Shards) != code.Shards() {
		return nil, fmt.Errorf("%w: %s/%s: record lists %d shards for profile %v", ErrUnrecoverable, bucket, key,
			len(part.Shards), profileFromProto(part.Profile))
	}
	v := &clipView{c: c, rec: rec, info: clipInfoFromProto(rec), layout: layout, k: code.DataShards()}
	v.mu.shards, v.mu.addrs = slices.Clone(part.Shards), map[string]string{}
	for _, n := range resp.Nodes {
		v.mu.addrs[n.NodeId] = n.Address
	}
	v.mu.failed = make([]bool, len(part.Shards))
	v.mu.reported = make([]bool, len(part.Shards))
	v.order = readOrder(part.Shards)
	return v, nil
}

// shardCount is the number of shards of the clip.
func (v *clipView) shardCount() int { return len(v.rec.Parts[0].Shards) }

// shard returns shard i's entry and its node's address.
func (v *clipView) shard(i int) (*metapb.Shard, string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.mu.shards[i]
	return s, v.mu.addrs[s.NodeId]
}

// readOrder lists the shards worth reading: healthy ones in index order
// (data before parity), then those recorded corrupt (most of their pieces
// are likely fine) as a last resort. Missing shards are left out.
func readOrder(shards []*metapb.Shard) []int {
	var ok, corrupt []int
	for i, s := range shards {
		switch {
		case s.NodeId == "":
		case s.State == metapb.ShardState_SHARD_STATE_OK:
			ok = append(ok, i)
		case s.State == metapb.ShardState_SHARD_STATE_CORRUPT:
			corrupt = append(corrupt, i)
		}
	}
	return append(ok, corrupt...)
}

// usable reports whether shard i may be read.
func (v *clipView) usable(i int) bool {
	if !slices.Contains(v.order, i) {
		return false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return !v.mu.failed[i]
}

// shardFailed handles a shard whose stream failed with err, and returns an
// error only if the whole read must stop. A shard the node does not have
// means the clip changed (overwritten or deleted: ErrClipChanged, nothing
// reported), or that the shard moved (a drain or a rebalance: the re-read
// record names its new place, and moved says to read it there), or else
// that it is lost: it is reported missing. A damaged shard is reported
// corrupt; a node that fails or is slow is just not read again.
func (v *clipView) shardFailed(ctx context.Context, i int, err error) (moved bool, _ error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	v.markFailed(i)
	switch {
	case errors.Is(err, ErrNotFound):
		resp, cerr := v.checkUnchanged(ctx)
		if cerr != nil {
			return false, cerr
		}
		if v.moved(i, resp) {
			return true, nil
		}
		v.report(i, shardMissing, err.Error())
	case errors.Is(err, ErrCorrupt), codeOf(err) == codes.OutOfRange: // a shard shorter than its record
		v.report(i, shardCorrupt, err.Error())
	default:
		sh, _ := v.shard(i)
		v.c.log.Info("shard unreadable; reading others", "clip", v.info.Key, "index", i,
			"node", sh.NodeId, "err", err)
	}
	return false, nil
}

// checkUnchanged re-reads the record, and returns ErrClipChanged if the
// key no longer maps to the pinned generation.
func (v *clipView) checkUnchanged(ctx context.Context) (*metapb.GetClipResponse, error) {
	resp, err := v.c.getClip(ctx, v.rec.Bucket, v.rec.Key)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, fmt.Errorf("%w: %s/%s was deleted (read pinned generation %d)", ErrClipChanged, v.rec.Bucket, v.rec.Key, v.rec.Generation)
	case err != nil:
		return nil, err
	case resp.Clip.Generation != v.rec.Generation || string(resp.Clip.ClipId) != string(v.rec.ClipId):
		return nil, fmt.Errorf("%w: %s/%s is at generation %d, the read pinned %d", ErrClipChanged, v.rec.Bucket, v.rec.Key,
			resp.Clip.Generation, v.rec.Generation)
	}
	return resp, nil
}

// moved takes shard i's new place from a re-read record of the same
// generation, if the shard moved to a healthy one (a drain's or a
// rebalance's move, or a repair), and reports whether it did. The bytes are
// the same: a move copies them, a repair rebuilds them, both verified.
func (v *clipView) moved(i int, resp *metapb.GetClipResponse) bool {
	parts := resp.GetClip().GetParts()
	if len(parts) != 1 || i >= len(parts[0].Shards) {
		return false
	}
	now := parts[0].Shards[i]
	v.mu.Lock()
	defer v.mu.Unlock()
	if bytes.Equal(now.ShardId, v.mu.shards[i].ShardId) || now.NodeId == "" || now.State != metapb.ShardState_SHARD_STATE_OK {
		return false
	}
	for _, n := range resp.Nodes {
		v.mu.addrs[n.NodeId] = n.Address
	}
	v.mu.shards[i] = now
	v.mu.failed[i] = false
	v.c.log.Debug("shard moved; reading it at its new place", "clip", v.info.Key, "index", i, "node", now.NodeId)
	return true
}

func (v *clipView) markFailed(i int) {
	v.mu.Lock()
	v.mu.failed[i] = true
	v.mu.Unlock()
}

// report queues a report of shard i to meta, once per shard; flushReports
// sends them.
func (v *clipView) report(i int, state metapb.ShardState, detail string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.mu.reported[i] {
		return
	}
	v.mu.reported[i] = true
	s := v.mu.shards[i]
	v.mu.pending = append(v.mu.pending, &metapb.ReportShardRequest{
		RequestId: newRequestID(), ClipId: v.rec.ClipId, Generation: v.rec.Generation, Part: 0, Index: uint32(i),
		ShardId: s.ShardId, State: state, Reporter: v.c.cfg.Reporter, Detail: detail})
}

// flushReports sends the queued reports, unless the read found that the
// clip changed (its shards are then gone, not damaged). Failures are
// logged: a report is advice, and meta ignores one for another generation.
func (v *clipView) flushReports(ctx context.Context, readErr error) {
	v.mu.Lock()
	pending := v.mu.pending
	v.mu.pending = nil
	v.mu.Unlock()
	if len(pending) == 0 || errors.Is(readErr, ErrClipChanged) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.c.cfg.RequestTimeout)
	defer cancel()
	for _, req := range pending {
		v.c.log.Warn("reporting shard", "bucket", v.rec.Bucket, "key", v.rec.Key, "index", req.Index,
			"state", req.State, "detail", req.Detail)
		_, err := callMeta(ctx, v.c, "report shard", func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.ReportShardResponse, error) {
			return mc.ReportShard(ctx, req)
		})
		if err != nil {
			v.c.log.Warn("shard report failed", "index", req.Index, "err", err)
		}
	}
}

// readRange decodes the clip bytes [off, off+n). With dst (len >= n) it
// decodes into dst; otherwise it hands the bytes to emit piece by piece
// (verified, straight from the fetched units: no copy), each valid until
// emit returns, and, if crc is not nil, extends *crc with them (from the
// verified piece CRCs, without a pass over whole pieces).
func (v *clipView) readRange(ctx context.Context, off, n int64, dst []byte, emit func([]byte) error, crc *uint32) (err error) {
	defer func() { v.flushReports(ctx, err) }()
	ext, err := v.layout.Extents(off, n)
	if err != nil || len(ext) == 0 {
		return err
	}
	rr := v.newRangeRead(ctx, ext[len(ext)-1].Block+1)
	defer rr.close()
	pos := 0
	for _, e := range ext {
		if dst == nil {
			pieces, err := rr.pieces(e)
			if err != nil {
				return err
			}
			for _, p := range pieces {
				if err := emit(p); err != nil {
					return err
				}
			}
			if crc != nil {
				*crc = rr.contentCRC(*crc)
			}
			continue
		}
		out, err := rr.decode(dst[pos:pos:len(dst)], e)
		if err != nil {
			return err
		}
		if len(out) > 0 && &out[0] != &dst[pos] {
			copy(dst[pos:], out)
		}
		pos += len(out)
	}
	return nil
}

// GetOptions are the optional parts of a Get.
type GetOptions struct {
	// Progress, if set, is called with the bytes written to w so far.
	Progress func(read int64)
}

// Get writes the whole clip to w and returns its record. The bytes of
// every piece are verified before they are written (a lost or corrupt
// piece is rebuilt from parity and verified too); at the end the
// whole-clip CRC32C is checked as well, and a mismatch is an error wrapping
// ErrUnrecoverable. If the clip is overwritten or deleted during the read,
// Get fails with ErrClipChanged; the bytes written before then all belong
// to the generation it started with.
func (c *Client) Get(ctx context.Context, bucket, key string, w io.Writer, opts *GetOptions) (*ClipInfo, error) {
	v, err := c.view(ctx, bucket, key)
	if err != nil {
		return nil, err
	}
	var crc uint32
	var written int64
	err = v.readRange(ctx, 0, v.layout.Size(), nil, func(b []byte) error {
		if n, err := w.Write(b); err != nil {
			return err
		} else if n < len(b) { // a writer that breaks io.Writer's contract
			return io.ErrShortWrite
		}
		written += int64(len(b))
		if opts != nil && opts.Progress != nil {
			opts.Progress(written)
		}
		return nil
	}, &crc)
	if err != nil {
		return nil, err
	}
	if crc != v.rec.ContentCrc32C {
		return nil, fmt.Errorf("%w: %s/%s: content checksum %08x, the record says %08x", ErrUnrecoverable, bucket, key, crc, v.rec.ContentCrc32C)
	}
	return v.info, nil
}

// Open returns a Reader of the clip's current generation. The Reader's
// reads use ctx; cancelling it makes them fail.
func (c *Client) Open(ctx context.Context, bucket, key string) (*Reader, error) {
	v, err := c.view(ctx, bucket, key)
	if err != nil {
		return nil, err
	}
	return &Reader{v: v, ctx: ctx}, nil
}

// Reader reads one generation of a clip: io.ReadSeekCloser and
// io.ReaderAt. It fetches only the blocks, and within them only the data
// pieces, that a read needs (plus parity when a piece is lost). ReadAt is
// safe for concurrent use; Read and Seek, which share the offset, are not.
// Sequential Reads reuse one stream per shard and decode whole blocks,
// keeping the last one to serve small reads. A read of a clip overwritten
// or deleted meanwhile fails with ErrClipChanged.
type Reader struct {
	v   *clipView
	ctx context.Context

	pos int64
	seq *rangeRead // streams of sequential Reads

	mu struct {
		sync.Mutex
		block  int64 // the cached block, -1 if none
		data   []byte
		closed bool
	}
}

// Info returns the record of the generation the Reader reads.
func (r *Reader) Info() *ClipInfo { return r.v.info }

// Size returns the clip's size.
func (r *Reader) Size() int64 { return r.v.layout.Size() }

var (
	errClosed       = errors.New("clipstore: reader closed")
	errNegativeSeek = fmt.Errorf("%w: seek to a negative position", ErrInvalidArgument)
)

// ReadAt reads len(p) bytes at off, like os.File.ReadAt: fewer bytes only
// with an error, io.EOF at the end of the clip.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrInvalidArgument, off)
	}
	if r.isClosed() {
		return 0, errClosed
	}
	size := r.Size()
	if off >= size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), size-off))
	if !r.fromCache(p[:n], off) {
		if err := r.v.readRange(r.ctx, off, int64(n), p[:n], nil, nil); err != nil {
			return 0, err
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Read reads from the current offset. It returns at most the rest of the
// block the offset is in, and io.EOF at the end of the clip.
func (r *Reader) Read(p []byte) (int, error) {
	if r.isClosed() {
		return 0, errClosed
	}
	if r.pos >= r.Size() {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	bs := int64(r.v.layout.Code().BlockSize())
	b := r.pos / bs
	n := int(min(int64(len(p)), (b+1)*bs-r.pos, r.Size()-r.pos))
	if !r.fromCache(p[:n], r.pos) {
		if err := r.loadBlock(b); err != nil {
			return 0, err
		}
		if !r.fromCache(p[:n], r.pos) {
			return 0, fmt.Errorf("clipstore: block %d not cached after loading it", b)
		}
	}
	r.pos += int64(n)
	return n, nil
}

// loadBlock decodes block b with the sequential streams and caches it.
func (r *Reader) loadBlock(b int64) (err error) {
	defer func() { r.v.flushReports(r.ctx, err) }()
	if r.seq == nil {
		r.seq = r.v.newRangeRead(r.ctx, r.v.layout.Blocks())
	}
	r.mu.Lock()
	buf := r.mu.data
	r.mu.data, r.mu.block = nil, -1
	r.mu.Unlock()
	if buf == nil {
		buf = make([]byte, 0, r.v.layout.Code().BlockSize())
	}
	out, err := r.seq.decode(buf[:0], r.v.layout.Extent(b))
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.mu.data, r.mu.block = out, b
	r.mu.Unlock()
	return nil
}

// fromCache copies the clip bytes at off into p if the cached block holds
// all of them.
func (r *Reader) fromCache(p []byte, off int64) bool {
	bs := int64(r.v.layout.Code().BlockSize())
	b := off / bs
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.data == nil || r.mu.block != b || off+int64(len(p)) > b*bs+int64(len(r.mu.data)) {
		return false
	}
	copy(p, r.mu.data[off-b*bs:])
	return true
}

// Seek sets the offset for the next Read, like os.File.Seek. Seeking past
// the end is allowed; Read then returns io.EOF.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	var pos int64
	switch whence {
	case io.SeekStart:
		pos = offset
	case io.SeekCurrent:
		pos = r.pos + offset
	case io.SeekEnd:
		pos = r.Size() + offset
	default:
		return 0, fmt.Errorf("%w: seek whence %d", ErrInvalidArgument, whence)
	}
	if pos < 0 {
		return 0, errNegativeSeek
	}
	r.pos = pos
	return pos, nil
}

// Close stops the Reader's streams. Reads after Close fail.
func (r *Reader) Close() error {
	r.mu.Lock()
	r.mu.closed = true
	r.mu.data = nil
	r.mu.Unlock()
	if r.seq != nil {
		r.seq.close()
		r.seq = nil
	}
	return nil
}

func (r *Reader) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.closed
}
