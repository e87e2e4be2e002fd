package erasure

import (
	"encoding/hex"
	"testing"
)

// TestFormatGolden pins the checksums the shard format is made of; the
// values were computed by the original implementation. Storage nodes and
// stored shards depend on them: they must never change.
func TestFormatGolden(t *testing.T) {
	p := []byte("clipstore piece bytes")
	crcs := []struct {
		got, want uint32
	}{
		{PieceCRC(0, 0, nil), 0x2b60b55d},
		{PieceCRC(3, 7, p), 0x05884c8e},
		{PieceCRC(63, 1<<40, p), 0x13b82a70},
		{PieceCRC(-1, -1, p), 0x15f66058},
	}
	for i, c := range crcs {
		if c.got != c.want {
			t.Errorf("PieceCRC case %d = %#08x, want %#08x", i, c.got, c.want)
		}
	}
	var s ShardSum
	s.Add(1)
	s.Add(0xdeadbeef)
	if s.Sum32() != 0xcc8dd2b9 {
		t.Errorf("ShardSum = %#08x", s.Sum32())
	}
	if got := hex.EncodeToString(AppendTrailer(nil, 2, 9, []uint32{1, 2, 3})); got != "010000000200000003000000e08413bc" {
		t.Errorf("trailer = %s", got)
	}
}
