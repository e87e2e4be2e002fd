package server_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/clipstore/clipstore/internal/rpcerr"
	pb "github.com/clipstore/clipstore/proto/storagepb"
	"github.com/clipstore/clipstore/server"
	"github.com/clipstore/clipstore/server/faultfs"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func TestWriteReadRoundTrip(t *testing.T) {
	n := startNode(t, testConfig(t, 1))
	r := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		name              string
		k, m, index, bs   int
		length            int
		wantBlocks        int
		wantLastPieceSize int
	}{
		{"empty", 4, 2, 0, 4096, 0, 0, 0},
		{"one byte", 4, 2, 5, 4096, 1, 1, 1},
		{"one full piece", 4, 2, 1, 4096, 1024, 1, 1024},
		{"short last piece", 3, 2, 4, 1000, 334*3 + 10, 4, 10},
		{"many full", 10, 4, 13, 1 << 16, 6554 * 7, 7, 6554},
		{"k=1 m=0", 1, 0, 0, 777, 777*3 + 1, 4, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			s := makeShard(r, tc.k, tc.m, tc.index, tc.bs, tc.length)
			resp, err := writeShard(ctx, n.client, s)
			if err != nil {
				t.Fatalf("write: %v", err)
			}
			if resp.Blocks != uint64(tc.wantBlocks) || resp.Length != uint64(tc.length) || resp.Checksum != s.checksum || resp.Existed {
				t.Fatalf("write response %v, want %d blocks, %d bytes, checksum %08x", resp, tc.wantBlocks, tc.length, s.checksum)
			}
			h, pieces, err := readShard(ctx, n.client, &pb.ReadShardRequest{ShardId: s.id()})
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !proto.Equal(h, s.header) {
				t.Fatalf("header %v, want %v", h, s.header)
			}
			assertPieces(t, pieces, s.pieces)
			if tc.wantBlocks > 0 && len(pieces[len(pieces)-1].Data) != tc.wantLastPieceSize {
				t.Fatalf("last piece %d bytes, want %d", len(pieces[len(pieces)-1].Data), tc.wantLastPieceSize)
			}
			st, err := n.client.StatShard(ctx, &pb.StatShardRequest{ShardId: s.id()})
			if err != nil {
				t.Fatalf("stat: %v", err)
			}
			if st.Shard.Checksum != s.checksum || st.Shard.Blocks != uint64(tc.wantBlocks) || st.Shard.Length != uint64(tc.length) {
				t.Fatalf("stat %v, want checksum %08x", st.Shard, s.checksum)
			}
			// Every sub-range reads back the same pieces.
			for first := range tc.wantBlocks {
				for count := 1; first+count <= tc.wantBlocks; count++ {
					_, got, err := readShard(ctx, n.client, &pb.ReadShardRequest{
						ShardId: s.id(), FirstBlock: uint64(first), BlockCount: uint64(count)})
					if err != nil {
						t.Fatalf("read [%d,+%d): %v", first, count, err)
					}
					assertPieces(t, got, s.pieces[first:first+count])
				}
			}
		})
	}
}

func assertPieces(t testing.TB, got, want []*pb.Piece) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d pieces, want %d", len(got), len(want))
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("piece %d (block %d) differs from what was written", i, want[i].Block)
		}
	}
}

func TestRewriteIsIdempotent(t *testing.T) {
	n := startNode(t, testConfig(t, 1))
	ctx := t.Context()
	r := rand.New(rand.NewPCG(3, 4))
	s := makeShard(r, 4, 2, 2, 4096, 10000)
	if _, err := writeShard(ctx, n.client, s); err != nil {
		t.Fatal(err)
	}
	resp, err := writeShard(ctx, n.client, s)
	if err != nil {
		t.Fatalf("identical rewrite: %v", err)
	}
	if !resp.Existed || resp.Checksum != s.checksum {
		t.Fatalf("identical rewrite answered %v, want existed with checksum %08x", resp, s.checksum)
	}
	other := makeShard(r, 4, 2, 2, 4096, 10000)
	other.header.ShardId = s.header.ShardId
	other.header.ClipId = s.header.ClipId
	other.header.CommitDeadlineUnixNano = s.header.CommitDeadlineUnixNano
	_, err = writeShard(ctx, n.client, other)
	wantCode(t, err, codes.AlreadyExists)
	_, pieces, err := readShard(ctx, n.client, &pb.ReadShardRequest{ShardId: s.id()})
	if err != nil {
		t.Fatal(err)
	}
	assertPieces(t, pieces, s.pieces)
	if left := tmpFiles(t, n.dirs); len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
	assertShardCount(t, n, 1)
}

func assertShardCount(t testing.TB, n *testNode, want int) {
	t.Helper()
	info, err := n.client.NodeInfo(t.Context(), &pb.NodeInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.ShardCount != uint64(want) {
		t.Fatalf("node holds %d shards, want %d", info.ShardCount, want)
	}
	list, err := n.client.ListShards(t.Context(), &pb.ListShardsRequest{PageSize: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Shards) != want {
		t.Fatalf("listing has %d shards, want %d", len(list.Shards), want)
	}
}

// TestBadWritesChangeNothing sends malformed writes; each must fail with the
// right code and leave neither a shard nor a temp file.
func TestBadWritesChangeNothing(t *testing.T) {
	cfg := testConfig(t, 1)
	cfg.MaxPieceSize = 1 << 20
	n := startNode(t, cfg)
	r := rand.New(rand.NewPCG(5, 6))
	hdr := func(s *testShard) *pb.WriteShardRequest {
		return &pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Header{Header: s.header}}
	}
	piece := func(p *pb.Piece) *pb.WriteShardRequest {
		return &pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Piece{Piece: p}}
	}
	finish := func(blocks int, sum *uint32) *pb.WriteShardRequest {
		return &pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Finish{Finish: &pb.WriteFinish{Blocks: uint64(blocks), Checksum: sum}}}
	}
	all := func(s *testShard) []*pb.WriteShardRequest {
		reqs := []*pb.WriteShardRequest{hdr(s)}
		for _, p := range s.pieces {
			reqs = append(reqs, piece(p))
		}
		return reqs
	}
	withHeader := func(mut func(h *pb.ShardHeader)) func(s *testShard) []*pb.WriteShardRequest {
		return func(s *testShard) []*pb.WriteShardRequest {
			mut(s.header)
			return append(all(s), finish(len(s.pieces), nil))
		}
	}
	withPiece := func(i int, mut func(p *pb.Piece)) func(s *testShard) []*pb.WriteShardRequest {
		return func(s *testShard) []*pb.WriteShardRequest {
			mut(s.pieces[i])
			return append(all(s), finish(len(s.pieces), nil))
		}
	}
	cases := []struct {
		name string
		reqs func(s *testShard) []*pb.WriteShardRequest
		want codes.Code
	}{
		{"no messages", func(*testShard) []*pb.WriteShardRequest { return nil }, codes.InvalidArgument},
		{"piece before header", func(s *testShard) []*pb.WriteShardRequest { return []*pb.WriteShardRequest{piece(s.pieces[0])} }, codes.InvalidArgument},
		{"short shard id", withHeader(func(h *pb.ShardHeader) { h.ShardId = h.ShardId[:15] }), codes.InvalidArgument},
		{"missing clip id", withHeader(func(h *pb.ShardHeader) { h.ClipId = nil }), codes.InvalidArgument},
		{"k zero", withHeader(func(h *pb.ShardHeader) { h.DataShards = 0 }), codes.InvalidArgument},
		{"k+m over 64", withHeader(func(h *pb.ShardHeader) { h.DataShards, h.ParityShards = 60, 5 }), codes.InvalidArgument},
		{"index past k+m", withHeader(func(h *pb.ShardHeader) { h.Index = 6 }), codes.InvalidArgument},
		{"block size zero", withHeader(func(h *pb.ShardHeader) { h.BlockSize = 0 }), codes.InvalidArgument},
		{"piece over node limit", withHeader(func(h *pb.ShardHeader) { h.BlockSize, h.DataShards, h.ParityShards = 8<<20, 4, 0 }), codes.InvalidArgument},
		{"header disagrees with pieces", withHeader(func(h *pb.ShardHeader) { h.BlockSize = 2048 }), codes.InvalidArgument},
		{"wrong block number", withPiece(1, func(p *pb.Piece) { p.Block = 5 }), codes.InvalidArgument},
		{"piece too long", withPiece(0, func(p *pb.Piece) { p.Data = append(p.Data, 0) }), codes.InvalidArgument},
		{"empty piece", withPiece(0, func(p *pb.Piece) { p.Data = nil }), codes.InvalidArgument},
		{"short piece not last", withPiece(0, func(p *pb.Piece) { p.Data = p.Data[:10] }), codes.InvalidArgument},
		{"flipped piece byte", withPiece(1, func(p *pb.Piece) { p.Data[7] ^= 1 }), codes.InvalidArgument},
		{"flipped trailer byte", withPiece(2, func(p *pb.Piece) { p.Trailer[3] ^= 0x80 }), codes.InvalidArgument},
		{"trailer too short", withPiece(0, func(p *pb.Piece) { p.Trailer = p.Trailer[:8] }), codes.InvalidArgument},
		{"no finish (truncated stream)", func(s *testShard) []*pb.WriteShardRequest { return all(s) }, codes.InvalidArgument},
		{"finish block count", func(s *testShard) []*pb.WriteShardRequest { return append(all(s), finish(len(s.pieces)+1, nil)) }, codes.InvalidArgument},
		{"finish checksum", func(s *testShard) []*pb.WriteShardRequest {
			bad := s.checksum + 1
			return append(all(s), finish(len(s.pieces), &bad))
		}, codes.InvalidArgument},
		{"second header", func(s *testShard) []*pb.WriteShardRequest { return append(all(s), hdr(s)) }, codes.InvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			s := makeShard(r, 4, 2, 1, 4096, 1024*3+100)
			_, err := sendWrite(ctx, n.client, tc.reqs(s))
			wantCode(t, err, tc.want)
			if msg := status.Convert(err).Message(); msg == "" {
				t.Fatalf("error without a message")
			}
			assertShardCount(t, n, 0)
			if left := tmpFiles(t, n.dirs); len(left) != 0 {
				t.Fatalf("temp files left: %v", left)
			}
		})
	}
}

func TestOversizeMessageIsRefused(t *testing.T) {
	cfg := testConfig(t, 1)
	cfg.MaxPieceSize = 64 << 10
	n := startNode(t, cfg)
	r := rand.New(rand.NewPCG(7, 8))
	s := makeShard(r, 1, 0, 0, 64<<10, 64<<10)
	s.pieces[0].Data = make([]byte, 512<<10) // over the message limit
	_, err := writeShard(t.Context(), n.client, s)
	wantCode(t, err, codes.ResourceExhausted)
	assertShardCount(t, n, 0)
}

func TestBadReads(t *testing.T) {
	n := startNode(t, testConfig(t, 1))
	ctx := t.Context()
	r := rand.New(rand.NewPCG(9, 10))
	s := makeShard(r, 2, 1, 0, 2000, 3000) // 3 blocks
	if _, err := writeShard(ctx, n.client, s); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		req  *pb.ReadShardRequest
		want codes.Code
	}{
		{"malformed id", &pb.ReadShardRequest{ShardId: []byte{1, 2, 3}}, codes.InvalidArgument},
		{"unknown id", &pb.ReadShardRequest{ShardId: newID(r)}, codes.NotFound},
		{"first block past end", &pb.ReadShardRequest{ShardId: s.id(), FirstBlock: 4}, codes.OutOfRange},
		{"first block at end", &pb.ReadShardRequest{ShardId: s.id(), FirstBlock: 3}, codes.OutOfRange},
		{"count past end", &pb.ReadShardRequest{ShardId: s.id(), FirstBlock: 1, BlockCount: 3}, codes.OutOfRange},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, pieces, err := readShard(ctx, n.client, tc.req)
			wantCode(t, err, tc.want)
			if len(pieces) != 0 {
				t.Fatalf("got %d pieces with the error", len(pieces))
			}
		})
	}
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"stat malformed", func() error { _, err := n.client.StatShard(ctx, &pb.StatShardRequest{ShardId: nil}); return err }},
		{"delete malformed", func() error {
			_, err := n.client.DeleteShard(ctx, &pb.DeleteShardRequest{ShardId: []byte("x")})
			return err
		}},
		{"list malformed start", func() error {
			_, err := n.client.ListShards(ctx, &pb.ListShardsRequest{StartAfter: []byte("abc")})
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) { wantCode(t, c.call(), codes.InvalidArgument) })
	}
	_, err := n.client.StatShard(ctx, &pb.StatShardRequest{ShardId: newID(r)})
	wantCode(t, err, codes.NotFound)
	assertShardCount(t, n, 1)
}

func TestDelete(t *testing.T) {
	n := startNode(t, testConfig(t, 1))
	ctx := t.Context()
	r := rand.New(rand.NewPCG(11, 12))
	s := makeShard(r, 4, 2, 0, 4096, 5000)
	if _, err := writeShard(ctx, n.client, s); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false} {
		resp, err := n.client.DeleteShard(ctx, &pb.DeleteShardRequest{ShardId: s.id()})
		if err != nil {
			t.Fatalf("delete %d: %v", i, err)
		}
		if resp.Existed != want {
			t.Fatalf("delete %d: existed=%v, want %v", i, resp.Existed, want)
		}
	}
	_, _, err := readShard(ctx, n.client, &pb.ReadShardRequest{ShardId: s.id()})
	wantCode(t, err, codes.NotFound)
	if _, err := os.Stat(shardPath(n.dirs[0], s.id())); !os.IsNotExist(err) {
		t.Fatalf("shard file still there: %v", err)
	}
	assertShardCount(t, n, 0)
	// The id can be written again after a delete (a retried write of a shard
	// that GC collected must not be refused as a conflict).
	if _, err := writeShard(ctx, n.client, s); err != nil {
		t.Fatal(err)
	}
}

// TestDeleteMany: a batch of deletions fsyncs each fan-out directory once,
// reports each shard (missing ones as not existed), and a directory whose
// fsync fails fails only the shards removed from it.
func TestDeleteMany(t *testing.T) {
	var (
		mu      sync.Mutex
		synced  = map[string]int{}
		failDir string
	)
	cfg := testConfig(t, 1)
	injectFaults(&cfg, func(op faultfs.Op, name string) error {
		if op != faultfs.OpSyncDir || !strings.HasPrefix(name, "shards/") {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		synced[name]++
		if name == failDir {
			return syscall.EIO
		}
		return nil
	})
	n := startNode(t, cfg)
	ctx := t.Context()
	r := rand.New(rand.NewPCG(15, 16))
	var ids []server.ShardID
	dirs := map[string]int{} // fan-out directory → shards in it
	for i := range 40 {
		s := makeShard(r, 4, 2, 0, 4096, 3000)
		id := s.id()
		id[15] = byte(i % 8) // 8 directories, 5 shards each
		if _, err := writeShard(ctx, n.client, s); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, server.ShardID(id))
		dirs[filepath.Base(filepath.Dir(shardPath(n.dirs[0], id)))]++
	}
	missing := server.ShardID(newID(r))
	mu.Lock()
	clear(synced)
	failDir = "shards/07"
	mu.Unlock()
	res := n.node.Store().DeleteMany(append(ids, missing, ids[0], ids[7]))
	for i, got := range res[:len(ids)] {
		id := ids[i]
		_, statErr := os.Stat(shardPath(n.dirs[0], id[:]))
		switch {
		case id[15] == 7:
			if !errors.Is(got.Err, syscall.EIO) {
				t.Errorf("shard %d in the failing directory: %+v, want a sync dir error", i, got)
			}
		case got.Err != nil || !got.Existed || !os.IsNotExist(statErr):
			t.Errorf("shard %d: %+v, file: %v; want deleted", i, got, statErr)
		}
	}
	if got := res[len(ids)]; got.Existed || got.Err != nil {
		t.Errorf("missing shard: %+v, want not existed and no error", got)
	}
	// Given twice: the second is a shard already gone, or the first's error.
	if got := res[len(ids)+1]; got.Existed || got.Err != nil {
		t.Errorf("shard 0 again: %+v, want not existed and no error", got)
	}
	if got := res[len(ids)+2]; got.Existed || got.Err == nil {
		t.Errorf("shard 7 (failing directory) again: %+v, want its error", got)
	}
	mu.Lock()
	if len(synced) != len(dirs) {
		t.Errorf("fsynced directories %v, want each of %d once", synced, len(dirs))
	}
	for d, c := range synced {
		if c != 1 {
			t.Errorf("directory %s fsynced %d times for one batch", d, c)
		}
	}
	mu.Unlock()
	// The shards whose removal was not made durable stay counted: what
	// the node reports must not claim a deletion it could not sync.
	assertShardCount(t, n, 5)
}

// TestCorruptionDetectedOnRead damages shard files on disk and checks that
// reads fail with DataLoss naming the block, while other blocks stay
// readable.
func TestCorruptionDetectedOnRead(t *testing.T) {
	n := startNode(t, testConfig(t, 1))
	ctx := t.Context()
	r := rand.New(rand.NewPCG(13, 14))
	const k, m, bs = 4, 2, 4096
	ps := bs / k
	unit := ps + 4*(k+m) + 4
	s := makeShard(r, k, m, 3, bs, ps*5+100) // 6 blocks, the last short
	if _, err := writeShard(ctx, n.client, s); err != nil {
		t.Fatal(err)
	}
	path := shardPath(n.dirs[0], s.id())
	flipByte(t, path, 128+int64(2*unit)+17) // a byte of block 2's piece

	_, pieces, err := readShard(ctx, n.client, &pb.ReadShardRequest{ShardId: s.id()})
	wantCode(t, err, codes.DataLoss)
	if block := corruptBlock(t, err); block != 2 {
		t.Fatalf("DataLoss names block %d, want 2", block)
	}
	assertPieces(t, pieces, s.pieces[:2])

	_, pieces, err = readShard(ctx, n.client, &pb.ReadShardRequest{ShardId: s.id(), FirstBlock: 3})
	if err != nil {
		t.Fatalf("blocks after the corrupt one: %v", err)
	}
	assertPieces(t, pieces, s.pieces[3:])

	_, pieces, err = readShard(ctx, n.client, &pb.ReadShardRequest{ShardId: s.id(), SkipCorrupt: true})
	if err != nil {
		t.Fatalf("skip_corrupt read: %v", err)
	}
	if len(pieces) != 6 || !pieces[2].Corrupt || len(pieces[2].Data) != 0 {
		t.Fatalf("skip_corrupt: %d pieces, block 2 corrupt=%v", len(pieces), len(pieces) > 2 && pieces[2].Corrupt)
	}
	assertPieces(t, pieces[3:], s.pieces[3:])

	flipByte(t, path, 128+int64(4*unit)+int64(ps)+2) // block 4's trailer
	_, _, err = readShard(ctx, n.client, &pb.ReadShardRequest{ShardId: s.id(), FirstBlock: 4})
	if block := corruptBlock(t, err); block != 4 {
		t.Fatalf("corrupt trailer: DataLoss names block %d, want 4", block)
	}
	_, err = n.client.StatShard(ctx, &pb.StatShardRequest{ShardId: s.id()})
	wantCode(t, err, codes.DataLoss)

	flipByte(t, path, 20) // the header
	_, _, err = readShard(ctx, n.client, &pb.ReadShardRequest{ShardId: s.id(), FirstBlock: 5})
	wantCode(t, err, codes.DataLoss)
}

func TestTruncatedAndSwappedFilesAreCorrupt(t *testing.T) {
	n := startNode(t, testConfig(t, 1))
	ctx := t.Context()
	r := rand.New(rand.NewPCG(15, 16))
	a := makeShard(r, 2, 1, 0, 2000, 5000)
	b := makeShard(r, 2, 1, 0, 2000, 5000)
	c := makeShard(r, 2, 1, 1, 2000, 5000)
	for _, s := range []*testShard{a, b, c} {
		if _, err := writeShard(ctx, n.client, s); err != nil {
			t.Fatal(err)
		}
	}
	// Swap a and b on disk (a misdirected write): same geometry, so only
	// the header's shard id and the seeded CRCs can tell.
	pa, pb_ := shardPath(n.dirs[0], a.id()), shardPath(n.dirs[0], b.id())
	da, _ := os.ReadFile(pa)
	db, _ := os.ReadFile(pb_)
	if err := os.WriteFile(pa, db, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pb_, da, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := readShard(ctx, n.client, &pb.ReadShardRequest{ShardId: a.id()})
	wantCode(t, err, codes.DataLoss)

	// Truncate c by a few bytes: its last piece no longer verifies.
	pc := shardPath(n.dirs[0], c.id())
	fi, err := os.Stat(pc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(pc, fi.Size()-3); err != nil {
		t.Fatal(err)
	}
	_, pieces, err := readShard(ctx, n.client, &pb.ReadShardRequest{ShardId: c.id()})
	wantCode(t, err, codes.DataLoss)
	assertPieces(t, pieces, c.pieces[:len(c.pieces)-1])
}

// corruptBlock returns the block named by a DataLoss status's ErrorInfo.
func corruptBlock(t testing.TB, err error) int {
	t.Helper()
	wantCode(t, err, codes.DataLoss)
	info := rpcerr.Info(err)
	if info == nil || rpcerr.Reason(info.Reason) != rpcerr.CorruptPiece || info.Domain != rpcerr.StorageDomain {
		t.Fatalf("DataLoss without CORRUPT_PIECE details: %v (%v)", err, info)
	}
	b, perr := strconv.Atoi(info.Metadata[rpcerr.Block])
	if perr != nil {
		t.Fatalf("bad block in ErrorInfo: %v", info)
	}
	return b
}

func TestConcurrentWritersAndReaders(t *testing.T) {
	n := startNode(t, testConfig(t, 2))
	ctx := t.Context()
	const writers, perWriter = 8, 6
	var g errgroup.Group
	for w := range writers {
		g.Go(func() error {
			r := rand.New(rand.NewPCG(uint64(w), 99))
			for i := range perWriter {
				s := makeShard(r, 4, 2, i%6, 8192, 2048*(i+1)+i)
				if _, err := writeShard(ctx, n.client, s); err != nil {
					return fmt.Errorf("writer %d shard %d: %w", w, i, err)
				}
				_, pieces, err := readShard(ctx, n.client, &pb.ReadShardRequest{ShardId: s.id()})
				if err != nil {
					return fmt.Errorf("writer %d read %d: %w", w, i, err)
				}
				if len(pieces) != len(s.pieces) {
					return fmt.Errorf("writer %d read %d: %d pieces, want %d", w, i, len(pieces), len(s.pieces))
				}
				for j := range pieces {
					if !bytes.Equal(pieces[j].Data, s.pieces[j].Data) {
						return fmt.Errorf("writer %d shard %d block %d differs", w, i, j)
					}
				}
			}
			return nil
		})
	}
	// Concurrent writes of one shard id: exactly one stored copy, every
	// writer told success (identical content) or asked to retry (Aborted).
	same := makeShard(rand.New(rand.NewPCG(1, 1)), 4, 2, 0, 8192, 30000)
	for range 4 {
		g.Go(func() error {
			_, err := writeShard(ctx, n.client, same)
			if err != nil && status.Code(err) != codes.Aborted {
				return fmt.Errorf("same-id writer: %w", err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := writeShard(ctx, n.client, same); err != nil {
		t.Fatalf("final write of the shared id: %v", err)
	}
	assertShardCount(t, n, writers*perWriter+1)
	info, err := n.client.NodeInfo(ctx, &pb.NodeInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range info.Disks {
		if d.ShardCount == 0 {
			t.Errorf("disk %s got no shards; writes should spread over disks", d.Path)
		}
	}
}

func TestListShardsPages(t *testing.T) {
	n := startNode(t, testConfig(t, 2))
	ctx := t.Context()
	r := rand.New(rand.NewPCG(17, 18))
	var want []string
	for range 25 {
		s := makeShard(r, 2, 1, 0, 100, 120)
		if _, err := writeShard(ctx, n.client, s); err != nil {
			t.Fatal(err)
		}
		want = append(want, string(s.id()))
	}
	slices.SortFunc(want, func(a, b string) int { return shardOrder(server.ShardID([]byte(a)), server.ShardID([]byte(b))) })
	var got []string
	var after []byte
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("listing does not end")
		}
		resp, err := n.client.ListShards(ctx, &pb.ListShardsRequest{StartAfter: after, PageSize: 7})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Shards) > 7 {
			t.Fatalf("page of %d, asked for 7", len(resp.Shards))
		}
		for _, e := range resp.Shards {
			got = append(got, string(e.ShardId))
		}
		if len(resp.NextStartAfter) == 0 {
			break
		}
		after = resp.NextStartAfter
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("listing %d ids, want the %d written in order", len(got), len(want))
	}
}

func TestNodeInfo(t *testing.T) {
	cfg := testConfig(t, 2)
	n := startNode(t, cfg)
	info, err := n.client.NodeInfo(t.Context(), &pb.NodeInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.NodeId != cfg.NodeID || len(info.Disks) != 2 || info.Capacity == 0 || info.Free == 0 {
		t.Fatalf("node info %v", info)
	}
	seen := map[string]bool{}
	for _, d := range info.Disks {
		if _, err := uuid.Parse(d.Incarnation); err != nil {
			t.Fatalf("disk %s incarnation %q: %v", d.Path, d.Incarnation, err)
		}
		if seen[d.Incarnation] {
			t.Fatalf("two disks share incarnation %s", d.Incarnation)
		}
		seen[d.Incarnation] = true
	}
}
