package meta

import (
	"testing"
	"time"

	pb "github.com/clipstore/clipstore/proto/metapb"
)

// TestChooseKey: a new key signs only once every up node must have it
// (activation after its creation); before, the newest older key does; a
// keyring of one new key uses it (no node can hold an older one).
func TestChooseKey(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	key := func(id uint32, age time.Duration) *pb.CapabilityKey {
		return &pb.CapabilityKey{Id: id, CreatedUnixNano: t0.Add(-age).UnixNano()}
	}
	const activation = 20 * time.Second
	for _, tc := range []struct {
		name string
		keys []*pb.CapabilityKey
		want uint32
	}{
		{"the first key, new", []*pb.CapabilityKey{key(1, time.Second)}, 1},
		{"a new key not yet active", []*pb.CapabilityKey{key(1, time.Hour), key(2, 19*time.Second)}, 1},
		{"a new key just active", []*pb.CapabilityKey{key(1, time.Hour), key(2, activation)}, 2},
		{"the newest active of three", []*pb.CapabilityKey{key(3, 2*time.Hour), key(4, time.Hour), key(5, time.Second)}, 4},
	} {
		if got := chooseKey(tc.keys, t0, activation).Id; got != tc.want {
			t.Errorf("%s: key %d signs, want %d", tc.name, got, tc.want)
		}
	}
}
