package meta

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/clipstore/clipstore/internal/rpcerr"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// applier applies commands to one bbolt transaction. It never reads a
// clock: time comes from the command (the leader's clock at proposal).
type applier struct {
	tx    *bolt.Tx
	ttl   time.Duration
	index uint64 // Raft index of the entry being applied
	now   int64  // the entry's proposal time, Unix nanoseconds
}

// maxExpiredPerEntry bounds the request records one entry expires, so that
// an apply stays cheap however many records are due.
const maxExpiredPerEntry = 64

// isRejection reports whether err is a command's own failure (validation,
// a missing or existing thing, a failed precondition), as opposed to a
// failure of the local database, which must stop the member.
func isRejection(err error) bool {
	for _, s := range []error{ErrInvalidArgument, ErrNotFound, ErrExists, ErrFailedPrecondition} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// applyEntry applies one LogCommand entry. The returned error is fatal (the
// database failed); a rejected command is an applyResult with err set.
func (a *applier) applyEntry(l *raft.Log) (*applyResult, error) {
	cmd, err := unmarshalCommand(l.Data)
	if err != nil {
		return &applyResult{err: fmt.Errorf("%w: undecodable command at index %d: %v", ErrInvalidArgument, l.Index, err)}, nil
	}
	a.index, a.now = l.Index, cmd.ProposedUnixNano
	if err := a.expireRequests(); err != nil {
		return nil, err
	}
	if len(cmd.RequestId) > 0 {
		res, found, err := a.replay(cmd)
		if err != nil || found {
			return res, err
		}
	}
	resp, err := a.dispatch(cmd)
	if err != nil && !isRejection(err) {
		return nil, err
	}
	if len(cmd.RequestId) > 0 {
		if err := a.remember(cmd.RequestId, resp, err); err != nil {
			return nil, err
		}
	}
	return &applyResult{resp: resp, err: err}, nil
}

func (a *applier) dispatch(cmd *pb.Command) (proto.Message, error) {
	switch op := cmd.Op.(type) {
	case *pb.Command_CreateBucket:
		return a.createBucket(op.CreateBucket)
	case *pb.Command_DeleteBucket:
		return a.deleteBucket(op.DeleteBucket)
	case *pb.Command_CommitPut:
		return a.commitPut(op.CommitPut.GetPut())
	case *pb.Command_DeleteClip:
		return a.deleteClip(op.DeleteClip)
	case *pb.Command_ReportShard:
		return a.reportShard(op.ReportShard)
	case *pb.Command_UpdateShard:
		return a.updateShard(op.UpdateShard)
	case *pb.Command_RegisterNode:
		return a.registerNode(op.RegisterNode)
	case *pb.Command_SetNodeState:
		return a.setNodeState(op.SetNodeState)
	case *pb.Command_AckDeletes:
		return a.ackDeletes(op.AckDeletes)
	case *pb.Command_SetMember:
		return a.setMember(op.SetMember)
	case *pb.Command_RemoveMember:
		return &pb.RemoveMemberResponse{}, a.tx.Bucket(bktMembers).Delete([]byte(op.RemoveMember.Id))
	case *pb.Command_SetRepairLimits:
		return a.setRepairLimits(op.SetRepairLimits)
	case *pb.Command_NodeReports:
		return a.nodeReports(op.NodeReports)
	case *pb.Command_SetRepairHold:
		return a.setRepairHold(op.SetRepairHold)
	case *pb.Command_SetNodeAdminState:
		return a.setNodeAdminState(op.SetNodeAdminState)
	case *pb.Command_RemoveNode:
		return a.removeNode(op.RemoveNode)
	case *pb.Command_SetRebalance:
		return a.setRebalance(op.SetRebalance)
	case *pb.Command_CreateAccessKey:
		return a.createAccessKey(op.CreateAccessKey)
	case *pb.Command_SetSettings:
		return a.setSettings(op.SetSettings)
	case *pb.Command_DeleteAccessKey:
		return a.deleteAccessKey(op.DeleteAccessKey)
	case *pb.Command_CreateUpload:
		return a.createUpload(op.CreateUpload)
	case *pb.Command_CommitPart:
		return a.commitPart(op.CommitPart)
	case *pb.Command_CompleteUpload:
		return a.completeUpload(op.CompleteUpload)
	case *pb.Command_AbortUpload:
		return a.abortUpload(op.AbortUpload)
	case *pb.Command_SetKeyring:
		return a.setKeyring(op.SetKeyring)
	case *pb.Command_CreateDataset:
		return a.createDataset(op.CreateDataset)
	case *pb.Command_DeleteDataset:
		return a.deleteDataset(op.DeleteDataset)
	case *pb.Command_PurgeClip:
		return a.purgeClip(op.PurgeClip)
	case *pb.Command_ExtendDataset:
		return a.extendDataset(op.ExtendDataset)
	default:
		return nil, fmt.Errorf("%w: unknown command %T", ErrInvalidArgument, cmd.Op)
	}
}

// emptyResponse returns the response type of a command, for replaying a
// remembered outcome.
func emptyResponse(cmd *pb.Command) proto.Message {
	switch cmd.Op.(type) {
	case *pb.Command_CreateBucket:
		return &pb.CreateBucketResponse{}
	case *pb.Command_DeleteBucket:
		return &pb.DeleteBucketResponse{}
	case *pb.Command_CommitPut:
		return &pb.CommitPutResponse{}
	case *pb.Command_DeleteClip:
		return &pb.DeleteClipResponse{}
	case *pb.Command_ReportShard:
		return &pb.ReportShardResponse{}
	case *pb.Command_UpdateShard:
		return &pb.UpdateShardResponse{}
	case *pb.Command_RegisterNode:
		return &pb.RegisterNodeResponse{}
	case *pb.Command_SetRepairLimits:
		return &pb.RepairLimitsResponse{}
	case *pb.Command_SetNodeAdminState:
		return &pb.SetNodeAdminStateResponse{}
	case *pb.Command_RemoveNode:
		return &pb.RemoveNodeResponse{}
	case *pb.Command_CreateAccessKey:
		return &pb.CreateAccessKeyResponse{}
	case *pb.Command_DeleteAccessKey:
		return &pb.DeleteAccessKeyResponse{}
	case *pb.Command_CreateUpload:
		return &pb.CreateUploadResponse{}
	case *pb.Command_CommitPart:
		return &pb.CommitPartResponse{}
	case *pb.Command_CompleteUpload:
		return &pb.CommitPutResponse{}
	case *pb.Command_AbortUpload:
		return &pb.AbortUploadResponse{}
	case *pb.Command_SetSettings, *pb.Command_SetKeyring:
		return &pb.SettingsResponse{}
	case *pb.Command_CreateDataset, *pb.Command_ExtendDataset:
		return &pb.CreateDatasetResponse{}
	case *pb.Command_DeleteDataset:
		return &pb.DeleteDatasetResponse{}
	case *pb.Command_PurgeClip:
		return &pb.PurgeClipResponse{}
	default:
		return nil
	}
}

// replay returns the remembered outcome of the command's request id.
func (a *applier) replay(cmd *pb.Command) (*applyResult, bool, error) {
	var rec pb.RequestRecord
	found, err := getMsg(a.tx.Bucket(bktRequests), cmd.RequestId, &rec)
	if err != nil || !found {
		return nil, false, err
	}
	if codes.Code(rec.Code) != codes.OK {
		return &applyResult{err: rejection(codes.Code(rec.Code), rpcerr.Reason(rec.Reason), rec.Message)}, true, nil
	}
	resp := emptyResponse(cmd)
	if resp != nil {
		if err := proto.Unmarshal(rec.Response, resp); err != nil {
			return nil, false, fmt.Errorf("%w: request record: %v", ErrStateCorrupt, err)
		}
	}
	return &applyResult{resp: resp}, true, nil
}

// remember records a request id's outcome until the TTL passes.
func (a *applier) remember(id []byte, resp proto.Message, rerr error) error {
	rec := &pb.RequestRecord{ExpiresUnixNano: a.now + int64(a.ttl), Code: uint32(codeOf(rerr))}
	if rerr != nil {
		rec.Message, rec.Reason = rerr.Error(), string(reasonOf(rerr))
	} else if resp != nil {
		b, err := proto.Marshal(resp)
		if err != nil {
			return err
		}
		rec.Response = b
	}
	if err := putMsg(a.tx.Bucket(bktRequests), id, rec); err != nil {
		return err
	}
	return a.tx.Bucket(bktReqExpiry).Put(append(be64(uint64(rec.ExpiresUnixNano)), id...), nil)
}

// expireRequests forgets request records whose TTL passed.
func (a *applier) expireRequests() error {
	exp := a.tx.Bucket(bktReqExpiry)
	c := exp.Cursor()
	var due [][]byte
	for k, _ := c.First(); k != nil && len(due) < maxExpiredPerEntry; k, _ = c.Next() {
		if int64(binary.BigEndian.Uint64(k[:8])) >= a.now {
			break
		}
		due = append(due, bytes.Clone(k))
	}
	for _, k := range due {
		if err := exp.Delete(k); err != nil {
			return err
		}
		if err := a.tx.Bucket(bktRequests).Delete(k[8:]); err != nil {
			return err
		}
	}
	return nil
}
