package server

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/clipstore/clipstore/internal/metacall"
	pb "github.com/clipstore/clipstore/proto/metapb"
)

// heartbeater registers the node with meta and heartbeats it: capacity,
// use, per-disk incarnations, scrub progress and the shards found corrupt
// go up; the node's work (shards to delete and repairs) comes down in the
// responses. Meta never dials a storage node.
type heartbeater struct {
	n *Node

	mu      sync.Mutex
	deleted [][]byte // shards deleted since the last acknowledged heartbeat
	corrupt [][]byte // shards found corrupt, not yet sent in a successful heartbeat
	missing [][]byte // shards meta places here that this node lacks, not yet sent
	failed  [][]byte // repair task ids given up on, not yet sent
	pending map[ShardID]bool

	// soon asks for the next heartbeat now rather than after the interval
	// (a repair finished: meta may have more work for this node).
	soon chan struct{}
}

func newHeartbeater(n *Node) *heartbeater {
	return &heartbeater{n: n, soon: make(chan struct{}, 1), pending: make(map[ShardID]bool)}
}

// run registers, then heartbeats every interval until ctx ends.
func (h *heartbeater) run(ctx context.Context) {
	interval := h.n.cfg.HeartbeatInterval
	for ctx.Err() == nil && !h.register(ctx) {
		sleep(ctx, interval)
	}
	for ctx.Err() == nil {
		if next, err := h.beat(ctx); err != nil {
			h.n.log.Warn("heartbeat to meta failed", "err", err)
		} else if next > 0 {
			interval = next
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-h.soon:
		}
		t.Stop()
	}
}

// maxCorruptPerBeat bounds the corrupt shards one heartbeat reports (meta
// proposes one Raft entry for each); the rest follow in the next ones.
const maxCorruptPerBeat = 256

// reportCorrupt queues shards found corrupt for the next heartbeats, each
// once until a heartbeat carrying it succeeds, and hurries the next one.
func (h *heartbeater) reportCorrupt(ids []ShardID) { h.report(&h.corrupt, ids) }

// reportMissing does the same for shards meta places here that the node
// does not have.
func (h *heartbeater) reportMissing(ids []ShardID) { h.report(&h.missing, ids) }

// reportFailedRepair tells meta, in the next heartbeat, that this node gave
// up on a repair task, so that meta plans it again at once.
func (h *heartbeater) reportFailedRepair(taskID []byte) {
	h.mu.Lock()
	h.failed = append(h.failed, bytes.Clone(taskID))
	h.mu.Unlock()
	h.hurry()
}

func (h *heartbeater) report(queue *[][]byte, ids []ShardID) {
	if len(ids) == 0 {
		return
	}
	h.mu.Lock()
	for _, id := range ids {
		if !h.pending[id] {
			h.pending[id] = true
			*queue = append(*queue, bytes.Clone(id[:]))
		}
	}
	h.mu.Unlock()
	h.hurry()
}

// hurry makes the next heartbeat go out now.
func (h *heartbeater) hurry() {
	select {
	case h.soon <- struct{}{}:
	default:
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (h *heartbeater) disks() ([]*pb.DiskStatus, uint64, uint64, uint64, error) {
	usage, err := h.n.store.Usage()
	if err != nil {
		return nil, 0, 0, 0, err
	}
	var out []*pb.DiskStatus
	var capacity, free, shards uint64
	for _, d := range usage {
		out = append(out, &pb.DiskStatus{Path: d.Path, Incarnation: d.Incarnation, Capacity: d.Capacity, Free: d.Free, ShardCount: d.ShardCount})
		capacity, free, shards = capacity+d.Capacity, free+d.Free, shards+d.ShardCount
	}
	return out, capacity, free, shards, nil
}

func (h *heartbeater) register(ctx context.Context) bool {
	disks, _, _, _, err := h.disks()
	if err == nil {
		req := &pb.RegisterNodeRequest{NodeId: h.n.cfg.NodeID, Address: h.n.cfg.Advertise, Zone: h.n.cfg.Zone, Disks: disks}
		_, err = metacall.Call(ctx, h.n.meta, func(ctx context.Context, mc pb.MetaServiceClient) (*pb.RegisterNodeResponse, error) {
			return mc.RegisterNode(ctx, req)
		})
	}
	if err != nil {
		h.n.log.Info("register with meta failed; retrying", "err", err)
		return false
	}
	h.n.log.Info("registered with meta", "node", h.n.cfg.NodeID, "address", h.n.cfg.Advertise, "zone", h.n.cfg.Zone)
	return true
}

// beat sends one heartbeat, carries out the deletes it brings back and
// hands its repairs to the repair workers.
func (h *heartbeater) beat(ctx context.Context) (time.Duration, error) {
	disks, capacity, free, shards, err := h.disks()
	if err != nil {
		return 0, err
	}
	h.mu.Lock()
	acks := h.deleted
	corrupt := h.corrupt[:min(len(h.corrupt), maxCorruptPerBeat)]
	missing := h.missing[:min(len(h.missing), maxCorruptPerBeat)]
	failed := h.failed[:min(len(h.failed), maxCorruptPerBeat)]
	h.mu.Unlock()
	req := &pb.HeartbeatRequest{NodeId: h.n.cfg.NodeID, Capacity: capacity,
		Free: free, ShardCount: shards, Disks: disks, DeletedShardIds: acks,
		CorruptShardIds: corrupt, MissingShardIds: missing, FailedRepairTasks: failed,
		Scrub: scrubProto(h.n.ScrubStatus(), h.n.cfg.ScrubInterval)}
	resp, err := metacall.Call(ctx, h.n.meta, func(ctx context.Context, mc pb.MetaServiceClient) (*pb.HeartbeatResponse, error) {
		return mc.Heartbeat(ctx, req)
	})
	if err != nil {
		return 0, err
	}
	h.mu.Lock()
	h.deleted = h.deleted[len(acks):]
	// Only reportCorrupt appends and only this goroutine removes, so the
	// ids sent are still the first len(corrupt).
	for _, q := range [][][]byte{corrupt, missing} {
		for _, id := range q {
			delete(h.pending, ShardID(id))
		}
	}
	h.corrupt = h.corrupt[len(corrupt):]
	h.missing = h.missing[len(missing):]
	h.failed = h.failed[len(failed):]
	more := len(h.corrupt) > 0 || len(h.missing) > 0
	h.mu.Unlock()
	if more {
		h.hurry()
	}
	var ids []ShardID
	var wireIDs [][]byte
	for _, d := range resp.Deletes {
		if id, err := ParseShardID(d.ShardId); err == nil {
			ids = append(ids, id)
			wireIDs = append(wireIDs, d.ShardId)
		}
	}
	for i, r := range h.n.store.DeleteMany(ids) {
		if r.Err != nil {
			if !errors.Is(r.Err, ErrClosed) {
				h.n.log.Warn("delete shard for meta", "shard", ids[i], "err", r.Err)
			}
			continue
		}
		h.mu.Lock()
		h.deleted = append(h.deleted, wireIDs[i])
		h.mu.Unlock()
	}
	h.n.rep.submit(resp.Repairs)
	return time.Duration(resp.IntervalMs) * time.Millisecond, nil
}

// scrubProto is the heartbeat's form of the scrub status.
func scrubProto(st ScrubStatus, interval time.Duration) *pb.ScrubStatus {
	out := &pb.ScrubStatus{Running: st.Running, PassesCompleted: st.Passes, IntervalMs: interval.Milliseconds(),
		BytesDone: uint64(st.BytesDone), BytesTotal: uint64(st.BytesTotal),
		ShardsDone: uint64(st.Done), ShardsTotal: uint64(st.Total),
		LastPassCorrupt: uint64(st.LastPassCorrupt), CorruptFound: st.CorruptFound}
	if !st.LastPassEnd.IsZero() {
		out.LastPassEndUnixNano = st.LastPassEnd.UnixNano()
	}
	return out
}
