package erasure

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"testing"
	"testing/iotest"
)

func TestRoundTrip(t *testing.T) {
	const bs = 1000
	codes := []struct{ k, m int }{{3, 2}, {5, 3}, {1, 0}, {1, 2}, {10, 4}, {2, 0}, {4, 2}}
	sizes := []int{0, 1, bs - 1, bs, bs + 1, 7*bs + 333, 12 * bs}
	for _, km := range codes {
		c := mustCode(t, km.k, km.m, bs)
		for _, size := range sizes {
			data := randBytes(uint64(size), size)
			streams, res := encodeAll(t, c, data)
			checkResult(t, c, data, streams, res)
			got, rep, err := decodeAll(t, c, streams, int64(size))
			if err != nil || !bytes.Equal(got, data) || len(rep.Faults) != 0 || rep.Degraded != 0 {
				t.Fatalf("%d+%d size %d: Decode = %d bytes (equal %v), %+v, %v", km.k, km.m, size,
					len(got), bytes.Equal(got, data), rep, err)
			}
		}
	}
}

// checkResult checks EncodeResult against the data and the streams.
func checkResult(t *testing.T, c *Code, data []byte, streams [][]byte, res EncodeResult) {
	t.Helper()
	l, _ := c.Layout(int64(len(data)))
	if res.Size != int64(len(data)) || res.Blocks != l.Blocks() || res.ShardLen != l.ShardLen() {
		t.Fatalf("result %+v for %d bytes, layout %d blocks, shard len %d", res, len(data), l.Blocks(), l.ShardLen())
	}
	if want := crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)); res.Checksum != want {
		t.Errorf("content checksum %08x, want %08x", res.Checksum, want)
	}
	n := c.Shards()
	crcs := make([]uint32, n)
	for i, s := range streams {
		if int64(len(s)) != l.ShardLen() {
			t.Fatalf("shard %d has %d bytes, layout says %d", i, len(s), l.ShardLen())
		}
		var sum ShardSum
		for b := range l.Blocks() {
			unit := s[l.UnitOffset(b) : l.UnitOffset(b)+int64(l.UnitLen(b))]
			if !VerifyUnit(unit, i, b, crcs) {
				t.Fatalf("shard %d unit %d does not verify", i, b)
			}
			sum.Add(crcs[i])
		}
		if sum.Sum32() != res.ShardSums[i] {
			t.Errorf("shard %d sum %08x, result says %08x", i, sum.Sum32(), res.ShardSums[i])
		}
	}
}

func TestEncoderBlocks(t *testing.T) {
	c := mustCode(t, 3, 2, 1000)
	data := randBytes(7, 2500)
	streams, _ := encodeAll(t, c, data)
	l, _ := c.Layout(int64(len(data)))
	e := c.NewEncoder(iotest.OneByteReader(bytes.NewReader(data)))
	for b := int64(0); ; b++ {
		blk, err := e.Next()
		if errors.Is(err, io.EOF) {
			if b != l.Blocks() {
				t.Fatalf("io.EOF after %d blocks, want %d", b, l.Blocks())
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if blk.Num != b || blk.DataLen != l.BlockLen(b) || !bytes.Equal(blk.Bytes(), data[b*1000:b*1000+int64(blk.DataLen)]) {
			t.Fatalf("block %d: num %d, %d bytes", b, blk.Num, blk.DataLen)
		}
		for i := range c.Shards() {
			want := streams[i][l.UnitOffset(b) : l.UnitOffset(b)+int64(l.UnitLen(b))]
			var w bytes.Buffer
			if _, err := blk.WriteUnit(&w, i); err != nil || !bytes.Equal(w.Bytes(), want) ||
				!bytes.Equal(blk.AppendUnit(nil, i), want) {
				t.Fatalf("block %d unit %d differs from the shard stream", b, i)
			}
			if blk.CRCs[i] != PieceCRC(i, b, blk.Pieces[i]) {
				t.Fatalf("block %d piece %d CRC", b, i)
			}
		}
		if blk.Trailer(-1) != nil || blk.Trailer(c.Shards()) != nil || len(blk.AppendUnit(nil, 9)) != 0 {
			t.Fatal("out-of-range unit index gave bytes")
		}
		if _, err := blk.WriteUnit(io.Discard, 5); !errors.Is(err, ErrInvalidParams) {
			t.Fatalf("WriteUnit(5) = %v", err)
		}
		blk.Release()
		blk.Release() // a no-op
	}
	if _, err := e.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("Next after the end = %v", err)
	}
}

func TestEncoderReadError(t *testing.T) {
	c := mustCode(t, 2, 1, 100)
	boom := errors.New("boom")
	e := c.NewEncoder(&failingReader{r: bytes.NewReader(randBytes(1, 1000)), n: 150, err: boom})
	if b, err := e.Next(); err != nil {
		t.Fatalf("first block: %v", err)
	} else {
		b.Release()
	}
	for range 2 {
		if _, err := e.Next(); !errors.Is(err, boom) {
			t.Fatalf("Next = %v, want the read error (sticky)", err)
		}
	}
	_, err := c.Encode(&failingReader{r: bytes.NewReader(randBytes(1, 1000)), n: 150, err: boom}, make([]io.Writer, 3))
	if !errors.Is(err, boom) {
		t.Fatalf("Encode = %v, want the read error", err)
	}
}

func TestEncodeWriteError(t *testing.T) {
	c := mustCode(t, 2, 1, 100)
	boom := errors.New("disk full")
	ws := []io.Writer{io.Discard, nil, &failingWriter{n: 120, err: boom}}
	if _, err := c.Encode(bytes.NewReader(randBytes(1, 1000)), ws); !errors.Is(err, boom) {
		t.Fatalf("Encode = %v, want the write error", err)
	}
	if _, err := c.Encode(bytes.NewReader(nil), ws[:2]); !errors.Is(err, ErrInvalidParams) {
		t.Fatalf("Encode with 2 writers = %v, want ErrInvalidParams", err)
	}
}

type failingWriter struct {
	n   int
	err error
}

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		return f.n, f.err
	}
	f.n -= len(p)
	return len(p), nil
}

// TestEncoderAllocs checks that a steady stream of blocks allocates nothing.
func TestEncoderAllocs(t *testing.T) {
	c := mustCode(t, 4, 2, 64<<10)
	e := c.NewEncoder(endless{})
	next := func() {
		b, err := e.Next()
		if err != nil {
			t.Fatal(err)
		}
		b.Release()
	}
	next() // warm the cache
	// The codec itself allocates nothing per block; reedsolomon's Encode
	// allocates one small object on CPUs with GFNI. Any buffer allocated
	// per block would show up here as well.
	if n := testing.AllocsPerRun(50, next); n > 2 {
		t.Errorf("%.1f allocations per block, want ~0", n)
	}
}

// TestEncoderReusesBlocksBeyondTheCache: several clips encoded at once hold
// more blocks than the cache keeps; the ones released beyond it are reused
// too (through the sync.Pool), not allocated again for the next clips.
func TestEncoderReusesBlocksBeyondTheCache(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop a quarter of what it is given; make test runs this without it")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // a GC may empty a sync.Pool
	c, err := New(4, 2, WithBlockSize(64<<10), WithBlockCache(1))
	if err != nil {
		t.Fatal(err)
	}
	encoders := make([]*Encoder, 4)
	for i := range encoders {
		encoders[i] = c.NewEncoder(endless{})
	}
	round := func() {
		var held []*Block
		for _, e := range encoders {
			b, err := e.Next()
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, b)
		}
		for _, b := range held {
			b.Release()
		}
	}
	round() // warm: four blocks, one in the cache and three in the pool
	if n := testing.AllocsPerRun(20, round); n > 8 {
		t.Errorf("%.1f allocations per round of 4 blocks with a cache of 1, want ~0 (4 block buffers would be 12)", n)
	}
}

// endless is a reader of pseudo-random bytes that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i*7 + i>>8)
	}
	return len(p), nil
}

func TestContentChecksumCombine(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		a, p := randBytes(rng.Uint64(), rng.IntN(100)), randBytes(rng.Uint64(), 1+rng.IntN(3000))
		idx, blk := rng.IntN(64), rng.Int64()
		want := UpdateCRC32C(CRC32C(a), p)
		got := appendPieceToContent(CRC32C(a), PieceCRC(idx, blk, p), crcShift(int64(len(p))), idx, blk)
		if got != want {
			t.Fatalf("combined %08x, want %08x (len %d)", got, want, len(p))
		}
	}
}

// TestConcurrentUse shares one Code between goroutines that encode, hand
// blocks to other goroutines to release (as a pipelined writer does) and
// decode; run with -race.
func TestConcurrentUse(t *testing.T) {
	c := mustCode(t, 4, 2, 512)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := randBytes(uint64(g), 10_000+g*777)
			blocks := make(chan *Block, 3)
			var sent sync.WaitGroup
			sent.Add(1)
			go func() { // the "senders": copy each unit out, then release
				defer sent.Done()
				for b := range blocks {
					for i := range c.Shards() {
						_ = b.AppendUnit(nil, i)
					}
					b.Release()
				}
			}()
			e := c.NewEncoder(bytes.NewReader(data))
			for {
				b, err := e.Next()
				if err != nil {
					break
				}
				blocks <- b
			}
			close(blocks)
			sent.Wait()
			bufs := make([]bytes.Buffer, c.Shards())
			ws, rs := make([]io.Writer, len(bufs)), make([]io.Reader, len(bufs))
			for i := range bufs {
				ws[i], rs[i] = &bufs[i], &bufs[i]
			}
			if _, err := c.Encode(bytes.NewReader(data), ws); err != nil {
				errs <- err
				return
			}
			rs[g%len(rs)] = nil
			var out bytes.Buffer
			if _, err := c.Decode(&out, rs, int64(len(data))); err != nil || !bytes.Equal(out.Bytes(), data) {
				errs <- fmt.Errorf("goroutine %d: decode: %v", g, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
