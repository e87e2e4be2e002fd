package server_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/clipstore/clipstore/erasure"
	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/meta/metatest"
	metapb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/clipstore/clipstore/server"
	"github.com/prometheus/client_golang/prometheus"
)

// newScrubCluster is newRepairCluster with the node configs adjusted: no
// background scrubbing or garbage collection unless tweak asks for it, so
// that tests run passes themselves.
func newScrubCluster(t *testing.T, n int, opts metatest.Options, tweak func(*server.Config)) (*repairCluster, *metatest.Cluster) {
	t.Helper()
	return startRepairCluster(t, n, opts, 17, func(cfg *server.Config) {
		cfg.ScrubInterval, cfg.GCInterval = 0, 0
		if tweak != nil {
			tweak(cfg)
		}
	})
}

// shardOrder is the node's order of shard ids (ShardID.Less), for
// slices.SortFunc.
func shardOrder(a, b server.ShardID) int {
	switch {
	case a.Less(b):
		return -1
	case b.Less(a):
		return 1
	}
	return 0
}

// flipTrailerByte damages the trailer of block b of a stored shard.
func flipTrailerByte(t *testing.T, n *testNode, id []byte, b int) {
	t.Helper()
	piece := erasure.PieceSize(repairBlock, repairK)
	unit := piece + erasure.TrailerSize(repairK+repairM)
	flipByte(t, shardPath(n.dirs[0], id), int64(128+b*unit+piece+2))
}

// TestScrubFindsCorruptShards damages pieces of three shard files and the
// trailer of a fourth, each of another clip: one scrub pass over the nodes
// finds exactly those, the heartbeats report them, meta marks them and its
// repair scheduler has them rebuilt, byte-identical, so that every clip
// decodes again from healthy shards.
func TestScrubFindsCorruptShards(t *testing.T) {
	rc, _ := newScrubCluster(t, 6, metatest.Options{}, nil)
	const size = 100_003 // 7 blocks, the last one short
	keys := []string{"a", "b", "c", "d"}
	clips := map[string]*storedClip{}
	for _, k := range keys {
		clips[k] = rc.put(t, k, size)
	}
	type damage struct {
		key   string
		index int
	}
	damages := []damage{{"a", 0}, {"b", 3}, {"c", 5}, {"d", 2}}
	want := map[string][]server.ShardID{} // by node
	for i, d := range damages {
		s, n := rc.shardOf(clips[d.key], d.index)
		if i < 3 {
			flipPieceByte(t, n, s.ShardId, 2*i) // blocks 0, 2, 4
		} else {
			flipTrailerByte(t, n, s.ShardId, 1)
		}
		want[s.NodeId] = append(want[s.NodeId], server.ShardID(s.ShardId))
	}

	start := time.Now()
	var total int64
	for _, id := range rc.ids {
		res, err := rc.nodes[id].node.ScrubNow(t.Context())
		if err != nil {
			t.Fatalf("scrub %s: %v", id, err)
		}
		total += res.Bytes
		w := want[id]
		slices.SortFunc(w, shardOrder)
		if !slices.Equal(res.Corrupt, w) {
			t.Errorf("scrub of %s found %v, want %v", id, res.Corrupt, w)
		}
		if res.Shards != len(keys) || res.Skipped != 0 || res.Errors != 0 {
			t.Errorf("scrub of %s: %+v, want %d shards read and nothing skipped", id, res, len(keys))
		}
		st := rc.nodes[id].node.ScrubStatus()
		if st.Passes != 1 || st.Running || st.LastPassCorrupt != len(w) || st.Done != int64(len(keys)) {
			t.Errorf("scrub status of %s: %+v", id, st)
		}
	}
	t.Logf("scrubbed %d bytes on %d nodes in %v", total, len(rc.ids), time.Since(start))

	// The heartbeats carry the findings; meta marks the shards corrupt and
	// its scheduler plans their repair (which may already have replaced
	// them by the time the test looks).
	await.True(t, 10*time.Second, "meta to act on every reported shard", func() bool {
		for _, d := range damages {
			old := clips[d.key].rec.Parts[0].Shards[d.index]
			got := rc.record(t, d.key).Parts[0].Shards[d.index]
			if bytes.Equal(got.ShardId, old.ShardId) && got.State != metapb.ShardState_SHARD_STATE_CORRUPT {
				return false
			}
		}
		return true
	})
	await.True(t, 20*time.Second, "every damaged shard to be rebuilt", func() bool {
		for _, d := range damages {
			old := clips[d.key].rec.Parts[0].Shards[d.index]
			for _, s := range rc.record(t, d.key).Parts[0].Shards {
				if s.State != metapb.ShardState_SHARD_STATE_OK || bytes.Equal(s.ShardId, old.ShardId) {
					return false
				}
			}
		}
		return true
	})
	for _, k := range keys {
		checkClipHealthy(t, rc, clips[k], k)
	}
	// A second pass finds nothing left to report.
	for _, id := range rc.ids {
		res, err := rc.nodes[id].node.ScrubNow(t.Context())
		if err != nil || len(res.Corrupt) != 0 {
			t.Errorf("second scrub of %s: %v corrupt, %v", id, res.Corrupt, err)
		}
	}
}

// checkClipHealthy reads every shard of the clip's record from its node
// (the node verifies every piece), compares it with what the writer sent
// and decodes the clip from k of them.
func checkClipHealthy(t *testing.T, rc *repairCluster, c *storedClip, key string) {
	t.Helper()
	rec := rc.record(t, key)
	readers := make([]io.Reader, rc.code.Shards())
	for _, s := range rec.Parts[0].Shards {
		stream := readStream(t, rc.nodes[s.NodeId], s.ShardId)
		if !bytes.Equal(stream, c.streams[s.Index]) {
			t.Errorf("clip %s shard %d on %s differs from what the writer sent", key, s.Index, s.NodeId)
		}
		if s.Index >= repairM { // decode from the last k: parity included
			readers[s.Index] = bytes.NewReader(stream)
		}
	}
	var out bytes.Buffer
	if _, err := rc.code.Decode(&out, readers, int64(rec.Size)); err != nil {
		t.Fatalf("decode clip %s: %v", key, err)
	}
	if !bytes.Equal(out.Bytes(), c.data) {
		t.Fatalf("clip %s decodes to different bytes", key)
	}
}

// TestScrubStandAlone scrubs a node without meta: a damaged header is
// found like a damaged piece, the pass keeps to ScrubRate, and the
// metrics count it.
func TestScrubStandAlone(t *testing.T) {
	cfg := testConfig(t, 2)
	const rate = 1 << 20
	cfg.ScrubRate = rate
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	n := startNode(t, cfg)
	r := rand.New(rand.NewPCG(51, 52))
	var shards []*testShard
	var fileBytes int64
	for range 6 {
		s := makeShard(r, 4, 2, 1, 16<<10, 50_000) // 13 pieces of 4 KiB (the last short)
		if _, err := writeShard(t.Context(), n.client, s); err != nil {
			t.Fatal(err)
		}
		shards = append(shards, s)
		info, err := n.node.Store().Stat(server.ShardID(s.id()))
		if err != nil {
			t.Fatal(err)
		}
		fileBytes += info.FileSize
	}
	// Damage the header of one shard, a middle piece of another.
	var bad []server.ShardID
	for i, off := range []int64{60, 128 + 5*(4096+28) + 100} {
		id := shards[i].id()
		path := ""
		for _, d := range cfg.DataDirs {
			if _, err := os.Stat(shardPath(d, id)); err == nil {
				path = d
			}
		}
		flipByte(t, shardPath(path, id), off)
		bad = append(bad, server.ShardID(id))
	}
	slices.SortFunc(bad, shardOrder)

	start := time.Now()
	res, err := n.node.ScrubNow(t.Context())
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Corrupt, bad) || res.Shards != len(shards) {
		t.Errorf("scrub found %v in %d shards, want %v in %d", res.Corrupt, res.Shards, bad, len(shards))
	}
	// The pass reads every byte of the healthy files, and up to the damage
	// of the others.
	if res.Bytes > fileBytes || res.Bytes < fileBytes/2 {
		t.Errorf("scrub read %d bytes of %d", res.Bytes, fileBytes)
	}
	floor := time.Duration(float64(res.Bytes) / rate * float64(time.Second))
	t.Logf("scrubbed %d bytes at %d B/s in %v (floor %v)", res.Bytes, rate, elapsed, floor)
	if elapsed < floor-5*time.Millisecond || elapsed > 5*floor+time.Second {
		t.Errorf("pass took %v, want about %v at %d B/s", elapsed, floor, rate)
	}
	for name, want := range map[string]float64{
		"clipstore_storage_scrubbed_bytes_total":       float64(res.Bytes),
		"clipstore_storage_scrub_corrupt_shards_total": 2,
		"clipstore_storage_scrub_passes_total":         1,
		"clipstore_storage_scrub_pass_shards_done":     float64(len(shards)),
		"clipstore_storage_scrub_pass_shards":          float64(len(shards)),
	} {
		if got := metricValue(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// TestScrubInBackground runs passes on their own, one every ScrubInterval,
// and reports findings without being asked.
func TestScrubInBackground(t *testing.T) {
	rc, _ := newScrubCluster(t, 6, metatest.Options{}, func(c *server.Config) {
		c.ScrubInterval, c.ScrubStartDelay = 30*time.Millisecond, 10*time.Millisecond
	})
	c := rc.put(t, "bg", 40_000)
	s, n := rc.shardOf(c, 4)
	flipPieceByte(t, n, s.ShardId, 1)
	await.True(t, 10*time.Second, "background passes", func() bool { return n.node.ScrubStatus().Passes >= 2 })
	await.True(t, 20*time.Second, "the damaged shard to be rebuilt", func() bool {
		got := rc.record(t, "bg").Parts[0].Shards[4]
		return !bytes.Equal(got.ShardId, s.ShardId) && got.State == metapb.ShardState_SHARD_STATE_OK
	})
	checkClipHealthy(t, rc, c, "bg")
}

// metricValue returns the value of an unlabelled counter or gauge.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	found := false
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			found = true
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	if !found {
		t.Fatalf("metric %s not registered", name)
	}
	return sum
}
