package erasure

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"testing"
	"unsafe"
)

const testBS = 1000

// testSize has several full blocks and a short last one whose piece length
// is not a multiple of anything in particular.
const testSize = 3*testBS + 401

func TestDecodeLost(t *testing.T) {
	for _, km := range testCodes {
		c := mustCode(t, km.k, km.m, testBS)
		data := randBytes(1, testSize)
		streams, _ := encodeAll(t, c, data)
		subsets(c.Shards(), km.m+1, func(lost []int) {
			got, rep, err := decodeAll(t, c, streams, testSize, lost...)
			if len(lost) > km.m {
				if !errors.Is(err, ErrUnrecoverable) || len(got) != 0 {
					t.Errorf("%d+%d lost %v: Decode wrote %d bytes, err %v; want nothing and ErrUnrecoverable", km.k, km.m, lost, len(got), err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, data) || len(rep.Faults) != 0 {
				t.Errorf("%d+%d lost %v: Decode equal=%v, %+v, %v", km.k, km.m, lost, bytes.Equal(got, data), rep, err)
			}
			if lostData := slices.ContainsFunc(lost, func(i int) bool { return i < km.k }); lostData != (rep.Degraded > 0) {
				t.Errorf("%d+%d lost %v: %d degraded blocks", km.k, km.m, lost, rep.Degraded)
			}
		})
	}
}

// corruption is where a test flips a byte of a unit.
type corruption int

const (
	inPiece corruption = iota
	inTrailerCRCs
	inTrailerSum
)

func (c corruption) String() string { return [...]string{"piece", "trailer CRCs", "trailer sum"}[c] }

// flip flips one byte of unit b of stream s.
func flip(l Layout, s []byte, b int64, where corruption) {
	off := l.UnitOffset(b)
	p := int64(l.PieceLen(b))
	switch where {
	case inPiece:
		off += p / 2
	case inTrailerCRCs:
		off += p + 1
	case inTrailerSum:
		off += int64(l.UnitLen(b)) - 1
	}
	s[off] ^= 0x40
}

func TestDecodeCorrupt(t *testing.T) {
	for _, km := range testCodes {
		c := mustCode(t, km.k, km.m, testBS)
		data := randBytes(2, testSize)
		streams, _ := encodeAll(t, c, data)
		l, _ := c.Layout(testSize)
		for _, where := range []corruption{inPiece, inTrailerCRCs, inTrailerSum} {
			subsets(c.Shards(), km.m, func(bad []int) {
				name := fmt.Sprintf("%d+%d %v corrupt in %v", km.k, km.m, bad, where)
				s := clone(streams)
				for _, i := range bad {
					for b := range l.Blocks() {
						flip(l, s[i], b, where)
					}
				}
				got, rep, err := decodeAll(t, c, s, testSize)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("%s: Decode equal=%v, %v", name, bytes.Equal(got, data), err)
				}
				checkFaults(t, name, rep, bad, km.k, l.Blocks())
			})
		}
	}
}

// checkFaults checks that every fault names a corrupt shard, and that every
// corrupt data shard was reported at every block.
func checkFaults(t *testing.T, name string, rep Report, bad []int, k int, blocks int64) {
	t.Helper()
	seen := map[[2]int64]bool{}
	for _, f := range rep.Faults {
		var pe *PieceError
		if !errors.Is(f, ErrCorrupt) || !errors.As(error(f), &pe) || !slices.Contains(bad, f.Index) {
			t.Fatalf("%s: unexpected fault %v", name, f)
		}
		seen[[2]int64{int64(f.Index), f.Block}] = true
	}
	for _, i := range bad {
		for b := range blocks {
			if i < k && !seen[[2]int64{int64(i), b}] {
				t.Fatalf("%s: corrupt shard %d block %d not reported; faults %v", name, i, b, rep.Faults)
			}
		}
	}
	for _, i := range rep.Corrupt() {
		if !slices.Contains(bad, i) {
			t.Fatalf("%s: Corrupt() = %v", name, rep.Corrupt())
		}
	}
}

// TestDecodeUnrecoverableLater checks that a block past repair stops the
// stream after the good blocks before it, and writes no byte of its own.
func TestDecodeUnrecoverableLater(t *testing.T) {
	c := mustCode(t, 3, 2, testBS)
	data := randBytes(3, testSize)
	streams, _ := encodeAll(t, c, data)
	l, _ := c.Layout(testSize)
	for _, i := range []int{0, 2, 4} {
		flip(l, streams[i], 2, inPiece)
	}
	got, rep, err := decodeAll(t, c, streams, testSize)
	if !errors.Is(err, ErrUnrecoverable) || !bytes.Equal(got, data[:2*testBS]) {
		t.Fatalf("Decode wrote %d bytes (prefix %v), %v; want the first 2 blocks and ErrUnrecoverable",
			len(got), bytes.Equal(got, data[:len(got)]), err)
	}
	if !slices.Equal(rep.Corrupt(), []int{0, 2, 4}) {
		t.Errorf("Corrupt() = %v, want [0 2 4]", rep.Corrupt())
	}
}

// TestDecodeMisplaced presents pieces where they do not belong: a unit moved
// to another block, a shard under another index, a shard of another clip.
func TestDecodeMisplaced(t *testing.T) {
	c := mustCode(t, 3, 2, testBS)
	data := randBytes(4, testSize)
	streams, _ := encodeAll(t, c, data)
	other, _ := encodeAll(t, c, randBytes(5, testSize))
	l, _ := c.Layout(testSize)
	unit := func(s []byte, b int64) []byte { return s[l.UnitOffset(b) : l.UnitOffset(b)+int64(l.UnitLen(b))] }
	tests := []struct {
		name    string
		mutate  func(s [][]byte)
		corrupt []int
	}{
		{"units of blocks 0 and 1 swapped", func(s [][]byte) {
			u0, u1 := bytes.Clone(unit(s[1], 0)), bytes.Clone(unit(s[1], 1))
			copy(unit(s[1], 0), u1)
			copy(unit(s[1], 1), u0)
		}, []int{1}},
		{"shards 0 and 1 swapped", func(s [][]byte) { s[0], s[1] = s[1], s[0] }, []int{0, 1}},
		{"shard 2 of another clip", func(s [][]byte) { s[2] = other[2] }, []int{2}},
		{"shards 0 and 1 of another clip", func(s [][]byte) { s[0], s[1] = other[0], other[1] }, []int{0, 1}},
	}
	for _, tt := range tests {
		s := clone(streams)
		tt.mutate(s)
		got, rep, err := decodeAll(t, c, s, testSize)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: Decode equal=%v, %v", tt.name, bytes.Equal(got, data), err)
			continue
		}
		if !slices.Equal(rep.Corrupt(), tt.corrupt) {
			t.Errorf("%s: Corrupt() = %v, want %v (faults %v)", tt.name, rep.Corrupt(), tt.corrupt, rep.Faults)
		}
	}
	// With 2+1, two misplaced shards leave too few: an error, never bytes.
	// (k shards of one other clip are a consistent clip of their own, which
	// no codec can tell apart: clip identity is the shard header's job.)
	c2 := mustCode(t, 2, 1, testBS)
	s2, _ := encodeAll(t, c2, data)
	o2, _ := encodeAll(t, c2, randBytes(5, testSize))
	for _, s := range [][][]byte{{s2[1], s2[0], s2[2]}, {o2[0], s2[1], s2[2]}, {s2[0], s2[0], s2[2]}} {
		got, _, err := decodeAll(t, c2, s, testSize)
		if err == nil && !bytes.Equal(got, data) || err != nil && len(got) != 0 {
			t.Errorf("2+1 misplaced: wrote %d bytes, %v", len(got), err)
		}
		if err != nil && !errors.Is(err, ErrUnrecoverable) {
			t.Errorf("2+1 misplaced: %v, want ErrUnrecoverable", err)
		}
	}
}

// TestDecodeReaderFailures checks that a reader failing or ending early is
// treated as missing from then on, and reported without ErrCorrupt.
func TestDecodeReaderFailures(t *testing.T) {
	c := mustCode(t, 4, 2, testBS)
	data := randBytes(6, testSize)
	streams, _ := encodeAll(t, c, data)
	l, _ := c.Layout(testSize)
	boom := errors.New("connection reset")
	rs := readers(streams)
	rs[1] = &failingReader{r: rs[1], n: l.UnitOffset(1) + 10, err: boom}
	rs[3] = bytes.NewReader(streams[3][:l.UnitOffset(2)+5]) // truncated
	var out bytes.Buffer
	rep, err := c.Decode(&out, rs, testSize)
	if err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("Decode equal=%v, %v", bytes.Equal(out.Bytes(), data), err)
	}
	if len(rep.Faults) != 2 || rep.Faults[0].Index != 1 || rep.Faults[0].Block != 1 || !errors.Is(rep.Faults[0], boom) ||
		rep.Faults[1].Index != 3 || rep.Faults[1].Block != 2 || !errors.Is(rep.Faults[1], io.ErrUnexpectedEOF) {
		t.Fatalf("faults %v", rep.Faults)
	}
	if len(rep.Corrupt()) != 0 {
		t.Errorf("read failures reported as corrupt: %v", rep.Corrupt())
	}
}

// TestDecodeReadsParityOnlyWhenNeeded counts the bytes read from each shard.
func TestDecodeReadsParityOnlyWhenNeeded(t *testing.T) {
	c := mustCode(t, 4, 2, testBS)
	data := randBytes(7, testSize)
	streams, _ := encodeAll(t, c, data)
	l, _ := c.Layout(testSize)
	count := func(corruptBlock int64) []int64 {
		s := clone(streams)
		if corruptBlock >= 0 {
			flip(l, s[0], corruptBlock, inPiece)
		}
		crs := make([]*countingReader, len(s))
		rs := make([]io.Reader, len(s))
		for i := range s {
			crs[i] = &countingReader{r: bytes.NewReader(s[i])}
			rs[i] = crs[i]
		}
		var out bytes.Buffer
		if _, err := c.Decode(&out, rs, testSize); err != nil || !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("Decode: %v", err)
		}
		n := make([]int64, len(s))
		for i, cr := range crs {
			n[i] = cr.bytes
		}
		return n
	}
	shard := l.ShardLen()
	if got := count(-1); !slices.Equal(got, []int64{shard, shard, shard, shard, 0, 0}) {
		t.Errorf("healthy: bytes read per shard %v, want only the data shards", got)
	}
	// A corrupt piece in block 2 brings in parity 4 (skipped, not seeked,
	// to block 2 here, so it reads blocks 0-2) and never parity 5.
	if got := count(2); got[4] != l.UnitOffset(3) || got[5] != 0 {
		t.Errorf("block 2 corrupt: bytes read per shard %v", got)
	}
}

func TestDecodeRange(t *testing.T) {
	for _, km := range []struct{ k, m int }{{3, 2}, {4, 2}, {1, 0}, {5, 3}} {
		c := mustCode(t, km.k, km.m, testBS)
		data := randBytes(8, testSize)
		streams, _ := encodeAll(t, c, data)
		rng := randBytes(9, 4096)
		subsets(c.Shards(), min(km.m, 2), func(lost []int) {
			for j := 0; j < 40; j++ {
				off := int64(rng[j])*16 + int64(rng[j+40]) // up to ~4.3k
				off = min(off, testSize)
				n := min(int64(rng[j+80])*int64(rng[j+120])/8, testSize-off)
				var out bytes.Buffer
				_, err := c.DecodeRange(&out, readerAts(streams, lost...), testSize, off, n)
				if err != nil || !bytes.Equal(out.Bytes(), data[off:off+n]) {
					t.Fatalf("%d+%d lost %v: DecodeRange(%d, %d) equal=%v, %v", km.k, km.m, lost, off, n,
						bytes.Equal(out.Bytes(), data[off:off+n]), err)
				}
			}
		})
	}
}

func TestDecodeRangeErrors(t *testing.T) {
	c := mustCode(t, 3, 2, testBS)
	streams, _ := encodeAll(t, c, randBytes(10, testSize))
	for _, r := range []struct{ off, n int64 }{{-1, 5}, {0, testSize + 1}, {testSize, 1}, {5, -1}} {
		var out bytes.Buffer
		if _, err := c.DecodeRange(&out, readerAts(streams), testSize, r.off, r.n); !errors.Is(err, ErrRange) || out.Len() != 0 {
			t.Errorf("DecodeRange(%d, %d) = %v, wrote %d", r.off, r.n, err, out.Len())
		}
	}
	if _, err := c.DecodeRange(io.Discard, readerAts(streams)[:4], testSize, 0, 1); !errors.Is(err, ErrInvalidParams) {
		t.Errorf("DecodeRange with 4 shards = %v", err)
	}
	if _, err := c.DecodeRange(io.Discard, readerAts(streams, 0, 1, 2), testSize, 0, 1); !errors.Is(err, ErrUnrecoverable) {
		t.Errorf("DecodeRange with 2 shards = %v", err)
	}
}

// TestDecodeRangeReadsOnlyWhatItNeeds counts ReadAt calls per shard.
func TestDecodeRangeReadsOnlyWhatItNeeds(t *testing.T) {
	c := mustCode(t, 4, 2, testBS)
	data := randBytes(11, testSize)
	streams, _ := encodeAll(t, c, data)
	l, _ := c.Layout(testSize)
	tests := []struct {
		off, n int64
		lost   []int
		reads  []int // ReadAt calls per shard
	}{
		{1010, 20, nil, []int{1, 0, 0, 0, 0, 0}},          // inside piece 0 of block 1
		{1240, 20, nil, []int{1, 1, 0, 0, 0, 0}},          // across pieces 0 and 1
		{1990, 20, nil, []int{1, 0, 0, 1, 0, 0}},          // piece 3 of block 1, piece 0 of block 2
		{1010, 20, []int{0}, []int{0, 1, 1, 1, 1, 0}},     // piece 0 lost: any 4 others
		{0, testSize, nil, []int{4, 4, 4, 4, 0, 0}},       // whole clip
		{3000, 401, []int{2, 3}, []int{1, 1, 0, 0, 1, 1}}, // last block: 101-byte pieces
	}
	for _, tt := range tests {
		crs := make([]*countingReaderAt, c.Shards())
		rs := make([]io.ReaderAt, c.Shards())
		for i, s := range streams {
			if !slices.Contains(tt.lost, i) {
				crs[i] = &countingReaderAt{r: bytes.NewReader(s)}
				rs[i] = crs[i]
			}
		}
		var out bytes.Buffer
		if _, err := c.DecodeRange(&out, rs, testSize, tt.off, tt.n); err != nil || !bytes.Equal(out.Bytes(), data[tt.off:tt.off+tt.n]) {
			t.Fatalf("DecodeRange(%d, %d): %v", tt.off, tt.n, err)
		}
		for i, cr := range crs {
			reads := 0
			if cr != nil {
				reads = cr.reads
				if cr.bytes != int64(cr.reads*l.UnitLen(0)) && tt.off+tt.n <= 3000 {
					t.Errorf("range %d+%d: shard %d read %d bytes in %d reads", tt.off, tt.n, i, cr.bytes, cr.reads)
				}
			}
			if reads != tt.reads[i] {
				t.Errorf("range %d+%d lost %v: shard %d read %d units, want %d", tt.off, tt.n, tt.lost, i, reads, tt.reads[i])
			}
		}
	}
}

func TestRebuild(t *testing.T) {
	for _, km := range testCodes {
		c := mustCode(t, km.k, km.m, testBS)
		data := randBytes(12, testSize)
		streams, res := encodeAll(t, c, data)
		for index := range c.Shards() {
			var others []int
			for i := range c.Shards() {
				if i != index {
					others = append(others, i)
				}
			}
			subsetsOf(others, km.k, func(use []int) {
				rs := make([]io.Reader, c.Shards())
				for _, i := range use {
					rs[i] = bytes.NewReader(streams[i])
				}
				rs[index] = bytes.NewReader(bytes.Repeat([]byte{0xff}, len(streams[index]))) // ignored
				var out bytes.Buffer
				sum, rep, err := c.Rebuild(&out, index, rs, testSize)
				if err != nil || !bytes.Equal(out.Bytes(), streams[index]) || sum != res.ShardSums[index] || len(rep.Faults) != 0 {
					t.Fatalf("%d+%d rebuild %d from %v: equal=%v sum %08x want %08x, %v, %v", km.k, km.m, index, use,
						bytes.Equal(out.Bytes(), streams[index]), sum, res.ShardSums[index], rep.Faults, err)
				}
			})
			if len(others) >= km.k {
				rs := readers(streams)
				for _, i := range others[km.k-1:] {
					rs[i] = nil
				}
				var out bytes.Buffer
				if _, _, err := c.Rebuild(&out, index, rs, testSize); !errors.Is(err, ErrUnrecoverable) || out.Len() != 0 {
					t.Fatalf("%d+%d rebuild %d from %d shards = %v, wrote %d", km.k, km.m, index, km.k-1, err, out.Len())
				}
			}
		}
	}
}

func TestRebuildCorrupt(t *testing.T) {
	c := mustCode(t, 4, 2, testBS)
	data := randBytes(13, testSize)
	streams, res := encodeAll(t, c, data)
	l, _ := c.Layout(testSize)
	s := clone(streams)
	flip(l, s[0], 1, inPiece)
	var out bytes.Buffer
	sum, rep, err := c.Rebuild(&out, 5, readers(s), testSize)
	if err != nil || !bytes.Equal(out.Bytes(), streams[5]) || sum != res.ShardSums[5] {
		t.Fatalf("Rebuild: %v", err)
	}
	if !slices.Equal(rep.Corrupt(), []int{0}) || rep.Faults[0].Block != 1 {
		t.Errorf("faults %v", rep.Faults)
	}
	for _, index := range []int{-1, 6} {
		if _, _, err := c.Rebuild(io.Discard, index, readers(s), testSize); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("Rebuild(%d) = %v", index, err)
		}
	}
}

func TestBlockDecoder(t *testing.T) {
	c := mustCode(t, 3, 2, testBS)
	data := randBytes(14, testSize)
	streams, res := encodeAll(t, c, data)
	l, _ := c.Layout(testSize)
	bd := l.NewBlockDecoder()
	units := unitsOf(l, streams)
	var got []byte
	for b := range l.Blocks() {
		var err error
		if got, err = bd.Decode(got, l.Extent(b), units(b, 0, 1, 2)); err != nil {
			t.Fatalf("block %d: %v", b, err)
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatal("blocks decoded to the wrong bytes")
	}
	// Piece 1 of block 2 is corrupt: the first try fails, the second with
	// the parity units succeeds; the report keeps both faults.
	u := units(2, 0, 1, 2)
	u[1] = bytes.Clone(u[1])
	u[1][3] ^= 1
	prefix := []byte("prefix")
	if out, err := bd.Decode(prefix, l.Extent(2), u); !errors.Is(err, ErrUnrecoverable) || string(out) != "prefix" {
		t.Fatalf("Decode with a corrupt unit and no parity = %v, returned %d bytes", err, len(out))
	}
	u[3], u[4] = units(2, 3, 4)[3], units(2, 3, 4)[4]
	if out, err := bd.Decode(prefix, l.Extent(2), u); err != nil || !bytes.Equal(out[6:], data[2*testBS:3*testBS]) || string(out[:6]) != "prefix" {
		t.Fatalf("Decode with parity: %v", err)
	}
	rep := bd.Report()
	if len(rep.Faults) != 2 || !slices.Equal(rep.Corrupt(), []int{1}) || rep.Degraded != 1 {
		t.Errorf("report %+v", rep)
	}
	// A unit of the wrong length is corrupt, not a panic.
	short := units(0, 0, 1, 2)
	short[0] = short[0][:10]
	if _, err := bd.Decode(nil, l.Extent(0), short); !errors.Is(err, ErrUnrecoverable) {
		t.Errorf("short unit: %v", err)
	}
	// Rebuild shard 4 block by block from shards 0, 2 and 3.
	var shard []byte
	var sum ShardSum
	for b := range l.Blocks() {
		var crc uint32
		var err error
		if shard, crc, err = bd.Rebuild(shard, 4, b, units(b, 0, 2, 3)); err != nil {
			t.Fatalf("Rebuild block %d: %v", b, err)
		}
		sum.Add(crc)
	}
	if !bytes.Equal(shard, streams[4]) || sum.Sum32() != res.ShardSums[4] {
		t.Fatal("BlockDecoder.Rebuild differs from the shard stream")
	}
	// Bad arguments.
	if _, err := bd.Decode(nil, l.Extent(0), units(0, 0)[:2]); !errors.Is(err, ErrInvalidParams) {
		t.Errorf("2 units: %v", err)
	}
	bad := []Extent{{}, {Block: 9, Lo: 0, Hi: 1, PieceLen: 334}, {Block: 0, Lo: 0, Hi: 1, First: 1, PieceLen: 334},
		{Block: 0, Lo: 5, Hi: 5, PieceLen: 334}, {Block: 3, Lo: 0, Hi: 402, Last: 3, PieceLen: 134}}
	for _, e := range bad {
		if _, err := bd.Decode(nil, e, units(0, 0, 1, 2)); !errors.Is(err, ErrRange) {
			t.Errorf("extent %+v: %v", e, err)
		}
	}
	if _, _, err := bd.Rebuild(nil, 5, 0, units(0, 0, 1, 2)); !errors.Is(err, ErrInvalidParams) {
		t.Errorf("Rebuild index 5: %v", err)
	}
	if _, _, err := bd.Rebuild(nil, 1, 4, units(0, 0, 1, 2)); !errors.Is(err, ErrRange) {
		t.Errorf("Rebuild block 4: %v", err)
	}
}

func TestDecodeWriteError(t *testing.T) {
	c := mustCode(t, 2, 1, testBS)
	streams, _ := encodeAll(t, c, randBytes(15, testSize))
	boom := errors.New("client went away")
	if _, err := c.Decode(&failingWriter{n: 1500, err: boom}, readers(streams), testSize); !errors.Is(err, boom) {
		t.Errorf("Decode = %v, want the write error", err)
	}
	if _, err := c.Decode(io.Discard, readers(streams)[:2], testSize); !errors.Is(err, ErrInvalidParams) {
		t.Errorf("Decode with 2 shards = %v", err)
	}
	if _, err := c.Decode(io.Discard, readers(streams), -1); !errors.Is(err, ErrInvalidParams) {
		t.Errorf("Decode size -1 = %v", err)
	}
}

// TestBlockDecoderLost decodes every block with a BlockDecoder for every
// set of up to m lost shards, including blocks whose last data piece is
// only partly data (so it is rebuilt aside, not in place).
func TestBlockDecoderLost(t *testing.T) {
	for _, km := range testCodes {
		c := mustCode(t, km.k, km.m, testBS)
		data := randBytes(16, testSize)
		streams, _ := encodeAll(t, c, data)
		subsets(c.Shards(), km.m, func(lost []int) {
			got, err := decodeBlocks(c, streams, lost, testSize, -1)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%d+%d lost %v: equal=%v, %v", km.k, km.m, lost, bytes.Equal(got, data), err)
			}
		})
	}
}

// TestBlockDecoderPieces checks Pieces against the clip for every extent
// of a few ranges, with all data pieces, with data pieces lost (rebuilt
// from parity) and with a corrupt one (an error, no bytes); and that
// ContentCRC, fed extent after extent, is the CRC32C of the range.
func TestBlockDecoderPieces(t *testing.T) {
	c := mustCode(t, 3, 2, testBS)
	data := randBytes(17, testSize)
	streams, _ := encodeAll(t, c, data)
	l, _ := c.Layout(testSize)
	bd := l.NewBlockDecoder()
	units := unitsOf(l, streams)
	for _, have := range [][]int{{0, 1, 2}, {1, 3, 4}, {0, 2, 4}, {2, 3, 4}} {
		checkRanges(t, fmt.Sprintf("shards %v", have), l, bd, data, func(e Extent) ([][]byte, error) {
			return bd.Pieces(e, units(e.Block, have...))
		})
	}
	u := units(1, 0, 1, 2)
	u[0] = bytes.Clone(u[0])
	u[0][0] ^= 1
	if p, err := bd.Pieces(l.Extent(1), u); !errors.Is(err, ErrUnrecoverable) || p != nil {
		t.Fatalf("corrupt piece without parity: %d pieces, %v", len(p), err)
	}
	if _, err := bd.Pieces(Extent{Block: 9, Hi: 1}, units(0, 0, 1, 2)); !errors.Is(err, ErrRange) {
		t.Fatalf("bad extent: %v", err)
	}
}

// checkRanges reads a few ranges of data (the clip l lays out) extent by
// extent through pieces, and checks the bytes and that bd's ContentCRC,
// fed extent after extent, is the CRC32C of the range.
func checkRanges(t *testing.T, what string, l Layout, bd *BlockDecoder, data []byte, pieces func(Extent) ([][]byte, error)) {
	t.Helper()
	for _, r := range []struct{ off, n int64 }{{0, testSize}, {1, 10}, {testBS - 5, 700}, {testSize - 3, 3}} {
		ext, err := l.Extents(r.off, r.n)
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		var crc uint32
		for _, e := range ext {
			ps, err := pieces(e)
			if err != nil {
				t.Fatalf("%s, range %+v, block %d: %v", what, r, e.Block, err)
			}
			for _, p := range ps {
				got = append(got, p...)
			}
			crc = bd.ContentCRC(crc)
		}
		if !bytes.Equal(got, data[r.off:r.off+r.n]) {
			t.Fatalf("%s, range %+v: wrong bytes", what, r)
		}
		if want := crc32.Checksum(got, castagnoli); crc != want {
			t.Fatalf("%s, range %+v: ContentCRC %08x, want %08x", what, r, crc, want)
		}
	}
}

// unitsOf returns a function that cuts unit b of the shards named in have
// out of the encoded shard streams, leaving the other indices nil.
func unitsOf(l Layout, streams [][]byte) func(b int64, have ...int) [][]byte {
	return func(b int64, have ...int) [][]byte {
		u := make([][]byte, len(streams))
		for _, i := range have {
			u[i] = streams[i][l.UnitOffset(b) : l.UnitOffset(b)+int64(l.UnitLen(b))]
		}
		return u
	}
}

// TestBlockDecoderSegmentPieces checks SegmentPieces against the clip as
// TestBlockDecoderPieces checks Pieces, with units cut into segments of
// several sizes: intact data pieces come back as slices of the segments
// (no copy); lost, corrupt, short or foreign ones make it decode as
// Pieces does, rebuilding from parity and reporting the fault.
func TestBlockDecoderSegmentPieces(t *testing.T) {
	c := mustCode(t, 3, 2, testBS)
	data := randBytes(18, testSize)
	streams, _ := encodeAll(t, c, data)
	other, _ := encodeAll(t, c, randBytes(19, testSize)) // another write of the same shape
	l, _ := c.Layout(testSize)
	units := unitsOf(l, streams)
	cut := func(u [][]byte, size int) [][][]byte {
		segs := make([][][]byte, len(u))
		for i, b := range u {
			for len(b) > 0 {
				k := min(size, len(b))
				segs[i] = append(segs[i], b[:k:k])
				b = b[k:]
			}
		}
		return segs
	}
	within := func(p []byte, segs [][][]byte) bool {
		for _, unit := range segs {
			for _, s := range unit {
				if startsIn(p, s) {
					return true
				}
			}
		}
		return false
	}
	for _, tc := range []struct {
		name      string
		have      []int
		damage    func(b int64, u [][]byte)
		zeroCopy  bool // every slice returned is one of the segments'
		faultedAt int  // index reported faulty, -1: none
	}{
		{"data pieces", []int{0, 1, 2}, nil, true, -1},
		{"data pieces and parity", []int{0, 1, 2, 3, 4}, nil, true, -1},
		{"a data piece lost", []int{1, 2, 3}, nil, false, -1},
		{"a corrupt piece", []int{0, 1, 2, 3}, func(b int64, u [][]byte) { u[1] = inverted(u[1], 5) }, false, 1},
		{"a corrupt trailer", []int{0, 1, 2, 4}, func(b int64, u [][]byte) { u[2] = inverted(u[2], len(u[2])-1) }, false, 2},
		{"a short unit", []int{0, 1, 2, 3}, func(b int64, u [][]byte) { u[0] = u[0][:len(u[0])-1] }, false, 0},
		{"a unit of another write", []int{0, 1, 2, 3, 4}, func(b int64, u [][]byte) {
			u[1] = other[1][l.UnitOffset(b) : l.UnitOffset(b)+int64(l.UnitLen(b))]
		}, false, 1},
	} {
		for _, size := range []int{1, 7, 100, 1 << 20} {
			for _, summed := range []bool{false, true} {
				name := fmt.Sprintf("%s, segments of %d, sums given %v", tc.name, size, summed)
				bd := l.NewBlockDecoder()
				checkRanges(t, name, l, bd, data, func(e Extent) ([][]byte, error) {
					u := units(e.Block, tc.have...)
					if tc.damage != nil {
						tc.damage(e.Block, u)
					}
					segs := cut(u, size)
					var sums []uint32
					if summed {
						sums = sumsOf(segs, e.Block, c.Shards())
					}
					pieces, err := bd.SegmentPieces(e, segs, sums)
					for _, p := range pieces {
						if tc.zeroCopy && !within(p, segs) {
							t.Fatalf("%s: a slice returned is a copy", name)
						}
					}
					return pieces, err
				})
				rep := bd.Report()
				switch {
				case tc.faultedAt < 0 && len(rep.Faults) > 0:
					t.Fatalf("%s: faults %v", name, rep.Faults)
				case tc.faultedAt >= 0 && (len(rep.Faults) == 0 || rep.Faults[0].Index != tc.faultedAt):
					t.Fatalf("%s: faults %v, want one at index %d", name, rep.Faults, tc.faultedAt)
				}
			}
		}
	}
	// A sum that does not match its unit costs the zero-copy path, not the
	// bytes: the unit is copied and verified by the decoder itself.
	bd := l.NewBlockDecoder()
	checkRanges(t, "a wrong sum", l, bd, data, func(e Extent) ([][]byte, error) {
		segs := cut(units(e.Block, 0, 1, 2), 100)
		sums := sumsOf(segs, e.Block, c.Shards())
		sums[e.First] ^= 1
		pieces, err := bd.SegmentPieces(e, segs, sums)
		if len(pieces) > 0 && within(pieces[0], segs) {
			t.Fatalf("block %d: a piece whose sum is wrong came back without a copy", e.Block)
		}
		return pieces, err
	})
	if f := bd.Report().Faults; len(f) > 0 {
		t.Fatalf("a wrong sum over intact bytes: faults %v", f)
	}
	segs := cut(units(0, 0, 1, 2), 64)
	if _, err := bd.SegmentPieces(l.Extent(0), segs, sumsOf(segs, 0, c.Shards())[:2]); !errors.Is(err, ErrInvalidParams) {
		t.Fatalf("2 sums for 5 units: %v", err)
	}
	u := units(1, 0, 1, 2)
	u[0] = inverted(u[0], 0)
	if p, err := bd.SegmentPieces(l.Extent(1), cut(u, 64), nil); !errors.Is(err, ErrUnrecoverable) || p != nil {
		t.Fatalf("corrupt piece without parity: %d pieces, %v", len(p), err)
	}
	if _, err := bd.SegmentPieces(Extent{Block: 9, Hi: 1}, cut(units(0, 0, 1, 2), 64), nil); !errors.Is(err, ErrRange) {
		t.Fatalf("bad extent: %v", err)
	}
	if _, err := bd.SegmentPieces(l.Extent(0), cut(units(0, 0, 1, 2), 64)[:2], nil); !errors.Is(err, ErrInvalidParams) {
		t.Fatalf("2 units: %v", err)
	}
}

// sumsOf is what a reader hands SegmentPieces: UnitPieceCRC of each unit
// at hand, for a code of n shards.
func sumsOf(units [][][]byte, block int64, n int) []uint32 {
	sums := make([]uint32, len(units))
	for i, segs := range units {
		if segs != nil {
			sums[i] = UnitPieceCRC(segs, i, block, n)
		}
	}
	return sums
}

// inverted returns a copy of b with byte i inverted.
func inverted(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 0xff
	return b
}

// startsIn reports whether p starts inside s's array.
func startsIn(p, s []byte) bool {
	s = s[:cap(s)]
	if len(s) == 0 || len(p) == 0 {
		return false
	}
	a, lo, hi := uintptr(unsafe.Pointer(&p[0])), uintptr(unsafe.Pointer(&s[0])), uintptr(unsafe.Pointer(&s[0]))+uintptr(len(s))
	return a >= lo && a < hi
}
