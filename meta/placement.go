package meta

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/clipstore/clipstore/erasure"
	"github.com/clipstore/clipstore/internal/bytesize"
)

// ErrNotEnoughNodes means that fewer live storage nodes with enough free
// space are known than a clip's write quorum needs. Place's error wraps it;
// match it with errors.Is. Its message gives the numbers.
var ErrNotEnoughNodes = errors.New("not enough live storage nodes")

// Candidate is a live storage node that may receive a new shard.
type Candidate struct {
	ID   string // node id
	Zone string // failure domain; "" is a zone of its own name ""
	Free uint64 // bytes free for shards
}

// Placement is where a new clip's shards go.
type Placement struct {
	// Targets has len k+m; Targets[i] is the node for shard index i, or ""
	// when no node is available and index i is recorded missing.
	Targets []string
	// Spares are up to m further distinct nodes, none of them a target, to
	// replace a target that fails before its first piece.
	Spares []string
}

// Place picks nodes for a new clip of k data and m parity shards (BeginPut).
//
// Only candidates with Free >= minFree are eligible. Nodes are chosen one at
// a time: first a zone among those with the fewest shards so far (ties broken
// at random, weighted by the zone's remaining free space), then a node in it
// at random, weighted by Free; this minimises the largest number of shards in
// one zone. The chosen nodes take the shard indices in random order. With
// fewer than k+m but at least min(k+1, k+m) eligible nodes (the write quorum)
// every eligible node is a target and the highest parity indices are left
// "". Spares continue the same choice. With fewer eligible nodes than the
// quorum Place returns an error wrapping ErrNotEnoughNodes.
//
// Place is pure: the result depends only on the set of candidates (not their
// order) and the state of r. Invalid arguments (k < 1, m < 0, k+m > 64, an
// empty or duplicate ID, a nil r) are programming errors and return an error.
func Place(cands []Candidate, k, m int, minFree uint64, r *rand.Rand) (Placement, error) {
	sorted, err := placeCheckArgs(cands, k, m, r)
	if err != nil {
		return Placement{}, err
	}
	eligible := slices.DeleteFunc(sorted, func(c Candidate) bool { return c.Free < minFree })
	n := k + m
	if len(eligible) < min(k+1, n) {
		return Placement{}, &placeShortError{k: k, m: m, minFree: minFree, available: len(eligible)}
	}
	zones := placeGroupZones(eligible)
	chosen := zones.pick(min(n, len(eligible)), r)
	spares := zones.pick(m, r)
	r.Shuffle(len(chosen), func(i, j int) { chosen[i], chosen[j] = chosen[j], chosen[i] })
	targets := make([]string, n) // indices past len(chosen) (parity, highest first) stay ""
	copy(targets, chosen)
	return Placement{Targets: targets, Spares: spares}, nil
}

// placeCheckArgs validates Place's arguments and returns a copy of cands
// sorted by ID, so that the result does not depend on the caller's order.
func placeCheckArgs(cands []Candidate, k, m int, r *rand.Rand) ([]Candidate, error) {
	switch {
	case k < 1 || m < 0 || k > erasure.MaxShards || m > erasure.MaxShards-k: // no k+m overflow
		return nil, fmt.Errorf("placement: invalid erasure profile %d+%d (want k >= 1, m >= 0, k+m <= %d)", k, m, erasure.MaxShards)
	case r == nil:
		return nil, errors.New("placement: nil random source")
	}
	sorted := slices.Clone(cands)
	slices.SortFunc(sorted, func(a, b Candidate) int { return cmp.Compare(a.ID, b.ID) })
	for i, c := range sorted {
		if c.ID == "" {
			return nil, errors.New("placement: candidate with empty node id")
		}
		if i > 0 && sorted[i-1].ID == c.ID {
			return nil, fmt.Errorf("placement: duplicate candidate node %q", c.ID)
		}
	}
	return sorted, nil
}

// placeZone is one failure domain during a placement.
type placeZone struct {
	nodes  []Candidate // eligible nodes not chosen yet, sorted by ID
	chosen int         // nodes chosen in this zone so far
}

// free returns the zone's remaining free space as a weight.
func (z *placeZone) free() float64 {
	var sum float64 // float64: a sum of uint64s may overflow
	for _, c := range z.nodes {
		sum += float64(c.Free)
	}
	return sum
}

// placeZones holds the zones of one placement, sorted by zone name.
type placeZones []*placeZone

// placeGroupZones groups candidates (sorted by ID) by zone.
func placeGroupZones(cands []Candidate) placeZones {
	byName := make(map[string]*placeZone)
	var names []string
	for _, c := range cands {
		z, ok := byName[c.Zone]
		if !ok {
			z = &placeZone{}
			byName[c.Zone] = z
			names = append(names, c.Zone)
		}
		z.nodes = append(z.nodes, c)
	}
	slices.Sort(names)
	zones := make(placeZones, len(names))
	for i, name := range names {
		zones[i] = byName[name]
	}
	return zones
}

// pick chooses up to count more nodes, fewer if the zones run out.
func (zs placeZones) pick(count int, r *rand.Rand) []string {
	var ids []string
	for range count {
		z := zs.leastLoaded(r)
		if z == nil {
			break
		}
		i := placeWeighted(len(z.nodes), func(i int) float64 { return float64(z.nodes[i].Free) }, r)
		ids = append(ids, z.nodes[i].ID)
		z.nodes = slices.Delete(z.nodes, i, i+1)
		z.chosen++
	}
	return ids
}

// leastLoaded returns a zone with unchosen nodes and the fewest chosen ones,
// ties broken at random weighted by remaining free space; nil if none is left.
func (zs placeZones) leastLoaded(r *rand.Rand) *placeZone {
	var ties placeZones
	for _, z := range zs {
		switch {
		case len(z.nodes) == 0:
		case len(ties) == 0 || z.chosen < ties[0].chosen:
			ties = append(ties[:0], z)
		case z.chosen == ties[0].chosen:
			ties = append(ties, z)
		}
	}
	if len(ties) == 0 {
		return nil
	}
	return ties[placeWeighted(len(ties), func(i int) float64 { return ties[i].free() }, r)]
}

// placeWeighted returns an index in [0, n) chosen at random with probability
// proportional to weight(i), or uniformly if all weights are 0. n must be > 0.
func placeWeighted(n int, weight func(int) float64, r *rand.Rand) int {
	var total float64
	for i := range n {
		total += weight(i)
	}
	if total <= 0 {
		return r.IntN(n)
	}
	x := r.Float64() * total
	last := 0
	for i := range n {
		w := weight(i)
		if w <= 0 {
			continue
		}
		if x < w {
			return i
		}
		x -= w
		last = i // rounding may leave x >= the last weight: take the last positive one
	}
	return last
}

// placeShortError reports too few eligible nodes for a k+m write quorum.
type placeShortError struct {
	k, m      int
	minFree   uint64
	available int
}

// Error says how many nodes the profile needs and how many there are.
func (e *placeShortError) Error() string {
	n := e.k + e.m
	q := min(e.k+1, n)
	var b strings.Builder
	fmt.Fprintf(&b, "placement for %d+%d needs at least %d live storage node", e.k, e.m, q)
	if q != 1 {
		b.WriteString("s")
	}
	if e.minFree > 0 {
		fmt.Fprintf(&b, " with %s free", bytesize.Human(int64(e.minFree)))
	}
	if q < n {
		fmt.Fprintf(&b, " (%d for full redundancy)", n)
	}
	fmt.Fprintf(&b, ", %d available", e.available)
	return b.String()
}

// Unwrap makes the error match ErrNotEnoughNodes.
func (e *placeShortError) Unwrap() error { return ErrNotEnoughNodes }
