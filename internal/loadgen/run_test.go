package loadgen

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/bytesize"
	"github.com/clipstore/clipstore/internal/devcluster"
	"github.com/clipstore/clipstore/meta"
	metapb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/clipstore/clipstore/server"
)

// startCluster runs a small real cluster in this process (1 meta member,
// 3 storage nodes, RS 2+1 over 64 KiB blocks, so that small clips span
// several blocks) and returns a client of it. Both stop at cleanup.
func startCluster(t *testing.T) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := devcluster.Start(ctx, devcluster.Config{
		Dir: t.TempDir(), MetaAddr: "127.0.0.1:0", MetaNodes: 1, StorageNodes: 3,
		Profile: &metapb.ECProfile{DataShards: 2, ParityShards: 1, BlockSize: 64 << 10},
		Logger:  slog.New(slog.DiscardHandler),
		ConfigureMeta: func(cfg *meta.Config) {
			cfg.HeartbeatInterval, cfg.MinFreeBytes = 100*time.Millisecond, 0
		},
		ConfigureStorage: func(cfg *server.Config) { cfg.ScrubInterval = 0 },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Shutdown(ctx); err != nil {
			t.Errorf("shut down the cluster: %v", err)
		}
	})
	cl, err := client.New(ctx, client.Config{Meta: c.MetaAddrs()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// run runs cfg against st with a bound on its duration and fails the test
// if the run could not take place.
func run(t *testing.T, st Store, cfg Config) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, st, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rep
}

// listed returns the keys under the prefix.
func listed(t *testing.T, cl *client.Client, bucket, prefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var keys []string
	for e, err := range cl.List(ctx, bucket, prefix) {
		if err != nil {
			t.Fatalf("list %s/%s: %v", bucket, prefix, err)
		}
		keys = append(keys, e.Key)
	}
	return keys
}

// counts returns each result's count by "op/size".
func counts(rep *Report) map[string]int64 {
	out := map[string]int64{}
	for _, r := range rep.Results {
		out[r.Op+"/"+bytesize.Format(r.Size)] = r.Count
	}
	return out
}

func checkClean(t *testing.T, cl *client.Client, rep *Report) {
	t.Helper()
	if rep.Errors() != 0 {
		t.Fatalf("%d operations failed: %q", rep.Errors(), rep.ErrorSamples)
	}
	if keys := listed(t, cl, rep.Bucket, rep.Prefix); len(keys) != 0 {
		t.Fatalf("%d clips left under %s/%s after the run: %q", len(keys), rep.Bucket, rep.Prefix, keys)
	}
}

// TestWorkloads runs every workload against a real cluster and checks
// counts, verification and cleanup.
func TestWorkloads(t *testing.T) {
	cl := startCluster(t)
	st := NewClientStore(cl)
	sizes := []int64{1000, 200_000} // one block; several blocks, the last partial

	t.Run("put", func(t *testing.T) {
		rep := run(t, st, Config{Workload: WorkloadPut, Sizes: sizes, Concurrency: 3, Count: 12})
		checkClean(t, cl, rep)
		if got := counts(rep); len(got) != 2 || got["put/1000B"] != 6 || got["put/200000B"] != 6 {
			t.Fatalf("counts %v, want 6 puts of each size", got)
		}
		for _, r := range rep.Results {
			if r.Bytes != 6*r.Size || r.OpsPerSec <= 0 || r.Latency.P50 <= 0 || r.Latency.Max < r.Latency.P99 {
				t.Fatalf("result %+v", r)
			}
		}
		if !strings.HasPrefix(rep.Prefix, "bench/") || rep.Bucket != DefaultBucket || rep.Concurrency != 3 {
			t.Fatalf("defaults: bucket %q, prefix %q", rep.Bucket, rep.Prefix)
		}
	})

	t.Run("keep", func(t *testing.T) {
		rep := run(t, st, Config{Workload: WorkloadPut, Sizes: []int64{10}, Concurrency: 2, Count: 5, Keep: true,
			Bucket: "bench-keep", Prefix: "kept/"})
		if keys := listed(t, cl, "bench-keep", "kept/"); len(keys) != 5 || rep.Errors() != 0 {
			t.Fatalf("kept %q, %d errors", keys, rep.Errors())
		}
		for _, k := range listed(t, cl, "bench-keep", "kept/") {
			if err := cl.Delete(context.Background(), "bench-keep", k); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("get", func(t *testing.T) {
		rep := run(t, st, Config{Workload: WorkloadGet, Sizes: sizes, Concurrency: 3, Count: 20, Objects: 3})
		checkClean(t, cl, rep)
		if got := counts(rep); len(got) != 2 || got["get/1000B"] != 10 || got["get/200000B"] != 10 {
			t.Fatalf("counts %v, want 10 gets of each size", got)
		}
		for _, r := range rep.Results {
			if r.Bytes != 10*r.Size || r.BytesVerified != r.Bytes {
				t.Fatalf("result %+v: want every byte read verified", r)
			}
		}
	})

	t.Run("get range", func(t *testing.T) { testGetRange(t, st, cl, sizes) })

	t.Run("mixed", func(t *testing.T) {
		rep := run(t, st, Config{Workload: WorkloadMixed, Sizes: []int64{3000}, Concurrency: 4, Count: 120, Objects: 4})
		checkClean(t, cl, rep)
		var total int64
		for _, r := range rep.Results {
			total += r.Count
			if r.Op == OpGet && r.BytesVerified != r.Bytes {
				t.Fatalf("get result %+v: want every byte read verified", r)
			}
		}
		if got := counts(rep); total != 120 || got["get/3000B"] == 0 || got["stat/3000B"] == 0 || got["put/3000B"] == 0 || got["delete/3000B"] == 0 {
			t.Fatalf("counts %v: want 120 operations, some of each kind", got)
		}
	})

	t.Run("list", func(t *testing.T) {
		rep := run(t, st, Config{Workload: WorkloadList, Sizes: []int64{100}, Concurrency: 2, Count: 6, Objects: 25})
		checkClean(t, cl, rep)
		if len(rep.Results) != 1 || rep.Results[0].Op != OpList || rep.Results[0].Count != 6 || rep.Results[0].Entries != 6*25 ||
			rep.Results[0].EntriesPerSec <= 0 {
			t.Fatalf("results %+v", rep.Results)
		}
	})

	t.Run("duration", func(t *testing.T) {
		var calls atomic.Int64
		rep := run(t, st, Config{Workload: WorkloadPut, Sizes: []int64{100}, Concurrency: 2, Duration: 600 * time.Millisecond,
			Progress: func(p Progress) {
				if p.Phase == "measure" && p.Elapsed > 0 {
					calls.Add(1)
				}
			}})
		checkClean(t, cl, rep)
		if rep.DurationSeconds < 0.6 || len(rep.Results) != 1 || rep.Results[0].Count == 0 || calls.Load() == 0 {
			t.Fatalf("%.3f s, results %+v, %d progress calls", rep.DurationSeconds, rep.Results, calls.Load())
		}
	})

	testDamageReported(t, st, cl, sizes)

	t.Run("a bad bucket fails the run", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := Run(ctx, st, Config{Workload: WorkloadGet, Bucket: "Bad_Bucket_Name", Sizes: []int64{10}, Count: 1})
		if !errors.Is(err, client.ErrInvalidArgument) {
			t.Fatalf("Run with a bad bucket name: %v", err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no workload", Config{}, "Workload"},
		{"unknown workload", Config{Workload: "scan"}, "unknown workload"},
		{"both stops", Config{Workload: WorkloadPut, Duration: time.Second, Count: 1}, "at most one"},
		{"negative concurrency", Config{Workload: WorkloadPut, Concurrency: -1}, "Concurrency"},
		{"negative size", Config{Workload: WorkloadPut, Sizes: []int64{-1}}, "Sizes"},
		{"range for put", Config{Workload: WorkloadPut, Range: 10}, "Range"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate() = %v, want an error about %s", tc.name, err, tc.want)
		}
	}
	cfg, err := Config{Workload: WorkloadList}.withDefaults()
	if err != nil || cfg.Objects != DefaultListObjects || cfg.Duration != DefaultDuration || cfg.Concurrency != DefaultConcurrency ||
		len(cfg.Sizes) != 1 || cfg.Sizes[0] != DefaultSize {
		t.Fatalf("defaults %+v, %v", cfg, err)
	}
	if cfg, _ := (Config{Workload: WorkloadGet, Concurrency: 3, Count: 5}).withDefaults(); cfg.Objects != 12 || cfg.Duration != 0 {
		t.Fatalf("get defaults %+v", cfg)
	}
}

// testGetRange reads random 70,000-byte ranges of prepared clips of sizes
// through st: every byte read is verified.
func testGetRange(t *testing.T, st Store, cl *client.Client, sizes []int64) {
	rep := run(t, st, Config{Workload: WorkloadGet, Sizes: sizes, Concurrency: 2, Count: 10, Objects: 2, Range: 70_000})
	checkClean(t, cl, rep)
	for _, r := range rep.Results {
		want := 5 * min(r.Size, 70_000)
		if r.Count != 5 || r.Bytes != want || r.BytesVerified != want {
			t.Fatalf("result %+v: want 5 verified reads of %d bytes", r, want/5)
		}
	}
}

// testDamageReported reads through st, checked against another seed's
// content than the one written: every read, whole or by range, must fail:
// damage is an error, not a number.
func testDamageReported(t *testing.T, st Store, cl *client.Client, sizes []int64) {
	for _, rng := range []int64{0, 5000} {
		t.Run("damage is reported/range="+bytesize.Format(rng), func(t *testing.T) {
			other := uint64(2)
			rep := run(t, st, Config{Workload: WorkloadGet, Sizes: sizes, Concurrency: 2, Count: 8, Objects: 2, Seed: 1,
				Range: rng, verifySeed: &other})
			var ops, errs int64
			for _, r := range rep.Results {
				ops, errs = ops+r.Count, errs+r.Errors
				if r.Bytes != 0 || r.BytesVerified != 0 || r.OpsPerSec != 0 {
					t.Fatalf("a failed read made statistics: %+v", r)
				}
			}
			if ops != 8 || errs != ops || len(rep.ErrorSamples) == 0 || !strings.Contains(rep.ErrorSamples[0], ErrContent.Error()) {
				t.Fatalf("%d of %d reads failed, samples %q", errs, ops, rep.ErrorSamples)
			}
			if err := rep.Err(); err == nil || !strings.HasPrefix(err.Error(), "bench: 8 operations failed (first: get ") {
				t.Fatalf("Err() = %v", err)
			}
			if keys := listed(t, cl, rep.Bucket, rep.Prefix); len(keys) != 0 {
				t.Fatalf("clips left: %q", keys)
			}
		})
	}
}
