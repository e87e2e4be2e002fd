package devcluster_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/devcluster"
	"github.com/clipstore/clipstore/meta"
	metapb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/clipstore/clipstore/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// BenchmarkRebuild measures how fast a 7-node cluster (RS 4+2) rebuilds
// the shards of a node it lost for good, in MB/s of reconstructed shard
// bytes from the moment meta marks the node down (detection is reported
// apart), beside the raw speed of writing the same bytes to a file with
// fsync on the same disk; and the foreground get throughput while the
// rebuild runs, as a ratio to the same workload before it.
func BenchmarkRebuild(b *testing.B) {
	for b.Loop() {
		runRebuild(b, 64, true)
	}
}

// BenchmarkRebuildAlone is BenchmarkRebuild with no gets meanwhile and four
// times the clips (about 350 MiB of shards to rebuild, a second's work):
// the rebuild's own rate over a window in which the first heartbeat's
// delivery of the work weighs little, and what it costs. The cluster runs
// in this process, so the CPU it reports (getrusage around the rebuild) is
// that of every node and meta, divided by the bytes rebuilt.
func BenchmarkRebuildAlone(b *testing.B) {
	for b.Loop() {
		runRebuild(b, 256, false)
	}
}

func runRebuild(b *testing.B, clips int, withGets bool) {
	ctx := context.Background()
	dir := b.TempDir()
	c, err := devcluster.Start(ctx, devcluster.Config{
		Dir: dir, MetaAddr: "127.0.0.1:0", MetaNodes: 1, StorageNodes: 7,
		Profile: &metapb.ECProfile{DataShards: 4, ParityShards: 2, BlockSize: 1 << 20},
		Logger:  slog.New(slog.DiscardHandler),
		ConfigureMeta: func(cfg *meta.Config) {
			cfg.HeartbeatInterval, cfg.NodeDownAfter, cfg.RepairAfter = 100*time.Millisecond, 500*time.Millisecond, 0
			cfg.RepairBytesPerSec, cfg.MinFreeBytes = 0, 0
		},
		ConfigureStorage: func(cfg *server.Config) { cfg.RepairConcurrency = 4; cfg.ScrubInterval = 0 },
	})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Shutdown(ctx)
	cl, err := client.New(ctx, client.Config{Meta: c.MetaAddrs()})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	if err := cl.CreateBucket(ctx, "bench", nil); err != nil {
		b.Fatal(err)
	}
	const size = 8 << 20 // 64 clips: 512 MiB, ~110 MiB of shards a node
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	for i := range clips {
		if _, err := cl.Put(ctx, "bench", clipKey(i), bytes.NewReader(data), nil); err != nil {
			b.Fatal(err)
		}
	}
	var before float64
	if withGets {
		before = getThroughput(b, cl, clips, 2*time.Second, nil)
	}

	var lost int64
	for i := range clips {
		info, _ := cl.Stat(ctx, "bench", clipKey(i))
		for _, s := range info.Shards {
			if s.Node == "storage-6" {
				lost += s.Length
			}
		}
	}
	stopped := time.Now()
	if err := c.StopStorage(ctx, 6); err != nil {
		b.Fatal(err)
	}
	mc, err := metaClient(c)
	if err != nil {
		b.Fatal(err)
	}
	for !nodeDown(ctx, mc, "storage-6") {
		if time.Since(stopped) > time.Minute {
			b.Fatal("the stopped node was not marked down within a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cpu0 := cpuTime()
	start := time.Now()
	detection := start.Sub(stopped)
	done := make(chan struct{})
	var during float64
	var wg sync.WaitGroup
	if withGets {
		wg.Go(func() { during = getThroughput(b, cl, clips, time.Minute, done) })
	}
	for {
		if repaired(ctx, b, cl, clips) {
			break
		}
		if time.Since(start) > 5*time.Minute {
			b.Fatal("rebuild did not finish in 5 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	close(done)
	wg.Wait()
	rate := float64(lost) / 1e6 / elapsed.Seconds()
	ref := diskWrite(b, filepath.Join(dir, "ref"), lost)
	b.ReportMetric(rate, "rebuild-MB/s")
	b.ReportMetric(ref, "disk-write-MB/s")
	b.ReportMetric(rate/ref, "rebuild/disk")
	b.ReportMetric(detection.Seconds(), "detection-s")
	if withGets {
		b.ReportMetric(during/before, "get-during/before")
		b.Logf("node marked down %v after it stopped; rebuilt %.1f MiB in %v after that: %.1f MB/s vs raw fsync'd write %.1f MB/s; gets %.1f MB/s during vs %.1f MB/s before",
			detection.Round(time.Millisecond), float64(lost)/(1<<20), elapsed.Round(time.Millisecond), rate, ref, during, before)
		return
	}
	b.ReportMetric(cpu.Seconds()/(float64(lost)/(1<<30)), "CPU-s/GiB")
	b.ReportMetric(cpu.Seconds()/elapsed.Seconds(), "cores")
	b.Logf("node marked down %v after it stopped; rebuilt %.1f MiB in %v after that: %.1f MB/s vs raw fsync'd write %.1f MB/s; %.2f CPU-s, %.2f cores",
		detection.Round(time.Millisecond), float64(lost)/(1<<20), elapsed.Round(time.Millisecond), rate, ref, cpu.Seconds(), cpu.Seconds()/elapsed.Seconds())
}

// clipKey is the key of the benchmark's clip i.
func clipKey(i int) string { return fmt.Sprintf("clip-%03d", i) }

// cpuTime is the CPU this process has used, user and system: the whole
// in-process cluster's.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func metaClient(c *devcluster.Cluster) (metapb.MetaServiceClient, error) {
	conn, err := grpc.NewClient(c.MetaAddrs()[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return metapb.NewMetaServiceClient(conn), nil
}

// nodeDown reports whether meta has marked the node down.
func nodeDown(ctx context.Context, mc metapb.MetaServiceClient, id string) bool {
	resp, err := mc.ListNodes(ctx, &metapb.ListNodesRequest{})
	if err != nil {
		return false
	}
	for _, n := range resp.Nodes {
		if n.NodeId == id {
			return n.State == metapb.NodeState_NODE_STATE_DOWN
		}
	}
	return false
}

// repaired reports whether no clip has a shard on the lost node or a shard
// that is not OK.
func repaired(ctx context.Context, b *testing.B, cl *client.Client, clips int) bool {
	for i := range clips {
		info, err := cl.Stat(ctx, "bench", clipKey(i))
		if err != nil {
			return false
		}
		for _, s := range info.Shards {
			if s.Node == "storage-6" || s.State != client.ShardOK {
				return false
			}
		}
	}
	return true
}

// getThroughput reads whole clips with 4 readers for d (or until stop) and
// returns MB/s.
func getThroughput(b *testing.B, cl *client.Client, clips int, d time.Duration, stop <-chan struct{}) float64 {
	var bytes atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; time.Now().Before(deadline); i++ {
				select {
				case <-stop:
					return
				default:
				}
				info, err := cl.Get(context.Background(), "bench", clipKey(i%clips), io.Discard, nil)
				if err != nil {
					b.Error(err)
					return
				}
				bytes.Add(info.Size)
			}
		}()
	}
	wg.Wait()
	return float64(bytes.Load()) / 1e6 / time.Since(start).Seconds()
}

// diskWrite writes n bytes in 1 MiB writes and fsyncs, returning MB/s.
func diskWrite(b *testing.B, path string, n int64) float64 {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(path)
	defer f.Close()
	buf := make([]byte, 1<<20)
	start := time.Now()
	for w := int64(0); w < n; w += int64(len(buf)) {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	return float64(n) / 1e6 / time.Since(start).Seconds()
}
