package meta_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clipstore/clipstore/meta"
	"github.com/clipstore/clipstore/meta/metatest"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// benchCommit builds a CommitPut for a 4+2 clip of 8 MiB on nodes s0..s5,
// without a BeginPut round trip; its ids are UUIDv7s, as BeginPut's and the
// client's request ids are.
func benchCommit(key string) *pb.CommitPutRequest {
	id := func() []byte { u := uuid.Must(uuid.NewV7()); return u[:] }
	profile := &pb.ECProfile{DataShards: 4, ParityShards: 2, BlockSize: 1 << 20}
	req := &pb.CommitPutRequest{RequestId: id(), Bucket: "bench", Key: key, UploadId: id(), ClipId: id(),
		CommitDeadlineUnixNano: time.Now().Add(time.Hour).UnixNano(), Size: 8 << 20, Profile: profile,
		ContentType: "video/mp4", Capture: &pb.CaptureAttributes{VehicleId: "car-0042", Camera: "front",
			StartUnixNano: time.Now().UnixNano(), EndUnixNano: time.Now().Add(time.Minute).UnixNano()}}
	for i := range 6 {
		req.Shards = append(req.Shards, &pb.Shard{Index: uint32(i), NodeId: fmt.Sprintf("s%d", i), ShardId: id(),
			Length: 2 << 20, Checksum: 0xdeadbeef, State: pb.ShardState_SHARD_STATE_OK})
	}
	return req
}

// BenchmarkCommitPut measures CommitPut throughput and latency on a
// 3-member cluster (TCP on loopback, fsync on) with 1, 16 and 64
// concurrent clients. The reference, in the same run, is the rate of
// sequential 4 KiB append+fsync on the same disk: every commit batch costs
// at least one such fsync on a quorum.
func BenchmarkCommitPut(b *testing.B) {
	regs := map[string]*prometheus.Registry{}
	c := metatest.New(b, 3, metatest.Options{Configure: func(cfg *meta.Config) {
		regs[cfg.ID] = prometheus.NewRegistry()
		cfg.Registerer = regs[cfg.ID]
	}})
	leader := c.WaitLeader()
	batches := func() (entries, count float64) {
		families, _ := regs[leader.ID].Gather()
		for _, f := range families {
			if f.GetName() == "clipstore_meta_apply_batch_entries" {
				h := f.GetMetric()[0].GetHistogram()
				return h.GetSampleSum(), float64(h.GetSampleCount())
			}
		}
		return 0, 0
	}
	if _, err := leader.Client.CreateBucket(b.Context(), &pb.CreateBucketRequest{Name: "bench"}); err != nil {
		b.Fatal(err)
	}
	registerNodes(b, leader.Client, 6)
	for _, clients := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			conns := make([]pb.MetaServiceClient, clients)
			for i := range conns {
				conn, err := grpc.NewClient(leader.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
				if err != nil {
					b.Fatal(err)
				}
				defer conn.Close()
				conns[i] = pb.NewMetaServiceClient(conn)
			}
			reqs := make([]*pb.CommitPutRequest, b.N)
			for i := range reqs {
				reqs[i] = benchCommit(fmt.Sprintf("c%d/%08d", clients, i))
			}
			lat := make([]time.Duration, b.N)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := int(next.Add(1) - 1)
						if i >= len(reqs) {
							return
						}
						t0 := time.Now()
						if _, err := conns[w].CommitPut(context.Background(), reqs[i]); err != nil {
							b.Error(err)
							return
						}
						lat[i] = time.Since(t0)
					}
				}()
			}
			e0, n0 := batches()
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			reportLatency(b, lat, elapsed)
			if e1, n1 := batches(); n1 > n0 {
				b.ReportMetric((e1-e0)/(n1-n0), "entries/batch")
			}
		})
	}
	b.Run("reference=fsync-4KiB", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "wal"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 4096)
		lat := make([]time.Duration, b.N)
		start := time.Now()
		for i := range b.N {
			t0 := time.Now()
			f.Write(buf)
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			lat[i] = time.Since(t0)
		}
		reportLatency(b, lat, time.Since(start))
	})
}

func reportLatency(b *testing.B, lat []time.Duration, elapsed time.Duration) {
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "ops/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkGetClip measures linearizable and stale GetClip on a follower
// and on the leader of a 3-member cluster, 16 concurrent readers.
func BenchmarkGetClip(b *testing.B) {
	c := metatest.New(b, 3, metatest.Options{})
	leader := c.WaitLeader()
	if _, err := leader.Client.CreateBucket(b.Context(), &pb.CreateBucketRequest{Name: "bench"}); err != nil {
		b.Fatal(err)
	}
	registerNodes(b, leader.Client, 6)
	for i := range 100 {
		if _, err := leader.Client.CommitPut(b.Context(), benchCommit(fmt.Sprintf("k%03d", i))); err != nil {
			b.Fatal(err)
		}
	}
	c.WaitConverged()
	for _, tc := range []struct {
		name  string
		m     *metatest.Member
		stale bool
	}{
		{"leader/linearizable", leader, false},
		{"follower/linearizable", c.Followers()[0], false},
		{"follower/stale", c.Followers()[0], true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			lat := make([]time.Duration, b.N)
			var next atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := int(next.Add(1) - 1)
						if i >= b.N {
							return
						}
						t0 := time.Now()
						_, err := tc.m.Client.GetClip(context.Background(), &pb.GetClipRequest{Bucket: "bench",
							Key: fmt.Sprintf("k%03d", i%100), Read: &pb.ReadOptions{Stale: tc.stale}})
						if err != nil {
							b.Error(err)
							return
						}
						lat[i] = time.Since(t0)
					}
				}()
			}
			wg.Wait()
			reportLatency(b, lat, time.Since(start))
		})
	}
}
