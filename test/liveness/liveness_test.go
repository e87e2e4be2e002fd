package liveness

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clipstore/clipstore/test/e2e"
)

// TestLeaderKillMarksNoNodeDown SIGKILLs the meta leader of a cluster of 3
// meta and 6 storage processes whose nodes count as down after 2 s of
// silence. The election and the storage nodes' switch to another member
// leave every node unheard for a while; the new leader restarts every
// liveness timer when it wins, so for three NodeDownAfter periods after the
// kill no node is ever reported down, and puts keep working.
func TestLeaderKillMarksNoNodeDown(t *testing.T) {
	c := e2e.StartDurabilityCluster(t, 6)
	cl := c.Client()
	ctx := context.Background()
	if err := cl.CreateBucket(ctx, "fleet", e2e.DurabilityProfile); err != nil {
		t.Fatal(err)
	}
	leader, oldTerm := c.MetaLeader(cl)
	leader.Proc.Kill()
	killed := time.Now()

	var newLeader string
	for time.Since(killed) < 6*time.Second { // 3 × --node-down-after
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := cl.ClusterStatus(ctx)
		cancel()
		if err != nil {
			time.Sleep(50 * time.Millisecond) // no leader yet
			continue
		}
		if st.Leader != leader.ID && st.Term > oldTerm {
			newLeader = st.Leader
		}
		for _, n := range st.Nodes {
			if !n.Up || !n.DownSince.IsZero() {
				t.Fatalf("%v after the leader was killed (term %d, leader %s): node %s reported down since %v",
					time.Since(killed).Round(time.Millisecond), st.Term, st.Leader, n.ID, n.DownSince)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if newLeader == "" {
		t.Fatal("no new leader within 6 s of the old one's death")
	}
	// A node marked down and up again between two polls leaves its trace
	// in the leader's log.
	for _, m := range c.Metas {
		if m != leader && strings.Contains(m.Proc.Log.String(), "storage node marked down") {
			t.Fatalf("meta member %s marked a storage node down after the leader change:\n%s", m.ID, m.Proc.Log.String())
		}
	}
	for i := range 5 {
		if _, _, err := e2e.PutClip(cl, "fleet", fmt.Sprintf("after/%d", i), uint64(i), 100_000); err != nil {
			t.Fatalf("put under the new leader %s: %v", newLeader, err)
		}
	}
	t.Logf("new leader %s; no node marked down in the %v after the kill", newLeader, 6*time.Second)
}
