package erasure

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/reedsolomon"
)

// The benchmarks compare each codec operation over a 64 MiB clip in 1 MiB
// blocks with a reference doing only the unavoidable work with reedsolomon
// and CRC32C directly on pre-split, pre-allocated pieces. Sub-benchmarks
// pair as BenchmarkX/<k>+<m>/codec and BenchmarkX/<k>+<m>/reference.

const benchClip = 64 << 20

var benchCodes = []struct{ k, m int }{{4, 2}, {8, 3}, {10, 4}}

// fixture is one code's encoded bench clip, both as shard streams (for the
// codec) and as pieces per block (for the reference).
type fixture struct {
	c       *Code
	rs      reedsolomon.Encoder
	data    []byte
	streams [][]byte
	units   [][][]byte // [block][index]unit, each in its own buffer
	pieces  [][][]byte // [block][index]piece
}

// benchFixture builds the fixture of one code; it keeps only the latest,
// to bound memory.
var benchCache struct {
	data []byte
	fx   *fixture
}

func benchFixture(b *testing.B, k, m int) *fixture {
	if fx := benchCache.fx; fx != nil && fx.c.k == k && fx.c.m == m {
		return fx
	}
	benchCache.fx = nil
	if benchCache.data == nil {
		benchCache.data = make([]byte, benchClip)
		rand.NewChaCha8([32]byte{1}).Read(benchCache.data)
	}
	c := mustCode(b, k, m, DefaultBlockSize)
	rs, err := reedsolomon.New(k, m)
	if err != nil {
		b.Fatal(err)
	}
	fx := &fixture{c: c, rs: rs, data: benchCache.data}
	fx.streams, _ = encodeAll(b, c, fx.data)
	for _, blk := range blocksOf(b, c, fx.data) {
		fx.pieces = append(fx.pieces, blk.Pieces)
	}
	l, _ := c.Layout(benchClip)
	for num := range l.Blocks() {
		off, end := l.UnitOffset(num), l.UnitOffset(num)+int64(l.UnitLen(num))
		units := make([][]byte, c.Shards())
		for i, s := range fx.streams {
			units[i] = bytes.Clone(s[off:end])
		}
		fx.units = append(fx.units, units)
	}
	benchCache.fx = fx
	return fx
}

// variant is one side of a comparison.
type variant struct {
	name string
	run  func(b *testing.B, fx *fixture)
}

// benchCompare runs the variants as sub-benchmarks of every code.
func benchCompare(b *testing.B, variants ...variant) {
	for _, km := range benchCodes {
		b.Run(fmt.Sprintf("%d+%d", km.k, km.m), func(b *testing.B) {
			fx := benchFixture(b, km.k, km.m)
			for _, v := range variants {
				b.Run(v.name, func(b *testing.B) {
					b.SetBytes(benchClip)
					b.ReportAllocs()
					b.ResetTimer()
					v.run(b, fx)
				})
			}
		})
	}
}

// blockUnits calls f for every block with its units (nil for lost
// shards), each in its own buffer as a client holds them after receiving.
func blockUnits(fx *fixture, lost []int, f func(num int64, units [][]byte)) {
	units := make([][]byte, fx.c.Shards())
	for num, us := range fx.units {
		copy(units, us)
		for _, i := range lost {
			units[i] = nil
		}
		f(int64(num), units)
	}
}

// crcAll is the reference's verification: PieceCRC over the given pieces.
func crcAll(num int64, pieces [][]byte, sink *uint32) {
	for i, p := range pieces {
		if len(p) > 0 {
			*sink ^= PieceCRC(i, num, p)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	benchCompare(b, variant{"codec", func(b *testing.B, fx *fixture) {
		ws := make([]io.Writer, fx.c.Shards()) // all nil: encode only
		for b.Loop() {
			if _, err := fx.c.Encode(bytes.NewReader(fx.data), ws); err != nil {
				b.Fatal(err)
			}
		}
	}}, variant{"reference", func(b *testing.B, fx *fixture) {
		var sink uint32
		for b.Loop() {
			for num, pieces := range fx.pieces {
				if err := fx.rs.Encode(pieces); err != nil {
					b.Fatal(err)
				}
				crcAll(int64(num), pieces, &sink)
			}
		}
	}})
}

// The decode benchmarks run the codec twice: "codec" decodes units already
// in memory with a BlockDecoder into a reused block buffer (as the client
// does with the pieces it receives), "stream" decodes with Code.Decode or
// Code.Rebuild from io.Readers to io.Discard, which adds copying every unit
// out of its reader.

func BenchmarkDecode(b *testing.B) {
	out := make([]byte, DefaultBlockSize)
	benchCompare(b, variant{"codec", func(b *testing.B, fx *fixture) {
		benchBlockDecode(b, fx, nil, out)
	}}, variant{"stream", func(b *testing.B, fx *fixture) {
		benchDecode(b, fx, nil)
	}}, variant{"reference", func(b *testing.B, fx *fixture) {
		var sink uint32
		k := fx.c.k
		for b.Loop() {
			for num, pieces := range fx.pieces {
				n := 0
				for _, p := range pieces[:k] {
					n += copy(out[n:], p)
				}
				crcAll(int64(num), pieces[:k], &sink)
			}
		}
	}})
}

// benchBlockDecode decodes the clip block by block into out.
func benchBlockDecode(b *testing.B, fx *fixture, lost []int, out []byte) {
	l, _ := fx.c.Layout(benchClip)
	bd := l.NewBlockDecoder()
	for b.Loop() {
		blockUnits(fx, lost, func(num int64, units [][]byte) {
			if _, err := bd.Decode(out[:0], l.Extent(num), units); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// benchDecode decodes the clip to io.Discard with the given shards lost.
func benchDecode(b *testing.B, fx *fixture, lost []int) {
	for b.Loop() {
		if _, err := fx.c.Decode(io.Discard, readers(fx.streams, lost...), benchClip); err != nil {
			b.Fatal(err)
		}
	}
}

// lostFirst returns indices 0..n-1.
func lostFirst(n int) []int {
	lost := make([]int, n)
	for i := range lost {
		lost[i] = i
	}
	return lost
}

func BenchmarkDecodeDegraded(b *testing.B) {
	out := make([]byte, DefaultBlockSize)
	benchCompare(b, variant{"codec", func(b *testing.B, fx *fixture) {
		benchBlockDecode(b, fx, lostFirst(fx.c.m), out)
	}}, variant{"stream", func(b *testing.B, fx *fixture) {
		benchDecode(b, fx, lostFirst(fx.c.m))
	}}, variant{"reference", func(b *testing.B, fx *fixture) {
		benchReconstruct(b, fx, fx.c.m, true)
	}})
}

func BenchmarkRebuild(b *testing.B) {
	benchCompare(b, variant{"codec", func(b *testing.B, fx *fixture) {
		l, _ := fx.c.Layout(benchClip)
		bd := l.NewBlockDecoder()
		out := make([]byte, l.UnitLen(0))
		for b.Loop() {
			blockUnits(fx, []int{0}, func(num int64, units [][]byte) {
				if _, _, err := bd.Rebuild(out[:0], 0, num, units); err != nil {
					b.Fatal(err)
				}
			})
		}
	}}, variant{"stream", func(b *testing.B, fx *fixture) {
		for b.Loop() {
			if _, _, err := fx.c.Rebuild(io.Discard, 0, readers(fx.streams, 0), benchClip); err != nil {
				b.Fatal(err)
			}
		}
	}}, variant{"reference", func(b *testing.B, fx *fixture) {
		benchReconstruct(b, fx, 1, false)
	}})
}

// benchReconstruct is the reference for rebuilding the first lost pieces of
// every block from the next k: reedsolomon on scratch buffers (all other
// pieces present, so that it rebuilds only those), then a CRC pass over the
// k inputs and the rebuilt pieces.
func benchReconstruct(b *testing.B, fx *fixture, lost int, dataOnly bool) {
	k := fx.c.k
	shards := make([][]byte, fx.c.Shards())
	scratch := make([][]byte, lost)
	for i := range scratch {
		scratch[i] = make([]byte, len(fx.pieces[0][0]))
	}
	var sink uint32
	for b.Loop() {
		for num, pieces := range fx.pieces {
			copy(shards, pieces)
			for i := range lost {
				shards[i] = scratch[i][:0]
			}
			var err error
			if dataOnly {
				err = fx.rs.ReconstructData(shards)
			} else {
				err = fx.rs.Reconstruct(shards)
			}
			if err != nil {
				b.Fatal(err)
			}
			// Verify what the codec verifies: k inputs and the rebuilt pieces
			// (reedsolomon reads the first k present pieces).
			crcAll(int64(num), shards[:lost+k], &sink)
		}
	}
}
