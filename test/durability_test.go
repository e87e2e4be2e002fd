package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
	storagepb "github.com/clipstore/clipstore/proto/storagepb"
	"github.com/clipstore/clipstore/server"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// durabilityProfile is the 4+2 profile of these tests, with small blocks so
// that small clips still span several blocks.
var durabilityProfile = &client.Profile{DataShards: 4, ParityShards: 2, BlockSize: 64 << 10}

// waitFor is waitUntil with a diagnosis: cond returns whether it holds and,
// if not, why; the last reason is in the failure message.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last: %s", limit, what, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// putClip stores clipBytes(seed, size) under key and returns what
// checkAll needs and the record.
func putClip(cl *client.Client, bucket, key string, seed uint64, size int) (stored, *client.ClipInfo, error) {
	data := clipBytes(seed, size)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	info, err := cl.Put(ctx, bucket, key, bytes.NewReader(data), nil)
	if err != nil {
		return stored{}, nil, err
	}
	if info.Size != int64(size) {
		return stored{}, nil, fmt.Errorf("put %s: recorded %d bytes, sent %d", key, info.Size, size)
	}
	return stored{size: size, sum: sha256.Sum256(data), seed: seed}, info, nil
}

// waitNodeUp waits until meta's ClusterStatus reports node id up (or not).
func waitNodeUp(t *testing.T, cl *client.Client, id string, up bool) {
	t.Helper()
	waitFor(t, 20*time.Second, fmt.Sprintf("meta to report %s up=%v", id, up), func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := cl.ClusterStatus(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, n := range st.Nodes {
			if n.ID == id {
				return n.Up == up, fmt.Sprintf("%s up=%v down since %v", id, n.Up, n.DownSince)
			}
		}
		return false, id + " not registered"
	})
}

// fsckClean runs `clipstore admin fsck --deep` and reports whether it exits 0.
func fsckClean(c *cluster) (bool, string) {
	out, errOut, code := c.cli("admin", "fsck", "--deep")
	return code == 0, fmt.Sprintf("fsck exit %d: %s%s", code, lastLines(out, 8), strings.TrimSpace(errOut))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// clipsFull reports whether every clip of keys has k+m OK shards on
// distinct nodes, none of them in avoid; otherwise it describes the first
// clip that does not.
func clipsFull(cl *client.Client, bucket string, keys []string, avoid map[string]bool) (bool, string) {
	for _, key := range keys {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		info, err := cl.Stat(ctx, bucket, key)
		cancel()
		if err != nil {
			return false, fmt.Sprintf("stat %s: %v", key, err)
		}
		if why := shardsProblem(info, avoid); why != "" {
			return false, key + ": " + why
		}
	}
	return true, ""
}

func shardsProblem(info *client.ClipInfo, avoid map[string]bool) string {
	want := info.Profile.DataShards + info.Profile.ParityShards
	if len(info.Shards) != want {
		return fmt.Sprintf("%d shards, want %d", len(info.Shards), want)
	}
	nodes := map[string]bool{}
	for _, s := range info.Shards {
		switch {
		case s.State != client.ShardOK:
			return fmt.Sprintf("shard %d on %q is %v", s.Index, s.Node, s.State)
		case s.Node == "" || avoid[s.Node]:
			return fmt.Sprintf("shard %d on node %q", s.Index, s.Node)
		case nodes[s.Node]:
			return fmt.Sprintf("two shards on %s", s.Node)
		}
		nodes[s.Node] = true
	}
	return ""
}

// shardPath is where node keeps the shard with the hex id.
func shardPath(c *cluster, node, id string) string {
	var sid server.ShardID
	if n, err := hex.Decode(sid[:], []byte(id)); err != nil || n != len(sid) {
		panic(fmt.Sprintf("shard id %q: not %d hex bytes", id, len(sid)))
	}
	return server.ShardFile(filepath.Join(c.root, node), sid)
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sortedKeys(m map[string]stored) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestNodeDownAtPutIsCompletedByRepair: with 7 storage nodes (RS 4+2) one
// is killed and marked down; puts succeed on the 6 live nodes, never
// naming the dead one. A second node is then killed and marked down: with 5
// live nodes left, puts succeed with the write quorum k+1 and record the
// last index MISSING; when that node returns, repair completes those clips
// onto it (the only live node holding none of their shards). In the end
// fsck --deep is clean and every clip reads back identical.
func TestNodeDownAtPutIsCompletedByRepair(t *testing.T) {
	c := startDurabilityCluster(t, 7)
	cl := c.client()
	ctx := context.Background()
	if err := cl.CreateBucket(ctx, "fleet", durabilityProfile); err != nil {
		t.Fatal(err)
	}
	dead, away := c.storage[4], c.storage[5]
	dead.proc.kill()
	t0 := time.Now()
	waitNodeUp(t, cl, dead.id, false)
	t.Logf("%s marked down %v after kill -9", dead.id, time.Since(t0).Round(10*time.Millisecond))

	want := map[string]stored{}
	missingAtPut := 0
	for i := range 10 {
		key := fmt.Sprintf("one-down/%02d", i)
		s, info, err := putClip(cl, "fleet", key, uint64(500+i), 200_000+i*80_021)
		if err != nil {
			t.Fatalf("put with one node down: %v", err)
		}
		want[key] = s
		if len(info.Shards) != 6 {
			t.Fatalf("%s: %d shards recorded, want 6", key, len(info.Shards))
		}
		for _, sh := range info.Shards {
			switch {
			case sh.Node == dead.id:
				t.Fatalf("%s: shard %d placed on %s, which meta had marked down", key, sh.Index, dead.id)
			case sh.State == client.ShardMissing && sh.Node == "":
				missingAtPut++
			case sh.State != client.ShardOK || sh.Node == "":
				t.Fatalf("%s: shard %d on %q recorded %v", key, sh.Index, sh.Node, sh.State)
			}
		}
	}
	t.Logf("10 puts with %s down: %d shard indices recorded missing", dead.id, missingAtPut)
	checkAll(t, cl, "fleet", want)

	// A second node goes: 5 live nodes, exactly the write quorum.
	away.proc.kill()
	waitNodeUp(t, cl, away.id, false)
	quorumKeys := map[string]bool{}
	for i := range 5 {
		key := fmt.Sprintf("two-down/%02d", i)
		s, info, err := putClip(cl, "fleet", key, uint64(600+i), 300_000+i*50_111)
		if err != nil {
			t.Fatalf("put with two nodes down (5 live, quorum 5): %v", err)
		}
		want[key] = s
		quorumKeys[key] = true
		ok, missing := 0, 0
		for _, sh := range info.Shards {
			switch {
			case sh.Node == dead.id || sh.Node == away.id:
				t.Fatalf("%s: shard %d placed on down node %s", key, sh.Index, sh.Node)
			case sh.State == client.ShardOK && sh.Node != "":
				ok++
			case sh.State == client.ShardMissing && sh.Node == "":
				missing++
			default:
				t.Fatalf("%s: shard %d on %q recorded %v", key, sh.Index, sh.Node, sh.State)
			}
		}
		if ok != 5 || missing != 1 {
			t.Fatalf("%s: %d OK and %d missing shards, want 5 and 1 (k+1 written)", key, ok, missing)
		}
	}
	checkAll(t, cl, "fleet", want) // degraded, readable

	// The second node returns: the missing indices are rebuilt onto it.
	c.startStorage(away)
	t1 := time.Now()
	keys := sortedKeys(want)
	waitFor(t, 30*time.Second, "every clip at 6 OK shards on distinct live nodes", func() (bool, string) {
		return clipsFull(cl, "fleet", keys, map[string]bool{dead.id: true})
	})
	t.Logf("missing indices completed by repair %v after %s returned", time.Since(t1).Round(10*time.Millisecond), away.id)
	waitFor(t, 30*time.Second, "fsck --deep clean", func() (bool, string) { return fsckClean(c) })
	for key := range quorumKeys {
		info, err := cl.Stat(ctx, "fleet", key)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(info.Shards, func(s client.ShardInfo) bool { return s.Node == away.id }) {
			t.Fatalf("%s: no shard on %s, the only node that could take the missing index", key, away.id)
		}
	}
	checkAll(t, cl, "fleet", want)
}

// TestKillTwoNodesDuringIngest: 8 writers put 200 small clips (1 KiB to
// 256 KiB) concurrently; after 60 puts have succeeded two storage nodes are
// killed with SIGKILL and the ingest goes on. Every put that returned
// success reads back identical while the nodes are away, and again once
// they are back and repair, inventory and GC have made fsck --deep clean.
func TestKillTwoNodesDuringIngest(t *testing.T) {
	c := startDurabilityCluster(t, 7)
	cl := c.client()
	if err := cl.CreateBucket(context.Background(), "fleet", durabilityProfile); err != nil {
		t.Fatal(err)
	}
	victims := []*storageProc{c.storage[1], c.storage[5]} // zones 1 and 2
	const total, killAfter, writers = 200, 60, 8
	r := mrand.New(mrand.NewPCG(2026, 5))
	sizes := make([]int, total)
	for i := range sizes {
		sizes[i] = 1<<10 + r.IntN(255<<10+1)
	}

	var (
		mu         sync.Mutex
		want       = map[string]stored{}
		failed     = map[string]error{}
		slowest    time.Duration
		slowestKey string
		killedAt   time.Time
		succeeded  atomic.Int32
		started    atomic.Int32
		killOnce   sync.Once
		killNow    = make(chan struct{})
		ingestEnd  = make(chan struct{})
		killed     = make(chan int32, 1) // puts started before the kill
	)
	go func() {
		select {
		case <-killNow:
			for _, v := range victims {
				v.proc.kill()
			}
			mu.Lock()
			killedAt = time.Now()
			mu.Unlock()
			killed <- started.Load()
		case <-ingestEnd:
			close(killed)
		}
	}()
	next := make(chan int)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for i := range next {
				key := fmt.Sprintf("ingest/%03d", i)
				started.Add(1)
				pt := time.Now()
				s, _, err := putClip(cl, "fleet", key, uint64(10_000+i), sizes[i])
				mu.Lock()
				if d := time.Since(pt); d > slowest {
					slowest, slowestKey = d, key
				}
				if err != nil {
					failed[key] = err
				} else {
					want[key] = s
				}
				mu.Unlock()
				if err == nil && succeeded.Add(1) >= killAfter {
					killOnce.Do(func() { close(killNow) })
				}
			}
		})
	}
	t0 := time.Now()
	for i := range total {
		next <- i
	}
	close(next)
	wg.Wait()
	close(ingestEnd)
	before, ok := <-killed
	if !ok {
		t.Fatalf("the ingest ended before %d puts succeeded (%d failed)", killAfter, len(failed))
	}
	t.Logf("ingest of %d clips in %v: %d succeeded, %d failed; %s and %s killed %v in, with %d puts started; slowest put %s: %v",
		total, time.Since(t0).Round(time.Millisecond), len(want), len(failed), victims[0].id, victims[1].id,
		killedAt.Sub(t0).Round(time.Millisecond), before, slowestKey, slowest.Round(time.Millisecond))
	for key, err := range failed {
		t.Logf("failed put %s: %v", key, err)
	}
	// Only a put writing to a victim when it died can lose two shards; at
	// most `writers` were in flight then. Any later put finds the victims
	// refusing connections before its first piece and moves to a spare or
	// records the index missing (the quorum is 5 of 6).
	if len(failed) > writers {
		t.Fatalf("%d puts failed; at most the %d in flight at the kill may", len(failed), writers)
	}
	for key, err := range failed {
		if !errors.Is(err, client.ErrUnavailable) {
			t.Errorf("put %s failed with %v; want an error wrapping ErrUnavailable", key, err)
		}
	}
	checkAll(t, cl, "fleet", want) // with two nodes away

	for _, v := range victims {
		c.startStorage(v)
	}
	c.waitNodesUp(7)
	t1 := time.Now()
	waitFor(t, 45*time.Second, "fsck --deep clean after the nodes returned", func() (bool, string) { return fsckClean(c) })
	t.Logf("fsck --deep clean %v after the nodes returned", time.Since(t1).Round(10*time.Millisecond))
	if ok, why := clipsFull(cl, "fleet", sortedKeys(want), nil); !ok {
		t.Fatalf("fsck is clean but %s", why)
	}
	checkAll(t, cl, "fleet", want)
}

// TestReturningNodeStaleShardsAreCollected: a node is killed, repair
// rebuilds every shard it held on other nodes, and the node returns with
// its old shard files. The deletes queued by the repair commits remove them
// (heartbeat work); the same files put back, with nothing queued for them,
// stay unreferenced — fsck reports exactly them as orphans — until the
// node's GC deletes them (the backstop). Throughout, background readers and
// checkAll get the right bytes: the stale shards are never served as
// current. At the end StatShard answers NotFound for each, the files are
// gone and fsck --deep is clean.
func TestReturningNodeStaleShardsAreCollected(t *testing.T) {
	c := startDurabilityCluster(t, 7)
	cl := c.client()
	ctx := context.Background()
	if err := cl.CreateBucket(ctx, "fleet", durabilityProfile); err != nil {
		t.Fatal(err)
	}
	want := map[string]stored{}
	perNode := map[string][]string{} // node -> shard ids
	for i := range 10 {
		key := fmt.Sprintf("clip/%02d", i)
		s, info, err := putClip(cl, "fleet", key, uint64(700+i), 150_000+i*60_013)
		if err != nil {
			t.Fatal(err)
		}
		want[key] = s
		if why := shardsProblem(info, nil); why != "" {
			t.Fatalf("%s after put: %s", key, why)
		}
		for _, sh := range info.Shards {
			perNode[sh.Node] = append(perNode[sh.Node], sh.ID)
		}
	}
	var x *storageProc
	for _, s := range c.storage {
		if x == nil || len(perNode[s.id]) > len(perNode[x.id]) {
			x = s
		}
	}
	stale := perNode[x.id]
	t.Logf("%s holds %d shards of the 10 clips", x.id, len(stale))

	// Readers run from the kill to the end: every get is whole and right.
	stop := make(chan struct{})
	var readers sync.WaitGroup
	var reads atomic.Int64
	var readErr atomic.Pointer[error]
	keys := sortedKeys(want)
	for w := range 2 {
		readers.Go(func() {
			r := mrand.New(mrand.NewPCG(uint64(w), 9))
			for {
				select {
				case <-stop:
					return
				default:
				}
				key := keys[r.IntN(len(keys))]
				h := sha256.New()
				gctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				info, err := cl.Get(gctx, "fleet", key, h, nil)
				cancel()
				w := want[key]
				if err == nil && (info.Size != int64(w.size) || !bytes.Equal(h.Sum(nil), w.sum[:])) {
					err = fmt.Errorf("get %s: %d bytes, content differs from what was stored", key, info.Size)
				}
				if err != nil {
					readErr.CompareAndSwap(nil, &err)
					return
				}
				reads.Add(1)
			}
		})
	}
	stopReaders := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		readers.Wait()
	}
	defer stopReaders()
	checkReaders := func(when string) {
		t.Helper()
		if p := readErr.Load(); p != nil {
			t.Fatalf("background read %s: %v", when, *p)
		}
	}

	x.proc.kill()
	t0 := time.Now()
	waitFor(t, 30*time.Second, "repair to move every shard off "+x.id, func() (bool, string) {
		return clipsFull(cl, "fleet", keys, map[string]bool{x.id: true})
	})
	t.Logf("all %d shards of %s rebuilt elsewhere %v after kill -9", len(stale), x.id, time.Since(t0).Round(10*time.Millisecond))
	checkReaders("while " + x.id + " was down")
	for _, id := range stale {
		if _, err := os.Stat(shardPath(c, x.id, id)); err != nil {
			t.Fatalf("stale shard file of the dead node: %v", err)
		}
	}

	// Keep a copy of the stale files: a node can come back with shards its
	// queued deletes never reached (GC is the backstop for those).
	backup := t.TempDir()
	for _, id := range stale {
		raw, err := os.ReadFile(shardPath(c, x.id, id))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(backup, id), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	staleOn := func(sc storagepb.StorageServiceClient) (present int, why string) {
		for _, id := range stale {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := sc.StatShard(sctx, &storagepb.StatShardRequest{ShardId: mustHex(t, id)})
			cancel()
			_, ferr := os.Stat(shardPath(c, x.id, id))
			switch {
			case err == nil:
				present++
				why = fmt.Sprintf("stale shard %s still served by %s", id, x.id)
			case status.Code(err) != codes.NotFound:
				present++
				why = fmt.Sprintf("StatShard %s on %s: %v", id, x.id, err)
			case !errors.Is(ferr, os.ErrNotExist):
				present++
				why = fmt.Sprintf("file of stale shard %s: %v", id, ferr)
			}
		}
		return present, why
	}
	// restartX stops X if it runs and starts it again, its garbage
	// collector on or off.
	restartX := func(gc bool) storagepb.StorageServiceClient {
		t.Helper()
		select {
		case <-x.proc.done:
		default:
			if err := x.proc.stop(); err != nil {
				t.Fatalf("stop %s: %v", x.id, err)
			}
		}
		args := c.storageArgs
		if !gc {
			c.storageArgs = append(slices.Clone(args), "--gc-interval", "0")
		}
		c.startStorage(x)
		c.storageArgs = args
		return storageClient(t, x.proc.addr)
	}

	// 1. X returns (GC off): the repair commits queued deletes of its old
	// shards, which reach it in heartbeat answers. Reads right after the
	// restart, while they may still be there, return the right bytes.
	sc := restartX(false)
	t1 := time.Now()
	checkAll(t, cl, "fleet", want)
	present, _ := staleOn(sc)
	t.Logf("checkAll right after %s returned took %v; %d of %d stale shards still there at its end",
		x.id, time.Since(t1).Round(10*time.Millisecond), present, len(stale))
	waitFor(t, 30*time.Second, "the queued deletes to remove the stale shards of "+x.id, func() (bool, string) {
		if n, why := staleOn(sc); n > 0 {
			return false, why
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		st, err := cl.ClusterStatus(sctx)
		if err != nil {
			return false, err.Error()
		}
		return st.PendingDeletes == 0, fmt.Sprintf("%d deletes pending", st.PendingDeletes)
	})
	t.Logf("queued deletes removed the stale shards %v after %s returned", time.Since(t1).Round(10*time.Millisecond), x.id)

	// 2. X returns again with the stale files put back and nothing queued
	// for them (GC still off): they stay on the node, no record names them
	// again, reads stay correct, and fsck reports exactly them as orphans.
	if err := x.proc.stop(); err != nil {
		t.Fatalf("stop %s: %v", x.id, err)
	}
	for _, id := range stale {
		raw, err := os.ReadFile(filepath.Join(backup, id))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(shardPath(c, x.id, id), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sc = restartX(false)
	c.waitNodesUp(7)
	time.Sleep(2 * time.Second) // heartbeats and the inventory check run; nothing may adopt the stale shards
	if n, why := staleOn(sc); n != len(stale) {
		t.Fatalf("%d of %d restored stale shards on %s with GC off: %s", n, len(stale), x.id, why)
	}
	checkAll(t, cl, "fleet", want)
	if ok, why := clipsFull(cl, "fleet", keys, map[string]bool{x.id: true}); !ok {
		t.Fatalf("with the stale shards back on %s: %s", x.id, why)
	}
	out, errOut, code := c.cli("admin", "fsck", "--deep", "--json")
	var rep client.FsckReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code == 0 {
		t.Fatalf("fsck with stale shards on %s: exit %d, %v\n%s%s", x.id, code, err, out, errOut)
	}
	orphans := map[string]bool{}
	for _, p := range rep.Problems {
		if p.Kind != client.ProblemOrphan || p.Node != x.id || !slices.Contains(stale, p.ShardID) {
			t.Fatalf("fsck with stale shards on %s: unexpected problem %+v", x.id, p)
		}
		orphans[p.ShardID] = true
	}
	if len(orphans) != len(stale) || len(rep.Problems) != len(stale) {
		t.Fatalf("fsck reports %d orphans (%d problems), want the %d stale shards of %s",
			len(orphans), len(rep.Problems), len(stale), x.id)
	}
	checkReaders("with the stale shards on " + x.id)

	// 3. X restarts with its garbage collector on: GC deletes them.
	sc = restartX(true)
	t2 := time.Now()
	checkAll(t, cl, "fleet", want)
	waitFor(t, 30*time.Second, "GC to remove the stale shards of "+x.id, func() (bool, string) {
		n, why := staleOn(sc)
		return n == 0, why
	})
	t.Logf("GC removed the stale shards %v after %s restarted with GC on", time.Since(t2).Round(10*time.Millisecond), x.id)
	waitFor(t, 30*time.Second, "fsck --deep clean", func() (bool, string) { return fsckClean(c) })

	staleSet := map[string]bool{}
	for _, id := range stale {
		staleSet[id] = true
	}
	for _, key := range keys {
		info, err := cl.Stat(ctx, "fleet", key)
		if err != nil {
			t.Fatal(err)
		}
		if why := shardsProblem(info, nil); why != "" {
			t.Fatalf("%s at the end: %s", key, why)
		}
		for _, sh := range info.Shards {
			if staleSet[sh.ID] {
				t.Fatalf("%s: record names stale shard %s", key, sh.ID)
			}
		}
	}
	checkAll(t, cl, "fleet", want)
	stopReaders()
	checkReaders("during the test")
	t.Logf("%d background gets, all correct", reads.Load())
}
