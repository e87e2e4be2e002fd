// Command benchreport runs the Go benchmarks that come in pairs (the
// measured code beside its raw reference on the same data, in the same run)
// and prints each pair's throughput and ratio. `make bench` runs it.
//
// A pair is two sub-benchmarks with the same parent: .../codec beside
// .../reference (package erasure) and .../grpc beside .../file (package
// server).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// pairs maps a measured sub-benchmark name to its reference's.
var pairs = map[string]string{"codec": "reference", "grpc": "file"}

type result struct {
	nsPerOp, mbPerSec, bytesPerOp, allocsPerOp float64
}

func main() {
	benchtime := flag.String("benchtime", "10x", "go test -benchtime")
	bench := flag.String("bench", ".", "go test -bench pattern")
	count := flag.Int("count", 1, "go test -count; results of a name are averaged")
	flag.Parse()
	pkgs := flag.Args()
	if len(pkgs) == 0 {
		pkgs = []string{"./erasure/", "./server/"}
	}
	if err := run(*bench, *benchtime, *count, pkgs); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(bench, benchtime string, count int, pkgs []string) error {
	args := append([]string{"test", "-run=^$", "-bench=" + bench, "-benchmem",
		"-benchtime=" + benchtime, "-count=" + strconv.Itoa(count)}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	fmt.Println("$ go", strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		return err
	}
	results := parse(io.TeeReader(out, os.Stdout))
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("go test: %w", err)
	}
	return report(os.Stdout, results)
}

// parse reads `go test -bench` output and averages the results per name
// (the GOMAXPROCS suffix removed).
func parse(r io.Reader) map[string]result {
	sums := map[string]result{}
	counts := map[string]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		var res result
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				res.nsPerOp = v
			case "MB/s":
				res.mbPerSec = v
			case "B/op":
				res.bytesPerOp = v
			case "allocs/op":
				res.allocsPerOp = v
			}
		}
		s := sums[name]
		sums[name] = result{s.nsPerOp + res.nsPerOp, s.mbPerSec + res.mbPerSec,
			s.bytesPerOp + res.bytesPerOp, s.allocsPerOp + res.allocsPerOp}
		counts[name]++
	}
	for name, s := range sums {
		n := counts[name]
		sums[name] = result{s.nsPerOp / n, s.mbPerSec / n, s.bytesPerOp / n, s.allocsPerOp / n}
	}
	return sums
}

// report prints one line per pair: both throughputs, the speed ratio and
// the time overhead of the measured code over its reference.
func report(w io.Writer, results map[string]result) error {
	var names []string
	for name := range results {
		names = append(names, name)
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "\nPairs (measured beside its reference, same data, same run):")
	fmt.Fprintln(tw, "benchmark\tmeasured MB/s\treference MB/s\tratio\toverhead\tB/op\tallocs/op\t")
	found := 0
	for _, name := range names {
		i := strings.LastIndexByte(name, '/')
		if i < 0 {
			continue
		}
		refLeaf, ok := pairs[name[i+1:]]
		if !ok {
			continue
		}
		ref, ok := results[name[:i+1]+refLeaf]
		if !ok {
			continue
		}
		m := results[name]
		found++
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.2f\t%+.1f%%\t%.0f\t%.0f\t\n", name, m.mbPerSec, ref.mbPerSec,
			m.mbPerSec/ref.mbPerSec, 100*(m.nsPerOp/ref.nsPerOp-1), m.bytesPerOp, m.allocsPerOp)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if found == 0 {
		return fmt.Errorf("no benchmark pairs in the output")
	}
	fmt.Fprintln(w, "ratio = measured MB/s / reference MB/s; overhead = measured time / reference time - 1.")
	return nil
}
