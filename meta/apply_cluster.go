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
	b := a.tx.Bucket(bktBuckets)
	if b.Get([]byte(c.Name)) != nil {
		return nil, fmt.Errorf("%w: bucket %q", ErrExists, c.Name)
	}
	bucket := &pb.Bucket{Name: c.Name, DefaultProfile: c.DefaultProfile, CreatedUnixNano: a.now}
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
	prefix := joinKey(c.Name, nil)
	if k, _ := a.tx.Bucket(bktKeys).Cursor().Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) {
		return nil, fmt.Errorf("%w: bucket %q is not empty", ErrFailedPrecondition, c.Name)
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
	if _, err := getMsg(b, []byte(c.NodeId), node); err != nil {
		return nil, err
	}
	node.NodeId, node.Address, node.Zone, node.Disks = c.NodeId, c.Address, c.Zone, c.Disks
	node.State, node.DownSinceUnixNano = pb.NodeState_NODE_STATE_UP, 0
	return &pb.RegisterNodeResponse{Node: node}, putMsg(b, []byte(c.NodeId), node)
}

func (a *applier) setNodeState(c *pb.SetNodeStateCommand) (proto.Message, error) {
	b := a.tx.Bucket(bktNodes)
	node := &pb.StorageNode{}
	found, err := getMsg(b, []byte(c.NodeId), node)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: storage node %q", ErrNotFound, c.NodeId)
	}
	node.State = c.State
	node.DownSinceUnixNano = 0
	if c.State == pb.NodeState_NODE_STATE_DOWN {
		node.DownSinceUnixNano = c.SinceUnixNano
	}
	return nil, putMsg(b, []byte(c.NodeId), node)
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
		return nil, fmt.Errorf("%w: repair concurrency must be 0..10000 (0 pauses repair)", ErrInvalidArgument)
	}
	l := &pb.RepairLimits{Concurrency: *c.Concurrency, BytesPerSec: *c.BytesPerSec}
	return &pb.RepairLimitsResponse{Limits: l}, putMsg(a.tx.Bucket(bktSettings), keyRepairLimits, l)
}
