package meta

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/clipstore/clipstore/internal/capability"
	pb "github.com/clipstore/clipstore/proto/metapb"
	storagepb "github.com/clipstore/clipstore/proto/storagepb"
	bolt "go.etcd.io/bbolt"
)

// Capabilities. With Config.RequireAuth, storage nodes take a caller's
// stream only with a token meta signed (internal/capability), unless the
// caller's certificate is a cluster member's. Meta keeps the keyring in
// Raft (bktSettings, keyKeyring): the leader adds a key every
// KeyRotation and keeps the newest keyringSize. Nodes get the keyring in
// their registration answer, before they serve, and in every heartbeat
// answer after it changed. A new key signs only once every node that is up
// must have it: after twice NodeDownAfter (a node that has not heartbeated
// for that long is down, and one that has received the key with its
// answer). Tokens come with BeginPut and BeginPart (write: the clip, its
// shard ids, the commit deadline), GetClip (read: the clip) and
// InventoryCapability (fsck, a cluster admin's). Storage nodes admit each
// other's calls (repairs' sources, moves) by certificate: a node holding
// the keyring could mint any token anyway.

// keyKeyring is where bktSettings keeps the keyring.
var keyKeyring = []byte("capability_keyring")

// keyringSize is how many keys the keyring keeps: the signing key, the
// one before it (tokens it signed are still out), and a new one on its
// way to the nodes.
const keyringSize = 3

// capabilities are on with RequireAuth.
func (n *Node) capabilities() bool { return n.cfg.RequireAuth }

// keyringCache is the keyring as the state holds it, re-read at most once
// a second.
type keyringCache struct {
	ring *pb.Keyring
	at   time.Time
}

// keyring returns the capability keyring (nil without capabilities).
func (n *Node) keyring() (*pb.Keyring, error) {
	if !n.capabilities() {
		return nil, nil
	}
	if c := n.ring.Load(); c != nil && time.Since(c.at) < time.Second {
		return c.ring, nil
	}
	ring := &pb.Keyring{}
	err := n.fsm.viewApplied(func(tx *bolt.Tx) error {
		_, err := getMsg(tx.Bucket(bktSettings), keyKeyring, ring)
		return err
	})
	if err != nil {
		return nil, err
	}
	ring.Required = true
	n.ring.Store(&keyringCache{ring: ring, at: time.Now()})
	return ring, nil
}

// capabilityKey is the key tokens are signed with: the newest that every up
// node has had time to receive, else (a new keyring) the oldest.
func (n *Node) capabilityKey() (*pb.CapabilityKey, error) {
	ring, err := n.keyring()
	if err != nil {
		return nil, err
	}
	if len(ring.GetKeys()) == 0 {
		return nil, fmt.Errorf("%w: the capability keyring is empty (a new leader makes it within a heartbeat); retry", ErrUnavailable)
	}
	return chooseKey(ring.Keys, n.cfg.now(), 2*n.cfg.NodeDownAfter), nil
}

// chooseKey is the newest of keys (oldest first) made at least activation
// before now, else the oldest.
func chooseKey(keys []*pb.CapabilityKey, now time.Time, activation time.Duration) *pb.CapabilityKey {
	active := now.Add(-activation).UnixNano()
	key := keys[0]
	for _, k := range keys {
		if k.CreatedUnixNano <= active {
			key = k
		}
	}
	return key
}

// mint signs c with the signing key; nil without capabilities.
func (n *Node) mint(c *storagepb.Capability) ([]byte, error) {
	if !n.capabilities() {
		return nil, nil
	}
	key, err := n.capabilityKey()
	if err != nil {
		return nil, err
	}
	c.KeyId = key.Id
	return capability.Mint(key.Secret, c)
}

// writeCapability attaches to a BeginPut or BeginPart answer the token
// for its shards.
func (n *Node) writeCapability(resp *pb.BeginPutResponse) error {
	c := &storagepb.Capability{Op: storagepb.CapabilityOp_CAPABILITY_OP_WRITE, ClipIds: [][]byte{resp.ClipId},
		HeaderDeadlineUnixNano: resp.CommitDeadlineUnixNano, ExpiresUnixNano: resp.CommitDeadlineUnixNano}
	for _, t := range resp.Targets {
		if len(t.ShardId) > 0 {
			c.ShardIds = append(c.ShardIds, t.ShardId)
		}
	}
	for _, s := range resp.Spares {
		c.ShardIds = append(c.ShardIds, s.ShardId)
	}
	var err error
	resp.Capability, err = n.mint(c)
	return err
}

// readCapability is the token to read the shards of clip, valid for
// CapabilityTTL.
func (n *Node) readCapability(clip []byte) ([]byte, error) {
	return n.mint(&storagepb.Capability{Op: storagepb.CapabilityOp_CAPABILITY_OP_READ, ClipIds: [][]byte{clip},
		ExpiresUnixNano: n.cfg.now().Add(n.cfg.CapabilityTTL).UnixNano()})
}

// inventoryCapability is fsck's token: list and stat any shard.
func (n *Node) inventoryCapability() ([]byte, error) {
	return n.mint(&storagepb.Capability{Op: storagepb.CapabilityOp_CAPABILITY_OP_INVENTORY,
		ExpiresUnixNano: n.cfg.now().Add(n.cfg.CapabilityTTL).UnixNano()})
}

// rotateKeyring is the leader's: it makes the first key, and a new one
// when the newest is KeyRotation old.
func (n *Node) rotateKeyring(now time.Time) {
	ring, err := n.keyring()
	if err != nil || ring == nil {
		return
	}
	keys := ring.GetKeys()
	if len(keys) > 0 && now.Sub(time.Unix(0, keys[len(keys)-1].CreatedUnixNano)) < n.cfg.KeyRotation {
		return
	}
	add := &pb.CapabilityKey{Id: 1, Secret: make([]byte, 32), CreatedUnixNano: now.UnixNano()}
	rand.Read(add.Secret)
	var drop uint32
	if len(keys) > 0 {
		add.Id = keys[len(keys)-1].Id + 1
		if len(keys) >= keyringSize {
			drop = keys[len(keys)-keyringSize+1].Id
		}
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ApplyTimeout)
	defer cancel()
	if _, err := n.propose(ctx, &pb.Command{Op: &pb.Command_SetKeyring{SetKeyring: &pb.SetKeyringCommand{Add: add, DropBelow: drop}}}); err != nil {
		n.log.Warn("capability keyring not rotated", "err", err)
		return
	}
	n.ring.Store(nil)
	n.log.Info("capability key added", "id", add.Id, "dropped_below", drop)
}

// setKeyring applies a rotation: the key added is the next id, and keys
// below drop_below go.
func (a *applier) setKeyring(c *pb.SetKeyringCommand) (*pb.SettingsResponse, error) {
	if c.Add == nil || c.Add.Id == 0 || len(c.Add.Secret) != 32 {
		return nil, fmt.Errorf("%w: a capability key needs an id and 32 bytes of secret", ErrInvalidArgument)
	}
	ring := &pb.Keyring{}
	b := a.tx.Bucket(bktSettings)
	if _, err := getMsg(b, keyKeyring, ring); err != nil {
		return nil, err
	}
	if n := len(ring.Keys); n > 0 && c.Add.Id != ring.Keys[n-1].Id+1 {
		return nil, fmt.Errorf("%w: capability key %d after %d", ErrFailedPrecondition, c.Add.Id, ring.Keys[n-1].Id)
	}
	kept := ring.Keys[:0]
	for _, k := range ring.Keys {
		if k.Id >= c.DropBelow {
			kept = append(kept, k)
		}
	}
	ring.Keys = append(kept, c.Add)
	return &pb.SettingsResponse{}, putMsg(b, keyKeyring, ring)
}

// keyringFor is what a heartbeat answer carries: the keyring when the
// node's differs from it.
func (n *Node) keyringFor(req *pb.HeartbeatRequest) *pb.Keyring {
	ring, err := n.keyring()
	if err != nil || ring == nil || len(ring.Keys) == 0 {
		return nil
	}
	if req.KeyringNewest == ring.Keys[len(ring.Keys)-1].Id && req.KeyringOldest == ring.Keys[0].Id {
		return nil
	}
	return ring
}
