package meta

import (
	"fmt"
	"math"

	pb "github.com/clipstore/clipstore/proto/metapb"
)

// defaultClipPageParts is Config.GetClipPageParts when it is 0.
const defaultClipPageParts = 1000

// clipPageParts is the most parts a paged GetClip answer carries.
func (c *Config) clipPageParts() int {
	if c.GetClipPageParts > 0 {
		return c.GetClipPageParts
	}
	return defaultClipPageParts
}

// validatePartSelector refuses a selector whose range is negative or ends
// past the largest offset, or that names a position beside a range.
func validatePartSelector(s *pb.PartSelector) error {
	switch {
	case s == nil:
		return nil
	case s.Offset < 0:
		return fmt.Errorf("%w: part selector: negative offset %d", ErrInvalidArgument, s.Offset)
	case s.Length != nil && *s.Length < 0:
		return fmt.Errorf("%w: part selector: negative length %d", ErrInvalidArgument, *s.Length)
	case s.Length != nil && *s.Length > math.MaxInt64-s.Offset:
		return fmt.Errorf("%w: part selector: offset %d + length %d overflows (the range ends past %d)",
			ErrInvalidArgument, s.Offset, *s.Length, int64(math.MaxInt64))
	case s.Position != 0 && (s.Offset != 0 || s.Length != nil || s.FirstPart != 0 || s.MaxParts != 0):
		return fmt.Errorf("%w: part selector: a position (%d) chooses one part: offset, length, first_part and max_parts must be unset",
			ErrInvalidArgument, s.Position)
	}
	return nil
}

// selectParts narrows resp's record (read from the state: its parts are
// the answer's to change) to the parts sel chooses, at most page of them,
// and fills in the paging fields. The record's other fields stay whole.
func selectParts(resp *pb.GetClipResponse, sel *pb.PartSelector, page int) {
	rec := resp.Clip
	all := rec.Parts
	resp.PartCount = uint32(len(all))
	rec.Parts = nil
	if sel.Position != 0 {
		if i := int(sel.Position) - 1; i < len(all) {
			rec.Parts, resp.FirstPart = all[i:i+1], uint32(i)
		}
		return
	}
	limit := page
	if sel.MaxParts != 0 {
		limit = min(limit, int(sel.MaxParts))
	}
	start, end := uint64(sel.Offset), uint64(math.MaxUint64)
	if sel.Length != nil {
		end = start + uint64(*sel.Length)
	}
	if start >= end {
		return // an empty range
	}
	// A linear scan: the record is decoded whole anyway.
	for i := int(min(sel.FirstPart, uint32(len(all)))); i < len(all); i++ {
		p := all[i]
		if p.Offset >= end {
			break // the parts are in offset order
		}
		if p.Offset+p.Length <= start && (p.Length > 0 || p.Offset < start) {
			continue // ends before the range (a part of no bytes: sits before it)
		}
		if len(rec.Parts) == limit {
			resp.MoreParts = true
			break
		}
		if rec.Parts == nil {
			resp.FirstPart = uint32(i)
		}
		rec.Parts = append(rec.Parts, p)
	}
}
