package durability

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/test/e2e"
)

// TestDeadNodeIsRepaired stores clips on 7 storage processes (RS 4+2),
// kills one for good, and waits until meta has rebuilt every lost shard
// elsewhere: all clips back to 6 healthy shards on distinct live nodes,
// and every clip reads back identical.
func TestDeadNodeIsRepaired(t *testing.T) {
	c := e2e.StartCluster(t, e2e.ClusterOptions{StorageNodes: 7, MetaArgs: []string{"--node-down-after", "2s", "--repair-after", "1s"}})
	cl := c.Client()
	ctx := context.Background()
	if err := cl.CreateBucket(ctx, "fleet", &client.Profile{DataShards: 4, ParityShards: 2, BlockSize: 256 << 10}); err != nil {
		t.Fatal(err)
	}
	want := map[string]e2e.Stored{}
	total := 0
	for i := range 40 {
		size := 1 + (i*977_531)%(3<<20)
		data := e2e.ClipBytes(uint64(i), size)
		key := fmt.Sprintf("clip/%02d", i)
		if _, err := cl.Put(ctx, "fleet", key, bytes.NewReader(data), nil); err != nil {
			t.Fatal(err)
		}
		want[key] = e2e.Stored{Size: size, Sum: sha256.Sum256(data), Seed: uint64(i)}
		total += size
	}
	dead := c.Storage[3]
	var lostBytes int64
	for key := range want {
		info, err := cl.Stat(ctx, "fleet", key)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range info.Shards {
			if s.Node == dead.ID {
				lostBytes += s.Length
			}
		}
	}
	dead.Proc.Kill()
	start := time.Now()
	e2e.WaitNodeUp(t, cl, dead.ID, false)
	st, err := cl.ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var repairFrom time.Time // the end of the grace period: --repair-after after "down since"
	for _, n := range st.Nodes {
		if n.ID == dead.ID {
			repairFrom = n.DownSince.Add(time.Second)
		}
	}
	var lost int
	await.True(t, 90*time.Second, "every clip repaired to 6 healthy shards on live, distinct nodes", func() bool {
		lost = 0
		for key := range want {
			info, err := cl.Stat(ctx, "fleet", key)
			if err != nil {
				return false
			}
			nodes := map[string]bool{}
			for _, s := range info.Shards {
				if s.State != client.ShardOK || s.Node == dead.ID || nodes[s.Node] {
					lost++
				}
				nodes[s.Node] = true
			}
		}
		return lost == 0
	})
	elapsed, rebuild := time.Since(start), time.Since(repairFrom)
	t.Logf("rebuilt %.1f MiB of shards lost with a node (of %d MiB of clips) in %v after the grace period: %.1f MB/s (%v after the kill, detection and grace included)",
		float64(lostBytes)/(1<<20), total>>20, rebuild.Round(10*time.Millisecond), float64(lostBytes)/1e6/rebuild.Seconds(), elapsed.Round(100*time.Millisecond))
	e2e.CheckAll(t, cl, "fleet", want)
}

// TestWipedNodeIsRefilled: with exactly k+m nodes, one node's disk is
// wiped and the node restarted empty under the same id. Its inventory check
// finds every shard meta places on it missing, and repair rebuilds them onto
// it (the only node holding no other shard of those clips): fsck is clean
// and every clip reads back identical. While it is away for good, the clips
// stay readable and are reported degraded, never doubled up on a node.
func TestWipedNodeIsRefilled(t *testing.T) {
	c := e2e.StartDurabilityCluster(t, 6)
	cl := c.Client()
	ctx := context.Background()
	if err := cl.CreateBucket(ctx, "fleet", &client.Profile{DataShards: 4, ParityShards: 2, BlockSize: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	want := map[string]e2e.Stored{}
	for i := range 10 {
		size := 200_000 + i*10_007
		data := e2e.ClipBytes(uint64(300+i), size)
		key := fmt.Sprintf("clip/%02d", i)
		if _, err := cl.Put(ctx, "fleet", key, bytes.NewReader(data), nil); err != nil {
			t.Fatal(err)
		}
		want[key] = e2e.Stored{Size: size, Sum: sha256.Sum256(data), Seed: uint64(300 + i)}
	}
	victim := c.Storage[2]
	victim.Proc.Kill()
	// Gone past --repair-after, with no other node to take its shards: the
	// clips are degraded but readable, and no shard moves onto a node that
	// holds another one of its clip.
	await.True(t, 30*time.Second, "the clips to be reported degraded", func() bool {
		st, err := cl.ClusterStatus(ctx)
		return err == nil && st.NodesUp == 5 && st.DegradedClips == uint64(len(want)) &&
			len(st.ClipsByLostShards) == 1 && st.ClipsByLostShards[0] == uint64(len(want))
	})
	time.Sleep(2 * time.Second) // past --repair-after: nothing may be placed on a node holding another shard
	e2e.CheckAll(t, cl, "fleet", want)
	for key := range want {
		info, err := cl.Stat(ctx, "fleet", key)
		if err != nil {
			t.Fatal(err)
		}
		nodes := map[string]bool{}
		for _, s := range info.Shards {
			if s.Node != "" && nodes[s.Node] {
				t.Fatalf("%s has two shards on %s", key, s.Node)
			}
			nodes[s.Node] = true
		}
	}
	if err := os.RemoveAll(victim.Dir); err != nil {
		t.Fatal(err)
	}
	c.StartStorage(victim)
	await.True(t, 60*time.Second, "fsck --deep clean after the wiped node was refilled", func() bool {
		_, _, code := c.CLI("admin", "fsck", "--deep")
		return code == 0
	})
	refilled := 0
	for key := range want {
		info, err := cl.Stat(ctx, "fleet", key)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range info.Shards {
			if s.Node == victim.ID {
				refilled++
			}
		}
	}
	if refilled != len(want) {
		t.Fatalf("%d clips have a shard on the refilled node, want %d", refilled, len(want))
	}
	e2e.CheckAll(t, cl, "fleet", want)
}
