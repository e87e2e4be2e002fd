package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/clipstore/clipstore/internal/metacall"
	metapb "github.com/clipstore/clipstore/proto/metapb"
)

// CheckInventory compares the shards meta places on this node with the
// ones the node holds and reports the missing ones (a wiped or replaced
// disk, a lost file) in the next heartbeat; meta marks them missing and has
// them rebuilt. It returns how many were missing. The node does it by itself
// at start and after every garbage collection run.
func (n *Node) CheckInventory(ctx context.Context) (missing int, err error) {
	if n.gc == nil {
		return 0, fmt.Errorf("%w: an inventory check needs a node configured with meta", ErrInvalidArgument)
	}
	return n.gc.inventory(ctx)
}

// inventory pages through meta's list of this node's shards.
func (c *collector) inventory(ctx context.Context) (int, error) {
	missing := 0
	var after []byte
	for {
		page, err := c.listNodeShards(ctx, after)
		if err != nil {
			return missing, err
		}
		var lost []ShardID
		for _, s := range page.Shards {
			id, err := ParseShardID(s.ShardId)
			if err != nil {
				continue
			}
			if _, err := c.n.store.lookup(id); errors.Is(err, ErrNotFound) {
				lost = append(lost, id)
			} else if err != nil {
				return missing, err
			}
		}
		missing += len(lost)
		c.n.hb.reportMissing(lost)
		if len(page.NextStartAfter) == 0 {
			return missing, nil
		}
		after = page.NextStartAfter
	}
}

// listNodeShards asks meta for a page of the shards it places on this node.
func (c *collector) listNodeShards(ctx context.Context, after []byte) (*metapb.ListNodeShardsResponse, error) {
	req := &metapb.ListNodeShardsRequest{NodeId: c.n.cfg.NodeID, StartAfter: after, PageSize: 1000}
	resp, err := metacall.Call(ctx, c.n.meta, func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.ListNodeShardsResponse, error) {
		return mc.ListNodeShards(ctx, req)
	})
	if err != nil {
		return nil, fmt.Errorf("inventory: list this node's shards with meta: %w", err)
	}
	return resp, nil
}
