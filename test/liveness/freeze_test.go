package liveness

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/test/e2e"
)

// downAfter is the cluster's --node-down-after: short, so that a fault
// that would get nodes marked down does so within the test.
const downAfter = 2 * time.Second

// TestLivenessUnderFaults runs 3 meta members and 7 storage nodes (whose
// nodes count as down after 2 s of silence) through the faults that used
// to cost availability, case after case on one cluster:
//   - each meta member in turn is frozen (SIGSTOP) for three --node-down-after
//     periods while 4 writers store clips: no storage node is marked down,
//     nothing is queued for repair, and no put fails;
//   - a storage node of a cluster with exactly k+m nodes (a 5+2 bucket) is
//     killed, marked down and restarted: the first put after meta sees it
//     back stores a shard on it;
//   - more storage nodes than the mass-down guard allows are frozen at once:
//     they are marked down but repair is held, the hold outlives a leader
//     change, and when they return within it, no shard has moved.
func TestLivenessUnderFaults(t *testing.T) {
	c := e2e.StartCluster(t, e2e.ClusterOptions{StorageNodes: 7,
		MetaArgs: []string{"--node-down-after", downAfter.String(), "--repair-after", "1s", "--mass-down-hold", "30s"}})
	cl := c.Client()
	ctx := context.Background()
	if err := cl.CreateBucket(ctx, "fleet", e2e.DurabilityProfile); err != nil {
		t.Fatal(err)
	}
	if err := cl.CreateBucket(ctx, "exact", &client.Profile{DataShards: 5, ParityShards: 2, BlockSize: 64 << 10}); err != nil {
		t.Fatal(err)
	}

	t.Run("frozen meta members", func(t *testing.T) {
		w := startWriters(t, cl, "fleet", 4)
		watch := watchNodes(t, c)
		time.Sleep(time.Second) // writers under way
		for i := range c.Metas {
			m := memberByRole(t, c, cl, i)
			at := time.Now()
			if err := m.Proc.Freeze(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * downAfter)
			if err := m.Proc.Thaw(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(downAfter) // the member catches up
			t.Logf("%s (%s) frozen for %v: longest put %v", m.ID, role(i), 3*downAfter, w.longest(at, time.Now()).Round(10*time.Millisecond))
		}
		puts, failed := w.stop()
		problems := watch.stop()
		if len(failed) > 0 {
			t.Errorf("%d of %d puts failed while meta members were frozen; first: %v", len(failed), puts, failed[0])
		}
		if len(problems) > 0 {
			t.Errorf("while meta members were frozen: %s", strings.Join(problems, "; "))
		}
		for _, m := range c.Metas {
			if strings.Contains(m.Proc.Log.String(), "storage node marked down") {
				t.Errorf("meta member %s marked a storage node down", m.ID)
			}
		}
		t.Logf("%d puts by 4 writers, none failed, no node marked down, nothing queued for repair", puts)
	})

	t.Run("restarted node serves at once", func(t *testing.T) {
		victim := c.Storage[4]
		victim.Proc.Kill()
		e2e.WaitNodeUp(t, cl, victim.ID, false)
		c.StartStorage(victim)
		e2e.WaitNodeUp(t, cl, victim.ID, true)
		_, info, err := e2e.PutClip(cl, "exact", "first-after-restart", 77, 300_000)
		if err != nil {
			t.Fatal(err)
		}
		if problem := e2e.ShardsProblem(info, nil); problem != "" {
			t.Fatalf("the first put after %s was back: %s", victim.ID, problem)
		}
		if !slices.ContainsFunc(info.Shards, func(s client.ShardInfo) bool { return s.Node == victim.ID }) {
			t.Fatalf("the first put after %s was back put no shard on it: %+v", victim.ID, info.Shards)
		}
	})

	t.Run("mass-down guard", func(t *testing.T) {
		want := map[string]e2e.Stored{}
		placed := map[string][]string{}
		for i := range 6 {
			key := fmt.Sprintf("guarded/%d", i)
			s, info, err := e2e.PutClip(cl, "fleet", key, uint64(500+i), 120_000)
			if err != nil {
				t.Fatal(err)
			}
			want[key] = s
			for _, sh := range info.Shards {
				placed[key] = append(placed[key], sh.Node)
			}
		}
		silent := c.Storage[:4] // the guard allows max(m+1, 30% of 7) = 3
		for _, s := range silent {
			if err := s.Proc.Freeze(); err != nil {
				t.Fatal(err)
			}
		}
		frozen := time.Now()
		var since time.Time
		await.TrueWhy(t, 20*time.Second, "4 nodes down and repair held", func() (bool, string) {
			st, err := cl.ClusterStatus(ctx)
			if err != nil {
				return false, err.Error()
			}
			if st.RepairHold != nil {
				since = st.RepairHold.Since
			}
			return st.NodesUp == 3 && st.RepairHold != nil && st.RepairHold.Nodes == 4 && st.RepairHold.Threshold == 3,
				fmt.Sprintf("%d nodes up, hold %+v", st.NodesUp, st.RepairHold)
		})
		out, _, _ := c.CLI("cluster", "status")
		if !strings.Contains(out, "REPAIR HELD: 4 storage nodes went silent at once (the guard allows 3)") {
			t.Fatalf("cluster status does not show the hold:\n%s", out)
		}
		// A new leader keeps the hold, from the same start.
		leader, term := c.MetaLeader(cl)
		leader.Proc.Kill()
		await.TrueWhy(t, 20*time.Second, "a new leader with the same hold", func() (bool, string) {
			ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			st, err := cl.ClusterStatus(ctx)
			if err != nil {
				return false, err.Error()
			}
			return st.Term > term && st.RepairHold != nil && st.RepairHold.Since.Equal(since),
				fmt.Sprintf("term %d, hold %+v (since %v)", st.Term, st.RepairHold, since)
		})
		for _, s := range silent {
			if err := s.Proc.Thaw(); err != nil {
				t.Fatal(err)
			}
		}
		await.TrueWhy(t, 20*time.Second, "every node back and the hold over", func() (bool, string) {
			st, err := cl.ClusterStatus(ctx)
			if err != nil {
				return false, err.Error()
			}
			return st.NodesUp == 7 && st.RepairHold == nil, fmt.Sprintf("%d nodes up, hold %+v", st.NodesUp, st.RepairHold)
		})
		t.Logf("4 of 7 nodes silent for %v, across a leader change: repair held, nothing moved", time.Since(frozen).Round(100*time.Millisecond))
		for key := range want {
			info, err := cl.Stat(ctx, "fleet", key)
			if err != nil {
				t.Fatal(err)
			}
			var nodes []string
			for _, sh := range info.Shards {
				nodes = append(nodes, sh.Node)
			}
			if !slices.Equal(nodes, placed[key]) {
				t.Fatalf("%s moved during the hold: on %v, was on %v", key, nodes, placed[key])
			}
		}
		e2e.CheckAll(t, cl, "fleet", want)
		leader.Start(t)
	})
}

// memberByRole returns the meta member to freeze in round i: a follower,
// the other follower, then the leader.
func memberByRole(t *testing.T, c *e2e.Cluster, cl *client.Client, i int) *e2e.MetaMember {
	t.Helper()
	leader, _ := c.MetaLeader(cl)
	var followers []*e2e.MetaMember
	for _, m := range c.Metas {
		if m != leader {
			followers = append(followers, m)
		}
	}
	if i < 2 {
		return followers[i%len(followers)]
	}
	return leader
}

func role(i int) string {
	if i < 2 {
		return "follower"
	}
	return "leader"
}

// writers store clips from several goroutines until stopped, and keep
// every put's span and outcome.
type writers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	puts   []put
}

type put struct {
	start, end time.Time
	err        error
}

func startWriters(t *testing.T, cl *client.Client, bucket string, n int) *writers {
	ctx, cancel := context.WithCancel(context.Background())
	w := &writers{cancel: cancel}
	for g := range n {
		w.wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				start := time.Now()
				_, _, err := e2e.PutClip(cl, bucket, fmt.Sprintf("w%d/%d", g, i), uint64(g<<20+i), 30_000)
				w.mu.Lock()
				w.puts = append(w.puts, put{start, time.Now(), err})
				w.mu.Unlock()
			}
		})
	}
	t.Cleanup(w.halt)
	return w
}

func (w *writers) halt() {
	w.cancel()
	w.wg.Wait()
}

// stop ends the writers and returns how many puts they made and the
// errors of those that failed.
func (w *writers) stop() (int, []error) {
	w.halt()
	var failed []error
	for _, p := range w.puts {
		if p.err != nil {
			failed = append(failed, p.err)
		}
	}
	return len(w.puts), failed
}

// longest is the longest put that overlapped [from, to].
func (w *writers) longest(from, to time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var d time.Duration
	for _, p := range w.puts {
		if p.end.After(from) && p.start.Before(to) {
			d = max(d, p.end.Sub(p.start))
		}
	}
	return d
}

// watcher polls cluster status and notes every node seen down and every
// shard queued for repair.
type watcher struct {
	cancel   context.CancelFunc
	done     chan struct{}
	problems []string
}

func watchNodes(t *testing.T, c *e2e.Cluster) *watcher {
	cl := c.Client()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
			st, err := cl.ClusterStatus(sctx)
			scancel()
			if err == nil {
				for _, n := range st.Nodes {
					if !n.Up {
						w.problems = append(w.problems, fmt.Sprintf("%s seen down (%s) at term %d", n.ID, n.DownReason, st.Term))
					}
				}
				if st.Repair.QueueShards > 0 || st.RepairsInFlight > 0 {
					w.problems = append(w.problems, fmt.Sprintf("%d shards queued for repair at term %d", st.Repair.QueueShards, st.Term))
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	t.Cleanup(w.halt)
	return w
}

func (w *watcher) halt() {
	w.cancel()
	<-w.done
}

func (w *watcher) stop() []string {
	w.halt()
	return w.problems
}
