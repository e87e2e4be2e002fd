package rawread

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	pb "github.com/clipstore/clipstore/proto/storagepb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func TestRequestRoundTrip(t *testing.T) {
	req := &pb.ReadShardRequest{ShardId: bytes.Repeat([]byte{7}, 16), FirstBlock: 3, BlockCount: 9, SkipCorrupt: true}
	var buf bytes.Buffer
	if err := WriteRequest(&buf, req); err != nil {
		t.Fatal(err)
	}
	got, err := ReadRequest(&buf)
	if err != nil || !proto.Equal(got, req) {
		t.Fatalf("read back %v, %v; want %v", got, err, req)
	}
	if _, err := ReadRequest(&buf); !errors.Is(err, io.EOF) {
		t.Fatalf("between requests: %v, want io.EOF", err)
	}
}

func TestBadRequests(t *testing.T) {
	valid, _ := proto.Marshal(&pb.ReadShardRequest{ShardId: []byte{1}})
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"length cut short", []byte{0, 0}},
		{"oversized", binary.BigEndian.AppendUint32(nil, MaxRequest+1)},
		{"body cut short", append(binary.BigEndian.AppendUint32(nil, uint32(len(valid))), valid[:1]...)},
		{"not protobuf", append(binary.BigEndian.AppendUint32(nil, 3), 0xff, 0xff, 0xff)},
	} {
		if _, err := ReadRequest(bytes.NewReader(tc.in)); err == nil || errors.Is(err, io.EOF) {
			t.Errorf("%s: %v, want an error other than io.EOF", tc.name, err)
		}
	}
	if err := WriteRequest(io.Discard, &pb.ReadShardRequest{ShardId: make([]byte, MaxRequest)}); err == nil {
		t.Error("an oversized request was written")
	}
}

func TestFrameHeaders(t *testing.T) {
	var b [FrameHeaderSize]byte
	for _, tc := range []struct {
		name   string
		typ    byte
		length uint32
		ok     bool
	}{
		{"unit", FrameUnit, 1 << 20, true},
		{"corrupt", FrameCorrupt, 0, true},
		{"end", FrameEnd, 0, true},
		{"error", FrameError, 100, true},
		{"unknown type", 'Z', 0, false},
		{"end with a payload", FrameEnd, 1, false},
		{"corrupt with a payload", FrameCorrupt, 5, false},
		{"oversized error", FrameError, MaxError + 1, false},
	} {
		typ, block, length, err := ReadFrameHeader(bytes.NewReader(PutFrameHeader(b[:], tc.typ, 42, tc.length)), b[:])
		switch {
		case tc.ok && (err != nil || typ != tc.typ || block != 42 || length != tc.length):
			t.Errorf("%s: %q %d %d, %v", tc.name, typ, block, length, err)
		case !tc.ok && err == nil:
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if _, _, _, err := ReadFrameHeader(bytes.NewReader(b[:5]), b[:]); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a header cut short: %v", err)
	}
}

func TestErrorFrames(t *testing.T) {
	var buf bytes.Buffer
	long := strings.Repeat("x", 2*MaxError)
	if err := WriteError(&buf, codes.DataLoss, long); err != nil {
		t.Fatal(err)
	}
	var b [FrameHeaderSize]byte
	typ, _, n, err := ReadFrameHeader(&buf, b[:])
	if err != nil || typ != FrameError || n != MaxError {
		t.Fatalf("error frame header: %q %d, %v", typ, n, err)
	}
	payload := make([]byte, n)
	io.ReadFull(&buf, payload)
	st := status.Convert(ParseError(payload))
	if st.Code() != codes.DataLoss || len(st.Message()) != MaxError-4 {
		t.Fatalf("parsed %v (%d bytes of message)", st.Code(), len(st.Message()))
	}
	if err := ParseError([]byte{1}); status.Code(err) == codes.DataLoss || err == nil {
		t.Fatalf("a 1-byte error payload: %v", err)
	}
}

// FuzzFrames feeds arbitrary bytes to both sides' parsers: a node reading
// requests and a client reading an answer's frames. Neither may panic or
// accept what it cannot carry: a request read back re-encodes to itself,
// and a frame header read back re-encodes to the bytes read.
func FuzzFrames(f *testing.F) {
	var req bytes.Buffer
	WriteRequest(&req, &pb.ReadShardRequest{ShardId: []byte("0123456789abcdef"), FirstBlock: 2, BlockCount: 3, SkipCorrupt: true})
	f.Add(req.Bytes())
	var b [FrameHeaderSize]byte
	f.Add(PutFrameHeader(b[:], FrameUnit, 7, 1<<20))
	var e bytes.Buffer
	WriteError(&e, codes.NotFound, "shard not found")
	f.Add(e.Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		if got, err := ReadRequest(bytes.NewReader(in)); err == nil {
			var again bytes.Buffer
			if err := WriteRequest(&again, got); err != nil {
				t.Fatalf("a request read back does not write: %v", err)
			}
			back, err := ReadRequest(&again)
			if err != nil || !proto.Equal(back, got) {
				t.Fatalf("request round trip: %v, %v", back, err)
			}
		}
		var hdr [FrameHeaderSize]byte
		r := bytes.NewReader(in)
		typ, block, n, err := ReadFrameHeader(r, hdr[:])
		if err != nil {
			return
		}
		var again [FrameHeaderSize]byte
		if !bytes.Equal(PutFrameHeader(again[:], typ, block, n), in[:FrameHeaderSize]) {
			t.Fatalf("frame header %q %d %d does not re-encode to its bytes", typ, block, n)
		}
		if typ == FrameError {
			payload := make([]byte, n)
			if _, err := io.ReadFull(r, payload); err == nil {
				ParseError(payload) // any code, any message: never a panic
			}
		}
	})
}
