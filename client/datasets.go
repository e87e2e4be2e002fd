package client

import (
	"context"
	"encoding/hex"
	"fmt"
	"iter"
	"time"

	"github.com/clipstore/clipstore/internal/plan"
	"github.com/clipstore/clipstore/proto/metapb"
	"golang.org/x/sync/errgroup"
)

// A Dataset is an immutable, named list of a bucket's clips, each at the
// generation it had when the dataset was made. It pins them: overwriting
// or deleting a key keeps the generations datasets hold (readable with
// GetOptions.Generation or OpenAt) until the last dataset holding them is
// deleted.
type Dataset struct {
	Name, Bucket string
	Created      time.Time
	CreatedBy    string
	Members      int64
	Bytes        int64
	Description  string
}

// DatasetMember is one clip of a dataset.
type DatasetMember struct {
	Key        string
	ClipID     string // hex
	Generation uint64
	Size       int64
}

// DatasetSpec is what CreateDataset makes: the bucket's current clips that
// Query matches (capture attributes, as Find), or the Keys listed.
type DatasetSpec struct {
	Name, Bucket string
	Query        *FindQuery
	Keys         []string
	Description  string
}

func datasetFromProto(d *metapb.Dataset) Dataset {
	return Dataset{Name: d.GetName(), Bucket: d.GetBucket(), Created: unixNano(d.GetCreatedUnixNano()), CreatedBy: d.GetCreatedBy(),
		Members: int64(d.GetMembers()), Bytes: int64(d.GetBytes()), Description: d.GetDescription()}
}

// CreateDataset resolves spec to clips at their current generations and
// makes the dataset in one Raft entry; a member that changed meanwhile
// makes it fail (ErrPrecondition) and nothing is pinned: make it again.
func (c *Client) CreateDataset(ctx context.Context, spec DatasetSpec) (Dataset, error) {
	if (spec.Query == nil) == (spec.Keys == nil) {
		return Dataset{}, fmt.Errorf("%w: a dataset is made from a query or from a list of keys, one of them", ErrInvalidArgument)
	}
	req := &metapb.CreateDatasetRequest{RequestId: newRequestID(), Name: spec.Name, Bucket: spec.Bucket, Description: spec.Description}
	if spec.Query != nil {
		for e, err := range c.Find(ctx, spec.Bucket, *spec.Query) {
			if err != nil {
				return Dataset{}, err
			}
			id, err := hex.DecodeString(e.ClipID)
			if err != nil {
				return Dataset{}, fmt.Errorf("%w: clip id %q of %s", ErrUnrecoverable, e.ClipID, e.Key)
			}
			req.Members = append(req.Members, &metapb.DatasetMember{Key: e.Key, ClipId: id, Generation: e.Generation, Size: uint64(e.Size)})
		}
	}
	if spec.Keys != nil {
		// One record read per key, 16 at once, each into its own slot:
		// the list's order is the dataset's.
		members := make([]*metapb.DatasetMember, len(spec.Keys))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(16)
		for i, key := range spec.Keys {
			g.Go(func() error {
				resp, err := c.getClip(gctx, spec.Bucket, key, &metapb.PartSelector{MaxParts: 1})
				if err != nil {
					return err
				}
				members[i] = &metapb.DatasetMember{Key: key, ClipId: resp.Clip.ClipId, Generation: resp.Clip.Generation, Size: resp.Clip.Size}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return Dataset{}, err
		}
		req.Members = members
	}
	all := req.Members
	if len(all) > datasetBatch {
		// A series: the first batch staged, the others appended, the
		// last sealing it; a failure deletes what was made.
		req.Members, req.Staged = all[:datasetBatch], true
	}
	resp, err := callMeta(ctx, c, "create dataset "+spec.Name, func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.CreateDatasetResponse, error) {
		return mc.CreateDataset(ctx, req)
	})
	if err != nil {
		return Dataset{}, err
	}
	for start := len(req.Members); req.Staged && start < len(all); {
		end := min(start+datasetBatch, len(all))
		ext := &metapb.ExtendDatasetRequest{RequestId: newRequestID(), Name: spec.Name, Start: uint64(start), Members: all[start:end],
			Seal: end == len(all)}
		resp, err = callMeta(ctx, c, "extend dataset "+spec.Name, func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.CreateDatasetResponse, error) {
			return mc.ExtendDataset(ctx, ext)
		})
		if err != nil {
			c.DeleteDataset(context.WithoutCancel(ctx), spec.Name)
			return Dataset{}, err
		}
		start = end
	}
	return datasetFromProto(resp.Dataset), nil
}

// datasetBatch is how many members one Raft entry of a dataset carries.
var datasetBatch = 50_000

// ListDatasets lists the datasets (of the buckets the caller's key has a
// grant on).
func (c *Client) ListDatasets(ctx context.Context) ([]Dataset, error) {
	resp, err := callMeta(ctx, c, "list datasets", func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.ListDatasetsResponse, error) {
		return mc.ListDatasets(ctx, &metapb.ListDatasetsRequest{})
	})
	if err != nil {
		return nil, err
	}
	out := make([]Dataset, 0, len(resp.Datasets))
	for _, d := range resp.Datasets {
		out = append(out, datasetFromProto(d))
	}
	return out, nil
}

// DatasetInfo returns a dataset's description.
func (c *Client) DatasetInfo(ctx context.Context, name string) (Dataset, error) {
	resp, err := c.datasetPage(ctx, name, 0, 1)
	if err != nil {
		return Dataset{}, err
	}
	return datasetFromProto(resp.Dataset), nil
}

func (c *Client) datasetPage(ctx context.Context, name string, start uint64, size uint32) (*metapb.GetDatasetResponse, error) {
	return callMeta(ctx, c, "dataset "+name, func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.GetDatasetResponse, error) {
		return mc.GetDataset(ctx, &metapb.GetDatasetRequest{Name: name, Start: start, PageSize: size})
	})
}

// DatasetMembers iterates over a dataset's members in their order, a page
// at a time.
func (c *Client) DatasetMembers(ctx context.Context, name string) iter.Seq2[DatasetMember, error] {
	return func(yield func(DatasetMember, error) bool) {
		var start uint64
		for {
			resp, err := c.datasetPage(ctx, name, start, 0)
			if err != nil {
				yield(DatasetMember{}, err)
				return
			}
			for _, m := range resp.Members {
				if !yield(DatasetMember{Key: m.Key, ClipID: hex.EncodeToString(m.ClipId), Generation: m.Generation, Size: int64(m.Size)}, nil) {
					return
				}
			}
			if !resp.More {
				return
			}
			start = resp.Next
		}
	}
}

// DeleteDataset deletes a dataset; the generations only it kept are
// collected. It returns how many.
func (c *Client) DeleteDataset(ctx context.Context, name string) (int, error) {
	req := &metapb.DeleteDatasetRequest{RequestId: newRequestID(), Name: name}
	resp, err := callMeta(ctx, c, "delete dataset "+name, func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.DeleteDatasetResponse, error) {
		return mc.DeleteDataset(ctx, req)
	})
	if err != nil {
		return 0, err
	}
	return int(resp.ReleasedClips), nil
}

// PurgeClip is a privacy deletion: the key leaves every dataset and every
// generation of it is deleted. It returns the datasets it left.
func (c *Client) PurgeClip(ctx context.Context, bucket, key string) ([]string, error) {
	req := &metapb.PurgeClipRequest{RequestId: newRequestID(), Bucket: bucket, Key: key}
	resp, err := callMeta(ctx, c, "purge "+bucket+"/"+key, func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.PurgeClipResponse, error) {
		return mc.PurgeClip(ctx, req)
	})
	if err != nil {
		return nil, err
	}
	return resp.Datasets, nil
}

// PlanOptions choose an epoch plan: a pure function of the dataset and
// these (internal/plan, version 1).
type PlanOptions struct {
	Seed, Epoch uint64
	World, Rank int
	// From resumes at a checkpoint: the global offset every rank passed.
	From int64
	// Pad or DropLast give every rank the same count.
	Pad, DropLast bool
}

// PlanItem is one clip of a rank's share, in reading order.
type PlanItem struct {
	Position   int64 // in the epoch's global order: a checkpoint counts these
	Key        string
	Generation uint64
	Size       int64
	Member     int // the member's position in the dataset
}

// PlanInfo describes a rank's share and the epoch's spread over the
// ranks.
type PlanInfo struct {
	Version            int
	Bucket             string
	RankItems          int
	EpochLength        int64
	MinItems, MaxItems int
	MinBytes, MaxBytes int64
}

func (o PlanOptions) request(dataset string) *metapb.PlanRequest {
	return &metapb.PlanRequest{Dataset: dataset, Version: plan.Version, Seed: o.Seed, Epoch: o.Epoch, World: uint32(max(o.World, 0)),
		Rank: uint32(max(o.Rank, 0)), From: o.From, Pad: o.Pad, DropLast: o.DropLast}
}

func (c *Client) planPage(ctx context.Context, req *metapb.PlanRequest) (*metapb.PlanResponse, error) {
	if req.World == 0 || req.Rank >= req.World {
		return nil, fmt.Errorf("%w: rank %d of a world of %d", ErrInvalidArgument, req.Rank, req.World)
	}
	return callMeta(ctx, c, "plan "+req.Dataset, func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.PlanResponse, error) {
		return mc.Plan(ctx, req)
	})
}

func planInfoFromProto(r *metapb.PlanResponse) PlanInfo {
	return PlanInfo{Version: int(r.Version), Bucket: r.Bucket, RankItems: int(r.RankItems), EpochLength: r.EpochLength,
		MinItems: int(r.MinItems), MaxItems: int(r.MaxItems), MinBytes: int64(r.MinBytes), MaxBytes: int64(r.MaxBytes)}
}

func planItemFromProto(it *metapb.PlanItem) PlanItem {
	return PlanItem{Position: it.Position, Key: it.Key, Generation: it.Generation, Size: int64(it.Size), Member: int(it.Member)}
}

// PlanSummary describes rank o.Rank's share of an epoch of a dataset.
func (c *Client) PlanSummary(ctx context.Context, dataset string, o PlanOptions) (PlanInfo, error) {
	info, _, _, err := c.PlanPage(ctx, dataset, o, 0, 1)
	return info, err
}

// Plan iterates over rank o.Rank's share of an epoch of a dataset, in
// reading order, a page at a time.
func (c *Client) Plan(ctx context.Context, dataset string, o PlanOptions) iter.Seq2[PlanItem, error] {
	return func(yield func(PlanItem, error) bool) {
		req := o.request(dataset)
		for {
			resp, err := c.planPage(ctx, req)
			if err != nil {
				yield(PlanItem{}, err)
				return
			}
			for _, it := range resp.Items {
				if !yield(planItemFromProto(it), nil) {
					return
				}
			}
			if !resp.More {
				return
			}
			req.PageStart = resp.Next
		}
	}
}

// PlanPage returns size items (at most 100,000) of rank o.Rank's share
// from index start of the share, with the share's description, and
// whether more follow.
func (c *Client) PlanPage(ctx context.Context, dataset string, o PlanOptions, start uint64, size int) (PlanInfo, []PlanItem, bool, error) {
	req := o.request(dataset)
	req.PageStart, req.PageSize = start, uint32(min(max(size, 1), 100_000))
	resp, err := c.planPage(ctx, req)
	if err != nil {
		return PlanInfo{}, nil, false, err
	}
	items := make([]PlanItem, 0, len(resp.Items))
	for _, it := range resp.Items {
		items = append(items, planItemFromProto(it))
	}
	return planInfoFromProto(resp), items, resp.More, nil
}
