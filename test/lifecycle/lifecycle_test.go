package lifecycle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/test/e2e"
)

// TestNodeLifecycle drives an 8-node cluster (RS 4+2, nodes down after 2 s
// of silence, repaired 1 s later) through the admin states with the CLI,
// case after case: refused transitions change nothing; a node stopped in
// its maintenance window is neither marked down nor repaired and reads go
// around it, until the window ends; a dead node is decommissioned by
// repair, and removed; a live node is drained under load with no client
// error, then decommissioned and removed.
func TestNodeLifecycle(t *testing.T) {
	c := e2e.StartDurabilityCluster(t, 8)
	cl := c.Client()
	ctx := context.Background()
	if err := cl.CreateBucket(ctx, "fleet", e2e.DurabilityProfile); err != nil {
		t.Fatal(err)
	}
	want := map[string]e2e.Stored{}
	var keys []string
	for i := range 12 {
		key := fmt.Sprintf("clip/%02d", i)
		s, _, err := e2e.PutClip(cl, "fleet", key, uint64(i), 150_000+i*1000)
		if err != nil {
			t.Fatal(err)
		}
		want[key] = s
		keys = append(keys, key)
	}
	node := func(id string) client.StorageNode {
		st, err := cl.ClusterStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range st.Nodes {
			if n.ID == id {
				return n
			}
		}
		return client.StorageNode{}
	}

	t.Run("refused transitions", func(t *testing.T) {
		cases := []struct {
			args []string
			want string
		}{
			{[]string{"maintenance", "nope", "--for", "1m"}, `storage node "nope" is not registered`},
			{[]string{"maintenance", "s0"}, "give either --for DURATION or --end"},
			{[]string{"maintenance", "s0", "--for", "-5m"}, "want a positive duration"},
			{[]string{"decommission", "s0"}, `storage node "s0" still holds`},
			{[]string{"decommission", "s0", "--dead"}, `storage node "s0" is up and holds`},
			{[]string{"remove", "s0"}, `storage node "s0" is active; decommission it before removing it`},
		}
		for _, tc := range cases {
			out, errOut, code := c.CLI(append([]string{"admin", "node"}, tc.args...)...)
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			if code == 0 || len(lines) != 1 || !strings.Contains(errOut, tc.want) {
				t.Errorf("admin node %s: exit %d, stderr %q, stdout %q; want one line with %q", strings.Join(tc.args, " "), code, errOut, out, tc.want)
			}
		}
		if n := node("s0"); n.AdminState != client.AdminActive || !n.Up {
			t.Fatalf("s0 after refused changes: %+v", n)
		}
	})

	t.Run("maintenance window", func(t *testing.T) {
		victim := c.Storage[1]
		const window = 8 * time.Second
		out, errOut, code := c.CLI("admin", "node", "maintenance", victim.ID, "--for", window.String(), "--json")
		if code != 0 {
			t.Fatalf("maintenance: exit %d: %s", code, errOut)
		}
		var got struct {
			AdminState       string `json:"admin_state"`
			MaintenanceUntil string `json:"maintenance_until"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil || got.AdminState != "maintenance" || got.MaintenanceUntil == "" {
			t.Fatalf("maintenance --json: %v, %q", err, out)
		}
		start := time.Now()
		victim.Proc.Kill()
		// Well past --node-down-after and --repair-after, inside the window.
		for time.Since(start) < window-2*time.Second {
			st, err := cl.ClusterStatus(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range st.Nodes {
				if !n.Up {
					t.Fatalf("%s marked down %v into %s's maintenance window", n.ID, time.Since(start).Round(time.Millisecond), victim.ID)
				}
			}
			if st.Repair.QueueShards > 0 || st.RepairsInFlight > 0 {
				t.Fatalf("repair queued during the maintenance window: %d shards, %d in flight", st.Repair.QueueShards, st.RepairsInFlight)
			}
			time.Sleep(250 * time.Millisecond)
		}
		e2e.CheckAll(t, cl, "fleet", want) // reads go around the stopped node
		out, _, _ = c.CLI("cluster", "status")
		if !strings.Contains(out, "maintenance until") {
			t.Fatalf("cluster status does not show the window:\n%s", out)
		}
		// The window ends with the node still gone: down, then repaired.
		e2e.WaitNodeUp(t, cl, victim.ID, false)
		if n := node(victim.ID); n.AdminState != client.AdminActive {
			t.Fatalf("%s after its window: %s", victim.ID, n.AdminState)
		}
		await.TrueWhy(t, 60*time.Second, "every clip rebuilt off the node", func() (bool, string) {
			return e2e.ClipsFull(cl, "fleet", keys, map[string]bool{victim.ID: true})
		})
		// Now empty, it is decommissioned and removed.
		if _, errOut, code := c.CLI("admin", "node", "decommission", victim.ID); code != 0 {
			t.Fatalf("decommission of the emptied %s: %s", victim.ID, errOut)
		}
		if _, errOut, code := c.CLI("admin", "node", "remove", victim.ID); code != 0 {
			t.Fatalf("remove %s: %s", victim.ID, errOut)
		}
		if n := node(victim.ID); n.ID != "" {
			t.Fatalf("%s still listed after remove", victim.ID)
		}
	})

	t.Run("decommission a dead node", func(t *testing.T) {
		// The removed node comes back as a new one (an empty disk, the
		// same id): 6 live nodes again, enough for k+m distinct.
		readd := c.Storage[1]
		if err := os.RemoveAll(readd.Dir); err != nil {
			t.Fatal(err)
		}
		c.StartStorage(readd)
		e2e.WaitNodeUp(t, cl, readd.ID, true)
		if n := node(readd.ID); n.AdminState != client.AdminActive {
			t.Fatalf("%s added again: %s", readd.ID, n.AdminState)
		}
		victim := c.Storage[2]
		victim.Proc.Kill()
		e2e.WaitNodeUp(t, cl, victim.ID, false)
		out, errOut, code := c.CLI("admin", "node", "decommission", victim.ID, "--dead")
		if code != 0 || !strings.Contains(out, "draining (dead") {
			t.Fatalf("decommission --dead: exit %d, %s%s", code, out, errOut)
		}
		await.TrueWhy(t, 60*time.Second, "the dead node decommissioned", func() (bool, string) {
			n := node(victim.ID)
			return n.AdminState == client.AdminDecommissioned, n.AdminState
		})
		if ok, why := e2e.ClipsFull(cl, "fleet", keys, map[string]bool{victim.ID: true}); !ok {
			t.Fatalf("after %s was decommissioned: %s", victim.ID, why)
		}
		_, errOut, code = c.CLI("admin", "node", "maintenance", victim.ID, "--for", "1m")
		if code == 0 || !strings.Contains(errOut, "is decommissioned: that is final") {
			t.Fatalf("maintenance of a decommissioned node: exit %d, %s", code, errOut)
		}
		if _, errOut, code := c.CLI("admin", "node", "remove", victim.ID); code != 0 {
			t.Fatalf("remove %s: %s", victim.ID, errOut)
		}
		e2e.CheckAll(t, cl, "fleet", want)
		if ok, why := c.FsckClean(); !ok {
			t.Fatal(why)
		}
	})

	t.Run("drain under load", func(t *testing.T) {
		victim := c.Storage[3]
		if err := cl.CreateBucket(ctx, "ingest", e2e.DurabilityProfile); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var errs []error
		written := map[string]e2e.Stored{}
		fail := func(err error) {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
		loadCtx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := 0; loadCtx.Err() == nil; i++ {
					key := fmt.Sprintf("w%d/%d", w, i)
					s, _, err := e2e.PutClip(cl, "ingest", key, uint64(9000+w*1000+i), 40_000)
					if err != nil {
						fail(fmt.Errorf("put %s: %w", key, err))
						continue
					}
					mu.Lock()
					written[key] = s
					mu.Unlock()
				}
			})
		}
		// Slow readers: each holds a record across the move, reading a
		// block at a time, so that shards move (and their old copies go)
		// under open readers.
		for r := range 2 {
			wg.Go(func() {
				for i := 0; loadCtx.Err() == nil; i++ {
					key := keys[(i+r*7)%len(keys)]
					if err := slowRead(loadCtx, cl, "fleet", key, want[key], 250*time.Millisecond); err != nil && loadCtx.Err() == nil {
						fail(err)
					}
				}
			})
		}
		for r := range 2 {
			wg.Go(func() {
				for i := 0; loadCtx.Err() == nil; i++ {
					key := keys[(i+r*5)%len(keys)]
					rctx, cancel := context.WithTimeout(loadCtx, 20*time.Second)
					var buf bytes.Buffer
					_, err := cl.Get(rctx, "fleet", key, &buf, nil)
					cancel()
					got := buf.Bytes()
					if loadCtx.Err() != nil {
						return
					}
					if err != nil {
						fail(fmt.Errorf("get %s: %w", key, err))
					} else if len(got) != want[key].Size || sha256.Sum256(got) != want[key].Sum {
						fail(fmt.Errorf("get %s: %d bytes, not the clip stored", key, len(got)))
					}
				}
			})
		}
		start := time.Now()
		out, errOut, code := c.CLI("admin", "node", "drain", victim.ID, "--wait")
		took := time.Since(start)
		stop()
		wg.Wait()
		if code != 0 || !strings.Contains(out, "draining, 0 shards (0 B) to move") {
			t.Fatalf("drain --wait: exit %d: %s%s", code, out, errOut)
		}
		for _, err := range errs {
			t.Error(err)
		}
		t.Logf("%s drained in %v under 4 writers (%d clips) and 4 readers, 2 of them slow", victim.ID, took.Round(100*time.Millisecond), len(written))
		if _, errOut, code := c.CLI("admin", "node", "decommission", victim.ID); code != 0 {
			t.Fatalf("decommission of the drained %s: %s", victim.ID, errOut)
		}
		if _, errOut, code := c.CLI("admin", "node", "remove", victim.ID); code != 0 {
			t.Fatalf("remove %s: %s", victim.ID, errOut)
		}
		if ok, why := e2e.ClipsFull(cl, "fleet", keys, map[string]bool{victim.ID: true}); !ok {
			t.Fatal(why)
		}
		e2e.CheckAll(t, cl, "fleet", want)
		e2e.CheckAll(t, cl, "ingest", written)
		await.TrueWhy(t, 30*time.Second, "fsck --deep clean", c.FsckClean)
	})

	t.Run("draining node killed mid-drain", func(t *testing.T) {
		c.AddStorage() // six live nodes besides the one to drain
		c.WaitNodesUp(7)
		victim := c.Storage[4]
		if _, errOut, code := c.CLI("admin", "node", "drain", victim.ID); code != 0 {
			t.Fatalf("drain %s: %s", victim.ID, errOut)
		}
		start := node(victim.ID).ShardsToMove
		await.TrueWhy(t, 20*time.Second, "the drain under way", func() (bool, string) {
			n := node(victim.ID)
			return n.ShardsToMove < start, fmt.Sprintf("%d of %d left", n.ShardsToMove, start)
		})
		victim.Proc.Kill()
		await.TrueWhy(t, 60*time.Second, "the rest rebuilt from the other shards", func() (bool, string) {
			n := node(victim.ID)
			return n.AdminState == client.AdminDraining && n.ShardsToMove == 0, fmt.Sprintf("%+v", n)
		})
		e2e.CheckAll(t, cl, "fleet", want)
		if ok, why := e2e.ClipsFull(cl, "fleet", keys, map[string]bool{victim.ID: true}); !ok {
			t.Fatal(why)
		}
		if _, errOut, code := c.CLI("admin", "node", "decommission", victim.ID); code != 0 {
			t.Fatalf("decommission %s: %s", victim.ID, errOut)
		}
	})

	t.Run("moves under faults", func(t *testing.T) {
		// Clips whose shards (256 KiB) take seconds to move at a low move
		// rate, so that the faults land while moves run.
		// Eight live nodes: one to drain, one whose kill is survived, six
		// to take the drained node's shards (k+m).
		c.AddStorage()
		c.AddStorage()
		c.WaitNodesUp(8)
		if _, errOut, code := c.CLI("admin", "rebalance", "stop"); code != 0 {
			t.Fatalf("rebalance stop: %s", errOut)
		}
		if err := cl.CreateBucket(ctx, "moving", e2e.DurabilityProfile); err != nil {
			t.Fatal(err)
		}
		big := map[string]e2e.Stored{}
		ids := map[string]string{} // clip id -> key
		holds := map[string][]string{}
		for i := range 8 {
			key := fmt.Sprintf("big/%d", i)
			s, info, err := e2e.PutClip(cl, "moving", key, uint64(500+i), 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			big[key], ids[info.ClipID] = s, key
			for _, sh := range info.Shards {
				holds[sh.Node] = append(holds[sh.Node], key)
			}
		}
		var victim *e2e.StorageNode
		for _, s := range c.Storage {
			if n := node(s.ID); n.Up && n.AdminState == client.AdminActive && (victim == nil || len(holds[s.ID]) > len(holds[victim.ID])) {
				victim = s
			}
		}
		onVictim := holds[victim.ID]
		if len(onVictim) < 2 {
			t.Fatalf("%s holds shards of %d big clips; the test needs 2", victim.ID, len(onVictim))
		}
		logAt := map[string]int{}
		for _, s := range c.Storage {
			if s.Proc != nil {
				logAt[s.ID] = len(s.Proc.Log.String())
			}
		}
		if _, errOut, code := c.CLI("admin", "moves", "--rate", "256KiB", "--concurrency", "4"); code != 0 {
			t.Fatalf("admin moves: %s", errOut)
		}
		if _, errOut, code := c.CLI("admin", "node", "drain", victim.ID); code != 0 {
			t.Fatalf("drain %s: %s", victim.ID, errOut)
		}
		// The target of a big clip's move, while it copies. Moves are planned
		// in shard id order and ids grow with time, so the victim's small
		// shards of the earlier cases (hundreds) go first: a CI run once
		// started 448 in 20 s, none of a big clip. The bound leaves room for
		// all of them.
		var target *e2e.StorageNode
		await.TrueWhy(t, 60*time.Second, "a big clip's shard being copied", func() (bool, string) {
			started := 0
			for _, s := range c.Storage {
				if s == victim || s.Proc == nil || s.Proc.Exited() {
					continue
				}
				for _, line := range strings.Split(s.Proc.Log.String()[logAt[s.ID]:], "\n") {
					if !strings.Contains(line, "repair started") || !strings.Contains(line, `"move":true`) {
						continue
					}
					started++
					for id := range ids {
						if strings.Contains(line, id) {
							target = s
							return true, ""
						}
					}
				}
			}
			n := node(victim.ID)
			return false, fmt.Sprintf("%d moves started, none of a big clip; %d shards to move off %s; blocked: %q", started,
				n.ShardsToMove, victim.ID, n.DrainBlocked)
		})
		// Overwrite one clip and delete another while their shards move.
		over, gone := onVictim[0], onVictim[1]
		s, _, err := e2e.PutClip(cl, "moving", over, 999, 300_000)
		if err != nil {
			t.Fatal(err)
		}
		big[over] = s
		if err := cl.Delete(ctx, "moving", gone); err != nil {
			t.Fatal(err)
		}
		delete(big, gone)
		// SIGKILL the target mid-copy: its move goes elsewhere.
		target.Proc.Kill()
		t.Logf("drained %s; killed %s copying; overwrote %s, deleted %s", victim.ID, target.ID, over, gone)
		if _, errOut, code := c.CLI("admin", "moves", "--rate", "100MiB", "--concurrency", "8"); code != 0 {
			t.Fatalf("admin moves: %s", errOut)
		}
		await.TrueWhy(t, 60*time.Second, "the drain done without the killed target", func() (bool, string) {
			n := node(victim.ID)
			return n.ShardsToMove == 0, fmt.Sprintf("%d shards to move; blocked: %q", n.ShardsToMove, n.DrainBlocked)
		})
		c.StartStorage(target)
		e2e.CheckAll(t, cl, "moving", big)
		if _, err := cl.Stat(ctx, "moving", gone); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("stat of the deleted %s: %v", gone, err)
		}
		if ok, why := e2e.ClipsFull(cl, "moving", e2e.SortedKeys(big), map[string]bool{victim.ID: true}); !ok {
			t.Fatal(why)
		}
		// No orphan is left once GC has run: the refused moves' copies,
		// the killed target's partial one, the overwritten and deleted
		// clips' shards.
		await.TrueWhy(t, 30*time.Second, "fsck --deep clean", c.FsckClean)
		if _, errOut, code := c.CLI("admin", "node", "decommission", victim.ID); code != 0 {
			t.Fatalf("decommission %s: %s", victim.ID, errOut)
		}
	})
}

// slowRead reads a clip block by block (64 KiB), pausing between blocks,
// through one Reader (one pinned record), and checks the bytes.
func slowRead(ctx context.Context, cl *client.Client, bucket, key string, want e2e.Stored, pause time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r, err := cl.Open(ctx, bucket, key)
	if err != nil {
		return fmt.Errorf("open %s: %w", key, err)
	}
	defer r.Close()
	got := make([]byte, want.Size)
	for off := 0; off < want.Size; off += 64 << 10 {
		end := min(off+64<<10, want.Size)
		if _, err := r.ReadAt(got[off:end], int64(off)); err != nil {
			return fmt.Errorf("slow read of %s at %d: %w", key, off, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
	}
	if sha256.Sum256(got) != want.Sum {
		return fmt.Errorf("slow read of %s: not the clip stored", key)
	}
	return nil
}
