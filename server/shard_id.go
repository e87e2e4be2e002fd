package server

import (
	"encoding/hex"
	"fmt"
	"path"
	"path/filepath"
)

// ShardID names one shard: 128 bits chosen by meta, new for every write,
// repair and move, never reused. It alone decides where the shard lives on
// disk. Meta hands out UUIDv7s (time-ordered, then random), so the
// directory fan-out takes the last, random byte: shards/<id[15]>/.
type ShardID [16]byte

// ClipID names a clip; a shard's header records the clip it belongs to.
type ClipID [16]byte

// ParseShardID converts the wire form (exactly 16 bytes) to a ShardID.
func ParseShardID(b []byte) (ShardID, error) {
	var id ShardID
	if len(b) != len(id) {
		return id, fmt.Errorf("%w: shard id must be %d bytes, got %d", ErrInvalidArgument, len(id), len(b))
	}
	copy(id[:], b)
	return id, nil
}

// ParseClipID converts the wire form (exactly 16 bytes) to a ClipID.
func ParseClipID(b []byte) (ClipID, error) {
	var id ClipID
	if len(b) != len(id) {
		return id, fmt.Errorf("%w: clip id must be %d bytes, got %d", ErrInvalidArgument, len(id), len(b))
	}
	copy(id[:], b)
	return id, nil
}

// parseShardIDHex parses the 32-hex-digit file name form.
func parseShardIDHex(s string) (ShardID, bool) {
	var id ShardID
	if len(s) != 2*len(id) {
		return id, false
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, false
	}
	return id, id.String() == s // lower case only: one name per id
}

func (id ShardID) String() string { return hex.EncodeToString(id[:]) }
func (id ClipID) String() string  { return hex.EncodeToString(id[:]) }

// Less orders shard ids by fan-out directory (their last byte), then
// bytewise: the order of the node's index and of ListShards, which keeps
// the shards of one directory together for the inventory's file audit.
func (id ShardID) Less(o ShardID) bool {
	if a, b := id[len(id)-1], o[len(o)-1]; a != b {
		return a < b
	}
	return string(id[:]) < string(o[:])
}

// fanout is the number of directories under shards/.
const fanout = 256

// relPath is the shard's file name inside a data directory:
// shards/cd/…abcd, derived from the id and nothing else. The fan-out
// directory comes from the id's last byte, which is random in every id meta
// hands out (its first bytes are a timestamp), so shards spread evenly over
// the 256 directories openDisk makes. A directory holds 40,000 shards when
// the disk holds ten million; ext4 (htree) and XFS (B+tree) index entries
// by name hash, so a lookup reads a few blocks at that size, not the list.
func (id ShardID) relPath() string {
	return path.Join(fanoutDir(id[len(id)-1]), id.String())
}

// fanoutDir is the directory of the shards whose ids end in byte b.
func fanoutDir(b byte) string {
	return path.Join(shardsDir, hex.EncodeToString([]byte{b}))
}

// ShardFile is where a shard lives under the data directory dataDir, for
// tools and tests that look at a node's files.
func ShardFile(dataDir string, id ShardID) string {
	return filepath.Join(dataDir, filepath.FromSlash(id.relPath()))
}
