package server_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clipstore/clipstore/erasure"
	"github.com/clipstore/clipstore/internal/proctest"
	pb "github.com/clipstore/clipstore/proto/storagepb"
	"github.com/clipstore/clipstore/server"
	"github.com/clipstore/clipstore/server/faultfs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// testNode is a storage node serving on 127.0.0.1 over TCP.
type testNode struct {
	node   *server.Node
	client pb.StorageServiceClient
	addr   string
	dirs   []string
	stop   func() // shuts the node down before the test ends
}

func testConfig(t testing.TB, disks int) server.Config {
	cfg := server.DefaultConfig()
	cfg.NodeID = "node-test"
	cfg.Logger = slog.New(slog.DiscardHandler)
	root := t.TempDir()
	for i := range disks {
		cfg.DataDirs = append(cfg.DataDirs, filepath.Join(root, "disk"+string(rune('0'+i))))
	}
	return cfg
}

func startNode(t testing.TB, cfg server.Config) *testNode {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return serveNode(t, cfg, lis)
}

// startNodeAdvertised starts a node that registers with meta under its
// real listen address.
func startNodeAdvertised(t testing.TB, cfg server.Config) *testNode {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	cfg.Advertise = lis.Addr().String()
	return serveNode(t, cfg, lis)
}

func serveNode(t testing.TB, cfg server.Config, lis net.Listener) *testNode {
	t.Helper()
	node, err := server.New(cfg)
	if err != nil {
		lis.Close()
		t.Fatalf("server.New: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- node.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := node.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
			if err := <-served; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &testNode{node: node, client: pb.NewStorageServiceClient(conn), addr: lis.Addr().String(), dirs: cfg.DataDirs, stop: stop}
}

// testShard is a shard as a writer would send it: real piece CRCs and
// trailers, random bytes (the node neither knows nor checks the parity).
type testShard struct {
	header   *pb.ShardHeader
	pieces   []*pb.Piece
	checksum uint32
	length   uint64
}

func (s *testShard) id() []byte { return s.header.ShardId }

func newID(r *rand.Rand) []byte {
	b := make([]byte, 16)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// makeShard builds shard index of a k+m code with blocks of blockSize whose
// pieces hold length bytes in all.
func makeShard(r *rand.Rand, k, m, index, blockSize, length int) *testShard {
	s := &testShard{header: &pb.ShardHeader{
		ShardId: newID(r), ClipId: newID(r), Index: uint32(index),
		DataShards: uint32(k), ParityShards: uint32(m), BlockSize: uint32(blockSize),
		CommitDeadlineUnixNano: time.Now().Add(time.Hour).UnixNano(),
	}}
	ps := erasure.PieceSize(blockSize, k)
	var sum erasure.ShardSum
	for b := 0; length > 0; b++ {
		n := min(ps, length)
		length -= n
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		crcs := make([]uint32, k+m)
		for i := range crcs {
			crcs[i] = r.Uint32()
		}
		crcs[index] = erasure.PieceCRC(index, int64(b), data)
		sum.Add(crcs[index])
		s.length += uint64(n)
		s.pieces = append(s.pieces, &pb.Piece{Block: uint64(b), Data: data,
			Trailer: erasure.AppendTrailer(nil, index, int64(b), crcs)})
	}
	s.checksum = sum.Sum32()
	return s
}

// writeShard sends the whole shard and its finish message.
func writeShard(ctx context.Context, c pb.StorageServiceClient, s *testShard) (*pb.WriteShardResponse, error) {
	reqs := []*pb.WriteShardRequest{{Msg: &pb.WriteShardRequest_Header{Header: s.header}}}
	for _, p := range s.pieces {
		reqs = append(reqs, &pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Piece{Piece: p}})
	}
	sum := s.checksum
	reqs = append(reqs, &pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Finish{
		Finish: &pb.WriteFinish{Blocks: uint64(len(s.pieces)), Checksum: &sum}}})
	return sendWrite(ctx, c, reqs)
}

// sendWrite sends reqs on one WriteShard stream, half-closes it and returns
// the node's answer.
func sendWrite(ctx context.Context, c pb.StorageServiceClient, reqs []*pb.WriteShardRequest) (*pb.WriteShardResponse, error) {
	stream, err := c.WriteShard(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range reqs {
		if err := stream.Send(r); err != nil {
			if errors.Is(err, io.EOF) {
				break // the server answered early; CloseAndRecv has its status
			}
			return nil, err
		}
	}
	return stream.CloseAndRecv()
}

// startWrite opens a WriteShard stream and sends s's header and first
// piece: a write in flight, which the test goes on or abandons.
func startWrite(t testing.TB, ctx context.Context, c pb.StorageServiceClient, s *testShard) pb.StorageService_WriteShardClient {
	t.Helper()
	stream, err := c.WriteShard(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stream.Send(&pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Header{Header: s.header}})
	stream.Send(&pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Piece{Piece: s.pieces[0]}})
	return stream
}

// readShard reads a range of blocks and returns the header and pieces.
func readShard(ctx context.Context, c pb.StorageServiceClient, req *pb.ReadShardRequest) (*pb.ShardHeader, []*pb.Piece, error) {
	stream, err := c.ReadShard(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	var h *pb.ShardHeader
	var pieces []*pb.Piece
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return h, pieces, nil
		}
		if err != nil {
			return h, pieces, err
		}
		if resp.Header != nil {
			h = resp.Header
		}
		if resp.Piece != nil {
			pieces = append(pieces, resp.Piece)
		}
	}
}

func statusCode(err error) codes.Code { return status.Code(err) }

func wantCode(t testing.TB, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("got %v (%v), want code %v", got, err, want)
	}
}

// tmpFiles lists the files of shards being written (or left behind) on
// the disks dirs of a node running in this process: the named temp files
// in their tmp directories, and the files with no name yet that the node
// holds open under them.
func tmpFiles(t testing.TB, dirs []string) []string {
	t.Helper()
	return tmpFilesOf(t, os.Getpid(), dirs)
}

// tmpFilesOf is tmpFiles for a node running as process pid.
func tmpFilesOf(t testing.TB, pid int, dirs []string) []string {
	t.Helper()
	var out []string
	for _, d := range dirs {
		entries, err := os.ReadDir(filepath.Join(d, "tmp"))
		if err != nil {
			t.Fatalf("read tmp dir: %v", err)
		}
		for _, e := range entries {
			out = append(out, filepath.Join(d, "tmp", e.Name()))
		}
		unnamed, err := proctest.UnnamedFiles(pid, d)
		if err != nil {
			t.Fatalf("list unnamed files: %v", err)
		}
		for _, f := range unnamed {
			out = append(out, f.FD) // os.Stat works on it
		}
	}
	return out
}

// faultyDisk makes cfg open its one disk through faultfs and returns that
// FS, which passes every call through until the test sets an injector.
func faultyDisk(cfg *server.Config) *faultfs.FS {
	ffs := faultfs.Wrap(nil)
	cfg.OpenFS = func(dir string) (server.FS, error) {
		fsys, err := server.OpenOSFS(dir)
		ffs.FS = fsys
		return ffs, err
	}
	return ffs
}

// noUnnamed is an Injector that refuses FS.CreateUnnamed, as a filesystem
// without O_TMPFILE does: the node then writes shards through named temp
// files under tmp/.
func noUnnamed(op faultfs.Op, name string) error {
	if op == faultfs.OpOpen && strings.HasSuffix(name, "/") {
		return errors.ErrUnsupported
	}
	return nil
}

// injectFaults makes cfg open its disks through faultfs, with inj in place
// from the start.
func injectFaults(cfg *server.Config, inj faultfs.Injector) {
	cfg.OpenFS = func(dir string) (server.FS, error) {
		fsys, err := server.OpenOSFS(dir)
		ffs := faultfs.Wrap(fsys)
		ffs.SetInjector(inj)
		return ffs, err
	}
}

// shardPath is where the node keeps shard id on disk dir.
func shardPath(dir string, id []byte) string {
	return server.ShardFile(dir, server.ShardID(id))
}

// flipByte flips a bit of the byte at off in the file at path.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
