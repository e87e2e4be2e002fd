package meta

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	pb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// liveness is the leader's memory of storage node heartbeats. It is not
// replicated: a new leader starts every timer afresh when it wins, and only
// state changes (up, down since) go through Raft.
type liveness struct {
	mu    sync.Mutex
	since time.Time // when this leadership began
	nodes map[string]*heartbeat
}

type heartbeat struct {
	at                     time.Time
	capacity, free, shards uint64
	scrub                  *pb.ScrubStatus // nil from nodes that do not report it
	losses, corrupt        *pb.ShardLosses // nil from nodes that do not report them
	disks                  []*pb.DiskStatus
}

func newLiveness() *liveness { return &liveness{nodes: map[string]*heartbeat{}} }

// reset forgets every heartbeat: called when leadership is won.
func (l *liveness) reset(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.since = now
	l.nodes = map[string]*heartbeat{}
}

// age is how long this leadership has lasted.
func (l *liveness) age(now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return now.Sub(l.since)
}

func (l *liveness) record(id string, hb *heartbeat) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nodes[id] = hb
}

func (l *liveness) get(id string) (heartbeat, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	hb, ok := l.nodes[id]
	if !ok {
		return heartbeat{}, false
	}
	return *hb, true
}

// scrubs returns the scrub status of every node heard from that reports
// one, by node id.
func (l *liveness) scrubs() []*pb.NodeScrubStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*pb.NodeScrubStatus
	for id, hb := range l.nodes {
		if hb.scrub != nil {
			out = append(out, &pb.NodeScrubStatus{NodeId: id, Scrub: hb.scrub})
		}
	}
	slices.SortFunc(out, func(a, b *pb.NodeScrubStatus) int { return strings.Compare(a.NodeId, b.NodeId) })
	return out
}

// losses sums the counts of lost and of corrupt shards of every node
// heard from.
func (l *liveness) losses() (lost, corrupt *pb.ShardLosses) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lost, corrupt = &pb.ShardLosses{}, &pb.ShardLosses{}
	add := func(sum, c *pb.ShardLosses) {
		sum.Scrub += c.GetScrub()
		sum.Inventory += c.GetInventory()
		sum.Read += c.GetRead()
	}
	for _, hb := range l.nodes {
		add(lost, hb.losses)
		add(corrupt, hb.corrupt)
	}
	return lost, corrupt
}

// silent reports whether a node has not been heard from for d, counting
// from the start of the leadership for nodes never heard from.
func (l *liveness) silent(id string, now time.Time, d time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	last := l.since
	if hb, ok := l.nodes[id]; ok {
		last = hb.at
	}
	return now.Sub(last) >= d
}

// leaderLoop runs the leader's duties while this member leads: it resets
// the liveness timers on every won election and marks silent nodes down.
func (n *Node) leaderLoop() {
	defer n.wg.Done()
	obs := make(chan raft.Observation, 16)
	observer := raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	n.raft.RegisterObserver(observer)
	defer n.raft.DeregisterObserver(observer)
	tick := time.NewTicker(n.cfg.HeartbeatInterval)
	defer tick.Stop()
	leading := false
	last := time.Now()
	var expired time.Time // when stale uploads were last looked for
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-obs:
		case <-tick.C:
		case <-n.replan:
		}
		now := n.cfg.now()
		isLeader := n.raft.State() == raft.Leader
		if isLeader && !leading {
			// A new leader acts on the state only once it has applied
			// every entry committed before its term (hashicorp/raft's
			// FSM may still lag when the election is won): else it could
			// decide on nodes marked down, or a repair hold set, that it
			// has not seen yet.
			if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err != nil {
				n.log.Warn("new leader could not apply the log yet; retrying", "err", err)
				continue
			}
			now = n.cfg.now()
			n.live.reset(now)
			n.repairs.reset()
			n.progress.reset(now)
			n.moves.reset(now)
			n.reports.reset()
			n.rebalancer.reset()
			n.onLeadership()
		}
		// A loop that woke far later than its ticker should have woken it
		// (by more than half of NodeDownAfter) means this member was paused
		// (stopped, a stall, a frozen VM): it heard nothing meanwhile,
		// through no fault of the nodes. Its timers start afresh, as a new
		// leader's do. (The monotonic clock: a paused leader's own clock is
		// not what Config.Now skews in tests.)
		if late := time.Since(last) - n.cfg.HeartbeatInterval; leading && isLeader && late > n.cfg.NodeDownAfter/2 {
			n.log.Warn("this leader was paused; restarting the storage nodes' liveness timers", "late", late)
			n.live.reset(now)
		}
		leading = isLeader
		if leading {
			n.endAdminStates(now)
			n.markSilentNodesDown(now)
			n.scheduleRepairs(now)
			n.rebalanceTick(now)
			if n.capabilities() {
				n.rotateKeyring(now)
			}
			if now.Sub(expired) >= min(time.Minute, n.cfg.UploadExpiry/4) {
				n.expireUploads(now)
				n.expireDatasets(now)
				expired = now
			}
		}
		last = time.Now()
	}
}

// onLeadership runs once per won election: the member records how to reach
// it over gRPC (a bootstrapped member has no other way to get there).
func (n *Node) onLeadership() {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ApplyTimeout)
	defer cancel()
	var known *pb.Member
	n.fsm.view(func(tx *bolt.Tx) error {
		m := &pb.Member{}
		if found, _ := getMsg(tx.Bucket(bktMembers), []byte(n.cfg.ID), m); found {
			known = m
		}
		return nil
	})
	if known != nil && known.GrpcAddress == n.cfg.GRPCAddress && known.RaftAddress == n.RaftAddress() {
		return
	}
	_, err := n.propose(ctx, &pb.Command{Op: &pb.Command_SetMember{SetMember: &pb.SetMemberCommand{
		Id: n.cfg.ID, GrpcAddress: n.cfg.GRPCAddress, RaftAddress: n.RaftAddress()}}})
	if err != nil {
		n.log.Warn("record own address", "err", err)
	}
}
