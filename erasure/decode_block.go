package erasure

import (
	"fmt"
	"slices"
)

// unitSource yields unit b of shard i, or nil when that shard is missing or
// failed (the source reports I/O failures itself).
type unitSource interface {
	unit(b int64, i int) []byte
}

// Per-index state of a block decode.
const (
	untried  uint8 = iota
	fetched        // read, not yet verified
	healthy        // verified
	unusable       // missing, failed, corrupt or outvoted
)

// group is a set of verified units whose trailers carry the same CRC list.
// All units of a correctly written block fall in one group; a second group
// means a shard from some other write was presented.
type group struct {
	rep   int // index whose CRC list stands for the group
	votes int
}

// decoder decodes blocks of one clip, one at a time, reusing its buffers.
type decoder struct {
	l       Layout
	src     unitSource
	rep     *Report
	exclude int // index never read (the one Rebuild regenerates), or -1

	state   []uint8
	units   [][]byte // fetched units
	lists   []uint32 // CRC list parsed from unit i's trailer at [i*n, (i+1)*n)
	groupOf []int
	groups  []group
	shards  [][]byte // pieces handed to reedsolomon; the decoded pieces
	scratch [][]byte // reconstruction targets, allocated on first need
	need    []bool   // pieces to rebuild
	slots   [][]byte // where to rebuild piece i instead of scratch, if set
	crcs    []uint32 // the block's CRC list (the winning group's)
}

func newDecoder(l Layout, src unitSource, rep *Report) *decoder {
	n := l.c.Shards()
	return &decoder{
		l: l, src: src, rep: rep, exclude: -1,
		state:   make([]uint8, n),
		units:   make([][]byte, n),
		lists:   make([]uint32, n*n),
		groupOf: make([]int, n),
		shards:  make([][]byte, n),
		scratch: make([][]byte, n),
		need:    make([]bool, n),
		slots:   make([][]byte, n),
	}
}

// block decodes block b far enough that d.shards[i] holds verified piece i
// for every i in need (a bit mask of indices), and reports whether any of
// them had to be rebuilt. It reads the needed units first; only if one of
// them is missing or corrupt does it read others, in index order (data
// before parity), until k can rebuild it.
func (d *decoder) block(b int64, need uint64) (rebuilt bool, err error) {
	d.reset()
	all := true
	for i := range d.state {
		if need&(1<<i) != 0 {
			d.fetch(b, i)
			all = all && d.state[i] == fetched
		}
	}
	if all {
		d.verifyFetched(b)
		if g, ok := d.agreed(); ok && d.holds(g, need) {
			d.crcs = d.list(d.groups[g].rep)
			d.usePieces(b)
			return false, nil
		}
	}
	return true, d.repair(b, need)
}

// repair reconstructs the needed pieces that are not healthy. It rebuilds
// first and verifies its inputs after: reedsolomon streams them into cache
// much faster than a CRC pass does, which then runs on cached data. The
// result is used only if every input verified and agreed.
func (d *decoder) repair(b int64, need uint64) error {
	for {
		if !d.gather(b) {
			d.verifyFetched(b) // for the report
			return d.unrecoverable(b)
		}
		d.setInputs(b, need)
		missing := slices.Contains(d.need, true)
		if missing {
			if err := d.l.c.rs.ReconstructSome(d.shards, d.need); err != nil {
				return fmt.Errorf("%w: block %d: %v", ErrUnrecoverable, b, err)
			}
		}
		if !d.verifyInputs(b) {
			continue // an input failed: gather another
		}
		g, ok := d.agreed()
		if !ok {
			if !d.outvote(b) {
				return d.unrecoverable(b)
			}
			continue
		}
		d.crcs = d.list(d.groups[g].rep)
		if missing {
			d.rep.Degraded++
		}
		return d.checkRebuilt(b)
	}
}

func (d *decoder) reset() {
	clear(d.state)
	clear(d.units)
	clear(d.shards)
	clear(d.need)
	d.groups = d.groups[:0]
	d.crcs = nil
}

func (d *decoder) list(i int) []uint32 {
	n := len(d.state)
	return d.lists[i*n : (i+1)*n]
}

// fetch gets unit b of shard i from the source, checking only its length.
func (d *decoder) fetch(b int64, i int) {
	d.state[i] = unusable
	if i == d.exclude {
		return
	}
	u := d.src.unit(b, i)
	switch {
	case u == nil:
	case len(u) != d.l.UnitLen(b):
		d.rep.fault(i, b, errUnitLen)
	default:
		d.state[i] = fetched
		d.units[i] = u
	}
}

// verifyFetched verifies every fetched unit.
func (d *decoder) verifyFetched(b int64) {
	for i, s := range d.state {
		if s == fetched {
			d.verify(b, i)
		}
	}
}

// verify checks fetched unit i: it becomes healthy and joins the group of
// its CRC list, or unusable.
func (d *decoder) verify(b int64, i int) {
	list := d.list(i)
	if !VerifyUnit(d.units[i], i, b, list) {
		d.state[i] = unusable
		d.units[i] = nil
		d.rep.fault(i, b, errChecksum)
		return
	}
	d.state[i] = healthy
	for g := range d.groups {
		if slices.Equal(list, d.list(d.groups[g].rep)) {
			d.groups[g].votes++
			d.groupOf[i] = g
			return
		}
	}
	d.groupOf[i] = len(d.groups)
	d.groups = append(d.groups, group{rep: i, votes: 1})
}

// agreed reports whether every healthy unit is in one group, and which.
func (d *decoder) agreed() (g int, ok bool) {
	g = -1
	for i, s := range d.state {
		if s != healthy {
			continue
		}
		if g >= 0 && d.groupOf[i] != g {
			return -1, false
		}
		g = d.groupOf[i]
	}
	return g, g >= 0
}

// holds reports whether group g has every piece in need.
func (d *decoder) holds(g int, need uint64) bool {
	for i, s := range d.state {
		if need&(1<<i) != 0 && (s != healthy || d.groupOf[i] != g) {
			return false
		}
	}
	return true
}

// usePieces points d.shards at the healthy units' pieces.
func (d *decoder) usePieces(b int64) {
	p := d.l.PieceLen(b)
	for i, s := range d.state {
		if s == healthy {
			d.shards[i] = d.units[i][:p:p]
		}
	}
}

// gather fetches untried units in index order until k are healthy or
// fetched, and reports whether it got there.
func (d *decoder) gather(b int64) bool {
	have := 0
	for _, s := range d.state {
		if s == healthy || s == fetched {
			have++
		}
	}
	for i := 0; have < d.l.c.k && i < len(d.state); i++ {
		if d.state[i] == untried {
			if d.fetch(b, i); d.state[i] == fetched {
				have++
			}
		}
	}
	return have >= d.l.c.k
}

// setInputs hands the first k healthy or fetched pieces to reedsolomon and
// marks the needed pieces that are not among them for rebuilding.
func (d *decoder) setInputs(b int64, need uint64) {
	p := d.l.PieceLen(b)
	inputs := 0
	clear(d.shards)
	for i, s := range d.state {
		if (s == healthy || s == fetched) && inputs < d.l.c.k {
			d.shards[i] = d.units[i][:p:p]
			inputs++
		}
	}
	for i := range d.state {
		d.need[i] = need&(1<<i) != 0 && d.shards[i] == nil
		if d.need[i] {
			d.shards[i] = d.target(i)
		}
	}
}

// verifyInputs verifies the fetched units among the inputs and reports
// whether all of them are healthy.
func (d *decoder) verifyInputs(b int64) bool {
	ok := true
	for i, s := range d.state {
		if s == fetched && d.shards[i] != nil && !d.need[i] {
			d.verify(b, i)
			ok = ok && d.state[i] == healthy
		}
	}
	return ok
}

// outvote settles a conflict between groups: it reads and verifies every
// remaining unit, keeps the group with the most votes and marks the others
// corrupt. It fails on a tie.
func (d *decoder) outvote(b int64) bool {
	for i, s := range d.state {
		if s == untried {
			d.fetch(b, i)
		}
	}
	d.verifyFetched(b)
	best, second := -1, 0
	for g := range d.groups {
		switch v := d.groups[g].votes; {
		case best < 0 || v > d.groups[best].votes:
			second = max(second, d.votes(best))
			best = g
		default:
			second = max(second, v)
		}
	}
	if d.votes(best) <= second {
		return false
	}
	for i, s := range d.state {
		if s == healthy && d.groupOf[i] != best {
			d.state[i] = unusable
			d.units[i] = nil
			d.rep.fault(i, b, errConflict)
		}
	}
	return true
}

func (d *decoder) votes(g int) int {
	if g < 0 {
		return 0
	}
	return d.groups[g].votes
}

// checkRebuilt checks every rebuilt piece against the block's CRC list.
func (d *decoder) checkRebuilt(b int64) error {
	for i, rebuilt := range d.need {
		if rebuilt && PieceCRC(i, b, d.shards[i]) != d.crcs[i] {
			return fmt.Errorf("%w: block %d: rebuilt piece %d fails its checksum", ErrUnrecoverable, b, i)
		}
	}
	return nil
}

func (d *decoder) unrecoverable(b int64) error {
	good := 0
	for _, s := range d.state {
		if s == healthy {
			good++
		}
	}
	if _, ok := d.agreed(); !ok && good > 0 {
		return fmt.Errorf("%w: block %d: pieces with conflicting checksums", ErrUnrecoverable, b)
	}
	return fmt.Errorf("%w: block %d: %d healthy pieces, need %d", ErrUnrecoverable, b, good, d.l.c.k)
}

// target returns an empty buffer to rebuild piece i into: its slot, or
// scratch with room for a unit (Rebuild appends the trailer).
func (d *decoder) target(i int) []byte {
	if d.slots[i] != nil {
		return d.slots[i][:0]
	}
	if d.scratch[i] == nil {
		d.scratch[i] = make([]byte, d.l.UnitLen(0))
	}
	return d.scratch[i][:0]
}
