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
