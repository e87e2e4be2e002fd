package meta_test

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/plan"
	"github.com/clipstore/clipstore/meta"
	"github.com/clipstore/clipstore/meta/metatest"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// TestDatasets: a dataset pins the generations it lists. Overwriting and
// deleting every member leaves each readable at its generation (GetClip by
// generation), its shards in the node index and off the delete queue; the
// bucket cannot be deleted; a second dataset holding the same records keeps
// them after the first goes; the last one's removal queues their shards for
// deletion; a dataset naming a generation that no longer exists is refused
// and changes nothing; a purge takes a key out of every dataset and deletes
// it; it all holds on a restarted member (state from its log and snapshot).
func TestDatasets(t *testing.T) {
	c := metatest.New(t, 1, metatest.Options{})
	cl := c.Members[0].Client
	ctx := t.Context()
	registerNodes(t, cl, 6)
	if _, err := cl.CreateBucket(ctx, &pb.CreateBucketRequest{Name: "train"}); err != nil {
		t.Fatal(err)
	}
	var members []*pb.DatasetMember
	recs := map[string]*pb.ClipRecord{}
	for i := range 5 {
		key := fmt.Sprintf("car%d.mp4", i)
		rec := put(t, cl, "train", key, uint64(1000+i), nil).Clip
		recs[key] = rec
		members = append(members, &pb.DatasetMember{Key: key, ClipId: rec.ClipId, Generation: rec.Generation})
	}
	ds, err := cl.CreateDataset(ctx, &pb.CreateDatasetRequest{Name: "rainy-v1", Bucket: "train", Members: members, Description: "test"})
	if err != nil || ds.Dataset.Members != 5 || ds.Dataset.Bytes != 1000+1001+1002+1003+1004 {
		t.Fatalf("create: %v, %v", ds, err)
	}
	if _, err := cl.CreateDataset(ctx, &pb.CreateDatasetRequest{Name: "rainy-v1", Bucket: "train", Members: members}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("a second dataset of the same name: %v", err)
	}
	// Overwrite the first three, delete the last two.
	for i := range 5 {
		key := fmt.Sprintf("car%d.mp4", i)
		if i < 3 {
			put(t, cl, "train", key, 7, nil)
		} else if _, err := cl.DeleteClip(ctx, &pb.DeleteClipRequest{Bucket: "train", Key: key}); err != nil {
			t.Fatal(err)
		}
	}
	// A dataset of a generation gone is refused, and pins nothing.
	if _, err := cl.CreateDataset(ctx, &pb.CreateDatasetRequest{Name: "late", Bucket: "train",
		Members: []*pb.DatasetMember{{Key: "car3.mp4", ClipId: bytesOf(0x33), Generation: 99}}}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("a dataset of a missing generation: %v", err)
	}
	checkPinned := func(when string, current uint64) {
		t.Helper()
		for key, rec := range recs {
			got, err := cl.GetClip(ctx, &pb.GetClipRequest{Bucket: "train", Key: key, Generation: rec.Generation})
			if err != nil || !proto.Equal(got.Clip.Parts[0], rec.Parts[0]) || got.Clip.Generation != rec.Generation {
				t.Fatalf("%s: %s at generation %d: %v, %v", when, key, rec.Generation, got.GetClip(), err)
			}
		}
		st, err := cl.ClusterStatus(ctx, &pb.ClusterStatusRequest{})
		if err != nil || st.DatasetOnlyClips != 5 || st.DatasetOnlyBytes != 5010 || st.Clips != current || st.Datasets < 1 {
			t.Fatalf("%s: status: %d dataset-only clips of %d bytes, %d clips, %d datasets (%v); want 5, 5010, %d",
				when, st.GetDatasetOnlyClips(), st.GetDatasetOnlyBytes(), st.GetClips(), st.GetDatasets(), err, current)
		}
		if pending := pendingDeletesOf(t, cl, recs); pending != 0 {
			t.Fatalf("%s: %d shards of pinned records queued for deletion", when, pending)
		}
	}
	checkPinned("after overwrites and deletes", 3)
	// The current generation reads as before; an unpinned old one does not.
	if got, err := cl.GetClip(ctx, &pb.GetClipRequest{Bucket: "train", Key: "car0.mp4"}); err != nil || got.Clip.Size != 7 {
		t.Fatalf("current generation: %v, %v", got, err)
	}
	if _, err := cl.GetClip(ctx, &pb.GetClipRequest{Bucket: "train", Key: "car0.mp4", Generation: 1}); status.Code(err) != codes.NotFound {
		t.Fatalf("an unkept generation: %v", err)
	}
	// Members page in order.
	page, err := cl.GetDataset(ctx, &pb.GetDatasetRequest{Name: "rainy-v1", PageSize: 2})
	if err != nil || len(page.Members) != 2 || !page.More || page.Next != 2 || page.Members[1].Key != "car1.mp4" {
		t.Fatalf("first page: %v, %v", page, err)
	}
	// The bucket cannot go while datasets hold its records.
	if _, err := cl.DeleteClip(ctx, &pb.DeleteClipRequest{Bucket: "train", Key: "car0.mp4"}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"car1.mp4", "car2.mp4"} {
		if _, err := cl.DeleteClip(ctx, &pb.DeleteClipRequest{Bucket: "train", Key: k}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.DeleteBucket(ctx, &pb.DeleteBucketRequest{Name: "train"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("delete a bucket datasets hold: %v", err)
	}
	// A second dataset of two of them; then the restart.
	if _, err := cl.CreateDataset(ctx, &pb.CreateDatasetRequest{Name: "subset", Bucket: "train", Members: members[:2]}); err != nil {
		t.Fatal(err)
	}
	if err := c.Members[0].Node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	c.Members[0].Stop()
	c.Members[0].Start(false)
	c.WaitLeader()
	cl = c.Members[0].Client
	checkPinned("after a restart", 0)
	// The first dataset goes: the three only it held are collected.
	rm, err := cl.DeleteDataset(ctx, &pb.DeleteDatasetRequest{Name: "rainy-v1"})
	if err != nil || rm.ReleasedClips != 3 {
		t.Fatalf("delete the dataset: %v, %v; want 3 released", rm, err)
	}
	for key, rec := range recs {
		_, err := cl.GetClip(ctx, &pb.GetClipRequest{Bucket: "train", Key: key, Generation: rec.Generation})
		if kept := key == "car0.mp4" || key == "car1.mp4"; kept != (err == nil) {
			t.Fatalf("%s after the first dataset went: %v (kept by the second: %v)", key, err, kept)
		}
	}
	// A purge takes car0 out of the second dataset and deletes it.
	pr, err := cl.PurgeClip(ctx, &pb.PurgeClipRequest{Bucket: "train", Key: "car0.mp4"})
	if err != nil || len(pr.Datasets) != 1 || pr.Datasets[0] != "subset" || pr.Generations != 1 {
		t.Fatalf("purge: %v, %v", pr, err)
	}
	sub, err := cl.GetDataset(ctx, &pb.GetDatasetRequest{Name: "subset"})
	if err != nil || sub.Dataset.Members != 1 || len(sub.Members) != 1 || sub.Members[0].Key != "car1.mp4" {
		t.Fatalf("subset after the purge: %v, %v", sub, err)
	}
	if _, err := cl.DeleteDataset(ctx, &pb.DeleteDatasetRequest{Name: "subset"}); err != nil {
		t.Fatal(err)
	}
	st, err := cl.ClusterStatus(ctx, &pb.ClusterStatusRequest{})
	if err != nil || st.DatasetOnlyClips != 0 || st.Clips != 0 || st.Datasets != 0 {
		t.Fatalf("at the end: %v, %v", st, err)
	}
	if _, err := cl.DeleteBucket(ctx, &pb.DeleteBucketRequest{Name: "train"}); err != nil {
		t.Fatalf("delete the bucket once no dataset holds it: %v", err)
	}
}

func bytesOf(b byte) []byte {
	out := make([]byte, 16)
	for i := range out {
		out[i] = b
	}
	return out
}

// pendingDeletesOf counts the shards of recs that heartbeats hand out for
// deletion.
func pendingDeletesOf(t *testing.T, cl pb.MetaServiceClient, recs map[string]*pb.ClipRecord) int {
	t.Helper()
	ids := map[string]bool{}
	for _, rec := range recs {
		for _, s := range rec.Parts[0].Shards {
			ids[string(s.ShardId)] = true
		}
	}
	n := 0
	for i := range 6 {
		hb, err := cl.Heartbeat(t.Context(), &pb.HeartbeatRequest{NodeId: fmt.Sprintf("s%d", i), Capacity: 100 << 30, Free: 50 << 30})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range hb.Deletes {
			if ids[string(d.ShardId)] {
				n++
			}
		}
	}
	return n
}

// TestPlan: a dataset's epoch plan, paged, is internal/plan's order of its
// members: over every rank each member comes once, in the same order as a
// plan computed from the inputs alone; a resumed plan at another world
// size completes the epoch exactly once; a purged member is skipped; an
// unknown algorithm version is refused.
func TestPlan(t *testing.T) {
	c := metatest.New(t, 1, metatest.Options{})
	cl := c.Members[0].Client
	ctx := t.Context()
	registerNodes(t, cl, 6)
	if _, err := cl.CreateBucket(ctx, &pb.CreateBucketRequest{Name: "train"}); err != nil {
		t.Fatal(err)
	}
	var members []*pb.DatasetMember
	for i := range 37 {
		rec := put(t, cl, "train", fmt.Sprintf("k%02d", i), uint64(100+i), nil).Clip
		members = append(members, &pb.DatasetMember{Key: rec.Key, ClipId: rec.ClipId, Generation: rec.Generation})
	}
	if _, err := cl.CreateDataset(ctx, &pb.CreateDatasetRequest{Name: "p", Bucket: "train", Members: members}); err != nil {
		t.Fatal(err)
	}
	length := int64(37) // the epoch's, whatever was purged
	share := func(world, rank uint32, from int64) []*pb.PlanItem {
		t.Helper()
		var out []*pb.PlanItem
		req := &pb.PlanRequest{Dataset: "p", Seed: 9, Epoch: 2, World: world, Rank: rank, From: from, PageSize: 3}
		for {
			resp, err := cl.Plan(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, resp.Items...)
			if !resp.More {
				if resp.MaxItems-resp.MinItems > 1 || resp.EpochLength != length {
					t.Fatalf("spread %d..%d, length %d", resp.MinItems, resp.MaxItems, resp.EpochLength)
				}
				return out
			}
			req.PageStart = resp.Next
		}
	}
	order := plan.Order(37, 9, 2)
	seen := map[string]int{}
	for rank := range uint32(4) {
		for i, it := range share(4, rank, 0) {
			if want := int64(rank) + int64(i)*4; it.Position != want || it.Member != uint64(order[want]) || it.Key != members[order[want]].Key {
				t.Fatalf("rank %d item %d: %v; want position %d, member %d", rank, i, it, want, order[want])
			}
			seen[it.Key]++
		}
	}
	if len(seen) != 37 {
		t.Fatalf("%d members planned, want 37", len(seen))
	}
	// Resume at 20 (every rank of 4 passed 5 items) with 3 ranks.
	resumed := map[string]int{}
	for p := range 20 {
		resumed[members[order[p]].Key]++
	}
	for rank := range uint32(3) {
		for _, it := range share(3, rank, 20) {
			resumed[it.Key]++
		}
	}
	for _, m := range members {
		if resumed[m.Key] != 1 {
			t.Fatalf("resumed at 20 with 3 ranks: %s planned %d times", m.Key, resumed[m.Key])
		}
	}
	if _, err := cl.PurgeClip(ctx, &pb.PurgeClipRequest{Bucket: "train", Key: "k05"}); err != nil {
		t.Fatal(err)
	}
	n := 0
	for rank := range uint32(4) {
		for _, it := range share(4, rank, 0) {
			if it.Key == "k05" {
				t.Fatal("a purged member is planned")
			}
			n++
		}
	}
	if n != 36 {
		t.Fatalf("%d planned after the purge, want 36", n)
	}
	// Made again under the same name, in another order: the plans are the
	// new dataset's, not the ones computed before.
	if _, err := cl.DeleteDataset(ctx, &pb.DeleteDatasetRequest{Name: "p"}); err != nil {
		t.Fatal(err)
	}
	var again []*pb.DatasetMember
	for _, m := range slices.Backward(members) {
		if m.Key != "k05" {
			again = append(again, m)
		}
	}
	if _, err := cl.CreateDataset(ctx, &pb.CreateDatasetRequest{Name: "p", Bucket: "train", Members: again}); err != nil {
		t.Fatal(err)
	}
	order, length = plan.Order(36, 9, 2), 36
	for rank := range uint32(4) {
		for i, it := range share(4, rank, 0) {
			if want := int64(rank) + int64(i)*4; it.Position != want || it.Key != again[order[want]].Key {
				t.Fatalf("made again: rank %d item %d: %v; want position %d, key %s", rank, i, it, want, again[order[want]].Key)
			}
		}
	}
	if _, err := cl.Plan(ctx, &pb.PlanRequest{Dataset: "p", Version: 2, World: 1}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("version 2: %v", err)
	}
	if _, err := cl.Plan(ctx, &pb.PlanRequest{Dataset: "p", World: 2, Rank: 2}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("rank 2 of 2: %v", err)
	}
}

// TestStagedDataset: a dataset made by a series of entries is invisible
// until sealed, takes its batches only in order, and holds what it lists
// from the first batch on; one never sealed is deleted by the leader after
// the staging time, releasing its holds.
func TestStagedDataset(t *testing.T) {
	var skew atomic.Int64 // the members' clock runs ahead by this
	c := metatest.New(t, 1, metatest.Options{Configure: func(cfg *meta.Config) {
		cfg.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	}})
	cl := c.Members[0].Client
	ctx := t.Context()
	registerNodes(t, cl, 6)
	if _, err := cl.CreateBucket(ctx, &pb.CreateBucketRequest{Name: "train"}); err != nil {
		t.Fatal(err)
	}
	var members []*pb.DatasetMember
	for i := range 7 {
		rec := put(t, cl, "train", fmt.Sprintf("k%d", i), 10, nil).Clip
		members = append(members, &pb.DatasetMember{Key: rec.Key, ClipId: rec.ClipId, Generation: rec.Generation})
	}
	if _, err := cl.CreateDataset(ctx, &pb.CreateDatasetRequest{Name: "big", Bucket: "train", Members: members[:3], Staged: true}); err != nil {
		t.Fatal(err)
	}
	invisible := func(when string) {
		t.Helper()
		if _, err := cl.GetDataset(ctx, &pb.GetDatasetRequest{Name: "big"}); status.Code(err) != codes.NotFound {
			t.Fatalf("%s: GetDataset of an unsealed dataset: %v", when, err)
		}
		if _, err := cl.Plan(ctx, &pb.PlanRequest{Dataset: "big", World: 1}); status.Code(err) != codes.NotFound {
			t.Fatalf("%s: Plan of an unsealed dataset: %v", when, err)
		}
		ls, err := cl.ListDatasets(ctx, &pb.ListDatasetsRequest{})
		if err != nil || len(ls.Datasets) != 0 {
			t.Fatalf("%s: ListDatasets: %v, %v", when, ls, err)
		}
	}
	invisible("after the first batch")
	// Held from the first batch on: an overwrite keeps the old generation.
	put(t, cl, "train", "k0", 11, nil)
	if _, err := cl.GetClip(ctx, &pb.GetClipRequest{Bucket: "train", Key: "k0", Generation: members[0].Generation}); err != nil {
		t.Fatalf("a generation an unsealed dataset holds: %v", err)
	}
	if _, err := cl.ExtendDataset(ctx, &pb.ExtendDatasetRequest{Name: "big", Start: 2, Members: members[3:5]}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("a batch out of order: %v", err)
	}
	if _, err := cl.ExtendDataset(ctx, &pb.ExtendDatasetRequest{Name: "big", Start: 3, Members: members[3:5]}); err != nil {
		t.Fatal(err)
	}
	invisible("after the second batch")
	resp, err := cl.ExtendDataset(ctx, &pb.ExtendDatasetRequest{Name: "big", Start: 5, Members: members[5:], Seal: true})
	if err != nil || resp.Dataset.Members != 7 || resp.Dataset.Building {
		t.Fatalf("seal: %v, %v", resp, err)
	}
	page, err := cl.GetDataset(ctx, &pb.GetDatasetRequest{Name: "big"})
	if err != nil || len(page.Members) != 7 || page.Members[6].Key != "k6" {
		t.Fatalf("the sealed dataset: %v, %v", page, err)
	}
	if _, err := cl.ExtendDataset(ctx, &pb.ExtendDatasetRequest{Name: "big", Start: 7, Members: members[:1]}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("extend a sealed dataset: %v", err)
	}

	// One never sealed goes after the staging time, and its holds with it.
	if _, err := cl.CreateDataset(ctx, &pb.CreateDatasetRequest{Name: "abandoned", Bucket: "train", Members: members[1:2], Staged: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.DeleteDataset(ctx, &pb.DeleteDatasetRequest{Name: "big"}); err != nil {
		t.Fatal(err)
	}
	put(t, cl, "train", "k1", 12, nil) // k1's old generation: held by the abandoned dataset only
	if _, err := cl.GetClip(ctx, &pb.GetClipRequest{Bucket: "train", Key: "k1", Generation: members[1].Generation}); err != nil {
		t.Fatalf("held by the unsealed dataset: %v", err)
	}
	skew.Store(int64(2 * time.Hour))
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := cl.GetClip(ctx, &pb.GetClipRequest{Bucket: "train", Key: "k1", Generation: members[1].Generation})
		if status.Code(err) == codes.NotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the abandoned dataset still holds k1's old generation after its staging time: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := cl.ExtendDataset(ctx, &pb.ExtendDatasetRequest{Name: "abandoned", Start: 1, Seal: true}); status.Code(err) != codes.NotFound {
		t.Fatalf("seal an expired dataset: %v", err)
	}
}
