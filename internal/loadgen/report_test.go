package loadgen

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ten := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i + 1)
	}
	for _, tc := range []struct {
		values []time.Duration
		p      float64
		want   time.Duration
	}{
		{nil, 50, 0},
		{[]time.Duration{7}, 50, 7},
		{[]time.Duration{7}, 100, 7},
		{ten, 50, 5},
		{ten, 90, 9},
		{ten, 99, 10},
		{ten, 100, 10},
		{ten, 0.1, 1},
		{hundred, 50, 50},
		{hundred, 90, 90},
		{hundred, 99, 99},
		{hundred, 100, 100},
	} {
		if got := Percentile(tc.values, tc.p); got != tc.want {
			t.Errorf("Percentile(%d values, %v) = %v, want %v", len(tc.values), tc.p, got, tc.want)
		}
	}
}

// TestReportJSON pins the field names the benchmark harness parses.
func TestReportJSON(t *testing.T) {
	w1 := map[seriesKey]*series{{OpPut, 8 << 20}: {count: 2, bytes: 16 << 20, latencies: []time.Duration{300 * time.Millisecond, 100 * time.Millisecond}}}
	w2 := map[seriesKey]*series{
		{OpPut, 8 << 20}: {count: 3, errors: 1, bytes: 16 << 20, latencies: []time.Duration{200 * time.Millisecond, 400 * time.Millisecond}},
		{OpList, 0}:      {count: 1, entries: 500, latencies: []time.Duration{time.Millisecond}},
		{OpGet, 1 << 10}: {count: 1, bytes: 1 << 10, verified: 1 << 10, latencies: []time.Duration{time.Millisecond}},
	}
	rep := report(Config{Workload: WorkloadPut, Concurrency: 8}, 2*time.Second, []map[seriesKey]*series{w1, w2}, []string{"put k: boom"})
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Workload        string   `json:"workload"`
		Concurrency     int      `json:"concurrency"`
		DurationSeconds float64  `json:"duration_seconds"`
		ErrorSamples    []string `json:"error_samples"`
		Results         []map[string]any
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Workload != "put" || got.Concurrency != 8 || got.DurationSeconds != 2 || len(got.ErrorSamples) != 1 || len(got.Results) != 3 {
		t.Fatalf("report: %s", b)
	}
	put := got.Results[0]
	for field, want := range map[string]any{"op": "put", "size": 8388608.0, "count": 5.0, "errors": 1.0, "bytes": 33554432.0,
		"bytes_verified": 0.0, "duration_seconds": 2.0, "mib_per_sec": 16.0, "ops_per_sec": 2.0,
		"latency_ms": map[string]any{"p50": 200.0, "p90": 400.0, "p99": 400.0, "max": 400.0}} {
		if g, _ := json.Marshal(put[field]); string(g) != string(must(json.Marshal(want))) {
			t.Errorf("put result %s = %s, want %v", field, g, want)
		}
	}
	if _, ok := put["entries"]; ok {
		t.Errorf("put result has entries: %s", b)
	}
	if got.Results[1]["op"] != "get" || got.Results[2]["op"] != "list" || got.Results[2]["entries"] != 500.0 || got.Results[2]["entries_per_sec"] != 250.0 {
		t.Errorf("results out of order or list fields missing: %s", b)
	}
	if err := rep.Err(); err == nil || err.Error() != "bench: 1 operations failed (first: put k: boom)" {
		t.Errorf("Err() = %v", err)
	}

	empty, _ := json.Marshal(report(Config{Workload: WorkloadGet}, time.Second, nil, nil))
	if !strings.Contains(string(empty), `"results":[]`) || !strings.Contains(string(empty), `"error_samples":[]`) {
		t.Errorf("an empty report has null lists: %s", empty)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestErrorSamplesAreOneLineAndBounded(t *testing.T) {
	var s errorSamples
	for range maxErrorSamples + 3 {
		s.add(errors.Join(errors.New("first"), errors.New("second\tpart")))
	}
	got := s.list()
	if len(got) != maxErrorSamples || got[0] != "first second part" {
		t.Fatalf("samples %q", got)
	}
}
