package s3gw

import (
	"bytes"
	"crypto/md5"
	"hash"
	"math/rand/v2"
	"sync"
	"testing"

	md5simd "github.com/minio/md5-simd"
)

// TestMultiBufferMD5: bodies hashed at once through the gateway's MD5
// server, each through a digester as a put reads it, get crypto/md5's sums,
// whatever their sizes (empty, within a block, across blocks and buffers).
func TestMultiBufferMD5(t *testing.T) {
	srv := md5simd.NewServer()
	defer srv.Close()
	sizes := []int{0, 1, 55, 56, 63, 64, 65, 4095, digestBufSize - 1, digestBufSize, digestBufSize + 1, 3*digestBufSize + 17, 5 << 20}
	rng := rand.New(rand.NewPCG(1, 2))
	var wg sync.WaitGroup
	for i, n := range sizes {
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		wg.Go(func() {
			want := &digests{newMD5: func() hash.Hash { return srv.NewHash() }}
			d := newDigester(bytes.NewReader(data), want.hashes())
			defer d.stop()
			buf := make([]byte, 1000+i*777) // reads of odd sizes
			for {
				if _, err := d.Read(buf); err != nil {
					break
				}
			}
			sums, err := d.sums()
			if sum := md5.Sum(data); err != nil || !bytes.Equal(sums[0], sum[:]) {
				t.Errorf("%d bytes: %x, %v; want %x", n, sums[0], err, sum)
			}
		})
	}
	wg.Wait()
}

// TestMD5ServersReplace: the gateway's MD5 hashers come from a server
// replaced after md5ServerHashers of them (md5-simd's server slows down
// with every hasher it has served); a hasher open across a replacement
// still sums right, and a replaced server is closed once its last hasher
// is, not before.
func TestMD5ServersReplace(t *testing.T) {
	m := &md5Servers{}
	rng := rand.New(rand.NewPCG(3, 4))
	check := func(h hash.Hash, data []byte) {
		t.Helper()
		h.Write(data)
		if sum := md5.Sum(data); !bytes.Equal(h.Sum(nil), sum[:]) {
			t.Fatalf("%d bytes: %x, want %x", len(data), h.Sum(nil), sum)
		}
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	held := m.NewHash() // from the first server, open across the replacement
	held.Write(random(100))
	for i := range 2*md5ServerHashers + 5 {
		h := m.NewHash()
		check(h, random(1+i%5000))
		h.(interface{ Close() }).Close()
	}
	if m.made != 3 || m.closed != 1 {
		t.Fatalf("%d servers made, %d closed; want 3 and 1 (the first is held open)", m.made, m.closed)
	}
	data := random(70_000)
	held.Reset()
	check(held, data)
	held.(interface{ Close() }).Close()
	held.(interface{ Close() }).Close() // twice: released once
	if m.closed != 2 {
		t.Fatalf("%d servers closed after the held hasher was, want 2", m.closed)
	}
	m.Close()
	if m.closed != 3 {
		t.Fatalf("%d servers closed after Close, want 3", m.closed)
	}
}
