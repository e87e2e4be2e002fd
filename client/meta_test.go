package client_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/clipstore/clipstore/client"
)

func TestErrors(t *testing.T) {
	tc := newCluster(t, 3, client.Config{})
	c := tc.client
	ctx := t.Context()
	p := client.Profile{DataShards: 1, ParityShards: 1, BlockSize: 4096}
	tc.mkBucket("errs", &p)
	mustErr(t, c.CreateBucket(ctx, "errs", nil), client.ErrExists)
	mustErr(t, c.CreateBucket(ctx, "No_Such", nil), client.ErrInvalidArgument)

	_, err := c.Put(ctx, "nobucket", "k", strings.NewReader("x"), nil)
	mustErr(t, err, client.ErrNotFound)
	_, err = c.Stat(ctx, "nobucket", "k")
	mustErr(t, err, client.ErrNotFound)
	_, err = c.Get(ctx, "nobucket", "k", &bytes.Buffer{}, nil)
	mustErr(t, err, client.ErrNotFound)
	_, err = c.Put(ctx, "errs", "", strings.NewReader("x"), nil)
	mustErr(t, err, client.ErrInvalidArgument)
	_, err = c.Put(ctx, "errs", strings.Repeat("k", 1025), strings.NewReader("x"), nil)
	mustErr(t, err, client.ErrInvalidArgument)
	_, err = c.Put(ctx, "errs", "k", strings.NewReader("x"), &client.PutOptions{Profile: &client.Profile{DataShards: 0, BlockSize: 1}})
	mustErr(t, err, client.ErrInvalidArgument)

	info, err := c.Put(ctx, "errs", "k", strings.NewReader("hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.Profile != p {
		t.Fatalf("bucket default profile not used: %v", info.Profile)
	}
	zero := uint64(0)
	_, err = c.Put(ctx, "errs", "k", strings.NewReader("again"), &client.PutOptions{IfGenerationMatch: &zero})
	mustErr(t, err, client.ErrPrecondition)
	gen := info.Generation
	if _, err := c.Put(ctx, "errs", "k", strings.NewReader("again"), &client.PutOptions{IfGenerationMatch: &gen}); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "errs", "k"); err != nil {
		t.Fatal(err)
	}
	_, err = c.Stat(ctx, "errs", "k")
	mustErr(t, err, client.ErrNotFound)
	mustErr(t, c.Delete(ctx, "errs", "k"), client.ErrNotFound)
	_, err = c.Open(ctx, "errs", "k")
	mustErr(t, err, client.ErrNotFound)

	buckets, err := c.ListBuckets(ctx)
	if err != nil || len(buckets) != 1 || buckets[0].Name != "errs" || buckets[0].Profile != p {
		t.Fatalf("buckets %+v, %v", buckets, err)
	}
	st, err := c.ClusterStatus(ctx)
	if err != nil || len(st.Members) != 1 || st.Leader == "" || len(st.Nodes) != 3 || st.NodesUp != 3 || st.Buckets != 1 {
		t.Fatalf("status %+v, %v", st, err)
	}
	for _, n := range st.Nodes {
		if !n.Up || n.Address == "" || n.Capacity == 0 || n.LastHeartbeat.IsZero() {
			t.Fatalf("node %+v", n)
		}
	}
	if err := c.DeleteBucket(ctx, "errs"); err != nil {
		t.Fatal(err)
	}
	mustErr(t, c.DeleteBucket(ctx, "errs"), client.ErrNotFound)
}

func TestList(t *testing.T) {
	tc := newCluster(t, 3, client.Config{})
	c := tc.client
	ctx := t.Context()
	tc.mkBucket("list", &client.Profile{DataShards: 1, ParityShards: 0, BlockSize: 4096})
	var want []string
	for i := range 23 {
		key := fmt.Sprintf("cam/%02d", i)
		if i%5 == 0 {
			key = fmt.Sprintf("other/%02d", i)
		} else {
			want = append(want, key)
		}
		if _, err := c.Put(ctx, "list", key, strings.NewReader(key), nil); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for e, err := range client.ListPages(c, ctx, "list", "cam/", 4) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Size != int64(len(e.Key)) || e.Generation == 0 || len(e.ClipID) != 32 {
			t.Fatalf("entry %+v", e)
		}
		got = append(got, e.Key)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	n := 0
	for _, err := range c.List(ctx, "list", "") {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break // stopping early is fine
		}
	}
	for _, err := range c.List(ctx, "nope", "") {
		mustErr(t, err, client.ErrNotFound)
	}
}
