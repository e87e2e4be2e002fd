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

	"github.com/clipstore/clipstore/internal/rawshard"
	pb "github.com/clipstore/clipstore/proto/storagepb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// rawConn is a raw connection to a node, as a client speaks it.
type rawConn struct {
	t      *testing.T
	c      net.Conn
	r      *bufio.Reader
	serves byte            // what the node said it serves
	header *pb.ShardHeader // of the last read's answer
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte(rawshard.Magic)); err != nil {
		t.Fatal(err)
	}
	rc := &rawConn{t: t, c: c, r: bufio.NewReader(c)}
	var answer [len(rawshard.Magic) + 1]byte
	if _, err := io.ReadFull(rc.r, answer[:]); err != nil || string(answer[:len(rawshard.Magic)]) != rawshard.Magic {
		t.Fatalf("raw handshake: answer %q, %v", answer, err)
	}
	rc.serves = answer[len(rawshard.Magic)]
	return rc
}

// startWrite sends a write request for header h.
func (rc *rawConn) startWrite(h *pb.ShardHeader) {
	rc.t.Helper()
	if err := rawshard.WriteRequest(rc.c, h); err != nil {
		rc.t.Fatal(err)
	}
}

// unit sends a piece and its trailer as one unit frame.
func (rc *rawConn) unit(p *pb.Piece) {
	rc.t.Helper()
	var hdr [rawshard.FrameHeaderSize]byte
	bufs := net.Buffers{rawshard.PutFrameHeader(hdr[:], rawshard.FrameUnit, p.Block, uint32(len(p.Data)+len(p.Trailer))), p.Data, p.Trailer}
	if _, err := bufs.WriteTo(rc.c); err != nil {
		rc.t.Fatal(err)
	}
}

// finish sends the finish frame.
func (rc *rawConn) finish(blocks int, checksum uint32) {
	rc.t.Helper()
	if err := rawshard.WriteMessage(rc.c, rawshard.FrameFinish, uint64(blocks), &pb.WriteFinish{Blocks: uint64(blocks), Checksum: &checksum}); err != nil {
		rc.t.Fatal(err)
	}
}

// answer reads a write's answer: the node's response, or its error.
func (rc *rawConn) answer() (*pb.WriteShardResponse, error) {
	rc.t.Helper()
	var hdr [rawshard.FrameHeaderSize]byte
	typ, _, n, err := rawshard.ReadFrameHeader(rc.r, hdr[:])
	if err != nil {
		rc.t.Fatalf("reading a write's answer: %v", err)
	}
	switch typ {
	case rawshard.FrameAnswer:
		resp := &pb.WriteShardResponse{}
		if err := rawshard.ReadMessage(rc.r, n, resp); err != nil {
			rc.t.Fatal(err)
		}
		return resp, nil
	case rawshard.FrameError:
		nodeErr, err := rawshard.ReadError(rc.r, n)
		if err != nil {
			rc.t.Fatal(err)
		}
		return nil, nodeErr
	}
	rc.t.Fatalf("a write answered with a frame %q", typ)
	return nil, nil
}

// write sends the whole shard s and returns the answer.
func (rc *rawConn) write(s *testShard) (*pb.WriteShardResponse, error) {
	rc.t.Helper()
	rc.startWrite(s.header)
	for _, p := range s.pieces {
		rc.unit(p)
	}
	rc.finish(len(s.pieces), s.checksum)
	return rc.answer()
}

// rawFrame is one frame of an answer: a unit, or a corrupt block.
type rawFrame struct {
	block   uint64
	unit    []byte
	corrupt bool
}

// read sends req and reads the whole answer: its frames, and its error
// (a status error from FrameError). The shard header the answer began
// with is left in rc.header.
func (rc *rawConn) read(req *pb.ReadShardRequest) ([]rawFrame, error) {
	rc.t.Helper()
	rc.header = nil
	if err := rawshard.WriteRequest(rc.c, req); err != nil {
		rc.t.Fatal(err)
	}
	var out []rawFrame
	var hdr [rawshard.FrameHeaderSize]byte
	for {
		typ, block, n, err := rawshard.ReadFrameHeader(rc.r, hdr[:])
		if err != nil {
			rc.t.Fatalf("after %d frames: %v", len(out), err)
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(rc.r, payload); err != nil {
			rc.t.Fatal(err)
		}
		switch typ {
		case rawshard.FrameHeader:
			h := &pb.ShardHeader{}
			if err := proto.Unmarshal(payload, h); err != nil || len(out) > 0 || rc.header != nil {
				rc.t.Fatalf("a header frame after %d frames: %v", len(out), err)
			}
			rc.header = h
			continue
		case rawshard.FrameEnd:
			return out, nil
		case rawshard.FrameError:
			return out, rawshard.ParseError(payload)
		case rawshard.FrameCorrupt:
			out = append(out, rawFrame{block: block, corrupt: true})
		case rawshard.FrameUnit:
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
		if (tc.code == codes.OK) != proto.Equal(rc.header, s.header) {
			t.Fatalf("%s: the answer's header %v, want %v", tc.name, rc.header, s.header)
		}
		wantUnits(t, frames, s, tc.first)
	}

	flipByte(t, shardPath(n.dirs[0], s.id()), 128+int64(2*unit)+17) // a byte of block 2's piece
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
	bad.c.Write(binary.BigEndian.AppendUint32([]byte{rawshard.RequestRead}, rawshard.MaxRequest+1))
	if _, err := bad.r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("after an oversized request: %v, want the connection closed", err)
	}

}

// TestRawWrites: a plain-text node takes WriteShard on a raw connection as
// it does over gRPC: the same checks, the same errors and nothing stored
// by a write that failed. A write refused at its finish leaves the
// connection ready for the next request; one refused before (a bad header,
// a bad piece, a wrong frame) is answered at once, and then closed.
func TestRawWrites(t *testing.T) {
	cfg := testConfig(t, 1)
	cfg.WriteIdleTimeout = 300 * time.Millisecond
	n := startNode(t, cfg)
	ctx := t.Context()
	r := rand.New(rand.NewPCG(43, 44))
	const k, m, bs = 4, 2, 4096
	ps := bs / k
	shard := func() *testShard { return makeShard(r, k, m, 1, bs, ps*5+100) } // 6 blocks, the last short
	stored := func(s *testShard) bool {
		_, err := n.client.StatShard(ctx, &pb.StatShardRequest{ShardId: s.id()})
		if err != nil && status.Code(err) != codes.NotFound {
			t.Fatal(err)
		}
		return err == nil
	}

	rc := dialRaw(t, n.addr)
	if rc.serves != rawshard.ServesReads|rawshard.ServesWrites {
		t.Fatalf("the node serves %b, want reads and writes", rc.serves)
	}
	s := shard()
	resp, err := rc.write(s)
	if err != nil || resp.Blocks != 6 || resp.Length != s.length || resp.Checksum != s.checksum || resp.Existed {
		t.Fatalf("raw write: %v, %v", resp, err)
	}
	if _, pieces, err := readShard(ctx, n.client, &pb.ReadShardRequest{ShardId: s.id()}); err != nil || len(pieces) != 6 {
		t.Fatalf("reading back over gRPC: %d pieces, %v", len(pieces), err)
	} else {
		for i, p := range pieces {
			if !bytes.Equal(p.Data, s.pieces[i].Data) || !bytes.Equal(p.Trailer, s.pieces[i].Trailer) {
				t.Fatalf("block %d read back differs", i)
			}
		}
	}
	// The same connection: the same shard again, then a read.
	if resp, err := rc.write(s); err != nil || !resp.Existed {
		t.Fatalf("writing an identical shard again: %v, %v; want Existed", resp, err)
	}
	frames, err := rc.read(&pb.ReadShardRequest{ShardId: s.id(), FirstBlock: 4})
	if err != nil || len(frames) != 2 {
		t.Fatalf("a read after writes on one connection: %d frames, %v", len(frames), err)
	}
	wantUnits(t, frames, s, 4)
	// Refused at the finish: the connection takes the next request.
	bad := shard()
	rc.startWrite(bad.header)
	for _, p := range bad.pieces {
		rc.unit(p)
	}
	rc.finish(len(bad.pieces), bad.checksum+1)
	if _, err := rc.answer(); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a finish with the wrong checksum: %v, want InvalidArgument", err)
	}
	if stored(bad) {
		t.Fatal("a shard refused at its finish was stored")
	}
	if resp, err := rc.write(bad); err != nil || resp.Existed {
		t.Fatalf("the same connection after a refused finish: %v, %v", resp, err)
	}

	flipped := shard()
	flipped.pieces[2] = &pb.Piece{Block: 2, Data: append([]byte{}, flipped.pieces[2].Data...), Trailer: flipped.pieces[2].Trailer}
	flipped.pieces[2].Data[9] ^= 1
	for _, tc := range []struct {
		name  string
		s     *testShard
		frame func(rc *rawConn, s *testShard) // sent after the header and two pieces
		code  codes.Code
	}{
		{"malformed shard id", &testShard{header: &pb.ShardHeader{ShardId: []byte{1}, ClipId: newID(r), DataShards: k, ParityShards: m, BlockSize: bs}},
			nil, codes.InvalidArgument},
		{"a corrupt piece", flipped, func(rc *rawConn, s *testShard) { rc.unit(s.pieces[2]) }, codes.InvalidArgument},
		{"a piece out of order", shard(), func(rc *rawConn, s *testShard) { rc.unit(s.pieces[3]) }, codes.InvalidArgument},
		{"a unit larger than a piece", shard(), func(rc *rawConn, s *testShard) {
			rc.unit(&pb.Piece{Block: 2, Data: make([]byte, ps+1), Trailer: s.pieces[2].Trailer})
		}, codes.InvalidArgument},
		{"a unit of a trailer only", shard(), func(rc *rawConn, s *testShard) {
			rc.unit(&pb.Piece{Block: 2, Trailer: s.pieces[2].Trailer})
		}, codes.InvalidArgument},
		{"a read's frame in a write", shard(), func(rc *rawConn, s *testShard) { rawshard.WriteEnd(rc.c) }, codes.InvalidArgument},
		{"silent past the idle timeout", shard(), func(*rawConn, *testShard) {}, codes.DeadlineExceeded},
	} {
		c := dialRaw(t, n.addr)
		c.startWrite(tc.s.header)
		if tc.frame != nil {
			c.unit(tc.s.pieces[0])
			c.unit(tc.s.pieces[1])
			tc.frame(c, tc.s)
		}
		if _, err := c.answer(); status.Code(err) != tc.code {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.code)
		}
		c.c.Close()
		if tc.frame != nil && stored(tc.s) {
			t.Fatalf("%s: the shard was stored", tc.name)
		}
	}

	// A second write of a shard being written is refused; the first goes on.
	first, second := dialRaw(t, n.addr), dialRaw(t, n.addr)
	busy := shard()
	first.startWrite(busy.header)
	first.unit(busy.pieces[0])
	waitFor(t, "the first write's temp file", func() bool { return len(tmpFiles(t, n.dirs)) > 0 })
	if _, err := second.write(busy); status.Code(err) != codes.Aborted {
		t.Fatalf("a concurrent write of one shard id: %v, want Aborted", err)
	}
	for _, p := range busy.pieces[1:] {
		first.unit(p)
	}
	first.finish(len(busy.pieces), busy.checksum)
	if _, err := first.answer(); err != nil {
		t.Fatalf("the first write, after a second was refused: %v", err)
	}

	// A client gone mid-write leaves nothing, and the id can be written.
	cut := shard()
	gone := dialRaw(t, n.addr)
	gone.startWrite(cut.header)
	gone.unit(cut.pieces[0])
	gone.c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := dialRaw(t, n.addr).write(cut)
		if err == nil && !resp.Existed {
			break
		}
		if status.Code(err) != codes.Aborted || time.Now().After(deadline) {
			t.Fatalf("writing a shard whose first writer went away: %v, %v", resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRawServes: a node serves on raw connections what it is configured
// to, says so in its handshake, refuses the rest with Unimplemented (the
// connection kept when the request was a read), and with both off does
// not answer the handshake at all but serves gRPC.
func TestRawServes(t *testing.T) {
	r := rand.New(rand.NewPCG(45, 46))
	s := makeShard(r, 2, 1, 0, 1024, 1500)
	for _, tc := range []struct {
		name                string
		noReads, noWrites   bool
		serves              byte
		readCode, writeCode codes.Code
	}{
		{"writes only", true, false, rawshard.ServesWrites, codes.Unimplemented, codes.OK},
		{"reads only", false, true, rawshard.ServesReads, codes.NotFound, codes.Unimplemented},
	} {
		cfg := testConfig(t, 1)
		cfg.NoRawReads, cfg.NoRawWrites = tc.noReads, tc.noWrites
		n := startNode(t, cfg)
		rc := dialRaw(t, n.addr)
		if rc.serves != tc.serves {
			t.Fatalf("%s: the node serves %b, want %b", tc.name, rc.serves, tc.serves)
		}
		if _, err := rc.read(&pb.ReadShardRequest{ShardId: s.id()}); status.Code(err) != tc.readCode {
			t.Fatalf("%s: read: %v, want %v", tc.name, err, tc.readCode)
		}
		if _, err := rc.write(s); status.Code(err) != tc.writeCode {
			t.Fatalf("%s: write: %v, want %v", tc.name, err, tc.writeCode)
		}
		rc.c.Close() // as a client does after a refused write: the node stops draining it
		n.stop()
	}

	off := testConfig(t, 1)
	off.NoRawReads, off.NoRawWrites = true, true
	plain := startNode(t, off)
	c, err := net.DialTimeout("tcp", plain.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte(rawshard.Magic))
	answer := make([]byte, len(rawshard.Magic))
	if _, err := io.ReadFull(c, answer); err == nil && string(answer) == rawshard.Magic {
		t.Fatal("a node with raw transfers off answered the raw handshake")
	}
	if _, err := plain.client.StatShard(t.Context(), &pb.StatShardRequest{ShardId: s.id()}); status.Code(err) != codes.NotFound {
		t.Fatalf("gRPC on a node with raw transfers off: %v", err)
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

// waitFor polls cond until it holds, for at most 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
	}
}

// TestRawWritesLargePieces: pieces larger than a directFile's staging
// buffer, received straight into it (with O_DIRECT once it fills) or
// through a buffer (--buffered-writes), make the same file as the same
// shard written over gRPC; a corrupt piece after the first flushes leaves
// nothing, not even a temp file.
func TestRawWritesLargePieces(t *testing.T) {
	r := rand.New(rand.NewPCG(47, 48))
	const k, m, bs = 2, 1, 4 << 20 // 2 MiB pieces
	s := makeShard(r, k, m, 2, bs, 2*(bs/k)+12345)
	ref := startNode(t, testConfig(t, 1))
	if _, err := writeShard(t.Context(), ref.client, s); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(shardPath(ref.dirs[0], s.id()))
	if err != nil {
		t.Fatal(err)
	}
	bad := makeShard(r, k, m, 2, bs, 3*(bs/k))
	bad.pieces[1].Data[bs/k-1] ^= 0x80
	for _, buffered := range []bool{false, true} {
		cfg := testConfig(t, 1)
		cfg.BufferedWrites = buffered
		n := startNode(t, cfg)
		rc := dialRaw(t, n.addr)
		if resp, err := rc.write(s); err != nil || resp.Length != s.length {
			t.Fatalf("buffered %v: %v, %v", buffered, resp, err)
		}
		got, err := os.ReadFile(shardPath(n.dirs[0], s.id()))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("buffered %v: the raw-written file (%d bytes, %v) differs from the gRPC-written one (%d bytes)",
				buffered, len(got), err, len(want))
		}
		if _, err := rc.write(bad); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("buffered %v: a corrupt second piece: %v, want InvalidArgument", buffered, err)
		}
		if _, err := os.Stat(shardPath(n.dirs[0], bad.id())); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("buffered %v: the corrupt shard's file: %v", buffered, err)
		}
		waitFor(t, "the refused write's temp file to go", func() bool { return len(tmpFiles(t, n.dirs)) == 0 })
	}
}
