package client_test

import (
	"bytes"
	"io"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
)

// genReader yields n pseudo-random bytes without holding them.
type genReader struct {
	n, off int64
	state  uint64
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.n-g.off)]
	for i := range p {
		g.state = g.state*6364136223846793005 + 1442695040888963407
		p[i] = byte(g.state >> 56)
	}
	g.off += int64(len(p))
	return len(p), nil
}

// heapPeak samples HeapInuse until stop is called and returns the peak.
func heapPeak() (stop func() uint64) {
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak
	}
}

// TestPutBoundedMemory puts clips of 16 and 64 MiB from a generator: the
// heap grows by well under the clip's size, and no more for the larger
// clip, because only BlocksInFlight blocks are alive at once. The storage
// nodes run in this process, so their gRPC receive buffers count too.
func TestPutBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB put")
	}
	tc := newCluster(t, 6, client.Config{BlocksInFlight: 4})
	tc.mkBucket("mem", &client.Profile{DataShards: 4, ParityShards: 2, BlockSize: 1 << 20})
	// HeapInuse counts garbage too; collect often so that it tracks the
	// live heap, which is what the block bound limits.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	growth := map[int64]int64{}
	for _, size := range []int64{16 << 20, 64 << 20} {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapInuse
		stop := heapPeak()
		info, err := tc.client.Put(t.Context(), "mem", "big", &genReader{n: size, state: uint64(size)}, nil)
		peak := stop()
		if err != nil {
			t.Fatal(err)
		}
		growth[size] = int64(peak) - int64(base)
		t.Logf("%d MiB clip: heap in use: base %d MiB, peak %d MiB, growth %d MiB", size>>20, base>>20, peak>>20, growth[size]>>20)
		if size == 64<<20 && growth[size] > 32<<20 { // half the clip; ~20 MiB measured
			t.Fatalf("heap grew by %d MiB during a %d MiB put", growth[size]>>20, size>>20)
		}
		if info.Size != size {
			t.Fatalf("size %d", info.Size)
		}
	}
	if growth[64<<20] > growth[16<<20]+8<<20 {
		t.Fatalf("heap growth rises with the clip size: %d MiB for 16 MiB, %d MiB for 64 MiB", growth[16<<20]>>20, growth[64<<20]>>20)
	}
	// Read it back streaming, comparing as we go.
	cmp := &compareWriter{want: &genReader{n: 64 << 20, state: 64 << 20}}
	if _, err := tc.client.Get(t.Context(), "mem", "big", cmp, nil); err != nil || cmp.n != 64<<20 || cmp.bad {
		t.Fatalf("get: %v, %d bytes, mismatch %v", err, cmp.n, cmp.bad)
	}
}

// compareWriter checks written bytes against a reader of the expected ones.
type compareWriter struct {
	want io.Reader
	buf  []byte
	n    int64
	bad  bool
}

func (c *compareWriter) Write(p []byte) (int, error) {
	if cap(c.buf) < len(p) {
		c.buf = make([]byte, len(p))
	}
	b := c.buf[:len(p)]
	io.ReadFull(c.want, b)
	c.bad = c.bad || !bytes.Equal(b, p)
	c.n += int64(len(p))
	return len(p), nil
}
