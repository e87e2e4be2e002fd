package rawshard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	pb "github.com/clipstore/clipstore/proto/storagepb"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func TestRequestRoundTrip(t *testing.T) {
	reqs := []proto.Message{
		&pb.ReadShardRequest{ShardId: bytes.Repeat([]byte{7}, 16), FirstBlock: 3, BlockCount: 9, SkipCorrupt: true},
		&pb.ShardHeader{ShardId: bytes.Repeat([]byte{8}, 16), ClipId: bytes.Repeat([]byte{9}, 16), Index: 5,
			DataShards: 4, ParityShards: 2, BlockSize: 4 << 20, CommitDeadlineUnixNano: 1e18},
	}
	var buf bytes.Buffer
	for _, req := range reqs {
		if err := WriteRequest(&buf, req); err != nil {
			t.Fatal(err)
		}
	}
	for _, req := range reqs {
		got, err := ReadRequest(&buf)
		if err != nil || !proto.Equal(got, req) {
			t.Fatalf("read back %v, %v; want %v", got, err, req)
		}
	}
	if _, err := ReadRequest(&buf); !errors.Is(err, io.EOF) {
		t.Fatalf("between requests: %v, want io.EOF", err)
	}
	if err := WriteRequest(io.Discard, &pb.WriteFinish{}); err == nil {
		t.Error("a WriteFinish was written as a request")
	}
}

func TestMessageFrames(t *testing.T) {
	sum := uint32(0xdeadbeef)
	var buf bytes.Buffer
	if err := WriteMessage(&buf, FrameFinish, 12, &pb.WriteFinish{Blocks: 12, Checksum: &sum}); err != nil {
		t.Fatal(err)
	}
	if err := WriteMessage(&buf, FrameAnswer, 0, &pb.WriteShardResponse{Blocks: 12, Length: 1 << 30, Checksum: sum}); err != nil {
		t.Fatal(err)
	}
	var b [FrameHeaderSize]byte
	typ, block, n, err := ReadFrameHeader(&buf, b[:])
	var fin pb.WriteFinish
	if err == nil {
		err = ReadMessage(&buf, n, &fin)
	}
	if err != nil || typ != FrameFinish || block != 12 || fin.GetBlocks() != 12 || fin.GetChecksum() != sum {
		t.Fatalf("finish frame: %q %d %v, %v", typ, block, &fin, err)
	}
	typ, _, n, err = ReadFrameHeader(&buf, b[:])
	var ans pb.WriteShardResponse
	if err == nil {
		err = ReadMessage(&buf, n, &ans)
	}
	if err != nil || typ != FrameAnswer || ans.Length != 1<<30 {
		t.Fatalf("answer frame: %q %v, %v", typ, &ans, err)
	}
	if err := WriteMessage(io.Discard, FrameUnit, 0, &fin); err == nil {
		t.Error("a unit frame was written with a message")
	}
	if err := ReadMessage(bytes.NewReader([]byte{0xff}), 1, &ans); err == nil {
		t.Error("a message of one bad byte was read")
	}
}

func TestBadRequests(t *testing.T) {
	valid, _ := proto.Marshal(&pb.ReadShardRequest{ShardId: []byte{1}})
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"length cut short", []byte{RequestRead, 0, 0}},
		{"oversized", binary.BigEndian.AppendUint32([]byte{RequestRead}, MaxRequest+1)},
		{"body cut short", append(binary.BigEndian.AppendUint32([]byte{RequestRead}, uint32(len(valid))), valid[:1]...)},
		{"not protobuf", append(binary.BigEndian.AppendUint32([]byte{RequestWrite}, 3), 0xff, 0xff, 0xff)},
		{"unknown kind", append(binary.BigEndian.AppendUint32([]byte{'Q'}, uint32(len(valid))), valid...)},
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
		{"finish", FrameFinish, 20, true},
		{"answer", FrameAnswer, 20, true},
		{"header", FrameHeader, 60, true},
		{"oversized header", FrameHeader, MaxRequest + 1, false},
		{"oversized finish", FrameFinish, MaxRequest + 1, false},
		{"oversized answer", FrameAnswer, MaxRequest + 1, false},
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
	info := &errdetails.ErrorInfo{Reason: "CORRUPT_PIECE", Domain: "storage.clipstore", Metadata: map[string]string{"block": "7"}}
	withInfo, _ := status.New(codes.DataLoss, "piece 7 is corrupt").WithDetails(info)
	for _, tc := range []struct {
		name     string
		err      error
		code     codes.Code
		msgLen   int
		hasInfo  bool
		writeErr bool
	}{
		{"with details", withInfo.Err(), codes.DataLoss, len("piece 7 is corrupt"), true, false},
		{"long message cut", status.Error(codes.NotFound, strings.Repeat("x", 2*MaxError)), codes.NotFound, MaxError / 2, false, false},
		{"not a status", errors.New("disk on fire"), codes.Unknown, len("disk on fire"), false, false},
		{"code OK", status.Error(codes.OK, ""), 0, 0, false, true},
	} {
		var buf bytes.Buffer
		err := WriteError(&buf, tc.err)
		if tc.writeErr {
			if err == nil {
				t.Errorf("%s: written", tc.name)
			}
			continue
		}
		var b [FrameHeaderSize]byte
		typ, _, n, err := ReadFrameHeader(&buf, b[:])
		if err != nil || typ != FrameError || n > MaxError {
			t.Fatalf("%s: error frame header: %q %d, %v", tc.name, typ, n, err)
		}
		nodeErr, err := ReadError(&buf, n)
		if err != nil {
			t.Fatalf("%s: reading the error frame: %v", tc.name, err)
		}
		st := status.Convert(nodeErr)
		if st.Code() != tc.code || len(st.Message()) != tc.msgLen {
			t.Errorf("%s: parsed %v (%d bytes of message)", tc.name, st.Code(), len(st.Message()))
		}
		if got := len(st.Details()) == 1; got != tc.hasInfo {
			t.Errorf("%s: details %v", tc.name, st.Details())
		} else if got && !proto.Equal(st.Details()[0].(*errdetails.ErrorInfo), info) {
			t.Errorf("%s: details %v, want %v", tc.name, st.Details()[0], info)
		}
	}
	if _, err := ReadError(bytes.NewReader([]byte{1, 2}), 5); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("an error payload cut short: %v", err)
	}
	if err := ParseError([]byte{0xff}); status.Code(err) != codes.Unknown || err == nil {
		t.Fatalf("a 1-byte error payload: %v", err)
	}
	if err := ParseError(nil); err == nil || status.Code(err) != codes.Unknown {
		t.Fatalf("an empty error payload (code OK): %v", err)
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
	req.Reset()
	WriteRequest(&req, &pb.ShardHeader{ShardId: []byte("0123456789abcdef"), Index: 3, DataShards: 4, ParityShards: 2})
	f.Add(req.Bytes())
	var b [FrameHeaderSize]byte
	f.Add(PutFrameHeader(b[:], FrameUnit, 7, 1<<20))
	var fin bytes.Buffer
	WriteMessage(&fin, FrameFinish, 3, &pb.WriteFinish{Blocks: 3})
	f.Add(fin.Bytes())
	var e bytes.Buffer
	WriteError(&e, status.Error(codes.NotFound, "shard not found"))
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
		switch typ {
		case FrameError:
			payload := make([]byte, n)
			if _, err := io.ReadFull(r, payload); err == nil {
				ParseError(payload) // any code, any message: never a panic
			}
		case FrameFinish:
			ReadMessage(r, n, &pb.WriteFinish{}) // never a panic
		case FrameAnswer:
			ReadMessage(r, n, &pb.WriteShardResponse{})
		case FrameHeader:
			ReadMessage(r, n, &pb.ShardHeader{})
		}
	})
}
