package meta

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	pb "github.com/clipstore/clipstore/proto/metapb"
	bolt "go.etcd.io/bbolt"
)

// repairs is the leader's repair scheduler state. Like liveness it lives
// only in the leader's memory: a new leader plans afresh from the FSM (the
// degraded index and the node -> shard index), which is all it needs.
type repairs struct {
	mu       sync.Mutex
	inflight map[string]*repairTask // by shardKey
	// The shard bytes that may be planned now, for repairs and for moves
	// (drains), each within its own rate.
	repairBytes, moveBytes tokens
	// blocked says, by draining node, why the last pass could not plan a
	// move off it (until one is planned again).
	blocked map[string]string
}

type repairTask struct {
	work      *pb.RepairWork
	target    string
	deadline  time.Time
	move      bool // a drain's or a rebalance's move, not the repair of a lost shard
	rebalance bool // a rebalance's move
}

// tokens is a byte budget that refills at a rate.
type tokens struct {
	budget   float64
	refilled time.Time
}

func newRepairs() *repairs {
	return &repairs{inflight: map[string]*repairTask{}, blocked: map[string]string{}}
}

// drainBlocked returns why no move off a draining node could be planned,
// "" if nothing stands in the way.
func (r *repairs) drainBlocked(node string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.blocked[node]
}

// reset forgets every task: called when leadership is won.
func (r *repairs) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inflight = map[string]*repairTask{}
	r.repairBytes, r.moveBytes = tokens{}, tokens{}
	r.blocked = map[string]string{}
}

// refill adds what the byte rate allows since the last refill, keeping at
// most one second's worth; with no rate the budget is unlimited.
func (t *tokens) refill(now time.Time, rate uint64) {
	if rate == 0 {
		t.budget = 1 << 62
		return
	}
	if !t.refilled.IsZero() {
		t.budget += float64(rate) * now.Sub(t.refilled).Seconds()
	}
	t.budget = min(t.budget, float64(rate))
	t.refilled = now
}

// work returns the unfinished repairs a node is to run. Every heartbeat
// carries them again until they are done (the node ignores tasks it runs
// or ran already), so a lost heartbeat answer loses no work.
func (r *repairs) work(node string) []*pb.RepairWork {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*pb.RepairWork
	for _, t := range r.inflight {
		if t.target == node {
			out = append(out, t.work)
		}
	}
	return out
}

// fail forgets the tasks a node gave up on, so that the next planning
// round replans their shards (with fresh sources and target).
func (r *repairs) fail(taskIDs [][]byte) int {
	if len(taskIDs) == 0 {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for key, t := range r.inflight {
		for _, id := range taskIDs {
			if bytes.Equal(t.work.TaskId, id) {
				delete(r.inflight, key)
				n++
			}
		}
	}
	return n
}

func (r *repairs) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.inflight)
}

func shardKey(clipID []byte, part, index uint32) string {
	return fmt.Sprintf("%s/%d/%d", hex.EncodeToString(clipID), part, index)
}

// repairNeed is one shard entry that must be rebuilt.
type repairNeed struct {
	// rec is the clip; for a part of an upload in progress, a stand-in
	// with its bucket, key and clip id, generation 0 (uploadID set).
	rec      *pb.ClipRecord
	p        *pb.Part // the part: rec.Parts[part], or the upload's
	part     uint32   // its index in rec.Parts; an upload's part: its number
	uploadID []byte
	index    uint32
	bad      int // shards of the part not usable: more first; -1 a drain's move, -2 a rebalance's
	// target, when set, is the node the work must go to (a rebalance's
	// plan); else planRepair picks one.
	target string
	rate   uint64 // the task's byte rate (0: no bound)
}

// scheduleRepairs plans repairs for lost shards: entries MISSING or
// CORRUPT, and entries on nodes down for longer than RepairAfter. Clips
// with the most unusable shards go first; at most RepairConcurrency tasks
// run cluster-wide and RepairPerNode on one target node.
func (n *Node) scheduleRepairs(now time.Time) {
	n.repairs.mu.Lock()
	defer n.repairs.mu.Unlock()
	var needs []repairNeed
	var limits, moveLimits *pb.RepairLimits
	nodes := map[string]*pb.StorageNode{}
	err := n.fsm.view(func(tx *bolt.Tx) error {
		if err := loadNodes(tx, nodes); err != nil {
			return err
		}
		limits, moveLimits = n.repairLimits(tx), n.moveLimits(tx)
		n.retireTasks(tx, nodes, now)
		var err error
		needs, err = n.findNeeds(tx, nodes, now, int(limits.Concurrency))
		return err
	})
	if err != nil {
		n.log.Warn("plan repairs", "err", err)
		return
	}
	slices.SortStableFunc(needs, func(a, b repairNeed) int { return cmp.Compare(b.bad, a.bad) })
	busy := n.repairs.busy()
	running := [2]int{} // repairs, moves
	for _, t := range n.repairs.inflight {
		running[b2i(t.move)]++
	}
	n.repairs.repairBytes.refill(now, limits.BytesPerSec)
	n.repairs.moveBytes.refill(now, moveLimits.BytesPerSec)
	for _, need := range needs {
		move := need.bad < 0
		lim, budget := limits, &n.repairs.repairBytes
		if move {
			lim, budget = moveLimits, &n.repairs.moveBytes
		}
		if running[b2i(move)] >= int(lim.Concurrency) || budget.budget <= 0 {
			if move {
				return // moves sort last: nothing more to plan
			}
			continue // repairs are full; moves may still go
		}
		need.rate = taskRate(lim)
		planned, why := n.planRepair(need, nodes, busy, now)
		if need.bad < 0 { // a drain's move: say what holds the node's drain up
			from := need.p.Shards[need.index].NodeId
			switch {
			case planned:
				delete(n.repairs.blocked, from)
			case why != "":
				n.repairs.blocked[from] = why
			}
		}
		if planned {
			running[b2i(move)]++
			budget.budget -= float64(expectedShardLength(need.p.Length, need.p.Profile))
		}
	}
}

// slots counts the tasks in flight per node: as the target, and as the
// source a move copies from.
type slots struct{ target, source map[string]int }

// busy counts the tasks in flight per node. The caller holds r.mu.
func (r *repairs) busy() slots {
	s := slots{target: map[string]int{}, source: map[string]int{}}
	for _, t := range r.inflight {
		s.add(t)
	}
	return s
}

func (s slots) add(t *repairTask) {
	s.target[t.target]++
	if cf := t.work.GetCopyFrom(); cf != nil {
		s.source[cf.NodeId]++
	}
}

// taskRate is one task's share of a cluster-wide byte rate: each of the
// tasks the limits let run at once gets an equal part (0: no bound).
func taskRate(lim *pb.RepairLimits) uint64 {
	if lim.BytesPerSec == 0 {
		return 0
	}
	return max(lim.BytesPerSec/uint64(max(lim.Concurrency, 1)), 1)
}

// taskTimeout is how long a task may take before it is planned again:
// RepairTaskTimeout, plus twice what its bytes take at its rate, so that a
// large shard at a low rate is not planned again forever.
func (n *Node) taskTimeout(bytes, rate uint64) time.Duration {
	d := n.cfg.RepairTaskTimeout
	if rate > 0 {
		d += 2 * time.Duration(float64(bytes)/float64(rate)*float64(time.Second))
	}
	return d
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// moveLimits returns the limits of moves (drains) in force: those set at
// run time, or the configured defaults.
func (n *Node) moveLimits(tx *bolt.Tx) *pb.RepairLimits {
	l := &pb.RepairLimits{}
	if found, err := getMsg(tx.Bucket(bktSettings), keyMoveLimits, l); err == nil && found {
		return l
	}
	return &pb.RepairLimits{Concurrency: uint32(n.cfg.MoveConcurrency), BytesPerSec: n.cfg.MoveBytesPerSec}
}

// repairLimits returns the limits in force: those set at run time, or the
// configured defaults.
func (n *Node) repairLimits(tx *bolt.Tx) *pb.RepairLimits {
	l := &pb.RepairLimits{}
	if found, err := getMsg(tx.Bucket(bktSettings), keyRepairLimits, l); err == nil && found {
		return l
	}
	return &pb.RepairLimits{Concurrency: uint32(n.cfg.RepairConcurrency), BytesPerSec: n.cfg.RepairBytesPerSec}
}

func loadNodes(tx *bolt.Tx, nodes map[string]*pb.StorageNode) error {
	return tx.Bucket(bktNodes).ForEach(func(k, v []byte) error {
		node := &pb.StorageNode{}
		if err := decodeMsg(k, v, node); err != nil {
			return err
		}
		nodes[node.NodeId] = node
		return nil
	})
}

// retireTasks drops tasks whose entry no longer names the old shard (the
// update landed, or the clip changed), tasks past their deadline and tasks
// whose target is down (they will be planned again). A task whose update
// landed counts as repaired.
func (n *Node) retireTasks(tx *bolt.Tx, nodes map[string]*pb.StorageNode, now time.Time) {
	for key, t := range n.repairs.inflight {
		w := t.work
		entry := taskEntry(&applier{tx: tx}, w)
		if entry != nil && bytes.Equal(entry.ShardId, w.NewShardId) {
			n.repairLanded(t, entry.Length, now)
		}
		// A task whose target was marked down is planned again elsewhere
		// at once, not at its deadline (an update that still lands from it
		// is refused: the entry moved on).
		target := nodes[t.target]
		targetDown := target == nil || target.State == pb.NodeState_NODE_STATE_DOWN
		if entry == nil || !bytes.Equal(entry.ShardId, w.OldShardId) || now.After(t.deadline) || targetDown {
			delete(n.repairs.inflight, key)
		}
	}
}

// taskEntry is the shard entry a task replaces, as the state has it now:
// nil if its clip's generation or its upload's part is gone.
func taskEntry(a *applier, w *pb.RepairWork) *pb.Shard {
	var part *pb.Part
	if len(w.UploadId) > 0 {
		if u, p, _ := a.uploadPartByID(w.UploadId, w.Part); u != nil && bytes.Equal(u.ClipId, w.ClipId) {
			part = p.Part
		}
	} else if rec, _ := a.clipByID(w.ClipId); rec != nil && rec.Generation == w.Generation && int(w.Part) < len(rec.Parts) {
		part = rec.Parts[w.Part]
	}
	if part == nil || int(w.Index) >= len(part.Shards) {
		return nil
	}
	return part.Shards[w.Index]
}

// isMove reports whether an update lands a move this leader planned (a
// drain's or a rebalance's), whose old copy is healthy and may still be read.
func (n *Node) isMove(req *pb.UpdateShardRequest) bool {
	n.repairs.mu.Lock()
	defer n.repairs.mu.Unlock()
	t := n.repairs.inflight[taskKey(req.ClipId, req.UploadId, req.Part, req.Index)]
	return t != nil && t.move && bytes.Equal(t.work.NewShardId, req.NewShard.GetShardId())
}

// updateLanded retires the task a committed UpdateShard finished, and
// counts it as repaired; it reports whether there was one. Updates of tasks
// this leader did not plan (a former leader's) and replayed retries (the
// task is gone) count nothing.
func (n *Node) updateLanded(req *pb.UpdateShardRequest) bool {
	n.repairs.mu.Lock()
	defer n.repairs.mu.Unlock()
	key := taskKey(req.ClipId, req.UploadId, req.Part, req.Index)
	t := n.repairs.inflight[key]
	if t == nil || !bytes.Equal(t.work.NewShardId, req.NewShard.GetShardId()) {
		return false
	}
	delete(n.repairs.inflight, key)
	n.repairLanded(t, req.NewShard.GetLength(), n.cfg.now())
	if t.rebalance {
		n.rebalancer.mu.Lock()
		n.rebalancer.moved += req.NewShard.GetLength()
		n.rebalancer.mu.Unlock()
	}
	return true
}

// planNext plans repairs and moves, and hands out the running rebalance's
// next moves: what a leader tick does for them, run when a task lands.
func (n *Node) planNext(now time.Time) {
	n.scheduleRepairs(now)
	var running bool
	var lim *pb.RepairLimits
	n.fsm.view(func(tx *bolt.Tx) error {
		running, lim = rebalanceState(tx).Running, n.moveLimits(tx)
		return nil
	})
	if running {
		n.dispatchRebalance(now, lim)
	}
}

// findNeeds lists the shard entries to rebuild: not OK, or on a node down
// for longer than RepairAfter.
func (n *Node) findNeeds(tx *bolt.Tx, nodes map[string]*pb.StorageNode, now time.Time, concurrency int) ([]repairNeed, error) {
	gone := n.goneAt(tx, now)
	var needs []repairNeed
	// Each pass collects needs from a bounded number of clips, so that a
	// down node with millions of shards costs the leader little per tick;
	// the next passes find the rest. Clips that yield nothing (repairs in
	// flight, or more shards lost than parity: unrecoverable) do not count
	// against that bound, or enough of them would starve every clip that
	// sorts after them; a pass still stops after a larger number of them.
	seen, visited, limit := 0, 0, 16*max(concurrency, 1)
	err := eachAtRiskClip(tx, nodes, gone, func(rec *pb.ClipRecord, lost func(*pb.Shard) bool) error {
		if visited++; seen >= limit || visited > 64*limit {
			return errEnough
		}
		found := false
		for pi, part := range rec.Parts {
			bad, unrecoverable := partLoss(part, lost)
			if unrecoverable {
				continue
			}
			for _, s := range part.Shards {
				if lost(s) && n.repairs.inflight[shardKey(rec.ClipId, uint32(pi), s.Index)] == nil {
					needs = append(needs, repairNeed{rec: rec, p: part, part: uint32(pi), index: s.Index, bad: bad})
					found = true
				}
			}
		}
		if found {
			seen++
		}
		return nil
	})
	if err = ignoreEnough(err); err != nil || seen >= limit {
		return needs, err
	}
	parts, err := n.findUploadNeeds(tx, nodes, now, limit-seen)
	if err != nil {
		return needs, err
	}
	needs, seen = append(needs, parts...), seen+len(parts)
	if seen >= limit {
		return needs, nil
	}
	moves, err := n.findDrainMoves(tx, nodes, gone, limit-seen)
	return append(needs, moves...), err
}

// findDrainMoves lists the shards on draining (live) nodes to move off
// them, at most limit: each is rebuilt on another node from k others, as a
// repair is, while it stays in place and readable, so that redundancy never
// drops; the conditional update that ends the move sends it to the node's
// delete queue. They sort after every lost shard (bad -1): repair first.
func (n *Node) findDrainMoves(tx *bolt.Tx, nodes map[string]*pb.StorageNode, gone func(*pb.StorageNode) bool, limit int) ([]repairNeed, error) {
	var needs []repairNeed
	lost := lostOn(nodes, gone)
	a := &applier{tx: tx}
	for id, node := range nodes {
		if node.AdminState != pb.AdminState_ADMIN_STATE_DRAINING || node.DrainDead || gone(node) {
			continue
		}
		prefix := joinKey(id, nil)
		c := tx.Bucket(bktNodeShards).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(needs) >= limit {
				return needs, nil
			}
			ns := &pb.NodeShardRecord{}
			if err := decodeMsg(k, v, ns); err != nil {
				return needs, err
			}
			if n.repairs.inflight[taskKey(ns.ClipId, ns.UploadId, ns.Part, ns.Index)] != nil {
				continue
			}
			need := repairNeed{part: ns.Part, index: ns.Index, bad: -1}
			if len(ns.UploadId) > 0 {
				// A part of a multipart upload in progress moves as a
				// clip's part does.
				u, p, err := a.uploadPartByID(ns.UploadId, ns.Part)
				if err != nil || u == nil {
					continue
				}
				need.rec, need.p, need.uploadID = uploadNeedRecord(u), p.Part, u.UploadId
			} else {
				rec, err := a.clipByID(ns.ClipId)
				if err != nil || rec == nil || int(ns.Part) >= len(rec.Parts) {
					continue
				}
				need.rec, need.p = rec, rec.Parts[ns.Part]
			}
			if int(ns.Index) >= len(need.p.Shards) {
				continue
			}
			if _, unrecoverable := partLoss(need.p, lost); unrecoverable {
				continue
			}
			needs = append(needs, need)
		}
	}
	return needs, nil
}

// goneAt returns whether a node's shards are to be rebuilt elsewhere at
// now: it has been down for RepairAfter (not in a maintenance window), or
// it is down and being decommissioned as dead. While the mass-down guard
// holds repair back, no node is gone.
func (n *Node) goneAt(tx *bolt.Tx, now time.Time) func(*pb.StorageNode) bool {
	if n.repairHeld(tx, now) {
		return func(*pb.StorageNode) bool { return false }
	}
	return func(node *pb.StorageNode) bool {
		switch {
		case node.State != pb.NodeState_NODE_STATE_DOWN || inMaintenance(node, now):
			return false
		case node.AdminState == pb.AdminState_ADMIN_STATE_DRAINING && node.DrainDead:
			return true
		}
		return now.Sub(time.Unix(0, node.DownSinceUnixNano)) >= n.cfg.RepairAfter
	}
}

// partLoss counts the shards of part that lost says are lost and reports
// whether that is more than its parity: fewer than k shards are left, and
// nothing can rebuild the others.
func partLoss(part *pb.Part, lost func(*pb.Shard) bool) (n int, unrecoverable bool) {
	for _, s := range part.Shards {
		if lost(s) {
			n++
		}
	}
	return n, n > int(part.Profile.GetParityShards())
}

// lostOn returns whether a shard entry is lost: not OK, or on a node that
// is unknown or that gone says is lost.
func lostOn(nodes map[string]*pb.StorageNode, gone func(*pb.StorageNode) bool) func(*pb.Shard) bool {
	return func(s *pb.Shard) bool {
		node := nodes[s.NodeId]
		return s.State != pb.ShardState_SHARD_STATE_OK || node == nil || gone(node)
	}
}

// eachAtRiskClip calls fn once for every clip with a shard that is not OK
// (the degraded index) or that sits on a node gone says is lost, with the
// predicate telling which of its shards are lost. fn may stop the walk by
// returning an error.
func eachAtRiskClip(tx *bolt.Tx, nodes map[string]*pb.StorageNode, gone func(*pb.StorageNode) bool,
	fn func(rec *pb.ClipRecord, lost func(*pb.Shard) bool) error) error {
	lost := lostOn(nodes, gone)
	a := &applier{tx: tx}
	seen := map[string]bool{}
	visit := func(clipID []byte) error {
		if seen[string(clipID)] {
			return nil
		}
		seen[string(clipID)] = true
		rec, err := a.clipByID(clipID)
		if err != nil || rec == nil {
			return err
		}
		return fn(rec, lost)
	}
	if err := tx.Bucket(bktDegraded).ForEach(func(k, _ []byte) error { return visit(k) }); err != nil {
		return err
	}
	return eachShardOnGone(tx, nodes, gone, func(ns *pb.NodeShardRecord) error { return visit(ns.ClipId) })
}

// eachShardOnGone calls fn with the node -> shard entry of every shard on
// a node gone says is lost; fn may stop the walk by returning an error.
func eachShardOnGone(tx *bolt.Tx, nodes map[string]*pb.StorageNode, gone func(*pb.StorageNode) bool,
	fn func(*pb.NodeShardRecord) error) error {
	for id, node := range nodes {
		if !gone(node) {
			continue
		}
		prefix := joinKey(id, nil)
		c := tx.Bucket(bktNodeShards).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			ns := &pb.NodeShardRecord{}
			if err := decodeMsg(k, v, ns); err != nil {
				return err
			}
			if err := fn(ns); err != nil {
				return err
			}
		}
	}
	return nil
}

var errEnough = errors.New("enough work found")

func ignoreEnough(err error) error {
	if errors.Is(err, errEnough) {
		return nil
	}
	return err
}

// planRepair picks the sources and a target for one lost shard and queues
// the work for the target's next heartbeat. It reports whether it did, and
// if not, why.
func (n *Node) planRepair(need repairNeed, nodes map[string]*pb.StorageNode, busy slots, now time.Time) (bool, string) {
	part := need.p
	k := int(part.Profile.DataShards)
	var sources []*pb.ShardSource
	holders, zones := map[string]bool{}, map[string]int{}
	for _, s := range part.Shards {
		node := nodes[s.NodeId]
		usable := s.State == pb.ShardState_SHARD_STATE_OK && node != nil && node.State == pb.NodeState_NODE_STATE_UP
		if s.Index == need.index || !usable {
			continue
		}
		holders[s.NodeId] = true
		zones[node.Zone]++
		sources = append(sources, &pb.ShardSource{Index: s.Index, NodeId: s.NodeId, Address: node.Address, ShardId: s.ShardId})
	}
	if len(sources) < k {
		// unrecoverable for now: fewer than k healthy shards are reachable
		return false, fmt.Sprintf("clip %s/%s has %d reachable shards besides this one, it needs %d",
			need.rec.Bucket, need.rec.Key, len(sources), k)
	}
	// A node already rebuilding another shard of this clip will hold it.
	for _, t := range n.repairs.inflight {
		if bytes.Equal(t.work.ClipId, need.rec.ClipId) {
			holders[t.target] = true
			if node := nodes[t.target]; node != nil {
				zones[node.Zone]++
			}
		}
	}
	target := need.target
	if target != "" {
		if _, ok := n.canTake(target, nodes[target], holders, busy, now); !ok {
			return false, "" // the plan is stale, or the target busy: the next plan sees it
		}
	} else {
		target = n.repairTarget(nodes, holders, zones, busy, now)
	}
	if target == "" {
		if n.repairTarget(nodes, holders, zones, slots{target: map[string]int{}}, now) != "" {
			return false, "" // the targets are busy: later
		}
		return false, fmt.Sprintf("no active, up node with room holds no shard of clip %s/%s (%d+%d needs %d distinct nodes)",
			need.rec.Bucket, need.rec.Key, k, part.Profile.GetParityShards(), k+int(part.Profile.GetParityShards()))
	}
	old := part.Shards[need.index]
	move := need.bad < 0
	if from := old.NodeId; move && busy.source[from] >= n.cfg.MovesPerSource {
		return false, "" // the source is busy: later
	}
	timeout := n.taskTimeout(expectedShardLength(part.Length, part.Profile), need.rate)
	w := &pb.RepairWork{
		TaskId: newID(), ClipId: need.rec.ClipId, Generation: need.rec.Generation, Part: need.part,
		Index: need.index, OldShardId: old.ShardId, NewShardId: newID(), Profile: part.Profile,
		PartLength: part.Length, Sources: sources,
		CommitDeadlineUnixNano: now.Add(timeout).UnixNano(), BytesPerSec: need.rate, UploadId: need.uploadID,
	}
	if old.State != pb.ShardState_SHARD_STATE_MISSING || old.NodeId != "" {
		sum := old.Checksum // written once, so its checksum is known
		w.ExpectedChecksum = &sum
	}
	if from := nodes[old.NodeId]; move && old.State == pb.ShardState_SHARD_STATE_OK && from != nil &&
		from.State == pb.NodeState_NODE_STATE_UP {
		// A move: copy the healthy shard itself; the sources are the fallback.
		w.CopyFrom = &pb.ShardSource{Index: old.Index, NodeId: old.NodeId, Address: from.Address, ShardId: old.ShardId}
	}
	t := &repairTask{work: w, target: target, deadline: now.Add(timeout), move: move}
	n.repairs.inflight[taskKey(w.ClipId, w.UploadId, w.Part, w.Index)] = t
	busy.add(t)
	n.log.Info("repair planned", "clip", hex.EncodeToString(w.ClipId), "index", w.Index, "target", target,
		"lost_on", old.NodeId, "state", old.State)
	return true, ""
}

// canTake reports whether a node may receive a rebuilt or moved shard of a
// clip: up, active, heard from lately with room, holding no other shard of
// the clip, and below its per-node limit; with its last heartbeat.
func (n *Node) canTake(id string, node *pb.StorageNode, holders map[string]bool, busy slots, now time.Time) (heartbeat, bool) {
	if node == nil || holders[id] || node.State != pb.NodeState_NODE_STATE_UP || !placeable(node) || busy.target[id] >= n.cfg.RepairPerNode {
		return heartbeat{}, false
	}
	hb, ok := n.live.get(id)
	return hb, ok && now.Sub(hb.at) <= n.cfg.NodeDownAfter && hb.free >= n.cfg.MinFreeBytes
}

// repairTarget picks a live node that holds no other shard of the clip,
// in the least used zone, weighted by free space.
func (n *Node) repairTarget(nodes map[string]*pb.StorageNode, holders map[string]bool, zones map[string]int,
	busy slots, now time.Time) string {
	var cands []Candidate
	best := -1
	for id, node := range nodes {
		hb, ok := n.canTake(id, node, holders, busy, now)
		if !ok {
			continue
		}
		z := zones[node.Zone]
		if best == -1 || z < best {
			best, cands = z, nil
		}
		if z == best {
			cands = append(cands, Candidate{ID: id, Zone: node.Zone, Free: hb.free})
		}
	}
	if len(cands) == 0 {
		return ""
	}
	p, err := Place(cands, 1, 0, 0, newRand())
	if err != nil {
		return ""
	}
	return p.Targets[0]
}
