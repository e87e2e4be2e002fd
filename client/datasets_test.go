package client_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/clipstore/clipstore/client"
)

// TestDatasetSeries: a dataset larger than one entry is made by a series
// (staged, appended, sealed) and reads back whole, in order; its pinned
// generations read back after their keys are overwritten.
func TestDatasetSeries(t *testing.T) {
	defer client.SetDatasetBatch(4)()
	tc := newCluster(t, 6, client.Config{})
	ctx := t.Context()
	if err := tc.client.CreateBucket(ctx, "series", nil); err != nil {
		t.Fatal(err)
	}
	var keys []string
	gens := map[string]uint64{}
	for i := range 11 {
		key := fmt.Sprintf("k%02d", i)
		info, err := tc.client.Put(ctx, "series", key, bytes.NewReader([]byte(key)), nil)
		if err != nil {
			t.Fatal(err)
		}
		keys, gens[key] = append(keys, key), info.Generation
	}
	ds, err := tc.client.CreateDataset(ctx, client.DatasetSpec{Name: "series-v1", Bucket: "series", Keys: keys})
	if err != nil || ds.Members != 11 {
		t.Fatalf("create: %+v, %v", ds, err)
	}
	i := 0
	for m, err := range tc.client.DatasetMembers(ctx, "series-v1") {
		if err != nil || m.Key != keys[i] || m.Generation != gens[m.Key] {
			t.Fatalf("member %d: %+v, %v", i, m, err)
		}
		i++
	}
	if i != 11 {
		t.Fatalf("%d members, want 11", i)
	}
	for _, k := range keys {
		if _, err := tc.client.Put(ctx, "series", k, bytes.NewReader([]byte("new")), nil); err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if _, err := tc.client.Get(ctx, "series", k, &got, &client.GetOptions{Generation: gens[k]}); err != nil || got.String() != k {
			t.Fatalf("%s at its pinned generation: %q, %v", k, got.String(), err)
		}
	}
	// A second series of the same name fails at its first batch and
	// changes nothing.
	if _, err := tc.client.CreateDataset(ctx, client.DatasetSpec{Name: "series-v1", Bucket: "series", Keys: keys}); err == nil {
		t.Fatal("a second dataset of the same name")
	}
	if ds, err := tc.client.DatasetInfo(ctx, "series-v1"); err != nil || ds.Members != 11 {
		t.Fatalf("after the refused series: %+v, %v", ds, err)
	}
}
