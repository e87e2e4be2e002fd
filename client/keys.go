package client

import (
	"context"
	"fmt"
	"strings"
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
	Grants    Policy // what it may do
	// ClusterAdmin: node lifecycle, members, repair limits, cluster
	// settings, keys and fsck.
	ClusterAdmin bool
}

// KeySpec is what CreateAccessKey makes.
type KeySpec struct {
	Name         string
	Grants       Policy // nothing on any bucket without one
	ClusterAdmin bool
}

func accessKeyFromProto(k *metapb.AccessKey) AccessKey {
	return AccessKey{ID: k.GetAccessKeyId(), Secret: k.GetSecretAccessKey(), Name: k.GetName(),
		Created: unixNano(k.GetCreatedUnixNano()), CreatedBy: k.GetCreatedBy(), Grants: policyFromProto(k.GetGrants()),
		ClusterAdmin: k.GetClusterAdmin()}
}

// Access is what a Grant allows on a bucket.
type Access int

// The accesses. Admin includes Read and Write; Read and Write are apart
// (an ingest pipeline may write without reading back).
const (
	AccessRead  Access = Access(metapb.Access_ACCESS_READ)  // get, head, list
	AccessWrite Access = Access(metapb.Access_ACCESS_WRITE) // put, delete, copy to, multipart uploads
	AccessAdmin Access = Access(metapb.Access_ACCESS_ADMIN) // the above, and create, delete and configure the bucket
)

func (a Access) String() string {
	switch a {
	case AccessRead:
		return "read"
	case AccessWrite:
		return "write"
	case AccessAdmin:
		return "admin"
	}
	return fmt.Sprintf("access(%d)", int(a))
}

// Grant allows an access on a bucket, or on every bucket (Bucket "*").
type Grant struct {
	Bucket string
	Access Access
}

func (g Grant) String() string { return g.Bucket + ":" + g.Access.String() }

// ParseGrant reads a grant as the CLI takes it: BUCKET:read, BUCKET:write
// or BUCKET:admin, BUCKET "*" for every bucket.
func ParseGrant(s string) (Grant, error) {
	b, a, ok := strings.Cut(s, ":")
	if !ok || b == "" {
		return Grant{}, fmt.Errorf("%w: grant %q: want BUCKET:read, BUCKET:write or BUCKET:admin (BUCKET * for every bucket)", ErrInvalidArgument, s)
	}
	for _, acc := range []Access{AccessRead, AccessWrite, AccessAdmin} {
		if a == acc.String() {
			return Grant{Bucket: b, Access: acc}, nil
		}
	}
	return Grant{}, fmt.Errorf("%w: grant %q: access %q is not read, write or admin", ErrInvalidArgument, s, a)
}

// Policy is the grants of a key: it allows what one of them allows.
type Policy []Grant

// Allows reports whether the policy allows access a on bucket.
func (p Policy) Allows(bucket string, a Access) bool {
	for _, g := range p {
		if (g.Bucket == "*" || g.Bucket == bucket) && (g.Access == a || g.Access == AccessAdmin) {
			return true
		}
	}
	return false
}

// AllowsAny reports whether the policy allows anything on bucket: the
// buckets a key is shown when it lists them.
func (p Policy) AllowsAny(bucket string) bool {
	for _, g := range p {
		if g.Bucket == "*" || g.Bucket == bucket {
			return true
		}
	}
	return false
}

func (p Policy) String() string {
	s := make([]string, len(p))
	for i, g := range p {
		s[i] = g.String()
	}
	return strings.Join(s, ",")
}

func policyFromProto(gs []*metapb.Grant) Policy {
	if len(gs) == 0 {
		return nil
	}
	p := make(Policy, len(gs))
	for i, g := range gs {
		p[i] = Grant{Bucket: g.GetBucket(), Access: Access(g.GetAccess())}
	}
	return p
}

func (p Policy) toProto() []*metapb.Grant {
	out := make([]*metapb.Grant, len(p))
	for i, g := range p {
		out[i] = &metapb.Grant{Bucket: g.Bucket, Access: metapb.Access(g.Access)}
	}
	return out
}

// CreateAccessKey makes a new key pair as spec says; the answer holds its
// secret, which meta never shows again.
func (c *Client) CreateAccessKey(ctx context.Context, spec KeySpec) (AccessKey, error) {
	req := &metapb.CreateAccessKeyRequest{RequestId: newRequestID(), Name: spec.Name, Grants: spec.Grants.toProto(),
		ClusterAdmin: spec.ClusterAdmin}
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

// SigningKey is what a gateway gets of an access key for one scope.
type SigningKey struct {
	Key    []byte // the SigV4 signing key of the scope
	Grants Policy // what the access key may do
}

// SigningKey asks meta for an access key's SigV4 signing key for one date
// (YYYYMMDD), region and service, and its grants, presenting
// Config.ClusterSecret: the S3 gateway's way to check signatures without
// ever holding a secret. An unknown key is ErrNotFound; a wrong or
// missing cluster secret ErrPermissionDenied.
func (c *Client) SigningKey(ctx context.Context, accessKey, date, region, service string) (SigningKey, error) {
	req := &metapb.SigningKeyRequest{AccessKeyId: accessKey, Date: date, Region: region, Service: service}
	resp, err := callMeta(ctx, c, "signing key", func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.SigningKeyResponse, error) {
		return mc.SigningKey(metadata.AppendToOutgoingContext(ctx, clusterSecretHeader, string(c.cfg.ClusterSecret)), req)
	})
	if err != nil {
		return SigningKey{}, err
	}
	return SigningKey{Key: resp.SigningKey, Grants: policyFromProto(resp.Grants)}, nil
}
