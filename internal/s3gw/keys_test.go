package s3gw

import (
	"bytes"
	"context"
	"errors"
	"github.com/clipstore/clipstore/client"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/sigv4"
)

// fakeKeys is a KeyFunc that counts its calls and can be made to fail or
// to block.
type fakeKeys struct {
	calls atomic.Int32
	fail  error
	gate  chan struct{} // if set, each call waits for it
}

func (f *fakeKeys) key(_ context.Context, accessKey, date, region, service string) (client.SigningKey, error) {
	f.calls.Add(1)
	if f.gate != nil {
		<-f.gate
	}
	if f.fail != nil {
		return client.SigningKey{}, f.fail
	}
	return client.SigningKey{Key: sigv4.DeriveKey("secret-of-"+accessKey, date, region, service),
		Grants: client.Policy{{Bucket: "b-" + accessKey, Access: client.AccessRead}}}, nil
}

func TestKeyCache(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 5, 1, 23, 55, 0, 0, time.UTC)
	f := &fakeKeys{}
	c := NewKeyCache(f.key, 10*time.Minute, func() time.Time { return now })
	get := func(accessKey, date string) []byte {
		t.Helper()
		k, err := c.Key(ctx, accessKey, date, "us-east-1", "s3")
		if err != nil {
			t.Fatal(err)
		}
		if !k.Grants.Allows("b-"+accessKey, client.AccessRead) || k.Grants.Allows("b-"+accessKey, client.AccessWrite) {
			t.Fatalf("%s's grants: %v", accessKey, k.Grants)
		}
		return k.Key
	}
	k1 := get("AK1", "20260501")
	if !bytes.Equal(k1, sigv4.DeriveKey("secret-of-AK1", "20260501", "us-east-1", "s3")) || f.calls.Load() != 1 {
		t.Fatalf("first key: %x after %d fetches", k1, f.calls.Load())
	}
	get("AK1", "20260501")
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("a cached key was fetched again: %d fetches", n)
	}
	// Another date (the next day's requests) is another key; so is
	// another access key.
	if k2 := get("AK1", "20260502"); bytes.Equal(k1, k2) || f.calls.Load() != 2 {
		t.Fatalf("the next date's key: %d fetches, same key %v", f.calls.Load(), bytes.Equal(k1, k2))
	}
	get("AK2", "20260501")
	if n := f.calls.Load(); n != 3 {
		t.Fatalf("another access key: %d fetches, want 3", n)
	}
	// A key is kept for the TTL, no longer: a deleted access key stops
	// working within it.
	now = now.Add(10 * time.Minute)
	get("AK1", "20260501")
	if n := f.calls.Load(); n != 4 {
		t.Fatalf("a key past its TTL: %d fetches, want 4", n)
	}
	f.fail = sigv4.ErrUnknownAccessKey
	now = now.Add(10 * time.Minute)
	for range 2 { // errors are not cached
		if _, err := c.Key(ctx, "AK1", "20260501", "us-east-1", "s3"); !errors.Is(err, sigv4.ErrUnknownAccessKey) {
			t.Fatalf("a revoked key: %v", err)
		}
	}
	if n := f.calls.Load(); n != 6 {
		t.Fatalf("after two failed fetches: %d fetches, want 6", n)
	}
}

// TestKeyCacheSharesFetches: concurrent requests for a key not cached wait
// for one fetch; one that gives up leaves the fetch to the others.
func TestKeyCacheSharesFetches(t *testing.T) {
	f := &fakeKeys{gate: make(chan struct{})}
	c := NewKeyCache(f.key, 0, nil)
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Key(gone, "AK", "20260501", "us-east-1", "s3"); !errors.Is(err, context.Canceled) {
		t.Fatalf("a caller whose context ended: %v", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { _, errs[i] = c.Key(t.Context(), "AK", "20260501", "us-east-1", "s3") })
	}
	time.Sleep(20 * time.Millisecond) // let them queue behind the fetch
	close(f.gate)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("%d fetches for 9 concurrent requests of one key", n)
	}
}
