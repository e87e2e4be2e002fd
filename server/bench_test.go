package server_test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	pb "github.com/clipstore/clipstore/proto/storagepb"
	"github.com/clipstore/clipstore/server"
)

// benchShardSize is the shard size the storage benchmarks move: a 64 MiB
// shard of a 4+2 code with 1 MiB blocks (256 pieces of 256 KiB).
const benchShardSize = 64 << 20

func benchShard(b *testing.B) *testShard {
	return makeShard(rand.New(rand.NewPCG(1, 1)), 4, 2, 1, 1<<20, benchShardSize)
}

// BenchmarkShardWrite compares a shard write through gRPC on loopback (the
// node verifies every piece, fsyncs, renames, fsyncs the directory) with
// writing the same bytes straight to a file and fsyncing it.
func BenchmarkShardWrite(b *testing.B) {
	s := benchShard(b)
	b.Run("grpc", func(b *testing.B) {
		n := startNode(b, benchConfig(b))
		ctx := b.Context()
		b.SetBytes(benchShardSize)
		b.ReportAllocs()
		for b.Loop() {
			s.header.ShardId = newID(rand.New(rand.NewPCG(rand.Uint64(), 0)))
			if _, err := writeShard(ctx, n.client, s); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if _, err := n.client.DeleteShard(ctx, &pb.DeleteShardRequest{ShardId: s.id()}); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run("file", func(b *testing.B) {
		dir := b.TempDir()
		b.SetBytes(benchShardSize)
		b.ReportAllocs()
		for b.Loop() {
			name := filepath.Join(dir, "shard")
			f, err := os.Create(name)
			if err != nil {
				b.Fatal(err)
			}
			for _, p := range s.pieces {
				if _, err := f.Write(p.Data); err != nil {
					b.Fatal(err)
				}
				if _, err := f.Write(p.Trailer); err != nil {
					b.Fatal(err)
				}
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			f.Close()
			b.StopTimer()
			os.Remove(name)
			b.StartTimer()
		}
	})
}

// BenchmarkShardRead compares reading a whole shard through gRPC (verified
// piece by piece) with reading the same file straight from the page cache.
func BenchmarkShardRead(b *testing.B) {
	s := benchShard(b)
	b.Run("grpc", func(b *testing.B) {
		n := startNode(b, benchConfig(b))
		ctx := b.Context()
		if _, err := writeShard(ctx, n.client, s); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(benchShardSize)
		b.ReportAllocs()
		for b.Loop() {
			stream, err := n.client.ReadShard(ctx, &pb.ReadShardRequest{ShardId: s.id()})
			if err != nil {
				b.Fatal(err)
			}
			got := 0
			for {
				resp, err := stream.Recv()
				if err != nil {
					break
				}
				if resp.Piece != nil {
					got += len(resp.Piece.Data)
				}
			}
			if got != benchShardSize {
				b.Fatalf("read %d bytes, want %d", got, benchShardSize)
			}
		}
	})
	b.Run("file", func(b *testing.B) {
		name := filepath.Join(b.TempDir(), "shard")
		f, err := os.Create(name)
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range s.pieces {
			f.Write(p.Data)
			f.Write(p.Trailer)
		}
		f.Sync()
		f.Close()
		unit := len(s.pieces[0].Data) + len(s.pieces[0].Trailer)
		buf := make([]byte, unit)
		b.SetBytes(benchShardSize)
		b.ReportAllocs()
		for b.Loop() {
			f, err := os.Open(name)
			if err != nil {
				b.Fatal(err)
			}
			for i := range s.pieces {
				if _, err := f.ReadAt(buf, int64(i*unit)); err != nil {
					b.Fatal(err)
				}
			}
			f.Close()
		}
	})
}

func benchConfig(b *testing.B) server.Config {
	return testConfig(b, 1)
}
