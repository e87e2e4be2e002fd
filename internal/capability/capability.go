// Package capability mints and checks the tokens with which storage nodes,
// which know no users, let a client read or write what meta allowed: a
// read token names clips, a write token one clip, its shard ids and the
// latest commit deadline their headers may carry, an inventory token lets
// fsck list a node's shards. HDFS's block tokens are the model.
//
// A token is a storagepb.SignedCapability: the deterministic encoding of a
// storagepb.Capability and its HMAC-SHA256 under a key of meta's keyring,
// named by the capability's key_id. Nodes get the keyring from meta over
// mutual TLS; a token is checked when a stream opens, against the node's
// clock with a bounded skew.
package capability

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	pb "github.com/clipstore/clipstore/proto/storagepb"
	"google.golang.org/protobuf/proto"
)

// Header is the gRPC metadata key (binary) of a storage call's token.
const Header = "clipstore-capability-bin"

// Skew is how far a token's expiry may be behind the verifier's clock.
const Skew = 30 * time.Second

// MaxToken bounds a token's size: a write token names at most a few
// hundred shard ids.
const MaxToken = 16 << 10

var (
	// ErrMalformed is a token that does not parse.
	ErrMalformed = errors.New("malformed capability token")
	// ErrForged is a token whose MAC does not match, or that names a key
	// the verifier does not have.
	ErrForged = errors.New("capability token not signed by the cluster's keyring")
	// ErrExpired is a token past its expiry.
	ErrExpired = errors.New("capability token expired")
	// ErrDenied is a valid token that does not cover the call.
	ErrDenied = errors.New("capability token does not cover this")
)

// macOf is the MAC of a capability's encoding under key.
func macOf(key, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("clipstore capability v1\x00"))
	m.Write(body)
	return m.Sum(nil)
}

// Mint signs c with key (whose id c.KeyId names) and returns the token.
func Mint(key []byte, c *pb.Capability) ([]byte, error) {
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(&pb.SignedCapability{Capability: body, Mac: macOf(key, body)})
}

// Keyring is what a verifier checks tokens with: keys by id.
type Keyring map[uint32][]byte

// Verify parses token, checks its MAC against the keyring and its expiry
// against now, and returns the capability.
func (k Keyring) Verify(token []byte, now time.Time) (*pb.Capability, error) {
	if len(token) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	if len(token) > MaxToken {
		return nil, fmt.Errorf("%w: %d bytes; at most %d", ErrMalformed, len(token), MaxToken)
	}
	var st pb.SignedCapability
	if err := proto.Unmarshal(token, &st); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	var c pb.Capability
	if err := proto.Unmarshal(st.Capability, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	key, ok := k[c.KeyId]
	if !ok || !hmac.Equal(macOf(key, st.Capability), st.Mac) {
		return nil, ErrForged
	}
	if exp := time.Unix(0, c.ExpiresUnixNano); now.After(exp.Add(Skew)) {
		return nil, fmt.Errorf("%w at %s", ErrExpired, exp.UTC().Format(time.RFC3339))
	}
	return &c, nil
}

// AllowsRead reports whether c lets its holder read (or stat) a shard
// whose header names clip.
func AllowsRead(c *pb.Capability, clip []byte) error {
	switch c.Op {
	case pb.CapabilityOp_CAPABILITY_OP_INVENTORY:
		return nil
	case pb.CapabilityOp_CAPABILITY_OP_READ:
		for _, id := range c.ClipIds {
			if bytes.Equal(id, clip) {
				return nil
			}
		}
		return fmt.Errorf("%w: the shard belongs to another clip", ErrDenied)
	}
	return fmt.Errorf("%w: a %v token does not read", ErrDenied, c.Op)
}

// AllowsWrite reports whether c lets its holder write shard id of clip
// with a header's commit deadline.
func AllowsWrite(c *pb.Capability, clip, shard []byte, deadline int64) error {
	if c.Op != pb.CapabilityOp_CAPABILITY_OP_WRITE {
		return fmt.Errorf("%w: a %v token does not write", ErrDenied, c.Op)
	}
	if len(c.ClipIds) != 1 || !bytes.Equal(c.ClipIds[0], clip) {
		return fmt.Errorf("%w: the header names another clip", ErrDenied)
	}
	if deadline > c.HeaderDeadlineUnixNano {
		return fmt.Errorf("%w: the header's commit deadline is later than the token allows", ErrDenied)
	}
	for _, id := range c.ShardIds {
		if bytes.Equal(id, shard) {
			return nil
		}
	}
	return fmt.Errorf("%w: the shard id is not one the token names", ErrDenied)
}

// AllowsInventory reports whether c lets its holder list a node's shards.
func AllowsInventory(c *pb.Capability) error {
	if c.Op != pb.CapabilityOp_CAPABILITY_OP_INVENTORY {
		return fmt.Errorf("%w: a %v token does not list shards", ErrDenied, c.Op)
	}
	return nil
}
