package client

import (
	"context"

	metapb "github.com/clipstore/clipstore/proto/metapb"
)

// CreateBucket creates a bucket whose clips use profile p by default (nil:
// the cluster's default). ErrExists if it exists already.
func (c *Client) CreateBucket(ctx context.Context, name string, p *Profile) error {
	prof, err := profileToProto(p)
	if err != nil {
		return err
	}
	req := &metapb.CreateBucketRequest{RequestId: newRequestID(), Name: name, DefaultProfile: prof}
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
		out = append(out, BucketInfo{Name: b.Name, Profile: profileFromProto(b.DefaultProfile), Created: unixNano(b.CreatedUnixNano)})
	}
	return out, nil
}
