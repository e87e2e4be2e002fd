package loadgen

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// Operation names, as reported.
const (
	OpPut    = "put"
	OpGet    = "get"
	OpStat   = "stat"
	OpDelete = "delete"
	OpList   = "list"
)

// opOrder is the order results are reported in.
var opOrder = []string{OpPut, OpGet, OpStat, OpDelete, OpList}

// Report is the outcome of a run. Its JSON form is what `clipstore bench
// --json` prints and the benchmark harness parses: keep the field names.
type Report struct {
	Workload        Workload `json:"workload"`
	Concurrency     int      `json:"concurrency"`
	DurationSeconds float64  `json:"duration_seconds"` // wall time of the measurement
	Results         []Result `json:"results"`          // per operation and size
	ErrorSamples    []string `json:"error_samples"`    // the first few failures, in order
	Bucket          string   `json:"-"`
	Prefix          string   `json:"-"`
}

// Result sums up the operations of one kind on clips of one size. Count
// includes the failed operations; bytes, rates and latencies are those of
// the successful ones only.
type Result struct {
	Op              string  `json:"op"`
	Size            int64   `json:"size"` // 0 for list
	Count           int64   `json:"count"`
	Errors          int64   `json:"errors"`
	Bytes           int64   `json:"bytes"`
	BytesVerified   int64   `json:"bytes_verified"`
	DurationSeconds float64 `json:"duration_seconds"`
	MiBPerSec       float64 `json:"mib_per_sec"`
	OpsPerSec       float64 `json:"ops_per_sec"`
	Latency         Latency `json:"latency_ms"`
	Entries         int64   `json:"entries,omitempty"`         // list: entries listed
	EntriesPerSec   float64 `json:"entries_per_sec,omitempty"` // list
}

// Latency holds latency percentiles in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Errors returns the number of failed operations.
func (r *Report) Errors() int64 {
	var n int64
	for _, res := range r.Results {
		n += res.Errors
	}
	return n
}

// Err returns an error if any operation failed: how many, and the first.
func (r *Report) Err() error {
	n := r.Errors()
	if n == 0 {
		return nil
	}
	first := "unknown"
	if len(r.ErrorSamples) > 0 {
		first = r.ErrorSamples[0]
	}
	return fmt.Errorf("bench: %d operations failed (first: %s)", n, first)
}

// seriesKey identifies a result.
type seriesKey struct {
	op   string
	size int64
}

// series accumulates the operations of one key, in one worker.
type series struct {
	count, errors, bytes, verified, entries int64
	latencies                               []time.Duration
}

func (s *series) merge(o *series) {
	s.count += o.count
	s.errors += o.errors
	s.bytes += o.bytes
	s.verified += o.verified
	s.entries += o.entries
	s.latencies = append(s.latencies, o.latencies...)
}

// result computes the summary of s over a measurement of wall time d.
func (s *series) result(k seriesKey, d time.Duration) Result {
	secs := d.Seconds()
	r := Result{Op: k.op, Size: k.size, Count: s.count, Errors: s.errors, Bytes: s.bytes, BytesVerified: s.verified,
		DurationSeconds: secs, Entries: s.entries}
	if secs > 0 {
		r.MiBPerSec = float64(s.bytes) / (1 << 20) / secs
		r.OpsPerSec = float64(s.count-s.errors) / secs
		r.EntriesPerSec = float64(s.entries) / secs
	}
	slices.Sort(s.latencies)
	r.Latency = Latency{P50: ms(Percentile(s.latencies, 50)), P90: ms(Percentile(s.latencies, 90)),
		P99: ms(Percentile(s.latencies, 99)), Max: ms(Percentile(s.latencies, 100))}
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value with at least p% of the values
// at or below it. It returns 0 for no values.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// report builds the Report from the workers' series.
func report(cfg Config, wall time.Duration, workers []map[seriesKey]*series, samples []string) *Report {
	all := map[seriesKey]*series{}
	for _, w := range workers {
		for k, s := range w {
			if all[k] == nil {
				all[k] = &series{}
			}
			all[k].merge(s)
		}
	}
	keys := make([]seriesKey, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b seriesKey) int {
		return cmp.Or(cmp.Compare(slices.Index(opOrder, a.op), slices.Index(opOrder, b.op)), cmp.Compare(a.size, b.size))
	})
	rep := &Report{Workload: cfg.Workload, Concurrency: cfg.Concurrency, DurationSeconds: wall.Seconds(),
		Results: []Result{}, ErrorSamples: append([]string{}, samples...), Bucket: cfg.Bucket, Prefix: cfg.Prefix}
	for _, k := range keys {
		rep.Results = append(rep.Results, all[k].result(k, wall))
	}
	return rep
}

// maxErrorSamples is how many error messages a run keeps.
const maxErrorSamples = 5

// errorSamples keeps the first few error messages of a run.
type errorSamples struct {
	mu struct {
		sync.Mutex
		list []string
	}
}

func (e *errorSamples) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.mu.list) < maxErrorSamples {
		// One line each: the CLI prints the first one on its error line.
		e.mu.list = append(e.mu.list, strings.Join(strings.Fields(err.Error()), " "))
	}
}

func (e *errorSamples) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.mu.list)
}
