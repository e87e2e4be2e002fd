package meta_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/clipstore/clipstore/meta"
)

// balanceCluster lays out parts of k+m shards over the first `full` of n
// nodes (zones z0..z2 round robin), as placement would have before the
// last nodes joined, and returns the nodes and the shards.
func balanceCluster(n, full, parts, width, nzones int, capacity uint64, seed uint64) ([]meta.BalanceNode, []meta.BalanceShard) {
	r := rand.New(rand.NewPCG(seed, seed))
	nodes := make([]meta.BalanceNode, n)
	for i := range nodes {
		nodes[i] = meta.BalanceNode{ID: fmt.Sprintf("s%d", i), Zone: fmt.Sprintf("z%d", i%nzones), Capacity: capacity, Target: true}
	}
	var shards []meta.BalanceShard
	for p := range parts {
		length := uint64(1+r.IntN(2<<20)) / uint64(width)
		holders, zones := map[string]bool{}, map[string]int{}
		perm := r.Perm(full)[:width]
		for _, i := range perm {
			holders[nodes[i].ID] = true
			zones[nodes[i].Zone]++
		}
		for idx, i := range perm {
			nodes[i].Placed += length
			others := maps.Clone(holders)
			delete(others, nodes[i].ID)
			shards = append(shards, meta.BalanceShard{Key: fmt.Sprintf("p%d/%d", p, idx), Part: fmt.Sprintf("p%d", p), Node: nodes[i].ID, Length: length,
				Holders: others, Zones: maps.Clone(zones)})
		}
	}
	return nodes, shards
}

func TestPlanBalance(t *testing.T) {
	const capacity = 150 << 20 // the clips fill about half of six nodes
	cases := []struct {
		name              string
		nodes, full       int
		parts, width      int
		zones             int
		threshold         float64
		maxBytes          uint64
		wantMoves, within bool
	}{
		{"two nodes join six", 8, 6, 300, 6, 1, 0.05, 0, true, true},
		{"one node joins seven", 8, 7, 400, 6, 1, 0.05, 0, true, true},
		{"already even", 7, 7, 300, 6, 1, 0.05, 0, false, true},
		{"capped bytes", 8, 6, 300, 6, 1, 0.05, 20 << 20, true, false},
		// Three zones, two shards of each part per zone, and the new nodes
		// in two of them: shards move only within their zone (one more in
		// another zone would make the part's spread worse), so the third
		// zone's nodes stay as full as they were.
		{"zones bound the moves", 8, 6, 300, 6, 3, 0.05, 0, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nodes, shards := balanceCluster(tc.nodes, tc.full, tc.parts, tc.width, tc.zones, capacity, 7)
			before := map[string]map[string]int{} // part -> zone counts before
			holders := map[string]map[string]bool{}
			for _, s := range shards {
				part := s.Key[:len(s.Key)-2]
				before[part] = maps.Clone(s.Zones)
				if holders[part] == nil {
					holders[part] = map[string]bool{}
				}
				holders[part][s.Node] = true
			}
			origNode := map[string]string{}
			for _, s := range shards {
				origNode[s.Key] = s.Node
			}
			p := meta.PlanBalance(nodes, shards, tc.threshold, tc.maxBytes)
			if (len(p.Moves) > 0) != tc.wantMoves {
				t.Fatalf("%d moves, want moves: %v", len(p.Moves), tc.wantMoves)
			}
			var moved uint64
			for _, m := range p.Moves {
				moved += m.Length
				part := m.Key[:len(m.Key)-2]
				if origNode[m.Key] != m.From {
					t.Fatalf("move %v does not start where the shard is", m)
				}
				if holders[part][m.To] {
					t.Fatalf("move %v puts two shards of the part on %s", m, m.To)
				}
				delete(holders[part], m.From)
				holders[part][m.To] = true
			}
			// Zone spread no worse: the part's largest zone count does not grow.
			zoneOf := map[string]string{}
			for _, n := range nodes {
				zoneOf[n.ID] = n.Zone
			}
			for part, hs := range holders {
				after := map[string]int{}
				for h := range hs {
					after[zoneOf[h]]++
				}
				if maxCount(after) > maxCount(before[part]) {
					t.Fatalf("part %s: zone counts %v, were %v", part, after, before[part])
				}
			}
			if tc.maxBytes > 0 && moved > tc.maxBytes {
				t.Fatalf("moved %d bytes, cap %d", moved, tc.maxBytes)
			}
			if tc.wantMoves && tc.maxBytes == 0 && float64(moved) > 1.1*float64(p.Excess) {
				t.Fatalf("moved %d bytes, more than 1.1x the excess %d", moved, p.Excess)
			}
			if spread := meta.Spread(p.After, p.Mean); tc.within && spread > tc.threshold {
				t.Fatalf("spread after %.3f, threshold %.3f (before %.3f)", spread, tc.threshold, meta.Spread(p.Before, p.Mean))
			}
			t.Logf("%d moves, %.1f MiB (excess %.1f MiB); spread %.3f -> %.3f", len(p.Moves), float64(moved)/(1<<20),
				float64(p.Excess)/(1<<20), meta.Spread(p.Before, p.Mean), meta.Spread(p.After, p.Mean))
		})
	}
}

// TestPlanBalanceRespectsPlacement: a shard whose part already has a shard
// on every other node stays, and none goes to a node that may not take
// shards.
func TestPlanBalanceRespectsPlacement(t *testing.T) {
	nodes := []meta.BalanceNode{
		{ID: "a", Zone: "z0", Capacity: 100, Placed: 90, Target: true},
		{ID: "b", Zone: "z1", Capacity: 100, Placed: 0, Target: true},
		{ID: "c", Zone: "z2", Capacity: 100, Placed: 10, Target: false},
	}
	shards := []meta.BalanceShard{
		{Key: "x", Part: "x", Node: "a", Length: 40, Holders: map[string]bool{"b": true}, Zones: map[string]int{"z0": 1, "z1": 1}},
		{Key: "y", Part: "y", Node: "a", Length: 30, Holders: map[string]bool{}, Zones: map[string]int{"z0": 1}},
	}
	p := meta.PlanBalance(nodes, shards, 0.05, 0)
	if len(p.Moves) != 1 || p.Moves[0].Key != "y" || p.Moves[0].To != "b" {
		t.Fatalf("moves %+v, want only y to b", p.Moves)
	}
}

func maxCount(m map[string]int) int {
	best := 0
	for _, v := range m {
		best = max(best, v)
	}
	return best
}
