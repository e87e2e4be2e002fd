package plan

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestGoldenOrders pins version 1: these orders were computed by an
// independent Python port of the algorithm as the package documents it
// (hashlib.sha256, struct.pack(">QQ"), rejection below the largest
// multiple). A change that alters them breaks every plan made before it.
func TestGoldenOrders(t *testing.T) {
	for _, tc := range []struct {
		n           int
		seed, epoch uint64
		want        []int
	}{
		{10, 42, 0, []int{2, 4, 0, 7, 9, 1, 8, 3, 6, 5}},
		{10, 42, 1, []int{8, 0, 1, 5, 6, 7, 3, 2, 4, 9}},
		{7, 2026, 3, []int{6, 5, 2, 0, 1, 4, 3}},
		{1, 1, 1, []int{0}},
		{0, 1, 1, []int{}},
	} {
		if got := Order(tc.n, tc.seed, tc.epoch); !slices.Equal(got, tc.want) {
			t.Errorf("Order(%d, %d, %d) = %v, want %v", tc.n, tc.seed, tc.epoch, got, tc.want)
		}
	}
}

// TestGoldenRanks pins the rank split, with padding and dropping.
func TestGoldenRanks(t *testing.T) {
	order := Order(10, 42, 0) // 2 4 0 7 9 1 8 3 6 5
	for _, tc := range []struct {
		o    Options
		want []Item
	}{
		{Options{World: 3, Rank: 0}, []Item{{0, 2}, {3, 7}, {6, 8}, {9, 5}}},
		{Options{World: 3, Rank: 2}, []Item{{2, 0}, {5, 1}, {8, 6}}},
		{Options{World: 3, Rank: 2, Pad: true}, []Item{{2, 0}, {5, 1}, {8, 6}, {11, 4}}},
		{Options{World: 3, Rank: 0, DropLast: true}, []Item{{0, 2}, {3, 7}, {6, 8}}},
		{Options{World: 3, Rank: 1, From: 4}, []Item{{4, 9}, {7, 3}}},
	} {
		got, err := Rank(order, tc.o)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Rank(%+v) = %v, %v; want %v", tc.o, got, err, tc.want)
		}
	}
}

// TestExactlyOnce: for random dataset sizes, world sizes and resume
// points, every member comes exactly once per epoch over all ranks; a
// job resumed at any checkpoint, at the same or another world size,
// completes the epoch with every member exactly once; counts differ by at
// most one (none with pad or drop_last); epochs differ; the same inputs
// give the same plan.
func TestExactlyOnce(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for trial := range 300 {
		n := r.IntN(200)
		w := 1 + r.IntN(9)
		seed, epoch := r.Uint64(), uint64(r.IntN(5))
		order := Order(n, seed, epoch)
		if !slices.Equal(order, Order(n, seed, epoch)) {
			t.Fatal("the same inputs gave two orders")
		}
		seen := make([]int, n)
		minC, maxC := n+1, -1
		for rank := range w {
			items, err := Rank(order, Options{Seed: seed, Epoch: epoch, World: w, Rank: rank})
			if err != nil {
				t.Fatal(err)
			}
			minC, maxC = min(minC, len(items)), max(maxC, len(items))
			for _, it := range items {
				seen[it.Member]++
			}
		}
		for m, c := range seen {
			if c != 1 {
				t.Fatalf("trial %d (n %d, world %d): member %d came %d times", trial, n, w, m, c)
			}
		}
		if n > 0 && maxC-minC > 1 {
			t.Fatalf("trial %d: counts from %d to %d", trial, minC, maxC)
		}
		// A crash after every rank passed k items: the checkpoint is k*w.
		if n == 0 {
			continue
		}
		k := r.IntN(n/w + 1)
		from := int64(k * w)
		w2 := 1 + r.IntN(9)
		resumed := make([]int, n)
		for p := range from {
			resumed[order[p]]++
		}
		for rank := range w2 {
			items, err := Rank(order, Options{World: w2, Rank: rank, From: from})
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range items {
				if it.Position < from {
					t.Fatalf("trial %d: resumed at %d, planned position %d", trial, from, it.Position)
				}
				resumed[it.Member]++
			}
		}
		for m, c := range resumed {
			if c != 1 {
				t.Fatalf("trial %d (n %d, world %d then %d from %d): member %d came %d times", trial, n, w, w2, from, m, c)
			}
		}
		for _, o := range []Options{{World: w, Pad: true}, {World: w, DropLast: true}} {
			counts := map[int]bool{}
			for rank := range w {
				o.Rank = rank
				items, _ := Rank(order, o)
				counts[len(items)] = true
			}
			if len(counts) != 1 {
				t.Fatalf("trial %d: %+v gives the ranks counts %v", trial, o, counts)
			}
		}
	}
	if slices.Equal(Order(50, 1, 0), Order(50, 1, 1)) {
		t.Fatal("two epochs gave one order")
	}
}

func TestSpreadAndValidate(t *testing.T) {
	order := Order(10, 42, 0)
	sizes := []int64{10, 10, 10, 10, 10, 10, 10, 10, 10, 100}
	b, err := Spread(order, sizes, Options{World: 3})
	if err != nil || b.MinClips != 3 || b.MaxClips != 4 || b.MaxBytes != 120 || b.MinBytes != 30 {
		t.Fatalf("spread: %+v, %v", b, err)
	}
	for _, o := range []Options{{World: 0}, {World: 2, Rank: 2}, {World: 2, Rank: -1}, {World: 2, Pad: true, DropLast: true}, {World: 2, From: -1}} {
		if _, err := Rank(order, o); err == nil {
			t.Errorf("Rank(%+v): no error", o)
		}
	}
}
