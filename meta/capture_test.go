package meta_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/clipstore/clipstore/meta"
	"github.com/clipstore/clipstore/meta/metatest"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"google.golang.org/grpc/codes"
)

// findClip is a clip of TestFind and what it was captured as.
type findClip struct {
	key     string
	capture *pb.CaptureAttributes
}

// TestFind: Find answers exactly the current clips a brute-force filter of
// the records selects (any vehicle, any camera, every tag, the prefix, an
// overlapping time range), in capture start order, through pages of any
// size; an overwritten or deleted clip is gone from it; a selective query
// reads index entries in proportion to its most selective filter, not to
// the bucket; bad requests are refused.
func TestFind(t *testing.T) {
	c := metatest.New(t, 3, metatest.Options{Configure: func(cfg *meta.Config) { cfg.MaxCaptureDuration = time.Hour }})
	c.WaitLeader()
	cl := c.Followers()[0].Client // forwarded: linearizable reads through a follower
	ctx := t.Context()
	if _, err := cl.CreateBucket(ctx, &pb.CreateBucketRequest{Name: "fleet"}); err != nil {
		t.Fatal(err)
	}
	heartbeatingNodes(t, cl, 6)
	base := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC).UnixNano()
	min := int64(time.Minute)
	var clips []findClip
	commit := func(key string, capture *pb.CaptureAttributes) {
		t.Helper()
		begin, err := cl.BeginPut(ctx, &pb.BeginPutRequest{Bucket: "fleet", Key: key})
		if err != nil {
			t.Fatal(err)
		}
		req := commitFor(begin, "fleet", key, 1000, nil)
		req.Capture = capture
		if _, err := cl.CommitPut(ctx, req); err != nil {
			t.Fatalf("commit %s: %v", key, err)
		}
	}
	for i := range 300 {
		vehicle, camera := fmt.Sprintf("v%02d", i%30), []string{"front", "rear", "left"}[i%3]
		var tags []string
		if i%7 == 0 {
			tags = append(tags, "rain")
		}
		if i%50 == 0 {
			tags = append(tags, "collision")
		}
		if i%2 == 0 {
			tags = append(tags, "night")
		}
		start := base + int64(i%100)*10*min + int64(i/100)*min // out of key order
		cap := &pb.CaptureAttributes{VehicleId: vehicle, Camera: camera, StartUnixNano: start, EndUnixNano: start + int64(i%4)*15*min, Tags: tags}
		key := fmt.Sprintf("%s/%s/%03d.mp4", vehicle, camera, i)
		commit(key, cap)
		clips = append(clips, findClip{key, cap})
	}
	// Clips without capture attributes are never found.
	commit("plain/clip.bin", nil)
	// Overwritten: only the new capture is found. Deleted: gone.
	commit(clips[3].key, &pb.CaptureAttributes{VehicleId: "v99", Camera: "front", StartUnixNano: base, EndUnixNano: base + min})
	clips[3].capture = &pb.CaptureAttributes{VehicleId: "v99", Camera: "front", StartUnixNano: base, EndUnixNano: base + min}
	if _, err := cl.DeleteClip(ctx, &pb.DeleteClipRequest{Bucket: "fleet", Key: clips[4].key}); err != nil {
		t.Fatal(err)
	}
	clips = slices.Delete(clips, 4, 5)

	want := func(req *pb.FindRequest) []string {
		var out []findClip
		for _, c := range clips {
			cp := c.capture
			if (len(req.Vehicles) > 0 && !slices.Contains(req.Vehicles, cp.VehicleId)) ||
				(len(req.Cameras) > 0 && !slices.Contains(req.Cameras, cp.Camera)) || len(c.key) < len(req.Prefix) || c.key[:len(req.Prefix)] != req.Prefix {
				continue
			}
			all := true
			for _, tag := range req.Tags {
				all = all && slices.Contains(cp.Tags, tag)
			}
			if !all || (req.ToUnixNano != 0 && cp.StartUnixNano > req.ToUnixNano) || (req.FromUnixNano != 0 && cp.EndUnixNano < req.FromUnixNano) {
				continue
			}
			out = append(out, c)
		}
		slices.SortStableFunc(out, func(a, b findClip) int {
			if a.capture.StartUnixNano != b.capture.StartUnixNano {
				return int((a.capture.StartUnixNano - b.capture.StartUnixNano) / min)
			}
			return 0
		})
		keys := make([]string, len(out))
		for i, c := range out {
			keys[i] = c.key
		}
		return keys
	}
	find := func(req *pb.FindRequest) (keys []string, reads uint64) {
		t.Helper()
		for {
			resp, err := cl.Find(ctx, req)
			if err != nil {
				t.Fatalf("find %v: %v", req, err)
			}
			for i, e := range resp.Clips {
				keys = append(keys, e.Key)
				if i > 0 && e.Capture.StartUnixNano < resp.Clips[i-1].Capture.StartUnixNano {
					t.Fatalf("find %v: not in capture order at %s", req, e.Key)
				}
			}
			reads += resp.EntriesRead
			if len(resp.NextPageToken) == 0 {
				return keys, reads
			}
			req.PageToken = resp.NextPageToken
		}
	}
	sameSet := func(a, b []string) bool {
		return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
	}
	for _, tc := range []struct {
		name string
		req  *pb.FindRequest
	}{
		{"everything", &pb.FindRequest{}},
		{"one vehicle", &pb.FindRequest{Vehicles: []string{"v07"}}},
		{"two vehicles, one camera", &pb.FindRequest{Vehicles: []string{"v07", "v12"}, Cameras: []string{"rear"}}},
		{"a tag", &pb.FindRequest{Tags: []string{"rain"}}},
		{"two tags", &pb.FindRequest{Tags: []string{"rain", "night"}}},
		{"the overwritten capture", &pb.FindRequest{Vehicles: []string{"v99"}}},
		{"the overwritten one's old vehicle", &pb.FindRequest{Vehicles: []string{"v03"}, Prefix: "v03/front/003"}},
		{"a time range", &pb.FindRequest{FromUnixNano: base + 95*min, ToUnixNano: base + 130*min}},
		{"from only", &pb.FindRequest{FromUnixNano: base + 900*min}},
		{"to only", &pb.FindRequest{ToUnixNano: base + 20*min}},
		{"a range and filters", &pb.FindRequest{Cameras: []string{"front"}, Tags: []string{"night"}, FromUnixNano: base + 200*min, ToUnixNano: base + 600*min}},
		{"a prefix", &pb.FindRequest{Prefix: "v1", Cameras: []string{"left"}}},
		{"nothing matches", &pb.FindRequest{Vehicles: []string{"v07"}, Tags: []string{"collision"}}},
		{"an unknown vehicle", &pb.FindRequest{Vehicles: []string{"nobody"}}},
	} {
		for _, limit := range []uint32{0, 1, 7} {
			req := &pb.FindRequest{Bucket: "fleet", Vehicles: tc.req.Vehicles, Cameras: tc.req.Cameras, Tags: tc.req.Tags,
				FromUnixNano: tc.req.FromUnixNano, ToUnixNano: tc.req.ToUnixNano, Prefix: tc.req.Prefix, Limit: limit}
			got, _ := find(req)
			if w := want(tc.req); !sameSet(got, w) || len(got) != len(w) {
				t.Errorf("%s (pages of %d): %d clips %v, want %d %v", tc.name, limit, len(got), got, len(w), w)
			}
		}
	}
	// Selective: v07 has 10 clips, collision 6, in a bucket of 300; the
	// query reads about the smaller, whatever the order of the filters.
	for _, req := range []*pb.FindRequest{
		{Bucket: "fleet", Vehicles: []string{"v00"}, Tags: []string{"collision"}},
		{Bucket: "fleet", Tags: []string{"collision", "night"}},
	} {
		keys, reads := find(req)
		if len(keys) == 0 || reads > 40 {
			t.Errorf("find %v: %d clips reading %d index entries; want some, reading at most 40", req, len(keys), reads)
		}
	}
	for _, tc := range []struct {
		name string
		req  *pb.FindRequest
		code codes.Code
	}{
		{"no bucket", &pb.FindRequest{}, codes.InvalidArgument},
		{"unknown bucket", &pb.FindRequest{Bucket: "nope"}, codes.NotFound},
		{"empty value", &pb.FindRequest{Bucket: "fleet", Vehicles: []string{""}}, codes.InvalidArgument},
		{"range backwards", &pb.FindRequest{Bucket: "fleet", FromUnixNano: 2, ToUnixNano: 1}, codes.InvalidArgument},
		{"bad token", &pb.FindRequest{Bucket: "fleet", PageToken: []byte{1, 2}}, codes.InvalidArgument},
	} {
		_, err := cl.Find(ctx, tc.req)
		wantCode(t, err, tc.code)
	}
	// A capture longer than the cluster allows is refused.
	begin, err := cl.BeginPut(ctx, &pb.BeginPutRequest{Bucket: "fleet", Key: "long"})
	if err != nil {
		t.Fatal(err)
	}
	req := commitFor(begin, "fleet", "long", 1000, nil)
	req.Capture = &pb.CaptureAttributes{StartUnixNano: base, EndUnixNano: base + 2*int64(time.Hour)}
	_, err = cl.CommitPut(ctx, req)
	wantCode(t, err, codes.InvalidArgument)
}
