package client_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/sigv4"
	"github.com/clipstore/clipstore/meta"
)

// secretsKey is the meta members' secrets key file of the tests.
var secretsKey = []byte("secrets-key-of-the-tests-32-bytes-at-least")

// TestAccessKeys: a key's secret is shown once and stored only sealed;
// meta derives its signing key, with its grants, only for a caller
// holding the cluster secret; a deleted key is gone.
func TestAccessKeys(t *testing.T) {
	secret := []byte("cluster-secret-for-the-test")
	tc := newClusterWith(t, 0, client.Config{ClusterSecret: secret}, func(c *meta.Config) { c.ClusterSecret, c.SecretsKey = secret, secretsKey })
	ctx := t.Context()
	grants := []client.Grant{{Bucket: "raw", Access: client.AccessWrite}, {Bucket: "*", Access: client.AccessRead}}
	k, err := tc.client.CreateAccessKey(ctx, client.KeySpec{Name: "ingest pipeline", Grants: grants})
	if err != nil || len(k.ID) != 20 || len(k.Secret) != 40 || k.Name != "ingest pipeline" || k.Created.IsZero() ||
		k.Grants.String() != "raw:write,*:read" {
		t.Fatalf("create: %+v, %v", k, err)
	}
	keys, err := tc.client.ListAccessKeys(ctx)
	if err != nil || len(keys) != 1 || keys[0].ID != k.ID || keys[0].Secret != "" || keys[0].Grants.String() != "raw:write,*:read" {
		t.Fatalf("list: %+v, %v (want the key, without its secret)", keys, err)
	}
	got, err := tc.client.SigningKey(ctx, k.ID, "20261204", "us-east-1", "s3")
	if want := sigv4.DeriveKey(k.Secret, "20261204", "us-east-1", "s3"); err != nil || !bytes.Equal(got.Key, want) ||
		got.Grants.String() != "raw:write,*:read" {
		t.Fatalf("signing key: %x %v, %v; want %x", got.Key, got.Grants, err, want)
	}
	// The secret is nowhere in a member's files: Raft log, snapshots, state.
	for _, m := range tc.meta.Members {
		assertNotInFiles(t, m.Dir, k.Secret)
	}
	for _, bad := range [][]client.Grant{
		{{Bucket: "No_Such", Access: client.AccessRead}},
		{{Bucket: "raw", Access: client.Access(9)}},
	} {
		_, err := tc.client.CreateAccessKey(ctx, client.KeySpec{Name: "bad", Grants: bad})
		mustErr(t, err, client.ErrInvalidArgument)
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
	if want := sigv4.DeriveKey("root-secret-1", "20261204", "us-east-1", "s3"); err != nil || !bytes.Equal(got.Key, want) ||
		got.Grants.String() != "*:admin" {
		t.Fatalf("root signing key: %x %v, %v", got.Key, got.Grants, err)
	}
	// Without a secrets key, meta stores no secret at all.
	_, err = tc.client.CreateAccessKey(ctx, client.KeySpec{Name: "unsealed", Grants: client.Policy{{Bucket: "*", Access: client.AccessRead}}})
	mustErr(t, err, client.ErrPrecondition)
	keys, err := tc.client.ListAccessKeys(ctx)
	if err != nil || len(keys) != 1 || keys[0].ID != "ROOTKEY" || keys[0].Secret != "" {
		t.Fatalf("keys: %+v, %v", keys, err)
	}
	mustErr(t, tc.client.DeleteAccessKey(ctx, "ROOTKEY"), client.ErrPrecondition)
}

// assertNotInFiles fails if any file under dir holds s.
func assertNotInFiles(t *testing.T, dir, s string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(s)) {
			t.Errorf("%s holds a secret in the clear", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestParseGrant(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want client.Grant
		err  bool
	}{
		{in: "raw:read", want: client.Grant{Bucket: "raw", Access: client.AccessRead}},
		{in: "*:admin", want: client.Grant{Bucket: "*", Access: client.AccessAdmin}},
		{in: "train:write", want: client.Grant{Bucket: "train", Access: client.AccessWrite}},
		{in: "raw", err: true},
		{in: ":read", err: true},
		{in: "raw:rw", err: true},
	} {
		got, err := client.ParseGrant(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseGrant(%q) = %v, %v; want %v (error: %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestPolicyAllows(t *testing.T) {
	p := client.Policy{{Bucket: "raw", Access: client.AccessWrite}, {Bucket: "train", Access: client.AccessAdmin}, {Bucket: "*", Access: client.AccessRead}}
	for _, tc := range []struct {
		bucket string
		a      client.Access
		want   bool
	}{
		{"raw", client.AccessWrite, true},
		{"raw", client.AccessRead, true}, // by *:read
		{"raw", client.AccessAdmin, false},
		{"train", client.AccessWrite, true}, // admin includes write
		{"train", client.AccessAdmin, true},
		{"other", client.AccessRead, true},
		{"other", client.AccessWrite, false},
	} {
		if got := p.Allows(tc.bucket, tc.a); got != tc.want {
			t.Errorf("Allows(%s, %v) = %v, want %v", tc.bucket, tc.a, got, tc.want)
		}
	}
	if (client.Policy{{Bucket: "raw", Access: client.AccessWrite}}).Allows("raw", client.AccessRead) {
		t.Error("write allows read")
	}
	if client.Policy(nil).AllowsAny("raw") {
		t.Error("an empty policy allows something")
	}
}
