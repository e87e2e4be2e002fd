package test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clipstore/clipstore/erasure"
	pb "github.com/clipstore/clipstore/proto/storagepb"
	"github.com/clipstore/clipstore/server"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func newCode(k, m, blockSize int) (*erasure.Code, error) {
	return erasure.New(k, m, erasure.WithBlockSize(blockSize))
}

// clip is a clip encoded for the test: its bytes and, per shard index, the
// write requests that store that shard.
type clip struct {
	data   []byte
	code   *erasure.Code
	shards [][]*pb.WriteShardRequest
	sums   []uint32
}

func encodeClip(t *testing.T, code *erasure.Code, size int) *clip {
	t.Helper()
	c := &clip{data: make([]byte, size), code: code, shards: make([][]*pb.WriteShardRequest, code.Shards())}
	rand.Read(c.data)
	clipID := make([]byte, 16)
	rand.Read(clipID)
	deadline := time.Now().Add(time.Hour).UnixNano()
	for i := range c.shards {
		id := make([]byte, 16)
		rand.Read(id)
		c.shards[i] = append(c.shards[i], &pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Header{Header: &pb.ShardHeader{
			ShardId: id, ClipId: clipID, Index: uint32(i), DataShards: uint32(code.DataShards()),
			ParityShards: uint32(code.ParityShards()), BlockSize: uint32(code.BlockSize()), CommitDeadlineUnixNano: deadline,
		}}})
	}
	enc := code.NewEncoder(bytes.NewReader(c.data))
	for {
		b, err := enc.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for i := range c.shards {
			p := &pb.Piece{Block: uint64(b.Num), Data: bytes.Clone(b.Pieces[i]), Trailer: bytes.Clone(b.Trailer(i))}
			c.shards[i] = append(c.shards[i], &pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Piece{Piece: p}})
		}
		b.Release()
	}
	res := enc.Result()
	c.sums = res.ShardSums
	for i := range c.shards {
		sum := res.ShardSums[i]
		c.shards[i] = append(c.shards[i], &pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Finish{
			Finish: &pb.WriteFinish{Blocks: uint64(res.Blocks), Checksum: &sum}}})
	}
	return c
}

func (c *clip) shardID(i int) []byte { return c.shards[i][0].GetHeader().ShardId }

func writeShard(t *testing.T, client pb.StorageServiceClient, reqs []*pb.WriteShardRequest) (*pb.WriteShardResponse, error) {
	stream, err := client.WriteShard(testCtx(t, time.Minute))
	if err != nil {
		return nil, err
	}
	for _, r := range reqs {
		if err := stream.Send(r); err != nil {
			break // the node answered early; CloseAndRecv has its status
		}
	}
	return stream.CloseAndRecv()
}

// readShardStream reads a whole shard back as a shard stream (units in
// order) for the decoder.
func readShardStream(t *testing.T, client pb.StorageServiceClient, id []byte) ([]byte, error) {
	stream, err := client.ReadShard(testCtx(t, time.Minute), &pb.ReadShardRequest{ShardId: id})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return buf.Bytes(), nil
		}
		if err != nil {
			return nil, err
		}
		if p := resp.GetPiece(); p != nil {
			buf.Write(p.Data)
			buf.Write(p.Trailer)
		}
	}
}

// decodeFrom reads every shard index of c from the client that holds it
// (nil: treat as lost) and decodes the clip.
func decodeFrom(t *testing.T, c *clip, holders []pb.StorageServiceClient) ([]byte, erasure.Report, error) {
	t.Helper()
	readers := make([]io.Reader, len(holders))
	for i, h := range holders {
		if h == nil {
			continue
		}
		b, err := readShardStream(t, h, c.shardID(i))
		if err != nil {
			t.Logf("shard %d unreadable: %v", i, err)
			continue
		}
		readers[i] = bytes.NewReader(b)
	}
	var out bytes.Buffer
	rep, err := c.code.Decode(&out, readers, int64(len(c.data)))
	return out.Bytes(), rep, err
}

// TestShardsSurviveKillAndRestart stores 4+2 clips on three storage node
// processes, SIGKILLs nodes (one in the middle of a write), restarts them on
// the same disks and checks that every acknowledged shard reads back and
// every clip decodes byte-identical, also with m shards' nodes gone; the
// interrupted write left nothing.
func TestShardsSurviveKillAndRestart(t *testing.T) {
	root := t.TempDir()
	dirs := []string{filepath.Join(root, "n0"), filepath.Join(root, "n1"), filepath.Join(root, "n2")}
	nodes := make([]*process, 3)
	clients := make([]pb.StorageServiceClient, 3)
	for i, d := range dirs {
		nodes[i] = startStorage(t, d)
		clients[i] = storageClient(t, nodes[i].addr)
	}
	code, err := erasure.New(4, 2, erasure.WithBlockSize(256<<10))
	if err != nil {
		t.Fatal(err)
	}
	// Shard index i lives on node i/2: two shards per node.
	holder := func(i int) int { return i / 2 }
	r := mrand.New(mrand.NewPCG(1, 2))
	var clips []*clip
	for _, size := range []int{0, 1, 256<<10 - 1, 256 << 10, 3<<20 + r.IntN(1<<20), 700_001} {
		clips = append(clips, encodeClip(t, code, size))
	}
	var g errgroup.Group
	for _, c := range clips {
		for i := range c.shards {
			g.Go(func() error {
				resp, err := writeShard(t, clients[holder(i)], c.shards[i])
				if err != nil {
					return fmt.Errorf("write shard %d: %w", i, err)
				}
				if resp.Checksum != c.sums[i] {
					return fmt.Errorf("shard %d: node checksum %08x, encoder %08x", i, resp.Checksum, c.sums[i])
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}

	// A write in flight when node 0 dies: header and a few pieces, no finish.
	inflight := encodeClip(t, code, 2<<20)
	stream, err := clients[0].WriteShard(testCtx(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range inflight.shards[0][:4] {
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 20*time.Second, "the in-flight write's temp file", func() bool {
		entries, _ := os.ReadDir(filepath.Join(dirs[0], "tmp"))
		return len(entries) == 1
	})
	nodes[0].kill()
	nodes[1].kill()
	for _, i := range []int{0, 1} {
		nodes[i] = startStorage(t, dirs[i])
		clients[i] = storageClient(t, nodes[i].addr)
	}
	if entries, _ := os.ReadDir(filepath.Join(dirs[0], "tmp")); len(entries) != 0 {
		t.Fatalf("restart left %d temp files", len(entries))
	}
	_, err = clients[0].StatShard(testCtx(t, 10*time.Second), &pb.StatShardRequest{ShardId: inflight.shardID(0)})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("interrupted write: stat says %v, want NotFound", err)
	}

	all := make([]pb.StorageServiceClient, code.Shards())
	for i := range all {
		all[i] = clients[holder(i)]
	}
	for n, c := range clips {
		got, rep, err := decodeFrom(t, c, all)
		if err != nil || !bytes.Equal(got, c.data) || len(rep.Faults) != 0 {
			t.Fatalf("clip %d (%d bytes) after restarts: err %v, equal %v, report %+v", n, len(c.data), err, bytes.Equal(got, c.data), rep)
		}
	}
	// Node 2 gone: shards 4 and 5 (m = 2) are lost, the clips still decode.
	nodes[2].kill()
	withoutNode2 := append([]pb.StorageServiceClient(nil), all...)
	withoutNode2[4], withoutNode2[5] = clients[2], clients[2] // dead: reads fail, the decoder must not care
	for n, c := range clips {
		got, _, err := decodeFrom(t, c, withoutNode2)
		if err != nil || !bytes.Equal(got, c.data) {
			t.Fatalf("clip %d with node 2 dead: err %v, equal %v", n, err, bytes.Equal(got, c.data))
		}
	}
}

// TestCorruptShardOnDisk damages one shard file of a clip on a node's disk:
// the node refuses to serve the bad piece (DataLoss), the codec catches the
// same damage in the raw file and names the shard, and the clip still
// decodes from the other shards.
func TestCorruptShardOnDisk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "n0")
	node := startStorage(t, dir)
	client := storageClient(t, node.addr)
	code, err := erasure.New(3, 2, erasure.WithBlockSize(96<<10))
	if err != nil {
		t.Fatal(err)
	}
	c := encodeClip(t, code, 1<<20)
	for i := range c.shards {
		if _, err := writeShard(t, client, c.shards[i]); err != nil {
			t.Fatal(err)
		}
	}
	path := server.ShardFile(dir, server.ShardID(c.shardID(1)))
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[128+5*(32<<10+24)+100] ^= 0x01 // a byte of block 5's piece
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = readShardStream(t, client, c.shardID(1))
	if status.Code(err) != codes.DataLoss || !strings.Contains(err.Error(), "block 5") {
		t.Fatalf("reading the damaged shard: %v, want DataLoss naming block 5", err)
	}
	// The raw damaged stream given to the decoder: caught, reported, decoded around.
	readers := make([]io.Reader, code.Shards())
	for i := range readers {
		b, err := readShardStream(t, client, c.shardID(i))
		if i == 1 {
			b, err = raw[128:], nil
		}
		if err != nil {
			t.Fatal(err)
		}
		readers[i] = bytes.NewReader(b)
	}
	var out bytes.Buffer
	rep, err := code.Decode(&out, readers, int64(len(c.data)))
	if err != nil || !bytes.Equal(out.Bytes(), c.data) {
		t.Fatalf("decode around the damage: %v, equal %v", err, bytes.Equal(out.Bytes(), c.data))
	}
	if len(rep.Faults) != 1 || rep.Faults[0].Index != 1 || rep.Faults[0].Block != 5 || !errors.Is(rep.Faults[0], erasure.ErrCorrupt) {
		t.Fatalf("report %+v, want shard 1 block 5 corrupt", rep)
	}
}

func TestStorageProcessStopsCleanly(t *testing.T) {
	node := startStorage(t, filepath.Join(t.TempDir(), "n0"))
	if err := node.stop(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, node.log.String())
	}
}

func TestStorageCommandErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no data dir", []string{"storage", "--listen", "127.0.0.1:0"}, `required flag(s) "data" not set`},
		{"bad log level", []string{"storage", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--log-level", "loud"}, "--log-level"},
		{"bad listen address", []string{"storage", "--listen", "127.0.0.1:99999", "--data", t.TempDir()}, "listen on 127.0.0.1:99999"},
		{"unknown command", []string{"frobnicate"}, "unknown command"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binary, tc.args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("exit %v, want non-zero", err)
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Fatalf("stderr %q, want one line containing %q", stderr.String(), tc.want)
			}
		})
	}
}

func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
