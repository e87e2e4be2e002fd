package meta_test

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/meta"
	"github.com/clipstore/clipstore/meta/metatest"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// completeParts records an upload of parts of the given sizes (their
// shards as the leader placed them, none written) and completes it.
func completeParts(t *testing.T, cl pb.MetaServiceClient, bucket, key string, sizes []uint64) *pb.ClipRecord {
	t.Helper()
	up, err := cl.CreateUpload(t.Context(), &pb.CreateUploadRequest{Bucket: bucket, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	id := up.Upload.UploadId
	done := &pb.CompleteUploadRequest{Bucket: bucket, Key: key, UploadId: id, Etag: "whole-etag",
		Checksums: map[string]string{"crc32c": "AAAAAA==-3"}}
	for i, size := range sizes {
		n := uint32(2*i + 1) // numbers skip, as S3 allows
		begin, err := cl.BeginPart(t.Context(), &pb.BeginPartRequest{Bucket: bucket, Key: key, UploadId: id, Number: n})
		if err != nil {
			t.Fatal(err)
		}
		c := commitFor(begin, bucket, key, size, nil)
		if _, err := cl.CommitPart(t.Context(), &pb.CommitPartRequest{Bucket: bucket, Key: key, UploadId: id, Number: n,
			CommitDeadlineUnixNano: begin.CommitDeadlineUnixNano, Size: size, Shards: c.Shards, Etag: fmt.Sprint("etag-", n)}); err != nil {
			t.Fatal(err)
		}
		done.Parts = append(done.Parts, &pb.CompletedPart{Number: n})
	}
	resp, err := cl.CompleteUpload(t.Context(), done)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Clip
}

// TestGetClipPages: GetClip with a PartSelector answers the parts that
// overlap a range, a page at most, or one part by position, with the
// record's own fields whole, from the leader, through a follower and
// stale; a selector it cannot use is InvalidArgument.
func TestGetClipPages(t *testing.T) {
	const page = 7
	c := metatest.New(t, 3, metatest.Options{Configure: func(cfg *meta.Config) { cfg.GetClipPageParts = page }})
	leader := c.WaitLeader()
	cl := leader.Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	registerNodes(t, cl, 6)
	// 23 parts of 1000 to 1022 bytes, two of them empty (4 and 15).
	var sizes []uint64
	for i := range 23 {
		sizes = append(sizes, uint64(1000+i))
	}
	sizes[4], sizes[15] = 0, 0
	whole := completeParts(t, cl, "bk1", "many", sizes)
	single := put(t, cl, "bk1", "one", 5000, nil).Clip
	var follower *metatest.Member
	for _, m := range c.Members {
		if m != leader {
			follower = m
		}
	}

	get := func(t *testing.T, m pb.MetaServiceClient, key string, sel *pb.PartSelector, stale bool) *pb.GetClipResponse {
		t.Helper()
		resp, err := m.GetClip(t.Context(), &pb.GetClipRequest{Bucket: "bk1", Key: key, Parts: sel, Read: &pb.ReadOptions{Stale: stale}})
		if err != nil {
			t.Fatalf("get %s with %v: %v", key, sel, err)
		}
		return resp
	}
	// want checks an answer: the record's fields whole, parts [first, first+n)
	// of the record, the paging fields, and the nodes of those parts only.
	want := func(t *testing.T, resp *pb.GetClipResponse, rec *pb.ClipRecord, first, n int, more bool) {
		t.Helper()
		got := proto.Clone(resp.Clip).(*pb.ClipRecord)
		got.Parts = nil
		wantRec := proto.Clone(rec).(*pb.ClipRecord)
		wantRec.Parts = nil
		if !proto.Equal(got, wantRec) {
			t.Fatalf("record fields %v, want %v", got, wantRec)
		}
		if int(resp.PartCount) != len(rec.Parts) || resp.MoreParts != more || len(resp.Clip.Parts) != n || (n > 0 && int(resp.FirstPart) != first) {
			t.Fatalf("parts %d from %d of %d, more %v; want %d from %d of %d, more %v",
				len(resp.Clip.Parts), resp.FirstPart, resp.PartCount, resp.MoreParts, n, first, len(rec.Parts), more)
		}
		used := map[string]bool{}
		for i, p := range resp.Clip.Parts {
			if !proto.Equal(p, rec.Parts[first+i]) {
				t.Fatalf("part %d: %v, want %v", first+i, p, rec.Parts[first+i])
			}
			for _, s := range p.Shards {
				used[s.NodeId] = true
			}
		}
		for _, node := range resp.Nodes {
			if !used[node.NodeId] {
				t.Fatalf("node %s listed, no part answered has a shard there", node.NodeId)
			}
			delete(used, node.NodeId)
		}
		if len(used) > 0 {
			t.Fatalf("nodes %v of the parts answered not listed", used)
		}
	}
	off := func(i int) int64 { return int64(whole.Parts[i].Offset) }
	length := func(n int64) *int64 { return &n }

	t.Run("no selector", func(t *testing.T) {
		resp := get(t, cl, "many", nil, false)
		if !proto.Equal(resp.Clip, whole) || resp.PartCount != 0 || resp.MoreParts {
			t.Fatalf("without a selector: %d parts, count %d, more %v", len(resp.Clip.Parts), resp.PartCount, resp.MoreParts)
		}
	})
	t.Run("pages", func(t *testing.T) {
		await.True(t, 10*time.Second, "the follower to apply the upload", func() bool {
			_, err := follower.Client.GetClip(t.Context(), &pb.GetClipRequest{Bucket: "bk1", Key: "many", Read: &pb.ReadOptions{Stale: true}})
			return err == nil
		})
		for _, m := range []struct {
			name   string
			client pb.MetaServiceClient
			stale  bool
		}{{"leader", cl, false}, {"follower", follower.Client, false}, {"stale", follower.Client, true}} {
			var parts []*pb.Part
			sel := &pb.PartSelector{}
			for {
				resp := get(t, m.client, "many", sel, m.stale)
				n := min(page, len(sizes)-len(parts))
				want(t, resp, whole, len(parts), n, len(parts)+n < len(sizes))
				parts = append(parts, resp.Clip.Parts...)
				if !resp.MoreParts {
					break
				}
				sel.FirstPart = resp.FirstPart + uint32(len(resp.Clip.Parts))
			}
			if len(parts) != len(sizes) {
				t.Fatalf("%s: paged through %d parts, want %d", m.name, len(parts), len(sizes))
			}
		}
	})
	t.Run("range", func(t *testing.T) {
		// From inside part 5 to inside part 9: parts 5..9.
		resp := get(t, cl, "many", &pb.PartSelector{Offset: off(5) + 10, Length: length(off(9) + 3 - off(5) - 10)}, false)
		want(t, resp, whole, 5, 5, false)
		// Exactly part 6 (its first byte to its last).
		want(t, get(t, cl, "many", &pb.PartSelector{Offset: off(6), Length: length(int64(sizes[6]))}, false), whole, 6, 1, false)
		// The last byte of part 3 and the first of part 5: the empty part 4 between them too.
		want(t, get(t, cl, "many", &pb.PartSelector{Offset: off(5) - 1, Length: length(2)}, false), whole, 3, 3, false)
		// From part 2 to the end: a page, then the rest from where it stopped.
		resp = get(t, cl, "many", &pb.PartSelector{Offset: off(2) + 1}, false)
		want(t, resp, whole, 2, page, true)
		resp = get(t, cl, "many", &pb.PartSelector{Offset: off(2) + 1, FirstPart: 9}, false)
		want(t, resp, whole, 9, page, true)
		// A range over many parts, fewer asked for than a page; more than a page asked for is a page.
		want(t, get(t, cl, "many", &pb.PartSelector{Offset: 0, Length: length(off(20)), MaxParts: 3}, false), whole, 0, 3, true)
		want(t, get(t, cl, "many", &pb.PartSelector{MaxParts: 100}, false), whole, 0, page, true)
		// An empty range, and ranges past the end: no parts.
		want(t, get(t, cl, "many", &pb.PartSelector{Offset: off(7), Length: length(0)}, false), whole, 0, 0, false)
		want(t, get(t, cl, "many", &pb.PartSelector{Offset: int64(whole.Size) + 1}, false), whole, 0, 0, false)
		want(t, get(t, cl, "many", &pb.PartSelector{Offset: int64(whole.Size), Length: length(100)}, false), whole, 0, 0, false)
		want(t, get(t, cl, "many", &pb.PartSelector{FirstPart: 23}, false), whole, 0, 0, false)
		// The last bytes: the last part.
		want(t, get(t, cl, "many", &pb.PartSelector{Offset: int64(whole.Size) - 1}, false), whole, 22, 1, false)
	})
	t.Run("position", func(t *testing.T) {
		want(t, get(t, cl, "many", &pb.PartSelector{Position: 1}, false), whole, 0, 1, false)
		want(t, get(t, cl, "many", &pb.PartSelector{Position: 5}, false), whole, 4, 1, false) // the empty part
		want(t, get(t, cl, "many", &pb.PartSelector{Position: 23}, false), whole, 22, 1, false)
		want(t, get(t, cl, "many", &pb.PartSelector{Position: 24}, false), whole, 0, 0, false)
		if n := get(t, cl, "many", &pb.PartSelector{Position: 12}, false).Clip.Parts[0].Number; n != 23 {
			t.Fatalf("position 12 is part number %d, want 23 (numbers skip)", n)
		}
	})
	t.Run("single part", func(t *testing.T) {
		want(t, get(t, cl, "one", &pb.PartSelector{}, false), single, 0, 1, false)
		want(t, get(t, cl, "one", &pb.PartSelector{Offset: 4000, Length: length(1 << 20)}, false), single, 0, 1, false)
		want(t, get(t, cl, "one", &pb.PartSelector{Position: 1}, false), single, 0, 1, false)
		want(t, get(t, cl, "one", &pb.PartSelector{Offset: 5000}, false), single, 0, 0, false)
	})
	t.Run("bad selectors", func(t *testing.T) {
		for _, bad := range []struct {
			sel  *pb.PartSelector
			want string
		}{
			{&pb.PartSelector{Offset: -1}, "negative offset -1"},
			{&pb.PartSelector{Length: length(-5)}, "negative length -5"},
			{&pb.PartSelector{Offset: 10, Length: length(math.MaxInt64 - 9)}, "overflows"},
			{&pb.PartSelector{Offset: math.MaxInt64, Length: length(1)}, "overflows"},
			{&pb.PartSelector{Position: 2, Offset: 10}, "position (2) chooses one part"},
			{&pb.PartSelector{Position: 2, MaxParts: 1}, "position (2) chooses one part"},
		} {
			for _, m := range []pb.MetaServiceClient{cl, follower.Client} {
				_, err := m.GetClip(t.Context(), &pb.GetClipRequest{Bucket: "bk1", Key: "many", Parts: bad.sel})
				wantCode(t, err, codes.InvalidArgument)
				if !strings.Contains(err.Error(), bad.want) {
					t.Fatalf("%v: error %q does not say %q", bad.sel, err, bad.want)
				}
			}
		}
		// The largest range that fits is fine.
		want(t, get(t, cl, "many", &pb.PartSelector{Offset: 10, Length: length(math.MaxInt64 - 10)}, false), whole, 0, page, true)
	})
}
