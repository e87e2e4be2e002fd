package meta

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

	pb "github.com/clipstore/clipstore/proto/metapb"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"
)

// A storage node's admin state sits beside its liveness (docs/design.md,
// "Node lifecycle"): ACTIVE, DRAINING, MAINTENANCE until a stored end time,
// DECOMMISSIONED. Every transition is a Raft command checked in Apply,
// against the state of the same transaction.

// maxMaintenance bounds a maintenance window.
const maxMaintenance = 30 * 24 * time.Hour

// adminStateName is the lower-case name of an admin state, for messages.
func adminStateName(s pb.AdminState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "ADMIN_STATE_"))
}

// placeable reports whether a node may receive new shards: ACTIVE (and, for
// the caller to check, up).
func placeable(node *pb.StorageNode) bool { return node.AdminState == pb.AdminState_ADMIN_STATE_ACTIVE }

// inMaintenance reports whether a node's maintenance window is open at now.
func inMaintenance(node *pb.StorageNode, now time.Time) bool {
	return node.AdminState == pb.AdminState_ADMIN_STATE_MAINTENANCE && now.UnixNano() < node.MaintenanceUntilUnixNano
}

func validateAdminRequest(req *pb.SetNodeAdminStateRequest) error {
	if err := validateNodeID(req.NodeId); err != nil {
		return err
	}
	switch req.State {
	case pb.AdminState_ADMIN_STATE_ACTIVE, pb.AdminState_ADMIN_STATE_DECOMMISSIONED:
	case pb.AdminState_ADMIN_STATE_MAINTENANCE:
		if d := time.Duration(req.MaintenanceMs) * time.Millisecond; d <= 0 || d > maxMaintenance {
			return fmt.Errorf("%w: a maintenance window of %v is outside (0, %v]", ErrInvalidArgument, d, maxMaintenance)
		}
	case pb.AdminState_ADMIN_STATE_DRAINING:
	default:
		return fmt.Errorf("%w: unknown admin state %v", ErrInvalidArgument, req.State)
	}
	return nil
}

// setNodeAdminState applies an admin's (or the leader's) transition.
func (a *applier) setNodeAdminState(c *pb.SetNodeAdminStateRequest) (proto.Message, error) {
	if err := validateAdminRequest(c); err != nil {
		return nil, err
	}
	b := a.tx.Bucket(bktNodes)
	node, err := a.storageNode(c.NodeId)
	if err != nil {
		return nil, err
	}
	cur := node.AdminState
	if cur == pb.AdminState_ADMIN_STATE_DECOMMISSIONED {
		if c.State == cur {
			return &pb.SetNodeAdminStateResponse{Node: node}, nil
		}
		return nil, fmt.Errorf("%w: storage node %q is decommissioned: that is final (remove forgets it)", ErrFailedPrecondition, c.NodeId)
	}
	switch c.State {
	case pb.AdminState_ADMIN_STATE_ACTIVE:
		node.MaintenanceUntilUnixNano, node.DrainDead = 0, false
	case pb.AdminState_ADMIN_STATE_DRAINING:
		if cur == pb.AdminState_ADMIN_STATE_DRAINING {
			return nil, fmt.Errorf("%w: storage node %q is draining already", ErrFailedPrecondition, c.NodeId)
		}
		node.MaintenanceUntilUnixNano = 0
	case pb.AdminState_ADMIN_STATE_MAINTENANCE:
		if cur == pb.AdminState_ADMIN_STATE_DRAINING {
			return nil, fmt.Errorf("%w: storage node %q is draining; undrain it before maintenance", ErrFailedPrecondition, c.NodeId)
		}
		if !c.Force {
			if err := a.okToStop(c.NodeId); err != nil {
				return nil, err
			}
		}
		node.MaintenanceUntilUnixNano = a.now + c.MaintenanceMs*int64(time.Millisecond)
	case pb.AdminState_ADMIN_STATE_DECOMMISSIONED:
		held := a.placedShards(c.NodeId)
		switch {
		case held == 0:
			node.MaintenanceUntilUnixNano, node.DrainDead = 0, false
		case !c.Dead:
			return nil, fmt.Errorf("%w: storage node %q still holds %d shards; drain it first, or decommission --dead if it is down for good",
				ErrFailedPrecondition, c.NodeId, held)
		case node.State != pb.NodeState_NODE_STATE_DOWN:
			return nil, fmt.Errorf("%w: storage node %q is up and holds %d shards; --dead is for a node down for good",
				ErrFailedPrecondition, c.NodeId, held)
		default:
			// Drained by repair: its shards count as lost at once, and the
			// leader decommissions it when the last one is rebuilt.
			node.AdminState, node.DrainDead, node.MaintenanceUntilUnixNano = pb.AdminState_ADMIN_STATE_DRAINING, true, 0
			return &pb.SetNodeAdminStateResponse{Node: node}, putMsg(b, []byte(c.NodeId), node)
		}
	}
	node.AdminState = c.State
	return &pb.SetNodeAdminStateResponse{Node: node}, putMsg(b, []byte(c.NodeId), node)
}

// placedShards counts the shard entries the node -> shards index holds for
// node.
func (a *applier) placedShards(node string) int {
	prefix := joinKey(node, nil)
	n := 0
	c := a.tx.Bucket(bktNodeShards).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		n++
	}
	return n
}

// placedBytes sums the lengths of the shard entries the node -> shards
// index holds for node (reading each entry's record).
func (a *applier) placedBytes(node string) (uint64, error) {
	prefix := joinKey(node, nil)
	var sum uint64
	c := a.tx.Bucket(bktNodeShards).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		ns := &pb.NodeShardRecord{}
		if err := decodeMsg(k, v, ns); err != nil {
			return 0, err
		}
		rec, err := a.clipByID(ns.ClipId)
		if err != nil {
			return 0, err
		}
		if rec != nil && int(ns.Part) < len(rec.Parts) && int(ns.Index) < len(rec.Parts[ns.Part].Shards) {
			part := rec.Parts[ns.Part]
			sum += cmp.Or(part.Shards[ns.Index].Length, expectedShardLength(part.Length, part.Profile))
		}
	}
	return sum, nil
}

// okToStop refuses maintenance of a node when a clip with a shard on it
// would be left with fewer than k+1 available shards (OK, on an up node
// that is not in maintenance), as Ceph's ok-to-stop does: one more failure
// during the window must not make the clip unreadable.
func (a *applier) okToStop(nodeID string) error {
	nodes := map[string]*pb.StorageNode{}
	if err := loadNodes(a.tx, nodes); err != nil {
		return err
	}
	now := time.Unix(0, a.now)
	available := func(s *pb.Shard) bool {
		n := nodes[s.NodeId]
		return s.State == pb.ShardState_SHARD_STATE_OK && s.NodeId != nodeID && n != nil &&
			n.State == pb.NodeState_NODE_STATE_UP && !inMaintenance(n, now)
	}
	prefix := joinKey(nodeID, nil)
	short, first := 0, ""
	c := a.tx.Bucket(bktNodeShards).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		ns := &pb.NodeShardRecord{}
		if err := decodeMsg(k, v, ns); err != nil {
			return err
		}
		rec, err := a.clipByID(ns.ClipId)
		if err != nil {
			return err
		}
		if rec == nil || int(ns.Part) >= len(rec.Parts) {
			continue
		}
		part := rec.Parts[ns.Part]
		left := 0
		for _, s := range part.Shards {
			if available(s) {
				left++
			}
		}
		if need := int(part.Profile.GetDataShards()) + 1; left < need {
			if short == 0 {
				first = fmt.Sprintf("%s/%s (%d available, k+1 = %d)", rec.Bucket, rec.Key, left, need)
			}
			short++
		}
	}
	if short > 0 {
		return fmt.Errorf("%w: maintenance of storage node %q would leave %d clips with fewer than k+1 available shards, first %s; --force to go ahead",
			ErrFailedPrecondition, nodeID, short, first)
	}
	return nil
}

// removeNode forgets a decommissioned node, and its delete queue.
func (a *applier) removeNode(c *pb.RemoveNodeRequest) (proto.Message, error) {
	if err := validateNodeID(c.NodeId); err != nil {
		return nil, err
	}
	b := a.tx.Bucket(bktNodes)
	node, err := a.storageNode(c.NodeId)
	if err != nil {
		return nil, err
	}
	if node.AdminState != pb.AdminState_ADMIN_STATE_DECOMMISSIONED {
		return nil, fmt.Errorf("%w: storage node %q is %s; decommission it before removing it",
			ErrFailedPrecondition, c.NodeId, adminStateName(node.AdminState))
	}
	prefix := joinKey(c.NodeId, nil)
	del := a.tx.Bucket(bktDeletes)
	var keys [][]byte
	cur := del.Cursor()
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := del.Delete(k); err != nil {
			return nil, err
		}
	}
	return &pb.RemoveNodeResponse{}, b.Delete([]byte(c.NodeId))
}

// checkShardNodes refuses a commit whose shards name an unknown node, and
// turns those that name a decommissioned node into MISSING ones with no
// node (repair rebuilds them elsewhere), reporting whether it did: an
// upload placed before a decommission does not hold it up.
func (a *applier) checkShardNodes(shards []*pb.Shard) (dropped bool, err error) {
	for _, s := range shards {
		if s.NodeId == "" {
			continue
		}
		node := &pb.StorageNode{}
		found, err := getMsg(a.tx.Bucket(bktNodes), []byte(s.NodeId), node)
		switch {
		case err != nil:
			return false, err
		case !found:
			return false, fmt.Errorf("%w: shard %d names unknown storage node %q", ErrInvalidArgument, s.Index, s.NodeId)
		case node.AdminState == pb.AdminState_ADMIN_STATE_DECOMMISSIONED:
			s.NodeId, s.State, s.Length, s.Checksum = "", pb.ShardState_SHARD_STATE_MISSING, 0, 0
			dropped = true
		}
	}
	return dropped, nil
}

// setNodeAdminState is the SetNodeAdminState call on the leader.
func (n *Node) setNodeAdminState(ctx context.Context, req *pb.SetNodeAdminStateRequest) (*pb.SetNodeAdminStateResponse, error) {
	resp, err := n.propose(ctx, &pb.Command{RequestId: req.RequestId, Op: &pb.Command_SetNodeAdminState{SetNodeAdminState: req}})
	if err != nil {
		return nil, err
	}
	out := resp.(*pb.SetNodeAdminStateResponse)
	if node := out.GetNode(); node.GetAdminState() == pb.AdminState_ADMIN_STATE_DRAINING {
		n.fsm.view(func(tx *bolt.Tx) error {
			node.ShardsToMove = uint64((&applier{tx: tx}).placedShards(node.NodeId))
			return nil
		})
	}
	n.log.Warn("storage node admin state changed", "node", req.NodeId, "state", adminStateName(out.GetNode().GetAdminState()),
		"requested", adminStateName(req.State), "dead", req.Dead, "force", req.Force, "by", callerOf(ctx))
	return out, nil
}

// removeNode is the RemoveNode call on the leader.
func (n *Node) removeNode(ctx context.Context, req *pb.RemoveNodeRequest) (*pb.RemoveNodeResponse, error) {
	resp, err := n.propose(ctx, &pb.Command{RequestId: req.RequestId, Op: &pb.Command_RemoveNode{RemoveNode: req}})
	if err != nil {
		return nil, err
	}
	n.log.Warn("storage node removed", "node", req.NodeId, "by", callerOf(ctx))
	return resp.(*pb.RemoveNodeResponse), nil
}

// endAdminStates runs on the leader each tick: it ends maintenance windows
// that are over (the node is then marked down at once if it is still
// silent) and decommissions a node drained by repair once nothing
// references it.
func (n *Node) endAdminStates(now time.Time) {
	type change struct {
		id     string
		state  pb.AdminState
		reason string
	}
	var changes []change
	n.fsm.view(func(tx *bolt.Tx) error {
		a := &applier{tx: tx}
		return tx.Bucket(bktNodes).ForEach(func(k, v []byte) error {
			node := &pb.StorageNode{}
			if decodeMsg(k, v, node) != nil {
				return nil
			}
			switch {
			case node.AdminState == pb.AdminState_ADMIN_STATE_MAINTENANCE && !inMaintenance(node, now):
				changes = append(changes, change{node.NodeId, pb.AdminState_ADMIN_STATE_ACTIVE, "maintenance window over"})
			case node.AdminState == pb.AdminState_ADMIN_STATE_DRAINING && node.DrainDead:
				if a.placedShards(node.NodeId) == 0 {
					changes = append(changes, change{node.NodeId, pb.AdminState_ADMIN_STATE_DECOMMISSIONED, "every shard rebuilt elsewhere"})
				}
			}
			return nil
		})
	})
	for _, c := range changes {
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ApplyTimeout)
		_, err := n.propose(ctx, &pb.Command{Op: &pb.Command_SetNodeAdminState{SetNodeAdminState: &pb.SetNodeAdminStateRequest{
			NodeId: c.id, State: c.state}}})
		cancel()
		if err != nil {
			n.log.Warn("change storage node admin state", "node", c.id, "state", adminStateName(c.state), "err", err)
			continue
		}
		n.log.Warn("storage node admin state changed", "node", c.id, "state", adminStateName(c.state), "reason", c.reason, "by", "leader")
	}
}

// callerOf names who made a call, for the log: the peer's address (a
// forwarding member's, when a follower forwarded it).
func callerOf(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return "local"
}
