package server

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/clipstore/clipstore/internal/metacall"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/status"
)

// heartbeater registers the node with meta and heartbeats it: capacity,
// use, per-disk incarnations, scrub progress and the shards found corrupt
// go up; the node's work (shards to delete and repairs) comes down in the
// responses. Meta never dials a storage node.
//
// What the node reports (shards it deleted for meta, shards found corrupt
// or missing) goes up in numbered reports: one at a time, re-sent in every
// heartbeat until an answer says meta applied it (report_seq_applied), so
// meta answers a heartbeat without waiting on Raft and a report lost with
// a leader is sent again. Failed repair tasks go up once, in the next
// heartbeat that gets an answer.
type heartbeater struct {
	n       *Node
	meta    *metacall.Caller // the node's, observed per member
	metrics *heartbeatMetrics

	mu      sync.Mutex
	deleted [][]byte // shards deleted for meta, not yet in a report
	corrupt [][]byte // shards found corrupt, not yet in a report
	missing [][]byte // shards meta places here that this node lacks, not yet in a report
	failed  [][]byte // repair task ids given up on, not yet sent
	queued  map[reportKey]bool
	report  *nodeReport // sent, not yet applied; nil: none
	applied uint64      // meta's last applied report of this node
	known   bool        // applied was learned from meta: reports may be numbered

	// soon asks for the next heartbeat now rather than after the interval
	// (a repair finished: meta may have more work for this node).
	soon chan struct{}
}

// reportKey names a shard in the node's reports, by what is said of it.
type reportKey struct {
	id   ShardID
	kind byte // 'd'eleted, 'c'orrupt, 'm'issing
}

// nodeReport is a numbered report, as HeartbeatRequest carries it.
type nodeReport struct {
	seq                       uint64
	deleted, corrupt, missing [][]byte
}

// Bounds of one report (meta proposes one Raft entry for many).
const (
	maxCorruptPerReport = 256
	maxMissingPerReport = 256
	maxDeletedPerReport = 1000
)

// ackPoll is how soon the next heartbeat goes out while a report waits for
// its acknowledgement: meta applies it within milliseconds.
const ackPoll = 100 * time.Millisecond

func newHeartbeater(n *Node) *heartbeater {
	h := &heartbeater{n: n, soon: make(chan struct{}, 1), queued: make(map[reportKey]bool),
		metrics: newHeartbeatMetrics(n.cfg.Registerer)}
	h.meta = n.meta.WithObserver(h.metrics.observe)
	return h
}

// heartbeatMetrics time the node's heartbeats per meta member.
type heartbeatMetrics struct {
	seconds  *prometheus.HistogramVec
	failures *prometheus.CounterVec
}

func newHeartbeatMetrics(reg prometheus.Registerer) *heartbeatMetrics {
	m := &heartbeatMetrics{
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "clipstore", Subsystem: "storage", Name: "heartbeat_seconds",
			Help:    "Time of a heartbeat (or registration) attempt, by the meta member asked.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"member"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "clipstore", Subsystem: "storage", Name: "heartbeat_failures_total",
			Help: "Heartbeat (or registration) attempts that failed, by the meta member asked and the gRPC code " +
				"(DeadlineExceeded: the member did not answer within the attempt timeout meta set).",
		}, []string{"member", "code"}),
	}
	if reg != nil {
		reg.MustRegister(m.seconds, m.failures)
	}
	return m
}

func (m *heartbeatMetrics) observe(member string, took time.Duration, err error) {
	m.seconds.WithLabelValues(member).Observe(took.Seconds())
	if err != nil {
		m.failures.WithLabelValues(member, status.Code(err).String()).Inc()
	}
}

// run registers, then heartbeats every interval until ctx ends.
func (h *heartbeater) run(ctx context.Context) {
	interval := h.n.cfg.HeartbeatInterval
	for ctx.Err() == nil && !h.register(ctx) {
		sleep(ctx, interval)
	}
	for ctx.Err() == nil {
		wait := interval
		if every, next, err := h.beat(ctx); err != nil {
			h.n.log.Warn("heartbeat to meta failed", "err", err)
		} else {
			if every > 0 {
				interval = every
			}
			wait = min(next, interval)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-h.soon:
		}
		t.Stop()
	}
}

// reportCorrupt queues shards found corrupt for the next reports, each
// once until meta applies a report carrying it, and hurries the next
// heartbeat.
func (h *heartbeater) reportCorrupt(ids []ShardID) { h.queue(&h.corrupt, 'c', ids) }

// reportMissing does the same for shards meta places here that the node
// does not have.
func (h *heartbeater) reportMissing(ids []ShardID) { h.queue(&h.missing, 'm', ids) }

// reportFailedRepair tells meta, in the next heartbeat, that this node gave
// up on a repair task, so that meta plans it again at once.
func (h *heartbeater) reportFailedRepair(taskID []byte) {
	h.mu.Lock()
	h.failed = append(h.failed, bytes.Clone(taskID))
	h.mu.Unlock()
	h.hurry()
}

func (h *heartbeater) queue(queue *[][]byte, kind byte, ids []ShardID) {
	if len(ids) == 0 {
		return
	}
	h.mu.Lock()
	for _, id := range ids {
		if k := (reportKey{id, kind}); !h.queued[k] {
			h.queued[k] = true
			*queue = append(*queue, bytes.Clone(id[:]))
		}
	}
	h.mu.Unlock()
	h.hurry()
}

// nextReport returns the report to send: the one awaiting its
// acknowledgement, or a new one taken from the queues, or nil. A new one
// is numbered past meta's last applied report of this node, so none is
// made before the node has heard that number (a restarted node starts
// numbering from 0, and a report numbered too low would be taken for one
// applied already).
func (h *heartbeater) nextReport() *nodeReport {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.report == nil && h.known && len(h.deleted)+len(h.corrupt)+len(h.missing) > 0 {
		r := &nodeReport{seq: h.applied + 1}
		r.deleted, h.deleted = cut(h.deleted, maxDeletedPerReport)
		r.corrupt, h.corrupt = cut(h.corrupt, maxCorruptPerReport)
		r.missing, h.missing = cut(h.missing, maxMissingPerReport)
		h.report = r
	}
	return h.report
}

// cut splits q after at most n ids.
func cut(q [][]byte, n int) (head, rest [][]byte) {
	n = min(n, len(q))
	return q[:n:n], q[n:]
}

// acknowledged records meta's last applied report, and retires the report
// sent if that covers it. It returns how soon to beat again: at once when
// more is queued, soon while the report awaits its acknowledgement, else
// after interval.
func (h *heartbeater) acknowledged(applied uint64, interval time.Duration) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.applied, h.known = max(h.applied, applied), true
	r := h.report
	switch {
	case r == nil && len(h.deleted)+len(h.corrupt)+len(h.missing) > 0:
		return 0 // queued before the node knew how to number it
	case r == nil:
		return interval
	case h.applied < r.seq:
		return min(interval, ackPoll)
	}
	for _, q := range []struct {
		ids  [][]byte
		kind byte
	}{{r.deleted, 'd'}, {r.corrupt, 'c'}, {r.missing, 'm'}} {
		for _, id := range q.ids {
			delete(h.queued, reportKey{ShardID(id), q.kind})
		}
	}
	h.report = nil
	if len(h.deleted)+len(h.corrupt)+len(h.missing) > 0 {
		return 0
	}
	return interval
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
	var capacity, free, shards, used uint64
	for _, d := range usage {
		out = append(out, &pb.DiskStatus{Path: d.Path, Incarnation: d.Incarnation, Capacity: d.Capacity, Free: d.Free,
			ShardCount: d.ShardCount, Failed: d.Failed})
		capacity, free, shards = capacity+d.Capacity, free+d.Free, shards+d.ShardCount
		used += d.ShardSize
	}
	if c := uint64(h.n.cfg.Capacity); c > 0 {
		capacity, free = c, min(free, c-min(used, c))
	}
	return out, capacity, free, shards, nil
}

func (h *heartbeater) register(ctx context.Context) bool {
	disks, _, _, _, err := h.disks()
	if err == nil {
		req := &pb.RegisterNodeRequest{NodeId: h.n.cfg.NodeID, Address: h.n.cfg.Advertise, Zone: h.n.cfg.Zone, Disks: disks}
		var resp *pb.RegisterNodeResponse
		resp, err = metacall.Call(ctx, h.meta, func(ctx context.Context, mc pb.MetaServiceClient) (*pb.RegisterNodeResponse, error) {
			return mc.RegisterNode(ctx, req)
		})
		if err == nil {
			h.acknowledged(resp.GetNode().GetReportSeq(), 0) // number reports on from meta's last
			h.n.gate.set(resp.Keyring, true)
		}
	}
	if err != nil {
		h.n.log.Info("register with meta failed; retrying", "err", err)
		return false
	}
	h.n.log.Info("registered with meta", "node", h.n.cfg.NodeID, "address", h.n.cfg.Advertise, "zone", h.n.cfg.Zone)
	return true
}

// beat sends one heartbeat, carries out the deletes it brings back and
// hands its repairs to the repair workers. It returns the interval meta
// asks for, and how soon to beat again (sooner while a report awaits its
// acknowledgement or more is queued).
func (h *heartbeater) beat(ctx context.Context) (every, next time.Duration, err error) {
	disks, capacity, free, shards, err := h.disks()
	if err != nil {
		return 0, 0, err
	}
	rep := h.nextReport()
	h.mu.Lock()
	failed := h.failed[:min(len(h.failed), maxCorruptPerReport)]
	h.mu.Unlock()
	req := &pb.HeartbeatRequest{NodeId: h.n.cfg.NodeID, Capacity: capacity,
		Free: free, ShardCount: shards, Disks: disks, FailedRepairTasks: failed,
		Scrub: scrubProto(h.n.ScrubStatus(), h.n.cfg.ScrubInterval), Losses: lossesProto(h.n.LossCounts()),
		Corrupt: lossesProto(h.n.CorruptCounts())}
	if rep != nil {
		req.ReportSeq, req.DeletedShardIds, req.CorruptShardIds, req.MissingShardIds = rep.seq, rep.deleted, rep.corrupt, rep.missing
	}
	req.KeyringNewest, req.KeyringOldest = h.n.gate.held()
	resp, err := metacall.Call(ctx, h.meta, func(ctx context.Context, mc pb.MetaServiceClient) (*pb.HeartbeatResponse, error) {
		return mc.Heartbeat(ctx, req)
	})
	if err != nil {
		return 0, 0, err
	}
	if resp.MetaTimeoutMs > 0 {
		h.n.meta.SetAttemptTimeout(time.Duration(resp.MetaTimeoutMs) * time.Millisecond)
	}
	h.n.gate.set(resp.Keyring, false)
	h.mu.Lock()
	h.failed = h.failed[len(failed):] // only this goroutine removes, so they are still the first
	h.mu.Unlock()
	every = time.Duration(resp.IntervalMs) * time.Millisecond
	next = h.acknowledged(resp.ReportSeqApplied, every)
	var ids []ShardID
	for _, d := range resp.Deletes {
		if id, err := ParseShardID(d.ShardId); err == nil {
			ids = append(ids, id)
		}
	}
	var done []ShardID
	for i, r := range h.n.store.DeleteMany(ids) {
		if r.Err != nil {
			if !errors.Is(r.Err, ErrClosed) {
				h.n.log.Warn("delete shard for meta", "shard", ids[i], "err", r.Err)
			}
			continue
		}
		done = append(done, ids[i])
	}
	h.queue(&h.deleted, 'd', done)
	h.n.rep.submit(resp.Repairs)
	return every, next, nil
}

// scrubProto is the heartbeat's form of the scrub status.
func scrubProto(st ScrubStatus, interval time.Duration) *pb.ScrubStatus {
	out := &pb.ScrubStatus{Running: st.Running, PassesCompleted: st.Passes, IntervalMs: interval.Milliseconds(),
		BytesDone: uint64(st.BytesDone), BytesTotal: uint64(st.BytesTotal),
		ShardsDone: uint64(st.Done), ShardsTotal: uint64(st.Total),
		LastPassCorrupt: uint64(st.LastPassCorrupt), LastPassLost: uint64(st.LastPassLost), CorruptFound: st.CorruptFound}
	if !st.LastPassEnd.IsZero() {
		out.LastPassEndUnixNano = st.LastPassEnd.UnixNano()
	}
	return out
}

// lossesProto is the heartbeat's form of the loss counts.
func lossesProto(c LossCounts) *pb.ShardLosses {
	return &pb.ShardLosses{Scrub: c.Scrub, Inventory: c.Inventory, Read: c.Read}
}
