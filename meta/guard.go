package meta

import (
	"context"
	"fmt"
	"math"
	"time"

	pb "github.com/clipstore/clipstore/proto/metapb"
	bolt "go.etcd.io/bbolt"
)

// massDownFraction is the share of the active storage nodes that may go
// silent within one detection window before the mass-down guard holds
// repair back (at least m+1 nodes always may).
const massDownFraction = 0.3

// silence is what one liveness round found.
type silence struct {
	silent    []string // UP nodes not heard from for NodeDownAfter
	recent    int      // nodes marked down within the last NodeDownAfter
	active    int      // nodes up, or down within the window
	down      int      // nodes down now
	threshold int      // the most that may go silent at once without the guard
	hold      *pb.SetRepairHoldCommand
}

// markSilentNodesDown proposes DOWN for every UP node silent for longer
// than NodeDownAfter, once raft confirms this member still leads (a leader
// cut off from its peers stops marking at once). When more nodes go silent
// within one detection window than the guard allows (as Ceph's monitors
// refuse to mark out more than a fraction of the OSDs), they are marked down
// all the same, but the repair of their shards is held back (SetRepairHold)
// for at most MassDownHold, counted from a time kept in Raft; the hold ends
// early once most of them are back.
func (n *Node) markSilentNodesDown(now time.Time) {
	var s silence
	n.fsm.view(func(tx *bolt.Tx) error {
		s = n.findSilence(tx, now)
		return nil
	})
	n.metrics.repairHold(s.hold, n.cfg.massDownHold())
	if len(s.silent) == 0 && s.hold == nil {
		return
	}
	if err := n.raft.VerifyLeader().Error(); err != nil {
		n.log.Warn("not marking silent storage nodes down: leadership not confirmed", "err", err)
		return
	}
	n.guardRepair(now, &s)
	reason := fmt.Sprintf("no heartbeat for %v", n.cfg.NodeDownAfter)
	for _, id := range s.silent {
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ApplyTimeout)
		_, err := n.propose(ctx, &pb.Command{Op: &pb.Command_SetNodeState{SetNodeState: &pb.SetNodeStateCommand{
			NodeId: id, State: pb.NodeState_NODE_STATE_DOWN, SinceUnixNano: now.UnixNano(), Reason: reason}}})
		cancel()
		if err != nil {
			n.log.Warn("mark storage node down", "node", id, "err", err)
			continue
		}
		n.metrics.markedDown.Inc()
		n.log.Warn("storage node marked down", "node", id, "reason", reason)
	}
}

// findSilence counts the silent and the recently downed nodes.
func (n *Node) findSilence(tx *bolt.Tx, now time.Time) silence {
	var s silence
	tx.Bucket(bktNodes).ForEach(func(k, v []byte) error {
		node := &pb.StorageNode{}
		if decodeMsg(k, v, node) != nil {
			return nil
		}
		if inMaintenance(node, now) {
			return nil // planned downtime: neither silent nor down
		}
		switch node.State {
		case pb.NodeState_NODE_STATE_UP:
			s.active++
			if n.live.silent(node.NodeId, now, n.cfg.NodeDownAfter) {
				s.silent = append(s.silent, node.NodeId)
			}
		case pb.NodeState_NODE_STATE_DOWN:
			s.down++
			if now.Sub(time.Unix(0, node.DownSinceUnixNano)) < n.cfg.NodeDownAfter {
				s.recent++
				s.active++
			}
		}
		return nil
	})
	m := int(n.cfg.DefaultProfile.GetParityShards())
	s.threshold = max(m+1, int(math.Ceil(massDownFraction*float64(s.active))))
	s.hold = repairHold(tx)
	return s
}

// guardRepair starts the hold when too many nodes go silent at once, and
// ends it when it expired or most of the nodes are back.
func (n *Node) guardRepair(now time.Time, s *silence) {
	var cmd *pb.SetRepairHoldCommand
	switch gone := len(s.silent) + s.recent; {
	case s.hold == nil && gone > s.threshold:
		cmd = &pb.SetRepairHoldCommand{SinceUnixNano: now.UnixNano(), Nodes: uint32(gone)}
		n.log.Error("mass-down guard: too many storage nodes went silent at once; marking them down but holding their repair",
			"silent", gone, "threshold", s.threshold, "hold", n.cfg.massDownHold())
	case s.hold != nil && now.Sub(time.Unix(0, s.hold.SinceUnixNano)) >= n.cfg.massDownHold():
		cmd = &pb.SetRepairHoldCommand{}
		n.log.Warn("mass-down guard: hold expired; repairing the nodes still down", "down", s.down)
	case s.hold != nil && len(s.silent)+s.down <= s.threshold:
		cmd = &pb.SetRepairHoldCommand{}
		n.log.Warn("mass-down guard: the nodes are back; hold ended", "down", s.down)
	}
	if cmd == nil {
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ApplyTimeout)
	defer cancel()
	if _, err := n.propose(ctx, &pb.Command{Op: &pb.Command_SetRepairHold{SetRepairHold: cmd}}); err != nil {
		n.log.Warn("mass-down guard: record the hold", "err", err)
	}
}

// repairHold returns the mass-down hold recorded in tx, nil if none.
func repairHold(tx *bolt.Tx) *pb.SetRepairHoldCommand {
	h := &pb.SetRepairHoldCommand{}
	if found, err := getMsg(tx.Bucket(bktSettings), keyRepairHold, h); err != nil || !found || h.SinceUnixNano == 0 {
		return nil
	}
	return h
}

// repairHeld reports whether the mass-down hold keeps the repair of down
// nodes' shards back at now.
func (n *Node) repairHeld(tx *bolt.Tx, now time.Time) bool {
	h := repairHold(tx)
	return h != nil && now.Sub(time.Unix(0, h.SinceUnixNano)) < n.cfg.massDownHold()
}

// holdStatus is the hold as ClusterStatus shows it; nil when none holds.
func (n *Node) holdStatus(tx *bolt.Tx, now time.Time) *pb.RepairHold {
	h := repairHold(tx)
	if h == nil || !n.repairHeld(tx, now) {
		return nil
	}
	s := n.findSilence(tx, now)
	return &pb.RepairHold{SinceUnixNano: h.SinceUnixNano, UntilUnixNano: h.SinceUnixNano + int64(n.cfg.massDownHold()),
		Nodes: h.Nodes, Threshold: uint32(s.threshold)}
}
