package meta

import (
	"bytes"
	"fmt"

	pb "github.com/clipstore/clipstore/proto/metapb"
	"google.golang.org/protobuf/proto"
)

func (a *applier) createBucket(c *pb.CreateBucketRequest) (proto.Message, error) {
	if err := ValidateBucketName(c.Name); err != nil {
		return nil, err
	}
	if c.DefaultProfile == nil {
		return nil, fmt.Errorf("%w: bucket %q without a default EC profile", ErrInvalidArgument, c.Name)
	}
	if err := ValidateProfile(c.DefaultProfile); err != nil {
		return nil, err
	}
	if err := validateSettings(c.Settings); err != nil {
		return nil, err
	}
	b := a.tx.Bucket(bktBuckets)
	if b.Get([]byte(c.Name)) != nil {
		return nil, fmt.Errorf("%w: bucket %q", ErrExists, c.Name)
	}
	bucket := &pb.Bucket{Name: c.Name, DefaultProfile: c.DefaultProfile, CreatedUnixNano: a.now, Settings: c.Settings}
	return &pb.CreateBucketResponse{Bucket: bucket}, putMsg(b, []byte(c.Name), bucket)
}

func (a *applier) deleteBucket(c *pb.DeleteBucketRequest) (proto.Message, error) {
	if err := ValidateBucketName(c.Name); err != nil {
		return nil, err
	}
	b := a.tx.Bucket(bktBuckets)
	if b.Get([]byte(c.Name)) == nil {
		return nil, fmt.Errorf("%w: bucket %q", ErrNotFound, c.Name)
	}
	if bucketPinned(a.tx, c.Name) {
		return nil, fmt.Errorf("%w: datasets hold records of bucket %q; delete them (clipstore dataset rm) first", ErrFailedPrecondition, c.Name)
	}
	prefix := joinKey(c.Name, nil)
	if k, _ := a.tx.Bucket(bktKeys).Cursor().Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) {
		return nil, fmt.Errorf("%w: bucket %q is not empty", ErrFailedPrecondition, c.Name)
	}
	if a.hasUploads(c.Name) {
		return nil, fmt.Errorf("%w: bucket %q has multipart uploads in progress; complete or abort them", ErrFailedPrecondition, c.Name)
	}
	return &pb.DeleteBucketResponse{}, b.Delete([]byte(c.Name))
}

func (a *applier) registerNode(c *pb.RegisterNodeRequest) (proto.Message, error) {
	if err := validateNodeID(c.NodeId); err != nil {
		return nil, err
	}
	if c.Address == "" {
		return nil, fmt.Errorf("%w: storage node %q registers without an address", ErrInvalidArgument, c.NodeId)
	}
	b := a.tx.Bucket(bktNodes)
	node := &pb.StorageNode{}
	found, err := getMsg(b, []byte(c.NodeId), node)
	if err != nil {
		return nil, err
	}
	if !found {
		if err := a.tx.Bucket(bktSettings).Put(keyRebalanceWanted, []byte("storage node "+c.NodeId+" joined")); err != nil {
			return nil, err
		}
	}
	node.NodeId, node.Address, node.Zone, node.Disks = c.NodeId, c.Address, c.Zone, c.Disks
	node.State, node.DownSinceUnixNano = pb.NodeState_NODE_STATE_UP, 0
	return &pb.RegisterNodeResponse{Node: node}, putMsg(b, []byte(c.NodeId), node)
}

// storageNode returns a registered node's record, or ErrNotFound.
func (a *applier) storageNode(id string) (*pb.StorageNode, error) {
	node := &pb.StorageNode{}
	found, err := getMsg(a.tx.Bucket(bktNodes), []byte(id), node)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: storage node %q is not registered", ErrNotFound, id)
	}
	return node, nil
}

func (a *applier) setNodeState(c *pb.SetNodeStateCommand) (proto.Message, error) {
	b := a.tx.Bucket(bktNodes)
	node, err := a.storageNode(c.NodeId)
	if err != nil {
		return nil, err
	}
	node.State = c.State
	node.DownSinceUnixNano, node.DownReason = 0, ""
	if c.State == pb.NodeState_NODE_STATE_DOWN {
		node.DownSinceUnixNano, node.DownReason = c.SinceUnixNano, c.Reason
	}
	return nil, putMsg(b, []byte(c.NodeId), node)
}

// nodeReports applies what storage nodes reported in heartbeats. A report
// of an unknown node, or one applied already (its number is not above the
// node's last), changes nothing; it is no rejection, so that one node's
// stale report never fails the others of the entry.
func (a *applier) nodeReports(c *pb.NodeReportsCommand) (proto.Message, error) {
	for _, r := range c.Reports {
		if err := a.nodeReport(r); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

func (a *applier) nodeReport(r *pb.NodeReport) error {
	b := a.tx.Bucket(bktNodes)
	node := &pb.StorageNode{}
	found, err := getMsg(b, []byte(r.NodeId), node)
	if err != nil || !found || (r.Seq != 0 && r.Seq <= node.ReportSeq) {
		return err
	}
	if r.Up && node.State != pb.NodeState_NODE_STATE_UP {
		node.State, node.DownSinceUnixNano, node.DownReason = pb.NodeState_NODE_STATE_UP, 0, ""
	}
	for _, ids := range []struct {
		ids   [][]byte
		state pb.ShardState
	}{{r.CorruptShardIds, pb.ShardState_SHARD_STATE_CORRUPT}, {r.MissingShardIds, pb.ShardState_SHARD_STATE_MISSING}} {
		for _, id := range ids.ids {
			if err := a.markNodeShard(r.NodeId, id, ids.state); err != nil {
				return err
			}
		}
	}
	del := a.tx.Bucket(bktDeletes)
	for _, id := range r.DeletedShardIds {
		if err := del.Delete(joinKey(r.NodeId, id)); err != nil {
			return err
		}
	}
	node.ReportSeq = max(node.ReportSeq, r.Seq)
	return putMsg(b, []byte(r.NodeId), node)
}

// markNodeShard sets the state of the shard entry that places shard id on
// node, if a record still does.
func (a *applier) markNodeShard(node string, id []byte, state pb.ShardState) error {
	ns := &pb.NodeShardRecord{}
	found, err := getMsg(a.tx.Bucket(bktNodeShards), joinKey(node, id), ns)
	if err != nil || !found {
		return err
	}
	if len(ns.UploadId) > 0 {
		return a.markUploadShard(ns, node, id, state)
	}
	rec, err := a.clipByID(ns.ClipId)
	if err != nil || rec == nil || int(ns.Part) >= len(rec.Parts) || int(ns.Index) >= len(rec.Parts[ns.Part].Shards) {
		return err
	}
	s := rec.Parts[ns.Part].Shards[ns.Index]
	if !bytes.Equal(s.ShardId, id) || s.NodeId != node || s.State == state {
		return nil
	}
	s.State = state
	return a.storeClip(rec)
}

// setRepairHold starts or ends the mass-down hold.
func (a *applier) setRepairHold(c *pb.SetRepairHoldCommand) (proto.Message, error) {
	if c.SinceUnixNano == 0 {
		return nil, a.tx.Bucket(bktSettings).Delete(keyRepairHold)
	}
	return nil, putMsg(a.tx.Bucket(bktSettings), keyRepairHold, c)
}

func (a *applier) ackDeletes(c *pb.AckDeletesCommand) (proto.Message, error) {
	b := a.tx.Bucket(bktDeletes)
	for _, id := range c.ShardIds {
		if err := b.Delete(joinKey(c.NodeId, id)); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

func (a *applier) setMember(c *pb.SetMemberCommand) (proto.Message, error) {
	if err := validateNodeID(c.Id); err != nil {
		return nil, err
	}
	m := &pb.Member{Id: c.Id, GrpcAddress: c.GrpcAddress, RaftAddress: c.RaftAddress}
	return nil, putMsg(a.tx.Bucket(bktMembers), []byte(c.Id), m)
}

// setRepairLimits stores the repair limits the leader merged: both fields
// are set in the command.
func (a *applier) setRepairLimits(c *pb.RepairLimitsRequest) (proto.Message, error) {
	if c.Concurrency == nil || c.BytesPerSec == nil || *c.Concurrency > 10000 {
		return nil, fmt.Errorf("%w: concurrency must be 0..10000 (0 pauses them)", ErrInvalidArgument)
	}
	l := &pb.RepairLimits{Concurrency: *c.Concurrency, BytesPerSec: *c.BytesPerSec}
	key := keyRepairLimits
	if c.Moves {
		key = keyMoveLimits
	}
	return &pb.RepairLimitsResponse{Limits: l}, putMsg(a.tx.Bucket(bktSettings), key, l)
}
