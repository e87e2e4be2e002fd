package meta

import (
	"testing"

	"github.com/clipstore/clipstore/internal/plan"
)

// TestPlanCache: shares are found by their whole key, the least recently
// used go first once the items held would pass planCacheItems, and a
// share larger than that is not kept.
func TestPlanCache(t *testing.T) {
	var c planCache
	share := func(n int) *planShare { return &planShare{items: make([]plan.Item, n)} }
	key := func(epoch uint64) planKey {
		return planKey{dataset: "d", members: 10, positions: 10, world: 2, epoch: epoch}
	}
	third := planCacheItems / 3
	c.put(key(1), share(third))
	c.put(key(2), share(third))
	c.put(key(3), share(third))
	if c.get(key(1)) == nil || c.get(key(2)) == nil || c.get(key(3)) == nil {
		t.Fatal("a share put was not found")
	}
	for _, k := range []planKey{
		{dataset: "e", members: 10, positions: 10, world: 2, epoch: 1}, // another dataset
		{dataset: "d", members: 9, positions: 10, world: 2, epoch: 1},  // after a purge
		{dataset: "d", members: 10, positions: 10, world: 2, epoch: 1, rank: 1},
		{dataset: "d", members: 10, positions: 10, world: 2, epoch: 1, created: 7}, // made again
	} {
		if c.get(k) != nil {
			t.Fatalf("%+v found a share put under another key", k)
		}
	}
	c.get(key(1)) // 2 is now the least recently used
	c.put(key(4), share(third))
	if c.get(key(2)) != nil {
		t.Fatal("the least recently used share was kept past the bound")
	}
	for _, e := range []uint64{1, 3, 4} {
		if c.get(key(e)) == nil {
			t.Fatalf("share of epoch %d was dropped", e)
		}
	}
	if c.items > planCacheItems {
		t.Fatalf("%d items held, bound %d", c.items, planCacheItems)
	}
	c.put(key(5), share(planCacheItems+1))
	if c.get(key(5)) != nil || c.get(key(4)) == nil {
		t.Fatal("a share over the bound was kept, or pushed others out")
	}
	c.put(key(4), share(1)) // put again: replaces, counts once
	if c.items != 2*third+1 {
		t.Fatalf("%d items held after replacing a share, want %d", c.items, 2*third+1)
	}
	for e := range uint64(planCacheEntries) {
		c.put(key(100+e), share(1))
	}
	if len(c.entries) != planCacheEntries || c.get(key(1)) != nil || c.get(key(100)) == nil {
		t.Fatalf("%d shares held after %d more small ones, bound %d", len(c.entries), planCacheEntries, planCacheEntries)
	}
}
