package server

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func testHeader() ShardHeader {
	h := ShardHeader{Index: 5, DataShards: 4, ParityShards: 2, BlockSize: 1 << 20, CommitDeadline: 1_800_000_000_000_000_000}
	for i := range h.ShardID {
		h.ShardID[i] = byte(i + 1)
		h.ClipID[i] = byte(0xf0 - i)
	}
	return h
}

func TestHeaderRoundTrip(t *testing.T) {
	h := testHeader()
	b := marshalHeader(&h)
	if len(b) != headerSize {
		t.Fatalf("header is %d bytes, want %d", len(b), headerSize)
	}
	got, err := parseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if *got != h {
		t.Fatalf("round trip: got %+v, want %+v", *got, h)
	}
}

// TestHeaderDamageDetected flips every bit of the header in turn: each flip
// must be reported as corruption.
func TestHeaderDamageDetected(t *testing.T) {
	h := testHeader()
	b := marshalHeader(&h)
	for i := range headerSize * 8 {
		c := append([]byte(nil), b...)
		c[i/8] ^= 1 << (i % 8)
		if _, err := parseHeader(c); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("bit %d flipped: err %v, want ErrCorrupt", i, err)
		}
	}
	if _, err := parseHeader(b[:headerSize-1]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("short header: %v", err)
	}
}

func TestGeometry(t *testing.T) {
	h := testHeader() // 4+2, 1 MiB blocks: pieces of 256 KiB, trailers of 28 bytes
	unit := int64(256<<10 + 28)
	cases := []struct {
		size          int64
		blocks        uint64
		length        uint64
		wantCorrupted bool
	}{
		{headerSize, 0, 0, false},
		{headerSize + 1 + 28, 1, 1, false},
		{headerSize + unit, 1, 256 << 10, false},
		{headerSize + 3*unit + 100 + 28, 4, 3*256<<10 + 100, false},
		{headerSize - 1, 0, 0, true},
		{headerSize + 28, 0, 0, true},       // a trailer without a piece
		{headerSize + unit + 5, 0, 0, true}, // ends inside a trailer
	}
	for _, tc := range cases {
		blocks, length, err := h.geometry(tc.size)
		if tc.wantCorrupted {
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("size %d: err %v, want ErrCorrupt", tc.size, err)
			}
			continue
		}
		if err != nil || blocks != tc.blocks || length != tc.length {
			t.Errorf("size %d: %d blocks, %d bytes, %v; want %d, %d", tc.size, blocks, length, err, tc.blocks, tc.length)
		}
	}
}

func TestShardPathIsLocalAndUnique(t *testing.T) {
	id := ShardID{0: 0x01, 14: 0xab, 15: 0xcd}
	p := id.relPath()
	if p != "shards/cd/01"+strings.Repeat("0", 26)+"abcd" || !filepath.IsLocal(p) {
		t.Fatalf("path %q", p)
	}
	if _, ok := parseShardIDHex(strings.ToUpper(id.String())); ok {
		t.Fatal("upper-case name accepted: two names for one id")
	}
}

func FuzzParseHeader(f *testing.F) {
	h := testHeader()
	f.Add(marshalHeader(&h))
	f.Add(make([]byte, headerSize))
	f.Add([]byte("CLIPSHRD"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseHeader(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if err := got.validate(0); err != nil {
			t.Fatalf("accepted an invalid header: %v", err)
		}
		if again := marshalHeader(got); string(again) != string(b[:headerSize]) {
			t.Fatal("accepted header does not re-encode to the same bytes")
		}
		// The geometry of any file size is either an error or consistent.
		for _, size := range []int64{0, headerSize, headerSize + 1, 1 << 30} {
			blocks, length, err := got.geometry(size)
			if err == nil && length > uint64(size) {
				t.Fatalf("size %d: %d blocks with %d bytes", size, blocks, length)
			}
		}
	})
}

// FuzzParseShardID checks that no input reaching a shard's file name can
// name a path outside the shard tree, and that ids and names map one to one.
func FuzzParseShardID(f *testing.F) {
	f.Add([]byte("0123456789abcdef"), "0123456789abcdef0123456789abcdef")
	f.Add([]byte("../../etc/passwd"), "../../../../etc/passwd0000000000")
	f.Add([]byte{}, "%2e%2e%2f")
	f.Fuzz(func(t *testing.T, wire []byte, name string) {
		if id, err := ParseShardID(wire); err == nil {
			p := id.relPath()
			if !filepath.IsLocal(p) || !strings.HasPrefix(p, shardsDir+"/") || strings.Contains(p, "..") {
				t.Fatalf("id %x maps to %q", wire, p)
			}
			if back, ok := parseShardIDHex(filepath.Base(p)); !ok || back != id {
				t.Fatalf("file name of %x does not parse back", wire)
			}
		} else if !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("error %v is not ErrInvalidArgument", err)
		}
		if id, ok := parseShardIDHex(name); ok && id.String() != name {
			t.Fatalf("name %q accepted as %s", name, id)
		}
	})
}
