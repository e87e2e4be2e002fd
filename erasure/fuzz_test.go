package erasure

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

var (
	fuzzCodes      = []struct{ k, m int }{{1, 0}, {1, 2}, {2, 1}, {3, 2}, {4, 2}, {2, 0}, {5, 3}}
	fuzzBlockSizes = []int{1000, 3, 64, 257}
)

// FuzzDecode damages shard streams (bit flips, truncations, lost shards) at
// fuzz-chosen places and checks that Decode, DecodeRange, Rebuild and a
// BlockDecoder never panic and never return a wrong byte: each either
// returns exactly the right bytes, or fails with ErrUnrecoverable after
// writing only a correct prefix.
//
// muts is a list of 4-byte operations: kind, shard, offset (big-endian
// uint16, modulo the stream length). kind%4: 0 and 3 flip bit kind>>5 of
// the byte, 1 truncates the stream there, 2 loses the shard.
func FuzzDecode(f *testing.F) {
	f.Add(uint64(1), uint16(3401), uint8(3), uint8(0), uint16(100), uint16(2000), []byte{})
	f.Add(uint64(2), uint16(3401), uint8(0x13), uint8(0), uint16(0), uint16(3401), []byte{0, 0, 0, 10, 0x20, 4, 1, 0})
	f.Add(uint64(3), uint16(999), uint8(4), uint8(0), uint16(990), uint16(9), []byte{2, 1, 0, 0, 1, 0, 0, 200})
	f.Add(uint64(4), uint16(5000), uint8(6), uint8(2), uint16(777), uint16(1500), []byte{0, 2, 0, 80, 0x40, 3, 3, 1, 2, 7, 0, 0})
	f.Add(uint64(5), uint16(1), uint8(1), uint8(1), uint16(0), uint16(1), []byte{0, 0, 0, 0})
	f.Add(uint64(6), uint16(0), uint8(2), uint8(0), uint16(0), uint16(0), []byte{})
	f.Add(uint64(7), uint16(2000), uint8(0x24), uint8(3), uint16(300), uint16(1000), []byte{3, 0, 1, 2, 0xe0, 1, 0, 30, 1, 2, 0, 100})
	f.Fuzz(func(t *testing.T, seed uint64, sizeRaw uint16, codeSel, bsSel uint8, off, n uint16, muts []byte) {
		km := fuzzCodes[int(codeSel&0xf)%len(fuzzCodes)]
		c := mustCode(t, km.k, km.m, fuzzBlockSizes[int(bsSel)%len(fuzzBlockSizes)])
		size := int64(sizeRaw) % 6000
		data := randBytes(seed, int(size))
		streams, res := encodeAll(t, c, data)
		damaged, lost := damage(streams, muts)

		var out bytes.Buffer
		_, err := c.Decode(&out, readers(damaged, lost...), size)
		checkOutput(t, "Decode", out.Bytes(), data, err)

		o := int64(off) % (size + 1)
		cnt := int64(n) % (size - o + 1)
		out.Reset()
		_, err = c.DecodeRange(&out, readerAts(damaged, lost...), size, o, cnt)
		checkOutput(t, "DecodeRange", out.Bytes(), data[o:o+cnt], err)

		index := int(codeSel>>4) % c.Shards()
		out.Reset()
		sum, _, err := c.Rebuild(&out, index, readers(damaged, lost...), size)
		checkOutput(t, "Rebuild", out.Bytes(), streams[index], err)
		if err == nil && sum != res.ShardSums[index] {
			t.Fatalf("Rebuild sum %08x, want %08x", sum, res.ShardSums[index])
		}

		got, err := decodeBlocks(c, damaged, lost, size, -1)
		checkOutput(t, "BlockDecoder.Decode", got, data, err)
		got, err = decodeBlocks(c, damaged, lost, size, index)
		checkOutput(t, "BlockDecoder.Rebuild", got, streams[index], err)
	})
}

// damage applies muts to copies of streams and returns the shards lost.
func damage(streams [][]byte, muts []byte) ([][]byte, []int) {
	s := clone(streams)
	var lost []int
	for ; len(muts) >= 4; muts = muts[4:] {
		kind, i, at := muts[0], int(muts[1])%len(s), int(binary.BigEndian.Uint16(muts[2:]))
		if len(s[i]) == 0 {
			continue
		}
		at %= len(s[i])
		switch kind % 4 {
		case 0, 3:
			s[i][at] ^= 1 << (kind >> 5)
		case 1:
			s[i] = s[i][:at]
		case 2:
			lost = append(lost, i)
		}
	}
	return s, lost
}

// decodeBlocks decodes the clip with a BlockDecoder, as a client does, or
// rebuilds shard stream rebuild if it is not -1.
func decodeBlocks(c *Code, streams [][]byte, lost []int, size int64, rebuild int) ([]byte, error) {
	l, err := c.Layout(size)
	if err != nil {
		return nil, err
	}
	bd := l.NewBlockDecoder()
	var out []byte
	units := make([][]byte, c.Shards())
	for b := range l.Blocks() {
		for i, s := range streams {
			units[i] = nil
			if start, end := l.UnitOffset(b), l.UnitOffset(b)+int64(l.UnitLen(b)); end <= int64(len(s)) {
				units[i] = s[start:end]
			}
		}
		for _, i := range lost {
			units[i] = nil
		}
		if rebuild >= 0 {
			out, _, err = bd.Rebuild(out, rebuild, b, units)
		} else {
			out, err = bd.Decode(out, l.Extent(b), units)
		}
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// checkOutput checks that got is want, or an ErrUnrecoverable failure after a
// correct prefix.
func checkOutput(t *testing.T, what string, got, want []byte, err error) {
	t.Helper()
	switch {
	case err == nil && !bytes.Equal(got, want):
		t.Fatalf("%s returned %d wrong bytes (want %d) and no error", what, len(got), len(want))
	case err != nil && !errors.Is(err, ErrUnrecoverable):
		t.Fatalf("%s: %v, want ErrUnrecoverable", what, err)
	case err != nil && (len(got) > len(want) || !bytes.Equal(got, want[:len(got)])):
		t.Fatalf("%s wrote %d bytes that are not a prefix of the %d wanted, then %v", what, len(got), len(want), err)
	}
}
