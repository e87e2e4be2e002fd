package meta_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/meta"
	"github.com/clipstore/clipstore/meta/metatest"
	pb "github.com/clipstore/clipstore/proto/metapb"
)

// TestMoveSlotsPacingAndProgress: the moves off a draining node respect
// the per-source limit; each carries its share of the byte rate and a
// deadline that allows for it; the update that lands one answers with the
// target's next move; and the moves are counted apart from repairs, with a
// queue, a rate and an ETA in the cluster status.
func TestMoveSlotsPacingAndProgress(t *testing.T) {
	const (
		rate        = 64 << 20 // move bytes per second, cluster-wide
		concurrency = 8
		timeout     = time.Minute
	)
	c := metatest.New(t, 1, metatest.Options{Configure: func(cfg *meta.Config) {
		cfg.MovesPerSource = 1
		cfg.MoveConcurrency, cfg.MoveBytesPerSec = concurrency, rate
		cfg.RepairTaskTimeout = timeout
		cfg.MoveDeleteDelay = 0
		cfg.AutoRebalance = false // s6's join starts no rebalance of its own
	}})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	// Six nodes hold every clip; a seventh joins after the puts, so that
	// it is the only target of the moves off s0.
	h := heartbeatingNodes(t, cl, 6)
	const clips, size = 4, 3 << 20
	for i := range clips {
		put(t, cl, "bk1", fmt.Sprintf("clip%d", i), size, nil)
	}
	if _, err := cl.RegisterNode(t.Context(), &pb.RegisterNodeRequest{NodeId: "s6", Address: "127.0.0.1:7406", Zone: "z0"}); err != nil {
		t.Fatal(err)
	}
	h.revive("s6")
	if _, err := setAdmin(t, cl, &pb.SetNodeAdminStateRequest{NodeId: "s0", State: pb.AdminState_ADMIN_STATE_DRAINING}); err != nil {
		t.Fatal(err)
	}
	drained := nodeByID(t, cl, "s0")
	if drained.ShardsToMove != clips || drained.BytesToMove == 0 {
		t.Fatalf("s0 to move: %d shards, %d bytes; want %d shards", drained.ShardsToMove, drained.BytesToMove, clips)
	}
	st := clusterStatus(t, cl)
	if st.MoveQueueBytes != drained.BytesToMove || st.MoveEtaSeconds != nil {
		t.Fatalf("before any move: queue %d bytes (want %d), ETA %v (want unknown)", st.MoveQueueBytes, drained.BytesToMove, st.MoveEtaSeconds)
	}

	var w *pb.RepairWork
	await.True(t, 10*time.Second, "a move planned onto s6", func() bool {
		ws := h.repairWork()["s6"]
		if len(ws) > 0 {
			w = ws[0]
		}
		return w != nil
	})
	time.Sleep(300 * time.Millisecond) // more planning passes
	if ws := h.repairWork()["s6"]; len(ws) != 1 {
		t.Fatalf("%d moves copy from s0 at once; MovesPerSource is 1", len(ws))
	}
	if w.BytesPerSec != rate/concurrency {
		t.Fatalf("a move paced at %d B/s; want its share %d", w.BytesPerSec, rate/concurrency)
	}
	// Its deadline allows twice what its bytes take at that rate.
	shard := nodeShardLength(t, cl, w)
	minDeadline := time.Now().Add(timeout + 2*time.Duration(float64(shard)/float64(w.BytesPerSec)*float64(time.Second)) - 5*time.Second)
	if got := time.Unix(0, w.CommitDeadlineUnixNano); got.Before(minDeadline) {
		t.Fatalf("a move of %d bytes at %d B/s has its deadline in %v", shard, w.BytesPerSec, time.Until(got))
	}

	// Landing a move answers with the next one (the source's slot is free).
	for moved := 1; moved <= clips; moved++ {
		resp, err := cl.UpdateShard(t.Context(), &pb.UpdateShardRequest{ClipId: w.ClipId, Generation: w.Generation,
			Part: w.Part, Index: w.Index, OldShardId: w.OldShardId, CommitDeadlineUnixNano: w.CommitDeadlineUnixNano,
			NewShard: &pb.Shard{Index: w.Index, NodeId: "s6", ShardId: w.NewShardId, Length: shard, State: pb.ShardState_SHARD_STATE_OK}})
		if err != nil {
			t.Fatalf("move %d: %v", moved, err)
		}
		st := clusterStatus(t, cl)
		if st.MovedShards != uint64(moved) || st.MovedBytes != uint64(moved)*shard || st.RepairedShards != 0 || st.MoveBytesPerSec <= 0 {
			t.Fatalf("after %d moves: moved %d shards, %d bytes, %.0f B/s; repaired %d", moved, st.MovedShards, st.MovedBytes,
				st.MoveBytesPerSec, st.RepairedShards)
		}
		left := uint64(clips-moved) * shard
		if st.MoveQueueBytes != left || st.MoveEtaSeconds == nil || (left > 0) != (*st.MoveEtaSeconds > 0) {
			t.Fatalf("after %d moves: queue %d bytes (want %d), ETA %v", moved, st.MoveQueueBytes, left, st.MoveEtaSeconds)
		}
		if moved == clips {
			if len(resp.Repairs) != 0 {
				t.Fatalf("the last move answered with %d more", len(resp.Repairs))
			}
			break
		}
		if len(resp.Repairs) != 1 || resp.Repairs[0].CopyFrom.GetNodeId() != "s0" || resp.Repairs[0].ClipId == nil {
			t.Fatalf("move %d landed; the answer carries %v, want s6's next move", moved, resp.Repairs)
		}
		w = resp.Repairs[0]
	}
	if n := nodeByID(t, cl, "s0"); n.ShardsToMove != 0 || n.BytesToMove != 0 {
		t.Fatalf("s0 after the drain: %d shards, %d bytes to move", n.ShardsToMove, n.BytesToMove)
	}
}

// nodeShardLength is the length the record holds for the shard a task
// replaces.
func nodeShardLength(t *testing.T, cl pb.MetaServiceClient, w *pb.RepairWork) uint64 {
	t.Helper()
	resp, err := cl.ListClips(t.Context(), &pb.ListClipsRequest{Bucket: "bk1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range resp.Clips {
		got, err := cl.GetClip(t.Context(), &pb.GetClipRequest{Bucket: "bk1", Key: e.Key})
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Clip.ClipId) == string(w.ClipId) {
			return got.Clip.Parts[w.Part].Shards[w.Index].Length
		}
	}
	t.Fatalf("no clip has the id of the task")
	return 0
}
