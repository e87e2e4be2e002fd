package meta

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	pb "github.com/clipstore/clipstore/proto/metapb"
	"google.golang.org/protobuf/proto"
)

// expectedShardLength is the piece bytes every shard of a clip of size
// bytes holds under profile p: full pieces for every block but the last,
// whose pieces are ceil(lastBlockLen/k).
func expectedShardLength(size uint64, p *pb.ECProfile) uint64 {
	bs, k := uint64(p.BlockSize), uint64(p.DataShards)
	if size == 0 {
		return 0
	}
	blocks := (size + bs - 1) / bs
	last := size - (blocks-1)*bs
	return (blocks-1)*((bs+k-1)/k) + (last+k-1)/k
}

// writeQuorum is the number of shards a put needs durable: k+1, or all of
// them when m is 0.
func writeQuorum(p *pb.ECProfile) int {
	return min(int(p.DataShards)+1, int(p.DataShards+p.ParityShards))
}

// validateShards checks the shard list of a commit: one entry per index in
// order, fresh distinct ids, OK shards on distinct nodes with the length
// the clip's size implies, and at least the write quorum OK.
func validateShards(shards []*pb.Shard, p *pb.ECProfile, size uint64) error {
	n := int(p.DataShards + p.ParityShards)
	if len(shards) != n {
		return fmt.Errorf("%w: %d shard entries for a %d+%d profile", ErrInvalidArgument, len(shards), p.DataShards, p.ParityShards)
	}
	want := expectedShardLength(size, p)
	ids, nodes := map[string]bool{}, map[string]bool{}
	ok := 0
	for i, s := range shards {
		if int(s.Index) != i {
			return fmt.Errorf("%w: shard entry %d has index %d", ErrInvalidArgument, i, s.Index)
		}
		if err := validateID(fmt.Sprintf("shard %d id", i), s.ShardId); err != nil {
			return err
		}
		if ids[string(s.ShardId)] {
			return fmt.Errorf("%w: shard id of index %d used twice", ErrInvalidArgument, i)
		}
		ids[string(s.ShardId)] = true
		switch s.State {
		case pb.ShardState_SHARD_STATE_OK:
			if s.NodeId == "" || nodes[s.NodeId] {
				return fmt.Errorf("%w: shard %d: OK shards need distinct nodes (node %q)", ErrInvalidArgument, i, s.NodeId)
			}
			nodes[s.NodeId] = true
			if s.Length != want {
				return fmt.Errorf("%w: shard %d holds %d bytes; a %d-byte clip needs %d per shard", ErrInvalidArgument, i, s.Length, size, want)
			}
			ok++
		case pb.ShardState_SHARD_STATE_MISSING:
		default:
			return fmt.Errorf("%w: shard %d: state %v at commit (OK or MISSING)", ErrInvalidArgument, i, s.State)
		}
	}
	if q := writeQuorum(p); ok < q {
		return fmt.Errorf("%w: %d of %d shards written, the write quorum is %d", ErrFailedPrecondition, ok, n, q)
	}
	return nil
}

// okShards counts the OK entries of a shard list.
func okShards(shards []*pb.Shard) int {
	n := 0
	for _, s := range shards {
		if s.State == pb.ShardState_SHARD_STATE_OK {
			n++
		}
	}
	return n
}

func validateCommit(c *pb.CommitPutRequest) error {
	if c == nil {
		return fmt.Errorf("%w: empty commit", ErrInvalidArgument)
	}
	if err := ValidateBucketName(c.Bucket); err != nil {
		return err
	}
	if err := ValidateKey(c.Key); err != nil {
		return err
	}
	if err := validateID("upload id", c.UploadId); err != nil {
		return err
	}
	if err := validateID("clip id", c.ClipId); err != nil {
		return err
	}
	if c.Profile == nil {
		return fmt.Errorf("%w: commit without an EC profile", ErrInvalidArgument)
	}
	if err := ValidateProfile(c.Profile); err != nil {
		return err
	}
	if err := validateUserMetadata(c.UserMetadata, c.Capture); err != nil {
		return err
	}
	if err := validateChecksums(c.Etag, c.Checksums); err != nil {
		return err
	}
	return validateShards(c.Shards, c.Profile, c.Size)
}

func (a *applier) commitPut(c *pb.CommitPutRequest) (proto.Message, error) {
	if err := validateCommit(c); err != nil {
		return nil, err
	}
	if a.now > c.CommitDeadlineUnixNano {
		return nil, fmt.Errorf("%w %v before the commit was proposed; write the clip again",
			ErrDeadlinePassed, time.Duration(a.now-c.CommitDeadlineUnixNano))
	}
	if a.tx.Bucket(bktBuckets).Get([]byte(c.Bucket)) == nil {
		return nil, fmt.Errorf("%w: bucket %q", ErrNotFound, c.Bucket)
	}
	if a.tx.Bucket(bktClips).Get(c.ClipId) != nil {
		return nil, fmt.Errorf("%w: clip id %x is already committed (retry with the same request id to learn its outcome)", ErrExists, c.ClipId)
	}
	dropped, err := a.checkShardNodes(c.Shards)
	if err != nil {
		return nil, err
	}
	if ok, q := okShards(c.Shards), writeQuorum(c.Profile); dropped && ok < q {
		return nil, fmt.Errorf("%w: %d shards written to nodes that are not decommissioned, the write quorum is %d; write the clip again",
			ErrFailedPrecondition, ok, q)
	}
	old, err := a.currentClip(c.Bucket, c.Key)
	if err != nil {
		return nil, err
	}
	if err := checkGeneration(c.IfGenerationMatch, old); err != nil {
		return nil, err
	}
	rec := &pb.ClipRecord{
		Bucket: c.Bucket, Key: c.Key, ClipId: c.ClipId, Generation: a.index, Size: c.Size,
		ContentCrc32C: c.ContentCrc32C, ContentType: c.ContentType, UserMetadata: c.UserMetadata, Capture: c.Capture,
		CreatedUnixNano: a.now, Etag: c.Etag, Checksums: c.Checksums,
		Parts: []*pb.Part{{Profile: c.Profile, Length: c.Size, ContentCrc32C: c.ContentCrc32C, Shards: c.Shards}},
	}
	resp := &pb.CommitPutResponse{Clip: rec}
	if old != nil {
		resp.ReplacedGeneration = old.Generation
		if err := a.releaseClip(old); err != nil {
			return nil, err
		}
	}
	return resp, a.putClip(rec)
}

func checkGeneration(want *uint64, cur *pb.ClipRecord) error {
	if want == nil {
		return nil
	}
	var gen uint64
	if cur != nil {
		gen = cur.Generation
	}
	if gen != *want {
		return fmt.Errorf("%w: key is at generation %d, the request expects %d", ErrFailedPrecondition, gen, *want)
	}
	return nil
}

// currentClip returns the record a key maps to, or nil.
func (a *applier) currentClip(bucket, key string) (*pb.ClipRecord, error) {
	id := a.tx.Bucket(bktKeys).Get(keyOf(bucket, key))
	if id == nil {
		return nil, nil
	}
	return a.clipByID(id)
}

func (a *applier) clipByID(id []byte) (*pb.ClipRecord, error) {
	rec := &pb.ClipRecord{}
	found, err := getMsg(a.tx.Bucket(bktClips), id, rec)
	if err != nil || !found {
		return nil, err
	}
	return rec, nil
}

// putClip stores a record with its key and indexes.
func (a *applier) putClip(rec *pb.ClipRecord) error {
	if err := a.tx.Bucket(bktKeys).Put(keyOf(rec.Bucket, rec.Key), rec.ClipId); err != nil {
		return err
	}
	if err := indexCapture(a.tx, rec, false); err != nil {
		return err
	}
	return a.storeClip(rec)
}

// storeClip writes the record, its node -> shard entries and its place in
// the degraded index.
func (a *applier) storeClip(rec *pb.ClipRecord) error {
	if err := putMsg(a.tx.Bucket(bktClips), rec.ClipId, rec); err != nil {
		return err
	}
	degraded := false
	for pi, part := range rec.Parts {
		for _, s := range part.Shards {
			if s.State != pb.ShardState_SHARD_STATE_OK {
				degraded = true
			}
			if s.NodeId == "" {
				continue
			}
			v := &pb.NodeShardRecord{ClipId: rec.ClipId, Part: uint32(pi), Index: s.Index}
			if err := putMsg(a.tx.Bucket(bktNodeShards), joinKey(s.NodeId, s.ShardId), v); err != nil {
				return err
			}
		}
	}
	if degraded {
		return a.tx.Bucket(bktDegraded).Put(rec.ClipId, nil)
	}
	return a.tx.Bucket(bktDegraded).Delete(rec.ClipId)
}

// dropClip removes a record and its indexes and queues its shards for
// deletion on their nodes. The key entry is left to the caller.
func (a *applier) dropClip(rec *pb.ClipRecord) error {
	for _, part := range rec.Parts {
		for _, s := range part.Shards {
			if err := a.forgetShard(s); err != nil {
				return err
			}
		}
	}
	if err := a.tx.Bucket(bktDegraded).Delete(rec.ClipId); err != nil {
		return err
	}
	if err := indexCapture(a.tx, rec, true); err != nil {
		return err
	}
	return a.tx.Bucket(bktClips).Delete(rec.ClipId)
}

// forgetShard drops a shard from the node index and queues its deletion.
func (a *applier) forgetShard(s *pb.Shard) error { return a.forgetShardAfter(s, 0) }

// forgetShardAfter drops a shard from the node index and queues its
// deletion, handed to its node no sooner than after (Unix nanoseconds; 0:
// at once). The delete queue entry's value holds that time.
func (a *applier) forgetShardAfter(s *pb.Shard, after int64) error {
	if s.NodeId == "" {
		return nil
	}
	k := joinKey(s.NodeId, s.ShardId)
	if err := a.tx.Bucket(bktNodeShards).Delete(k); err != nil {
		return err
	}
	var v []byte
	if after > 0 {
		v = binary.BigEndian.AppendUint64(nil, uint64(after))
	}
	return a.tx.Bucket(bktDeletes).Put(k, v)
}

// deleteDue reports whether a delete queue entry may be handed to its node
// at now.
func deleteDue(v []byte, now time.Time) bool {
	return len(v) != 8 || int64(binary.BigEndian.Uint64(v)) <= now.UnixNano()
}

func (a *applier) deleteClip(c *pb.DeleteClipRequest) (proto.Message, error) {
	if err := ValidateBucketName(c.Bucket); err != nil {
		return nil, err
	}
	if err := ValidateKey(c.Key); err != nil {
		return nil, err
	}
	rec, err := a.currentClip(c.Bucket, c.Key)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("%w: clip %s/%s", ErrNotFound, c.Bucket, c.Key)
	}
	if err := checkGeneration(c.IfGenerationMatch, rec); err != nil {
		return nil, err
	}
	if err := a.releaseClip(rec); err != nil {
		return nil, err
	}
	if err := a.tx.Bucket(bktKeys).Delete(keyOf(c.Bucket, c.Key)); err != nil {
		return nil, err
	}
	return &pb.DeleteClipResponse{DeletedGeneration: rec.Generation}, nil
}

// shardEntry finds the entry a report or update names, if the clip is still
// at that generation and the entry still holds that shard id.
func (a *applier) shardEntry(clipID []byte, gen uint64, part, index uint32, shardID []byte) (*pb.ClipRecord, *pb.Shard, error) {
	rec, err := a.clipByID(clipID)
	if err != nil || rec == nil || rec.Generation != gen || int(part) >= len(rec.Parts) {
		return nil, nil, err
	}
	shards := rec.Parts[part].Shards
	if int(index) >= len(shards) || !bytes.Equal(shards[index].ShardId, shardID) {
		return nil, nil, nil
	}
	return rec, shards[index], nil
}

func (a *applier) reportShard(c *pb.ReportShardRequest) (proto.Message, error) {
	if err := validateID("clip id", c.ClipId); err != nil {
		return nil, err
	}
	if c.State != pb.ShardState_SHARD_STATE_MISSING && c.State != pb.ShardState_SHARD_STATE_CORRUPT {
		return nil, fmt.Errorf("%w: a report must say MISSING or CORRUPT, not %v", ErrInvalidArgument, c.State)
	}
	rec, s, err := a.shardEntry(c.ClipId, c.Generation, c.Part, c.Index, c.ShardId)
	if err != nil || rec == nil {
		return &pb.ReportShardResponse{}, err
	}
	s.State = c.State
	return &pb.ReportShardResponse{Applied: true}, a.storeClip(rec)
}

func (a *applier) updateShard(c *pb.UpdateShardRequest) (proto.Message, error) {
	if err := validateID("clip id", c.ClipId); err != nil {
		return nil, err
	}
	ns := c.NewShard
	if ns == nil || validateID("new shard id", ns.ShardId) != nil || ns.NodeId == "" || ns.State != pb.ShardState_SHARD_STATE_OK {
		return nil, fmt.Errorf("%w: the new shard needs a 16-byte id, a node and state OK", ErrInvalidArgument)
	}
	if c.CommitDeadlineUnixNano != 0 && a.now > c.CommitDeadlineUnixNano {
		return nil, fmt.Errorf("%w %v before the update (the new shard may be collected)",
			ErrDeadlinePassed, time.Duration(a.now-c.CommitDeadlineUnixNano))
	}
	if len(c.UploadId) > 0 {
		return a.updateUploadShard(c)
	}
	rec, _, err := a.shardEntry(c.ClipId, c.Generation, c.Part, c.Index, c.OldShardId)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("%w: clip %x is no longer at generation %d with that shard at index %d",
			ErrFailedPrecondition, c.ClipId, c.Generation, c.Index)
	}
	if err := a.swapShard(rec.Parts[c.Part], c); err != nil {
		return nil, err
	}
	return &pb.UpdateShardResponse{}, a.storeClip(rec)
}

// swapShard checks the new shard of an update and puts it in the place of
// the old one in part, which it queues for deletion: after the update's
// delay if it is healthy (a move: reads holding the old record finish), at
// once otherwise. The caller stores the part.
func (a *applier) swapShard(part *pb.Part, c *pb.UpdateShardRequest) error {
	ns, old := c.NewShard, part.Shards[c.Index]
	if err := a.checkNewShard(part, c.Index, ns); err != nil {
		return err
	}
	var err error
	if old.State == pb.ShardState_SHARD_STATE_OK && c.OldDeleteAfterUnixNano > a.now {
		err = a.forgetShardAfter(old, c.OldDeleteAfterUnixNano)
	} else {
		err = a.forgetShard(old)
	}
	if err != nil {
		return err
	}
	part.Shards[c.Index] = &pb.Shard{Index: c.Index, NodeId: ns.NodeId, ShardId: ns.ShardId,
		Length: ns.Length, Checksum: ns.Checksum, State: pb.ShardState_SHARD_STATE_OK}
	return nil
}

// checkNewShard checks the shard an update puts at index of part: on a
// known node that is not decommissioned and holds no other shard of the
// part, with a fresh id and the length the part needs.
func (a *applier) checkNewShard(part *pb.Part, index uint32, ns *pb.Shard) error {
	target := &pb.StorageNode{}
	if found, err := getMsg(a.tx.Bucket(bktNodes), []byte(ns.NodeId), target); err != nil {
		return err
	} else if !found {
		return fmt.Errorf("%w: unknown storage node %q", ErrInvalidArgument, ns.NodeId)
	}
	if target.AdminState == pb.AdminState_ADMIN_STATE_DECOMMISSIONED {
		return fmt.Errorf("%w: storage node %q is decommissioned", ErrFailedPrecondition, ns.NodeId)
	}
	for _, s := range part.Shards {
		if s.Index != index && s.NodeId == ns.NodeId && s.State == pb.ShardState_SHARD_STATE_OK {
			return fmt.Errorf("%w: node %q already holds shard %d of this clip", ErrFailedPrecondition, ns.NodeId, s.Index)
		}
		if bytes.Equal(s.ShardId, ns.ShardId) {
			return fmt.Errorf("%w: shard id reused", ErrInvalidArgument)
		}
	}
	if want := expectedShardLength(part.Length, part.Profile); ns.Length != want {
		return fmt.Errorf("%w: new shard holds %d bytes, the part needs %d", ErrInvalidArgument, ns.Length, want)
	}
	return nil
}
