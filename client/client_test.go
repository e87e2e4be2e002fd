package client_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"

	"github.com/clipstore/clipstore/client"
)

const testBlock = 64 << 10

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func getBytes(t testing.TB, c *client.Client, bucket, key string) ([]byte, *client.ClipInfo, error) {
	t.Helper()
	var buf bytes.Buffer
	info, err := c.Get(t.Context(), bucket, key, &buf, nil)
	return buf.Bytes(), info, err
}

func TestRoundTrip(t *testing.T) {
	tc := newCluster(t, 6, client.Config{})
	profiles := []client.Profile{
		{DataShards: 4, ParityShards: 2, BlockSize: testBlock},
		{DataShards: 2, ParityShards: 1, BlockSize: testBlock},
		{DataShards: 1, ParityShards: 0, BlockSize: testBlock},
	}
	sizes := []int{0, 1, testBlock - 1, testBlock, testBlock + 1, 3<<20 + 12345}
	for _, p := range profiles {
		bucket := fmt.Sprintf("rt-%d-%d", p.DataShards, p.ParityShards)
		tc.mkBucket(bucket, &p)
		for _, size := range sizes {
			t.Run(fmt.Sprintf("%v/%d", p, size), func(t *testing.T) {
				data := randBytes(uint64(size), size)
				key := fmt.Sprintf("clip-%d", size)
				var progress int64
				opts := &client.PutOptions{ContentType: "video/mp4", Metadata: map[string]string{"a": "b"},
					Progress: func(n int64) { progress = n }}
				info, err := tc.client.Put(t.Context(), bucket, key, bytes.NewReader(data), opts)
				if err != nil {
					t.Fatal(err)
				}
				if info.Size != int64(size) || info.Profile != p || len(info.Shards) != p.DataShards+p.ParityShards || progress != int64(size) {
					t.Fatalf("put info %+v (progress %d)", info, progress)
				}
				for _, s := range info.Shards {
					if s.State != client.ShardOK {
						t.Fatalf("shard %d is %v", s.Index, s.State)
					}
				}
				got, ginfo, err := getBytes(t, tc.client, bucket, key)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("get returned %d bytes differing from the %d put", len(got), len(data))
				}
				if ginfo.Generation != info.Generation || ginfo.ContentType != "video/mp4" || ginfo.Metadata["a"] != "b" {
					t.Fatalf("get info %+v", ginfo)
				}
			})
		}
	}
}

// TestUnknownLength puts from readers that do not know their length: a pipe
// fed in odd-sized writes and a one-byte-at-a-time reader.
func TestUnknownLength(t *testing.T) {
	tc := newCluster(t, 6, client.Config{})
	p := client.Profile{DataShards: 4, ParityShards: 2, BlockSize: testBlock}
	tc.mkBucket("pipes", &p)
	data := randBytes(7, 5*testBlock+777)
	pr, pw := io.Pipe()
	go func() {
		rest := data
		for len(rest) > 0 {
			n := min(len(rest), 1000+len(rest)%7919)
			pw.Write(rest[:n])
			rest = rest[n:]
		}
		pw.Close()
	}()
	if _, err := tc.client.Put(t.Context(), "pipes", "pipe", pr, nil); err != nil {
		t.Fatal(err)
	}
	small := data[:3000]
	if _, err := tc.client.Put(t.Context(), "pipes", "one-byte", iotest.OneByteReader(bytes.NewReader(small)), nil); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string][]byte{"pipe": data, "one-byte": small} {
		got, _, err := getBytes(t, tc.client, "pipes", key)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes, err %v", key, len(got), err)
		}
	}
	// A reader that fails makes the put fail, and nothing is committed.
	_, err := tc.client.Put(t.Context(), "pipes", "broken", io.MultiReader(bytes.NewReader(data[:2*testBlock]), iotest.ErrReader(io.ErrClosedPipe)), nil)
	mustErr(t, err, io.ErrClosedPipe)
	_, err = tc.client.Stat(t.Context(), "pipes", "broken")
	mustErr(t, err, client.ErrNotFound)

	// A writer that takes less than it is given without saying why fails
	// the get, rather than leaving a short copy that looks complete.
	_, err = tc.client.Get(t.Context(), "pipes", "pipe", shortWriter{}, nil)
	mustErr(t, err, io.ErrShortWrite)
}

// shortWriter breaks io.Writer's contract: it takes half of every write
// and reports no error.
type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }
