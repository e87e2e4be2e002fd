package client

import (
	"context"
	"time"

	metapb "github.com/clipstore/clipstore/proto/metapb"
	"google.golang.org/grpc/metadata"
)

// clusterSecretHeader is the metadata key meta reads the cluster secret
// from (meta.ClusterSecretHeader).
const clusterSecretHeader = "clipstore-cluster-secret"

// AccessKey is a principal's key pair: what S3 tools sign requests with.
type AccessKey struct {
	ID     string // the access key id
	Secret string // only from CreateAccessKey: it is never shown again
	Name   string
	// Created is when it was made, CreatedBy who asked (an address).
	Created   time.Time
	CreatedBy string
}

func accessKeyFromProto(k *metapb.AccessKey) AccessKey {
	return AccessKey{ID: k.GetAccessKeyId(), Secret: k.GetSecretAccessKey(), Name: k.GetName(),
		Created: unixNano(k.GetCreatedUnixNano()), CreatedBy: k.GetCreatedBy()}
}

// CreateAccessKey makes a new key pair named name; the answer holds its
// secret, which meta never shows again.
func (c *Client) CreateAccessKey(ctx context.Context, name string) (AccessKey, error) {
	req := &metapb.CreateAccessKeyRequest{RequestId: newRequestID(), Name: name}
	resp, err := callMeta(ctx, c, "create access key", func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.CreateAccessKeyResponse, error) {
		return mc.CreateAccessKey(ctx, req)
	})
	if err != nil {
		return AccessKey{}, err
	}
	return accessKeyFromProto(resp.Key), nil
}

// ListAccessKeys lists the keys, without their secrets.
func (c *Client) ListAccessKeys(ctx context.Context) ([]AccessKey, error) {
	resp, err := callMeta(ctx, c, "list access keys", func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.ListAccessKeysResponse, error) {
		return mc.ListAccessKeys(ctx, &metapb.ListAccessKeysRequest{})
	})
	if err != nil {
		return nil, err
	}
	out := make([]AccessKey, 0, len(resp.Keys))
	for _, k := range resp.Keys {
		out = append(out, accessKeyFromProto(k))
	}
	return out, nil
}

// DeleteAccessKey deletes a key: requests signed with it fail from then
// on (gateways cache signing keys for at most a few minutes).
func (c *Client) DeleteAccessKey(ctx context.Context, id string) error {
	req := &metapb.DeleteAccessKeyRequest{RequestId: newRequestID(), AccessKeyId: id}
	_, err := callMeta(ctx, c, "delete access key "+id, func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.DeleteAccessKeyResponse, error) {
		return mc.DeleteAccessKey(ctx, req)
	})
	return err
}

// SigningKey asks meta for an access key's SigV4 signing key for one date
// (YYYYMMDD), region and service, presenting Config.ClusterSecret: the
// S3 gateway's way to check signatures without ever holding a secret. An
// unknown key is ErrNotFound; a wrong or missing cluster secret
// ErrPermissionDenied.
func (c *Client) SigningKey(ctx context.Context, accessKey, date, region, service string) ([]byte, error) {
	req := &metapb.SigningKeyRequest{AccessKeyId: accessKey, Date: date, Region: region, Service: service}
	resp, err := callMeta(ctx, c, "signing key", func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.SigningKeyResponse, error) {
		return mc.SigningKey(metadata.AppendToOutgoingContext(ctx, clusterSecretHeader, string(c.cfg.ClusterSecret)), req)
	})
	if err != nil {
		return nil, err
	}
	return resp.SigningKey, nil
}
