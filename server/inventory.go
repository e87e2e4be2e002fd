package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/clipstore/clipstore/internal/metacall"
	metapb "github.com/clipstore/clipstore/proto/metapb"
)

// CheckInventory checks what the node holds, on its disks and against
// meta: first the files (AuditFiles: a shard whose file is gone, or whose
// size changed, behind the node's back), then meta's list of the shards it
// places on this node against the node's index (a wiped or replaced disk).
// What is missing or damaged goes to meta in the next heartbeat; meta marks
// it and has it rebuilt. It returns how many shards were missing, found
// either way. The node does it by itself at start and after every garbage
// collection run.
func (n *Node) CheckInventory(ctx context.Context) (missing int, err error) {
	if n.gc == nil {
		return 0, fmt.Errorf("%w: an inventory check needs a node configured with meta", ErrInvalidArgument)
	}
	return n.gc.inventory(ctx)
}

// inventory audits the files, then pages through meta's list of this
// node's shards.
func (c *collector) inventory(ctx context.Context) (int, error) {
	audit, err := c.n.store.AuditFiles(ctx)
	c.n.shardsLost(audit.Lost, lostByInventory)
	c.n.shardsCorrupt(audit.Corrupt, lostByInventory)
	if err != nil {
		return len(audit.Lost), fmt.Errorf("inventory: audit files: %w", err)
	}
	if len(audit.Corrupt) > 0 {
		c.log.Warn("shard files changed size behind the node's back; reported corrupt", "shards", len(audit.Corrupt))
	}
	missing := len(audit.Lost)
	found := make(map[ShardID]bool, len(audit.Lost))
	for _, id := range audit.Lost {
		found[id] = true
	}
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
			_, err = c.n.store.lookup(id)
			switch {
			case errors.Is(err, ErrNotFound):
				if !found[id] {
					lost = append(lost, id)
				}
			case err != nil:
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
