package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/clipstore/clipstore/erasure"
	metapb "github.com/clipstore/clipstore/proto/metapb"
	"google.golang.org/grpc/codes"
)

// Shard states a read reports to meta.
const (
	shardMissing = metapb.ShardState_SHARD_STATE_MISSING
	shardCorrupt = metapb.ShardState_SHARD_STATE_CORRUPT
)

// clipView is one generation of a clip, pinned by a read. The clip is its
// record's parts in order, each erasure-coded on its own (partView); a
// byte range of the clip maps to ranges within the parts it overlaps
// (partRanges). A clip written by Put has one part; one written by a
// multipart upload up to 10,000, which the view asks meta for a page at a
// time as reads reach them (pages.go), each page checked to be of the
// pinned generation.
type clipView struct {
	c     *Client
	rec   *metapb.ClipRecord // the record's own fields; Parts: the first answer's
	info  *ClipInfo
	count int // the record's parts
	// token is the latest capability meta gave with the record: storage
	// nodes read its shards only with it (nil: none needed).
	token atomic.Pointer[[]byte]

	mu struct {
		sync.Mutex
		parts     map[int]*partView // the parts a Reader read, by index in the record
		pages     []partPage        // parts of the record at hand, the latest last
		readahead int               // parts the next page of sequential reads asks for
		addrs     map[string]string // storage node id -> address
		pending   []*metapb.ReportShardRequest
	}
}

// partView is one part of a pinned clip: its geometry and what the reads
// have learned about its shards.
type partView struct {
	v      *clipView
	index  int    // in the record's parts; ReportShardRequest.part
	off    int64  // of the part's first byte within the clip
	crc    uint32 // the CRC32C of its bytes the record holds
	layout erasure.Layout
	k      int
	order  []int // shard indices in the order reads try them

	mu struct {
		sync.Mutex
		// shards are as the record was read, but for shards found moved
		// since (a drain or a rebalance): those are as the record was
		// re-read.
		shards   []*metapb.Shard
		failed   []bool // the shard's node failed, or the shard is gone
		reported []bool
	}
}

// viewAt reads a clip's record (linearizably) of generation gen (0: the
// current one) with the parts sel chooses and pins that generation. Other
// parts are asked for when a read reaches them.
func (c *Client) viewAt(ctx context.Context, bucket, key string, gen uint64, sel *metapb.PartSelector) (*clipView, error) {
	resp, err := c.getClipAt(ctx, bucket, key, gen, sel)
	if err != nil {
		return nil, err
	}
	return c.viewOf(resp)
}

// viewOf pins the clip record resp holds, with the page of parts it
// carries (every part, when it answered no selector).
func (c *Client) viewOf(resp *metapb.GetClipResponse) (*clipView, error) {
	paged(resp, nil)
	rec := resp.Clip
	v := &clipView{c: c, rec: rec, count: int(resp.PartCount),
		info: clipInfoFromProto(rec, int(resp.FirstPart), int(resp.PartCount))}
	page := partPage{first: int(resp.FirstPart), parts: rec.Parts}
	if err := checkParts(rec, page, v.count); err != nil {
		return nil, err
	}
	v.setToken(resp.Capability)
	v.mu.addrs = make(map[string]string, len(resp.Nodes))
	v.mu.readahead = firstReadahead
	v.learnAddrs(resp.Nodes)
	v.mu.pages = []partPage{page}
	if len(page.parts) > 0 { // a record a read cannot use fails now
		if _, err := v.part(page.first, page.parts[0]); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// checkParts checks that a page of a record's parts (count of them in
// all) tiles its share of the clip: in order, each starting where the one
// before ends, the first part at 0, the last ending at the clip's size.
func checkParts(rec *metapb.ClipRecord, page partPage, count int) error {
	if count == 0 {
		return fmt.Errorf("%w: %s/%s: the record has no parts", ErrUnrecoverable, rec.Bucket, rec.Key)
	}
	if page.first < 0 || page.first+len(page.parts) > count {
		return fmt.Errorf("%w: %s/%s: meta answered parts %d to %d of %d", ErrUnrecoverable, rec.Bucket, rec.Key,
			page.first, page.first+len(page.parts)-1, count)
	}
	if len(page.parts) == 0 {
		return nil
	}
	end := page.parts[0].Offset
	if page.first == 0 && end != 0 {
		return fmt.Errorf("%w: %s/%s: part 0 has offset %d", ErrUnrecoverable, rec.Bucket, rec.Key, end)
	}
	for i, p := range page.parts {
		if p.Offset != end || p.Length > math.MaxInt64-end {
			return fmt.Errorf("%w: %s/%s: part %d has offset %d and length %d, the parts before it end at %d",
				ErrUnrecoverable, rec.Bucket, rec.Key, page.first+i, p.Offset, p.Length, end)
		}
		end += p.Length
	}
	switch {
	case end > rec.Size:
		return fmt.Errorf("%w: %s/%s: the parts hold %d bytes at least, the record says %d", ErrUnrecoverable, rec.Bucket, rec.Key, end, rec.Size)
	case end != rec.Size && page.first+len(page.parts) == count:
		return fmt.Errorf("%w: %s/%s: the parts hold %d bytes, the record says %d", ErrUnrecoverable, rec.Bucket, rec.Key, end, rec.Size)
	}
	return nil
}

// newPart makes the view of part pi.
func (v *clipView) newPart(pi int, part *metapb.Part) (*partView, error) {
	p := &partView{v: v, index: pi, off: int64(part.Offset), crc: part.ContentCrc32C}
	if v.count == 1 {
		p.crc = v.rec.ContentCrc32C
	}
	prof := profileFromProto(part.Profile)
	code, err := v.c.code(prof)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.name(), err)
	}
	if p.layout, err = code.Layout(int64(part.Length)); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidArgument, p.name(), err)
	}
	if len(part.Shards) != code.Shards() {
		return nil, fmt.Errorf("%w: %s: record lists %d shards for profile %v", ErrUnrecoverable, p.name(), len(part.Shards), prof)
	}
	p.k, p.order = code.DataShards(), readOrder(part.Shards)
	p.mu.shards = slices.Clone(part.Shards)
	p.mu.failed = make([]bool, len(part.Shards))
	p.mu.reported = make([]bool, len(part.Shards))
	return p, nil
}

// part returns the view of part pi (part is its entry), made on first use
// and kept: a Reader's later reads know what earlier ones learned of the
// part's shards.
func (v *clipView) part(pi int, part *metapb.Part) (*partView, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if p := v.mu.parts[pi]; p != nil {
		return p, nil
	}
	p, err := v.newPart(pi, part)
	if err != nil {
		return nil, err
	}
	if v.mu.parts == nil {
		v.mu.parts = map[int]*partView{}
	}
	v.mu.parts[pi] = p
	return p, nil
}

// partAt returns the index of the part holding clip byte off (parts[0]
// starts at or before off, and the last one ends after it): the first
// part ending after off, which skips empty parts.
func partAt(parts []*metapb.Part, off int64) int {
	if len(parts) == 1 {
		return 0
	}
	return sort.Search(len(parts), func(i int) bool { return int64(parts[i].Offset+parts[i].Length) > off })
}

// partRange is the share of a clip byte range that one part holds.
type partRange struct {
	part   int   // index in parts
	off, n int64 // within the part
}

// partRanges maps the clip bytes [off, off+n) to the parts holding them,
// in order, skipping empty parts, as far as parts reach. The parts must
// tile their share of the clip (checkParts), the first one holding off.
func partRanges(parts []*metapb.Part, off, n int64) iter.Seq[partRange] {
	return func(yield func(partRange) bool) {
		for pi := partAt(parts, off); n > 0 && pi < len(parts); pi++ {
			start, end := int64(parts[pi].Offset), int64(parts[pi].Offset+parts[pi].Length)
			if end <= off {
				continue // an empty part
			}
			m := min(n, end-off)
			if !yield(partRange{part: pi, off: off - start, n: m}) {
				return
			}
			off, n = off+m, n-m
		}
	}
}

// name names the part in errors and logs: the clip, and the part's index
// if the clip has several.
func (p *partView) name() string {
	if p.v.count == 1 {
		return p.v.rec.Bucket + "/" + p.v.rec.Key
	}
	return fmt.Sprintf("%s/%s part %d", p.v.rec.Bucket, p.v.rec.Key, p.index)
}

// shardCount is the number of shards of the part.
func (p *partView) shardCount() int { return p.layout.Code().Shards() }

// shard returns shard i's entry and its node's address.
func (p *partView) shard(i int) (*metapb.Shard, string) {
	p.mu.Lock()
	s := p.mu.shards[i]
	p.mu.Unlock()
	return s, p.v.addr(s.NodeId)
}

func (v *clipView) addr(node string) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.mu.addrs[node]
}

func (v *clipView) learnAddrs(nodes []*metapb.NodeAddress) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, n := range nodes {
		v.mu.addrs[n.NodeId] = n.Address
	}
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
func (p *partView) usable(i int) bool {
	if !slices.Contains(p.order, i) {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.mu.failed[i]
}

// shardFailed handles shard id, at index i, whose stream failed with err,
// and returns an error only if the whole read must stop. A shard the node
// does not have means the clip changed (overwritten or deleted:
// ErrClipChanged, nothing reported), or that the shard moved (a drain or a
// rebalance: the re-read record names its new place, and moved says to
// read it there), or else that it is lost: it is reported missing. A
// damaged shard is reported corrupt; a node that fails or is slow is just
// not read again.
func (p *partView) shardFailed(ctx context.Context, i int, id []byte, err error) (moved bool, _ error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	p.markFailed(i)
	switch {
	case errors.Is(err, ErrNotFound):
		resp, cerr := p.v.checkUnchanged(ctx, p.index)
		if cerr != nil {
			return false, cerr
		}
		if p.moved(i, id, resp) {
			return true, nil
		}
		p.report(i, id, shardMissing, err.Error())
	case errors.Is(err, ErrCorrupt), codeOf(err) == codes.OutOfRange: // a shard shorter than its record
		p.report(i, id, shardCorrupt, err.Error())
	default:
		sh, _ := p.shard(i)
		p.v.c.log.Info("shard unreadable; reading others", "clip", p.v.info.Key, "part", p.index, "index", i,
			"node", sh.NodeId, "err", err)
	}
	return false, nil
}

// checkUnchanged re-reads part pi of the record, and returns
// ErrClipChanged if the key no longer maps to the pinned generation.
func (v *clipView) checkUnchanged(ctx context.Context, pi int) (*metapb.GetClipResponse, error) {
	return v.fetch(ctx, &metapb.PartSelector{Position: uint32(pi) + 1})
}

// moved takes shard i's new place from a re-read of the part (of the same
// generation), if shard id moved from index i to a healthy shard (a
// drain's or a rebalance's move, or a repair), and reports whether it did.
// The bytes are the same: a move copies them, a repair rebuilds them, both
// verified. Concurrent reads that meet the same move all follow it.
func (p *partView) moved(i int, id []byte, resp *metapb.GetClipResponse) bool {
	parts := resp.GetClip().GetParts()
	if len(parts) != 1 || int(resp.FirstPart) != p.index || i >= len(parts[0].Shards) {
		return false
	}
	now := parts[0].Shards[i]
	if bytes.Equal(now.ShardId, id) || now.NodeId == "" || now.State != metapb.ShardState_SHARD_STATE_OK {
		return false
	}
	// Addresses first: a concurrent read that finds the new entry then
	// finds its node's address too.
	p.v.learnAddrs(resp.Nodes)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !bytes.Equal(now.ShardId, p.mu.shards[i].ShardId) {
		p.mu.shards[i] = now
		p.mu.reported[i] = false
		p.v.c.log.Debug("shard moved; reading it at its new place", "clip", p.v.info.Key, "part", p.index, "index", i, "node", now.NodeId)
	}
	p.mu.failed[i] = false
	return true
}

func (p *partView) markFailed(i int) {
	p.mu.Lock()
	p.mu.failed[i] = true
	p.mu.Unlock()
}

// report queues a report of shard id, at index i, to meta, once per
// index; flushReports sends them.
func (p *partView) report(i int, id []byte, state metapb.ShardState, detail string) {
	p.mu.Lock()
	if p.mu.reported[i] {
		p.mu.Unlock()
		return
	}
	p.mu.reported[i] = true
	p.mu.Unlock()
	rec := p.v.rec
	req := &metapb.ReportShardRequest{RequestId: newRequestID(), ClipId: rec.ClipId, Generation: rec.Generation,
		Part: uint32(p.index), Index: uint32(i), ShardId: id, State: state, Reporter: p.v.c.cfg.Reporter, Detail: detail}
	p.v.mu.Lock()
	p.v.mu.pending = append(p.v.mu.pending, req)
	p.v.mu.Unlock()
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
		v.c.log.Warn("reporting shard", "bucket", v.rec.Bucket, "key", v.rec.Key, "part", req.Part, "index", req.Index,
			"state", req.State, "detail", req.Detail)
		_, err := callMeta(ctx, v.c, "report shard", func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.ReportShardResponse, error) {
			return mc.ReportShard(ctx, req)
		})
		if err != nil {
			v.c.log.Warn("shard report failed", "part", req.Part, "index", req.Index, "err", err)
		}
	}
}

// readAt decodes the clip bytes [off, off+len(dst)) into dst, part by
// part, each with its own streams, closed before the next part's open.
func (v *clipView) readAt(ctx context.Context, dst []byte, off int64) error {
	for len(dst) > 0 {
		page, err := v.pageHolding(ctx, off, int64(len(dst)))
		if err != nil {
			return err
		}
		for r := range partRanges(page.parts, off, int64(len(dst))) {
			p, err := v.part(page.first+r.part, page.parts[r.part])
			if err != nil {
				return err
			}
			if err := p.readRange(ctx, r.off, r.n, dst[:r.n], nil, nil); err != nil {
				return err
			}
			dst, off = dst[r.n:], off+r.n
		}
	}
	return nil
}

// readRange decodes the part's bytes [off, off+n). With dst (len >= n) it
// decodes into dst; otherwise it hands the bytes to emit piece by piece
// (verified, straight from the fetched units: no copy), each valid until
// emit returns, and, if crc is not nil, extends *crc with them (from the
// verified piece CRCs, without a pass over whole pieces).
func (p *partView) readRange(ctx context.Context, off, n int64, dst []byte, emit func([]byte) error, crc *uint32) (err error) {
	defer func() { p.v.flushReports(ctx, err) }()
	ext, err := p.layout.Extents(off, n)
	if err != nil || len(ext) == 0 {
		return err
	}
	rr := p.newRangeRead(ctx, ext[len(ext)-1].Block+1)
	defer rr.close()
	pos := 0
	for _, e := range ext {
		if dst == nil {
			pieces, err := rr.pieces(e)
			if err != nil {
				return err
			}
			for _, piece := range pieces {
				if err := emit(piece); err != nil {
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

// checkContent compares the CRC32C of all of the part's bytes with the
// record's: the whole clip's if the clip has one part, the part's if it
// has several (such a record has no checksum of the whole clip).
func (p *partView) checkContent(crc uint32) error {
	if crc != p.crc {
		return fmt.Errorf("%w: %s: content checksum %08x, the record says %08x", ErrUnrecoverable, p.name(), crc, p.crc)
	}
	return nil
}

// GetOptions are the optional parts of a Get.
type GetOptions struct {
	// Progress, if set, is called with the bytes written to w so far.
	Progress func(read int64)
	// Generation, if set, reads that generation of the key rather than
	// the current one: one a dataset keeps (ErrNotFound otherwise).
	Generation uint64
}

// Get writes the whole clip to w and returns its record. The bytes of
// every piece are verified before they are written (a lost or corrupt
// piece is rebuilt from parity and verified too); at the end of the clip
// the whole-clip CRC32C is checked as well (of a clip written by a
// multipart upload, each part's CRC32C at the end of the part), and a
// mismatch is an error wrapping ErrUnrecoverable. The parts of a multipart
// clip are read one after the other, and asked of meta a page at a time,
// so memory stays bounded whatever their number (but for the PartInfo of
// each in the ClipInfo returned). If the clip is overwritten or deleted
// during the read, Get fails with ErrClipChanged; the bytes written before
// then all belong to the generation it started with.
func (c *Client) Get(ctx context.Context, bucket, key string, w io.Writer, opts *GetOptions) (*ClipInfo, error) {
	var gen uint64
	if opts != nil {
		gen = opts.Generation
	}
	v, err := c.viewAt(ctx, bucket, key, gen, &metapb.PartSelector{})
	if err != nil {
		return nil, err
	}
	if err := v.get(ctx, w, opts); err != nil {
		return nil, err
	}
	return v.info, nil
}

// get writes the whole clip to w, part after part, asking meta for the
// pages of parts after the view's first as it goes. Each part is read
// once: its view is not kept. It leaves every part in v.info.Parts.
func (v *clipView) get(ctx context.Context, w io.Writer, opts *GetOptions) error {
	var written int64
	emit := func(b []byte) error {
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
	}
	v.mu.Lock()
	page := v.mu.pages[0]
	v.mu.Unlock()
	infos := make([]PartInfo, 0, v.count)
	for next := 0; next < v.count; next += len(page.parts) {
		if page.first != next || len(page.parts) == 0 {
			var err error
			if page, err = v.fetchPage(ctx, &metapb.PartSelector{FirstPart: uint32(next)}); err != nil {
				return err
			}
			if page.first != next || len(page.parts) == 0 {
				return fmt.Errorf("%w: %s/%s: asked meta for the parts from %d, it answered %d from %d",
					ErrUnrecoverable, v.rec.Bucket, v.rec.Key, next, len(page.parts), page.first)
			}
		}
		for i, part := range page.parts {
			p, err := v.newPart(page.first+i, part)
			if err != nil {
				return err
			}
			var crc uint32
			if err := p.readRange(ctx, 0, p.layout.Size(), nil, emit, &crc); err != nil {
				return err
			}
			if err := p.checkContent(crc); err != nil {
				return err
			}
			infos = append(infos, partInfoFromProto(part, 0))
		}
	}
	v.info.Parts = infos
	return nil
}

// Open returns a Reader of the clip's current generation. The Reader's
// reads use ctx; cancelling it makes them fail. Meta answers the record
// with its first part: the Reader asks for the others as reads reach them.
func (c *Client) Open(ctx context.Context, bucket, key string) (*Reader, error) {
	return c.OpenAt(ctx, bucket, key, 0)
}

// OpenAt is Open of a generation of the key (0: the current one): one a
// dataset keeps, for example.
func (c *Client) OpenAt(ctx context.Context, bucket, key string, generation uint64) (*Reader, error) {
	v, err := c.viewAt(ctx, bucket, key, generation, &metapb.PartSelector{MaxParts: 1})
	if err != nil {
		return nil, err
	}
	return &Reader{v: v, ctx: ctx}, nil
}

// OpenPart is Open asking meta for the record with its n-th part only (n
// counts from 1 in the clip's order: S3's partNumber, not the part's
// number in its upload), so that Info describes that part: Info().Parts
// holds it alone, or nothing if the clip has fewer than n parts
// (Info().PartCount says how many it has; a clip written by Put has one,
// numbered 0). The Reader reads the whole clip all the same.
func (c *Client) OpenPart(ctx context.Context, bucket, key string, n int) (*Reader, error) {
	return c.OpenPartAt(ctx, bucket, key, 0, n)
}

// OpenPartAt is OpenPart of a generation of the key (0: the current one).
func (c *Client) OpenPartAt(ctx context.Context, bucket, key string, generation uint64, n int) (*Reader, error) {
	if n < 1 || n > maxParts {
		return nil, fmt.Errorf("%w: part %d outside 1..%d", ErrInvalidArgument, n, maxParts)
	}
	v, err := c.viewAt(ctx, bucket, key, generation, &metapb.PartSelector{Position: uint32(n)})
	if err != nil {
		return nil, err
	}
	return &Reader{v: v, ctx: ctx}, nil
}

// Reader reads one generation of a clip: io.ReadSeekCloser and
// io.ReaderAt. It fetches only the blocks, and within them only the data
// pieces, that a read needs (plus parity when a piece is lost); of a clip
// written by a multipart upload, only the parts a read overlaps. ReadAt is
// safe for concurrent use; Read and Seek, which share the offset, are not.
// Sequential Reads reuse one stream per shard of the part they are in and
// decode whole blocks, keeping the last one to serve small reads. A read
// of a clip overwritten or deleted meanwhile fails with ErrClipChanged.
type Reader struct {
	v   *clipView
	ctx context.Context

	pos int64
	seq *rangeRead // streams of sequential Reads, in one part

	mu struct {
		sync.Mutex
		start  int64  // the clip offset of the cached block
		data   []byte // the cached block; nil if none
		closed bool
	}
}

// Info returns the record of the generation the Reader reads, with the
// parts of meta's first answer only: the first part (OpenPart's: the part
// asked for). PartCount is the clip's number of parts; Stat lists them
// all.
func (r *Reader) Info() *ClipInfo { return r.v.info }

// Size returns the clip's size.
func (r *Reader) Size() int64 { return int64(r.v.rec.Size) }

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
		if err := r.v.readAt(r.ctx, p[:n], off); err != nil {
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
	n, ok := r.fromBlock(p, r.pos)
	if !ok {
		if err := r.loadBlock(r.pos); err != nil {
			return 0, err
		}
		if n, ok = r.fromBlock(p, r.pos); !ok {
			return 0, fmt.Errorf("clipstore: the block of offset %d not cached after loading it", r.pos)
		}
	}
	r.pos += int64(n)
	return n, nil
}

// WriteTo writes the rest of the clip to w. From the clip's start it
// writes the decoded blocks straight from the pieces (as Get does: no copy
// into a caller's buffer) and checks the whole-clip CRC at the end; from
// elsewhere it reads as Read does.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	if r.isClosed() {
		return 0, errClosed
	}
	if r.pos != 0 {
		return io.CopyBuffer(w, struct{ io.Reader }{r}, make([]byte, 1<<20)) // the Reader alone: not this WriteTo again
	}
	var n int64
	err := r.v.get(r.ctx, w, &GetOptions{Progress: func(written int64) { n = written }})
	r.pos += n
	return n, err
}

// loadBlock decodes the block holding clip byte off with the sequential
// streams of its part and caches it. Reaching another part closes the
// streams of the one before: a Reader holds one part's streams at most.
func (r *Reader) loadBlock(off int64) (err error) {
	defer func() { r.v.flushReports(r.ctx, err) }()
	page, err := r.v.pageHolding(r.ctx, off, 0)
	if err != nil {
		return err
	}
	pi := partAt(page.parts, off)
	p, err := r.v.part(page.first+pi, page.parts[pi])
	if err != nil {
		return err
	}
	if r.seq != nil && r.seq.p != p {
		r.seq.close()
		r.seq = nil
	}
	if r.seq == nil {
		r.seq = p.newRangeRead(r.ctx, p.layout.Blocks())
	}
	r.mu.Lock()
	buf := r.mu.data
	r.mu.data = nil
	r.mu.Unlock()
	bs := int64(p.layout.Code().BlockSize())
	if cap(buf) < int(bs) {
		buf = make([]byte, 0, bs)
	}
	b := (off - p.off) / bs
	out, err := r.seq.decode(buf[:0], p.layout.Extent(b))
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.mu.data, r.mu.start = out, p.off+b*bs
	r.mu.Unlock()
	return nil
}

// fromCache copies the clip bytes at off into p if the cached block holds
// all of them.
func (r *Reader) fromCache(p []byte, off int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.data == nil || off < r.mu.start || off+int64(len(p)) > r.mu.start+int64(len(r.mu.data)) {
		return false
	}
	copy(p, r.mu.data[off-r.mu.start:])
	return true
}

// fromBlock copies the clip bytes from off to the end of the cached block,
// at most len(p) of them, into p, if the cached block holds off.
func (r *Reader) fromBlock(p []byte, off int64) (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.data == nil || off < r.mu.start || off >= r.mu.start+int64(len(r.mu.data)) {
		return 0, false
	}
	return copy(p, r.mu.data[off-r.mu.start:]), true
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
