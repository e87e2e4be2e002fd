package client_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/sigv4"
	"github.com/clipstore/clipstore/meta"
)

// TestAccessKeys: a key's secret is shown once; meta derives its signing
// key only for a caller holding the cluster secret; a deleted key is gone.
func TestAccessKeys(t *testing.T) {
	secret := []byte("cluster-secret-for-the-test")
	tc := newClusterWith(t, 0, client.Config{ClusterSecret: secret}, func(c *meta.Config) { c.ClusterSecret = secret })
	ctx := t.Context()
	k, err := tc.client.CreateAccessKey(ctx, "ingest pipeline")
	if err != nil || len(k.ID) != 20 || len(k.Secret) != 40 || k.Name != "ingest pipeline" || k.Created.IsZero() {
		t.Fatalf("create: %+v, %v", k, err)
	}
	keys, err := tc.client.ListAccessKeys(ctx)
	if err != nil || len(keys) != 1 || keys[0].ID != k.ID || keys[0].Secret != "" {
		t.Fatalf("list: %+v, %v (want the key, without its secret)", keys, err)
	}
	got, err := tc.client.SigningKey(ctx, k.ID, "20261204", "us-east-1", "s3")
	if want := sigv4.DeriveKey(k.Secret, "20261204", "us-east-1", "s3"); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("signing key: %x, %v; want %x", got, err, want)
	}
	for _, tcase := range []struct {
		name             string
		secret           []byte
		id, date, region string
		want             error
	}{
		{"no cluster secret", nil, k.ID, "20261204", "us-east-1", client.ErrPermissionDenied},
		{"a wrong cluster secret", []byte("guess"), k.ID, "20261204", "us-east-1", client.ErrPermissionDenied},
		{"an unknown key", secret, "CSAAAAAAAAAAAAAAAAAA", "20261204", "us-east-1", client.ErrNotFound},
		{"a malformed date", secret, k.ID, "2026-12-04", "us-east-1", client.ErrInvalidArgument},
		{"a malformed region", secret, k.ID, "20261204", "US EAST", client.ErrInvalidArgument},
	} {
		t.Run(tcase.name, func(t *testing.T) {
			c, err := client.New(context.Background(), client.Config{Meta: []string{tc.meta.Members[0].GRPCAddr}, ClusterSecret: tcase.secret})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.SigningKey(ctx, tcase.id, tcase.date, tcase.region, "s3")
			mustErr(t, err, tcase.want)
		})
	}
	if err := tc.client.DeleteAccessKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	_, err = tc.client.SigningKey(ctx, k.ID, "20261204", "us-east-1", "s3")
	mustErr(t, err, client.ErrNotFound)
	mustErr(t, tc.client.DeleteAccessKey(ctx, k.ID), client.ErrNotFound)
}

// TestRootKey: a root key from the configuration signs from the first
// start, is listed without its secret, and cannot be deleted.
func TestRootKey(t *testing.T) {
	secret := []byte("cluster-secret-for-the-test")
	tc := newClusterWith(t, 0, client.Config{ClusterSecret: secret}, func(c *meta.Config) {
		c.ClusterSecret, c.RootAccessKey, c.RootSecretKey = secret, "ROOTKEY", "root-secret-1"
	})
	ctx := t.Context()
	got, err := tc.client.SigningKey(ctx, "ROOTKEY", "20261204", "us-east-1", "s3")
	if want := sigv4.DeriveKey("root-secret-1", "20261204", "us-east-1", "s3"); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("root signing key: %x, %v", got, err)
	}
	keys, err := tc.client.ListAccessKeys(ctx)
	if err != nil || len(keys) != 1 || keys[0].ID != "ROOTKEY" || keys[0].Secret != "" {
		t.Fatalf("keys: %+v, %v", keys, err)
	}
	mustErr(t, tc.client.DeleteAccessKey(ctx, "ROOTKEY"), client.ErrPrecondition)
}
