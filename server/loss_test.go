package server_test

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/meta/metatest"
	metapb "github.com/clipstore/clipstore/proto/metapb"
	pb "github.com/clipstore/clipstore/proto/storagepb"
	"github.com/clipstore/clipstore/server"
	"google.golang.org/grpc/codes"
)

// TestLostShardsAreRepaired removes shard files behind their nodes' back,
// one for each check that finds such losses: the inventory's file audit, a
// scrub pass and a read. Each node reports its loss missing, meta has it
// rebuilt, and every clip is whole again, byte-identical; the nodes count
// what they found, and so does the cluster status.
func TestLostShardsAreRepaired(t *testing.T) {
	rc, _ := newScrubCluster(t, 6, metatest.Options{}, nil)
	keys := []string{"inventory", "scrub", "read"}
	clips := map[string]*storedClip{}
	for _, k := range keys {
		clips[k] = rc.put(t, k, 70_001)
	}
	lose := func(key string, index int) (*metapb.Shard, *testNode) {
		s, n := rc.shardOf(clips[key], index)
		if err := os.Remove(shardPath(n.dirs[0], s.ShardId)); err != nil {
			t.Fatal(err)
		}
		return s, n
	}
	s, n := lose("inventory", 1)
	if missing, err := n.node.CheckInventory(t.Context()); err != nil || missing != 1 {
		t.Fatalf("inventory of %s: %d missing, %v; want 1", s.NodeId, missing, err)
	}
	s, n = lose("scrub", 4)
	res, err := n.node.ScrubNow(t.Context())
	if err != nil || len(res.Lost) != 1 || res.Lost[0] != server.ShardID(s.ShardId) || res.Skipped != 0 {
		t.Fatalf("scrub of %s: %+v, %v; want the lost shard", s.NodeId, res, err)
	}
	s, n = lose("read", 5) // a parity shard: a client reading the clip would not ask for it
	_, _, err = readShard(t.Context(), n.client, &pb.ReadShardRequest{ShardId: s.ShardId})
	wantCode(t, err, codes.NotFound)

	await.True(t, 20*time.Second, "every lost shard to be rebuilt", func() bool {
		for _, k := range keys {
			for i, s := range rc.record(t, k).Parts[0].Shards {
				old := clips[k].rec.Parts[0].Shards[i]
				if s.State != metapb.ShardState_SHARD_STATE_OK || (k == keys[0] && i == 1 || k == keys[1] && i == 4 ||
					k == keys[2] && i == 5) && bytes.Equal(s.ShardId, old.ShardId) {
					return false
				}
			}
		}
		return true
	})
	for _, k := range keys {
		checkClipHealthy(t, rc, clips[k], k)
	}
	var total server.LossCounts
	for _, id := range rc.ids {
		c := rc.nodes[id].node.LossCounts()
		total.Scrub, total.Inventory, total.Read = total.Scrub+c.Scrub, total.Inventory+c.Inventory, total.Read+c.Read
	}
	if total != (server.LossCounts{Scrub: 1, Inventory: 1, Read: 1}) {
		t.Fatalf("the nodes counted %+v lost, want one by each check", total)
	}
	await.True(t, 10*time.Second, "the cluster status to count the losses", func() bool {
		st, err := rc.meta.ClusterStatus(t.Context(), &metapb.ClusterStatusRequest{})
		l := st.GetShardLosses()
		return err == nil && l.GetScrub() == 1 && l.GetInventory() == 1 && l.GetRead() == 1
	})
}

// TestCorruptShardsAreCountedOnce: a shard found corrupt by each check (a
// scrub pass, the inventory's size check, a read) is counted once, by the
// check that found it first, however often it is found again before it is
// replaced; the cluster status sums the counts.
func TestCorruptShardsAreCountedOnce(t *testing.T) {
	rc, _ := newScrubCluster(t, 6, metatest.Options{}, nil)
	clip := rc.put(t, "damaged", 70_001)
	var total server.LossCounts
	count := func() server.LossCounts {
		var sum server.LossCounts
		for _, id := range rc.ids {
			c := rc.nodes[id].node.CorruptCounts()
			sum.Scrub, sum.Inventory, sum.Read = sum.Scrub+c.Scrub, sum.Inventory+c.Inventory, sum.Read+c.Read
		}
		return sum
	}

	s, n := rc.shardOf(clip, 0)
	flipPieceByte(t, n, s.ShardId, 0)
	for range 2 {
		if res, err := n.node.ScrubNow(t.Context()); err != nil || len(res.Corrupt) != 1 {
			t.Fatalf("scrub of %s: %+v, %v; want the corrupt shard", s.NodeId, res, err)
		}
	}
	total.Scrub = 1
	if got := count(); got != total {
		t.Fatalf("after two scrub passes over one corrupt shard: %+v, want %+v", got, total)
	}

	s, n = rc.shardOf(clip, 1)
	path := shardPath(n.dirs[0], s.ShardId)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, fi.Size()-7); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := n.node.CheckInventory(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	total.Inventory = 1
	if got := count(); got != total {
		t.Fatalf("after two inventories over one truncated shard: %+v, want %+v", got, total)
	}

	s, n = rc.shardOf(clip, 5)
	flipPieceByte(t, n, s.ShardId, 0)
	for range 2 {
		_, _, err = readShard(t.Context(), n.client, &pb.ReadShardRequest{ShardId: s.ShardId})
		wantCode(t, err, codes.DataLoss)
	}
	total.Read = 1
	if got := count(); got != total {
		t.Fatalf("after two reads of one corrupt shard: %+v, want %+v", got, total)
	}
	await.True(t, 10*time.Second, "the cluster status to count the corrupt shards", func() bool {
		st, err := rc.meta.ClusterStatus(t.Context(), &metapb.ClusterStatusRequest{})
		c := st.GetShardCorrupt()
		return err == nil && c.GetScrub() == 1 && c.GetInventory() == 1 && c.GetRead() == 1
	})
}
