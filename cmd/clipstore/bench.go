package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/clipstore/clipstore/internal/bytesize"
	"github.com/clipstore/clipstore/internal/loadgen"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

type benchOptions struct {
	*clientOptions
	size, sizes, rangeLen string
	concurrency, objects  int
	duration              time.Duration
	count                 int64
	bucket, prefix        string
	seed                  uint64
	noClean, jsonOut      bool
	// --s3: an S3 endpoint instead of the cluster
	s3, accessKey, secretKey, region string
}

func newBenchCommand(co *clientOptions) *cobra.Command {
	o := &benchOptions{clientOptions: co}
	cmd := &cobra.Command{
		Use:   "bench put|get|mixed|list",
		Short: "Load the cluster and measure throughput and latency; every byte read is verified",
		Long: `Run a load against the cluster through the client library, as minio's warp
does, and report per operation and clip size: operations, errors, MiB/s,
ops/s, latency percentiles and the bytes verified.

  put    workers put clips under new keys
  get    workers read prepared clips picked at random (--range N: random
         N-byte ranges instead of whole clips); every byte is checked
  mixed  45% get, 30% stat, 15% put, 10% delete of the run's clips
  list   workers list the prefix of the prepared clips, whole

Clips go to --bucket (created if missing) under --prefix, and are deleted at
the end unless --no-clean; preparing and deleting them is not measured.
--sizes takes a list that operations use in turn. The clock starts once every
worker is ready and stops at --duration (operations in flight complete and
count) or after --count operations in total.
--json prints one object: workload, concurrency, duration_seconds, results
(op, size, count, errors, bytes, bytes_verified, duration_seconds,
mib_per_sec, ops_per_sec, latency_ms {p50, p90, p99, max}; list adds entries
and entries_per_sec) and error_samples. Exits non-zero if any operation
failed.

--s3 ENDPOINT runs the same workloads, measured and verified the same way,
against any S3 endpoint (clipstore s3, or another store) instead of the
cluster: path-style requests over HTTP with unsigned payloads of known
length, no checksums computed or checked (the workloads verify every byte),
no retries. The credential comes from --access-key and --secret-key, else
$AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return errors.New("bench: name one workload: put, get, mixed or list")
			}
			_, err := loadgen.ParseWorkload(args[0])
			return err
		},
		ValidArgs: []string{"put", "get", "mixed", "list"},
		RunE:      func(cmd *cobra.Command, args []string) error { return o.run(cmd, args[0]) },
	}
	f := cmd.Flags()
	f.StringVar(&o.size, "size", "8MiB", "clip size, e.g. 64KiB, 8MiB, 1MB (list: 1KiB unless given)")
	f.StringVar(&o.sizes, "sizes", "", "clip sizes used in turn, comma-separated, e.g. 64KiB,1MiB,8MiB,64MiB")
	f.IntVar(&o.concurrency, "concurrency", loadgen.DefaultConcurrency, "workers running operations at once")
	f.DurationVar(&o.duration, "duration", loadgen.DefaultDuration, "measure for this long (not with --count)")
	f.Int64Var(&o.count, "count", 0, "stop after this many operations in total (not with --duration)")
	f.StringVar(&o.bucket, "bucket", loadgen.DefaultBucket, "bucket of the run's clips, created if missing")
	f.StringVar(&o.prefix, "prefix", "", `key prefix of the run's clips (default "bench/<random 8 hex>/")`)
	f.IntVar(&o.objects, "objects", 0, "get, mixed, list: clips of each size to prepare (default: 4 per worker; list: 1000)")
	f.StringVar(&o.rangeLen, "range", "", "get: read random ranges of this many bytes instead of whole clips, e.g. 256KiB")
	f.Uint64Var(&o.seed, "seed", 1, "seed of the clip content and the random choices")
	f.BoolVar(&o.noClean, "no-clean", false, "keep the run's clips")
	f.BoolVar(&o.jsonOut, "json", false, "print the results as one JSON object")
	f.StringVar(&o.s3, "s3", "", "load this S3 endpoint, e.g. http://127.0.0.1:9000, instead of the cluster")
	f.StringVar(&o.accessKey, "access-key", "", "with --s3: the access key id (default $AWS_ACCESS_KEY_ID)")
	f.StringVar(&o.secretKey, "secret-key", "", "with --s3: the secret access key (default $AWS_SECRET_ACCESS_KEY)")
	f.StringVar(&o.region, "region", loadgen.DefaultRegion, "with --s3: the region requests are signed for")
	return cmd
}

// config checks the flags and builds the run's configuration.
func (o *benchOptions) config(cmd *cobra.Command, workload string) (loadgen.Config, error) {
	cfg := loadgen.Config{Bucket: o.bucket, Prefix: o.prefix, Concurrency: o.concurrency, Objects: o.objects,
		Seed: o.seed, Keep: o.noClean}
	var err error
	if cfg.Workload, err = loadgen.ParseWorkload(workload); err != nil {
		return cfg, err
	}
	changed := cmd.Flags().Changed
	switch {
	case changed("size") && changed("sizes"):
		return cfg, errors.New("--size and --sizes: give one")
	case changed("sizes"):
		if cfg.Sizes, err = bytesize.ParseList(o.sizes); err != nil {
			return cfg, fmt.Errorf("--sizes: %w", err)
		}
	case !changed("size") && cfg.Workload == loadgen.WorkloadList:
		cfg.Sizes = []int64{1 << 10}
	default:
		size, err := bytesize.Parse(o.size)
		if err != nil {
			return cfg, fmt.Errorf("--size: %w", err)
		}
		cfg.Sizes = []int64{size}
	}
	switch {
	case o.concurrency < 1:
		return cfg, fmt.Errorf("--concurrency %d: want at least 1", o.concurrency)
	case changed("duration") && changed("count"):
		return cfg, errors.New("--duration and --count: give one")
	case changed("count") && o.count < 1:
		return cfg, fmt.Errorf("--count %d: want at least 1", o.count)
	case !changed("count") && o.duration <= 0:
		return cfg, fmt.Errorf("--duration %v: want a positive duration", o.duration)
	case o.objects < 0:
		return cfg, fmt.Errorf("--objects %d: want at least 1", o.objects)
	}
	if changed("count") {
		cfg.Count = o.count
	} else {
		cfg.Duration = o.duration
	}
	if o.s3 == "" && (changed("access-key") || changed("secret-key") || changed("region")) {
		return cfg, errors.New("--access-key, --secret-key and --region go with --s3")
	}
	if o.rangeLen != "" {
		if cfg.Workload != loadgen.WorkloadGet {
			return cfg, fmt.Errorf("--range: only the get workload reads ranges")
		}
		if cfg.Range, err = bytesize.Parse(o.rangeLen); err != nil || cfg.Range < 1 {
			return cfg, fmt.Errorf("--range %q: want a length such as 64KiB", o.rangeLen)
		}
	}
	return cfg, cfg.Validate()
}

func (o *benchOptions) run(cmd *cobra.Command, workload string) error {
	cfg, err := o.config(cmd, workload)
	if err != nil {
		return err
	}
	st, ctx, done, err := o.store(cmd, cfg.Concurrency)
	if err != nil {
		return err
	}
	defer done()
	if f, ok := cmd.ErrOrStderr().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		cfg.Progress = func(p loadgen.Progress) { showProgress(f, p) }
	}
	rep, runErr := loadgen.Run(ctx, st, cfg)
	if cfg.Progress != nil {
		fmt.Fprint(cmd.ErrOrStderr(), "\r\033[K") // the live line goes before anything else is printed
	}
	if rep == nil {
		return runErr
	}
	if o.jsonOut {
		err = writeJSON(cmd.OutOrStdout(), rep)
	} else {
		err = writeBenchTable(cmd.OutOrStdout(), rep)
	}
	if err != nil {
		return err
	}
	if o.noClean {
		fmt.Fprintf(cmd.ErrOrStderr(), "clips kept under %s/%s\n", rep.Bucket, rep.Prefix)
	}
	switch opErr := rep.Err(); {
	case opErr != nil && runErr != nil:
		return fmt.Errorf("%v; %v", opErr, runErr)
	case opErr != nil:
		return opErr
	}
	return runErr
}

// store returns what the run loads: the S3 endpoint of --s3, else the
// cluster through the client library; the context of the run, and a
// function that releases both.
func (o *benchOptions) store(cmd *cobra.Command, concurrency int) (loadgen.Store, context.Context, func(), error) {
	if o.s3 == "" {
		c, ctx, done, err := o.connect(cmd)
		if err != nil {
			return nil, nil, nil, err
		}
		return loadgen.NewClientStore(c), ctx, done, nil
	}
	accessKey := cmp.Or(o.accessKey, os.Getenv("AWS_ACCESS_KEY_ID"))
	secretKey := cmp.Or(o.secretKey, os.Getenv("AWS_SECRET_ACCESS_KEY"))
	if accessKey == "" || secretKey == "" {
		return nil, nil, nil, errors.New("--s3: no credential: give --access-key and --secret-key, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	st, err := loadgen.NewS3Store(loadgen.S3Config{Endpoint: o.s3, Region: o.region, Concurrency: concurrency,
		AccessKey: accessKey, SecretKey: secretKey})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--s3: %w", err)
	}
	ctx, cancel := context.WithCancel(cmd.Context())
	if o.timeout > 0 {
		ctx, cancel = context.WithTimeout(cmd.Context(), o.timeout)
	}
	return st, ctx, func() { st.Close(); cancel() }, nil
}

// showProgress rewrites the live line on a terminal.
func showProgress(w io.Writer, p loadgen.Progress) {
	var mibps float64
	if s := p.Elapsed.Seconds(); s > 0 {
		mibps = float64(p.Bytes) / (1 << 20) / s
	}
	fmt.Fprintf(w, "\r%s: %.1fs, %d ops, %.1f MiB/s, %d errors\033[K", p.Phase, p.Elapsed.Seconds(), p.Ops, mibps, p.Errors)
}

// writeBenchTable prints a report as a table.
func writeBenchTable(w io.Writer, rep *loadgen.Report) error {
	fmt.Fprintf(w, "%s, %d workers, %.2f s\n", rep.Workload, rep.Concurrency, rep.DurationSeconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "OP\tSIZE\tOPS\tERRORS\tMiB/s\tOPS/s\tP50\tP90\tP99\tMAX\tVERIFIED\t")
	for _, r := range rep.Results {
		size, verified := bytesize.Format(r.Size), "-"
		if r.Op == loadgen.OpList {
			size = "-"
		}
		if r.Op == loadgen.OpGet {
			verified = bytesize.Human(r.BytesVerified)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1f\t%.1f\t%.1fms\t%.1fms\t%.1fms\t%.1fms\t%s\t\n", r.Op, size, r.Count, r.Errors,
			r.MiBPerSec, r.OpsPerSec, r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max, verified)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rep.Results {
		if r.Op == loadgen.OpList {
			fmt.Fprintf(w, "list: %d entries, %.0f entries/s\n", r.Entries, r.EntriesPerSec)
		}
	}
	return nil
}
