package client

import (
	"errors"
	"slices"
	"testing"

	metapb "github.com/clipstore/clipstore/proto/metapb"
)

// record returns a record whose parts have the given lengths, tiling it.
func record(lengths ...uint64) *metapb.ClipRecord {
	rec := &metapb.ClipRecord{Bucket: "b", Key: "k"}
	for _, n := range lengths {
		rec.Parts = append(rec.Parts, &metapb.Part{Offset: rec.Size, Length: n})
		rec.Size += n
	}
	return rec
}

func TestPartRanges(t *testing.T) {
	for _, tc := range []struct {
		name    string
		lengths []uint64
		off, n  int64
		want    []partRange
	}{
		{"one part, all", []uint64{100}, 0, 100, []partRange{{0, 0, 100}}},
		{"one part, inside", []uint64{100}, 10, 5, []partRange{{0, 10, 5}}},
		{"empty range", []uint64{100, 50}, 100, 0, nil},
		{"inside a later part", []uint64{100, 50, 7}, 120, 20, []partRange{{1, 20, 20}}},
		{"a part exactly", []uint64{100, 50, 7}, 100, 50, []partRange{{1, 0, 50}}},
		{"last byte of a part", []uint64{100, 50, 7}, 149, 1, []partRange{{1, 49, 1}}},
		{"first byte of a part", []uint64{100, 50, 7}, 150, 1, []partRange{{2, 0, 1}}},
		{"across one boundary", []uint64{100, 50, 7}, 99, 2, []partRange{{0, 99, 1}, {1, 0, 1}}},
		{"across a small part", []uint64{100, 3, 7}, 98, 8, []partRange{{0, 98, 2}, {1, 0, 3}, {2, 0, 3}}},
		{"all parts", []uint64{100, 50, 7}, 0, 157, []partRange{{0, 0, 100}, {1, 0, 50}, {2, 0, 7}}},
		{"empty parts skipped", []uint64{0, 10, 0, 0, 5, 0}, 0, 15, []partRange{{1, 0, 10}, {4, 0, 5}}},
		{"starting at an empty part's offset", []uint64{10, 0, 5}, 10, 2, []partRange{{2, 0, 2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := record(tc.lengths...)
			if err := checkParts(rec, partPage{0, rec.Parts}, len(rec.Parts)); err != nil {
				t.Fatal(err)
			}
			if got := slices.Collect(partRanges(rec.Parts, tc.off, tc.n)); !slices.Equal(got, tc.want) {
				t.Fatalf("partRanges(%d, %d) = %v, want %v", tc.off, tc.n, got, tc.want)
			}
		})
	}
}

// TestPartAt checks the binary search against a linear scan at every
// offset of a clip of unequal parts, some empty.
func TestPartAt(t *testing.T) {
	rec := record(5, 1, 0, 17, 0, 0, 3, 64, 1)
	for off := range int64(rec.Size) {
		want := slices.IndexFunc(rec.Parts, func(p *metapb.Part) bool { return int64(p.Offset+p.Length) > off })
		if got := partAt(rec.Parts, off); got != want {
			t.Fatalf("partAt(%d) = %d, want %d", off, got, want)
		}
	}
}

func TestCheckParts(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*metapb.ClipRecord)
		ok   bool
	}{
		{"tiled", func(*metapb.ClipRecord) {}, true},
		{"no parts", func(r *metapb.ClipRecord) { r.Parts = nil; r.Size = 0 }, false},
		{"gap", func(r *metapb.ClipRecord) { r.Parts[1].Offset++ }, false},
		{"overlap", func(r *metapb.ClipRecord) { r.Parts[2].Offset-- }, false},
		{"out of order", func(r *metapb.ClipRecord) { r.Parts[0], r.Parts[1] = r.Parts[1], r.Parts[0] }, false},
		{"size too large", func(r *metapb.ClipRecord) { r.Size++ }, false},
		{"size too small", func(r *metapb.ClipRecord) { r.Size-- }, false},
		{"lengths overflow", func(r *metapb.ClipRecord) { r.Parts[1].Length = 1 << 63 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := record(10, 20, 5)
			tc.edit(rec)
			err := checkParts(rec, partPage{0, rec.Parts}, len(rec.Parts))
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrUnrecoverable)) {
				t.Fatalf("checkParts: %v", err)
			}
		})
	}
}

// TestCheckPage checks pages of a record's parts: a run in the middle, at
// either end, or empty, and runs that cannot be.
func TestCheckPage(t *testing.T) {
	rec := record(10, 20, 0, 5, 7)
	for _, tc := range []struct {
		name  string
		first int
		parts []*metapb.Part
		count int
		ok    bool
	}{
		{"middle", 1, rec.Parts[1:4], 5, true},
		{"first", 0, rec.Parts[:2], 5, true},
		{"last", 3, rec.Parts[3:], 5, true},
		{"empty part alone", 2, rec.Parts[2:3], 5, true},
		{"none", 5, nil, 5, true},
		{"no parts in the record", 0, nil, 0, false},
		{"not the first at 0", 0, rec.Parts[1:3], 5, false},
		{"not the last at the size", 2, rec.Parts[2:4], 4, false},
		{"past the count", 3, rec.Parts[3:], 4, false},
		{"gap", 0, []*metapb.Part{rec.Parts[0], rec.Parts[2]}, 5, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkParts(rec, partPage{tc.first, tc.parts}, tc.count)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrUnrecoverable)) {
				t.Fatalf("checkParts: %v", err)
			}
		})
	}
}
