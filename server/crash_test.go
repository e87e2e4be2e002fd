package server_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/internal/proctest"
	pb "github.com/clipstore/clipstore/proto/storagepb"
	"github.com/clipstore/clipstore/server"
	"github.com/clipstore/clipstore/server/faultfs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
)

// helperEnv makes the test binary run a storage node instead of the tests,
// so that a test can kill a real process with SIGKILL.
const helperEnv = "CLIPSTORE_TEST_STORAGE_NODE_DIR"

func runHelperProcess() bool {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		return false
	}
	cfg := server.DefaultConfig()
	cfg.DataDirs = []string{dir}
	node, err := server.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Printf("storage node listening on %s\n", lis.Addr()) // proctest's ready line
	if err := node.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	return true
}

// startNodeProcess runs a storage node on dir in a child process (this
// test binary, see runHelperProcess); it is killed and reaped at cleanup.
func startNodeProcess(t *testing.T, dir string) *proctest.Process {
	t.Helper()
	t.Setenv(helperEnv, dir) // the child inherits it
	return proctest.StartT(t, &proctest.Buffer{}, os.Args[0], "-test.run=^$")
}

// TestKilledMidWriteLeavesNothing kills a node process with SIGKILL while a
// shard is half written, restarts the store on the same disk and checks
// that nothing of the write is visible or left behind.
func TestKilledMidWriteLeavesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "disk0")
	node := startNodeProcess(t, dir)
	conn, err := grpc.NewClient(node.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewStorageServiceClient(conn)
	ctx := t.Context()
	r := rand.New(rand.NewPCG(21, 22))
	done := makeShard(r, 4, 2, 0, 8192, 20000)
	if _, err := writeShard(ctx, client, done); err != nil {
		t.Fatal(err)
	}
	// More than the 1 MiB a node stages before each O_DIRECT write, so
	// that part of the shard is in the file when the node dies.
	half := makeShard(r, 4, 2, 1, 8192, 2048*800)
	stream, err := client.WriteShard(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Header{Header: half.header}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range half.pieces[:600] {
		if err := stream.Send(&pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Piece{Piece: p}}); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the node has the partial shard in its temp file, then kill it.
	await.True(t, 10*time.Second, "partial temp file", func() bool {
		files := tmpFilesOf(t, node.Pid(), []string{dir})
		if len(files) != 1 {
			return false
		}
		fi, err := os.Stat(files[0])
		return err == nil && fi.Size() >= 1<<20
	})
	if node.Exited() {
		t.Fatalf("the node process died before the kill: %v", node.Err())
	}
	node.Kill()

	cfg := server.DefaultConfig()
	cfg.DataDirs = []string{dir}
	store, err := server.OpenStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if left := tmpFiles(t, []string{dir}); len(left) != 0 {
		t.Fatalf("temp files survive a restart: %v", left)
	}
	if _, err := store.Stat(server.ShardID(half.id())); !errors.Is(err, server.ErrNotFound) {
		t.Fatalf("half-written shard: %v, want ErrNotFound", err)
	}
	info, err := store.Stat(server.ShardID(done.id()))
	if err != nil || info.Checksum != done.checksum {
		t.Fatalf("completed shard after restart: %+v, %v", info, err)
	}
	entries, _, err := store.List(nil, 10)
	if err != nil || len(entries) != 1 {
		t.Fatalf("listing after restart: %v, %v", entries, err)
	}
}

func TestRestartKeepsShardsAndIncarnation(t *testing.T) {
	cfg := testConfig(t, 2)
	r := rand.New(rand.NewPCG(23, 24))
	var shards []*testShard
	var before *pb.NodeInfoResponse
	func() {
		n := startNode(t, cfg)
		for i := range 10 {
			s := makeShard(r, 3, 2, i%5, 3000, 2500+i)
			if _, err := writeShard(t.Context(), n.client, s); err != nil {
				t.Fatal(err)
			}
			shards = append(shards, s)
		}
		var err error
		if before, err = n.client.NodeInfo(t.Context(), &pb.NodeInfoRequest{}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.node.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}()
	// The first node's cleanup runs Shutdown again: it must be harmless.
	n := startNode(t, cfg)
	for _, s := range shards {
		_, pieces, err := readShard(t.Context(), n.client, &pb.ReadShardRequest{ShardId: s.id()})
		if err != nil {
			t.Fatal(err)
		}
		assertPieces(t, pieces, s.pieces)
	}
	after, err := n.client.NodeInfo(t.Context(), &pb.NodeInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range before.Disks {
		if before.Disks[i].Incarnation != after.Disks[i].Incarnation || before.Disks[i].ShardCount != after.Disks[i].ShardCount {
			t.Fatalf("disk %d: before %v, after restart %v", i, before.Disks[i], after.Disks[i])
		}
	}
}

func TestWipedDiskGetsNewIncarnation(t *testing.T) {
	cfg := testConfig(t, 1)
	s1, err := server.OpenStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	u1, _ := s1.Usage()
	s1.Close()
	if err := os.RemoveAll(cfg.DataDirs[0]); err != nil {
		t.Fatal(err)
	}
	s2, err := server.OpenStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	u2, _ := s2.Usage()
	if u1[0].Incarnation == u2[0].Incarnation {
		t.Fatalf("wiped disk kept incarnation %s", u1[0].Incarnation)
	}
}

// TestDiskLayout: opening a disk makes the 256 fan-out directories, so a
// write makes none (it would cost a directory fsync more per shard); a
// disk whose directories cannot be made is not served; and a disk in the
// old two-level layout is refused with an error that says so, not read as
// an empty disk.
func TestDiskLayout(t *testing.T) {
	var mkdirs atomic.Int32
	var failMkdir atomic.Bool
	cfg := testConfig(t, 1)
	injectFaults(&cfg, func(op faultfs.Op, name string) error {
		if op != faultfs.OpMkdir {
			return nil
		}
		mkdirs.Add(1)
		if failMkdir.Load() && strings.HasPrefix(name, "shards/") {
			return syscall.ENOSPC
		}
		return nil
	})
	n := startNode(t, cfg)
	dirs, err := os.ReadDir(filepath.Join(cfg.DataDirs[0], "shards"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != 256 || dirs[0].Name() != "00" || dirs[255].Name() != "ff" {
		t.Fatalf("%d fan-out directories, %v…; want 256, 00 to ff", len(dirs), dirs[:min(len(dirs), 3)])
	}
	mkdirs.Store(0)
	r := rand.New(rand.NewPCG(27, 28))
	for i := range 20 {
		s := makeShard(r, 4, 2, i%6, 4096, 5000)
		if _, err := writeShard(t.Context(), n.client, s); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(shardPath(cfg.DataDirs[0], s.id())); err != nil {
			t.Fatal(err)
		}
	}
	if c := mkdirs.Load(); c != 0 {
		t.Fatalf("20 writes made %d directories, want 0", c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.node.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	// A disk whose fan-out cannot be made is not served.
	empty := testConfig(t, 1)
	empty.OpenFS = cfg.OpenFS
	failMkdir.Store(true)
	if s, err := server.OpenStore(empty); !errors.Is(err, syscall.ENOSPC) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("open with mkdir failing: %v, want ENOSPC", err)
	}
	failMkdir.Store(false)

	// A format-1 disk: the identity file says so.
	id := filepath.Join(cfg.DataDirs[0], "CLIPSTORE_DISK")
	raw, err := os.ReadFile(id)
	if err != nil {
		t.Fatal(err)
	}
	old := strings.Replace(string(raw), `"format":2`, `"format":1`, 1)
	if old == string(raw) {
		t.Fatalf("identity file %q has no format 2", raw)
	}
	if err := os.WriteFile(id, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := server.OpenStore(cfg); !errors.Is(err, server.ErrDiskFormat) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("open of a format-1 disk: %v, want a disk format error", err)
	}
}

// TestStartSyncsTheFilesystem: a disk is flushed whole (syncfs) before it
// serves, so that directory entries a dead process left in the page cache
// only are durable before a write trusts them; a disk whose flush fails is
// not served.
func TestStartSyncsTheFilesystem(t *testing.T) {
	var syncs atomic.Int32
	var fail atomic.Bool
	cfg := testConfig(t, 1)
	injectFaults(&cfg, func(op faultfs.Op, name string) error {
		if op != faultfs.OpSyncFS {
			return nil
		}
		syncs.Add(1)
		if fail.Load() {
			return syscall.EIO
		}
		return nil
	})
	s, err := server.OpenStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if syncs.Load() != 1 {
		t.Fatalf("%d syncfs calls opening one disk, want 1", syncs.Load())
	}
	fail.Store(true)
	if s, err := server.OpenStore(cfg); !errors.Is(err, syscall.EIO) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("open with a failing syncfs: %v, want an error naming it", err)
	}
}

// TestDiskFaults injects filesystem failures into each step of a write; the
// write must fail with the right code, leave nothing, and the node must
// accept writes again once the fault is gone. Each case runs with the
// shard written as a file with no name until it is complete (O_TMPFILE)
// and, where the step exists there too, as a named temp file under tmp/
// (a filesystem without O_TMPFILE).
func TestDiskFaults(t *testing.T) {
	cases := []struct {
		name string
		op   faultfs.Op
		err  error
		on   string // only names containing this fail; "tmp/" is the shard's own directory when it has no name
		nth  int    // fail only the nth such call (1-based; 0: all)
		only string // "named" or "unnamed": the step exists only there
		want codes.Code
	}{
		{"disk full on write", faultfs.OpWrite, syscall.ENOSPC, "tmp/", 0, "", codes.ResourceExhausted},
		{"disk full on create", faultfs.OpOpen, syscall.ENOSPC, "tmp/", 0, "", codes.ResourceExhausted},
		{"quota on write", faultfs.OpWrite, syscall.EDQUOT, "tmp/", 0, "", codes.ResourceExhausted},
		{"EIO on write", faultfs.OpWrite, syscall.EIO, "tmp/", 0, "", codes.Internal},
		{"fsync fails", faultfs.OpSync, syscall.EIO, "tmp/", 0, "", codes.Internal},
		{"rename fails", faultfs.OpRename, syscall.EIO, "shards/", 0, "named", codes.Internal},
		{"link fails", faultfs.OpLink, syscall.EIO, "shards/", 0, "unnamed", codes.Internal},
		{"fsync after the link fails", faultfs.OpSync, syscall.EIO, "shards/", 2, "unnamed", codes.Internal},
		{"dir fsync fails", faultfs.OpSyncDir, syscall.EIO, "shards/", 0, "", codes.Internal},
	}
	for _, mode := range []string{"unnamed", "named"} {
		for _, tc := range cases {
			if tc.only != "" && tc.only != mode {
				continue
			}
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				cfg := testConfig(t, 1)
				ffs := faultyDisk(&cfg)
				n := startNode(t, cfg)
				r := rand.New(rand.NewPCG(25, 26))
				on := tc.on
				if mode == "unnamed" && on == "tmp/" {
					on = "shards/"
				}
				var mu sync.Mutex
				calls := 0
				named := func(faultfs.Op, string) error { return nil }
				if mode == "named" {
					named = noUnnamed
				}
				ffs.SetInjector(func(op faultfs.Op, name string) error {
					if err := named(op, name); err != nil {
						return err
					}
					if op != tc.op || !strings.Contains(name, on) {
						return nil
					}
					mu.Lock()
					defer mu.Unlock()
					if calls++; tc.nth == 0 || calls == tc.nth {
						return tc.err
					}
					return nil
				})
				s := makeShard(r, 4, 2, 0, 8192, 30000)
				_, err := writeShard(t.Context(), n.client, s)
				wantCode(t, err, tc.want)
				mu.Lock()
				made := calls
				mu.Unlock()
				if made == 0 || made < tc.nth {
					t.Fatalf("the write made %d %v calls on %q: the fault was never injected", made, tc.op, on)
				}
				ffs.SetInjector(named)
				assertShardCount(t, n, 0)
				if left := tmpFiles(t, n.dirs); len(left) != 0 {
					t.Fatalf("temp files left: %v", left)
				}
				if _, err := os.Stat(shardPath(n.dirs[0], s.id())); !os.IsNotExist(err) {
					t.Fatalf("shard file visible after a failed write: %v", err)
				}
				if _, err := writeShard(t.Context(), n.client, s); err != nil {
					t.Fatalf("write after the fault cleared: %v", err)
				}
				if left := tmpFiles(t, n.dirs); len(left) != 0 {
					t.Fatalf("temp files left after a write: %v", left)
				}
			})
		}
	}
}

// TestReadFaults: a bit flipped on its way from the disk is caught; an I/O
// error is reported, not served.
func TestReadFaults(t *testing.T) {
	cfg := testConfig(t, 1)
	ffs := faultyDisk(&cfg)
	n := startNode(t, cfg)
	ctx := t.Context()
	s := makeShard(rand.New(rand.NewPCG(27, 28)), 2, 1, 2, 4000, 6000)
	if _, err := writeShard(ctx, n.client, s); err != nil {
		t.Fatal(err)
	}
	ffs.SetCorrupter(func(name string, off int64, p []byte) {
		if off >= 128 && len(p) > 100 {
			p[len(p)/2] ^= 1
		}
	})
	_, _, err := readShard(ctx, n.client, &pb.ReadShardRequest{ShardId: s.id()})
	if block := corruptBlock(t, err); block != 0 {
		t.Fatalf("flipped read names block %d, want 0", block)
	}
	ffs.SetCorrupter(nil)
	ffs.SetInjector(func(op faultfs.Op, name string) error {
		if op == faultfs.OpRead {
			return syscall.EIO
		}
		return nil
	})
	_, pieces, err := readShard(ctx, n.client, &pb.ReadShardRequest{ShardId: s.id()})
	wantCode(t, err, codes.Internal)
	if len(pieces) != 0 {
		t.Fatal("pieces served despite read errors")
	}
	ffs.SetInjector(nil)
	if _, pieces, err = readShard(ctx, n.client, &pb.ReadShardRequest{ShardId: s.id()}); err != nil {
		t.Fatal(err)
	}
	assertPieces(t, pieces, s.pieces)
}

// TestWriteHasNoNameUntilCommit: on a filesystem with O_TMPFILE a shard
// being written is a file with no name in its own directory, nothing in
// tmp/, and has its name once the write is acknowledged.
func TestWriteHasNoNameUntilCommit(t *testing.T) {
	n := startNode(t, testConfig(t, 1))
	s := makeShard(rand.New(rand.NewPCG(41, 42)), 4, 2, 0, 8192, 20000)
	stream := startWrite(t, t.Context(), n.client, s)
	dir := filepath.Dir(shardPath(n.dirs[0], s.id()))
	await.True(t, 10*time.Second, "the write's file", func() bool { return len(tmpFiles(t, n.dirs)) == 1 })
	if unnamed, err := proctest.UnnamedFiles(os.Getpid(), dir); err != nil || len(unnamed) != 1 {
		t.Fatalf("unnamed files in the shard's directory %s: %v, %v; want the one being written", dir, unnamed, err)
	}
	if named, _ := os.ReadDir(filepath.Join(n.dirs[0], "tmp")); len(named) != 0 {
		t.Fatalf("tmp/ holds %d files during a write; want none", len(named))
	}
	if _, err := os.Stat(shardPath(n.dirs[0], s.id())); !os.IsNotExist(err) {
		t.Fatalf("the shard has its name before its write finished: %v", err)
	}
	for _, p := range s.pieces[1:] {
		if err := stream.Send(&pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Piece{Piece: p}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Send(&pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Finish{Finish: &pb.WriteFinish{Blocks: uint64(len(s.pieces))}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	if left := tmpFiles(t, n.dirs); len(left) != 0 {
		t.Fatalf("files left after the write: %v", left)
	}
	if _, pieces, err := readShard(t.Context(), n.client, &pb.ReadShardRequest{ShardId: s.id()}); err != nil {
		t.Fatal(err)
	} else {
		assertPieces(t, pieces, s.pieces)
	}
}

// TestCancelledWriteLeavesNothing: a client that goes away mid-stream leaves
// no shard and no temp file.
func TestCancelledWriteLeavesNothing(t *testing.T) {
	n := startNode(t, testConfig(t, 1))
	s := makeShard(rand.New(rand.NewPCG(29, 30)), 4, 2, 0, 8192, 20000)
	ctx, cancel := context.WithCancel(context.Background())
	startWrite(t, ctx, n.client, s)
	await.True(t, 10*time.Second, "temp file", func() bool { return len(tmpFiles(t, n.dirs)) == 1 })
	cancel()
	await.True(t, 10*time.Second, "temp file removal", func() bool { return len(tmpFiles(t, n.dirs)) == 0 })
	assertShardCount(t, n, 0)
	// The id is free again: the retry succeeds.
	if _, err := writeShard(t.Context(), n.client, s); err != nil {
		t.Fatal(err)
	}
}

// TestStalledWriterIsDropped: a client that opens a write and then sends
// nothing is cut off after the idle timeout; its temp file goes.
func TestStalledWriterIsDropped(t *testing.T) {
	cfg := testConfig(t, 1)
	cfg.WriteIdleTimeout = 200 * time.Millisecond
	n := startNode(t, cfg)
	s := makeShard(rand.New(rand.NewPCG(31, 32)), 4, 2, 0, 8192, 20000)
	stream := startWrite(t, t.Context(), n.client, s)
	_, err := stream.CloseAndRecv() // a half-close is not a finish: refused at once
	wantCode(t, err, codes.InvalidArgument)

	stream, err = n.client.WriteShard(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	stream.Send(&pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Header{Header: s.header}})
	var resp pb.WriteShardResponse
	err = stream.RecvMsg(&resp) // the node ends the stream on its own
	wantCode(t, err, codes.DeadlineExceeded)
	await.True(t, 10*time.Second, "temp file removal", func() bool { return len(tmpFiles(t, n.dirs)) == 0 })
	assertShardCount(t, n, 0)
}
