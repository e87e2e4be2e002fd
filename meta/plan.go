package meta

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/clipstore/clipstore/internal/plan"
	pb "github.com/clipstore/clipstore/proto/metapb"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// Epoch plans are served here, so that every client (Go, Python through
// the gateway) shares one implementation (internal/plan): the order is
// over the dataset's member positions at creation, and a position a purge
// emptied is skipped.

// planPage is a Plan answer's default and largest page.
const (
	planPage    = 10_000
	maxPlanPage = 100_000
)

// planKey names one computed share: a rank's part of an epoch of one
// state of a dataset. A dataset changes after it is sealed only by purges,
// which lower its member count, and a dataset made again under the same
// name has another creation time.
type planKey struct {
	dataset            string
	created            int64
	members, positions uint64
	seed, epoch        uint64
	world, rank        uint32
	from               int64
	pad, dropLast      bool
}

// planShare is a computed share: the rank's items whose member is
// present, and the answer's totals.
type planShare struct {
	items  []plan.Item
	totals *pb.PlanResponse // Version, Bucket, EpochLength, spread, RankItems
}

// planCache keeps the shares computed last, so that the pages of one plan
// cost a lookup and a read of the page's members each instead of the
// epoch's order over the whole dataset (a quarter of a second of SHA-256
// for two million members, plus reading every member). It holds at most
// planCacheEntries shares and planCacheItems items in all, least recently
// used out first.
type planCache struct {
	mu      sync.Mutex
	entries []planCacheEntry // least recently used first
	items   int
}

type planCacheEntry struct {
	key   planKey
	share *planShare
}

const (
	planCacheEntries = 64        // a lookup is a scan of them
	planCacheItems   = 4_000_000 // about 100 MiB
)

func (c *planCache) get(k planKey) *planShare {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range c.entries {
		if e.key == k {
			c.entries = append(append(c.entries[:i:i], c.entries[i+1:]...), e)
			return e.share
		}
	}
	return nil
}

func (c *planCache) put(k planKey, s *planShare) {
	if len(s.items) > planCacheItems {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range c.entries {
		if e.key == k { // computed twice at once
			c.items -= len(e.share.items)
			c.entries = append(c.entries[:i:i], c.entries[i+1:]...)
			break
		}
	}
	for len(c.entries) > 0 && (c.items+len(s.items) > planCacheItems || len(c.entries) >= planCacheEntries) {
		c.items -= len(c.entries[0].share.items)
		c.entries = c.entries[1:]
	}
	c.entries = append(c.entries, planCacheEntry{k, s})
	c.items += len(s.items)
}

func (n *Node) plan(_ context.Context, req *pb.PlanRequest) (*pb.PlanResponse, error) {
	if req.Version != 0 && req.Version != plan.Version {
		return nil, fmt.Errorf("%w: plan algorithm version %d; this member computes version %d", ErrInvalidArgument, req.Version, plan.Version)
	}
	var resp *pb.PlanResponse
	err := n.fsm.viewApplied(func(tx *bolt.Tx) error {
		ds := &pb.Dataset{}
		found, err := getMsg(tx.Bucket(bktDatasets), []byte(req.Dataset), ds)
		if err != nil {
			return err
		}
		if !found || ds.Building {
			return fmt.Errorf("%w: dataset %q", ErrNotFound, req.Dataset)
		}
		positions := ds.Positions
		if positions == 0 {
			positions = ds.Members
		}
		key := planKey{dataset: ds.Name, created: ds.CreatedUnixNano, members: ds.Members, positions: positions,
			seed: req.Seed, epoch: req.Epoch, world: req.World, rank: req.Rank, from: req.From, pad: req.Pad, dropLast: req.DropLast}
		share := n.plans.get(key)
		if share == nil {
			if share, err = computeShare(tx, ds, positions, req); err != nil {
				return err
			}
			n.plans.put(key, share)
		}
		resp = proto.CloneOf(share.totals)
		size := int(req.PageSize)
		if size == 0 {
			size = planPage
		}
		size = min(size, maxPlanPage)
		start := min(req.PageStart, uint64(len(share.items)))
		end := min(start+uint64(size), uint64(len(share.items)))
		members := tx.Bucket(bktDatasetMembers)
		for _, it := range share.items[start:end] {
			m := &pb.DatasetMember{}
			if found, err := getMsg(members, memberKey(req.Dataset, uint64(it.Member)), m); err != nil {
				return err
			} else if !found {
				return fmt.Errorf("%w: dataset %q has no member at position %d, which its plan holds", ErrStateCorrupt, req.Dataset, it.Member)
			}
			resp.Items = append(resp.Items, &pb.PlanItem{Position: it.Position, Key: m.Key, Generation: m.Generation, Size: m.Size,
				Member: uint64(it.Member)})
		}
		if end < uint64(len(share.items)) {
			resp.More, resp.Next = true, end
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// computeShare computes rank req.Rank's share of the epoch over the
// dataset's members as tx holds them.
func computeShare(tx *bolt.Tx, ds *pb.Dataset, positions uint64, req *pb.PlanRequest) (*planShare, error) {
	sizes := make([]int64, positions)
	present := make([]bool, positions)
	err := eachMember(tx, ds.Name, 0, func(pos uint64, _ []byte, m *pb.DatasetMember) error {
		if pos >= positions {
			return fmt.Errorf("%w: dataset %q has a member at position %d of %d", ErrStateCorrupt, ds.Name, pos, positions)
		}
		sizes[pos], present[pos] = int64(m.Size), true
		return nil
	})
	if err != nil {
		return nil, err
	}
	n := int(positions)
	o := plan.Options{Seed: req.Seed, Epoch: req.Epoch, World: int(req.World), Rank: int(req.Rank), From: req.From,
		Pad: req.Pad, DropLast: req.DropLast}
	if err := o.Validate(n); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	order := plan.Order(n, req.Seed, req.Epoch)
	items, err := plan.Rank(order, o)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	spread, err := plan.Spread(order, sizes, o)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	share := &planShare{totals: &pb.PlanResponse{Version: plan.Version, Bucket: ds.Bucket, EpochLength: plan.Length(n, o),
		MinItems: uint64(spread.MinClips), MaxItems: uint64(spread.MaxClips), MinBytes: uint64(spread.MinBytes), MaxBytes: uint64(spread.MaxBytes)}}
	for _, it := range items {
		if present[it.Member] {
			share.items = append(share.items, it)
		}
	}
	share.items = slices.Clip(share.items)
	share.totals.RankItems = uint64(len(share.items))
	return share, nil
}
