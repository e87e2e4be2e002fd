package meta

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	pb "github.com/clipstore/clipstore/proto/metapb"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// Rebalance (docs/design.md, "Rebalance") moves shards toward an even
// fill: every node's used fraction (the shard bytes meta places on it over
// its capacity) within a threshold of the cluster's mean. Whether it runs
// is kept in Raft (keyRebalance), so that a new leader goes on; the plan
// lives in the leader's memory and is made again from the state every
// replanEvery. Its moves are drain moves in all but their target, planned
// after every repair and drain move, within the move limits and a cap on
// the bytes in motion.

// replanEvery is how often a running rebalance plans afresh from the state.
const replanEvery = 10 * time.Second

// defaultThreshold is the band around the mean, in used fraction.
const defaultThreshold = 0.05

// queuedMove is a planned move and the shard entry it moves.
type queuedMove struct {
	BalanceMove
	shard *pb.NodeShardRecord
}

type rebalancer struct {
	mu      sync.Mutex
	queue   []queuedMove          // planned, not handed out yet
	planned time.Time             // when the queue was made
	summary *pb.RebalanceResponse // of the last plan
	moved   uint64                // bytes of rebalance moves landed
	// What the last tick saw, to start by itself when a node joins or a
	// node's capacity changes.
	known   map[string]uint64 // node id -> capacity
	pending string            // why to start, until a plan can be made
	// balancedAfter is the recorded join this leadership found balanced.
	balancedAfter string
}

func newRebalancer() *rebalancer { return &rebalancer{} }

// reset forgets the plan: called when leadership is won.
func (r *rebalancer) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queue, r.planned, r.summary, r.moved, r.known, r.pending, r.balancedAfter = nil, time.Time{}, nil, 0, nil, "", ""
}

func validateThreshold(t float64) error {
	if math.IsNaN(t) || t < 0 || t > 1 {
		return fmt.Errorf("%w: rebalance threshold %v outside 0..1 (a used fraction; 0.05 is 5 points)", ErrInvalidArgument, t)
	}
	return nil
}

// setRebalance applies a start or stop. A start answers the joins
// recorded since the last one.
func (a *applier) setRebalance(c *pb.RebalanceState) (proto.Message, error) {
	if err := validateThreshold(c.Threshold); err != nil {
		return nil, err
	}
	if c.Running {
		if err := a.tx.Bucket(bktSettings).Delete(keyRebalanceWanted); err != nil {
			return nil, err
		}
	}
	return nil, putMsg(a.tx.Bucket(bktSettings), keyRebalance, c)
}

func rebalanceState(tx *bolt.Tx) *pb.RebalanceState {
	st := &pb.RebalanceState{}
	if found, err := getMsg(tx.Bucket(bktSettings), keyRebalance, st); err != nil || !found {
		return &pb.RebalanceState{}
	}
	return st
}

// rebalance is the Rebalance call on the leader.
func (n *Node) rebalance(ctx context.Context, req *pb.RebalanceRequest) (*pb.RebalanceResponse, error) {
	threshold := req.Threshold
	if threshold == 0 {
		threshold = n.cfg.RebalanceThreshold
	}
	switch req.Action {
	case pb.RebalanceAction_REBALANCE_START:
		if err := n.proposeRebalance(ctx, req.RequestId, true, threshold, callerOf(ctx), ""); err != nil {
			return nil, err
		}
	case pb.RebalanceAction_REBALANCE_STOP:
		if err := n.proposeRebalance(ctx, req.RequestId, false, threshold, "", "stopped by "+callerOf(ctx)); err != nil {
			return nil, err
		}
	case pb.RebalanceAction_REBALANCE_DRY_RUN:
		if err := n.linearizable(ctx); err != nil {
			return nil, err
		}
		plan, nodes, _, err := n.planBalance(threshold)
		if err != nil {
			return nil, err
		}
		resp := summarize(plan, nodes)
		n.fsm.view(func(tx *bolt.Tx) error { resp.State = rebalanceState(tx); return nil })
		return resp, nil
	}
	return n.rebalanceStatus(ctx)
}

// rebalanceStatus is the state, the last plan and the moves in flight.
func (n *Node) rebalanceStatus(ctx context.Context) (*pb.RebalanceResponse, error) {
	if err := n.linearizable(ctx); err != nil {
		return nil, err
	}
	resp := &pb.RebalanceResponse{}
	n.rebalancer.mu.Lock()
	if n.rebalancer.summary != nil {
		resp = proto.Clone(n.rebalancer.summary).(*pb.RebalanceResponse)
	}
	resp.MovedBytes = n.rebalancer.moved
	n.rebalancer.mu.Unlock()
	n.repairs.mu.Lock()
	for _, t := range n.repairs.inflight {
		if t.rebalance {
			resp.MovesInFlight++
			resp.BytesInFlight += expectedShardLength(t.work.PartLength, t.work.Profile)
		}
	}
	n.repairs.mu.Unlock()
	n.fsm.view(func(tx *bolt.Tx) error { resp.State = rebalanceState(tx); return nil })
	return resp, nil
}

func (n *Node) proposeRebalance(ctx context.Context, reqID []byte, run bool, threshold float64, by, why string) error {
	st := &pb.RebalanceState{Running: run, Threshold: threshold}
	now := n.cfg.now().UnixNano()
	if run {
		st.StartedUnixNano, st.StartedBy = now, by
	} else {
		n.fsm.view(func(tx *bolt.Tx) error {
			cur := rebalanceState(tx)
			st.StartedUnixNano, st.StartedBy, st.Threshold = cur.StartedUnixNano, cur.StartedBy, cmp.Or(cur.Threshold, threshold)
			return nil
		})
		st.EndedUnixNano, st.EndedWhy = now, why
	}
	if _, err := n.propose(ctx, &pb.Command{RequestId: reqID, Op: &pb.Command_SetRebalance{SetRebalance: st}}); err != nil {
		return err
	}
	if run {
		n.rebalancer.mu.Lock()
		n.rebalancer.queue, n.rebalancer.planned = nil, time.Time{} // plan afresh
		n.rebalancer.mu.Unlock()
		n.log.Warn("rebalance started", "threshold", threshold, "by", by)
	} else {
		n.log.Warn("rebalance ended", "why", why)
	}
	return nil
}

// planBalance gathers the planner's inputs from the state and the leader's
// heartbeats and plans. The nodes are the active, up ones heard from (a
// draining node's shards leave by the drain; a down node's by repair).
func (n *Node) planBalance(threshold float64) (BalancePlan, []BalanceNode, []queuedMove, error) {
	var nodes []BalanceNode
	var shards []BalanceShard
	refs := map[string]*pb.NodeShardRecord{} // by BalanceShard.Key
	err := n.fsm.view(func(tx *bolt.Tx) error {
		all := map[string]*pb.StorageNode{}
		if err := loadNodes(tx, all); err != nil {
			return err
		}
		in := map[string]int{}
		for id, node := range all {
			if !placeable(node) || node.State != pb.NodeState_NODE_STATE_UP {
				continue
			}
			hb, ok := n.live.get(id)
			if !ok || hb.capacity == 0 {
				// A plan without an up node would be wrong: wait until
				// this leader has heard from every one.
				return fmt.Errorf("%w: storage node %s is up and not heard from yet", ErrUnavailable, id)
			}
			in[id] = len(nodes)
			nodes = append(nodes, BalanceNode{ID: id, Zone: node.Zone, Capacity: hb.capacity, Target: hb.free >= n.cfg.MinFreeBytes})
		}
		a := &applier{tx: tx}
		recs := map[string]*pb.ClipRecord{}
		c := tx.Bucket(bktNodeShards).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			node, _, ok := bytes.Cut(k, []byte{0})
			if !ok {
				continue
			}
			i, ok := in[string(node)]
			if !ok {
				continue
			}
			ns := &pb.NodeShardRecord{}
			if err := decodeMsg(k, v, ns); err != nil {
				return err
			}
			rec := recs[string(ns.ClipId)]
			if rec == nil {
				var err error
				if rec, err = a.clipByID(ns.ClipId); err != nil {
					return err
				}
				if rec == nil {
					continue
				}
				recs[string(ns.ClipId)] = rec
			}
			if int(ns.Part) >= len(rec.Parts) || int(ns.Index) >= len(rec.Parts[ns.Part].Shards) {
				continue
			}
			part := rec.Parts[ns.Part]
			s := part.Shards[ns.Index]
			nodes[i].Placed += s.Length
			if s.State != pb.ShardState_SHARD_STATE_OK {
				continue
			}
			holders, zones := map[string]bool{}, map[string]int{}
			for _, o := range part.Shards {
				if o.NodeId == "" {
					continue
				}
				if o.Index != s.Index {
					holders[o.NodeId] = true
				}
				if on := all[o.NodeId]; on != nil {
					zones[on.Zone]++
				}
			}
			refs[shardKey(ns.ClipId, ns.Part, ns.Index)] = ns
			shards = append(shards, BalanceShard{Key: shardKey(ns.ClipId, ns.Part, ns.Index),
				Part: shardKey(ns.ClipId, ns.Part, 0), Node: string(node), Length: s.Length, Holders: holders, Zones: zones})
		}
		return nil
	})
	if err != nil {
		return BalancePlan{}, nil, nil, err
	}
	plan := PlanBalance(nodes, shards, threshold, 0)
	queue := make([]queuedMove, len(plan.Moves))
	for i, m := range plan.Moves {
		queue[i] = queuedMove{BalanceMove: m, shard: refs[m.Key]}
	}
	return plan, nodes, queue, nil
}

// summarize turns a plan into its answer.
func summarize(p BalancePlan, nodes []BalanceNode) *pb.RebalanceResponse {
	resp := &pb.RebalanceResponse{Mean: p.Mean, SpreadBefore: Spread(p.Before, p.Mean), SpreadAfter: Spread(p.After, p.Mean),
		PlannedMoves: uint64(len(p.Moves)), ExcessBytes: p.Excess}
	in, out := map[string]uint64{}, map[string]uint64{}
	for _, m := range p.Moves {
		resp.PlannedBytes += m.Length
		in[m.To] += m.Length
		out[m.From] += m.Length
	}
	for _, nd := range nodes {
		resp.Nodes = append(resp.Nodes, &pb.NodeBalance{NodeId: nd.ID, Capacity: nd.Capacity, PlacedBytes: nd.Placed,
			BytesIn: in[nd.ID], BytesOut: out[nd.ID], UsedBefore: p.Before[nd.ID], UsedAfter: p.After[nd.ID]})
	}
	sort.Slice(resp.Nodes, func(i, j int) bool { return resp.Nodes[i].NodeId < resp.Nodes[j].NodeId })
	return resp
}

// rebalanceTick runs on the leader each tick: it starts a rebalance when a
// node joined or changed capacity (AutoRebalance), plans afresh every
// replanEvery, hands out moves within the limits, and ends the rebalance
// when the plan is empty and nothing is in flight.
func (n *Node) rebalanceTick(now time.Time) {
	if n.live.age(now) < 3*n.cfg.HeartbeatInterval {
		return // a new leader: the nodes' figures are not in yet
	}
	var st *pb.RebalanceState
	var moveLimits *pb.RepairLimits
	var joined string
	n.fsm.view(func(tx *bolt.Tx) error {
		st, moveLimits = rebalanceState(tx), n.moveLimits(tx)
		joined = string(tx.Bucket(bktSettings).Get(keyRebalanceWanted))
		return nil
	})
	r := n.rebalancer
	if reason := n.noticeJoins(); reason != "" {
		r.mu.Lock()
		r.pending = reason
		r.mu.Unlock()
	}
	r.mu.Lock()
	if joined == r.balancedAfter {
		joined = "" // looked at already under this leadership: balanced then
	}
	reason := cmp.Or(r.pending, joined)
	r.mu.Unlock()
	if reason != "" && !st.Running && n.cfg.AutoRebalance {
		plan, _, _, err := n.planBalance(n.cfg.RebalanceThreshold)
		if err != nil {
			return // a node not heard from yet: the next tick tries again
		}
		r.mu.Lock()
		r.pending = ""
		if len(plan.Moves) == 0 {
			// Balanced: a join recorded in Raft stays recorded (clearing
			// it would cost an entry); this leadership does not plan for it
			// again, a new node's join or a capacity change does.
			r.balancedAfter = joined
		}
		r.mu.Unlock()
		if len(plan.Moves) == 0 {
			n.log.Info("no rebalance needed", "reason", reason, "spread", Spread(plan.Before, plan.Mean))
			return
		}
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ApplyTimeout)
		err = n.proposeRebalance(ctx, nil, true, n.cfg.RebalanceThreshold, reason, "")
		cancel()
		if err != nil {
			n.log.Warn("start rebalance", "reason", reason, "err", err)
		}
		return
	}
	if !st.Running {
		return
	}
	r.mu.Lock()
	stale := r.planned.IsZero() || now.Sub(r.planned) >= replanEvery || len(r.queue) == 0
	r.mu.Unlock()
	if stale && n.rebalanceInFlight() == 0 {
		plan, nodes, queue, err := n.planBalance(cmp.Or(st.Threshold, n.cfg.RebalanceThreshold))
		if err != nil {
			n.log.Warn("plan rebalance", "err", err)
			return
		}
		r.mu.Lock()
		r.queue, r.planned, r.summary = queue, now, summarize(plan, nodes)
		r.mu.Unlock()
		if len(plan.Moves) == 0 {
			why := fmt.Sprintf("balanced: every node within %.1f points of the mean (%.1f%%)", 100*st.Threshold, 100*plan.Mean)
			if s := Spread(plan.After, plan.Mean); s > st.Threshold {
				why = fmt.Sprintf("no further move is allowed by placement (distinct nodes, zone spread); spread %.1f points", 100*s)
			}
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ApplyTimeout)
			if err := n.proposeRebalance(ctx, nil, false, st.Threshold, "", why); err != nil {
				n.log.Warn("end rebalance", "err", err)
			}
			cancel()
			return
		}
	}
	n.dispatchRebalance(now, moveLimits)
}

// noticeJoins compares the nodes heard from and their capacities with the
// last tick's and says why to start a rebalance ("" for no reason). The
// first tick of a leadership only takes note.
func (n *Node) noticeJoins() string {
	seen := map[string]uint64{}
	n.fsm.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bktNodes).ForEach(func(k, v []byte) error {
			node := &pb.StorageNode{}
			if decodeMsg(k, v, node) != nil || !placeable(node) {
				return nil
			}
			if hb, ok := n.live.get(node.NodeId); ok && hb.capacity > 0 {
				seen[node.NodeId] = hb.capacity
			}
			return nil
		})
	})
	r := n.rebalancer
	r.mu.Lock()
	defer r.mu.Unlock()
	prev := r.known
	r.known = seen
	if prev == nil {
		return ""
	}
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		c := seen[id]
		old, ok := prev[id]
		switch {
		case !ok:
			return "storage node " + id + " joined"
		case c > old+old/100 || c+old/100 < old:
			return fmt.Sprintf("storage node %s changed capacity from %d to %d bytes", id, old, c)
		}
	}
	return ""
}

func (n *Node) rebalanceInFlight() int {
	n.repairs.mu.Lock()
	defer n.repairs.mu.Unlock()
	c := 0
	for _, t := range n.repairs.inflight {
		if t.rebalance {
			c++
		}
	}
	return c
}

// dispatchRebalance hands out planned moves while the move limits and the
// cap on the bytes in motion allow, after repairs and drains (which the
// scheduler planned first in this tick).
func (n *Node) dispatchRebalance(now time.Time, lim *pb.RepairLimits) {
	nodes := map[string]*pb.StorageNode{}
	recs := map[string]*pb.ClipRecord{}
	r := n.rebalancer
	r.mu.Lock()
	queue := r.queue
	r.mu.Unlock()
	// Look at no more of the queue than this tick can hand out (some
	// entries turn out stale): the rest waits for the next tick.
	queue = queue[:min(len(queue), 4*int(lim.Concurrency)+16)]
	if len(queue) == 0 {
		return
	}
	n.fsm.view(func(tx *bolt.Tx) error {
		if err := loadNodes(tx, nodes); err != nil {
			return err
		}
		a := &applier{tx: tx}
		for _, m := range queue {
			if rec, err := a.clipByID(m.shard.ClipId); err == nil && rec != nil {
				recs[m.Key] = rec
			}
		}
		return nil
	})
	n.repairs.mu.Lock()
	defer n.repairs.mu.Unlock()
	running, inMotion := 0, uint64(0)
	busy := n.repairs.busy()
	for _, t := range n.repairs.inflight {
		if t.move {
			running++
		}
		if t.rebalance {
			inMotion += expectedShardLength(t.work.PartLength, t.work.Profile)
		}
	}
	n.repairs.moveBytes.refill(now, lim.BytesPerSec)
	done := 0
	for _, m := range queue {
		if running >= int(lim.Concurrency) || n.repairs.moveBytes.budget <= 0 || inMotion+m.Length > n.cfg.RebalanceMaxInFlight {
			break
		}
		done++
		rec := recs[m.Key]
		if rec == nil || n.repairs.inflight[m.Key] != nil {
			continue
		}
		pi, idx := m.shard.Part, m.shard.Index
		if int(pi) >= len(rec.Parts) || int(idx) >= len(rec.Parts[pi].Shards) {
			continue
		}
		if s := rec.Parts[pi].Shards[idx]; s.NodeId != m.From || s.State != pb.ShardState_SHARD_STATE_OK {
			continue // moved or lost meanwhile: the next plan sees it
		}
		planned, _ := n.planRepair(repairNeed{rec: rec, p: rec.Parts[pi], part: pi, index: idx, bad: -2, target: m.To, rate: taskRate(lim)}, nodes, busy, now)
		if planned {
			n.repairs.inflight[m.Key].rebalance = true
			running++
			inMotion += m.Length
			n.repairs.moveBytes.budget -= float64(m.Length)
		}
	}
	r.mu.Lock()
	if len(r.queue) >= done {
		r.queue = r.queue[done:]
	}
	r.mu.Unlock()
}
