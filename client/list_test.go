package client_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/clipstore/clipstore/client"
)

// TestListFrom: a listing starts after startAfter, whether it is a key, a
// string between keys, before the prefix or past every key; it stops when
// the caller breaks off, and ranging again starts afresh; List is
// ListFrom from the start.
func TestListFrom(t *testing.T) {
	tc := newCluster(t, 6, client.Config{})
	tc.mkBucket("listfrom", &client.Profile{DataShards: 4, ParityShards: 2, BlockSize: testBlock})
	keys := []string{"a", "cam/1", "cam/2", "cam/2/x", "cam/3", "cam/é", "dog"}
	for _, k := range keys {
		if _, err := tc.client.Put(t.Context(), "listfrom", k, bytes.NewReader([]byte(k)), nil); err != nil {
			t.Fatal(err)
		}
	}
	collect := func(prefix, after string) []string {
		var got []string
		for e, err := range tc.client.ListFrom(t.Context(), "listfrom", prefix, after) {
			if err != nil {
				t.Fatalf("ListFrom(%q, %q): %v", prefix, after, err)
			}
			got = append(got, e.Key)
		}
		return got
	}
	for _, tt := range []struct {
		prefix, after string
		want          []string
	}{
		{"", "", keys},
		{"", "cam/2", []string{"cam/2/x", "cam/3", "cam/é", "dog"}},
		{"", "cam/25", []string{"cam/3", "cam/é", "dog"}},
		{"cam/", "", []string{"cam/1", "cam/2", "cam/2/x", "cam/3", "cam/é"}},
		{"cam/", "b", []string{"cam/1", "cam/2", "cam/2/x", "cam/3", "cam/é"}},
		{"cam/", "cam/2/x", []string{"cam/3", "cam/é"}},
		{"cam/", "cam/3", []string{"cam/é"}},
		{"cam/", "cam/\U0010FFFF", nil},
		{"", "dog", nil},
		{"", "zzz", nil},
	} {
		if got := collect(tt.prefix, tt.after); !slices.Equal(got, tt.want) {
			t.Errorf("ListFrom(prefix %q, after %q) = %q, want %q", tt.prefix, tt.after, got, tt.want)
		}
	}
	var all []string
	for e, err := range tc.client.List(t.Context(), "listfrom", "") {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, e.Key)
	}
	if !slices.Equal(all, keys) {
		t.Errorf("List = %q, want %q", all, keys)
	}
	seq, n := tc.client.ListFrom(t.Context(), "listfrom", "", "a"), 0
	for range seq {
		if n++; n == 2 {
			break
		}
	}
	var again []string
	for e, err := range seq { // a second range starts afresh
		if err != nil {
			t.Fatal(err)
		}
		again = append(again, e.Key)
	}
	if n != 2 || !slices.Equal(again, keys[1:]) {
		t.Errorf("after a break at %d entries, ranging again lists %q, want %q", n, again, keys[1:])
	}
	paged := client.ListPages(tc.client, t.Context(), "listfrom", "", 2)
	for i := range 2 { // pages of 2: the second range must not go on from the first's last page
		var got []string
		for e, err := range paged {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, e.Key)
		}
		if !slices.Equal(got, keys) {
			t.Errorf("range %d over a listing in pages of 2 = %q, want %q", i+1, got, keys)
		}
	}
	for _, err := range tc.client.ListFrom(t.Context(), "nosuch", "", "a") {
		mustErr(t, err, client.ErrNotFound)
	}
}
