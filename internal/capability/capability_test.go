package capability

import (
	"bytes"
	"errors"
	"testing"
	"time"

	pb "github.com/clipstore/clipstore/proto/storagepb"
	"google.golang.org/protobuf/proto"
)

var (
	key1  = bytes.Repeat([]byte{1}, 32)
	key2  = bytes.Repeat([]byte{2}, 32)
	clipA = bytes.Repeat([]byte{0xa}, 16)
	clipB = bytes.Repeat([]byte{0xb}, 16)
	shard = bytes.Repeat([]byte{0x5}, 16)
	other = bytes.Repeat([]byte{0x6}, 16)
	t0    = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
)

func mint(t testing.TB, key []byte, c *pb.Capability) []byte {
	t.Helper()
	tok, err := Mint(key, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestCapabilityCases: the cases the design names — a good token, an
// expired one, one replayed past its window, a forged one, one signed with
// a key the node does not hold, a wrong shard, a wrong clip, a wrong
// operation, a later deadline — each accepted or refused with its error.
func TestCapabilityCases(t *testing.T) {
	ring := Keyring{1: key1}
	deadline := t0.Add(time.Hour).UnixNano()
	write := &pb.Capability{KeyId: 1, Op: pb.CapabilityOp_CAPABILITY_OP_WRITE, ClipIds: [][]byte{clipA},
		ShardIds: [][]byte{shard}, HeaderDeadlineUnixNano: deadline, ExpiresUnixNano: deadline}
	read := &pb.Capability{KeyId: 1, Op: pb.CapabilityOp_CAPABILITY_OP_READ, ClipIds: [][]byte{clipA},
		ExpiresUnixNano: t0.Add(time.Hour).UnixNano()}
	inventory := &pb.Capability{KeyId: 1, Op: pb.CapabilityOp_CAPABILITY_OP_INVENTORY, ExpiresUnixNano: t0.Add(time.Hour).UnixNano()}
	forged := mint(t, key1, read)
	forged[len(forged)-1] ^= 1
	tests := []struct {
		name  string
		token []byte
		now   time.Time
		check func(*pb.Capability) error
		want  error
	}{
		{"write its shard", mint(t, key1, write), t0, func(c *pb.Capability) error { return AllowsWrite(c, clipA, shard, deadline) }, nil},
		{"write an earlier deadline", mint(t, key1, write), t0, func(c *pb.Capability) error { return AllowsWrite(c, clipA, shard, deadline-1) }, nil},
		{"write another shard", mint(t, key1, write), t0, func(c *pb.Capability) error { return AllowsWrite(c, clipA, other, deadline) }, ErrDenied},
		{"write another clip", mint(t, key1, write), t0, func(c *pb.Capability) error { return AllowsWrite(c, clipB, shard, deadline) }, ErrDenied},
		{"write a later deadline", mint(t, key1, write), t0, func(c *pb.Capability) error { return AllowsWrite(c, clipA, shard, deadline+1) }, ErrDenied},
		{"write with a read token", mint(t, key1, read), t0, func(c *pb.Capability) error { return AllowsWrite(c, clipA, shard, deadline) }, ErrDenied},
		{"read its clip", mint(t, key1, read), t0, func(c *pb.Capability) error { return AllowsRead(c, clipA) }, nil},
		{"read another clip", mint(t, key1, read), t0, func(c *pb.Capability) error { return AllowsRead(c, clipB) }, ErrDenied},
		{"read with a write token", mint(t, key1, write), t0, func(c *pb.Capability) error { return AllowsRead(c, clipA) }, ErrDenied},
		{"list with a read token", mint(t, key1, read), t0, AllowsInventory, ErrDenied},
		{"list with an inventory token", mint(t, key1, inventory), t0, AllowsInventory, nil},
		{"read with an inventory token", mint(t, key1, inventory), t0, func(c *pb.Capability) error { return AllowsRead(c, clipB) }, nil},
		{"within the skew after expiry", mint(t, key1, read), t0.Add(time.Hour + Skew), nil, nil},
		{"replayed past its window", mint(t, key1, read), t0.Add(time.Hour + Skew + time.Second), nil, ErrExpired},
		{"forged", forged, t0, nil, ErrForged},
		{"signed with a key not held", mint(t, key2, &pb.Capability{KeyId: 2, Op: read.Op, ClipIds: read.ClipIds, ExpiresUnixNano: read.ExpiresUnixNano}), t0, nil, ErrForged},
		{"another key's id on key 1's MAC", mint(t, key1, &pb.Capability{KeyId: 2, Op: read.Op, ClipIds: read.ClipIds, ExpiresUnixNano: read.ExpiresUnixNano}), t0, nil, ErrForged},
		{"empty", nil, t0, nil, ErrMalformed},
		{"garbage", []byte("not a token"), t0, nil, ErrMalformed},
		{"oversized", bytes.Repeat([]byte{0}, MaxToken+1), t0, nil, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ring.Verify(tt.token, tt.now)
			if err == nil && tt.check != nil {
				err = tt.check(c)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("%v, want %v", err, tt.want)
			}
		})
	}
}

// TestTamperedFieldsAreForged: changing any field of a signed capability
// (more clips, more shards, a later expiry, another operation) breaks its
// MAC.
func TestTamperedFieldsAreForged(t *testing.T) {
	ring := Keyring{1: key1}
	c := &pb.Capability{KeyId: 1, Op: pb.CapabilityOp_CAPABILITY_OP_READ, ClipIds: [][]byte{clipA}, ExpiresUnixNano: t0.Add(time.Hour).UnixNano()}
	tok := mint(t, key1, c)
	for name, change := range map[string]func(*pb.Capability){
		"another clip":   func(c *pb.Capability) { c.ClipIds = append(c.ClipIds, clipB) },
		"later expiry":   func(c *pb.Capability) { c.ExpiresUnixNano += int64(time.Hour) },
		"inventory":      func(c *pb.Capability) { c.Op = pb.CapabilityOp_CAPABILITY_OP_INVENTORY },
		"another shard":  func(c *pb.Capability) { c.ShardIds = append(c.ShardIds, other) },
		"later deadline": func(c *pb.Capability) { c.HeaderDeadlineUnixNano++ },
	} {
		var st pb.SignedCapability
		if err := proto.Unmarshal(tok, &st); err != nil {
			t.Fatal(err)
		}
		var body pb.Capability
		if err := proto.Unmarshal(st.Capability, &body); err != nil {
			t.Fatal(err)
		}
		change(&body)
		st.Capability, _ = proto.MarshalOptions{Deterministic: true}.Marshal(&body)
		tampered, _ := proto.Marshal(&st)
		if _, err := ring.Verify(tampered, t0); !errors.Is(err, ErrForged) {
			t.Errorf("%s: %v, want ErrForged", name, err)
		}
	}
}

// FuzzVerify: no token panics the parser, and only tokens minted with the
// ring's key verify.
func FuzzVerify(f *testing.F) {
	good, _ := Mint(key1, &pb.Capability{KeyId: 1, Op: pb.CapabilityOp_CAPABILITY_OP_READ, ClipIds: [][]byte{clipA},
		ExpiresUnixNano: t0.Add(time.Hour).UnixNano()})
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x02, 0x08, 0x01, 0x12, 0x20})
	ring := Keyring{1: key1}
	f.Fuzz(func(t *testing.T, token []byte) {
		c, err := ring.Verify(token, t0)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrForged) && !errors.Is(err, ErrExpired) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		// It verified: its MAC is key 1's over its body.
		var st pb.SignedCapability
		if proto.Unmarshal(token, &st) != nil || !bytes.Equal(st.Mac, macOf(key1, st.Capability)) || c.KeyId != 1 {
			t.Fatalf("a token verified without key 1's MAC: %x", token)
		}
	})
}
