package meta

import (
	"bytes"
	"context"
	"fmt"

	"github.com/clipstore/clipstore/internal/plan"
	pb "github.com/clipstore/clipstore/proto/metapb"
	bolt "go.etcd.io/bbolt"
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

func (n *Node) plan(_ context.Context, req *pb.PlanRequest) (*pb.PlanResponse, error) {
	if req.Version != 0 && req.Version != plan.Version {
		return nil, fmt.Errorf("%w: plan algorithm version %d; this member computes version %d", ErrInvalidArgument, req.Version, plan.Version)
	}
	ds := &pb.Dataset{}
	var members []*pb.DatasetMember // by position; nil where purged
	err := n.fsm.viewApplied(func(tx *bolt.Tx) error {
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
		members = make([]*pb.DatasetMember, positions)
		prefix := append([]byte(req.Dataset), 0)
		cur := tx.Bucket(bktDatasetMembers).Cursor()
		for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
			pos := u64(k[len(prefix):])
			if pos >= uint64(len(members)) {
				return fmt.Errorf("%w: dataset %q has a member at position %d of %d", ErrStateCorrupt, req.Dataset, pos, len(members))
			}
			m := &pb.DatasetMember{}
			if err := decodeMsg(k, v, m); err != nil {
				return err
			}
			members[pos] = m
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	o := plan.Options{Seed: req.Seed, Epoch: req.Epoch, World: int(req.World), Rank: int(req.Rank), From: req.From,
		Pad: req.Pad, DropLast: req.DropLast}
	if err := o.Validate(len(members)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	order := plan.Order(len(members), req.Seed, req.Epoch)
	items, err := plan.Rank(order, o)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	sizes := make([]int64, len(members))
	for i, m := range members {
		if m != nil {
			sizes[i] = int64(m.Size)
		}
	}
	spread, err := plan.Spread(order, sizes, o)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	resp := &pb.PlanResponse{Version: plan.Version, Bucket: ds.Bucket, EpochLength: plan.Length(len(members), o),
		MinItems: uint64(spread.MinClips), MaxItems: uint64(spread.MaxClips), MinBytes: uint64(spread.MinBytes), MaxBytes: uint64(spread.MaxBytes)}
	var share []plan.Item
	for _, it := range items {
		if members[it.Member] != nil {
			share = append(share, it)
		}
	}
	resp.RankItems = uint64(len(share))
	size := int(req.PageSize)
	if size == 0 {
		size = planPage
	}
	size = min(size, maxPlanPage)
	start := min(req.PageStart, uint64(len(share)))
	end := min(start+uint64(size), uint64(len(share)))
	for _, it := range share[start:end] {
		m := members[it.Member]
		resp.Items = append(resp.Items, &pb.PlanItem{Position: it.Position, Key: m.Key, Generation: m.Generation, Size: m.Size,
			Member: uint64(it.Member)})
	}
	if end < uint64(len(share)) {
		resp.More, resp.Next = true, end
	}
	return resp, nil
}
