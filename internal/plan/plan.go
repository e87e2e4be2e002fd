// Package plan computes epoch plans: the order in which a training job's
// ranks read a dataset's clips in one epoch. A plan is a pure function of
// (algorithm version, dataset size, seed, epoch, world size, rank,
// options): the same inputs give the same plan on any machine, any day,
// whatever the storage layout, and the tests pin version 1 with golden
// vectors.
//
// Version 1. The global order of an epoch is a permutation of the
// dataset's member positions 0..n-1, by Fisher-Yates (from the last
// position down, swapping i with a uniform j in 0..i) driven by a stream
// of 64-bit words: word k is the first 8 bytes (big-endian) of
// SHA-256("clipstore plan v1" || seed || epoch || k), each a uint64
// big-endian; a uniform j in 0..i is drawn by rejection (words at or above
// the largest multiple of i+1 are skipped), so that it is unbiased.
//
// Rank r of w takes the global positions r, r+w, r+2w, ... (interleaved
// slices): counts differ by at most one. With Pad the order is extended,
// from its start again, to a multiple of w, and with DropLast truncated
// to one, so that every rank gets the same count (collective steps never
// hang at an epoch's end). A checkpoint is the global offset every rank
// has passed; resuming from it gives each rank the positions at or past
// it in the same interleaving, also at a different world size, so every
// member comes exactly once.
package plan

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the algorithm this package computes.
const Version = 1

// Options shape a plan.
type Options struct {
	Seed, Epoch uint64
	World, Rank int
	// From is the global offset to resume at (a checkpoint): positions
	// before it are not planned.
	From int64
	// Pad or DropLast (not both) give every rank the same count.
	Pad, DropLast bool
}

// Validate reports what is wrong with o for a dataset of n members.
func (o Options) Validate(n int) error {
	switch {
	case n < 0:
		return errors.New("plan: negative dataset size")
	case o.World < 1:
		return fmt.Errorf("plan: world size %d: want at least 1", o.World)
	case o.Rank < 0 || o.Rank >= o.World:
		return fmt.Errorf("plan: rank %d outside 0..%d", o.Rank, o.World-1)
	case o.Pad && o.DropLast:
		return errors.New("plan: pad and drop_last: give one")
	case o.From < 0:
		return fmt.Errorf("plan: from %d is negative", o.From)
	}
	return nil
}

// stream is the algorithm's word stream.
type stream struct {
	prefix []byte
	k      uint64
}

func newStream(seed, epoch uint64) *stream {
	p := append([]byte("clipstore plan v1"), make([]byte, 16)...)
	binary.BigEndian.PutUint64(p[len(p)-16:], seed)
	binary.BigEndian.PutUint64(p[len(p)-8:], epoch)
	return &stream{prefix: p}
}

func (s *stream) next() uint64 {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], s.k)
	s.k++
	sum := sha256.Sum256(append(s.prefix, buf[:]...))
	return binary.BigEndian.Uint64(sum[:8])
}

// below returns a uniform integer in 0..n-1 (n >= 1), by rejection.
func (s *stream) below(n uint64) uint64 {
	rem := -n % n             // 2^64 mod n
	limit := ^uint64(0) - rem // 0..limit holds a multiple of n values
	for {
		if v := s.next(); v <= limit {
			return v % n
		}
	}
}

// Order is the global order of an epoch over n members: a permutation of
// 0..n-1.
func Order(n int, seed, epoch uint64) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	s := newStream(seed, epoch)
	for i := n - 1; i > 0; i-- {
		j := int(s.below(uint64(i + 1)))
		order[i], order[j] = order[j], order[i]
	}
	return order
}

// Length is how many global positions the epoch has with o's options: n,
// or n rounded up (Pad) or down (DropLast) to a multiple of the world.
func Length(n int, o Options) int64 {
	total, w := int64(n), int64(o.World)
	switch {
	case o.Pad && total%w != 0:
		total += w - total%w
	case o.DropLast:
		total -= total % w
	}
	if n == 0 {
		return 0
	}
	return total
}

// Item is one clip of a rank's plan: its global position in the epoch
// and the dataset member's position.
type Item struct {
	Position int64 // in the epoch's global order (a checkpoint counts these)
	Member   int   // the member's position in the dataset
}

// Rank returns rank o.Rank's share of the epoch from o.From on, given the
// epoch's global order (Order).
func Rank(order []int, o Options) ([]Item, error) {
	if err := o.Validate(len(order)); err != nil {
		return nil, err
	}
	total := Length(len(order), o)
	w := int64(o.World)
	first := o.From + (int64(o.Rank)-o.From%w+w)%w // the rank's first position at or past From
	var out []Item
	for p := first; p < total; p += w {
		out = append(out, Item{Position: p, Member: order[p%int64(len(order))]})
	}
	return out, nil
}

// Balance is a plan's spread over its ranks: the fewest and most clips a
// rank gets, and the fewest and most bytes, given the members' sizes.
type Balance struct {
	MinClips, MaxClips int
	MinBytes, MaxBytes int64
}

// Spread computes the Balance of an epoch over every rank.
func Spread(order []int, sizes []int64, o Options) (Balance, error) {
	var b Balance
	for r := range o.World {
		or := o
		or.Rank = r
		items, err := Rank(order, or)
		if err != nil {
			return b, err
		}
		var bytes int64
		for _, it := range items {
			bytes += sizes[it.Member]
		}
		if r == 0 || len(items) < b.MinClips {
			b.MinClips = len(items)
		}
		if r == 0 || bytes < b.MinBytes {
			b.MinBytes = bytes
		}
		b.MaxClips, b.MaxBytes = max(b.MaxClips, len(items)), max(b.MaxBytes, bytes)
	}
	return b, nil
}
