package meta

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	pb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

var listClips = flag.Int("bench.clips", 1_000_000, "clips in the bucket that BenchmarkListClips pages through")

// fillFSM commits n 4+2 clip records (8 MiB clips with capture attributes,
// as ingest writes them) straight through the FSM, batch entries a batch;
// withRequestIDs adds the idempotency record clients' commits carry. Clip
// i is a minute of vehicle car-<i%1000>, one of 4 cameras, starting 2.6 s
// after clip i-1 (a million span a month), tagged rain one time in 10 and
// collision one in 997, independently of each other.
func fillFSM(tb testing.TB, f *fsm, n, batch int, withRequestIDs bool) {
	tb.Helper()
	id := func() []byte { b := make([]byte, 16); rand.Read(b); return b }
	profile := &pb.ECProfile{DataShards: 4, ParityShards: 2, BlockSize: 1 << 20}
	index := f.appliedIndex()
	apply := func(cmd *pb.Command) *raft.Log {
		index++
		b, _ := proto.Marshal(cmd)
		return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: b}
	}
	now := time.Now()
	var logs []*raft.Log
	logs = append(logs, apply(&pb.Command{ProposedUnixNano: now.UnixNano(), Op: &pb.Command_CreateBucket{
		CreateBucket: &pb.CreateBucketRequest{Name: "bench", DefaultProfile: profile}}}))
	for i := range 6 {
		logs = append(logs, apply(&pb.Command{ProposedUnixNano: now.UnixNano(), Op: &pb.Command_RegisterNode{
			RegisterNode: &pb.RegisterNodeRequest{NodeId: fmt.Sprintf("s%d", i), Address: "127.0.0.1:1"}}}))
	}
	for i := range n {
		put := &pb.CommitPutRequest{RequestId: id(), Bucket: "bench", Key: fmt.Sprintf("car-%04d/front/%010d.mp4", i%1000, i),
			UploadId: id(), ClipId: id(), CommitDeadlineUnixNano: now.Add(time.Hour).UnixNano(), Size: 8 << 20, Profile: profile,
			ContentType: "video/mp4", Capture: benchCapture(i)}
		for s := range 6 {
			put.Shards = append(put.Shards, &pb.Shard{Index: uint32(s), NodeId: fmt.Sprintf("s%d", s), ShardId: id(),
				Length: 2 << 20, Checksum: 0xdeadbeef, State: pb.ShardState_SHARD_STATE_OK})
		}
		if !withRequestIDs {
			put.RequestId = nil
		}
		logs = append(logs, apply(&pb.Command{RequestId: put.RequestId, ProposedUnixNano: now.UnixNano(),
			Op: &pb.Command_CommitPut{CommitPut: &pb.CommitPutCommand{Put: put}}}))
		if len(logs) == batch || i == n-1 {
			for _, r := range f.ApplyBatch(logs) {
				if res, ok := r.(*applyResult); ok && res.err != nil {
					tb.Fatal(res.err)
				}
			}
			logs = logs[:0]
		}
	}
}

// BenchmarkBytesPerClip reports the bbolt file bytes one committed 4+2 clip
// costs, indexes and request record included, over 100,000 clips.
func BenchmarkBytesPerClip(b *testing.B) {
	const n = 100_000
	for b.Loop() {
		f := newBenchFSM(b)
		before := fileSize(b, f.path)
		fillFSM(b, f, n, 1000, true)
		b.ReportMetric(float64(fileSize(b, f.path)-before)/n, "bytes/clip")
		var used int
		f.view(func(tx *bolt.Tx) error {
			for _, name := range allBuckets {
				bs := tx.Bucket(name).Stats()
				used += bs.LeafInuse + bs.BranchInuse
			}
			return nil
		})
		b.ReportMetric(float64(used)/n, "inuse-bytes/clip")
	}
}

// BenchmarkListClips pages through a bucket of -bench.clips clips (default
// 1,000,000) with the reads ListClips serves, 1000 entries a page, and
// reports entries/s.
func BenchmarkListClips(b *testing.B) {
	f := newBenchFSM(b)
	start := time.Now()
	fillFSM(b, f, *listClips, 10000, false)
	b.Logf("filled %d clips in %v", *listClips, time.Since(start))
	n := &Node{fsm: f}
	entries := 0
	for b.Loop() { // b.Loop runs the fill above once, not once per b.N

		after := ""
		for {
			resp, err := n.listClips(context.Background(), &pb.ListClipsRequest{Bucket: "bench", StartAfter: after, PageSize: 1000})
			if err != nil {
				b.Fatal(err)
			}
			entries += len(resp.Clips)
			if resp.NextStartAfter == "" {
				break
			}
			after = resp.NextStartAfter
		}
	}
	b.ReportMetric(float64(entries)/b.Elapsed().Seconds(), "entries/s")
}

func newBenchFSM(b *testing.B) *fsm {
	return testFSM(b)
}

func fileSize(tb testing.TB, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Size()
}

// benchBase is when fillFSM's first clip was captured.
var benchBase = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// benchCapture is fillFSM's clip i's capture attributes.
func benchCapture(i int) *pb.CaptureAttributes {
	start := benchBase.Add(time.Duration(i) * 2600 * time.Millisecond)
	c := &pb.CaptureAttributes{VehicleId: fmt.Sprintf("car-%04d", i%1000), Camera: []string{"front", "rear", "left", "right"}[(i/7)%4],
		StartUnixNano: start.UnixNano(), EndUnixNano: start.Add(time.Minute).UnixNano()}
	if (i/3)%10 == 0 {
		c.Tags = append(c.Tags, "rain")
	}
	if i%997 == 0 {
		c.Tags = append(c.Tags, "collision")
	}
	return c
}

// BenchmarkFind runs Find queries over a bucket of -bench.clips clips
// (default 1,000,000; see fillFSM), each as a sub-benchmark reporting its
// latency, the clips it found and the index entries it read: what a
// query costs is the entries it reads, against the bucket's size.
func BenchmarkFind(b *testing.B) {
	f := newBenchFSM(b)
	start := time.Now()
	fillFSM(b, f, *listClips, 10000, false)
	b.Logf("filled %d clips in %v", *listClips, time.Since(start))
	n := &Node{fsm: f, cfg: Config{MaxCaptureDuration: time.Hour}}
	day := benchBase.Add(24 * time.Hour)
	for _, q := range []struct {
		name string
		req  *pb.FindRequest
	}{
		{"vehicle-day", &pb.FindRequest{Vehicles: []string{"car-0042"}, FromUnixNano: day.UnixNano(), ToUnixNano: day.Add(24 * time.Hour).UnixNano()}},
		{"vehicle-collision", &pb.FindRequest{Vehicles: []string{"car-0007"}, Tags: []string{"collision"}}},
		{"camera-hour", &pb.FindRequest{Cameras: []string{"front"}, FromUnixNano: day.UnixNano(), ToUnixNano: day.Add(time.Hour).UnixNano()}},
		{"rain-collision", &pb.FindRequest{Tags: []string{"rain", "collision"}}},
		{"3-vehicles-rear-rain", &pb.FindRequest{Vehicles: []string{"car-0010", "car-0020", "car-0030"}, Cameras: []string{"rear"}, Tags: []string{"rain"}}},
	} {
		b.Run(q.name, func(b *testing.B) {
			var clips, reads uint64
			queries := 0
			for b.Loop() {
				req := proto.Clone(q.req).(*pb.FindRequest)
				req.Bucket = "bench"
				for {
					resp, err := n.find(context.Background(), req)
					if err != nil {
						b.Fatal(err)
					}
					clips += uint64(len(resp.Clips))
					reads += resp.EntriesRead
					if len(resp.NextPageToken) == 0 {
						break
					}
					req.PageToken = resp.NextPageToken
				}
				queries++
			}
			b.ReportMetric(float64(clips)/float64(queries), "clips/query")
			b.ReportMetric(float64(reads)/float64(queries), "entries-read/query")
			b.ReportMetric(float64(*listClips), "bucket-clips")
		})
	}
}

var planMembers = flag.Int("bench.plan-members", 200_000, "members of the dataset BenchmarkPlan pages through")

// BenchmarkPlan pages through rank 0 of 8's share of an epoch of a dataset
// of -bench.plan-members clips, 10,000 items a page. first-page asks for a
// new epoch each time (its share is computed: the order over the whole
// dataset, every member read); next-page asks for the later pages of an
// epoch whose share was computed (the plan cache).
func BenchmarkPlan(b *testing.B) {
	f := newBenchFSM(b)
	fillFSM(b, f, *planMembers, 10000, false)
	n := &Node{fsm: f}
	var members []*pb.DatasetMember
	after := ""
	for {
		resp, err := n.listClips(context.Background(), &pb.ListClipsRequest{Bucket: "bench", StartAfter: after, PageSize: 10000})
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range resp.Clips {
			members = append(members, &pb.DatasetMember{Key: c.Key, ClipId: c.ClipId, Generation: c.Generation})
		}
		if resp.NextStartAfter == "" {
			break
		}
		after = resp.NextStartAfter
	}
	index := f.appliedIndex()
	apply := func(cmd *pb.Command) {
		index++
		data, _ := proto.Marshal(cmd)
		for _, r := range f.ApplyBatch([]*raft.Log{{Index: index, Term: 1, Type: raft.LogCommand, Data: data}}) {
			if res, ok := r.(*applyResult); ok && res.err != nil {
				b.Fatal(res.err)
			}
		}
	}
	const batch = 50_000
	now := time.Now().UnixNano()
	apply(&pb.Command{ProposedUnixNano: now, Op: &pb.Command_CreateDataset{CreateDataset: &pb.CreateDatasetRequest{
		Name: "epochs", Bucket: "bench", Members: members[:min(batch, len(members))], CreatedUnixNano: now, Staged: true}}})
	for start := batch; start < len(members); start += batch {
		end := min(start+batch, len(members))
		apply(&pb.Command{ProposedUnixNano: now, Op: &pb.Command_ExtendDataset{ExtendDataset: &pb.ExtendDatasetRequest{
			Name: "epochs", Start: uint64(start), Members: members[start:end], Seal: end == len(members)}}})
	}
	if len(members) <= batch {
		apply(&pb.Command{ProposedUnixNano: now, Op: &pb.Command_ExtendDataset{ExtendDataset: &pb.ExtendDatasetRequest{
			Name: "epochs", Start: uint64(len(members)), Seal: true}}})
	}
	page := func(epoch, start uint64) *pb.PlanResponse {
		resp, err := n.plan(context.Background(), &pb.PlanRequest{Dataset: "epochs", Seed: 1, Epoch: epoch, World: 8,
			PageSize: 10000, PageStart: start})
		if err != nil {
			b.Fatal(err)
		}
		return resp
	}
	b.Run("first-page", func(b *testing.B) {
		epoch := uint64(1000)
		for b.Loop() {
			epoch++
			if resp := page(epoch, 0); len(resp.Items) == 0 {
				b.Fatal("an empty page")
			}
		}
	})
	b.Run("next-page", func(b *testing.B) {
		first := page(1, 0)
		for b.Loop() {
			if resp := page(1, first.Next); len(resp.Items) == 0 {
				b.Fatal("an empty page")
			}
		}
	})
}
