package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
)

// pairs maps a measured sub-benchmark name to its reference's.
var pairs = map[string]string{"codec": "reference", "grpc": "file"}

// result is one benchmark's figures, averaged over -count runs.
type result struct {
	nsPerOp, mbPerSec, bytesPerOp, allocsPerOp float64
	metrics                                    map[string]float64 // b.ReportMetric units
}

// goBench runs `go test -bench` on pkgs, echoing its output to stderr,
// and returns the parsed results.
func goBench(bench, benchtime string, count int, pkgs []string, extra ...string) (map[string]result, error) {
	args := append([]string{"test", "-run=^$", "-bench=" + bench, "-benchmem",
		"-benchtime=" + benchtime, "-count=" + strconv.Itoa(count)}, pkgs...)
	args = append(args, extra...)
	cmd := exec.Command("go", args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(os.Stderr, "$ go", strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	results := parse(io.TeeReader(out, os.Stderr))
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return results, nil
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
		s, ok := sums[name]
		if !ok {
			s.metrics = map[string]float64{}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				s.nsPerOp += v
			case "MB/s":
				s.mbPerSec += v
			case "B/op":
				s.bytesPerOp += v
			case "allocs/op":
				s.allocsPerOp += v
			default:
				s.metrics[f[i+1]] += v
			}
		}
		sums[name] = s
		counts[name]++
	}
	for name, s := range sums {
		n := counts[name]
		for k := range s.metrics {
			s.metrics[k] /= n
		}
		sums[name] = result{s.nsPerOp / n, s.mbPerSec / n, s.bytesPerOp / n, s.allocsPerOp / n, s.metrics}
	}
	return sums
}

// pairRows turns each measured/reference pair of sub-benchmarks into a
// row; it fails if there is none.
func pairRows(area string, results map[string]result) ([]row, error) {
	var names []string
	for name := range results {
		names = append(names, name)
	}
	sort.Strings(names)
	var rows []row
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
		rows = append(rows, row{
			area: area, name: strings.TrimPrefix(name[:i], "Benchmark"),
			measured: fmt.Sprintf("%.0f MB/s", m.mbPerSec), reference: fmt.Sprintf("%.0f MB/s (%s)", ref.mbPerSec, refLeaf),
			ratio: m.mbPerSec / ref.mbPerSec, note: fmt.Sprintf("%.0f B/op, %.0f allocs/op", m.bytesPerOp, m.allocsPerOp),
		})
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("no benchmark pairs in the output")
	}
	return rows, nil
}
