package meta

import (
	"context"
	"fmt"
	"math/rand/v2"

	pb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// service adapts a Node to the generated MetaService interface. Every call
// is answered by any member: writes and linearizable reads run on the
// leader (forwarded if need be), stale reads locally.
type service struct {
	pb.UnimplementedMetaServiceServer
	n *Node
}

// write proposes cmd on the leader and converts the response to Resp.
func write[Req proto.Message, Resp proto.Message](ctx context.Context, s *service, req Req,
	check func(Req) error, build func(Req) *pb.Command,
	remote func(pb.MetaServiceClient, context.Context, Req, ...grpc.CallOption) (Resp, error),
) (Resp, error) {
	var zero Resp
	if err := check(req); err != nil {
		return zero, toStatus(err)
	}
	return onLeader(ctx, s.n, req, func(ctx context.Context, req Req) (Resp, error) {
		resp, err := s.n.propose(ctx, build(req))
		if err != nil {
			return zero, err
		}
		if r, ok := resp.(Resp); ok {
			return r, nil
		}
		return zero, fmt.Errorf("%w: unexpected response %T", ErrOutcomeUnknown, resp)
	}, remote)
}

func checkRequestID(id []byte) error {
	if len(id) != 0 && len(id) != 16 {
		return fmt.Errorf("%w: request id must be empty or 16 bytes, got %d", ErrInvalidArgument, len(id))
	}
	return nil
}

func (s *service) CreateBucket(ctx context.Context, req *pb.CreateBucketRequest) (*pb.CreateBucketResponse, error) {
	return write(ctx, s, req, func(r *pb.CreateBucketRequest) error {
		if err := checkRequestID(r.RequestId); err != nil {
			return err
		}
		if r.DefaultProfile != nil {
			if err := ValidateProfile(r.DefaultProfile); err != nil {
				return err
			}
		}
		if err := validateSettings(r.Settings); err != nil {
			return err
		}
		return ValidateBucketName(r.Name)
	}, func(r *pb.CreateBucketRequest) *pb.Command {
		r = proto.Clone(r).(*pb.CreateBucketRequest)
		if r.DefaultProfile == nil {
			r.DefaultProfile = s.n.cfg.DefaultProfile
		}
		return &pb.Command{RequestId: r.RequestId, Op: &pb.Command_CreateBucket{CreateBucket: r}}
	}, pb.MetaServiceClient.CreateBucket)
}

func (s *service) DeleteBucket(ctx context.Context, req *pb.DeleteBucketRequest) (*pb.DeleteBucketResponse, error) {
	return write(ctx, s, req, func(r *pb.DeleteBucketRequest) error {
		if err := checkRequestID(r.RequestId); err != nil {
			return err
		}
		return ValidateBucketName(r.Name)
	}, func(r *pb.DeleteBucketRequest) *pb.Command {
		return &pb.Command{RequestId: r.RequestId, Op: &pb.Command_DeleteBucket{DeleteBucket: r}}
	}, pb.MetaServiceClient.DeleteBucket)
}

func (s *service) CommitPut(ctx context.Context, req *pb.CommitPutRequest) (*pb.CommitPutResponse, error) {
	return write(ctx, s, req, func(r *pb.CommitPutRequest) error {
		if err := checkRequestID(r.RequestId); err != nil {
			return err
		}
		if err := validateCaptureDuration(r.Capture, s.n.cfg.MaxCaptureDuration); err != nil {
			return err
		}
		return validateCommit(r)
	}, func(r *pb.CommitPutRequest) *pb.Command {
		return &pb.Command{RequestId: r.RequestId, Op: &pb.Command_CommitPut{CommitPut: &pb.CommitPutCommand{Put: r}}}
	}, pb.MetaServiceClient.CommitPut)
}

func (s *service) DeleteClip(ctx context.Context, req *pb.DeleteClipRequest) (*pb.DeleteClipResponse, error) {
	return write(ctx, s, req, func(r *pb.DeleteClipRequest) error {
		if err := checkRequestID(r.RequestId); err != nil {
			return err
		}
		if err := ValidateBucketName(r.Bucket); err != nil {
			return err
		}
		return ValidateKey(r.Key)
	}, func(r *pb.DeleteClipRequest) *pb.Command {
		return &pb.Command{RequestId: r.RequestId, Op: &pb.Command_DeleteClip{DeleteClip: r}}
	}, pb.MetaServiceClient.DeleteClip)
}

func (s *service) ReportShard(ctx context.Context, req *pb.ReportShardRequest) (*pb.ReportShardResponse, error) {
	return write(ctx, s, req, func(r *pb.ReportShardRequest) error { return checkRequestID(r.RequestId) },
		func(r *pb.ReportShardRequest) *pb.Command {
			return &pb.Command{RequestId: r.RequestId, Op: &pb.Command_ReportShard{ReportShard: r}}
		}, pb.MetaServiceClient.ReportShard)
}

func (s *service) UpdateShard(ctx context.Context, req *pb.UpdateShardRequest) (*pb.UpdateShardResponse, error) {
	if err := checkRequestID(req.RequestId); err != nil {
		return nil, toStatus(err)
	}
	return onLeader(ctx, s.n, req, s.n.updateShard, pb.MetaServiceClient.UpdateShard)
}

func (s *service) RegisterNode(ctx context.Context, req *pb.RegisterNodeRequest) (*pb.RegisterNodeResponse, error) {
	resp, err := write(ctx, s, req, func(r *pb.RegisterNodeRequest) error {
		if err := checkRequestID(r.RequestId); err != nil {
			return err
		}
		return validateNodeID(r.NodeId)
	}, func(r *pb.RegisterNodeRequest) *pb.Command {
		return &pb.Command{RequestId: r.RequestId, Op: &pb.Command_RegisterNode{RegisterNode: r}}
	}, pb.MetaServiceClient.RegisterNode)
	if err == nil && s.n.IsLeader() {
		// A registration is the node's first heartbeat: it may take shards
		// at once, not a heartbeat interval later (a restarted node of a
		// cluster with exactly k+m nodes is needed by the next put).
		// (Its capacity stays unknown until the heartbeat: a node may
		// report a set capacity, not its disks'.)
		hb := &heartbeat{at: s.n.cfg.now(), disks: req.Disks}
		for _, d := range req.Disks {
			hb.free, hb.shards = hb.free+d.Free, hb.shards+d.ShardCount
		}
		s.n.live.record(req.NodeId, hb)
	}
	if err == nil {
		// The keyring comes with the registration: the node checks tokens
		// from its first call on.
		resp = proto.Clone(resp).(*pb.RegisterNodeResponse)
		resp.Keyring, err = s.n.keyring()
	}
	return resp, err
}

func (s *service) BeginPut(ctx context.Context, req *pb.BeginPutRequest) (*pb.BeginPutResponse, error) {
	if err := ValidateBucketName(req.Bucket); err != nil {
		return nil, toStatus(err)
	}
	if err := ValidateKey(req.Key); err != nil {
		return nil, toStatus(err)
	}
	if req.Profile != nil {
		if err := ValidateProfile(req.Profile); err != nil {
			return nil, toStatus(err)
		}
	}
	return onLeader(ctx, s.n, req, s.n.beginPut, pb.MetaServiceClient.BeginPut)
}

func (s *service) Heartbeat(ctx context.Context, req *pb.HeartbeatRequest) (*pb.HeartbeatResponse, error) {
	if err := validateNodeID(req.NodeId); err != nil {
		return nil, toStatus(err)
	}
	return onLeader(ctx, s.n, req, s.n.heartbeat, pb.MetaServiceClient.Heartbeat)
}

func (s *service) GetClip(ctx context.Context, req *pb.GetClipRequest) (*pb.GetClipResponse, error) {
	if err := ValidateBucketName(req.Bucket); err != nil {
		return nil, toStatus(err)
	}
	if err := ValidateKey(req.Key); err != nil {
		return nil, toStatus(err)
	}
	if err := validatePartSelector(req.Parts); err != nil {
		return nil, toStatus(err)
	}
	return read(ctx, s.n, req, req.Read, s.n.getClip, pb.MetaServiceClient.GetClip)
}

func (s *service) ListClips(ctx context.Context, req *pb.ListClipsRequest) (*pb.ListClipsResponse, error) {
	if err := ValidateBucketName(req.Bucket); err != nil {
		return nil, toStatus(err)
	}
	return read(ctx, s.n, req, req.Read, s.n.listClips, pb.MetaServiceClient.ListClips)
}

func (s *service) ListBuckets(ctx context.Context, req *pb.ListBucketsRequest) (*pb.ListBucketsResponse, error) {
	return read(ctx, s.n, req, req.Read, s.n.listBuckets, pb.MetaServiceClient.ListBuckets)
}

func (s *service) ListNodes(ctx context.Context, req *pb.ListNodesRequest) (*pb.ListNodesResponse, error) {
	return read(ctx, s.n, req, req.Read, s.n.listNodes, pb.MetaServiceClient.ListNodes)
}

func (s *service) ListNodeShards(ctx context.Context, req *pb.ListNodeShardsRequest) (*pb.ListNodeShardsResponse, error) {
	if err := validateNodeID(req.NodeId); err != nil {
		return nil, toStatus(err)
	}
	return read(ctx, s.n, req, req.Read, s.n.listNodeShards, pb.MetaServiceClient.ListNodeShards)
}

func (s *service) CheckShards(ctx context.Context, req *pb.CheckShardsRequest) (*pb.CheckShardsResponse, error) {
	if err := validateNodeID(req.NodeId); err != nil {
		return nil, toStatus(err)
	}
	if len(req.Shards) > 1000 {
		return nil, toStatus(fmt.Errorf("%w: %d shards, at most 1000 per call", ErrInvalidArgument, len(req.Shards)))
	}
	for _, s := range req.Shards {
		if err := validateID("shard id", s.GetShardId()); err != nil {
			return nil, toStatus(err)
		}
	}
	return read(ctx, s.n, req, nil, s.n.checkShards, pb.MetaServiceClient.CheckShards)
}

func (s *service) CreateUpload(ctx context.Context, req *pb.CreateUploadRequest) (*pb.CreateUploadResponse, error) {
	if err := checkRequestID(req.RequestId); err != nil {
		return nil, toStatus(err)
	}
	if err := validateCaptureDuration(req.Capture, s.n.cfg.MaxCaptureDuration); err != nil {
		return nil, toStatus(err)
	}
	if err := ValidateBucketName(req.Bucket); err != nil {
		return nil, toStatus(err)
	}
	if err := ValidateKey(req.Key); err != nil {
		return nil, toStatus(err)
	}
	if req.Profile != nil {
		if err := ValidateProfile(req.Profile); err != nil {
			return nil, toStatus(err)
		}
	}
	if err := validateUserMetadata(req.UserMetadata, req.Capture); err != nil {
		return nil, toStatus(err)
	}
	return onLeader(ctx, s.n, req, s.n.createUpload, pb.MetaServiceClient.CreateUpload)
}

func (s *service) BeginPart(ctx context.Context, req *pb.BeginPartRequest) (*pb.BeginPutResponse, error) {
	if err := validateUploadRef(req.Bucket, req.Key, req.UploadId); err != nil {
		return nil, toStatus(err)
	}
	if err := validatePartNumber(req.Number); err != nil {
		return nil, toStatus(err)
	}
	return onLeader(ctx, s.n, req, s.n.beginPart, pb.MetaServiceClient.BeginPart)
}

// checkUploadWrite checks what every write to an upload names.
func checkUploadWrite(reqID []byte, bucket, key string, uploadID []byte) error {
	if err := checkRequestID(reqID); err != nil {
		return err
	}
	return validateUploadRef(bucket, key, uploadID)
}

func (s *service) CommitPart(ctx context.Context, req *pb.CommitPartRequest) (*pb.CommitPartResponse, error) {
	return write(ctx, s, req, func(r *pb.CommitPartRequest) error {
		if err := checkUploadWrite(r.RequestId, r.Bucket, r.Key, r.UploadId); err != nil {
			return err
		}
		return validatePartNumber(r.Number)
	}, func(r *pb.CommitPartRequest) *pb.Command {
		return &pb.Command{RequestId: r.RequestId, Op: &pb.Command_CommitPart{CommitPart: r}}
	}, pb.MetaServiceClient.CommitPart)
}

func (s *service) CompleteUpload(ctx context.Context, req *pb.CompleteUploadRequest) (*pb.CommitPutResponse, error) {
	return write(ctx, s, req, func(r *pb.CompleteUploadRequest) error {
		return checkUploadWrite(r.RequestId, r.Bucket, r.Key, r.UploadId)
	}, func(r *pb.CompleteUploadRequest) *pb.Command {
		return &pb.Command{RequestId: r.RequestId, Op: &pb.Command_CompleteUpload{CompleteUpload: r}}
	}, pb.MetaServiceClient.CompleteUpload)
}

func (s *service) AbortUpload(ctx context.Context, req *pb.AbortUploadRequest) (*pb.AbortUploadResponse, error) {
	return write(ctx, s, req, func(r *pb.AbortUploadRequest) error {
		return checkUploadWrite(r.RequestId, r.Bucket, r.Key, r.UploadId)
	}, func(r *pb.AbortUploadRequest) *pb.Command {
		return &pb.Command{RequestId: r.RequestId, Op: &pb.Command_AbortUpload{AbortUpload: r}}
	}, pb.MetaServiceClient.AbortUpload)
}

func (s *service) ListParts(ctx context.Context, req *pb.ListPartsRequest) (*pb.ListPartsResponse, error) {
	if err := validateUploadRef(req.Bucket, req.Key, req.UploadId); err != nil {
		return nil, toStatus(err)
	}
	return read(ctx, s.n, req, req.Read, s.n.listParts, pb.MetaServiceClient.ListParts)
}

func (s *service) ListUploads(ctx context.Context, req *pb.ListUploadsRequest) (*pb.ListUploadsResponse, error) {
	if err := ValidateBucketName(req.Bucket); err != nil {
		return nil, toStatus(err)
	}
	return read(ctx, s.n, req, req.Read, s.n.listUploads, pb.MetaServiceClient.ListUploads)
}

func (s *service) CreateAccessKey(ctx context.Context, req *pb.CreateAccessKeyRequest) (*pb.CreateAccessKeyResponse, error) {
	if err := checkRequestID(req.RequestId); err != nil {
		return nil, toStatus(err)
	}
	req.Key = nil // the leader makes it
	return onLeader(ctx, s.n, req, s.n.createAccessKey, pb.MetaServiceClient.CreateAccessKey)
}

func (s *service) DeleteAccessKey(ctx context.Context, req *pb.DeleteAccessKeyRequest) (*pb.DeleteAccessKeyResponse, error) {
	if err := checkRequestID(req.RequestId); err != nil {
		return nil, toStatus(err)
	}
	return onLeader(ctx, s.n, req, s.n.deleteAccessKey, pb.MetaServiceClient.DeleteAccessKey)
}

func (s *service) ListAccessKeys(ctx context.Context, req *pb.ListAccessKeysRequest) (*pb.ListAccessKeysResponse, error) {
	return read(ctx, s.n, req, req.Read, s.n.listAccessKeys, pb.MetaServiceClient.ListAccessKeys)
}

// SigningKey answers from this member's state (a stale read: a deleted key
// stops working as soon as the member has applied the deletion), and only
// to a caller that presents the cluster secret.
func (s *service) SigningKey(ctx context.Context, req *pb.SigningKeyRequest) (*pb.SigningKeyResponse, error) {
	if err := s.n.checkClusterSecret(ctx); err != nil {
		return nil, toStatus(err)
	}
	resp, err := s.n.signingKey(ctx, req)
	return resp, toStatus(err)
}

func (s *service) RepairLimits(ctx context.Context, req *pb.RepairLimitsRequest) (*pb.RepairLimitsResponse, error) {
	if err := checkRequestID(req.RequestId); err != nil {
		return nil, toStatus(err)
	}
	if req.Concurrency == nil && req.BytesPerSec == nil {
		return read(ctx, s.n, req, nil, s.n.readRepairLimits, pb.MetaServiceClient.RepairLimits)
	}
	if req.Concurrency != nil && *req.Concurrency > 10000 {
		return nil, toStatus(fmt.Errorf("%w: concurrency %d outside 0..10000 (0 pauses them)", ErrInvalidArgument, *req.Concurrency))
	}
	return onLeader(ctx, s.n, req, s.n.setRepairLimits, pb.MetaServiceClient.RepairLimits)
}

func (s *service) SetNodeAdminState(ctx context.Context, req *pb.SetNodeAdminStateRequest) (*pb.SetNodeAdminStateResponse, error) {
	if err := checkRequestID(req.RequestId); err != nil {
		return nil, toStatus(err)
	}
	if err := validateAdminRequest(req); err != nil {
		return nil, toStatus(err)
	}
	return onLeader(ctx, s.n, req, s.n.setNodeAdminState, pb.MetaServiceClient.SetNodeAdminState)
}

func (s *service) RemoveNode(ctx context.Context, req *pb.RemoveNodeRequest) (*pb.RemoveNodeResponse, error) {
	if err := checkRequestID(req.RequestId); err != nil {
		return nil, toStatus(err)
	}
	if err := validateNodeID(req.NodeId); err != nil {
		return nil, toStatus(err)
	}
	return onLeader(ctx, s.n, req, s.n.removeNode, pb.MetaServiceClient.RemoveNode)
}

func (s *service) Rebalance(ctx context.Context, req *pb.RebalanceRequest) (*pb.RebalanceResponse, error) {
	if err := checkRequestID(req.RequestId); err != nil {
		return nil, toStatus(err)
	}
	if err := validateThreshold(req.Threshold); err != nil {
		return nil, toStatus(err)
	}
	if _, ok := pb.RebalanceAction_name[int32(req.Action)]; !ok {
		return nil, toStatus(fmt.Errorf("%w: unknown rebalance action %d", ErrInvalidArgument, req.Action))
	}
	return onLeader(ctx, s.n, req, s.n.rebalance, pb.MetaServiceClient.Rebalance)
}

func (s *service) ClusterStatus(ctx context.Context, req *pb.ClusterStatusRequest) (*pb.ClusterStatusResponse, error) {
	return read(ctx, s.n, req, req.Read, s.n.clusterStatus, pb.MetaServiceClient.ClusterStatus)
}

func (s *service) JoinMember(ctx context.Context, req *pb.JoinMemberRequest) (*pb.JoinMemberResponse, error) {
	if err := validateNodeID(req.Id); err != nil {
		return nil, toStatus(err)
	}
	if req.RaftAddress == "" || req.GrpcAddress == "" {
		return nil, toStatus(fmt.Errorf("%w: a joining member needs its raft and gRPC addresses", ErrInvalidArgument))
	}
	return onLeader(ctx, s.n, req, s.n.join, pb.MetaServiceClient.JoinMember)
}

func (s *service) RemoveMember(ctx context.Context, req *pb.RemoveMemberRequest) (*pb.RemoveMemberResponse, error) {
	if err := validateNodeID(req.Id); err != nil {
		return nil, toStatus(err)
	}
	return onLeader(ctx, s.n, req, s.n.removeMember, pb.MetaServiceClient.RemoveMember)
}

func (s *service) ListMembers(ctx context.Context, req *pb.ListMembersRequest) (*pb.ListMembersResponse, error) {
	members, err := s.n.members()
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.ListMembersResponse{Members: members, LeaderId: s.n.Leader()}, nil
}

// newRand returns a generator for placement choices, seeded from the
// runtime's random source.
func newRand() *rand.Rand { return rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())) }

// newID returns a fresh 16-byte id for a clip, upload, shard or repair
// task: a UUIDv7 (RFC 9562), 48 bits of Unix milliseconds and a sub-
// millisecond sequence (strictly increasing within this process), then 62
// random bits. Ids are never reused, as shard ids must not be (docs/design.md);
// the time prefix makes the ids a leader hands out in a row sort together,
// so that the clips and node -> shards indexes grow at their right edge and
// a batch of commits dirties a few bbolt pages instead of one per shard
// (random ids cost ~2x in CommitPut throughput, BenchmarkCommitPut).
func newID() []byte {
	id := uuid.Must(uuid.NewV7()) // fails only if crypto/rand does, which it never does
	return id[:]
}

func (s *service) InventoryCapability(ctx context.Context, req *pb.InventoryCapabilityRequest) (*pb.InventoryCapabilityResponse, error) {
	token, err := s.n.inventoryCapability()
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.InventoryCapabilityResponse{Capability: token}, nil
}

func (s *service) CreateDataset(ctx context.Context, req *pb.CreateDatasetRequest) (*pb.CreateDatasetResponse, error) {
	if err := checkRequestID(req.RequestId); err != nil {
		return nil, toStatus(err)
	}
	if err := ValidateDatasetName(req.Name); err != nil {
		return nil, toStatus(err)
	}
	if err := ValidateBucketName(req.Bucket); err != nil {
		return nil, toStatus(err)
	}
	if err := validateMembers(req.Members); err != nil {
		return nil, toStatus(err)
	}
	return onLeader(ctx, s.n, req, s.n.createDataset, pb.MetaServiceClient.CreateDataset)
}

// validateMembers checks one entry's dataset members.
func validateMembers(members []*pb.DatasetMember) error {
	if len(members) > maxDatasetMembers {
		return fmt.Errorf("%w: %d members in one entry; at most %d", ErrInvalidArgument, len(members), maxDatasetMembers)
	}
	for i, m := range members {
		if err := ValidateKey(m.Key); err != nil {
			return fmt.Errorf("member %d: %w", i, err)
		}
		if err := validateID("clip id", m.ClipId); err != nil {
			return fmt.Errorf("member %d: %w", i, err)
		}
	}
	return nil
}

// datasetBucketAccess checks that the call's principal has nd on the
// bucket of dataset name (a dataset never changes bucket: the local state
// says which); an unknown dataset is the command's to refuse.
func (s *service) datasetBucketAccess(ctx context.Context, method, name string, nd need) error {
	var bucket string
	s.n.fsm.viewApplied(func(tx *bolt.Tx) error {
		ds := &pb.Dataset{}
		if found, _ := getMsg(tx.Bucket(bktDatasets), []byte(name), ds); found {
			bucket = ds.Bucket
		}
		return nil
	})
	if bucket == "" {
		return nil
	}
	return datasetAccess(ctx, method, nd, bucket)
}

func (s *service) ListDatasets(ctx context.Context, req *pb.ListDatasetsRequest) (*pb.ListDatasetsResponse, error) {
	return read(ctx, s.n, req, req.Read, s.n.listDatasets, pb.MetaServiceClient.ListDatasets)
}

func (s *service) GetDataset(ctx context.Context, req *pb.GetDatasetRequest) (*pb.GetDatasetResponse, error) {
	if err := ValidateDatasetName(req.Name); err != nil {
		return nil, toStatus(err)
	}
	if err := s.datasetBucketAccess(ctx, "GetDataset", req.Name, needRead); err != nil {
		return nil, toStatus(err)
	}
	resp, err := read(ctx, s.n, req, req.Read, s.n.getDataset, pb.MetaServiceClient.GetDataset)
	if err != nil {
		return nil, err
	}
	if err := datasetAccess(ctx, "GetDataset", needRead, resp.Dataset.GetBucket()); err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}

func (s *service) DeleteDataset(ctx context.Context, req *pb.DeleteDatasetRequest) (*pb.DeleteDatasetResponse, error) {
	if err := checkRequestID(req.RequestId); err != nil {
		return nil, toStatus(err)
	}
	if err := ValidateDatasetName(req.Name); err != nil {
		return nil, toStatus(err)
	}
	if err := s.datasetBucketAccess(ctx, "DeleteDataset", req.Name, needWrite); err != nil {
		return nil, toStatus(err)
	}
	return write(ctx, s, req, func(*pb.DeleteDatasetRequest) error { return nil }, func(r *pb.DeleteDatasetRequest) *pb.Command {
		return &pb.Command{RequestId: r.RequestId, Op: &pb.Command_DeleteDataset{DeleteDataset: r}}
	}, pb.MetaServiceClient.DeleteDataset)
}

func (s *service) PurgeClip(ctx context.Context, req *pb.PurgeClipRequest) (*pb.PurgeClipResponse, error) {
	return write(ctx, s, req, func(r *pb.PurgeClipRequest) error {
		if err := checkRequestID(r.RequestId); err != nil {
			return err
		}
		if err := ValidateBucketName(r.Bucket); err != nil {
			return err
		}
		return ValidateKey(r.Key)
	}, func(r *pb.PurgeClipRequest) *pb.Command {
		return &pb.Command{RequestId: r.RequestId, Op: &pb.Command_PurgeClip{PurgeClip: r}}
	}, pb.MetaServiceClient.PurgeClip)
}

func (s *service) Plan(ctx context.Context, req *pb.PlanRequest) (*pb.PlanResponse, error) {
	if err := ValidateDatasetName(req.Dataset); err != nil {
		return nil, toStatus(err)
	}
	// Checked before the plan is computed (75 ms of CPU for the first page
	// of a 200,000-member dataset, BenchmarkPlan, and more for larger
	// ones), and again on the answer's bucket for a dataset this member
	// did not know yet.
	if err := s.datasetBucketAccess(ctx, "Plan", req.Dataset, needRead); err != nil {
		return nil, toStatus(err)
	}
	resp, err := read(ctx, s.n, req, req.Read, s.n.plan, pb.MetaServiceClient.Plan)
	if err != nil {
		return nil, err
	}
	if err := datasetAccess(ctx, "Plan", needRead, resp.Bucket); err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}

func (s *service) ExtendDataset(ctx context.Context, req *pb.ExtendDatasetRequest) (*pb.CreateDatasetResponse, error) {
	if err := checkRequestID(req.RequestId); err != nil {
		return nil, toStatus(err)
	}
	if err := ValidateDatasetName(req.Name); err != nil {
		return nil, toStatus(err)
	}
	if err := validateMembers(req.Members); err != nil {
		return nil, toStatus(err)
	}
	// Appending needs what creating did: write on the dataset's bucket.
	if err := s.datasetBucketAccess(ctx, "ExtendDataset", req.Name, needWrite); err != nil {
		return nil, toStatus(err)
	}
	return write(ctx, s, req, func(*pb.ExtendDatasetRequest) error { return nil }, func(r *pb.ExtendDatasetRequest) *pb.Command {
		return &pb.Command{RequestId: r.RequestId, Op: &pb.Command_ExtendDataset{ExtendDataset: r}}
	}, pb.MetaServiceClient.ExtendDataset)
}
