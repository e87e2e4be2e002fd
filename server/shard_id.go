package server

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path"
)

// ShardID names one shard: 128 random bits, new for every write, repair and
// move, never reused. It alone decides where the shard lives on disk.
type ShardID [16]byte

// ClipID names a clip; a shard's header records the clip it belongs to.
type ClipID [16]byte

// NewShardID returns a fresh random shard id.
func NewShardID() ShardID {
	var id ShardID
	rand.Read(id[:]) // never fails (crypto/rand docs)
	return id
}

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

// Less orders shard ids bytewise, the order ListShards pages in.
func (id ShardID) Less(o ShardID) bool { return string(id[:]) < string(o[:]) }

// relPath is the shard's file name inside a data directory:
// shards/ab/cd/abcd…, derived from the id and nothing else.
func (id ShardID) relPath() string {
	h := id.String()
	return path.Join(shardsDir, h[0:2], h[2:4], h)
}
