package meta

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	pb "github.com/clipstore/clipstore/proto/metapb"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// The parts of multipart uploads in progress are kept as clips' parts are:
// a part whose shard is lost (not OK, or on a node gone for RepairAfter) is
// rebuilt, a draining node's part shards move off it, and scrub's and the
// inventory's reports mark them. A task for a part names the upload
// (RepairWork.upload_id), the part by its number and generation 0; the
// update that lands it changes the part record.

// storeUploadPart writes a part record, its node -> shard entries and its
// place in the degraded index of parts.
func (a *applier) storeUploadPart(u *pb.UploadRecord, p *pb.UploadPart) error {
	key := uploadPartKey(u.UploadId, p.Number)
	if err := putMsg(a.tx.Bucket(bktUploadParts), key, p); err != nil {
		return err
	}
	degraded := false
	for _, s := range p.Part.GetShards() {
		if s.State != pb.ShardState_SHARD_STATE_OK {
			degraded = true
		}
		if s.NodeId == "" {
			continue
		}
		v := &pb.NodeShardRecord{ClipId: u.ClipId, Part: p.Number, Index: s.Index, UploadId: u.UploadId}
		if err := putMsg(a.tx.Bucket(bktNodeShards), joinKey(s.NodeId, s.ShardId), v); err != nil {
			return err
		}
	}
	if degraded {
		return a.tx.Bucket(bktUploadDegraded).Put(key, nil)
	}
	return a.tx.Bucket(bktUploadDegraded).Delete(key)
}

// uploadPartByID returns an upload in progress and one of its parts; nil
// if either is gone (completed, aborted, expired, replaced).
func (a *applier) uploadPartByID(uploadID []byte, number uint32) (*pb.UploadRecord, *pb.UploadPart, error) {
	u := &pb.UploadRecord{}
	found, err := getMsg(a.tx.Bucket(bktUploads), uploadID, u)
	if err != nil || !found || u.CompletedGeneration != 0 {
		return nil, nil, err
	}
	p := &pb.UploadPart{}
	found, err = getMsg(a.tx.Bucket(bktUploadParts), uploadPartKey(uploadID, number), p)
	if err != nil || !found || p.Part == nil {
		return nil, nil, err
	}
	return u, p, nil
}

// uploadNeedRecord is the stand-in record repair planning uses for an
// upload's part: its bucket, key and clip id, generation 0.
func uploadNeedRecord(u *pb.UploadRecord) *pb.ClipRecord {
	return &pb.ClipRecord{Bucket: u.Bucket, Key: u.Key, ClipId: u.ClipId}
}

// markUploadShard sets the state of a part's shard entry (a node's report
// that the shard is corrupt or missing).
func (a *applier) markUploadShard(ns *pb.NodeShardRecord, node string, id []byte, state pb.ShardState) error {
	u, p, err := a.uploadPartByID(ns.UploadId, ns.Part)
	if err != nil || u == nil || int(ns.Index) >= len(p.Part.Shards) {
		return err
	}
	s := p.Part.Shards[ns.Index]
	if !bytes.Equal(s.ShardId, id) || s.NodeId != node || s.State == state {
		return nil
	}
	s.State = state
	return a.storeUploadPart(u, p)
}

// updateUploadShard lands a repair or move of a part's shard: the entry
// must still hold the old shard; the new one replaces it, and the old one
// is queued for deletion (after the move delay, if it was healthy).
func (a *applier) updateUploadShard(c *pb.UpdateShardRequest) (proto.Message, error) {
	if err := validateID("upload id", c.UploadId); err != nil {
		return nil, err
	}
	if c.Generation != 0 {
		return nil, fmt.Errorf("%w: an update of an upload's part has generation 0, not %d", ErrInvalidArgument, c.Generation)
	}
	u, p, err := a.uploadPartByID(c.UploadId, c.Part)
	if err != nil {
		return nil, err
	}
	if u == nil || !bytes.Equal(u.ClipId, c.ClipId) || int(c.Index) >= len(p.Part.Shards) ||
		!bytes.Equal(p.Part.Shards[c.Index].ShardId, c.OldShardId) {
		return nil, fmt.Errorf("%w: upload %x no longer has part %d with that shard at index %d",
			ErrFailedPrecondition, c.UploadId, c.Part, c.Index)
	}
	if err := a.swapShard(p.Part, c); err != nil {
		return nil, err
	}
	return &pb.UpdateShardResponse{}, a.storeUploadPart(u, p)
}

// eachAtRiskUploadPart calls fn once for every part of an upload in
// progress with a shard that is not OK (the degraded index of parts) or
// that sits on a node gone says is lost.
func eachAtRiskUploadPart(tx *bolt.Tx, nodes map[string]*pb.StorageNode, gone func(*pb.StorageNode) bool,
	fn func(u *pb.UploadRecord, p *pb.UploadPart, lost func(*pb.Shard) bool) error) error {
	lost := lostOn(nodes, gone)
	a := &applier{tx: tx}
	seen := map[string]bool{}
	visit := func(uploadID []byte, number uint32) error {
		key := string(uploadPartKey(uploadID, number))
		if seen[key] {
			return nil
		}
		seen[key] = true
		u, p, err := a.uploadPartByID(uploadID, number)
		if err != nil || u == nil {
			return err
		}
		return fn(u, p, lost)
	}
	err := tx.Bucket(bktUploadDegraded).ForEach(func(k, _ []byte) error {
		id, number, ok := splitUploadPartKey(k)
		if !ok {
			return nil
		}
		return visit(id, number)
	})
	if err != nil {
		return err
	}
	return eachShardOnGone(tx, nodes, gone, func(ns *pb.NodeShardRecord) error {
		if len(ns.UploadId) == 0 {
			return nil
		}
		return visit(ns.UploadId, ns.Part)
	})
}

// splitUploadPartKey is uploadPartKey's inverse.
func splitUploadPartKey(k []byte) ([]byte, uint32, bool) {
	if len(k) <= 4 {
		return nil, 0, false
	}
	n := len(k) - 4
	return k[:n], binary.BigEndian.Uint32(k[n:]), true
}

// findUploadNeeds lists the shards of upload parts to rebuild, at most
// limit parts' worth.
func (n *Node) findUploadNeeds(tx *bolt.Tx, nodes map[string]*pb.StorageNode, now time.Time, limit int) ([]repairNeed, error) {
	var needs []repairNeed
	seen := 0
	err := eachAtRiskUploadPart(tx, nodes, n.goneAt(tx, now), func(u *pb.UploadRecord, p *pb.UploadPart, lost func(*pb.Shard) bool) error {
		if seen >= limit {
			return errEnough
		}
		bad, unrecoverable := partLoss(p.Part, lost)
		if unrecoverable {
			return nil
		}
		found := false
		for _, s := range p.Part.Shards {
			if lost(s) && n.repairs.inflight[uploadShardKey(u.UploadId, p.Number, s.Index)] == nil {
				needs = append(needs, repairNeed{rec: uploadNeedRecord(u), p: p.Part, part: p.Number, index: s.Index,
					bad: bad, uploadID: u.UploadId})
				found = true
			}
		}
		if found {
			seen++
		}
		return nil
	})
	return needs, ignoreEnough(err)
}

// uploadShardKey keys the task of an upload part's shard in
// repairs.inflight: by upload id, apart from every clip's.
func uploadShardKey(uploadID []byte, number, index uint32) string {
	return "u" + shardKey(uploadID, number, index)
}

// taskKey is the inflight key of the task a work or an update is about.
func taskKey(clipID, uploadID []byte, part, index uint32) string {
	if len(uploadID) > 0 {
		return uploadShardKey(uploadID, part, index)
	}
	return shardKey(clipID, part, index)
}
