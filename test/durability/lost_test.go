package durability

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/test/e2e"
)

// TestLostShardFilesAreFoundAndRepaired removes and damages shard files
// behind the storage nodes' backs, on one 7-node cluster (RS 4+2), case
// after case: the inventory, the scrubber and reads must find every loss,
// report it, and repair must bring every clip back to full redundancy,
// byte-identical, with fsck clean. The last case loses more shards of one
// clip than it has parity: that clip, and only it, is named lost.
func TestLostShardFilesAreFoundAndRepaired(t *testing.T) {
	c := e2e.StartDurabilityCluster(t, 7)
	cl := c.Client()
	ctx := context.Background()
	profile := &client.Profile{DataShards: 4, ParityShards: 2, BlockSize: 64 << 10}
	seed := uint64(1000)
	// fill stores n clips in a bucket of its own.
	fill := func(t *testing.T, bucket string, n int) (map[string]e2e.Stored, map[string]*client.ClipInfo) {
		t.Helper()
		if err := cl.CreateBucket(ctx, bucket, profile); err != nil {
			t.Fatal(err)
		}
		want, infos := map[string]e2e.Stored{}, map[string]*client.ClipInfo{}
		for i := range n {
			key := fmt.Sprintf("clip/%02d", i)
			seed++
			s, info, err := e2e.PutClip(cl, bucket, key, seed, 100_000+int(seed%7)*30_011)
			if err != nil {
				t.Fatal(err)
			}
			want[key], infos[key] = s, info
		}
		return want, infos
	}
	// healed waits until no record of the bucket names a damaged shard
	// (meta was told of each and it was rebuilt: nothing else reads them
	// meanwhile, so the nodes' own checks found them) and every clip has k+m
	// OK shards on distinct nodes, and returns how long that took from
	// start; then fsck --deep must be clean and every clip read back whole.
	healed := func(t *testing.T, bucket string, want map[string]e2e.Stored, damaged map[string]bool, start time.Time) time.Duration {
		t.Helper()
		keys := slices.Sorted(maps.Keys(want))
		await.TrueWhy(t, 60*time.Second, "every damaged shard replaced, every clip at full redundancy", func() (bool, string) {
			for _, key := range keys {
				info, err := cl.Stat(ctx, bucket, key)
				if err != nil {
					return false, err.Error()
				}
				for _, s := range info.Shards {
					if damaged[s.ID] {
						return false, fmt.Sprintf("%s: damaged shard %d (%s) on %s still recorded %v", key, s.Index, s.ID, s.Node, s.State)
					}
				}
			}
			return e2e.ClipsFull(cl, bucket, keys, nil)
		})
		took := time.Since(start)
		await.TrueWhy(t, 30*time.Second, "fsck --deep clean", c.FsckClean)
		e2e.CheckAll(t, cl, bucket, want)
		return took
	}
	nodeStatus := func(t *testing.T, id string) client.StorageNode {
		t.Helper()
		st, err := cl.ClusterStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range st.Nodes {
			if n.ID == id {
				return n
			}
		}
		t.Fatalf("no node %s in cluster status", id)
		return client.StorageNode{}
	}
	r := mrand.New(mrand.NewPCG(20, 20))

	t.Run("third of a node's files deleted", func(t *testing.T) {
		want, _ := fill(t, "third", 24)
		node := c.Storage[1]
		files := shardFiles(t, node.Dir)
		r.Shuffle(len(files), func(i, j int) { files[i], files[j] = files[j], files[i] })
		gone := files[:len(files)/3]
		start := time.Now()
		damaged := map[string]bool{}
		for _, f := range gone {
			damaged[filepath.Base(f)] = true
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
		took := healed(t, "third", want, damaged, start)
		// Every deleted file was found lost exactly once, and by nothing
		// else than the checks that look at the disk.
		await.TrueWhy(t, 10*time.Second, "the node's losses reported", func() (bool, string) {
			n := nodeStatus(t, node.ID)
			return n.Lost.Total() == uint64(len(gone)), fmt.Sprintf("%+v, want %d in all", n.Lost, len(gone))
		})
		t.Logf("%d of %d shard files deleted on %s: full redundancy %v after the damage (found: %+v)",
			len(gone), len(files), node.ID, took.Round(10*time.Millisecond), nodeStatus(t, node.ID).Lost)
	})

	t.Run("whole shard tree deleted", func(t *testing.T) {
		want, _ := fill(t, "tree", 16)
		node := c.Storage[2]
		before := nodeStatus(t, node.ID).Lost.Total()
		files := shardFiles(t, node.Dir)
		damaged := map[string]bool{}
		for _, f := range files {
			damaged[filepath.Base(f)] = true
		}
		start := time.Now()
		// The node may be storing a shard meanwhile (a repair of an earlier
		// case): a file or directory made during the walk fails RemoveAll
		// with "directory not empty", and the next attempt takes it too.
		await.TrueWhy(t, 10*time.Second, "the shard tree removed", func() (bool, string) {
			err := os.RemoveAll(filepath.Join(node.Dir, "shards"))
			return err == nil, fmt.Sprint(err)
		})
		took := healed(t, "tree", want, damaged, start)
		n := nodeStatus(t, node.ID)
		if len(n.FailedDisks) != 0 || !n.Up {
			t.Fatalf("%s after its shard tree was remade: up %v, failed disks %v", node.ID, n.Up, n.FailedDisks)
		}
		if got := n.Lost.Total() - before; got < uint64(len(files)) {
			t.Fatalf("%s reported %d shards lost, %d files were deleted", node.ID, got, len(files))
		}
		t.Logf("%s's shard tree (%d files) deleted: full redundancy %v after the damage", node.ID, len(files), took.Round(10*time.Millisecond))
		// The node keeps taking new shards (placement is random: a clip
		// misses one of 7 nodes with 1/7 odds, ten all miss it with 3e-9).
		landed := 0
		for i := range 10 {
			seed++
			key := fmt.Sprintf("after/%02d", i)
			s, info, err := e2e.PutClip(cl, "tree", key, seed, 80_000)
			if err != nil {
				t.Fatal(err)
			}
			want[key] = s
			if problem := e2e.ShardsProblem(info, nil); problem != "" {
				t.Fatalf("%s: %s", key, problem)
			}
			for _, sh := range info.Shards {
				if sh.Node == node.ID {
					landed++
				}
			}
		}
		if landed == 0 {
			t.Fatalf("no new shard went to %s after its shard tree was remade", node.ID)
		}
		e2e.CheckAll(t, cl, "tree", want)
	})

	t.Run("truncated and flipped files", func(t *testing.T) {
		want, infos := fill(t, "damage", 16)
		st, err := cl.ClusterStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		before := st.Corrupt.Total()
		start := time.Now()
		// One shard of each clip: truncated in half the clips, a byte
		// flipped in the others, on every node.
		damaged := map[string]bool{}
		for i, key := range slices.Sorted(maps.Keys(want)) {
			s := infos[key].Shards[i%6]
			path := c.ShardPath(s.Node, s.ID)
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if i%2 == 0 {
				raw = raw[:len(raw)/2+r.IntN(len(raw)/4)]
			} else {
				raw[128+r.IntN(len(raw)-256)] ^= byte(1 + r.IntN(255))
			}
			if err := os.WriteFile(path, raw, 0o644); err != nil {
				t.Fatal(err)
			}
			damaged[s.ID] = true
		}
		took := healed(t, "damage", want, damaged, start)
		if st, err = cl.ClusterStatus(ctx); err != nil {
			t.Fatal(err)
		}
		// Each damaged file was found, and counted once.
		if found := st.Corrupt.Total() - before; found != uint64(len(damaged)) {
			t.Fatalf("the nodes counted %d shards corrupt (%+v), %d were damaged", found, st.Corrupt, len(damaged))
		}
		t.Logf("%d shard files damaged (%d truncated, %d flipped): all found and replaced, full redundancy %v after the damage (found by %+v)",
			len(damaged), (len(damaged)+1)/2, len(damaged)/2, took.Round(10*time.Millisecond), st.Corrupt)
	})

	t.Run("more than parity lost", func(t *testing.T) {
		want, infos := fill(t, "doomed", 4)
		lost := "clip/00"
		for _, s := range infos[lost].Shards[:3] { // m+1 = 3, on three nodes
			if err := os.Remove(c.ShardPath(s.Node, s.ID)); err != nil {
				t.Fatal(err)
			}
		}
		name := "doomed/" + lost
		await.TrueWhy(t, 30*time.Second, "cluster status to name the lost clip", func() (bool, string) {
			out, errOut, code := c.CLI("cluster", "status")
			return code == 0 && strings.Contains(out, "1 clips UNRECOVERABLE") && strings.Contains(out, name), out + errOut
		})
		out, _, code := c.CLI("admin", "fsck", "--json")
		if code == 0 {
			t.Fatalf("fsck passed with a clip lost:\n%s", out)
		}
		var rep client.FsckReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("fsck --json: %v\n%s", err, out)
		}
		if len(rep.Problems) != 3 {
			t.Fatalf("fsck found %d problems, want the 3 lost shards: %+v", len(rep.Problems), rep.Problems)
		}
		for _, p := range rep.Problems {
			if p.Bucket+"/"+p.Key != name || p.Recoverable {
				t.Fatalf("fsck problem %+v, want only %s, unrecoverable", p, name)
			}
		}
		delete(want, lost)
		e2e.CheckAll(t, cl, "doomed", want)
		for _, b := range []string{"third", "tree", "damage"} {
			ok, why := e2e.ClipsFull(cl, b, keysOfBucket(t, cl, b), nil)
			if !ok {
				t.Fatalf("bucket %s harmed: %s", b, why)
			}
		}
	})
}

// shardFiles lists the shard files under a storage node's data directory.
func shardFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "shards", "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no shard files under %s", dir)
	}
	return files
}

func keysOfBucket(t *testing.T, cl *client.Client, bucket string) []string {
	t.Helper()
	var keys []string
	for info, err := range cl.List(context.Background(), bucket, "") {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, info.Key)
	}
	return keys
}
