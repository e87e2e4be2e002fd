package client

import (
	"context"
	"fmt"
	"time"

	metapb "github.com/clipstore/clipstore/proto/metapb"
)

// Admin states of a storage node (StorageNode.AdminState), beside its
// liveness (Up).
const (
	AdminActive         = "active"         // takes new shards when up
	AdminDraining       = "draining"       // its shards are leaving it; no new ones
	AdminMaintenance    = "maintenance"    // planned downtime until MaintenanceUntil
	AdminDecommissioned = "decommissioned" // final: nothing references it; it may be removed
)

var adminStates = map[metapb.AdminState]string{
	metapb.AdminState_ADMIN_STATE_ACTIVE:         AdminActive,
	metapb.AdminState_ADMIN_STATE_DRAINING:       AdminDraining,
	metapb.AdminState_ADMIN_STATE_MAINTENANCE:    AdminMaintenance,
	metapb.AdminState_ADMIN_STATE_DECOMMISSIONED: AdminDecommissioned,
}

// StartMaintenance puts a storage node in maintenance for d: while the
// window lasts it takes no new shards, is not marked down when it goes
// silent, and its shards are not repaired (reads go around it); when the
// window ends it is active again, and marked down and repaired as usual if
// it has not come back. Meta refuses (ErrPrecondition, naming the
// first clip) when a clip would be left with fewer than k+1 available
// shards, unless force. Calling it again moves the end of the window.
func (c *Client) StartMaintenance(ctx context.Context, node string, d time.Duration, force bool) (StorageNode, error) {
	if d <= 0 {
		return StorageNode{}, fmt.Errorf("%w: a maintenance window of %v", ErrInvalidArgument, d)
	}
	return c.setAdminState(ctx, &metapb.SetNodeAdminStateRequest{NodeId: node, State: metapb.AdminState_ADMIN_STATE_MAINTENANCE,
		MaintenanceMs: max(d.Milliseconds(), 1), Force: force})
}

// EndMaintenance makes a node in maintenance active again now.
func (c *Client) EndMaintenance(ctx context.Context, node string) (StorageNode, error) {
	return c.setAdminState(ctx, &metapb.SetNodeAdminStateRequest{NodeId: node, State: metapb.AdminState_ADMIN_STATE_ACTIVE})
}

// Decommission retires a storage node for good. Meta refuses a node that
// still holds shards (ErrPrecondition, with their count) unless dead:
// then a node that is down is drained by repair (its shards rebuilt from
// the others at once, state draining) and decommissioned by the leader
// when nothing references it. A decommissioned node takes no shard ever
// again; Remove forgets it.
func (c *Client) Decommission(ctx context.Context, node string, dead bool) (StorageNode, error) {
	return c.setAdminState(ctx, &metapb.SetNodeAdminStateRequest{NodeId: node,
		State: metapb.AdminState_ADMIN_STATE_DECOMMISSIONED, Dead: dead})
}

// Drain starts moving every shard off a storage node: it takes no new
// shards, and each of its shards is rebuilt on another node (after the
// repair of lost shards, within the repair limits) while it stays in place
// and readable, then deleted. StorageNode.ShardsToMove counts what is left;
// Decommission succeeds once it is 0. A node that drains already is refused.
func (c *Client) Drain(ctx context.Context, node string) (StorageNode, error) {
	return c.setAdminState(ctx, &metapb.SetNodeAdminStateRequest{NodeId: node, State: metapb.AdminState_ADMIN_STATE_DRAINING})
}

// Undrain makes a draining node active again: it takes new shards, and no
// further move is planned (those in flight land or are dropped; nothing is
// lost).
func (c *Client) Undrain(ctx context.Context, node string) (StorageNode, error) {
	return c.setAdminState(ctx, &metapb.SetNodeAdminStateRequest{NodeId: node, State: metapb.AdminState_ADMIN_STATE_ACTIVE})
}

// RemoveNode forgets a decommissioned storage node.
func (c *Client) RemoveNode(ctx context.Context, node string) error {
	req := &metapb.RemoveNodeRequest{RequestId: newRequestID(), NodeId: node}
	_, err := callMeta(ctx, c, "remove node", func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.RemoveNodeResponse, error) {
		return mc.RemoveNode(ctx, req)
	})
	return err
}

func (c *Client) setAdminState(ctx context.Context, req *metapb.SetNodeAdminStateRequest) (StorageNode, error) {
	req.RequestId = newRequestID()
	resp, err := callMeta(ctx, c, "set node admin state", func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.SetNodeAdminStateResponse, error) {
		return mc.SetNodeAdminState(ctx, req)
	})
	if err != nil {
		return StorageNode{}, err
	}
	return nodeFromProto(resp.Node), nil
}

// RebalanceStatus is a rebalance's state and the leader's latest plan.
type RebalanceStatus struct {
	Running   bool
	Threshold float64 // the band around the mean, as a used fraction
	StartedAt time.Time
	StartedBy string
	EndedAt   time.Time
	EndedWhy  string
	// The plan: the mean used fraction, the largest distance of a node's
	// from it before and after, what is planned, and the excess over the
	// mean (what a perfect plan moves at least).
	Mean, SpreadBefore, SpreadAfter float64
	PlannedMoves, PlannedBytes      uint64
	ExcessBytes                     uint64
	MovesInFlight, BytesInFlight    uint64
	MovedBytes                      uint64 // since it started, under this leader
	Nodes                           []NodeBalance
}

// NodeBalance is one node in a rebalance plan.
type NodeBalance struct {
	ID                    string
	Capacity, PlacedBytes uint64
	BytesIn, BytesOut     uint64
	UsedBefore, UsedAfter float64
}

// RebalanceAction is what Rebalance does.
type RebalanceAction int

// Rebalance actions.
const (
	RebalanceStatusOnly RebalanceAction = iota
	RebalanceStart
	RebalanceStop
	RebalanceDryRun
)

var rebalanceActions = map[RebalanceAction]metapb.RebalanceAction{
	RebalanceStatusOnly: metapb.RebalanceAction_REBALANCE_STATUS,
	RebalanceStart:      metapb.RebalanceAction_REBALANCE_START,
	RebalanceStop:       metapb.RebalanceAction_REBALANCE_STOP,
	RebalanceDryRun:     metapb.RebalanceAction_REBALANCE_DRY_RUN,
}

// Rebalance shows (RebalanceStatusOnly), starts, stops, or plans without
// moving (RebalanceDryRun) the moves that bring every storage node's used
// fraction (the shard bytes meta places on it over its capacity) within
// threshold of the cluster's mean (0: the cluster's default, 0.05). Moves
// run after repairs and drains, within the move limits.
func (c *Client) Rebalance(ctx context.Context, action RebalanceAction, threshold float64) (*RebalanceStatus, error) {
	a, ok := rebalanceActions[action]
	if !ok {
		return nil, fmt.Errorf("%w: rebalance action %d", ErrInvalidArgument, action)
	}
	req := &metapb.RebalanceRequest{RequestId: newRequestID(), Action: a, Threshold: threshold}
	resp, err := callMeta(ctx, c, "rebalance", func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.RebalanceResponse, error) {
		return mc.Rebalance(ctx, req)
	})
	if err != nil {
		return nil, err
	}
	st := resp.GetState()
	out := &RebalanceStatus{Running: st.GetRunning(), Threshold: st.GetThreshold(), StartedAt: unixNano(st.GetStartedUnixNano()),
		StartedBy: st.GetStartedBy(), EndedAt: unixNano(st.GetEndedUnixNano()), EndedWhy: st.GetEndedWhy(),
		Mean: resp.Mean, SpreadBefore: resp.SpreadBefore, SpreadAfter: resp.SpreadAfter, PlannedMoves: resp.PlannedMoves,
		PlannedBytes: resp.PlannedBytes, ExcessBytes: resp.ExcessBytes, MovesInFlight: resp.MovesInFlight,
		BytesInFlight: resp.BytesInFlight, MovedBytes: resp.MovedBytes}
	for _, n := range resp.Nodes {
		out.Nodes = append(out.Nodes, NodeBalance{ID: n.NodeId, Capacity: n.Capacity, PlacedBytes: n.PlacedBytes,
			BytesIn: n.BytesIn, BytesOut: n.BytesOut, UsedBefore: n.UsedBefore, UsedAfter: n.UsedAfter})
	}
	return out, nil
}
