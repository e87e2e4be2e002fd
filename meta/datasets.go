package meta

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"time"

	pb "github.com/clipstore/clipstore/proto/metapb"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"
)

// Datasets. A dataset is an immutable, named list of clips of one bucket,
// each at the generation (clip id) it had when the dataset was made, fixed
// in one Raft entry. It pins what it lists: a record that a dataset holds
// stays in bktClips, with its shards in the node index, when its key is
// overwritten or deleted (it is then "unlinked": its key maps to another
// record, or to none), so that repair, scrub, moves and the storage nodes'
// garbage collection treat its shards like any other; it is collected when
// the last dataset holding it goes. bktPins keeps the counts:
//
//	"c" clip id                 -> how many datasets hold the record (8 bytes)
//	"b" bucket                  -> how many records of the bucket are held (8 bytes)
//	"g" bucket NUL key gen(8)   -> the clip id of a held generation (GetClip by generation)
//	"s"                         -> unlinked records and their bytes (8 + 8 bytes)

var (
	bktDatasets       = []byte("datasets")        // name -> Dataset
	bktDatasetMembers = []byte("dataset_members") // name NUL position(8) -> DatasetMember
	bktPins           = []byte("pins")            // see above
	keyPinStats       = []byte("s")
)

// maxDatasetMembers bounds one entry's members (a dataset larger than that
// is made by a series: CreateDataset staged, then ExtendDataset), and
// maxDatasetTotal a dataset (a plan holds its members in memory).
const (
	maxDatasetMembers = 100_000
	maxDatasetTotal   = 2_000_000
)

// datasetStaging is how long a dataset made by a series may take to be
// sealed before the leader deletes it.
const datasetStaging = time.Hour

var datasetNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidateDatasetName checks a dataset's name: 1-128 letters, digits, '.',
// '_' and '-', starting with a letter or digit.
func ValidateDatasetName(name string) error {
	if !datasetNameRe.MatchString(name) {
		return fmt.Errorf("%w: dataset name %q: 1-128 letters, digits, '.', '_' and '-', starting with a letter or digit", ErrInvalidArgument, name)
	}
	return nil
}

func u64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// addCount adds delta to the counter at k of bktPins and returns the new
// value; a zero counter is deleted.
func (a *applier) addCount(k []byte, delta int64) (uint64, error) {
	b := a.tx.Bucket(bktPins)
	v := int64(u64(b.Get(k))) + delta
	if v <= 0 {
		return 0, b.Delete(k)
	}
	return uint64(v), b.Put(k, be64(uint64(v)))
}

func pinKey(clip []byte) []byte { return append([]byte("c"), clip...) }

func genKey(bucket, key string, gen uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte("g"), keyOf(bucket, key)...), gen)
}

// pinned reports whether a dataset holds the record with clip id.
func pinned(tx *bolt.Tx, clip []byte) bool { return tx.Bucket(bktPins).Get(pinKey(clip)) != nil }

// linked reports whether rec is its key's current record.
func linked(tx *bolt.Tx, rec *pb.ClipRecord) bool {
	return bytes.Equal(tx.Bucket(bktKeys).Get(keyOf(rec.Bucket, rec.Key)), rec.ClipId)
}

// addUnlinked counts a record that only datasets keep (delta ±1).
func (a *applier) addUnlinked(rec *pb.ClipRecord, delta int64) error {
	b := a.tx.Bucket(bktPins)
	st := b.Get(keyPinStats)
	clips, size := int64(0), int64(0)
	if len(st) == 16 {
		clips, size = int64(u64(st[:8])), int64(u64(st[8:]))
	}
	clips, size = max(clips+delta, 0), max(size+delta*int64(rec.Size), 0)
	return b.Put(keyPinStats, append(be64(uint64(clips)), be64(uint64(size))...))
}

// pin adds one dataset's hold on rec.
func (a *applier) pin(rec *pb.ClipRecord) error {
	n, err := a.addCount(pinKey(rec.ClipId), 1)
	if err != nil || n > 1 {
		return err
	}
	if _, err := a.addCount(bucketPinKey(rec.Bucket), 1); err != nil {
		return err
	}
	return a.tx.Bucket(bktPins).Put(genKey(rec.Bucket, rec.Key, rec.Generation), rec.ClipId)
}

// unpin drops one dataset's hold on rec; the last one's collects an
// unlinked record. It reports whether the record was collected.
func (a *applier) unpin(rec *pb.ClipRecord) (bool, error) {
	n, err := a.addCount(pinKey(rec.ClipId), -1)
	if err != nil || n > 0 {
		return false, err
	}
	if _, err := a.addCount(bucketPinKey(rec.Bucket), -1); err != nil {
		return false, err
	}
	if err := a.tx.Bucket(bktPins).Delete(genKey(rec.Bucket, rec.Key, rec.Generation)); err != nil {
		return false, err
	}
	if linked(a.tx, rec) {
		return false, nil
	}
	if err := a.addUnlinked(rec, -1); err != nil {
		return false, err
	}
	return true, a.dropClip(rec)
}

// releaseClip is what overwriting or deleting a key does to its old
// record: a record a dataset holds is unlinked (out of the capture index;
// record, shards and indexes stay), any other dropped.
func (a *applier) releaseClip(rec *pb.ClipRecord) error {
	if !pinned(a.tx, rec.ClipId) {
		return a.dropClip(rec)
	}
	if err := indexCapture(a.tx, rec, true); err != nil {
		return err
	}
	return a.addUnlinked(rec, 1)
}

func memberKey(name string, pos uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(name), 0), pos)
}

// errStopMembers ends eachMember early without an error.
var errStopMembers = errors.New("stop")

// eachMember calls fn with every member of dataset name at or after
// position start, in position order, with its key in bktDatasetMembers
// (valid during the call only). fn returning errStopMembers ends the walk
// without an error.
func eachMember(tx *bolt.Tx, name string, start uint64, fn func(pos uint64, k []byte, m *pb.DatasetMember) error) error {
	prefix := append([]byte(name), 0)
	cur := tx.Bucket(bktDatasetMembers).Cursor()
	for k, v := cur.Seek(memberKey(name, start)); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
		m := &pb.DatasetMember{}
		if err := decodeMsg(k, v, m); err != nil {
			return err
		}
		if err := fn(u64(k[len(prefix):]), k, m); err != nil {
			if errors.Is(err, errStopMembers) {
				return nil
			}
			return err
		}
	}
	return nil
}

// bucketPinKey counts the records of bucket that datasets hold.
func bucketPinKey(bucket string) []byte { return append([]byte("b"), bucket...) }

func (a *applier) createDataset(c *pb.CreateDatasetRequest) (*pb.CreateDatasetResponse, error) {
	if err := ValidateDatasetName(c.Name); err != nil {
		return nil, err
	}
	if err := ValidateBucketName(c.Bucket); err != nil {
		return nil, err
	}
	if len(c.Members) > maxDatasetMembers {
		return nil, fmt.Errorf("%w: %d members; a dataset has at most %d", ErrInvalidArgument, len(c.Members), maxDatasetMembers)
	}
	if a.tx.Bucket(bktDatasets).Get([]byte(c.Name)) != nil {
		return nil, fmt.Errorf("%w: dataset %q", ErrExists, c.Name)
	}
	if a.tx.Bucket(bktBuckets).Get([]byte(c.Bucket)) == nil {
		return nil, fmt.Errorf("%w: bucket %q", ErrNotFound, c.Bucket)
	}
	ds := &pb.Dataset{Name: c.Name, Bucket: c.Bucket, CreatedUnixNano: c.CreatedUnixNano, Description: c.Description,
		CreatedBy: c.CreatedBy, Building: c.Staged}
	if c.Staged {
		ds.StagedUntilUnixNano = c.CreatedUnixNano + int64(datasetStaging)
	}
	if err := a.addMembers(ds, c.Members); err != nil {
		return nil, err
	}
	return &pb.CreateDatasetResponse{Dataset: ds}, putMsg(a.tx.Bucket(bktDatasets), []byte(c.Name), ds)
}

// addMembers checks that every member exists at its generation (and is
// not listed twice in the batch, nor already in ds), and appends and pins
// them at ds's next positions.
func (a *applier) addMembers(ds *pb.Dataset, batch []*pb.DatasetMember) error {
	if ds.Positions+uint64(len(batch)) > maxDatasetTotal {
		return fmt.Errorf("%w: a dataset has at most %d members", ErrInvalidArgument, maxDatasetTotal)
	}
	seen := make(map[string]bool, len(batch))
	recs := make([]*pb.ClipRecord, len(batch))
	for i, m := range batch {
		rec, err := a.clipByID(m.ClipId)
		if err != nil {
			return err
		}
		if rec == nil || rec.Bucket != ds.Bucket || rec.Key != m.Key || rec.Generation != m.Generation {
			return fmt.Errorf("%w: member %d, %s/%s, is no longer at generation %d: make the dataset again",
				ErrFailedPrecondition, ds.Positions+uint64(i), ds.Bucket, m.Key, m.Generation)
		}
		if seen[string(m.ClipId)] {
			return fmt.Errorf("%w: %s/%s at generation %d is listed twice", ErrInvalidArgument, ds.Bucket, m.Key, m.Generation)
		}
		seen[string(m.ClipId)] = true
		recs[i] = rec
	}
	members := a.tx.Bucket(bktDatasetMembers)
	for _, rec := range recs {
		m := &pb.DatasetMember{Key: rec.Key, ClipId: rec.ClipId, Generation: rec.Generation, Size: rec.Size}
		if err := putMsg(members, memberKey(ds.Name, ds.Positions), m); err != nil {
			return err
		}
		if err := a.pin(rec); err != nil {
			return err
		}
		ds.Positions++
		ds.Members++
		ds.Bytes += rec.Size
	}
	return nil
}

// extendDataset appends a batch to a dataset being made, and seals it.
func (a *applier) extendDataset(c *pb.ExtendDatasetRequest) (*pb.CreateDatasetResponse, error) {
	if len(c.Members) > maxDatasetMembers {
		return nil, fmt.Errorf("%w: %d members in one entry; at most %d", ErrInvalidArgument, len(c.Members), maxDatasetMembers)
	}
	ds := &pb.Dataset{}
	found, err := getMsg(a.tx.Bucket(bktDatasets), []byte(c.Name), ds)
	switch {
	case err != nil:
		return nil, err
	case !found:
		return nil, fmt.Errorf("%w: dataset %q (a dataset being made that is not sealed in time is deleted)", ErrNotFound, c.Name)
	case !ds.Building:
		return nil, fmt.Errorf("%w: dataset %q is sealed", ErrFailedPrecondition, c.Name)
	case c.Start != ds.Positions:
		return nil, fmt.Errorf("%w: dataset %q has %d members so far, the batch starts at %d", ErrFailedPrecondition, c.Name, ds.Positions, c.Start)
	}
	if err := a.addMembers(ds, c.Members); err != nil {
		return nil, err
	}
	if c.Seal {
		ds.Building, ds.StagedUntilUnixNano = false, 0
	}
	return &pb.CreateDatasetResponse{Dataset: ds}, putMsg(a.tx.Bucket(bktDatasets), []byte(c.Name), ds)
}

func (a *applier) deleteDataset(c *pb.DeleteDatasetRequest) (*pb.DeleteDatasetResponse, error) {
	if a.tx.Bucket(bktDatasets).Get([]byte(c.Name)) == nil {
		return nil, fmt.Errorf("%w: dataset %q", ErrNotFound, c.Name)
	}
	resp := &pb.DeleteDatasetResponse{}
	var keys [][]byte
	err := eachMember(a.tx, c.Name, 0, func(_ uint64, k []byte, m *pb.DatasetMember) error {
		keys = append(keys, bytes.Clone(k))
		rec, err := a.clipByID(m.ClipId)
		if err != nil || rec == nil { // nil: purged
			return err
		}
		collected, err := a.unpin(rec)
		if collected {
			resp.ReleasedClips++
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	members := a.tx.Bucket(bktDatasetMembers)
	for _, k := range keys {
		if err := members.Delete(k); err != nil {
			return nil, err
		}
	}
	return resp, a.tx.Bucket(bktDatasets).Delete([]byte(c.Name))
}

// purgeClip takes a key out of every dataset and deletes every generation
// of it.
func (a *applier) purgeClip(c *pb.PurgeClipRequest) (*pb.PurgeClipResponse, error) {
	if err := ValidateBucketName(c.Bucket); err != nil {
		return nil, err
	}
	if err := ValidateKey(c.Key); err != nil {
		return nil, err
	}
	resp := &pb.PurgeClipResponse{}
	datasets := a.tx.Bucket(bktDatasets)
	members := a.tx.Bucket(bktDatasetMembers)
	type hit struct {
		ds  *pb.Dataset
		key []byte
		m   *pb.DatasetMember
	}
	var hits []hit
	err := datasets.ForEach(func(k, v []byte) error {
		ds := &pb.Dataset{}
		if err := decodeMsg(k, v, ds); err != nil {
			return err
		}
		if ds.Bucket != c.Bucket {
			return nil
		}
		return eachMember(a.tx, ds.Name, 0, func(_ uint64, mk []byte, m *pb.DatasetMember) error {
			if m.Key == c.Key {
				hits = append(hits, hit{ds: ds, key: bytes.Clone(mk), m: m})
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	touched := map[string]*pb.Dataset{}
	for _, h := range hits {
		if err := members.Delete(h.key); err != nil {
			return nil, err
		}
		h.ds.Members--
		h.ds.Bytes -= min(h.ds.Bytes, h.m.Size)
		touched[h.ds.Name] = h.ds
		rec, err := a.clipByID(h.m.ClipId)
		if err != nil {
			return nil, err
		}
		if rec == nil {
			continue
		}
		collected, err := a.unpin(rec)
		if err != nil {
			return nil, err
		}
		if collected {
			resp.Generations++
		}
	}
	for name, ds := range touched {
		resp.Datasets = append(resp.Datasets, name)
		if err := putMsg(datasets, []byte(name), ds); err != nil {
			return nil, err
		}
	}
	cur, err := a.currentClip(c.Bucket, c.Key)
	if err != nil {
		return nil, err
	}
	if cur != nil {
		if err := a.releaseClip(cur); err != nil { // held by no dataset now: dropped
			return nil, err
		}
		if err := a.tx.Bucket(bktKeys).Delete(keyOf(c.Bucket, c.Key)); err != nil {
			return nil, err
		}
		resp.Generations++
	}
	if resp.Generations == 0 && len(hits) == 0 {
		return nil, fmt.Errorf("%w: clip %s/%s", ErrNotFound, c.Bucket, c.Key)
	}
	return resp, nil
}

// bucketPinned reports whether a dataset holds a record of bucket.
func bucketPinned(tx *bolt.Tx, bucket string) bool {
	return tx.Bucket(bktPins).Get(bucketPinKey(bucket)) != nil
}

// pinnedGeneration returns the record of a generation a dataset holds, or
// nil.
func pinnedGeneration(tx *bolt.Tx, bucket, key string, gen uint64) (*pb.ClipRecord, error) {
	id := tx.Bucket(bktPins).Get(genKey(bucket, key, gen))
	if id == nil {
		return nil, nil
	}
	rec := &pb.ClipRecord{}
	found, err := getMsg(tx.Bucket(bktClips), id, rec)
	if err != nil || !found {
		return nil, err
	}
	return rec, nil
}

// datasetOnly is how many records only datasets keep, and their bytes.
func datasetOnly(tx *bolt.Tx) (clips, size uint64) {
	st := tx.Bucket(bktPins).Get(keyPinStats)
	if len(st) != 16 {
		return 0, 0
	}
	return u64(st[:8]), u64(st[8:])
}

// createDataset fills in what the leader decides (time, who) and commits
// the dataset in one entry.
func (n *Node) createDataset(ctx context.Context, req *pb.CreateDatasetRequest) (*pb.CreateDatasetResponse, error) {
	cmd := proto.Clone(req).(*pb.CreateDatasetRequest)
	cmd.CreatedUnixNano = n.cfg.now().UnixNano()
	if p, ok := peer.FromContext(ctx); ok && cmd.CreatedBy == "" {
		cmd.CreatedBy = p.Addr.String()
	}
	if p := principalOf(ctx); p != "" {
		cmd.CreatedBy = p
	}
	resp, err := n.propose(ctx, &pb.Command{RequestId: req.RequestId, Op: &pb.Command_CreateDataset{CreateDataset: cmd}})
	if err != nil {
		return nil, err
	}
	return resp.(*pb.CreateDatasetResponse), nil
}

func (n *Node) listDatasets(_ context.Context, _ *pb.ListDatasetsRequest) (*pb.ListDatasetsResponse, error) {
	resp := &pb.ListDatasetsResponse{}
	err := n.fsm.viewApplied(func(tx *bolt.Tx) error {
		return tx.Bucket(bktDatasets).ForEach(func(k, v []byte) error {
			ds := &pb.Dataset{}
			if err := decodeMsg(k, v, ds); err != nil {
				return err
			}
			if !ds.Building {
				resp.Datasets = append(resp.Datasets, ds)
			}
			return nil
		})
	})
	return resp, err
}

func (n *Node) getDataset(_ context.Context, req *pb.GetDatasetRequest) (*pb.GetDatasetResponse, error) {
	limit := pageSize(req.PageSize)
	resp := &pb.GetDatasetResponse{Dataset: &pb.Dataset{}}
	err := n.fsm.viewApplied(func(tx *bolt.Tx) error {
		found, err := getMsg(tx.Bucket(bktDatasets), []byte(req.Name), resp.Dataset)
		if err != nil {
			return err
		}
		if !found || resp.Dataset.Building {
			return fmt.Errorf("%w: dataset %q", ErrNotFound, req.Name)
		}
		return eachMember(tx, req.Name, req.Start, func(pos uint64, _ []byte, m *pb.DatasetMember) error {
			if len(resp.Members) == limit {
				resp.More, resp.Next = true, pos
				return errStopMembers
			}
			resp.Members = append(resp.Members, m)
			return nil
		})
	})
	return resp, err
}

// expireDatasets is the leader's: it deletes the datasets being made that
// were not sealed in time (their writer gave up or died).
func (n *Node) expireDatasets(now time.Time) {
	var stale []string
	n.fsm.viewApplied(func(tx *bolt.Tx) error {
		return tx.Bucket(bktDatasets).ForEach(func(k, v []byte) error {
			ds := &pb.Dataset{}
			if decodeMsg(k, v, ds) == nil && ds.Building && ds.StagedUntilUnixNano < now.UnixNano() {
				stale = append(stale, ds.Name)
			}
			return nil
		})
	})
	for _, name := range stale {
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ApplyTimeout)
		_, err := n.propose(ctx, &pb.Command{Op: &pb.Command_DeleteDataset{DeleteDataset: &pb.DeleteDatasetRequest{Name: name}}})
		cancel()
		if err != nil {
			n.log.Warn("expire an unsealed dataset", "dataset", name, "err", err)
			continue
		}
		n.log.Warn("dataset never sealed: deleted", "dataset", name)
	}
}
