// Command benchreport is `make bench`: it runs every clipstore benchmark
// beside a reference measured in the same run on the same machine, and
// prints one markdown table with the ratios and the targets.
//
//   - codec: erasure/ Go benchmarks, each beside raw klauspost/reedsolomon
//     on the same data (sub-benchmarks .../codec and .../reference);
//   - storage node: server/ Go benchmarks, a shard written and read over
//     gRPC beside the same bytes written to and read from a file (.../grpc
//     and .../file);
//   - end to end: a cluster of real processes (1 meta, 6 storage nodes,
//     RS 4+2) driven by `clipstore bench`, beside the raw fsync'd write
//     bandwidth of the same disk times k/(k+m), raw loopback TCP, and the
//     rate of creating and fsyncing k+m small files; and the peak RSS of the
//     client and the storage nodes for a 1 GiB clip; then 8 MiB puts and
//     gets through a `clipstore s3` gateway beside the same loads through
//     the native client, with the gateway's peak RSS and CPU time per GiB;
//   - meta: CommitPut/s beside 4 KiB append+fsync/s, GetClip linearizable
//     beside stale, and the rebuild rate beside the disk's write rate.
//
// Two sections run only when asked for: -only s3peer (`make bench-s3`),
// the S3 gateway beside MinIO on the same machine, in two layouts (one
// server; six servers forming one erasure set), the same loads alternating
// between them (peer.go); and -only tls (`make bench-tls`), 8 MiB puts and
// gets on a cluster with TLS on every link beside the same loads on one in
// plain text, alternating, and AES-GCM's rate on this CPU (tls.go).
//
// Progress and the raw output of every step go to stderr; the table goes
// to stdout.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options select what runs and how long.
type options struct {
	quick    bool
	sections []string
	dir      string
	keep     bool
	// codec and storage node benchmarks
	benchtime string
	// end to end
	sizes       []int64
	concurrency []int
	duration    time.Duration
	memClip     int64
	// meta
	commits string
	clips   int
	// s3peer, tls
	reps         int
	minio        string
	minioLayouts []string // MinIO targets (nil: all)
}

var allSections = []string{"codec", "storage", "e2e", "meta", "rebuild"}

// extraSections run only when -only names them.
var extraSections = []string{"s3peer", "tls"}

func main() {
	quick := flag.Bool("quick", false, "few iterations, two clip sizes, a 256 MiB memory clip: a check that everything runs (under 2 minutes)")
	only := flag.String("only", strings.Join(allSections, ","), "sections to run, comma-separated")
	dir := flag.String("dir", "", "work directory for the cluster and the disk references (default: a new one under $TMPDIR, removed at the end)")
	keep := flag.Bool("keep", false, "keep the work directory (logs, data)")
	reps := flag.Int("reps", 0, "s3peer, tls: runs of each load on each side (default 5, tls 3; -quick: 2)")
	minio := flag.String("minio", "", "s3peer: the MinIO binary (default: bin/minio, installed when missing)")
	layouts := flag.String("minio-layouts", "single,distributed", "s3peer: MinIO's layouts to compare with, comma-separated: single (one server, 6 folders), distributed (6 servers, one folder each)")
	flag.Func("storage-flag", "a flag for every storage node and dev, e.g. --buffered-writes, for A/B runs (repeatable)", func(v string) error {
		storageFlags = append(storageFlags, v)
		return nil
	})
	flag.Parse()
	minioLayouts, err := parseMinioLayouts(*layouts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport: -minio-layouts:", err)
		os.Exit(2)
	}
	o := options{quick: *quick, sections: strings.Split(*only, ","), dir: *dir, keep: *keep, reps: *reps, minio: *minio, minioLayouts: minioLayouts,
		benchtime: "10x", sizes: []int64{64 << 10, 1 << 20, 8 << 20, 64 << 20}, concurrency: []int{8, 32},
		duration: 10 * time.Second, memClip: 1 << 30, commits: "3000x", clips: 1_000_000}
	if o.quick {
		o.benchtime, o.sizes, o.concurrency, o.duration, o.memClip, o.commits, o.clips =
			"2x", []int64{64 << 10, 8 << 20}, []int{8}, 3*time.Second, 256<<20, "300x", 100_000
	}
	for _, s := range o.sections {
		if !slices.Contains(allSections, s) && !slices.Contains(extraSections, s) {
			fmt.Fprintf(os.Stderr, "benchreport: unknown section %q (want some of %s)\n", s, strings.Join(append(allSections, extraSections...), ","))
			os.Exit(2)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rows, err := run(ctx, o)
	printTable(os.Stdout, rows)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) ([]row, error) {
	if o.dir == "" {
		d, err := os.MkdirTemp("", "clipstore-bench-")
		if err != nil {
			return nil, err
		}
		o.dir = d
		if !o.keep {
			defer os.RemoveAll(d)
		}
	}
	var rows []row
	for _, section := range o.sections {
		start := time.Now()
		fmt.Fprintf(os.Stderr, "== %s\n", section)
		var more []row
		var err error
		switch section {
		case "codec":
			more, err = goPairs("codec", o.benchtime, "./erasure/")
		case "storage":
			more, err = goPairs("storage node", o.benchtime, "./server/")
		case "e2e":
			more, err = endToEnd(ctx, o)
		case "meta":
			more, err = metaRows(o)
		case "rebuild":
			more, err = rebuildRows()
		case "s3peer":
			more, err = s3Peer(ctx, o)
		case "tls":
			more, err = tlsSection(ctx, o)
		}
		rows = append(rows, more...)
		if err != nil {
			return rows, fmt.Errorf("%s: %w", section, err)
		}
		fmt.Fprintf(os.Stderr, "== %s done in %v\n", section, time.Since(start).Round(time.Second))
	}
	return rows, nil
}

func goPairs(area, benchtime, pkg string) ([]row, error) {
	res, err := goBench(".", benchtime, 1, []string{pkg})
	if err != nil {
		return nil, err
	}
	return pairRows(area, res)
}

// row is one line of the table.
type row struct {
	area, name          string
	measured, reference string
	ratio               float64 // measured / reference; 0: no ratio
	target              string  // what the ratio (or the figure) must reach; "": none
	ok                  *bool   // whether it does; nil: no target
	note                string
}

func atLeast(ratio, min float64) (string, *bool) {
	ok := ratio >= min
	return fmt.Sprintf("≥ %.2f", min), &ok
}

func printTable(w io.Writer, rows []row) {
	fmt.Fprintln(w, "| area | benchmark | measured | reference (same run) | ratio | target | notes |")
	fmt.Fprintln(w, "|---|---|---|---|---:|---|---|")
	met, missed := 0, 0
	for _, r := range rows {
		ratio := "—"
		if r.ratio != 0 {
			ratio = fmt.Sprintf("%.2f", r.ratio)
		}
		target := r.target
		if r.ok != nil {
			if *r.ok {
				target += " ✅"
				met++
			} else {
				target += " ❌"
				missed++
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", r.area, r.name, r.measured, r.reference, ratio, target, r.note)
	}
	fmt.Fprintf(w, "\nTargets met: %d of %d.\n", met, met+missed)
}

// build compiles the clipstore binary (without the race detector) into dir.
func build(dir string) (string, error) {
	bin := filepath.Join(dir, "clipstore")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/clipstore")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/clipstore: %w", err)
	}
	return bin, nil
}
