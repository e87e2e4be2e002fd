package meta

import (
	"bytes"
	"path/filepath"
	"testing"

	pb "github.com/clipstore/clipstore/proto/metapb"
	bolt "go.etcd.io/bbolt"
)

// TestCaptureIndexBuiltAtOpen: a state written before the capture index
// existed gets it, from its current records only, when it is opened.
func TestCaptureIndexBuiltAtOpen(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	snapshot := func() [][]byte {
		var keys [][]byte
		db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(bktCapture).ForEach(func(k, _ []byte) error { keys = append(keys, bytes.Clone(k)); return nil })
		})
		return keys
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := initState(tx); err != nil {
			return err
		}
		a := &applier{tx: tx}
		for i, c := range []*pb.CaptureAttributes{
			{VehicleId: "v1", Camera: "front", StartUnixNano: 100, Tags: []string{"rain", "rain", "night"}},
			{VehicleId: "v2", StartUnixNano: 50},
			nil,
		} {
			rec := &pb.ClipRecord{Bucket: "b", Key: string(rune('a' + i)), ClipId: bytes.Repeat([]byte{byte(i + 1)}, 16), Capture: c}
			if err := a.putClip(rec); err != nil {
				return err
			}
		}
		// A record that is not its key's current one is not indexed.
		return putMsg(tx.Bucket(bktClips), bytes.Repeat([]byte{9}, 16),
			&pb.ClipRecord{Bucket: "b", Key: "a", ClipId: bytes.Repeat([]byte{9}, 16), Capture: &pb.CaptureAttributes{VehicleId: "old"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot()
	if len(before) != 7 { // t, v, c and 2 tags of the first; t and v of the second
		t.Fatalf("%d index entries, want 7", len(before))
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bktCapture); err != nil {
			return err
		}
		return initState(tx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if after := snapshot(); len(after) != len(before) {
		t.Fatalf("rebuilt %d entries, had %d", len(after), len(before))
	} else {
		for i := range after {
			if !bytes.Equal(after[i], before[i]) {
				t.Fatalf("entry %d rebuilt as %q, was %q", i, after[i], before[i])
			}
		}
	}
}
