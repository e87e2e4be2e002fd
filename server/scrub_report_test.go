package server_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/meta/metatest"
	metapb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/clipstore/clipstore/server"
	"github.com/prometheus/client_golang/prometheus"
)

// TestHeartbeatCarriesScrubProgress: while a slow scrub pass runs on a
// node, meta's ClusterStatus shows it running part way through, in bytes;
// once it ends, meta shows the finished pass, its end time and the corrupt
// shard it found, exactly as the node and its metrics report them. Nodes
// that never scrubbed, with background scrubbing off, report that too.
func TestHeartbeatCarriesScrubProgress(t *testing.T) {
	reg := prometheus.NewRegistry()
	rc, _ := newScrubCluster(t, 6, metatest.Options{}, func(c *server.Config) {
		if c.NodeID == "node-0" {
			c.ScrubRate, c.Registerer = 80<<10, reg                   // four ~29 KiB shards: about 1.5 s
			c.ScrubInterval, c.ScrubStartDelay = time.Hour, time.Hour // no background pass within the test
		}
	})
	var damaged *storedClip
	for i := range 4 {
		c := rc.put(t, fmt.Sprintf("clip-%d", i), 100_003)
		if i == 0 {
			damaged = c
		}
	}
	n := rc.nodes["node-0"]
	for i := range repairK + repairM {
		if s, holder := rc.shardOf(damaged, i); holder == n {
			flipPieceByte(t, n, s.ShardId, 3)
		}
	}

	type result struct {
		res server.ScrubResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := n.node.ScrubNow(t.Context())
		done <- result{res, err}
	}()
	await.True(t, 10*time.Second, "meta to see the pass part way through", func() bool {
		st, s := nodeScrub(t, rc, "node-0")
		return s != nil && s.Running && s.BytesDone > 0 && s.BytesDone < s.BytesTotal &&
			st.ScrubBytesDone >= s.BytesDone && st.ScrubBytesTotal >= s.BytesTotal
	})
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	local := n.node.ScrubStatus()
	if local.Passes != 1 || local.Running || local.CorruptFound != 1 || local.BytesDone != r.res.Bytes ||
		local.BytesTotal < local.BytesDone || local.BytesDone < local.BytesTotal/2 {
		t.Fatalf("node's scrub status %+v after reading %d bytes", local, r.res.Bytes)
	}
	var st *metapb.ClusterStatusResponse
	await.True(t, 10*time.Second, "meta to see the finished pass", func() bool {
		var s *metapb.ScrubStatus
		st, s = nodeScrub(t, rc, "node-0")
		return s != nil && !s.Running && s.PassesCompleted == 1 && s.BytesDone == uint64(local.BytesDone) &&
			s.BytesTotal == uint64(local.BytesTotal) && s.ShardsDone == 4 && s.ShardsTotal == 4 &&
			s.CorruptFound == 1 && s.LastPassCorrupt == 1 && s.LastPassEndUnixNano == local.LastPassEnd.UnixNano() &&
			s.IntervalMs == time.Hour.Milliseconds()
	})
	if st.ScrubCorruptFound != 1 || st.ScrubBytesDone != 0 || st.ScrubBytesTotal != 0 || len(st.NodeScrubs) != 6 {
		t.Fatalf("cluster scrub: %d corrupt, %d of %d bytes in passes running, %d nodes reporting; want 1, 0 of 0, 6",
			st.ScrubCorruptFound, st.ScrubBytesDone, st.ScrubBytesTotal, len(st.NodeScrubs))
	}
	for _, ns := range st.NodeScrubs {
		if ns.NodeId != "node-0" && (ns.Scrub.PassesCompleted != 0 || ns.Scrub.Running || ns.Scrub.CorruptFound != 0 ||
			ns.Scrub.IntervalMs != 0) {
			t.Errorf("%s never scrubbed, reports %v", ns.NodeId, ns.Scrub)
		}
	}
	for name, want := range map[string]float64{
		"clipstore_storage_scrub_pass_bytes_done":                 float64(local.BytesDone),
		"clipstore_storage_scrub_pass_bytes":                      float64(local.BytesTotal),
		"clipstore_storage_scrub_running":                         0,
		"clipstore_storage_scrub_last_pass_end_timestamp_seconds": float64(local.LastPassEnd.UnixNano()) / 1e9,
	} {
		if got := metricValue(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// nodeScrub returns meta's cluster status and the scrub status of one node
// in it (nil if the node reported none).
func nodeScrub(t *testing.T, rc *repairCluster, id string) (*metapb.ClusterStatusResponse, *metapb.ScrubStatus) {
	t.Helper()
	st, err := rc.meta.ClusterStatus(t.Context(), &metapb.ClusterStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range st.NodeScrubs {
		if ns.NodeId == id {
			return st, ns.Scrub
		}
	}
	return st, nil
}
