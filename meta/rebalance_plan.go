package meta

import (
	"cmp"
	"maps"
	"math"
	"slices"
)

// BalanceNode is a storage node as the rebalance planner sees it.
type BalanceNode struct {
	ID, Zone string
	Capacity uint64 // bytes
	Placed   uint64 // shard bytes meta places on it
	// Target: it may receive shards (active, up, heard from). A node that
	// may not still counts in the mean and may give shards away.
	Target bool
}

// BalanceShard is one shard entry that may move.
type BalanceShard struct {
	Key    string // identifies the entry (clip, part, index) to the caller
	Part   string // identifies its part: shards of one part share it
	Node   string // where it is
	Length uint64
	// Holders are the nodes holding the part's other shards; Zones counts
	// the part's shards per zone, this one included. The planner reads
	// them from the first shard of each part it meets and keeps them up to
	// date as it plans.
	Holders map[string]bool
	Zones   map[string]int
}

// BalanceMove is one planned move.
type BalanceMove struct {
	Key, From, To string
	Length        uint64
}

// BalancePlan is the planner's answer.
type BalancePlan struct {
	Moves []BalanceMove
	// Mean is the cluster's used fraction (placed bytes over capacity);
	// Before and After the used fraction of each node by id.
	Mean          float64
	Before, After map[string]float64
	// Excess is the sum over nodes of max(0, placed - mean*capacity): what
	// a perfect plan would move at least.
	Excess uint64
}

// Spread is the largest distance of a node's used fraction from the mean.
func Spread(used map[string]float64, mean float64) float64 {
	d := 0.0
	for _, u := range used {
		d = max(d, math.Abs(u-mean))
	}
	return d
}

// PlanBalance plans the moves that bring every node's used fraction within
// threshold of the cluster's mean, moving few bytes: one shard at a time
// (the largest that fits) leaves the fullest node above the mean for the
// emptiest target node that can take it without going above
// mean+threshold, as long as a node is above mean+threshold or a target
// node below mean-threshold; no move takes its source below the mean, so
// the bytes moved stay within the excess over the mean. A shard never goes to a node holding another shard of its part,
// nor makes the part's zone spread worse (the target's zone ends with no
// more of the part's shards than the source's had), which may leave nodes
// outside the band. It moves at most maxBytes in all (0: no bound). It is
// pure: the result depends on its arguments only.
func PlanBalance(nodes []BalanceNode, shards []BalanceShard, threshold float64, maxBytes uint64) BalancePlan {
	var capacity, placed uint64
	byID := map[string]*BalanceNode{}
	for i := range nodes {
		n := &nodes[i]
		byID[n.ID] = n
		capacity += n.Capacity
		placed += n.Placed
	}
	p := BalancePlan{Before: map[string]float64{}, After: map[string]float64{}}
	if capacity == 0 {
		return p
	}
	p.Mean = float64(placed) / float64(capacity)
	now := map[string]uint64{}
	used := func(id string) float64 {
		n := byID[id]
		if n.Capacity == 0 {
			return 0
		}
		return float64(now[id]) / float64(n.Capacity)
	}
	for _, n := range nodes {
		now[n.ID] = n.Placed
		p.Before[n.ID] = used(n.ID)
		if over := float64(n.Placed) - p.Mean*float64(n.Capacity); over > 0 {
			p.Excess += uint64(over)
		}
	}
	bySource := map[string][]*BalanceShard{}
	holders, zones := map[string]map[string]bool{}, map[string]map[string]int{}
	for i := range shards {
		s := &shards[i]
		if holders[s.Part] == nil {
			holders[s.Part], zones[s.Part] = maps.Clone(s.Holders), maps.Clone(s.Zones)
			if holders[s.Part] == nil {
				holders[s.Part] = map[string]bool{}
			}
			if zones[s.Part] == nil {
				zones[s.Part] = map[string]int{}
			}
		}
		holders[s.Part][s.Node] = true
		if byID[s.Node] != nil {
			bySource[s.Node] = append(bySource[s.Node], s)
		}
	}
	for _, list := range bySource {
		slices.SortFunc(list, func(a, b *BalanceShard) int {
			return cmp.Or(cmp.Compare(b.Length, a.Length), cmp.Compare(a.Key, b.Key))
		})
	}
	hi := p.Mean + threshold
	lo := p.Mean - threshold
	var moved uint64
	order := slices.Clone(nodes)
	for {
		over, under := false, false
		for _, n := range nodes {
			over = over || used(n.ID) > hi
			under = under || (n.Target && used(n.ID) < lo)
		}
		if !over && !under {
			break
		}
		// One move from the fullest node that has one, then look again.
		slices.SortFunc(order, func(a, b BalanceNode) int {
			return cmp.Or(cmp.Compare(used(b.ID), used(a.ID)), cmp.Compare(a.ID, b.ID))
		})
		progress := false
		for _, src := range order {
			if u := used(src.ID); u <= p.Mean || (u <= hi && !under) {
				break
			}
			list := bySource[src.ID]
			for i, s := range list {
				if src.Capacity > 0 && float64(now[src.ID]-s.Length)/float64(src.Capacity) < p.Mean {
					continue // it would take the source below the mean
				}
				if maxBytes > 0 && moved+s.Length > maxBytes {
					continue
				}
				ph, pz := holders[s.Part], zones[s.Part]
				to := pickBalanceTarget(nodes, byID, now, s, ph, pz, p.Mean, hi)
				if to == "" {
					continue
				}
				now[src.ID] -= s.Length
				now[to] += s.Length
				moved += s.Length
				delete(ph, src.ID)
				ph[to] = true
				pz[byID[src.ID].Zone]--
				pz[byID[to].Zone]++
				p.Moves = append(p.Moves, BalanceMove{Key: s.Key, From: src.ID, To: to, Length: s.Length})
				bySource[src.ID] = slices.Delete(list, i, i+1)
				progress = true
				break
			}
			if progress {
				break
			}
		}
		if !progress {
			break // what is left cannot move under the rules
		}
	}
	for _, n := range nodes {
		p.After[n.ID] = used(n.ID)
	}
	return p
}

// pickBalanceTarget returns the emptiest target node below the mean that
// may take s without rising above limit, "" if none may.
func pickBalanceTarget(nodes []BalanceNode, byID map[string]*BalanceNode, now map[string]uint64, s *BalanceShard,
	holders map[string]bool, zones map[string]int, mean, limit float64) string {
	srcZone := byID[s.Node].Zone
	best, bestUsed := "", 0.0
	for _, n := range nodes {
		if !n.Target || holders[n.ID] || n.Capacity == 0 {
			continue
		}
		u := float64(now[n.ID]) / float64(n.Capacity)
		if u >= mean || float64(now[n.ID]+s.Length)/float64(n.Capacity) > limit {
			continue // only an emptier than average node gains, up to the limit
		}
		if n.Zone != srcZone && zones[n.Zone]+1 > zones[srcZone] {
			continue // the part's zone spread would get worse
		}
		if best == "" || u < bestUsed || (u == bestUsed && n.ID < best) {
			best, bestUsed = n.ID, u
		}
	}
	return best
}
