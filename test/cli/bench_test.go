package cli

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"
)

// benchReport is the part of `clipstore bench --json` the benchmark
// harness reads.
type benchReport struct {
	Workload        string  `json:"workload"`
	Concurrency     int     `json:"concurrency"`
	DurationSeconds float64 `json:"duration_seconds"`
	Results         []struct {
		Op            string  `json:"op"`
		Size          int64   `json:"size"`
		Count         int64   `json:"count"`
		Errors        int64   `json:"errors"`
		Bytes         int64   `json:"bytes"`
		BytesVerified int64   `json:"bytes_verified"`
		MiBPerSec     float64 `json:"mib_per_sec"`
		OpsPerSec     float64 `json:"ops_per_sec"`
		Latency       struct {
			P50, P90, P99, Max float64
		} `json:"latency_ms"`
	} `json:"results"`
	ErrorSamples []string `json:"error_samples"`
}

// TestBenchCommand runs `clipstore bench put` and `bench get` against the
// process cluster: exactly one JSON document on stdout, the counts asked
// for, no errors, every byte read verified, and no clip left behind.
func TestBenchCommand(t *testing.T) {
	c := startCluster(t)
	for _, tc := range []struct {
		workload string
		verified bool
	}{{"put", false}, {"get", true}} {
		out, errOut, code := c.CLI("bench", tc.workload, "--size", "64KiB", "--count", "20", "--concurrency", "4",
			"--objects", "4", "--json", "--timeout", "2m")
		if code != 0 || errOut != "" {
			t.Fatalf("bench %s: exit %d\nstdout: %s\nstderr: %s", tc.workload, code, out, errOut)
		}
		rep := decodeOne(t, out)
		if rep.Workload != tc.workload || rep.Concurrency != 4 || rep.DurationSeconds <= 0 || len(rep.Results) != 1 || len(rep.ErrorSamples) != 0 {
			t.Fatalf("bench %s: %s", tc.workload, out)
		}
		r := rep.Results[0]
		wantVerified := int64(0)
		if tc.verified {
			wantVerified = 20 << 16
		}
		if r.Op != tc.workload || r.Size != 64<<10 || r.Count != 20 || r.Errors != 0 || r.Bytes != 20<<16 ||
			r.BytesVerified != wantVerified || r.MiBPerSec <= 0 || r.OpsPerSec <= 0 || r.Latency.P50 <= 0 || r.Latency.Max < r.Latency.P50 {
			t.Fatalf("bench %s result: %s", tc.workload, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for e, err := range c.Client().List(ctx, "clipstore-bench", "") {
		if err != nil {
			t.Fatal(err)
		}
		t.Fatalf("bench left %s behind", e.Key)
	}

	out, errOut, code := c.CLI("bench", "put", "--size", "8XB", "--count", "1")
	if lines := strings.Split(strings.TrimSpace(errOut), "\n"); code == 0 || out != "" || len(lines) != 1 || !strings.Contains(errOut, "--size") {
		t.Fatalf("bench put --size 8XB: exit %d, stdout %q, stderr %q; want one line about --size", code, out, errOut)
	}
}

// decodeOne decodes out as exactly one JSON document.
func decodeOne(t *testing.T, out string) benchReport {
	t.Helper()
	var rep benchReport
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("stdout is not a JSON report: %v\n%s", err, out)
	}
	if err := dec.Decode(new(json.RawMessage)); err != io.EOF {
		t.Fatalf("stdout has more than one JSON document:\n%s", out)
	}
	return rep
}
