package client

import (
	"context"
	"fmt"
	"iter"
	"time"

	metapb "github.com/clipstore/clipstore/proto/metapb"
	"google.golang.org/protobuf/proto"
)

// listPageSize is the page size List asks for.
const listPageSize = 1000

// Stat describes a clip without reading its data, with every part: a
// record of many parts (a multipart upload's) takes a call to meta per
// page of them (1000 by default). StatPart is one call.
func (c *Client) Stat(ctx context.Context, bucket, key string) (*ClipInfo, error) {
	return c.StatAt(ctx, bucket, key, 0)
}

// StatAt is Stat of a generation of the key (0: the current one): one a
// dataset keeps, for example.
func (c *Client) StatAt(ctx context.Context, bucket, key string, generation uint64) (*ClipInfo, error) {
	resp, err := c.allPartsAt(ctx, bucket, key, generation)
	if err != nil {
		return nil, err
	}
	return clipInfoFromProto(resp.Clip, 0, int(resp.PartCount)), nil
}

// StatPart is Stat with the clip's n-th part only in Parts (n counts from
// 1 in the clip's order: S3's partNumber, not the part's number in its
// upload), or none if the clip has fewer than n parts: PartCount says how
// many it has. Profile and Shards are set for n = 1 only.
func (c *Client) StatPart(ctx context.Context, bucket, key string, n int) (*ClipInfo, error) {
	return c.StatPartAt(ctx, bucket, key, 0, n)
}

// StatPartAt is StatPart of a generation of the key (0: the current one).
func (c *Client) StatPartAt(ctx context.Context, bucket, key string, generation uint64, n int) (*ClipInfo, error) {
	if n < 1 || n > maxParts {
		return nil, fmt.Errorf("%w: part %d outside 1..%d", ErrInvalidArgument, n, maxParts)
	}
	resp, err := c.getClipAt(ctx, bucket, key, generation, &metapb.PartSelector{Position: uint32(n)})
	if err != nil {
		return nil, err
	}
	return clipInfoFromProto(resp.Clip, int(resp.FirstPart), int(resp.PartCount)), nil
}

// Delete deletes a clip. Its shards are removed from the storage nodes in
// the background.
func (c *Client) Delete(ctx context.Context, bucket, key string) error {
	req := &metapb.DeleteClipRequest{RequestId: newRequestID(), Bucket: bucket, Key: key}
	_, err := callMeta(ctx, c, "delete "+bucket+"/"+key, func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.DeleteClipResponse, error) {
		return mc.DeleteClip(ctx, req)
	})
	return err
}

// List iterates over the clips of bucket whose keys start with prefix, in
// key order, fetching pages as it goes. An error ends the iteration.
func (c *Client) List(ctx context.Context, bucket, prefix string) iter.Seq2[*ClipEntry, error] {
	return c.list(ctx, bucket, prefix, listPageSize)
}

// ListFrom is List starting after the key startAfter (exclusive): it
// iterates over the clips whose keys start with prefix and sort after
// startAfter, in key order. A startAfter that sorts before prefix lists
// from the start of prefix; "" lists it all.
func (c *Client) ListFrom(ctx context.Context, bucket, prefix, startAfter string) iter.Seq2[*ClipEntry, error] {
	return c.listFrom(ctx, bucket, prefix, startAfter, listPageSize)
}

func (c *Client) list(ctx context.Context, bucket, prefix string, pageSize uint32) iter.Seq2[*ClipEntry, error] {
	return c.listFrom(ctx, bucket, prefix, "", pageSize)
}

func (c *Client) listFrom(ctx context.Context, bucket, prefix, after string, pageSize uint32) iter.Seq2[*ClipEntry, error] {
	return func(yield func(*ClipEntry, error) bool) {
		after := after // each iteration starts afresh
		for {
			req := &metapb.ListClipsRequest{Bucket: bucket, Prefix: prefix, StartAfter: after, PageSize: pageSize}
			resp, err := callMeta(ctx, c, "list "+bucket, func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.ListClipsResponse, error) {
				return mc.ListClips(ctx, req)
			})
			if err != nil {
				yield(nil, err)
				return
			}
			for _, e := range resp.Clips {
				if !yield(clipEntryFromProto(e), nil) {
					return
				}
			}
			if resp.NextStartAfter == "" {
				return
			}
			after = resp.NextStartAfter
		}
	}
}

// ClusterStatus reports the meta members and leader, the storage nodes and
// the cluster's counts.
func (c *Client) ClusterStatus(ctx context.Context) (*ClusterStatus, error) {
	st, err := callMeta(ctx, c, "cluster status", func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.ClusterStatusResponse, error) {
		return mc.ClusterStatus(ctx, &metapb.ClusterStatusRequest{})
	})
	if err != nil {
		return nil, err
	}
	nodes, err := callMeta(ctx, c, "list nodes", func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.ListNodesResponse, error) {
		return mc.ListNodes(ctx, &metapb.ListNodesRequest{})
	})
	if err != nil {
		return nil, err
	}
	out := &ClusterStatus{Leader: st.LeaderId, Term: st.Term, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex,
		Buckets: st.Buckets, Clips: st.Clips, DegradedClips: st.DegradedClips, NodesUp: st.StorageNodesUp,
		UnrecoverableClips: st.UnrecoverableClips, UnrecoverableKeys: st.UnrecoverableClipKeys,
		Lost:           lossesFromProto(st.ShardLosses),
		Corrupt:        lossesFromProto(st.ShardCorrupt),
		PendingDeletes: st.PendingDeletes, RepairsInFlight: st.RepairsInFlight,
		Datasets: st.Datasets, DatasetOnlyClips: st.DatasetOnlyClips, DatasetOnlyBytes: st.DatasetOnlyBytes,
		RepairLimits:      RepairLimits{Concurrency: int(st.RepairLimits.GetConcurrency()), BytesPerSec: st.RepairLimits.GetBytesPerSec()},
		MoveLimits:        RepairLimits{Concurrency: int(st.MoveLimits.GetConcurrency()), BytesPerSec: st.MoveLimits.GetBytesPerSec()},
		ClipsByLostShards: st.ClipsByLostShards, Repair: repairFromProto(st), Moves: movesFromProto(st),
		Scrub: ScrubSummary{BytesDone: st.ScrubBytesDone, BytesTotal: st.ScrubBytesTotal, CorruptFound: st.ScrubCorruptFound}}
	if h := st.RepairHold; h != nil {
		out.RepairHold = &RepairHold{Since: unixNano(h.SinceUnixNano), Until: unixNano(h.UntilUnixNano),
			Nodes: int(h.Nodes), Threshold: int(h.Threshold)}
	}
	for _, m := range st.Members {
		out.Members = append(out.Members, memberFromProto(m))
	}
	scrubs := map[string]*ScrubStatus{}
	for _, ns := range st.NodeScrubs {
		scrubs[ns.NodeId] = scrubFromProto(ns.Scrub)
		if ns.Scrub.GetRunning() {
			out.Scrub.Running++
		}
	}
	if rb, err := c.Rebalance(ctx, RebalanceStatusOnly, 0); err == nil {
		out.Rebalance = rb
	}
	for _, n := range nodes.Nodes {
		node := nodeFromProto(n)
		node.Scrub = scrubs[n.NodeId]
		out.Nodes = append(out.Nodes, node)
	}
	return out, nil
}

// SetRepairLimits changes the cluster's repair limits at run time; a nil
// field keeps its value. It returns the limits now in force (with both nil,
// it only reads them).
func (c *Client) SetRepairLimits(ctx context.Context, concurrency *int, bytesPerSec *uint64) (RepairLimits, error) {
	return c.setLimits(ctx, concurrency, bytesPerSec, false)
}

// SetMoveLimits does the same for moves (drains), which are planned after
// every repair: concurrency 0 pauses them.
func (c *Client) SetMoveLimits(ctx context.Context, concurrency *int, bytesPerSec *uint64) (RepairLimits, error) {
	return c.setLimits(ctx, concurrency, bytesPerSec, true)
}

func (c *Client) setLimits(ctx context.Context, concurrency *int, bytesPerSec *uint64, moves bool) (RepairLimits, error) {
	req := &metapb.RepairLimitsRequest{RequestId: newRequestID(), BytesPerSec: bytesPerSec, Moves: moves}
	if concurrency != nil {
		v := uint32(*concurrency)
		req.Concurrency = &v
	}
	resp, err := callMeta(ctx, c, "limits", func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.RepairLimitsResponse, error) {
		return mc.RepairLimits(ctx, req)
	})
	if err != nil {
		return RepairLimits{}, err
	}
	return RepairLimits{Concurrency: int(resp.Limits.GetConcurrency()), BytesPerSec: resp.Limits.GetBytesPerSec()}, nil
}

// FindQuery selects clips by their capture attributes: any of Vehicles,
// any of Cameras, every one of Tags, keys starting with Prefix, and a
// capture interval overlapping [From, To] (zero: unbounded). Empty
// fields select everything; clips without capture attributes are never
// found.
type FindQuery struct {
	Vehicles, Cameras, Tags []string
	From, To                time.Time
	Prefix                  string
	// PageSize is how many clips each call to meta brings (0: 1000).
	PageSize int
}

// Find iterates over the bucket's current clips that match q, in capture
// start order, reading a page from meta at a time (linearizably). It
// stops at the first error.
func (c *Client) Find(ctx context.Context, bucket string, q FindQuery) iter.Seq2[*ClipEntry, error] {
	return func(yield func(*ClipEntry, error) bool) {
		req := &metapb.FindRequest{Bucket: bucket, Vehicles: q.Vehicles, Cameras: q.Cameras, Tags: q.Tags,
			FromUnixNano: nanos(q.From), ToUnixNano: nanos(q.To), Prefix: q.Prefix, Limit: uint32(max(q.PageSize, 0))}
		for {
			resp, err := callMeta(ctx, c, "find in "+bucket, func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.FindResponse, error) {
				return mc.Find(ctx, req)
			})
			if err != nil {
				yield(nil, err)
				return
			}
			for _, e := range resp.Clips {
				if !yield(clipEntryFromProto(e), nil) {
					return
				}
			}
			if len(resp.NextPageToken) == 0 {
				return
			}
			req = proto.Clone(req).(*metapb.FindRequest)
			req.PageToken = resp.NextPageToken
		}
	}
}
