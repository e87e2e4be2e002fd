package client

import (
	"context"
	"io"
	"slices"

	metapb "github.com/clipstore/clipstore/proto/metapb"
)

// ReaderPartShardNode is the node a Reader reads shard i of part pi from.
// The Reader must have read the part.
func ReaderPartShardNode(r *Reader, pi, i int) string {
	r.v.mu.Lock()
	p := r.v.mu.parts[pi]
	r.v.mu.Unlock()
	if p == nil {
		return ""
	}
	s, _ := p.shard(i)
	return s.NodeId
}

// ReaderParts is the indices of the parts a Reader made views of (read),
// and the pages of parts it keeps, by their first part.
func ReaderParts(r *Reader) (parts, pages []int) {
	r.v.mu.Lock()
	defer r.v.mu.Unlock()
	for pi := range r.v.mu.parts {
		parts = append(parts, pi)
	}
	for _, pg := range r.v.mu.pages {
		pages = append(pages, pg.first)
	}
	slices.Sort(parts)
	return parts, pages
}

// OpenRecord opens a Reader of the record resp holds, as Open does the
// record meta returns, so that tests can read records no client call
// writes (parts of different profiles).
func OpenRecord(ctx context.Context, c *Client, resp *metapb.GetClipResponse) (*Reader, error) {
	v, err := c.viewOf(resp)
	if err != nil {
		return nil, err
	}
	return &Reader{v: v, ctx: ctx}, nil
}

// GetRecord is Get of the record resp holds.
func GetRecord(ctx context.Context, c *Client, resp *metapb.GetClipResponse, w io.Writer) error {
	v, err := c.viewOf(resp)
	if err != nil {
		return err
	}
	return v.get(ctx, w, nil)
}
