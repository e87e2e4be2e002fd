package meta_test

import (
	"testing"

	"github.com/clipstore/clipstore/meta/metatest"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// TestSettings: the cluster's settings and a bucket's, set through any
// member (Raft), read back from every member, with a bucket's own over the
// cluster's over the default; bad values are refused and change nothing.
func TestSettings(t *testing.T) {
	c := metatest.New(t, 3, metatest.Options{})
	ctx := t.Context()
	c.WaitLeader()
	follower := c.Followers()[0].Client
	if _, err := follower.CreateBucket(ctx, &pb.CreateBucketRequest{Name: "plain"}); err != nil {
		t.Fatal(err)
	}
	if _, err := follower.CreateBucket(ctx, &pb.CreateBucketRequest{Name: "fast", Settings: &pb.Settings{EtagMode: "fast"}}); err != nil {
		t.Fatal(err)
	}
	effective := func(bucket string) string {
		t.Helper()
		resp, err := follower.Settings(ctx, &pb.SettingsRequest{Bucket: bucket})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Effective.GetEtagMode()
	}
	if got := effective(""); got != "md5" {
		t.Fatalf("the cluster's default: %q", got)
	}
	if a, b := effective("plain"), effective("fast"); a != "md5" || b != "fast" {
		t.Fatalf("plain %q, fast %q", a, b)
	}
	if _, err := follower.Settings(ctx, &pb.SettingsRequest{EtagMode: proto.String("fast")}); err != nil {
		t.Fatal(err)
	}
	if got := effective("plain"); got != "fast" {
		t.Fatalf("plain after the cluster went fast: %q", got)
	}
	if _, err := follower.Settings(ctx, &pb.SettingsRequest{Bucket: "fast", EtagMode: proto.String("md5")}); err != nil {
		t.Fatal(err)
	}
	if got := effective("fast"); got != "md5" {
		t.Fatalf("a bucket's own over the cluster's: %q", got)
	}
	if _, err := follower.Settings(ctx, &pb.SettingsRequest{Bucket: "fast", EtagMode: proto.String("")}); err != nil {
		t.Fatal(err)
	}
	if got := effective("fast"); got != "fast" {
		t.Fatalf("a bucket back to the cluster's: %q", got)
	}
	for _, tc := range []struct {
		name string
		req  *pb.SettingsRequest
		code codes.Code
	}{
		{"unknown mode", &pb.SettingsRequest{EtagMode: proto.String("sha1")}, codes.InvalidArgument},
		{"unknown bucket", &pb.SettingsRequest{Bucket: "nope", EtagMode: proto.String("md5")}, codes.NotFound},
		{"bad bucket name", &pb.SettingsRequest{Bucket: "No_Such"}, codes.InvalidArgument},
		{"read an unknown bucket", &pb.SettingsRequest{Bucket: "nope"}, codes.NotFound},
	} {
		if _, err := follower.Settings(ctx, tc.req); status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.code)
		}
	}
	if _, err := follower.CreateBucket(ctx, &pb.CreateBucketRequest{Name: "bad", Settings: &pb.Settings{EtagMode: "crc"}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a bucket with an unknown ETag mode: %v", err)
	}
	// Every member applied the same: stale reads of each agree.
	c.WaitConverged()
	for _, m := range c.Members {
		resp, err := m.Client.Settings(ctx, &pb.SettingsRequest{Bucket: "plain", Read: &pb.ReadOptions{Stale: true}})
		if err != nil || resp.Effective.GetEtagMode() != "fast" || resp.Cluster.GetEtagMode() != "fast" {
			t.Errorf("member %s: %v, %v", m.ID, resp, err)
		}
	}
}
