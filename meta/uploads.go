package meta

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	pb "github.com/clipstore/clipstore/proto/metapb"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// Multipart uploads. An upload is a record (bktUploads, by upload id, and
// bktUploadKeys, by bucket, key and upload id, for listings) and its parts
// (bktUploadParts, by upload id and part number). A part's shards are in
// the node -> shards index from the moment the part is recorded, marked
// with the upload id, so that garbage collection keeps them and
// decommission waits for them; CompleteUpload turns the chosen parts into
// the clip's record in one entry and queues the others for deletion.

// MaxUploadParts is the most parts an upload may have, and the highest part
// number (S3's limit).
const MaxUploadParts = 10000

// completedKept is how long a completed upload's record stays, for a
// Complete sent again to answer with the clip it became.
const completedKept = 24 * time.Hour

// uploadPartKey is upload id ++ be32(number).
func uploadPartKey(uploadID []byte, number uint32) []byte {
	return binary.BigEndian.AppendUint32(bytes.Clone(uploadID), number)
}

func uploadKeyOf(bucket, key string, uploadID []byte) []byte {
	return append(joinKey(bucket, []byte(key+"\x00")), uploadID...)
}

// upload returns the upload record of id if it belongs to bucket/key.
func (a *applier) upload(bucket, key string, id []byte) (*pb.UploadRecord, error) {
	u := &pb.UploadRecord{}
	found, err := getMsg(a.tx.Bucket(bktUploads), id, u)
	if err != nil {
		return nil, err
	}
	if !found || u.Bucket != bucket || u.Key != key || u.CompletedGeneration != 0 {
		return nil, fmt.Errorf("%w: no upload %x of %s/%s (completed, aborted or expired)", ErrNotFound, id, bucket, key)
	}
	return u, nil
}

// completed answers a Complete sent again for an upload that completed:
// with the clip it became, if the key still holds it.
func (a *applier) completed(bucket, key string, id []byte) (*pb.CommitPutResponse, bool, error) {
	u := &pb.UploadRecord{}
	found, err := getMsg(a.tx.Bucket(bktUploads), id, u)
	if err != nil || !found || u.Bucket != bucket || u.Key != key || u.CompletedGeneration == 0 {
		return nil, false, err
	}
	rec, err := a.currentClip(bucket, key)
	if err != nil || rec == nil || !bytes.Equal(rec.ClipId, u.ClipId) {
		return nil, false, err
	}
	return &pb.CommitPutResponse{Clip: rec}, true, nil
}

func validateUploadRef(bucket, key string, id []byte) error {
	if err := ValidateBucketName(bucket); err != nil {
		return err
	}
	if err := ValidateKey(key); err != nil {
		return err
	}
	return validateID("upload id", id)
}

func validatePartNumber(n uint32) error {
	if n < 1 || n > MaxUploadParts {
		return fmt.Errorf("%w: part number %d outside 1..%d", ErrInvalidArgument, n, MaxUploadParts)
	}
	return nil
}

// createUpload fills in the upload's ids, profile and expiry on the leader
// and commits it.
func (n *Node) createUpload(ctx context.Context, req *pb.CreateUploadRequest) (*pb.CreateUploadResponse, error) {
	c := proto.Clone(req).(*pb.CreateUploadRequest)
	if c.Profile == nil {
		err := n.fsm.viewApplied(func(tx *bolt.Tx) error {
			b := &pb.Bucket{}
			found, err := getMsg(tx.Bucket(bktBuckets), []byte(req.Bucket), b)
			if err == nil && !found {
				err = fmt.Errorf("%w: bucket %q", ErrNotFound, req.Bucket)
			}
			c.Profile = b.DefaultProfile
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	c.UploadId, c.ClipId = newID(), newID()
	c.ExpiresUnixNano = n.cfg.now().Add(n.cfg.UploadExpiry).UnixNano()
	c.MaxUploadsPerKey = uint32(n.cfg.MaxUploadsPerKey)
	resp, err := n.propose(ctx, &pb.Command{RequestId: req.RequestId, Op: &pb.Command_CreateUpload{CreateUpload: c}})
	if err != nil {
		return nil, err
	}
	return resp.(*pb.CreateUploadResponse), nil
}

func (a *applier) createUpload(c *pb.CreateUploadRequest) (*pb.CreateUploadResponse, error) {
	if err := validateUploadRef(c.Bucket, c.Key, c.UploadId); err != nil {
		return nil, err
	}
	if err := validateID("clip id", c.ClipId); err != nil {
		return nil, err
	}
	if c.Profile == nil || ValidateProfile(c.Profile) != nil {
		return nil, fmt.Errorf("%w: an upload needs a usable EC profile", ErrInvalidArgument)
	}
	if err := validateUserMetadata(c.UserMetadata, c.Capture); err != nil {
		return nil, err
	}
	if alg := c.ChecksumAlgorithm; len(alg) > 64 || strings.IndexFunc(alg, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0 {
		return nil, fmt.Errorf("%w: checksum algorithm %q: at most 64 bytes of printable ASCII", ErrInvalidArgument, alg)
	}
	if a.tx.Bucket(bktBuckets).Get([]byte(c.Bucket)) == nil {
		return nil, fmt.Errorf("%w: bucket %q", ErrNotFound, c.Bucket)
	}
	if limit := int(c.MaxUploadsPerKey); limit > 0 && a.uploadsOf(c.Bucket, c.Key, limit) >= limit {
		return nil, fmt.Errorf("%w: %s/%s has %d multipart uploads in progress, the most allowed (meta --max-uploads-per-key): "+
			"complete or abort some first", ErrFailedPrecondition, c.Bucket, c.Key, limit)
	}
	u := &pb.UploadRecord{Bucket: c.Bucket, Key: c.Key, UploadId: c.UploadId, ClipId: c.ClipId, CreatedUnixNano: a.now,
		ExpiresUnixNano: c.ExpiresUnixNano, ContentType: c.ContentType, UserMetadata: c.UserMetadata, Capture: c.Capture,
		Profile: c.Profile, ChecksumAlgorithm: c.ChecksumAlgorithm}
	if err := putMsg(a.tx.Bucket(bktUploads), u.UploadId, u); err != nil {
		return nil, err
	}
	return &pb.CreateUploadResponse{Upload: u}, a.tx.Bucket(bktUploadKeys).Put(uploadKeyOf(u.Bucket, u.Key, u.UploadId), nil)
}

// beginPart places the shards of one part of an upload.
func (n *Node) beginPart(_ context.Context, req *pb.BeginPartRequest) (*pb.BeginPutResponse, error) {
	var u *pb.UploadRecord
	var cands []Candidate
	var unheard int
	addrs := map[string]string{}
	err := n.fsm.viewApplied(func(tx *bolt.Tx) error {
		var err error
		if u, err = (&applier{tx: tx}).upload(req.Bucket, req.Key, req.UploadId); err != nil {
			return err
		}
		cands, unheard = n.candidates(tx, addrs)
		return nil
	})
	if err != nil {
		return nil, err
	}
	resp, err := n.place(u.Profile, req.SizeHint, cands, unheard, addrs)
	if err != nil {
		return nil, err
	}
	resp.UploadId, resp.ClipId = u.UploadId, u.ClipId
	return resp, n.writeCapability(resp)
}

func (a *applier) commitPart(c *pb.CommitPartRequest) (*pb.CommitPartResponse, error) {
	if err := validateUploadRef(c.Bucket, c.Key, c.UploadId); err != nil {
		return nil, err
	}
	if err := validatePartNumber(c.Number); err != nil {
		return nil, err
	}
	if err := validateChecksums(c.Etag, c.Checksums); err != nil {
		return nil, err
	}
	u, err := a.upload(c.Bucket, c.Key, c.UploadId)
	if err != nil {
		return nil, err
	}
	if a.now > c.CommitDeadlineUnixNano {
		return nil, fmt.Errorf("%w %v before the part was recorded; upload it again",
			ErrDeadlinePassed, time.Duration(a.now-c.CommitDeadlineUnixNano))
	}
	if err := validateShards(c.Shards, u.Profile, c.Size); err != nil {
		return nil, err
	}
	dropped, err := a.checkShardNodes(c.Shards)
	if err != nil {
		return nil, err
	}
	if ok, q := okShards(c.Shards), writeQuorum(u.Profile); dropped && ok < q {
		return nil, fmt.Errorf("%w: %d shards written to nodes that are not decommissioned, the write quorum is %d; upload the part again",
			ErrFailedPrecondition, ok, q)
	}
	parts := a.tx.Bucket(bktUploadParts)
	key := uploadPartKey(u.UploadId, c.Number)
	old := &pb.UploadPart{}
	if found, err := getMsg(parts, key, old); err != nil {
		return nil, err
	} else if found {
		if err := a.forgetShards(old.Part); err != nil { // replaced: S3 keeps the last upload of a number
			return nil, err
		}
	}
	p := &pb.UploadPart{Number: c.Number, CreatedUnixNano: a.now, Part: &pb.Part{Profile: u.Profile, Length: c.Size,
		ContentCrc32C: c.ContentCrc32C, Shards: c.Shards, Number: c.Number, Etag: c.Etag, Checksums: c.Checksums}}
	return &pb.CommitPartResponse{Part: p}, a.storeUploadPart(u, p)
}

// forgetShards drops a part's shards from the node index and queues their
// deletion.
func (a *applier) forgetShards(p *pb.Part) error {
	for _, s := range p.Shards {
		if err := a.forgetShard(s); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) completeUpload(c *pb.CompleteUploadRequest) (*pb.CommitPutResponse, error) {
	if err := validateUploadRef(c.Bucket, c.Key, c.UploadId); err != nil {
		return nil, err
	}
	if len(c.Parts) == 0 || len(c.Parts) > MaxUploadParts {
		return nil, fmt.Errorf("%w: complete with %d parts (1..%d)", ErrInvalidArgument, len(c.Parts), MaxUploadParts)
	}
	if err := validateChecksums(c.Etag, c.Checksums); err != nil {
		return nil, err
	}
	if resp, ok, err := a.completed(c.Bucket, c.Key, c.UploadId); err != nil || ok {
		return resp, err
	}
	u, err := a.upload(c.Bucket, c.Key, c.UploadId)
	if err != nil {
		return nil, err
	}
	if a.tx.Bucket(bktClips).Get(u.ClipId) != nil {
		return nil, fmt.Errorf("%w: clip id %x is already committed", ErrExists, u.ClipId)
	}
	old, err := a.currentClip(c.Bucket, c.Key)
	if err != nil {
		return nil, err
	}
	if err := checkGeneration(c.IfGenerationMatch, old); err != nil {
		return nil, err
	}
	rec := &pb.ClipRecord{Bucket: u.Bucket, Key: u.Key, ClipId: u.ClipId, Generation: a.index, ContentType: u.ContentType,
		UserMetadata: u.UserMetadata, Capture: u.Capture, CreatedUnixNano: a.now, Etag: c.Etag, Checksums: c.Checksums}
	partsB := a.tx.Bucket(bktUploadParts)
	chosen := map[uint32]bool{}
	var prev uint32
	for i, cp := range c.Parts {
		if err := validatePartNumber(cp.Number); err != nil {
			return nil, err
		}
		if i > 0 && cp.Number <= prev {
			return nil, fmt.Errorf("%w: part %d after part %d: parts must be in ascending order", ErrInvalidArgument, cp.Number, prev)
		}
		prev = cp.Number
		p := &pb.UploadPart{}
		found, err := getMsg(partsB, uploadPartKey(u.UploadId, cp.Number), p)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("%w: part %d was not uploaded", ErrFailedPrecondition, cp.Number)
		}
		if want := strings.Trim(cp.Etag, `"`); want != "" && want != strings.Trim(p.Part.Etag, `"`) {
			return nil, fmt.Errorf("%w: part %d has ETag %q, the request names %q", ErrFailedPrecondition, cp.Number, p.Part.Etag, cp.Etag)
		}
		part := p.Part
		part.Offset = rec.Size
		rec.Size += part.Length
		rec.Parts = append(rec.Parts, part)
		chosen[cp.Number] = true
	}
	if len(rec.Parts) == 1 {
		rec.ContentCrc32C = rec.Parts[0].ContentCrc32C
	}
	// The parts not chosen go; the upload's records with them.
	if err := a.dropParts(u, chosen); err != nil {
		return nil, err
	}
	// The record stays, unlisted, to answer a Complete sent again.
	if err := a.tx.Bucket(bktUploadKeys).Delete(uploadKeyOf(u.Bucket, u.Key, u.UploadId)); err != nil {
		return nil, err
	}
	u.CompletedGeneration, u.ExpiresUnixNano = a.index, a.now+int64(completedKept)
	if err := putMsg(a.tx.Bucket(bktUploads), u.UploadId, u); err != nil {
		return nil, err
	}
	resp := &pb.CommitPutResponse{Clip: rec}
	if old != nil {
		resp.ReplacedGeneration = old.Generation
		if err := a.releaseClip(old); err != nil {
			return nil, err
		}
	}
	// putClip rewrites the parts' node -> shard entries for the record.
	return resp, a.putClip(rec)
}

// dropParts deletes an upload's part records, and queues for deletion the
// shards of the parts keep does not name.
func (a *applier) dropParts(u *pb.UploadRecord, keep map[uint32]bool) error {
	partsB := a.tx.Bucket(bktUploadParts)
	var drop [][]byte
	cur := partsB.Cursor()
	for k, v := cur.Seek(u.UploadId); k != nil && bytes.HasPrefix(k, u.UploadId); k, v = cur.Next() {
		p := &pb.UploadPart{}
		if err := decodeMsg(k, v, p); err != nil {
			return err
		}
		if !keep[p.Number] {
			if err := a.forgetShards(p.Part); err != nil {
				return err
			}
		}
		drop = append(drop, bytes.Clone(k))
	}
	for _, k := range drop {
		if err := partsB.Delete(k); err != nil {
			return err
		}
		if err := a.tx.Bucket(bktUploadDegraded).Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) dropUpload(u *pb.UploadRecord) error {
	if err := a.tx.Bucket(bktUploadKeys).Delete(uploadKeyOf(u.Bucket, u.Key, u.UploadId)); err != nil {
		return err
	}
	return a.tx.Bucket(bktUploads).Delete(u.UploadId)
}

func (a *applier) abortUpload(c *pb.AbortUploadRequest) (*pb.AbortUploadResponse, error) {
	if err := validateUploadRef(c.Bucket, c.Key, c.UploadId); err != nil {
		return nil, err
	}
	done := &pb.UploadRecord{}
	if found, err := getMsg(a.tx.Bucket(bktUploads), c.UploadId, done); err != nil {
		return nil, err
	} else if found && done.CompletedGeneration != 0 && done.Bucket == c.Bucket && done.Key == c.Key && a.now > done.ExpiresUnixNano {
		// A completed upload's record, kept long enough: the leader's expiry.
		return &pb.AbortUploadResponse{}, a.tx.Bucket(bktUploads).Delete(c.UploadId)
	}
	u, err := a.upload(c.Bucket, c.Key, c.UploadId)
	if err != nil {
		return nil, err
	}
	if err := a.dropParts(u, nil); err != nil {
		return nil, err
	}
	return &pb.AbortUploadResponse{}, a.dropUpload(u)
}

// listParts lists an upload's parts after req.After, without their shards.
func (n *Node) listParts(_ context.Context, req *pb.ListPartsRequest) (*pb.ListPartsResponse, error) {
	resp := &pb.ListPartsResponse{}
	limit := int(req.MaxParts)
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	err := n.fsm.view(func(tx *bolt.Tx) error {
		a := &applier{tx: tx}
		u, err := a.upload(req.Bucket, req.Key, req.UploadId)
		if err != nil {
			return err
		}
		resp.Upload = u
		cur := tx.Bucket(bktUploadParts).Cursor()
		for k, v := cur.Seek(uploadPartKey(u.UploadId, req.After+1)); k != nil && bytes.HasPrefix(k, u.UploadId); k, v = cur.Next() {
			if len(resp.Parts) == limit {
				resp.Truncated = true
				break
			}
			p := &pb.UploadPart{}
			if err := decodeMsg(k, v, p); err != nil {
				return err
			}
			p.Part.Shards = nil
			resp.Parts = append(resp.Parts, p)
		}
		return nil
	})
	return resp, err
}

// listUploads lists a bucket's uploads by key, then upload id.
func (n *Node) listUploads(_ context.Context, req *pb.ListUploadsRequest) (*pb.ListUploadsResponse, error) {
	resp := &pb.ListUploadsResponse{}
	limit := int(req.MaxUploads)
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	err := n.fsm.view(func(tx *bolt.Tx) error {
		prefix := joinKey(req.Bucket, []byte(req.Prefix))
		start := prefix
		if req.KeyMarker != "" {
			if len(req.UploadIdMarker) > 0 {
				start = append(uploadKeyOf(req.Bucket, req.KeyMarker, req.UploadIdMarker), 0)
			} else {
				start = joinKey(req.Bucket, []byte(req.KeyMarker+"\x01")) // past every upload of the marker's key
			}
		}
		if bytes.Compare(start, prefix) < 0 {
			start = prefix
		}
		cur := tx.Bucket(bktUploadKeys).Cursor()
		for k, _ := cur.Seek(start); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
			if len(resp.Uploads) == limit {
				resp.Truncated = true
				break
			}
			u := &pb.UploadRecord{}
			if _, err := getMsg(tx.Bucket(bktUploads), k[len(k)-16:], u); err != nil {
				return err
			}
			resp.Uploads = append(resp.Uploads, u)
		}
		return nil
	})
	return resp, err
}

// hasUploads reports whether bucket has an upload in progress.
func (a *applier) hasUploads(bucket string) bool {
	prefix := joinKey(bucket, nil)
	k, _ := a.tx.Bucket(bktUploadKeys).Cursor().Seek(prefix)
	return k != nil && bytes.HasPrefix(k, prefix)
}

// expireUploads aborts, on the leader, the uploads whose expiry has passed,
// a bounded number per call.
func (n *Node) expireUploads(now time.Time) {
	var expired []*pb.UploadRecord
	n.fsm.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bktUploads).ForEach(func(k, v []byte) error {
			u := &pb.UploadRecord{}
			if decodeMsg(k, v, u) == nil && u.ExpiresUnixNano < now.UnixNano() && len(expired) < 64 {
				expired = append(expired, u)
			}
			return nil
		})
	})
	for _, u := range expired {
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ApplyTimeout)
		_, err := n.propose(ctx, &pb.Command{Op: &pb.Command_AbortUpload{AbortUpload: &pb.AbortUploadRequest{
			Bucket: u.Bucket, Key: u.Key, UploadId: u.UploadId}}})
		cancel()
		if err != nil {
			n.log.Warn("expire upload", "bucket", u.Bucket, "key", u.Key, "upload", fmt.Sprintf("%x", u.UploadId), "err", err)
			return
		}
		n.log.Info("upload expired", "bucket", u.Bucket, "key", u.Key, "upload", fmt.Sprintf("%x", u.UploadId),
			"created", time.Unix(0, u.CreatedUnixNano))
	}
}

// uploadsOf counts the uploads in progress of bucket/key, up to limit.
func (a *applier) uploadsOf(bucket, key string, limit int) int {
	prefix := joinKey(bucket, []byte(key+"\x00"))
	n := 0
	c := a.tx.Bucket(bktUploadKeys).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && n < limit; k, _ = c.Next() {
		n++
	}
	return n
}
