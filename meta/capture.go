package meta

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	pb "github.com/clipstore/clipstore/proto/metapb"
	bolt "go.etcd.io/bbolt"
)

// The capture index (bktCapture) holds, for every current record with
// capture attributes, one entry per dimension it can be found by, in the
// same transaction as the record:
//
//	bucket NUL dim value NUL start(8) clip id(16) -> (empty)
//
// with dim 't' (every record; value empty), 'v' (its vehicle), 'c' (its
// camera) and 'g' (each tag), and start the capture start, big-endian with
// the sign bit flipped so that the bytes sort as the times do. Within one
// (dimension, value) the entries sort by capture start, then clip id: a
// query walks one cursor per value it names, unions the values of a
// dimension, and intersects the dimensions by leapfrogging (each cursor
// seeks to the largest entry any other is at), so it reads entries in
// proportion to the dimension that matches fewest, not to the bucket.
// Capture intervals are at most Config.MaxCaptureDuration long (commits
// longer are refused), so the clips overlapping [from, to] are those
// starting in [from - MaxCaptureDuration, to].

const (
	dimTime    = 't'
	dimVehicle = 'v'
	dimCamera  = 'c'
	dimTag     = 'g'
)

// captureSuffixLen is the length of an entry's start and clip id.
const captureSuffixLen = 8 + 16

func captureStart(t int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(t)^1<<63) }

// capturePrefix is the prefix of one dimension value's entries.
func capturePrefix(bucket string, dim byte, value string) []byte {
	p := make([]byte, 0, len(bucket)+len(value)+3)
	p = append(p, bucket...)
	p = append(p, 0, dim)
	p = append(p, value...)
	return append(p, 0)
}

// captureKeys are the index entries of a record; none without capture
// attributes.
func captureKeys(rec *pb.ClipRecord) [][]byte {
	c := rec.Capture
	if c == nil || (c.VehicleId == "" && c.Camera == "" && c.StartUnixNano == 0 && c.EndUnixNano == 0 && len(c.Tags) == 0) {
		return nil
	}
	suffix := append(captureStart(c.StartUnixNano), rec.ClipId...)
	keys := [][]byte{append(capturePrefix(rec.Bucket, dimTime, ""), suffix...)}
	if c.VehicleId != "" {
		keys = append(keys, append(capturePrefix(rec.Bucket, dimVehicle, c.VehicleId), suffix...))
	}
	if c.Camera != "" {
		keys = append(keys, append(capturePrefix(rec.Bucket, dimCamera, c.Camera), suffix...))
	}
	seen := map[string]bool{}
	for _, tag := range c.Tags {
		if tag != "" && !seen[tag] {
			seen[tag] = true
			keys = append(keys, append(capturePrefix(rec.Bucket, dimTag, tag), suffix...))
		}
	}
	return keys
}

// indexCapture adds (or, with drop, removes) a record's index entries.
func indexCapture(tx *bolt.Tx, rec *pb.ClipRecord, drop bool) error {
	b := tx.Bucket(bktCapture)
	for _, k := range captureKeys(rec) {
		var err error
		if drop {
			err = b.Delete(k)
		} else {
			err = b.Put(k, nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// buildCaptureIndex indexes every current record: a state written before
// the index existed gets it at open.
func buildCaptureIndex(tx *bolt.Tx) error {
	keys := tx.Bucket(bktKeys)
	return tx.Bucket(bktClips).ForEach(func(k, v []byte) error {
		rec := &pb.ClipRecord{}
		if err := decodeMsg(k, v, rec); err != nil {
			return err
		}
		if !bytes.Equal(keys.Get(keyOf(rec.Bucket, rec.Key)), rec.ClipId) {
			return nil // not the key's current record
		}
		return indexCapture(tx, rec, false)
	})
}

// validateCaptureDuration refuses a capture interval longer than max (0:
// no bound).
func validateCaptureDuration(c *pb.CaptureAttributes, max time.Duration) error {
	if c == nil || max <= 0 || c.EndUnixNano == 0 {
		return nil
	}
	if d := time.Duration(c.EndUnixNano - c.StartUnixNano); d > max {
		return fmt.Errorf("%w: a capture interval of %v exceeds the cluster's --max-capture-duration %v", ErrInvalidArgument, d, max)
	}
	return nil
}

// Bounds of a Find request.
const (
	defaultFindLimit = 1000
	maxFindValues    = 64 // values of one dimension
)

func validateFind(req *pb.FindRequest) error {
	if err := ValidateBucketName(req.Bucket); err != nil {
		return err
	}
	for _, vals := range [][]string{req.Vehicles, req.Cameras, req.Tags} {
		if len(vals) > maxFindValues {
			return fmt.Errorf("%w: %d values of one filter; at most %d", ErrInvalidArgument, len(vals), maxFindValues)
		}
		for _, v := range vals {
			if v == "" || len(v) > maxAttributeLength {
				return fmt.Errorf("%w: filter value %q: 1 to %d bytes", ErrInvalidArgument, v, maxAttributeLength)
			}
		}
	}
	if req.ToUnixNano != 0 && req.FromUnixNano > req.ToUnixNano {
		return fmt.Errorf("%w: the time range ends before it starts", ErrInvalidArgument)
	}
	if len(req.PageToken) != 0 && len(req.PageToken) != captureSuffixLen {
		return fmt.Errorf("%w: a malformed page token", ErrInvalidArgument)
	}
	return nil
}

// captureCursor walks the entries of one dimension value.
type captureCursor struct {
	c      *bolt.Cursor
	prefix []byte
	key    []byte // the current entry's suffix; nil when done
	reads  *uint64
}

func (cc *captureCursor) set(k []byte) {
	*cc.reads++
	if k == nil || !bytes.HasPrefix(k, cc.prefix) || len(k) != len(cc.prefix)+captureSuffixLen {
		cc.key = nil
		return
	}
	cc.key = k[len(cc.prefix):]
}

// seek moves to the first entry at or after suffix.
func (cc *captureCursor) seek(suffix []byte) {
	k, _ := cc.c.Seek(append(bytes.Clone(cc.prefix), suffix...))
	cc.set(k)
}

// union is one dimension: the entries of any of its values, in order.
type union []*captureCursor

// key is the smallest current entry of the union; nil when all are done.
func (u union) key() []byte {
	var min []byte
	for _, cc := range u {
		if cc.key != nil && (min == nil || bytes.Compare(cc.key, min) < 0) {
			min = cc.key
		}
	}
	return min
}

// seek moves every value's cursor to its first entry at or after suffix.
func (u union) seek(suffix []byte) {
	for _, cc := range u {
		if cc.key == nil || bytes.Compare(cc.key, suffix) < 0 {
			cc.seek(suffix)
		}
	}
}

// find answers a Find: the current records of the bucket whose capture
// interval overlaps the range and that match every filter, in capture
// start order, a page at a time.
func (n *Node) find(_ context.Context, req *pb.FindRequest) (*pb.FindResponse, error) {
	resp := &pb.FindResponse{}
	var last []byte // the index entry of the last clip answered
	limit := int(req.Limit)
	if limit <= 0 {
		limit = defaultFindLimit
	}
	limit = min(limit, maxPageSize)
	err := n.fsm.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bktBuckets).Get([]byte(req.Bucket)) == nil {
			return fmt.Errorf("%w: bucket %q", ErrNotFound, req.Bucket)
		}
		b := tx.Bucket(bktCapture)
		var dims []union
		add := func(dim byte, values []string) {
			var u union
			for _, v := range slices.Compact(slices.Sorted(slices.Values(values))) {
				u = append(u, &captureCursor{c: b.Cursor(), prefix: capturePrefix(req.Bucket, dim, v), reads: &resp.EntriesRead})
			}
			dims = append(dims, u)
		}
		if len(req.Vehicles) > 0 {
			add(dimVehicle, req.Vehicles)
		}
		if len(req.Cameras) > 0 {
			add(dimCamera, req.Cameras)
		}
		for _, tag := range slices.Compact(slices.Sorted(slices.Values(req.Tags))) {
			add(dimTag, []string{tag}) // every tag: a dimension each
		}
		if len(dims) == 0 {
			add(dimTime, []string{""})
		}
		timed := req.FromUnixNano != 0 || req.ToUnixNano != 0
		from := []byte(nil)
		if timed && req.FromUnixNano != 0 {
			from = captureStart(req.FromUnixNano - int64(n.cfg.MaxCaptureDuration))
		}
		if len(req.PageToken) > 0 {
			after := append(bytes.Clone(req.PageToken), 0) // strictly after the last answered
			if from == nil || bytes.Compare(after, from) > 0 {
				from = after
			}
		}
		var to []byte // entries past this start are out of the range
		if req.ToUnixNano != 0 {
			to = captureStart(req.ToUnixNano)
		}
		for _, u := range dims {
			u.seek(from)
		}
		clips, keys := tx.Bucket(bktClips), tx.Bucket(bktKeys)
		for {
			// Leapfrog: every dimension to the largest current entry.
			var x []byte
			for {
				x = nil
				for _, u := range dims {
					k := u.key()
					if k == nil {
						return nil
					}
					if x == nil || bytes.Compare(k, x) > 0 {
						x = k
					}
				}
				if to != nil && bytes.Compare(x[:8], to) > 0 {
					return nil
				}
				agree := true
				for _, u := range dims {
					if !bytes.Equal(u.key(), x) {
						u.seek(x)
						agree = false
					}
				}
				if agree {
					break
				}
			}
			x = bytes.Clone(x)
			entry, err := matchCapture(clips, keys, x[8:], req)
			if err != nil {
				return err
			}
			if entry != nil {
				if len(resp.Clips) == limit {
					resp.NextPageToken = last
					return nil
				}
				resp.Clips, last = append(resp.Clips, entry), x
			}
			dims[0].seek(append(x, 0))
		}
	})
	return resp, err
}

// matchCapture returns the entry of the record an index entry names if it
// is its key's current record and matches what the index cannot check:
// the key prefix and the overlap of its capture interval with the range.
func matchCapture(clips, keys *bolt.Bucket, clipID []byte, req *pb.FindRequest) (*pb.ClipEntry, error) {
	rec := &pb.ClipRecord{}
	if found, err := getMsg(clips, clipID, rec); err != nil || !found {
		return nil, err
	}
	if !bytes.Equal(keys.Get(keyOf(rec.Bucket, rec.Key)), rec.ClipId) || !strings.HasPrefix(rec.Key, req.Prefix) {
		return nil, nil
	}
	if req.FromUnixNano != 0 || req.ToUnixNano != 0 {
		start, end := rec.Capture.GetStartUnixNano(), rec.Capture.GetEndUnixNano()
		if end == 0 {
			end = start
		}
		if start == 0 || (req.ToUnixNano != 0 && start > req.ToUnixNano) || (req.FromUnixNano != 0 && end < req.FromUnixNano) {
			return nil, nil
		}
	}
	return clipEntry(rec), nil
}

// clipEntry is a record as listings show it.
func clipEntry(rec *pb.ClipRecord) *pb.ClipEntry {
	return &pb.ClipEntry{Key: rec.Key, ClipId: rec.ClipId, Generation: rec.Generation, Size: rec.Size,
		CreatedUnixNano: rec.CreatedUnixNano, Etag: rec.Etag, Capture: rec.Capture}
}

// Find lists clips by capture attributes, linearizably unless stale reads
// are asked for.
func (s *service) Find(ctx context.Context, req *pb.FindRequest) (*pb.FindResponse, error) {
	if err := validateFind(req); err != nil {
		return nil, toStatus(err)
	}
	return read(ctx, s.n, req, req.Read, s.n.find, pb.MetaServiceClient.Find)
}
