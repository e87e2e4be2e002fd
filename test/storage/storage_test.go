package storage

import (
	"bytes"
	"context"
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
	"github.com/clipstore/clipstore/internal/await"
	pb "github.com/clipstore/clipstore/proto/storagepb"
	"github.com/clipstore/clipstore/server"
	"github.com/clipstore/clipstore/test/e2e"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// readShardStream reads a whole shard back as a shard stream (units in
// order) for the decoder.
func readShardStream(t *testing.T, client pb.StorageServiceClient, id []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	stream, err := client.ReadShard(ctx, &pb.ReadShardRequest{ShardId: id})
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
func decodeFrom(t *testing.T, c *e2e.EncodedClip, holders []pb.StorageServiceClient) ([]byte, erasure.Report, error) {
	t.Helper()
	readers := make([]io.Reader, len(holders))
	for i, h := range holders {
		if h == nil {
			continue
		}
		b, err := readShardStream(t, h, c.ShardID(i))
		if err != nil {
			t.Logf("shard %d unreadable: %v", i, err)
			continue
		}
		readers[i] = bytes.NewReader(b)
	}
	var out bytes.Buffer
	rep, err := c.Code.Decode(&out, readers, int64(len(c.Data)))
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
	nodes := make([]*e2e.Process, 3)
	clients := make([]pb.StorageServiceClient, 3)
	for i, d := range dirs {
		nodes[i] = e2e.StartStorage(t, d)
		clients[i] = e2e.StorageClient(t, nodes[i].Addr)
	}
	code, err := erasure.New(4, 2, erasure.WithBlockSize(256<<10))
	if err != nil {
		t.Fatal(err)
	}
	// Shard index i lives on node i/2: two shards per node.
	holder := func(i int) int { return i / 2 }
	r := mrand.New(mrand.NewPCG(1, 2))
	var clips []*e2e.EncodedClip
	for _, size := range []int{0, 1, 256<<10 - 1, 256 << 10, 3<<20 + r.IntN(1<<20), 700_001} {
		clips = append(clips, e2e.EncodeClip(t, code, size))
	}
	var g errgroup.Group
	for _, c := range clips {
		for i := range c.Shards {
			g.Go(func() error {
				resp, err := e2e.WriteShard(t, clients[holder(i)], c.Shards[i])
				if err != nil {
					return fmt.Errorf("write shard %d: %w", i, err)
				}
				if resp.Checksum != c.Sums[i] {
					return fmt.Errorf("shard %d: node checksum %08x, encoder %08x", i, resp.Checksum, c.Sums[i])
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}

	// A write in flight when node 0 dies: header and a few pieces, no finish.
	inflight := e2e.EncodeClip(t, code, 2<<20)
	wctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	stream, err := clients[0].WriteShard(wctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range inflight.Shards[0][:4] {
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	await.True(t, 20*time.Second, "the in-flight write's temp file", func() bool {
		return len(nodes[0].TempFiles(t, dirs[0])) == 1
	})
	nodes[0].Kill()
	nodes[1].Kill()
	for _, i := range []int{0, 1} {
		nodes[i] = e2e.StartStorage(t, dirs[i])
		clients[i] = e2e.StorageClient(t, nodes[i].Addr)
	}
	if left := nodes[0].TempFiles(t, dirs[0]); len(left) != 0 {
		t.Fatalf("restart left temp files: %v", left)
	}
	sctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err = clients[0].StatShard(sctx, &pb.StatShardRequest{ShardId: inflight.ShardID(0)})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("interrupted write: stat says %v, want NotFound", err)
	}

	all := make([]pb.StorageServiceClient, code.Shards())
	for i := range all {
		all[i] = clients[holder(i)]
	}
	for n, c := range clips {
		got, rep, err := decodeFrom(t, c, all)
		if err != nil || !bytes.Equal(got, c.Data) || len(rep.Faults) != 0 {
			t.Fatalf("clip %d (%d bytes) after restarts: err %v, equal %v, report %+v", n, len(c.Data), err, bytes.Equal(got, c.Data), rep)
		}
	}
	// Node 2 gone: shards 4 and 5 (m = 2) are lost, the clips still decode.
	nodes[2].Kill()
	withoutNode2 := append([]pb.StorageServiceClient(nil), all...)
	withoutNode2[4], withoutNode2[5] = clients[2], clients[2] // dead: reads fail, the decoder must not care
	for n, c := range clips {
		got, _, err := decodeFrom(t, c, withoutNode2)
		if err != nil || !bytes.Equal(got, c.Data) {
			t.Fatalf("clip %d with node 2 dead: err %v, equal %v", n, err, bytes.Equal(got, c.Data))
		}
	}
}

// TestCorruptShardOnDisk damages one shard file of a clip on a node's disk:
// the node refuses to serve the bad piece (DataLoss), the codec catches the
// same damage in the raw file and names the shard, and the clip still
// decodes from the other shards.
func TestCorruptShardOnDisk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "n0")
	node := e2e.StartStorage(t, dir)
	client := e2e.StorageClient(t, node.Addr)
	code, err := erasure.New(3, 2, erasure.WithBlockSize(96<<10))
	if err != nil {
		t.Fatal(err)
	}
	c := e2e.EncodeClip(t, code, 1<<20)
	for i := range c.Shards {
		if _, err := e2e.WriteShard(t, client, c.Shards[i]); err != nil {
			t.Fatal(err)
		}
	}
	path := server.ShardFile(dir, server.ShardID(c.ShardID(1)))
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[128+5*(32<<10+24)+100] ^= 0x01 // a byte of block 5's piece
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = readShardStream(t, client, c.ShardID(1))
	if status.Code(err) != codes.DataLoss || !strings.Contains(err.Error(), "block 5") {
		t.Fatalf("reading the damaged shard: %v, want DataLoss naming block 5", err)
	}
	// The raw damaged stream given to the decoder: caught, reported, decoded around.
	readers := make([]io.Reader, code.Shards())
	for i := range readers {
		b, err := readShardStream(t, client, c.ShardID(i))
		if i == 1 {
			b, err = raw[128:], nil
		}
		if err != nil {
			t.Fatal(err)
		}
		readers[i] = bytes.NewReader(b)
	}
	var out bytes.Buffer
	rep, err := code.Decode(&out, readers, int64(len(c.Data)))
	if err != nil || !bytes.Equal(out.Bytes(), c.Data) {
		t.Fatalf("decode around the damage: %v, equal %v", err, bytes.Equal(out.Bytes(), c.Data))
	}
	if len(rep.Faults) != 1 || rep.Faults[0].Index != 1 || rep.Faults[0].Block != 5 || !errors.Is(rep.Faults[0], erasure.ErrCorrupt) {
		t.Fatalf("report %+v, want shard 1 block 5 corrupt", rep)
	}
}

func TestStorageProcessStopsCleanly(t *testing.T) {
	node := e2e.StartStorage(t, filepath.Join(t.TempDir(), "n0"))
	if err := node.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, node.Log.String())
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
			cmd := exec.Command(e2e.Binary(), tc.args...)
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
