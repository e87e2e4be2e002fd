package client_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/clipstore/clipstore/client"
)

// BenchmarkRead reads a 16 MiB clip from an in-process cluster (4+2,
// 1 MiB blocks): whole with Get, sequentially with Read, and in 256 KiB
// pieces with ReadAt at random offsets; of one part (Put) and of four
// (a multipart upload).
func BenchmarkRead(b *testing.B) {
	tc := newCluster(b, 6, client.Config{})
	p := client.Profile{DataShards: 4, ParityShards: 2, BlockSize: 1 << 20}
	tc.mkBucket("bench", &p)
	const size = 16 << 20
	data := randBytes(1, size)
	if _, err := tc.client.Put(b.Context(), "bench", "single", bytes.NewReader(data), nil); err != nil {
		b.Fatal(err)
	}
	putParts(b, tc, "bench", "multi", data, 4)
	for _, key := range []string{"single", "multi"} {
		b.Run(key+"/Get", func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				if _, err := tc.client.Get(b.Context(), "bench", key, io.Discard, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(key+"/Read", func(b *testing.B) {
			b.SetBytes(size)
			buf := make([]byte, 32<<10)
			for b.Loop() {
				r, err := tc.client.Open(b.Context(), "bench", key)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf); err != nil {
					b.Fatal(err)
				}
				r.Close()
			}
		})
		b.Run(key+"/ReadAt", func(b *testing.B) {
			r, err := tc.client.Open(b.Context(), "bench", key)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			const n = 256 << 10
			b.SetBytes(n)
			buf := make([]byte, n)
			rng := rand.New(rand.NewPCG(1, 2))
			for b.Loop() {
				if _, err := r.ReadAt(buf, rng.Int64N(size-n)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// putParts stores data as a clip of parts parts of equal size (the last
// takes the rest) with a multipart upload.
func putParts(b *testing.B, tc *testCluster, bucket, key string, data []byte, parts int) {
	up, err := tc.client.CreateUpload(b.Context(), bucket, key, nil)
	if err != nil {
		b.Fatal(err)
	}
	var done []client.CompletedPart
	n := len(data) / parts
	for i := range parts {
		chunk := data[i*n : (i+1)*n]
		if i == parts-1 {
			chunk = data[i*n:]
		}
		p, err := tc.client.PutPart(b.Context(), bucket, key, up.UploadID, i+1, bytes.NewReader(chunk), nil)
		if err != nil {
			b.Fatal(err)
		}
		done = append(done, client.CompletedPart{Number: p.Number, ETag: p.ETag})
	}
	if _, err := tc.client.CompleteUpload(b.Context(), bucket, key, up.UploadID, done, nil); err != nil {
		b.Fatal(err)
	}
}
