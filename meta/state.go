package meta

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/clipstore/clipstore/erasure"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// The FSM's bbolt layout. Every value is a protobuf message prefixed with
// its CRC32C (bbolt checksums only its meta pages), except the marker
// values of the pure index buckets.
var (
	bktBuckets     = []byte("buckets")      // bucket name -> Bucket
	bktKeys        = []byte("keys")         // bucket NUL key -> clip id
	bktClips       = []byte("clips")        // clip id -> ClipRecord
	bktNodeShards  = []byte("node_shards")  // node id NUL shard id -> NodeShardRecord
	bktDegraded    = []byte("degraded")     // clip id -> (empty): clips with a shard not OK
	bktDeletes     = []byte("deletes")      // node id NUL shard id -> (empty): delete queue
	bktNodes       = []byte("nodes")        // node id -> StorageNode
	bktMembers     = []byte("members")      // member id -> Member
	bktRequests    = []byte("requests")     // request id -> RequestRecord
	bktReqExpiry   = []byte("req_expiry")   // be64 expiry, request id -> (empty)
	bktMeta        = []byte("meta")         // keyApplied -> be64 Raft index
	bktSettings    = []byte("settings")     // keyRepairLimits -> RepairLimits, keyRepairHold -> SetRepairHoldCommand
	bktAccessKeys  = []byte("access_keys")  // access key id -> AccessKey
	bktUploads     = []byte("uploads")      // upload id -> UploadRecord
	bktUploadParts = []byte("upload_parts") // upload id ++ be32 part number -> UploadPart
	bktUploadKeys  = []byte("upload_keys")  // bucket NUL key NUL upload id -> (empty)
	// upload id ++ be32 part number -> (empty): parts with a shard not OK
	bktUploadDegraded = []byte("upload_degraded")
	// bucket NUL dim value NUL start clip id -> (empty): see capture.go
	bktCapture = []byte("capture")

	allBuckets = [][]byte{bktBuckets, bktKeys, bktClips, bktNodeShards, bktDegraded, bktDeletes,
		bktNodes, bktMembers, bktRequests, bktReqExpiry, bktMeta, bktSettings, bktAccessKeys,
		bktUploads, bktUploadParts, bktUploadKeys, bktUploadDegraded, bktCapture,
		bktDatasets, bktDatasetMembers, bktPins}

	keyRepairLimits = []byte("repair_limits")
	keyRepairHold   = []byte("repair_hold")
	keyMoveLimits   = []byte("move_limits")
	keyRebalance    = []byte("rebalance")
	// keyRebalanceWanted records that a storage node joined since the last
	// rebalance started ("storage node s7 joined"), so that a leader, this
	// one or the next, starts one if AutoRebalance and the fill is uneven.
	keyRebalanceWanted = []byte("rebalance_wanted")

	keyApplied = []byte("applied_index")
)

// ErrStateCorrupt reports a value of the FSM database that fails its
// checksum or does not decode: local disk damage.
var ErrStateCorrupt = errors.New("meta state corrupt")

// initState creates the buckets of a new database, and those a newer
// build added to an older one: the capture index is built then from the
// records.
func initState(tx *bolt.Tx) error {
	newIndex := tx.Bucket(bktCapture) == nil
	for _, b := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	if newIndex {
		return buildCaptureIndex(tx)
	}
	return nil
}

// putMsg stores m under key with its checksum.
func putMsg(b *bolt.Bucket, key []byte, m proto.Message) error {
	opts := proto.MarshalOptions{Deterministic: true}
	v, err := opts.MarshalAppend(make([]byte, 4, 4+opts.Size(m)), m)
	if err != nil {
		return err
	}
	binary.BigEndian.PutUint32(v, erasure.CRC32C(v[4:]))
	return b.Put(key, v)
}

// getMsg loads key into m; found is false when the key is absent.
func getMsg(b *bolt.Bucket, key []byte, m proto.Message) (found bool, err error) {
	v := b.Get(key)
	if v == nil {
		return false, nil
	}
	return true, decodeMsg(key, v, m)
}

func decodeMsg(key, v []byte, m proto.Message) error {
	if len(v) < 4 || binary.BigEndian.Uint32(v) != erasure.CRC32C(v[4:]) {
		return fmt.Errorf("%w: bad checksum for key %q", ErrStateCorrupt, key)
	}
	if err := proto.Unmarshal(v[4:], m); err != nil {
		return fmt.Errorf("%w: key %q: %v", ErrStateCorrupt, key, err)
	}
	return nil
}

// appliedIndex reads the Raft index of the last applied entry.
func appliedIndex(tx *bolt.Tx) uint64 {
	v := tx.Bucket(bktMeta).Get(keyApplied)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func setAppliedIndex(tx *bolt.Tx, idx uint64) error {
	return tx.Bucket(bktMeta).Put(keyApplied, be64(idx))
}

func be64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// joinKey builds the composite key a NUL b; neither part may contain NUL
// (validation guarantees it for names, ids are fixed-size).
func joinKey(a string, b []byte) []byte {
	k := make([]byte, 0, len(a)+1+len(b))
	k = append(k, a...)
	k = append(k, 0)
	return append(k, b...)
}

func keyOf(bucket, key string) []byte { return joinKey(bucket, []byte(key)) }
