package client

import (
	"context"
	"io"

	metapb "github.com/clipstore/clipstore/proto/metapb"
)

// ReaderPartShardNode is the node a Reader reads shard i of part pi from.
func ReaderPartShardNode(r *Reader, pi, i int) string {
	p, err := r.v.part(pi)
	if err != nil {
		return ""
	}
	s, _ := p.shard(i)
	return s.NodeId
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
