package server_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/rawread"
	pb "github.com/clipstore/clipstore/proto/storagepb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// rawConn is a raw read connection to a node, as a client speaks it.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte(rawread.Magic)); err != nil {
		t.Fatal(err)
	}
	rc := &rawConn{t: t, c: c, r: bufio.NewReader(c)}
	var answer [len(rawread.Magic)]byte
	if _, err := io.ReadFull(rc.r, answer[:]); err != nil || string(answer[:]) != rawread.Magic {
		t.Fatalf("raw handshake: answer %q, %v", answer, err)
	}
	return rc
}

// rawFrame is one frame of an answer: a unit, or a corrupt block.
type rawFrame struct {
	block   uint64
	unit    []byte
	corrupt bool
}

// read sends req and reads the whole answer: its frames, and its error
// (a status error from FrameError).
func (rc *rawConn) read(req *pb.ReadShardRequest) ([]rawFrame, error) {
	rc.t.Helper()
	if err := rawread.WriteRequest(rc.c, req); err != nil {
		rc.t.Fatal(err)
	}
	var out []rawFrame
	var hdr [rawread.FrameHeaderSize]byte
	for {
		typ, block, n, err := rawread.ReadFrameHeader(rc.r, hdr[:])
		if err != nil {
			rc.t.Fatalf("after %d frames: %v", len(out), err)
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(rc.r, payload); err != nil {
			rc.t.Fatal(err)
		}
		switch typ {
		case rawread.FrameEnd:
			return out, nil
		case rawread.FrameError:
			return out, rawread.ParseError(payload)
		case rawread.FrameCorrupt:
			out = append(out, rawFrame{block: block, corrupt: true})
		case rawread.FrameUnit:
			out = append(out, rawFrame{block: block, unit: payload})
		}
	}
}

// wantUnits checks that frames are s's units from block first on.
func wantUnits(t *testing.T, frames []rawFrame, s *testShard, first int) {
	t.Helper()
	for i, f := range frames {
		p := s.pieces[first+i]
		if f.corrupt || f.block != p.Block || !bytes.Equal(f.unit, append(append([]byte{}, p.Data...), p.Trailer...)) {
			t.Fatalf("frame %d: block %d (corrupt %v, %d bytes), want block %d's unit", i, f.block, f.corrupt, len(f.unit), p.Block)
		}
	}
}

// TestRawReads: a plain-text node answers ReadShard on a raw connection
// as it does over gRPC, on the same port: whole shards and ranges, unit by
// unit; errors with gRPC's codes, after which the connection takes the
// next request; corrupt pieces refused, or reported in place with
// skip_corrupt. A malformed request ends the connection. A node with raw
// reads off does not answer the handshake, and serves gRPC.
func TestRawReads(t *testing.T) {
	n := startNode(t, testConfig(t, 1))
	ctx := t.Context()
	r := rand.New(rand.NewPCG(41, 42))
	const k, m, bs = 4, 2, 4096
	ps := bs / k
	unit := ps + 4*(k+m) + 4
	s := makeShard(r, k, m, 1, bs, ps*5+100) // 6 blocks, the last short
	if _, err := writeShard(ctx, n.client, s); err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, n.addr)
	for _, tc := range []struct {
		name        string
		req         *pb.ReadShardRequest
		first, want int // the units expected, from block first
		code        codes.Code
	}{
		{"whole shard", &pb.ReadShardRequest{ShardId: s.id()}, 0, 6, codes.OK},
		{"a range", &pb.ReadShardRequest{ShardId: s.id(), FirstBlock: 2, BlockCount: 3}, 2, 3, codes.OK},
		{"the last block", &pb.ReadShardRequest{ShardId: s.id(), FirstBlock: 5}, 5, 1, codes.OK},
		{"unknown shard", &pb.ReadShardRequest{ShardId: newID(r)}, 0, 0, codes.NotFound},
		{"past the end", &pb.ReadShardRequest{ShardId: s.id(), FirstBlock: 7}, 0, 0, codes.OutOfRange},
		{"range past the end", &pb.ReadShardRequest{ShardId: s.id(), FirstBlock: 4, BlockCount: 3}, 0, 0, codes.OutOfRange},
		{"malformed shard id", &pb.ReadShardRequest{ShardId: []byte{1, 2, 3}}, 0, 0, codes.InvalidArgument},
		{"again after errors", &pb.ReadShardRequest{ShardId: s.id(), FirstBlock: 1}, 1, 5, codes.OK},
	} {
		frames, err := rc.read(tc.req)
		if status.Code(err) != tc.code || len(frames) != tc.want {
			t.Fatalf("%s: %d frames, %v; want %d, code %v", tc.name, len(frames), err, tc.want, tc.code)
		}
		wantUnits(t, frames, s, tc.first)
	}

	// A byte of block 2's piece flipped.
	f, err := os.OpenFile(shardPath(n.dirs[0], s.id()), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	off := 128 + int64(2*unit) + 17
	b := make([]byte, 1)
	f.ReadAt(b, off)
	b[0] ^= 0x10
	f.WriteAt(b, off)
	f.Close()
	frames, err := rc.read(&pb.ReadShardRequest{ShardId: s.id()})
	if status.Code(err) != codes.DataLoss || len(frames) != 2 {
		t.Fatalf("corrupt block 2: %d frames, %v; want 2, DataLoss", len(frames), err)
	}
	wantUnits(t, frames, s, 0)
	frames, err = rc.read(&pb.ReadShardRequest{ShardId: s.id(), SkipCorrupt: true})
	if err != nil || len(frames) != 6 || !frames[2].corrupt || frames[2].block != 2 {
		t.Fatalf("skip_corrupt: %d frames, %v", len(frames), err)
	}
	wantUnits(t, frames[3:], s, 3)

	// gRPC on the same port, meanwhile.
	if _, pieces, err := readShard(ctx, n.client, &pb.ReadShardRequest{ShardId: s.id(), FirstBlock: 3}); err != nil || len(pieces) != 3 {
		t.Fatalf("ReadShard over gRPC beside raw reads: %d pieces, %v", len(pieces), err)
	}

	// A request longer than any: the node hangs up.
	bad := dialRaw(t, n.addr)
	bad.c.Write(binary.BigEndian.AppendUint32(nil, rawread.MaxRequest+1))
	if _, err := bad.r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("after an oversized request: %v, want the connection closed", err)
	}

	off2 := testConfig(t, 1)
	off2.NoRawReads = true
	plain := startNode(t, off2)
	c, err := net.DialTimeout("tcp", plain.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte(rawread.Magic))
	answer := make([]byte, len(rawread.Magic))
	if _, err := io.ReadFull(c, answer); err == nil && string(answer) == rawread.Magic {
		t.Fatal("a node with raw reads off answered the raw handshake")
	}
	if _, err := plain.client.StatShard(ctx, &pb.StatShardRequest{ShardId: s.id()}); status.Code(err) != codes.NotFound {
		t.Fatalf("gRPC on a node with raw reads off: %v", err)
	}
}

// TestRawShutdown: a node shuts down promptly with a raw connection open
// and idle, and closes it.
func TestRawShutdown(t *testing.T) {
	n := startNode(t, testConfig(t, 1))
	rc := dialRaw(t, n.addr)
	start := time.Now()
	n.stop()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("shutdown took %v with an idle raw connection", d)
	}
	if _, err := rc.r.ReadByte(); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		var ne net.Error
		if !errors.As(err, &ne) || ne.Timeout() {
			t.Fatalf("raw connection after shutdown: %v, want it closed", err)
		}
	}
}
