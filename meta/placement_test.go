package meta

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// placeGiB is one GiB, the usual free space and minFree in these tests.
const placeGiB = 1 << 30

// placeZoneNodes returns count candidates in zone, named zone+"-"+i, with free bytes each.
func placeZoneNodes(zone string, count int, free uint64) []Candidate {
	cands := make([]Candidate, count)
	for i := range cands {
		cands[i] = Candidate{ID: fmt.Sprintf("%s-%d", zone, i), Zone: zone, Free: free}
	}
	return cands
}

// placeRand returns a deterministic random source.
func placeRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

// checkPlacement returns an error unless p is a valid result of Place for
// these arguments: right lengths, distinct eligible nodes, every eligible
// node used up to k+m, missing indices only the highest parity ones, spares
// distinct from targets and as many as there are nodes left (up to m).
func checkPlacement(cands []Candidate, k, m int, minFree uint64, p Placement) error {
	eligible := make(map[string]bool)
	for _, c := range cands {
		eligible[c.ID] = c.Free >= minFree
	}
	n := k + m
	if len(p.Targets) != n {
		return fmt.Errorf("len(Targets) = %d, want %d", len(p.Targets), n)
	}
	nEligible := placeCountTrue(eligible)
	want := min(nEligible, n)
	if want < min(k+1, n) {
		return fmt.Errorf("placement with %d eligible nodes, below quorum %d", nEligible, min(k+1, n))
	}
	seen := make(map[string]bool)
	for i, id := range p.Targets {
		if (i < want) != (id != "") {
			return fmt.Errorf("Targets[%d] = %q; want the first %d indices set and the rest empty", i, id, want)
		}
		if err := checkPlacePick(id, eligible, seen); id != "" && err != nil {
			return fmt.Errorf("Targets[%d]: %v", i, err)
		}
	}
	if wantSpares := min(m, nEligible-want); len(p.Spares) != wantSpares {
		return fmt.Errorf("len(Spares) = %d, want %d", len(p.Spares), wantSpares)
	}
	for i, id := range p.Spares {
		if err := checkPlacePick(id, eligible, seen); err != nil {
			return fmt.Errorf("Spares[%d]: %v", i, err)
		}
	}
	return nil
}

// checkPlacePick checks that id is an eligible node not seen before, and records it.
func checkPlacePick(id string, eligible, seen map[string]bool) error {
	switch {
	case !eligible[id]:
		return fmt.Errorf("node %q is not an eligible candidate", id)
	case seen[id]:
		return fmt.Errorf("node %q chosen twice", id)
	}
	seen[id] = true
	return nil
}

// placeCountTrue counts the true values in set.
func placeCountTrue(set map[string]bool) int {
	n := 0
	for _, ok := range set {
		if ok {
			n++
		}
	}
	return n
}

// placeZoneLoads counts the chosen nodes (non-empty ids) per zone.
func placeZoneLoads(cands []Candidate, ids ...[]string) map[string]int {
	zoneOf := make(map[string]string)
	for _, c := range cands {
		zoneOf[c.ID] = c.Zone
	}
	loads := make(map[string]int)
	for _, list := range ids {
		for _, id := range list {
			if id != "" {
				loads[zoneOf[id]]++
			}
		}
	}
	return loads
}

// placeMaxLoad returns the largest zone load.
func placeMaxLoad(loads map[string]int) int {
	m := 0
	for _, n := range loads {
		m = max(m, n)
	}
	return m
}

func TestPlaceNotEnoughNodes(t *testing.T) {
	tests := []struct {
		name    string
		cands   []Candidate
		k, m    int
		minFree uint64
		want    string
	}{
		{
			name:    "4+2 with 3 of 5",
			cands:   append(placeZoneNodes("a", 3, 2*placeGiB), placeZoneNodes("b", 2, placeGiB-1)...),
			k:       4,
			m:       2,
			minFree: placeGiB,
			want:    "placement for 4+2 needs at least 5 live storage nodes with 1.0 GiB free (6 for full redundancy), 3 available",
		},
		{
			name: "no nodes",
			k:    10,
			m:    4,
			want: "placement for 10+4 needs at least 11 live storage nodes (14 for full redundancy), 0 available",
		},
		{
			name:    "no parity",
			cands:   placeZoneNodes("a", 2, 100),
			k:       3,
			m:       0,
			minFree: 1,
			want:    "placement for 3+0 needs at least 3 live storage nodes with 1 B free, 2 available",
		},
		{
			name:    "one node",
			cands:   placeZoneNodes("a", 1, 1<<20),
			k:       1,
			m:       0,
			minFree: 1<<20 + 1,
			want:    "placement for 1+0 needs at least 1 live storage node with 1.0 MiB free, 0 available",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Place(tt.cands, tt.k, tt.m, tt.minFree, placeRand(1))
			if !errors.Is(err, ErrNotEnoughNodes) {
				t.Fatalf("Place: error %v, want ErrNotEnoughNodes", err)
			}
			if err.Error() != tt.want {
				t.Errorf("Place: error\n  %q\nwant\n  %q", err, tt.want)
			}
		})
	}
}

func TestPlaceNodeCounts(t *testing.T) {
	tests := []struct {
		name        string
		cands       []Candidate
		k, m        int
		wantMissing []int
	}{
		{"4+2 quorum", placeZoneNodes("a", 5, placeGiB), 4, 2, []int{5}},
		{"10+4 quorum", placeZoneNodes("a", 11, placeGiB), 10, 4, []int{11, 12, 13}},
		{"10+4 one short", placeZoneNodes("a", 13, placeGiB), 10, 4, []int{13}},
		{"4+2 exact", placeZoneNodes("a", 6, placeGiB), 4, 2, nil},
		{"4+2 one spare", placeZoneNodes("a", 7, placeGiB), 4, 2, nil},
		{"4+2 many", append(placeZoneNodes("a", 10, placeGiB), placeZoneNodes("b", 10, placeGiB)...), 4, 2, nil},
		{"1+0", placeZoneNodes("a", 3, placeGiB), 1, 0, nil},
		{"1+1 quorum", placeZoneNodes("a", 2, placeGiB), 1, 1, nil},
		{"2+1 quorum", placeZoneNodes("a", 3, placeGiB), 2, 1, nil},
		{"1+63", placeZoneNodes("a", 100, placeGiB), 1, 63, nil},
		{"64+0", placeZoneNodes("a", 64, placeGiB), 64, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for seed := range uint64(20) {
				p, err := Place(tt.cands, tt.k, tt.m, placeGiB, placeRand(seed))
				if err != nil {
					t.Fatalf("seed %d: Place: %v", seed, err)
				}
				if err := checkPlacement(tt.cands, tt.k, tt.m, placeGiB, p); err != nil {
					t.Fatalf("seed %d: %v\n%+v", seed, err, p)
				}
				var missing []int
				for i, id := range p.Targets {
					if id == "" {
						missing = append(missing, i)
					}
				}
				if !slices.Equal(missing, tt.wantMissing) {
					t.Fatalf("seed %d: missing indices %v, want %v", seed, missing, tt.wantMissing)
				}
			}
		})
	}
}

func TestPlaceZoneSpread(t *testing.T) {
	tests := []struct {
		name       string
		cands      []Candidate
		k, m       int
		wantLoads  map[string]int // targets per zone
		wantMaxAll int            // largest zone load over targets and spares
	}{
		{
			name:       "3 zones of 4, 4+2",
			cands:      slices.Concat(placeZoneNodes("a", 4, placeGiB), placeZoneNodes("b", 4, placeGiB), placeZoneNodes("c", 4, placeGiB)),
			k:          4,
			m:          2,
			wantLoads:  map[string]int{"a": 2, "b": 2, "c": 2},
			wantMaxAll: 3,
		},
		{
			name:       "zones of 5 and 1, 4+2",
			cands:      append(placeZoneNodes("a", 5, placeGiB), placeZoneNodes("b", 1, 100*placeGiB)...),
			k:          4,
			m:          2,
			wantLoads:  map[string]int{"a": 5, "b": 1},
			wantMaxAll: 5,
		},
		{
			name:       "6 zones, unequal free, 4+2",
			cands:      slices.Concat(placeZoneNodes("a", 3, placeGiB), placeZoneNodes("b", 3, 50*placeGiB), placeZoneNodes("c", 1, placeGiB), placeZoneNodes("d", 1, placeGiB), placeZoneNodes("e", 1, placeGiB), placeZoneNodes("", 1, placeGiB)),
			k:          4,
			m:          2,
			wantLoads:  map[string]int{"a": 1, "b": 1, "c": 1, "d": 1, "e": 1, "": 1},
			wantMaxAll: 2,
		},
		{
			name:       "unnamed zone counts as one zone, 2+1",
			cands:      append(placeZoneNodes("", 3, placeGiB), placeZoneNodes("x", 1, placeGiB)...),
			k:          2,
			m:          1,
			wantLoads:  map[string]int{"": 2, "x": 1},
			wantMaxAll: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for seed := range uint64(50) {
				p, err := Place(tt.cands, tt.k, tt.m, placeGiB, placeRand(seed))
				if err != nil {
					t.Fatalf("seed %d: Place: %v", seed, err)
				}
				if got := placeZoneLoads(tt.cands, p.Targets); !reflect.DeepEqual(got, tt.wantLoads) {
					t.Fatalf("seed %d: targets per zone %v, want %v", seed, got, tt.wantLoads)
				}
				if got := placeMaxLoad(placeZoneLoads(tt.cands, p.Targets, p.Spares)); got != tt.wantMaxAll {
					t.Fatalf("seed %d: largest zone load with spares %d, want %d", seed, got, tt.wantMaxAll)
				}
			}
		})
	}
}

// placeBruteMinMax returns, over every choice of count nodes among cands,
// the smallest possible largest number of chosen nodes in one zone.
func placeBruteMinMax(cands []Candidate, count int) int {
	best := math.MaxInt
	for mask := 0; mask < 1<<len(cands); mask++ {
		var chosen []string
		for i, c := range cands {
			if mask&(1<<i) != 0 {
				chosen = append(chosen, c.ID)
			}
		}
		if len(chosen) == count {
			best = min(best, placeMaxLoad(placeZoneLoads(cands, chosen)))
		}
	}
	return best
}

// placeRandomCands returns up to maxNodes candidates over a few zones, with
// free space from 0 to 4 GiB.
func placeRandomCands(r *rand.Rand, maxNodes int) []Candidate {
	zones := []string{"", "a", "b", "c", "d"}[:1+r.IntN(5)]
	cands := make([]Candidate, r.IntN(maxNodes+1))
	for i := range cands {
		cands[i] = Candidate{ID: fmt.Sprintf("n%d", i), Zone: zones[r.IntN(len(zones))], Free: r.Uint64N(5) * placeGiB}
	}
	return cands
}

func TestPlaceZoneSpreadOptimal(t *testing.T) {
	gen := placeRand(42)
	placed := 0
	for tc := range 200 {
		cands := placeRandomCands(gen, 12)
		k, m := 1+gen.IntN(5), gen.IntN(4)
		p, err := Place(cands, k, m, placeGiB, placeRand(uint64(tc)))
		if errors.Is(err, ErrNotEnoughNodes) {
			continue // checked in TestPlaceRandomInvariants
		}
		if err != nil {
			t.Fatalf("case %d: Place: %v", tc, err)
		}
		placed++
		var eligible []Candidate
		for _, c := range cands {
			if c.Free >= placeGiB {
				eligible = append(eligible, c)
			}
		}
		for _, ids := range [][][]string{{p.Targets}, {p.Targets, p.Spares}} {
			loads := placeZoneLoads(cands, ids...)
			count := 0
			for _, n := range loads {
				count += n
			}
			if got, want := placeMaxLoad(loads), placeBruteMinMax(eligible, count); got != want {
				t.Fatalf("case %d: %d nodes with largest zone load %d, optimum %d\ncands %+v\nplacement %+v", tc, count, got, want, cands, p)
			}
		}
	}
	if placed < 100 {
		t.Fatalf("only %d of 200 random cases placed; the generator is too sparse", placed)
	}
}

func TestPlaceRandomInvariants(t *testing.T) {
	gen := placeRand(7)
	for tc := range 500 {
		cands := placeRandomCands(gen, 30)
		k, m := 1+gen.IntN(12), gen.IntN(6)
		if err := checkPlaceCall(cands, k, m, placeGiB, uint64(tc)); err != nil {
			t.Fatalf("case %d (%d+%d, %+v): %v", tc, k, m, cands, err)
		}
	}
}

// checkPlaceCall calls Place for valid arguments and checks the result or
// the ErrNotEnoughNodes error, and that the same seed gives the same result.
func checkPlaceCall(cands []Candidate, k, m int, minFree, seed uint64) error {
	p, err := Place(cands, k, m, minFree, placeRand(seed))
	eligible := 0
	for _, c := range cands {
		if c.Free >= minFree {
			eligible++
		}
	}
	if q := min(k+1, k+m); eligible < q {
		if !errors.Is(err, ErrNotEnoughNodes) {
			return fmt.Errorf("%d eligible, quorum %d: error %v, want ErrNotEnoughNodes", eligible, q, err)
		}
		if !strings.HasSuffix(err.Error(), fmt.Sprintf(", %d available", eligible)) {
			return fmt.Errorf("error %q does not give the %d available nodes", err, eligible)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("Place: %v", err)
	}
	if again, _ := Place(cands, k, m, minFree, placeRand(seed)); !reflect.DeepEqual(again, p) {
		return fmt.Errorf("same seed, different placements:\n%+v\n%+v", p, again)
	}
	if err := checkPlacement(cands, k, m, minFree, p); err != nil {
		return err
	}
	return checkPlaceSpread(cands, minFree, p)
}

// placeZoneRoom returns how many nodes fit with at most limit in one zone.
func placeZoneRoom(perZone map[string]int, limit int) int {
	room := 0
	for _, n := range perZone {
		room += min(n, limit)
	}
	return room
}

// checkPlaceSpread checks that the targets, and the targets with the spares, are
// spread over as many zones as the eligible nodes allow: their largest zone
// load is the smallest t with sum over zones of min(eligible in zone, t) >=
// the number of chosen nodes.
func checkPlaceSpread(cands []Candidate, minFree uint64, p Placement) error {
	perZone := make(map[string]int)
	for _, c := range cands {
		if c.Free >= minFree {
			perZone[c.Zone]++
		}
	}
	for _, ids := range [][][]string{{p.Targets}, {p.Targets, p.Spares}} {
		loads := placeZoneLoads(cands, ids...)
		count := 0
		for _, n := range loads {
			count += n
		}
		best := 0
		for placeZoneRoom(perZone, best) < count {
			best++
		}
		if got := placeMaxLoad(loads); got != best {
			return fmt.Errorf("%d nodes with largest zone load %d, optimum %d", count, got, best)
		}
	}
	return nil
}

func TestPlaceWeighting(t *testing.T) {
	const runs = 20000
	tests := []struct {
		name  string
		cands []Candidate
		want  map[string]float64 // share of placements per node
	}{
		{
			name: "one node with 3x free",
			cands: []Candidate{
				{ID: "big", Zone: "z", Free: 3 * placeGiB}, {ID: "s1", Zone: "z", Free: placeGiB},
				{ID: "s2", Zone: "z", Free: placeGiB}, {ID: "s3", Zone: "z", Free: placeGiB},
			},
			want: map[string]float64{"big": 3.0 / 6, "s1": 1.0 / 6, "s2": 1.0 / 6, "s3": 1.0 / 6},
		},
		{
			name: "zones weighted by total free",
			cands: []Candidate{
				{ID: "x1", Zone: "x", Free: 3 * placeGiB},
				{ID: "y1", Zone: "y", Free: 2 * placeGiB}, {ID: "y2", Zone: "y", Free: 2 * placeGiB},
			},
			want: map[string]float64{"x1": 3.0 / 7, "y1": 2.0 / 7, "y2": 2.0 / 7},
		},
		{
			name:  "all free zero is uniform",
			cands: append(placeZoneNodes("a", 2, 0), placeZoneNodes("b", 2, 0)...),
			want:  map[string]float64{"a-0": 0.25, "a-1": 0.25, "b-0": 0.25, "b-1": 0.25},
		},
		{
			name: "zero free never preferred",
			cands: []Candidate{
				{ID: "empty", Zone: "z", Free: 0}, {ID: "full", Zone: "z", Free: 1},
				{ID: "emptyzone", Zone: "e", Free: 0},
			},
			want: map[string]float64{"full": 1},
		},
		{
			name: "huge free does not overflow",
			cands: []Candidate{
				{ID: "h1", Zone: "z", Free: math.MaxUint64}, {ID: "h2", Zone: "z", Free: math.MaxUint64},
				{ID: "h3", Zone: "z", Free: math.MaxUint64 / 2},
			},
			want: map[string]float64{"h1": 0.4, "h2": 0.4, "h3": 0.2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := placeRand(2024)
			counts := make(map[string]int)
			for range runs {
				p, err := Place(tt.cands, 1, 0, 0, r)
				if err != nil {
					t.Fatalf("Place: %v", err)
				}
				counts[p.Targets[0]]++
			}
			for _, c := range tt.cands {
				got, want := float64(counts[c.ID])/runs, tt.want[c.ID]
				if math.Abs(got-want) > 0.05*want || (want == 0 && got != 0) {
					t.Errorf("node %s chosen in %.4f of placements, want %.4f ± 5%%", c.ID, got, want)
				}
			}
		})
	}
}

// TestPlaceIndexUnbiased checks that every chosen node is equally likely to
// get each shard index, whatever order the zones were picked in.
func TestPlaceIndexUnbiased(t *testing.T) {
	const runs = 12000
	cands := slices.Concat(placeZoneNodes("a", 2, placeGiB), placeZoneNodes("b", 2, 5*placeGiB), placeZoneNodes("c", 2, 9*placeGiB))
	counts := make(map[string][]int)
	r := placeRand(3)
	for range runs {
		p, err := Place(cands, 4, 2, 0, r)
		if err != nil {
			t.Fatalf("Place: %v", err)
		}
		for i, id := range p.Targets {
			if counts[id] == nil {
				counts[id] = make([]int, len(p.Targets))
			}
			counts[id][i]++
		}
	}
	for id, perIndex := range counts {
		for i, n := range perIndex {
			if want := runs / 6; math.Abs(float64(n-want)) > 0.1*float64(want) {
				t.Errorf("node %s got index %d %d times, want %d ± 10%%", id, i, n, want)
			}
		}
	}
}

func TestPlaceMinFree(t *testing.T) {
	cands := slices.Concat(placeZoneNodes("low", 10, placeGiB-1), placeZoneNodes("edge", 2, placeGiB), placeZoneNodes("high", 3, 2*placeGiB))
	for seed := range uint64(50) {
		p, err := Place(cands, 3, 2, placeGiB, placeRand(seed))
		if err != nil {
			t.Fatalf("Place: %v", err)
		}
		if err := checkPlacement(cands, 3, 2, placeGiB, p); err != nil {
			t.Fatal(err)
		}
		if loads := placeZoneLoads(cands, p.Targets, p.Spares); loads["low"] != 0 || loads["edge"] != 2 || loads["high"] != 3 {
			t.Fatalf("seed %d: nodes per zone %v, want all of edge and high and none of low", seed, loads)
		}
	}
}

func TestPlaceBadArguments(t *testing.T) {
	nodes := placeZoneNodes("a", 70, placeGiB)
	tests := []struct {
		name  string
		cands []Candidate
		k, m  int
		r     *rand.Rand
	}{
		{"k zero", nodes, 0, 2, placeRand(1)},
		{"k negative", nodes, -1, 2, placeRand(1)},
		{"m negative", nodes, 4, -1, placeRand(1)},
		{"k+m over 64", nodes, 60, 5, placeRand(1)},
		{"k+m overflows", nodes, math.MaxInt, 1, placeRand(1)},
		{"duplicate id", append(placeZoneNodes("a", 3, placeGiB), Candidate{ID: "a-1", Zone: "b", Free: 1}), 1, 1, placeRand(1)},
		{"empty id", append(placeZoneNodes("a", 3, placeGiB), Candidate{Zone: "a", Free: placeGiB}), 1, 1, placeRand(1)},
		{"nil rand", nodes, 4, 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Place(tt.cands, tt.k, tt.m, placeGiB, tt.r)
			if err == nil || errors.Is(err, ErrNotEnoughNodes) {
				t.Fatalf("Place = %+v, %v; want an argument error", p, err)
			}
		})
	}
}

func TestPlaceDeterministic(t *testing.T) {
	cands := slices.Concat(placeZoneNodes("a", 5, placeGiB), placeZoneNodes("b", 5, 2*placeGiB), placeZoneNodes("c", 5, 3*placeGiB))
	reversed := slices.Clone(cands)
	slices.Reverse(reversed)
	distinct := make(map[string]bool)
	for seed := range uint64(20) {
		p1, err1 := Place(cands, 6, 3, placeGiB, placeRand(seed))
		p2, err2 := Place(reversed, 6, 3, placeGiB, placeRand(seed))
		if err1 != nil || err2 != nil || !reflect.DeepEqual(p1, p2) {
			t.Fatalf("seed %d: same seed and candidates in another order gave\n%+v, %v\n%+v, %v", seed, p1, err1, p2, err2)
		}
		distinct[fmt.Sprint(p1)] = true
	}
	if len(distinct) < 15 {
		t.Errorf("20 seeds gave only %d distinct placements", len(distinct))
	}
}

// FuzzPlace decodes a candidate list from bytes (3 bytes a node: id, zone,
// free space) and checks that Place never panics and its results hold the
// invariants.
func FuzzPlace(f *testing.F) {
	f.Add([]byte{1, 0, 10, 2, 0, 10, 3, 1, 10, 4, 1, 10, 5, 2, 10, 6, 2, 10}, uint8(4), uint8(2), uint64(1), uint64(1))
	f.Add([]byte{1, 0, 0, 2, 0, 0, 3, 0, 0}, uint8(2), uint8(1), uint64(0), uint64(2))
	f.Add([]byte{1, 0, 255, 2, 1, 255, 3, 1, 128}, uint8(1), uint8(3), uint64(1<<60), uint64(3))
	f.Add([]byte{1, 0, 10, 1, 1, 10}, uint8(1), uint8(0), uint64(0), uint64(4))
	f.Add([]byte{}, uint8(0), uint8(70), uint64(0), uint64(5))
	f.Fuzz(func(t *testing.T, data []byte, k, m uint8, minFree, seed uint64) {
		var cands []Candidate
		ids := make(map[string]bool)
		dup := false
		for i := 0; i+2 < len(data); i += 3 {
			c := Candidate{ID: fmt.Sprintf("n%d", data[i]%64), Zone: fmt.Sprintf("z%d", data[i+1]%8), Free: placeFuzzFree(data[i+2])}
			dup = dup || ids[c.ID]
			ids[c.ID] = true
			cands = append(cands, c)
		}
		ki, mi := int(k%70), int(m%70)
		if dup || ki < 1 || ki+mi > 64 {
			if _, err := Place(cands, ki, mi, minFree, placeRand(seed)); err == nil || errors.Is(err, ErrNotEnoughNodes) {
				t.Fatalf("Place(%d+%d, duplicates %v): error %v, want an argument error", ki, mi, dup, err)
			}
			return
		}
		if err := checkPlaceCall(cands, ki, mi, minFree, seed); err != nil {
			t.Fatalf("%d+%d minFree %d, %+v: %v", ki, mi, minFree, cands, err)
		}
	})
}

// placeFuzzFree spreads a byte over free space from 0 up to near 2^64.
func placeFuzzFree(b byte) uint64 {
	if b == 255 {
		return math.MaxUint64
	}
	return uint64(b&3) << (b >> 2)
}
