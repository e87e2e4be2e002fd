package client

import (
	"context"

	metapb "github.com/clipstore/clipstore/proto/metapb"
)

// CreateBucket creates a bucket whose clips use profile p by default (nil:
// the cluster's default). ErrExists if it exists already.
func (c *Client) CreateBucket(ctx context.Context, name string, p *Profile) error {
	return c.CreateBucketWith(ctx, name, BucketOptions{Profile: p})
}

// BucketOptions are a new bucket's settings; zero fields take the
// cluster's.
type BucketOptions struct {
	Profile  *Profile // the default profile of its clips
	ETagMode string   // the S3 gateway's ETags: ETagModeMD5 or ETagModeFast
}

// CreateBucketWith creates a bucket with options o. ErrExists if it
// exists already.
func (c *Client) CreateBucketWith(ctx context.Context, name string, o BucketOptions) error {
	prof, err := profileToProto(o.Profile)
	if err != nil {
		return err
	}
	req := &metapb.CreateBucketRequest{RequestId: newRequestID(), Name: name, DefaultProfile: prof}
	if o.ETagMode != "" {
		req.Settings = &metapb.Settings{EtagMode: o.ETagMode}
	}
	_, err = callMeta(ctx, c, "create bucket "+name, func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.CreateBucketResponse, error) {
		return mc.CreateBucket(ctx, req)
	})
	return err
}

// DeleteBucket deletes a bucket.
func (c *Client) DeleteBucket(ctx context.Context, name string) error {
	req := &metapb.DeleteBucketRequest{RequestId: newRequestID(), Name: name}
	_, err := callMeta(ctx, c, "delete bucket "+name, func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.DeleteBucketResponse, error) {
		return mc.DeleteBucket(ctx, req)
	})
	return err
}

// ListBuckets lists every bucket.
func (c *Client) ListBuckets(ctx context.Context) ([]BucketInfo, error) {
	resp, err := callMeta(ctx, c, "list buckets", func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.ListBucketsResponse, error) {
		return mc.ListBuckets(ctx, &metapb.ListBucketsRequest{})
	})
	if err != nil {
		return nil, err
	}
	out := make([]BucketInfo, 0, len(resp.Buckets))
	for _, b := range resp.Buckets {
		out = append(out, BucketInfo{Name: b.Name, Profile: profileFromProto(b.DefaultProfile), Created: unixNano(b.CreatedUnixNano),
			Settings: settingsFromProto(b.Settings)})
	}
	return out, nil
}

// ETag modes of the S3 gateway.
const (
	ETagModeMD5  = "md5"  // S3's: the MD5 of the bytes; of the parts' MD5s, "-N", for multipart
	ETagModeFast = "fast" // "<hex of the clip id>-1": unique per write, no hashing
)

// Settings are the cluster's settings or a bucket's; an empty field takes
// the level above (the cluster's, then the defaults).
type Settings struct {
	ETagMode string
}

func settingsFromProto(s *metapb.Settings) Settings { return Settings{ETagMode: s.GetEtagMode()} }

// SettingsInfo is what Settings answers.
type SettingsInfo struct {
	Cluster   Settings // the cluster's own
	Bucket    Settings // the bucket's own, when one was named
	Effective Settings // what applies
}

// Settings reads the cluster's settings (bucket "") or a bucket's,
// linearizably.
func (c *Client) Settings(ctx context.Context, bucket string) (SettingsInfo, error) {
	return c.settings(ctx, &metapb.SettingsRequest{Bucket: bucket})
}

// SetETagMode sets the S3 gateway's ETag mode of the cluster (bucket "")
// or of a bucket ("" there goes back to the cluster's).
func (c *Client) SetETagMode(ctx context.Context, bucket, mode string) (SettingsInfo, error) {
	return c.settings(ctx, &metapb.SettingsRequest{RequestId: newRequestID(), Bucket: bucket, EtagMode: &mode})
}

func (c *Client) settings(ctx context.Context, req *metapb.SettingsRequest) (SettingsInfo, error) {
	resp, err := callMeta(ctx, c, "settings", func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.SettingsResponse, error) {
		return mc.Settings(ctx, req)
	})
	if err != nil {
		return SettingsInfo{}, err
	}
	return SettingsInfo{Cluster: settingsFromProto(resp.Cluster), Bucket: settingsFromProto(resp.Bucket),
		Effective: settingsFromProto(resp.Effective)}, nil
}
