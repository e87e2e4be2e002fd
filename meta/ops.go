package meta

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	pb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// Page sizes of the listing calls.
const (
	// maxUnrecoverableKeys bounds the unrecoverable clips ClusterStatus names.
	maxUnrecoverableKeys = 100
	defaultPageSize      = 1000
	maxPageSize          = 10000
	maxDeletesPerHB      = 1000
)

func pageSize(n uint32) int {
	if n == 0 {
		return defaultPageSize
	}
	return min(int(n), maxPageSize)
}

// beginPut chooses where a new clip's shards go. Nothing is persisted: the
// placement becomes state only when CommitPut names it, and CommitPut's
// Apply checks the bucket and the nodes again. So the leader answers from
// its own state without a read barrier, and a clip costs one Raft entry
// (docs/design.md, "Write path"); a deposed leader that does not know it yet can
// only hand out a placement whose commit fails or goes elsewhere.
func (n *Node) beginPut(_ context.Context, req *pb.BeginPutRequest) (*pb.BeginPutResponse, error) {
	if n.raft.State() != raft.Leader {
		return nil, ErrNotLeader
	}
	var profile *pb.ECProfile
	var cands []Candidate
	var unheard int
	addrs := map[string]string{}
	err := n.fsm.viewApplied(func(tx *bolt.Tx) error {
		bucket := &pb.Bucket{}
		found, err := getMsg(tx.Bucket(bktBuckets), []byte(req.Bucket), bucket)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%w: bucket %q", ErrNotFound, req.Bucket)
		}
		profile = bucket.DefaultProfile
		if req.Profile != nil {
			profile = req.Profile
		}
		cands, unheard = n.candidates(tx, addrs)
		return nil
	})
	if err != nil {
		return nil, err
	}
	resp, err := n.place(profile, req.SizeHint, cands, unheard, addrs)
	if err != nil {
		return nil, err
	}
	resp.UploadId, resp.ClipId = newID(), newID()
	return resp, n.writeCapability(resp)
}

// place picks the targets and spares of a new clip's or part's shards.
func (n *Node) place(profile *pb.ECProfile, sizeHint uint64, cands []Candidate, unheard int, addrs map[string]string) (*pb.BeginPutResponse, error) {
	k, m := int(profile.DataShards), int(profile.ParityShards)
	p, err := Place(cands, k, m, max(n.cfg.MinFreeBytes, sizeHint/uint64(k)), newRand())
	if err != nil {
		if n.live.age(n.cfg.now()) < 3*n.cfg.HeartbeatInterval {
			// A new leader has not heard from every node yet: retry soon.
			return nil, fmt.Errorf("%w: leader elected recently, waiting for storage node heartbeats: %v", ErrUnavailable, err)
		}
		if unheard > 0 && len(cands)+unheard >= writeQuorum(profile) {
			// Nodes meta has up, not heard by this leader lately: within
			// --node-down-after they are heard again or marked down.
			return nil, fmt.Errorf("%w: waiting for heartbeats from %d storage nodes that are up: %v", ErrUnavailable, unheard, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrFailedPrecondition, err)
	}
	resp := &pb.BeginPutResponse{Profile: profile, CommitDeadlineUnixNano: n.cfg.now().Add(n.cfg.MaxUploadDuration).UnixNano()}
	for i, id := range p.Targets {
		resp.Targets = append(resp.Targets, &pb.Target{Index: uint32(i), NodeId: id, Address: addrs[id], ShardId: newID()})
	}
	for _, id := range p.Spares {
		resp.Spares = append(resp.Spares, &pb.Spare{NodeId: id, Address: addrs[id], ShardId: newID()})
	}
	return resp, nil
}

// candidates lists the storage nodes that may take new shards: UP and
// ACTIVE in the FSM and heard from by this leader, with the free space they
// reported.
//
// unheard counts the nodes UP and active in the FSM that this leader has
// not heard from lately.
func (n *Node) candidates(tx *bolt.Tx, addrs map[string]string) (out []Candidate, unheard int) {
	tx.Bucket(bktNodes).ForEach(func(k, v []byte) error {
		node := &pb.StorageNode{}
		if decodeMsg(k, v, node) != nil || node.State != pb.NodeState_NODE_STATE_UP || !placeable(node) {
			return nil
		}
		hb, ok := n.live.get(node.NodeId)
		if !ok || n.cfg.now().Sub(hb.at) > n.cfg.NodeDownAfter {
			unheard++
			return nil
		}
		addrs[node.NodeId] = node.Address
		out = append(out, Candidate{ID: node.NodeId, Zone: node.Zone, Free: hb.free})
		return nil
	})
	return out, unheard
}

// heartbeat records a storage node's health and answers with its work at
// once, without waiting on Raft: what the node reports (deleted, corrupt
// and missing shards; that it is back up) goes to the report queue, which
// the leader proposes in the background, and a later answer acknowledges
// it (report_seq_applied).
func (n *Node) heartbeat(_ context.Context, req *pb.HeartbeatRequest) (*pb.HeartbeatResponse, error) {
	node := &pb.StorageNode{}
	var found bool
	err := n.fsm.viewApplied(func(tx *bolt.Tx) (err error) {
		found, err = getMsg(tx.Bucket(bktNodes), []byte(req.NodeId), node)
		return err
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: storage node %q is not registered; RegisterNode first", ErrFailedPrecondition, req.NodeId)
	}
	n.live.record(req.NodeId, &heartbeat{at: n.cfg.now(), capacity: req.Capacity, free: req.Free, shards: req.ShardCount,
		scrub: req.Scrub, losses: req.Losses, corrupt: req.Corrupt, disks: req.Disks})
	r := &pb.NodeReport{NodeId: req.NodeId, Seq: req.ReportSeq, Up: node.State != pb.NodeState_NODE_STATE_UP,
		CorruptShardIds: req.CorruptShardIds, MissingShardIds: req.MissingShardIds, DeletedShardIds: req.DeletedShardIds}
	items := len(r.CorruptShardIds) + len(r.MissingShardIds) + len(r.DeletedShardIds)
	if r.Up || (items > 0 && (r.Seq == 0 || r.Seq > node.ReportSeq)) {
		n.reports.add(r)
	}
	if n.repairs.fail(req.FailedRepairTasks) > 0 {
		select { // replan them now
		case n.replan <- struct{}{}:
		default:
		}
	}
	resp := &pb.HeartbeatResponse{IntervalMs: uint32(n.cfg.HeartbeatInterval / time.Millisecond),
		Repairs: n.repairs.work(req.NodeId), ReportSeqApplied: node.ReportSeq,
		MetaTimeoutMs: uint32(n.cfg.metaTimeout() / time.Millisecond), Keyring: n.keyringFor(req)}
	err = n.fsm.viewApplied(func(tx *bolt.Tx) error {
		prefix := joinKey(req.NodeId, nil)
		c := tx.Bucket(bktDeletes).Cursor()
		now := n.cfg.now()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(resp.Deletes) < maxDeletesPerHB; k, v = c.Next() {
			if deleteDue(v, now) {
				resp.Deletes = append(resp.Deletes, &pb.DeleteShardWork{ShardId: bytes.Clone(k[len(prefix):])})
			}
		}
		return nil
	})
	return resp, err
}

// updateShard commits a shard move on the leader. A repair that lands is
// counted, and the leader plans the next ones at once: the answer carries
// the node's work, so that the slot it freed is filled now rather than at
// its next heartbeat.
func (n *Node) updateShard(ctx context.Context, req *pb.UpdateShardRequest) (*pb.UpdateShardResponse, error) {
	req.OldDeleteAfterUnixNano = 0
	if n.cfg.MoveDeleteDelay > 0 && n.isMove(req) {
		req.OldDeleteAfterUnixNano = n.cfg.now().Add(n.cfg.MoveDeleteDelay).UnixNano()
	}
	if _, err := n.propose(ctx, &pb.Command{RequestId: req.RequestId, Op: &pb.Command_UpdateShard{UpdateShard: req}}); err != nil {
		return nil, err
	}
	if !n.updateLanded(req) {
		select { // a former leader's task: plan in the leader loop
		case n.replan <- struct{}{}:
		default:
		}
		return &pb.UpdateShardResponse{}, nil
	}
	n.planNext(n.cfg.now())
	return &pb.UpdateShardResponse{Repairs: n.repairs.work(req.NewShard.GetNodeId())}, nil
}

// getClip answers a clip's record: with every part, or, when the request
// has a PartSelector, with the parts it chooses, a page at most (the nodes
// listed are those of the parts answered).
func (n *Node) getClip(_ context.Context, req *pb.GetClipRequest) (*pb.GetClipResponse, error) {
	resp := &pb.GetClipResponse{}
	err := n.fsm.viewApplied(func(tx *bolt.Tx) error {
		id := tx.Bucket(bktKeys).Get(keyOf(req.Bucket, req.Key))
		rec := &pb.ClipRecord{}
		if id != nil {
			if _, err := getMsg(tx.Bucket(bktClips), id, rec); err != nil {
				return err
			}
		}
		if req.Generation != 0 && (id == nil || rec.Generation != req.Generation) {
			// An older generation: there while a dataset holds it.
			old, err := pinnedGeneration(tx, req.Bucket, req.Key, req.Generation)
			if err != nil {
				return err
			}
			if old == nil {
				return fmt.Errorf("%w: generation %d of %s/%s (no dataset keeps it)", ErrNotFound, req.Generation, req.Bucket, req.Key)
			}
			id, rec = old.ClipId, old
		}
		if id == nil {
			if tx.Bucket(bktBuckets).Get([]byte(req.Bucket)) == nil {
				return fmt.Errorf("%w: bucket %q", ErrNotFound, req.Bucket)
			}
			return fmt.Errorf("%w: clip %s/%s", ErrNotFound, req.Bucket, req.Key)
		}
		resp.Clip = rec
		if req.Parts != nil {
			selectParts(resp, req.Parts, n.cfg.clipPageParts())
		}
		seen := map[string]bool{}
		for _, part := range rec.Parts {
			for _, s := range part.Shards {
				if s.NodeId == "" || seen[s.NodeId] {
					continue
				}
				seen[s.NodeId] = true
				node := &pb.StorageNode{}
				if found, err := getMsg(tx.Bucket(bktNodes), []byte(s.NodeId), node); err != nil || !found {
					continue
				}
				resp.Nodes = append(resp.Nodes, &pb.NodeAddress{NodeId: node.NodeId, Address: node.Address})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	resp.Capability, err = n.readCapability(resp.Clip.ClipId)
	return resp, err
}

func (n *Node) listClips(_ context.Context, req *pb.ListClipsRequest) (*pb.ListClipsResponse, error) {
	resp := &pb.ListClipsResponse{}
	limit := pageSize(req.PageSize)
	err := n.fsm.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bktBuckets).Get([]byte(req.Bucket)) == nil {
			return fmt.Errorf("%w: bucket %q", ErrNotFound, req.Bucket)
		}
		base := keyOf(req.Bucket, "")
		start := keyOf(req.Bucket, req.Prefix)
		if req.StartAfter != "" && req.StartAfter >= req.Prefix {
			start = append(keyOf(req.Bucket, req.StartAfter), 0)
		}
		clips := tx.Bucket(bktClips)
		c := tx.Bucket(bktKeys).Cursor()
		for k, id := c.Seek(start); k != nil && bytes.HasPrefix(k, base); k, id = c.Next() {
			key := string(k[len(base):])
			if !strings.HasPrefix(key, req.Prefix) {
				break
			}
			if len(resp.Clips) == limit {
				resp.NextStartAfter = resp.Clips[limit-1].Key
				break
			}
			rec := &pb.ClipRecord{}
			if _, err := getMsg(clips, id, rec); err != nil {
				return err
			}
			resp.Clips = append(resp.Clips, clipEntry(rec))
		}
		return nil
	})
	return resp, err
}

func (n *Node) listBuckets(_ context.Context, _ *pb.ListBucketsRequest) (*pb.ListBucketsResponse, error) {
	resp := &pb.ListBucketsResponse{}
	err := n.fsm.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bktBuckets).ForEach(func(k, v []byte) error {
			b := &pb.Bucket{}
			if err := decodeMsg(k, v, b); err != nil {
				return err
			}
			resp.Buckets = append(resp.Buckets, b)
			return nil
		})
	})
	return resp, err
}

func (n *Node) listNodes(_ context.Context, _ *pb.ListNodesRequest) (*pb.ListNodesResponse, error) {
	resp := &pb.ListNodesResponse{}
	err := n.fsm.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bktNodes).ForEach(func(k, v []byte) error {
			node := &pb.StorageNode{}
			if err := decodeMsg(k, v, node); err != nil {
				return err
			}
			if hb, ok := n.live.get(node.NodeId); ok && n.IsLeader() {
				node.Capacity, node.Free, node.ShardCount = hb.capacity, hb.free, hb.shards
				node.LastHeartbeatUnixNano, node.Losses, node.Corrupt = hb.at.UnixNano(), hb.losses, hb.corrupt
				if len(hb.disks) > 0 {
					node.Disks = hb.disks
				}
			}
			if node.AdminState == pb.AdminState_ADMIN_STATE_DRAINING {
				a := &applier{tx: tx}
				node.ShardsToMove = uint64(a.placedShards(node.NodeId))
				var err error
				if node.BytesToMove, err = a.placedBytes(node.NodeId); err != nil {
					return err
				}
			}
			resp.Nodes = append(resp.Nodes, node)
			return nil
		})
	})
	if err == nil && n.IsLeader() {
		for _, node := range resp.Nodes {
			if node.AdminState == pb.AdminState_ADMIN_STATE_DRAINING {
				node.DrainBlocked = n.repairs.drainBlocked(node.NodeId)
			}
		}
	}
	return resp, err
}

func (n *Node) listNodeShards(_ context.Context, req *pb.ListNodeShardsRequest) (*pb.ListNodeShardsResponse, error) {
	resp := &pb.ListNodeShardsResponse{}
	limit := pageSize(req.PageSize)
	err := n.fsm.view(func(tx *bolt.Tx) error {
		prefix := joinKey(req.NodeId, nil)
		start := prefix
		if len(req.StartAfter) > 0 {
			start = append(joinKey(req.NodeId, req.StartAfter), 0)
		}
		c := tx.Bucket(bktNodeShards).Cursor()
		for k, v := c.Seek(start); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(resp.Shards) == limit {
				resp.NextStartAfter = resp.Shards[limit-1].ShardId
				break
			}
			rec := &pb.NodeShardRecord{}
			if err := decodeMsg(k, v, rec); err != nil {
				return err
			}
			resp.Shards = append(resp.Shards, &pb.NodeShard{ShardId: bytes.Clone(k[len(prefix):]),
				ClipId: rec.ClipId, Part: rec.Part, Index: rec.Index})
		}
		return nil
	})
	return resp, err
}

func (n *Node) readRepairLimits(_ context.Context, req *pb.RepairLimitsRequest) (*pb.RepairLimitsResponse, error) {
	resp := &pb.RepairLimitsResponse{}
	err := n.fsm.view(func(tx *bolt.Tx) error {
		resp.Limits = n.repairLimits(tx)
		if req.GetMoves() {
			resp.Limits = n.moveLimits(tx)
		}
		return nil
	})
	return resp, err
}

// setRepairLimits merges the request into the limits in force and
// replicates the result, so that every member applies the same values.
func (n *Node) setRepairLimits(ctx context.Context, req *pb.RepairLimitsRequest) (*pb.RepairLimitsResponse, error) {
	if err := n.linearizable(ctx); err != nil {
		return nil, err
	}
	cur, err := n.readRepairLimits(ctx, req)
	if err != nil {
		return nil, err
	}
	conc, rate := cur.Limits.Concurrency, cur.Limits.BytesPerSec
	if req.Concurrency != nil {
		conc = *req.Concurrency
	}
	if req.BytesPerSec != nil {
		rate = *req.BytesPerSec
	}
	resp, err := n.propose(ctx, &pb.Command{RequestId: req.RequestId, Op: &pb.Command_SetRepairLimits{
		SetRepairLimits: &pb.RepairLimitsRequest{Concurrency: &conc, BytesPerSec: &rate, Moves: req.Moves}}})
	if err != nil {
		return nil, err
	}
	what := "repair"
	if req.Moves {
		what = "move"
	}
	n.log.Info(what+" limits changed", "concurrency", conc, "bytes_per_sec", rate, "by", callerOf(ctx))
	return resp.(*pb.RepairLimitsResponse), nil
}

// checkShards returns the shards of the request that the node may delete:
// no record places them on it, and their commit deadline is past by the GC
// grace, so that no CommitPut or repair update can still name them.
func (n *Node) checkShards(_ context.Context, req *pb.CheckShardsRequest) (*pb.CheckShardsResponse, error) {
	resp := &pb.CheckShardsResponse{}
	horizon := n.cfg.now().Add(-n.cfg.GCGrace).UnixNano()
	err := n.fsm.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktNodeShards)
		for _, s := range req.Shards {
			if s.CommitDeadlineUnixNano < horizon && b.Get(joinKey(req.NodeId, s.ShardId)) == nil {
				resp.Collectable = append(resp.Collectable, s.ShardId)
			}
		}
		return nil
	})
	return resp, err
}

func (n *Node) clusterStatus(_ context.Context, _ *pb.ClusterStatusRequest) (*pb.ClusterStatusResponse, error) {
	members, err := n.members()
	if err != nil {
		return nil, err
	}
	now := n.cfg.now()
	resp := &pb.ClusterStatusResponse{LeaderId: n.Leader(), Members: members,
		Term: n.raft.CurrentTerm(), CommitIndex: n.raft.CommitIndex(), AppliedIndex: n.fsm.appliedIndex(),
		RepairsInFlight: uint64(n.repairs.count())}
	err = n.fsm.view(func(tx *bolt.Tx) error {
		resp.RepairLimits, resp.MoveLimits = n.repairLimits(tx), n.moveLimits(tx)
		resp.RepairHold = n.holdStatus(tx, now)
		if err := n.lostShards(tx, now, resp); err != nil {
			return err
		}
		var err error
		if resp.MoveQueueBytes, err = n.moveQueue(tx); err != nil {
			return err
		}
		resp.Rebalancing = rebalanceState(tx).Running
		resp.Buckets = uint64(tx.Bucket(bktBuckets).Stats().KeyN)
		resp.DatasetOnlyClips, resp.DatasetOnlyBytes = datasetOnly(tx)
		resp.Clips = uint64(tx.Bucket(bktClips).Stats().KeyN) - resp.DatasetOnlyClips
		resp.Datasets = uint64(tx.Bucket(bktDatasets).Stats().KeyN)
		resp.PendingDeletes = uint64(tx.Bucket(bktDeletes).Stats().KeyN)
		return tx.Bucket(bktNodes).ForEach(func(k, v []byte) error {
			node := &pb.StorageNode{}
			if err := decodeMsg(k, v, node); err != nil {
				return err
			}
			resp.StorageNodes++
			if node.State == pb.NodeState_NODE_STATE_UP {
				resp.StorageNodesUp++
			}
			return nil
		})
	})
	if err != nil || !n.IsLeader() {
		return resp, err // the leader's memory is not here
	}
	if resp.Rebalancing {
		resp.MoveQueueBytes += n.rebalanceLeft()
	}
	n.progress.figures(now).fill(resp)
	moves := n.moves.figures(now)
	resp.MovedShards, resp.MovedBytes, resp.MoveBytesPerSec = moves.shards, moves.bytes, moves.bytesPerSec
	resp.MoveEtaSeconds = moves.eta(resp.MoveQueueBytes)
	resp.ShardLosses, resp.ShardCorrupt = n.live.losses()
	resp.NodeScrubs = n.live.scrubs()
	for _, ns := range resp.NodeScrubs {
		if ns.Scrub.Running {
			resp.ScrubBytesDone += ns.Scrub.BytesDone
			resp.ScrubBytesTotal += ns.Scrub.BytesTotal
		}
		resp.ScrubCorruptFound += ns.Scrub.CorruptFound
	}
	return resp, nil
}

// members lists the Raft configuration with each member's gRPC address.
func (n *Node) members() ([]*pb.Member, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	_, leader := n.raft.LeaderWithID()
	var out []*pb.Member
	err := n.fsm.view(func(tx *bolt.Tx) error {
		for _, s := range f.Configuration().Servers {
			m := &pb.Member{}
			if _, err := getMsg(tx.Bucket(bktMembers), []byte(s.ID), m); err != nil {
				return err
			}
			out = append(out, &pb.Member{Id: string(s.ID), RaftAddress: string(s.Address), GrpcAddress: m.GrpcAddress,
				Voter: s.Suffrage == raft.Voter, Leader: s.ID == leader})
		}
		return nil
	})
	return out, err
}

// join adds a member: its addresses go into the FSM first (so that it can
// be forwarded to once it leads), then into the Raft configuration.
func (n *Node) join(ctx context.Context, req *pb.JoinMemberRequest) (*pb.JoinMemberResponse, error) {
	if _, err := n.propose(ctx, &pb.Command{Op: &pb.Command_SetMember{SetMember: &pb.SetMemberCommand{
		Id: req.Id, GrpcAddress: req.GrpcAddress, RaftAddress: req.RaftAddress}}}); err != nil {
		return nil, err
	}
	id, addr := raft.ServerID(req.Id), raft.ServerAddress(req.RaftAddress)
	var f raft.IndexFuture
	if req.Nonvoter {
		f = n.raft.AddNonvoter(id, addr, 0, n.cfg.ApplyTimeout)
	} else {
		f = n.raft.AddVoter(id, addr, 0, n.cfg.ApplyTimeout)
	}
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("%w: add %s to the raft configuration: %v", ErrOutcomeUnknown, req.Id, err)
	}
	n.log.Info("member joined", "id", req.Id, "raft", req.RaftAddress, "grpc", req.GrpcAddress, "voter", !req.Nonvoter)
	members, err := n.members()
	return &pb.JoinMemberResponse{Members: members}, err
}

func (n *Node) removeMember(ctx context.Context, req *pb.RemoveMemberRequest) (*pb.RemoveMemberResponse, error) {
	if err := n.raft.RemoveServer(raft.ServerID(req.Id), 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return nil, fmt.Errorf("%w: remove %s from the raft configuration: %v", ErrOutcomeUnknown, req.Id, err)
	}
	if req.Id != n.cfg.ID {
		if _, err := n.propose(ctx, &pb.Command{Op: &pb.Command_RemoveMember{RemoveMember: &pb.RemoveMemberCommand{Id: req.Id}}}); err != nil {
			return nil, err
		}
	}
	n.log.Info("member removed", "id", req.Id)
	members, err := n.members()
	return &pb.RemoveMemberResponse{Members: members}, err
}

// lostShards counts the degraded clips (a shard missing, corrupt or on a
// node that is down) by their number of such shards, and the repair queue:
// the entries the planner rebuilds (missing, corrupt, or on a node down for
// longer than RepairAfter) with their bytes, but for parts that lost more
// than their parity: those clips are counted unrecoverable instead. Like planning, it reads only
// the clips at risk (the degraded index and the shards of down nodes).
func (n *Node) lostShards(tx *bolt.Tx, now time.Time, resp *pb.ClusterStatusResponse) error {
	nodes := map[string]*pb.StorageNode{}
	if err := loadNodes(tx, nodes); err != nil {
		return err
	}
	down := func(node *pb.StorageNode) bool { return node.State == pb.NodeState_NODE_STATE_DOWN }
	queued := lostOn(nodes, n.goneAt(tx, now)) // gone implies down: every queued shard is lost
	return eachAtRiskClip(tx, nodes, down, func(rec *pb.ClipRecord, lost func(*pb.Shard) bool) error {
		count, unrecoverable := 0, false
		for _, part := range rec.Parts {
			n, _ := partLoss(part, lost)
			count += n
			q, gone := partLoss(part, queued)
			if gone {
				unrecoverable = true
				continue
			}
			resp.RepairQueueShards += uint64(q)
			resp.RepairQueueBytes += uint64(q) * expectedShardLength(part.Length, part.Profile)
		}
		if unrecoverable {
			resp.UnrecoverableClips++
			if len(resp.UnrecoverableClipKeys) < maxUnrecoverableKeys {
				resp.UnrecoverableClipKeys = append(resp.UnrecoverableClipKeys, rec.Bucket+"/"+rec.Key)
			}
		}
		if count == 0 {
			return nil
		}
		for len(resp.ClipsByLostShards) < count {
			resp.ClipsByLostShards = append(resp.ClipsByLostShards, 0)
		}
		resp.ClipsByLostShards[count-1]++
		resp.DegradedClips++
		return nil
	})
}

// moveQueue returns the shard bytes on draining nodes still to move (but a
// dead node's, which repair rebuilds).
func (n *Node) moveQueue(tx *bolt.Tx) (uint64, error) {
	nodes := map[string]*pb.StorageNode{}
	if err := loadNodes(tx, nodes); err != nil {
		return 0, err
	}
	var sum uint64
	a := &applier{tx: tx}
	for id, node := range nodes {
		if node.AdminState != pb.AdminState_ADMIN_STATE_DRAINING || node.DrainDead {
			continue
		}
		b, err := a.placedBytes(id)
		if err != nil {
			return 0, err
		}
		sum += b
	}
	return sum, nil
}

// rebalanceLeft is what the rebalance's plan has not moved yet: its queue
// and its moves in flight. Not to be called inside an FSM view (it takes
// the scheduler's lock, which is held around views).
func (n *Node) rebalanceLeft() uint64 {
	var sum uint64
	r := n.rebalancer
	r.mu.Lock()
	for _, m := range r.queue {
		sum += m.Length
	}
	r.mu.Unlock()
	n.repairs.mu.Lock()
	for _, t := range n.repairs.inflight {
		if t.rebalance {
			sum += expectedShardLength(t.work.PartLength, t.work.Profile)
		}
	}
	n.repairs.mu.Unlock()
	return sum
}

// repairQueue counts the repair queue, as ClusterStatus does.
func (n *Node) repairQueue(now time.Time) (shards, bytes uint64, err error) {
	resp := &pb.ClusterStatusResponse{}
	err = n.fsm.view(func(tx *bolt.Tx) error { return n.lostShards(tx, now, resp) })
	return resp.RepairQueueShards, resp.RepairQueueBytes, err
}
