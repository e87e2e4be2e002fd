package durability

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/await"
	storagepb "github.com/clipstore/clipstore/proto/storagepb"
	"github.com/clipstore/clipstore/test/e2e"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestNodeDownAtPutIsCompletedByRepair: with 7 storage nodes (RS 4+2) one
// is killed and marked down; puts succeed on the 6 live nodes, never
// naming the dead one. A second node is then killed and marked down: with 5
// live nodes left, puts succeed with the write quorum k+1 and record the
// last index MISSING; when that node returns, repair completes those clips
// onto it (the only live node holding none of their shards). In the end
// fsck --deep is clean and every clip reads back identical.
func TestNodeDownAtPutIsCompletedByRepair(t *testing.T) {
	c := e2e.StartDurabilityCluster(t, 7)
	cl := c.Client()
	ctx := context.Background()
	if err := cl.CreateBucket(ctx, "fleet", e2e.DurabilityProfile); err != nil {
		t.Fatal(err)
	}
	dead, away := c.Storage[4], c.Storage[5]
	dead.Proc.Kill()
	t0 := time.Now()
	e2e.WaitNodeUp(t, cl, dead.ID, false)
	t.Logf("%s marked down %v after kill -9", dead.ID, time.Since(t0).Round(10*time.Millisecond))

	want := map[string]e2e.Stored{}
	missingAtPut := 0
	for i := range 10 {
		key := fmt.Sprintf("one-down/%02d", i)
		s, info, err := e2e.PutClip(cl, "fleet", key, uint64(500+i), 200_000+i*80_021)
		if err != nil {
			t.Fatalf("put with one node down: %v", err)
		}
		want[key] = s
		if len(info.Shards) != 6 {
			t.Fatalf("%s: %d shards recorded, want 6", key, len(info.Shards))
		}
		for _, sh := range info.Shards {
			switch {
			case sh.Node == dead.ID:
				t.Fatalf("%s: shard %d placed on %s, which meta had marked down", key, sh.Index, dead.ID)
			case sh.State == client.ShardMissing && sh.Node == "":
				missingAtPut++
			case sh.State != client.ShardOK || sh.Node == "":
				t.Fatalf("%s: shard %d on %q recorded %v", key, sh.Index, sh.Node, sh.State)
			}
		}
	}
	t.Logf("10 puts with %s down: %d shard indices recorded missing", dead.ID, missingAtPut)
	e2e.CheckAll(t, cl, "fleet", want)

	// A second node goes: 5 live nodes, exactly the write quorum.
	away.Proc.Kill()
	e2e.WaitNodeUp(t, cl, away.ID, false)
	quorumKeys := map[string]bool{}
	for i := range 5 {
		key := fmt.Sprintf("two-down/%02d", i)
		s, info, err := e2e.PutClip(cl, "fleet", key, uint64(600+i), 300_000+i*50_111)
		if err != nil {
			t.Fatalf("put with two nodes down (5 live, quorum 5): %v", err)
		}
		want[key] = s
		quorumKeys[key] = true
		ok, missing := 0, 0
		for _, sh := range info.Shards {
			switch {
			case sh.Node == dead.ID || sh.Node == away.ID:
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
	e2e.CheckAll(t, cl, "fleet", want) // degraded, readable

	// The second node returns: the missing indices are rebuilt onto it.
	c.StartStorage(away)
	t1 := time.Now()
	keys := e2e.SortedKeys(want)
	await.TrueWhy(t, 30*time.Second, "every clip at 6 OK shards on distinct live nodes", func() (bool, string) {
		return e2e.ClipsFull(cl, "fleet", keys, map[string]bool{dead.ID: true})
	})
	t.Logf("missing indices completed by repair %v after %s returned", time.Since(t1).Round(10*time.Millisecond), away.ID)
	await.TrueWhy(t, 30*time.Second, "fsck --deep clean", func() (bool, string) { return c.FsckClean() })
	for key := range quorumKeys {
		info, err := cl.Stat(ctx, "fleet", key)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(info.Shards, func(s client.ShardInfo) bool { return s.Node == away.ID }) {
			t.Fatalf("%s: no shard on %s, the only node that could take the missing index", key, away.ID)
		}
	}
	e2e.CheckAll(t, cl, "fleet", want)
}

// TestKillTwoNodesDuringIngest: 8 writers put 200 small clips (1 KiB to
// 256 KiB) concurrently; after 60 puts have succeeded two storage nodes are
// killed with SIGKILL and the ingest goes on. Every put that returned
// success reads back identical while the nodes are away, and again once
// they are back and repair, inventory and GC have made fsck --deep clean.
func TestKillTwoNodesDuringIngest(t *testing.T) {
	c := e2e.StartDurabilityCluster(t, 7)
	cl := c.Client()
	if err := cl.CreateBucket(context.Background(), "fleet", e2e.DurabilityProfile); err != nil {
		t.Fatal(err)
	}
	victims := []*e2e.StorageNode{c.Storage[1], c.Storage[5]} // zones 1 and 2
	const total, killAfter, writers = 200, 60, 8
	r := mrand.New(mrand.NewPCG(2026, 5))
	sizes := make([]int, total)
	for i := range sizes {
		sizes[i] = 1<<10 + r.IntN(255<<10+1)
	}

	var (
		mu         sync.Mutex
		want       = map[string]e2e.Stored{}
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
				v.Proc.Kill()
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
				s, _, err := e2e.PutClip(cl, "fleet", key, uint64(10_000+i), sizes[i])
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
		total, time.Since(t0).Round(time.Millisecond), len(want), len(failed), victims[0].ID, victims[1].ID,
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
	e2e.CheckAll(t, cl, "fleet", want) // with two nodes away

	for _, v := range victims {
		c.StartStorage(v)
	}
	c.WaitNodesUp(7)
	t1 := time.Now()
	await.TrueWhy(t, 45*time.Second, "fsck --deep clean after the nodes returned", func() (bool, string) { return c.FsckClean() })
	t.Logf("fsck --deep clean %v after the nodes returned", time.Since(t1).Round(10*time.Millisecond))
	if ok, why := e2e.ClipsFull(cl, "fleet", e2e.SortedKeys(want), nil); !ok {
		t.Fatalf("fsck is clean but %s", why)
	}
	e2e.CheckAll(t, cl, "fleet", want)
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
	c := e2e.StartDurabilityCluster(t, 7)
	cl := c.Client()
	ctx := context.Background()
	if err := cl.CreateBucket(ctx, "fleet", e2e.DurabilityProfile); err != nil {
		t.Fatal(err)
	}
	want := map[string]e2e.Stored{}
	perNode := map[string][]string{} // node -> shard ids
	for i := range 10 {
		key := fmt.Sprintf("clip/%02d", i)
		s, info, err := e2e.PutClip(cl, "fleet", key, uint64(700+i), 150_000+i*60_013)
		if err != nil {
			t.Fatal(err)
		}
		want[key] = s
		if why := e2e.ShardsProblem(info, nil); why != "" {
			t.Fatalf("%s after put: %s", key, why)
		}
		for _, sh := range info.Shards {
			perNode[sh.Node] = append(perNode[sh.Node], sh.ID)
		}
	}
	var x *e2e.StorageNode
	for _, s := range c.Storage {
		if x == nil || len(perNode[s.ID]) > len(perNode[x.ID]) {
			x = s
		}
	}
	stale := perNode[x.ID]
	t.Logf("%s holds %d shards of the 10 clips", x.ID, len(stale))

	// Readers run from the kill to the end: every get is whole and right.
	stop := make(chan struct{})
	var readers sync.WaitGroup
	var reads atomic.Int64
	var readErr atomic.Pointer[error]
	keys := e2e.SortedKeys(want)
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
				if err == nil && (info.Size != int64(w.Size) || !bytes.Equal(h.Sum(nil), w.Sum[:])) {
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

	x.Proc.Kill()
	t0 := time.Now()
	await.TrueWhy(t, 30*time.Second, "repair to move every shard off "+x.ID, func() (bool, string) {
		return e2e.ClipsFull(cl, "fleet", keys, map[string]bool{x.ID: true})
	})
	t.Logf("all %d shards of %s rebuilt elsewhere %v after kill -9", len(stale), x.ID, time.Since(t0).Round(10*time.Millisecond))
	checkReaders("while " + x.ID + " was down")
	for _, id := range stale {
		if _, err := os.Stat(c.ShardPath(x.ID, id)); err != nil {
			t.Fatalf("stale shard file of the dead node: %v", err)
		}
	}

	// Keep a copy of the stale files: a node can come back with shards its
	// queued deletes never reached (GC is the backstop for those).
	backup := t.TempDir()
	for _, id := range stale {
		raw, err := os.ReadFile(c.ShardPath(x.ID, id))
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
			_, err := sc.StatShard(sctx, &storagepb.StatShardRequest{ShardId: e2e.MustHex(t, id)})
			cancel()
			_, ferr := os.Stat(c.ShardPath(x.ID, id))
			switch {
			case err == nil:
				present++
				why = fmt.Sprintf("stale shard %s still served by %s", id, x.ID)
			case status.Code(err) != codes.NotFound:
				present++
				why = fmt.Sprintf("StatShard %s on %s: %v", id, x.ID, err)
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
		case <-x.Proc.Done():
		default:
			if err := x.Proc.Stop(); err != nil {
				t.Fatalf("stop %s: %v", x.ID, err)
			}
		}
		args := c.StorageArgs
		if !gc {
			c.StorageArgs = append(slices.Clone(args), "--gc-interval", "0")
		}
		c.StartStorage(x)
		c.StorageArgs = args
		return e2e.StorageClient(t, x.Proc.Addr)
	}

	// 1. X returns (GC off): the repair commits queued deletes of its old
	// shards, which reach it in heartbeat answers. Reads right after the
	// restart, while they may still be there, return the right bytes.
	sc := restartX(false)
	t1 := time.Now()
	e2e.CheckAll(t, cl, "fleet", want)
	present, _ := staleOn(sc)
	t.Logf("checkAll right after %s returned took %v; %d of %d stale shards still there at its end",
		x.ID, time.Since(t1).Round(10*time.Millisecond), present, len(stale))
	await.TrueWhy(t, 30*time.Second, "the queued deletes to remove the stale shards of "+x.ID, func() (bool, string) {
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
	t.Logf("queued deletes removed the stale shards %v after %s returned", time.Since(t1).Round(10*time.Millisecond), x.ID)

	// 2. X returns again with the stale files put back and nothing queued
	// for them (GC still off): they stay on the node, no record names them
	// again, reads stay correct, and fsck reports exactly them as orphans.
	if err := x.Proc.Stop(); err != nil {
		t.Fatalf("stop %s: %v", x.ID, err)
	}
	for _, id := range stale {
		raw, err := os.ReadFile(filepath.Join(backup, id))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(c.ShardPath(x.ID, id), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sc = restartX(false)
	c.WaitNodesUp(7)
	time.Sleep(2 * time.Second) // heartbeats and the inventory check run; nothing may adopt the stale shards
	if n, why := staleOn(sc); n != len(stale) {
		t.Fatalf("%d of %d restored stale shards on %s with GC off: %s", n, len(stale), x.ID, why)
	}
	e2e.CheckAll(t, cl, "fleet", want)
	if ok, why := e2e.ClipsFull(cl, "fleet", keys, map[string]bool{x.ID: true}); !ok {
		t.Fatalf("with the stale shards back on %s: %s", x.ID, why)
	}
	out, errOut, code := c.CLI("admin", "fsck", "--deep", "--json")
	var rep client.FsckReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code == 0 {
		t.Fatalf("fsck with stale shards on %s: exit %d, %v\n%s%s", x.ID, code, err, out, errOut)
	}
	orphans := map[string]bool{}
	for _, p := range rep.Problems {
		if p.Kind != client.ProblemOrphan || p.Node != x.ID || !slices.Contains(stale, p.ShardID) {
			t.Fatalf("fsck with stale shards on %s: unexpected problem %+v", x.ID, p)
		}
		orphans[p.ShardID] = true
	}
	if len(orphans) != len(stale) || len(rep.Problems) != len(stale) {
		t.Fatalf("fsck reports %d orphans (%d problems), want the %d stale shards of %s",
			len(orphans), len(rep.Problems), len(stale), x.ID)
	}
	checkReaders("with the stale shards on " + x.ID)

	// 3. X restarts with its garbage collector on: GC deletes them.
	sc = restartX(true)
	t2 := time.Now()
	e2e.CheckAll(t, cl, "fleet", want)
	await.TrueWhy(t, 30*time.Second, "GC to remove the stale shards of "+x.ID, func() (bool, string) {
		n, why := staleOn(sc)
		return n == 0, why
	})
	t.Logf("GC removed the stale shards %v after %s restarted with GC on", time.Since(t2).Round(10*time.Millisecond), x.ID)
	await.TrueWhy(t, 30*time.Second, "fsck --deep clean", func() (bool, string) { return c.FsckClean() })

	staleSet := map[string]bool{}
	for _, id := range stale {
		staleSet[id] = true
	}
	for _, key := range keys {
		info, err := cl.Stat(ctx, "fleet", key)
		if err != nil {
			t.Fatal(err)
		}
		if why := e2e.ShardsProblem(info, nil); why != "" {
			t.Fatalf("%s at the end: %s", key, why)
		}
		for _, sh := range info.Shards {
			if staleSet[sh.ID] {
				t.Fatalf("%s: record names stale shard %s", key, sh.ID)
			}
		}
	}
	e2e.CheckAll(t, cl, "fleet", want)
	stopReaders()
	checkReaders("during the test")
	t.Logf("%d background gets, all correct", reads.Load())
}
