package client

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	metapb "github.com/clipstore/clipstore/proto/metapb"
	storagepb "github.com/clipstore/clipstore/proto/storagepb"
	"golang.org/x/sync/errgroup"
)

// FsckOptions shape a consistency check.
type FsckOptions struct {
	// Deep re-reads every piece of every shard (verifying each CRC) instead
	// of checking headers, lengths and trailer checksums only.
	Deep bool
	// Concurrency bounds the storage node calls in flight (default 16).
	Concurrency int
	// Repair reports every shard fsck finds missing from its node, corrupt
	// or mismatched to meta at once, which marks it and has it rebuilt
	// (without it, such a shard waits for its node's next inventory or
	// scrub pass). Shards meta already records missing or corrupt are in
	// its repair queue already.
	Repair bool
}

// Problem kinds an fsck reports.
const (
	ProblemMissing     = "missing"     // recorded missing, or not on its node
	ProblemCorrupt     = "corrupt"     // recorded corrupt, or fails verification
	ProblemMismatch    = "mismatch"    // length or checksum differs from the record
	ProblemUnreachable = "unreachable" // its node did not answer
	ProblemOrphan      = "orphan"      // on a node, referenced by no record, past its commit deadline
)

// FsckProblem is one finding.
type FsckProblem struct {
	Kind        string `json:"kind"`
	Bucket      string `json:"bucket,omitempty"`
	Key         string `json:"key,omitempty"`
	ClipID      string `json:"clip_id,omitempty"`
	Index       int    `json:"index"`
	Node        string `json:"node,omitempty"`
	ShardID     string `json:"shard_id,omitempty"`
	Detail      string `json:"detail,omitempty"`
	Recoverable bool   `json:"recoverable"` // the clip still has k healthy shards
	// Queued: this run reported the shard to meta for repair (Repair).
	Queued bool `json:"queued,omitempty"`

	part       int    // of the clip's record
	generation uint64 // the record's
	found      bool   // found by this run, not recorded by meta
}

// FsckReport is the outcome of a check.
type FsckReport struct {
	Buckets int `json:"buckets"`
	Clips   int `json:"clips"`
	// Pinned counts the generations only datasets keep (overwritten or
	// deleted since), checked like the current ones.
	Pinned   int           `json:"pinned"`
	Shards   int           `json:"shards"`
	Nodes    int           `json:"nodes"`
	Problems []FsckProblem `json:"problems"`
	// Queued counts the shards reported to meta for repair (Repair).
	Queued int `json:"queued"`
}

// Fsck checks every clip record against the storage nodes: each shard
// present on its node with the recorded length and checksum (every piece
// verified with Deep), and no shard on any node that no record references
// once its commit deadline has passed. It reports problems, and changes
// nothing unless opts.Repair asks it to queue what it found for repair.
func (c *Client) Fsck(ctx context.Context, opts *FsckOptions) (*FsckReport, error) {
	if opts == nil {
		opts = &FsckOptions{}
	}
	f := &fsck{c: c, opts: *opts, report: &FsckReport{}, referenced: map[string]bool{}, checked: map[string]bool{}}
	if f.opts.Concurrency <= 0 {
		f.opts.Concurrency = 16
	}
	// On a cluster with capabilities, storage nodes list and read their
	// shards for a cluster admin's inventory token.
	inv, err := callMeta(ctx, c, "inventory capability", func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.InventoryCapabilityResponse, error) {
		return mc.InventoryCapability(ctx, &metapb.InventoryCapabilityRequest{})
	})
	if err != nil {
		return nil, err
	}
	ctx = withCapability(ctx, inv.Capability)
	if err := f.checkRecords(ctx); err != nil {
		return nil, err
	}
	if err := f.findOrphans(ctx); err != nil {
		return nil, err
	}
	sort.SliceStable(f.report.Problems, func(i, j int) bool {
		a, b := f.report.Problems[i], f.report.Problems[j]
		if a.Bucket+"/"+a.Key != b.Bucket+"/"+b.Key {
			return a.Bucket+"/"+a.Key < b.Bucket+"/"+b.Key
		}
		return a.Index < b.Index
	})
	return f.report, nil
}

type fsck struct {
	c          *Client
	opts       FsckOptions
	mu         sync.Mutex
	report     *FsckReport
	referenced map[string]bool // node NUL shard id of every recorded shard
	checked    map[string]bool // clip ids of the records checked
}

func (f *fsck) problem(p FsckProblem) {
	f.mu.Lock()
	f.report.Problems = append(f.report.Problems, p)
	f.mu.Unlock()
}

func (f *fsck) checkRecords(ctx context.Context) error {
	buckets, err := f.c.ListBuckets(ctx)
	if err != nil {
		return err
	}
	f.report.Buckets = len(buckets)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(f.opts.Concurrency)
	for _, b := range buckets {
		for e, err := range f.c.List(ctx, b.Name, "") {
			if err != nil {
				return err
			}
			f.report.Clips++
			g.Go(func() error { return f.checkClip(gctx, b.Name, e.Key, 0) })
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return f.checkPinned(ctx)
}

// checkPinned checks the generations datasets keep that are no longer
// current: by clip id, each once, however many datasets hold it.
func (f *fsck) checkPinned(ctx context.Context) error {
	datasets, err := f.c.ListDatasets(ctx)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(f.opts.Concurrency)
	for _, ds := range datasets {
		for m, err := range f.c.DatasetMembers(ctx, ds.Name) {
			if err != nil {
				return err
			}
			f.mu.Lock()
			seen := f.checked[m.ClipID]
			f.checked[m.ClipID] = true
			if !seen {
				f.report.Pinned++
			}
			f.mu.Unlock()
			if !seen {
				g.Go(func() error { return f.checkClip(gctx, ds.Bucket, m.Key, m.Generation) })
			}
		}
	}
	return g.Wait()
}

// checkClip checks the shards of one record (generation gen of the key,
// 0 for the current one), every part of it (read a page at a time).
func (f *fsck) checkClip(ctx context.Context, bucket, key string, gen uint64) error {
	resp, err := f.c.allPartsAt(ctx, bucket, key, gen)
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrClipChanged) {
		return nil // deleted since the listing, or overwritten as fast as it was read
	}
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.checked[hex.EncodeToString(resp.Clip.ClipId)] = true
	f.mu.Unlock()
	addrs := map[string]string{}
	for _, n := range resp.Nodes {
		addrs[n.NodeId] = n.Address
	}
	rec := resp.Clip
	for pi, part := range rec.Parts {
		var found []FsckProblem
		for _, s := range part.Shards {
			f.mu.Lock()
			f.report.Shards++
			if s.NodeId != "" {
				f.referenced[s.NodeId+"\x00"+string(s.ShardId)] = true
			}
			f.mu.Unlock()
			if p := f.checkShard(ctx, s, addrs[s.NodeId]); p != nil {
				p.Bucket, p.Key, p.ClipID = bucket, key, hex.EncodeToString(rec.ClipId)
				p.part, p.generation = pi, rec.Generation
				found = append(found, *p)
			}
		}
		recoverable := len(part.Shards)-len(found) >= int(part.Profile.GetDataShards())
		for _, p := range found {
			p.Recoverable = recoverable
			if f.opts.Repair && p.found {
				p.Queued = f.queueRepair(ctx, rec.ClipId, &p)
			}
			f.problem(p)
		}
	}
	return nil
}

// queueRepair reports a shard fsck found missing, corrupt or mismatched to
// meta, which marks it so that it is rebuilt now. It reports whether meta
// took the report; a failure is noted in the problem's detail.
func (f *fsck) queueRepair(ctx context.Context, clipID []byte, p *FsckProblem) bool {
	state := metapb.ShardState_SHARD_STATE_CORRUPT
	if p.Kind == ProblemMissing {
		state = metapb.ShardState_SHARD_STATE_MISSING
	}
	id, _ := hex.DecodeString(p.ShardID)
	req := &metapb.ReportShardRequest{RequestId: newRequestID(), ClipId: clipID, Generation: p.generation,
		Part: uint32(p.part), Index: uint32(p.Index), ShardId: id, State: state, Reporter: "fsck", Detail: p.Detail}
	resp, err := callMeta(ctx, f.c, "report shard", func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.ReportShardResponse, error) {
		return mc.ReportShard(ctx, req)
	})
	if err != nil {
		p.Detail += fmt.Sprintf(" (not queued for repair: %v)", err)
		return false
	}
	if !resp.Applied {
		p.Detail += " (not queued: the record changed meanwhile)"
		return false
	}
	f.mu.Lock()
	f.report.Queued++
	f.mu.Unlock()
	return true
}

// checkShard returns the problem with one shard entry, or nil.
func (f *fsck) checkShard(ctx context.Context, s *metapb.Shard, addr string) *FsckProblem {
	p := &FsckProblem{Index: int(s.Index), Node: s.NodeId, ShardID: hex.EncodeToString(s.ShardId)}
	switch s.State {
	case metapb.ShardState_SHARD_STATE_MISSING:
		p.Kind, p.Detail = ProblemMissing, "recorded missing"
		return p
	case metapb.ShardState_SHARD_STATE_CORRUPT:
		p.Kind, p.Detail = ProblemCorrupt, "recorded corrupt"
		return p
	}
	sc, err := f.c.storage(addr)
	if err != nil {
		p.Kind, p.Detail = ProblemUnreachable, err.Error()
		return p
	}
	ctx, cancel := context.WithTimeout(ctx, f.c.cfg.RequestTimeout)
	defer cancel()
	st, err := sc.StatShard(ctx, &storagepb.StatShardRequest{ShardId: s.ShardId})
	if err == nil && f.opts.Deep {
		err = readAllPieces(ctx, sc, s.ShardId)
	}
	switch {
	case errors.Is(fromStatus("stat", err), ErrNotFound):
		p.Kind, p.Detail, p.found = ProblemMissing, "not on its node", true
	case errors.Is(fromStatus("stat", err), ErrCorrupt):
		p.Kind, p.Detail, p.found = ProblemCorrupt, fromStatus("verify", err).Error(), true
	case err != nil:
		p.Kind, p.Detail = ProblemUnreachable, fromStatus("stat", err).Error()
	case st.Shard.Length != s.Length || st.Shard.Checksum != s.Checksum:
		p.Kind, p.found = ProblemMismatch, true
		p.Detail = fmt.Sprintf("node has %d bytes, checksum %08x; the record says %d, %08x",
			st.Shard.Length, st.Shard.Checksum, s.Length, s.Checksum)
	default:
		return nil
	}
	return p
}

// readAllPieces reads a whole shard, failing on the first corrupt piece.
func readAllPieces(ctx context.Context, sc storagepb.StorageServiceClient, id []byte) error {
	stream, err := sc.ReadShard(ctx, &storagepb.ReadShardRequest{ShardId: id})
	if err != nil {
		return err
	}
	for {
		if _, err := stream.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// findOrphans lists, on every live node, the shards no record references
// whose commit deadline has passed (a shard of an upload still in progress
// is not an orphan).
func (f *fsck) findOrphans(ctx context.Context) error {
	resp, err := callMeta(ctx, f.c, "list nodes", func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.ListNodesResponse, error) {
		return mc.ListNodes(ctx, &metapb.ListNodesRequest{})
	})
	if err != nil {
		return err
	}
	for _, node := range resp.Nodes {
		if node.State != metapb.NodeState_NODE_STATE_UP {
			continue
		}
		f.report.Nodes++
		if err := f.nodeOrphans(ctx, node); err != nil {
			f.problem(FsckProblem{Kind: ProblemUnreachable, Node: node.NodeId, Index: -1, Detail: err.Error()})
		}
	}
	return nil
}

func (f *fsck) nodeOrphans(ctx context.Context, node *metapb.StorageNode) error {
	sc, err := f.c.storage(node.Address)
	if err != nil {
		return err
	}
	var after []byte
	for {
		page, err := sc.ListShards(ctx, &storagepb.ListShardsRequest{StartAfter: after, PageSize: 1000})
		if err != nil {
			return fromStatus("list shards on "+node.NodeId, err)
		}
		var orphans []*storagepb.StatShardResponse
		for _, e := range page.Shards {
			if f.referenced[node.NodeId+"\x00"+string(e.ShardId)] {
				continue
			}
			st, err := sc.StatShard(ctx, &storagepb.StatShardRequest{ShardId: e.ShardId})
			if err != nil || time.Unix(0, st.Shard.Header.CommitDeadlineUnixNano).After(time.Now()) {
				continue // gone meanwhile, or a put still in progress
			}
			orphans = append(orphans, st)
		}
		if orphans, err = f.notInUploads(ctx, node.NodeId, orphans); err != nil {
			return err
		}
		for _, st := range orphans {
			f.problem(FsckProblem{Kind: ProblemOrphan, Node: node.NodeId, Index: int(st.Shard.Header.Index),
				ShardID: hex.EncodeToString(st.Shard.Header.ShardId), ClipID: hex.EncodeToString(st.Shard.Header.ClipId),
				Detail: "referenced by no record", Recoverable: true})
		}
		if len(page.NextStartAfter) == 0 {
			return nil
		}
		after = page.NextStartAfter
	}
}

// notInUploads keeps the shards meta's node -> shards index does not hold
// for node: those a record names are not candidates already, so what it
// drops are the parts of multipart uploads in progress, which no record
// names yet.
func (f *fsck) notInUploads(ctx context.Context, node string, cands []*storagepb.StatShardResponse) ([]*storagepb.StatShardResponse, error) {
	if len(cands) == 0 {
		return nil, nil
	}
	req := &metapb.CheckShardsRequest{NodeId: node}
	for _, st := range cands {
		req.Shards = append(req.Shards, &metapb.ShardRef{ShardId: st.Shard.Header.ShardId}) // no deadline: the index alone decides
	}
	resp, err := callMeta(ctx, f.c, "check shards of "+node, func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.CheckShardsResponse, error) {
		return mc.CheckShards(ctx, req)
	})
	if err != nil {
		return nil, err
	}
	free := map[string]bool{}
	for _, id := range resp.Collectable {
		free[string(id)] = true
	}
	var out []*storagepb.StatShardResponse
	for _, st := range cands {
		if free[string(st.Shard.Header.ShardId)] {
			out = append(out, st)
		}
	}
	return out, nil
}
