package main

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/loadgen"
)

func TestPeerScheduleAlternates(t *testing.T) {
	steps := peerSchedule(3, minioTargets())
	count := map[peerKey]int{}
	for i, s := range steps {
		count[peerKey{s.w, s.target}]++
		prev := func(target string) bool {
			return i > 0 && steps[i-1].target == target && steps[i-1].w == s.w && steps[i-1].rep == s.rep
		}
		// MinIO single follows the gateway's run of the same load, and
		// MinIO distributed follows MinIO single's.
		if s.target == tgtMinio && !prev(tgtGateway) {
			t.Fatalf("step %d (%+v) does not follow the gateway's run of its load", i, s)
		}
		if s.target == tgtMinioDist && !prev(tgtMinio) {
			t.Fatalf("step %d (%+v) does not follow MinIO single's run of its load", i, s)
		}
		if s.target == tgtGateway && (i+1 >= len(steps) || steps[i+1].target != tgtMinio) {
			t.Fatalf("step %d (%+v): no MinIO run after it", i, s)
		}
	}
	for k, n := range count {
		if n != 3 {
			t.Errorf("%v ran %d times, want 3", k, n)
		}
	}
	if want := 5*len(peerWorkloads) + 1; len(count) != want { // gateway, 2 MinIOs, native, dev; fast-ETag put 8 MiB
		t.Errorf("%d loads, want %d: %v", len(count), want, count)
	}
	for _, w := range peerWorkloads {
		if count[peerKey{w, tgtMinioDist}] != 3 || count[peerKey{w, tgtNative}] != 3 || count[peerKey{w, tgtDev}] != 3 {
			t.Errorf("%v through MinIO distributed, the native client and dev: %d, %d and %d runs, want 3",
				w, count[peerKey{w, tgtMinioDist}], count[peerKey{w, tgtNative}], count[peerKey{w, tgtDev}])
		}
	}
	if count[peerKey{peerPut8M, tgtFast}] != 3 || count[peerKey{peerPut8M, tgtNative}] != 3 {
		t.Errorf("fast-ETag and native puts: %v", count)
	}
}

func TestPeerScheduleOneLayout(t *testing.T) {
	steps := peerSchedule(2, []string{tgtMinioDist})
	for i, s := range steps {
		if s.target == tgtMinio {
			t.Fatalf("step %d (%+v): MinIO single, not asked for", i, s)
		}
		if s.target == tgtGateway && (i+1 >= len(steps) || steps[i+1].target != tgtMinioDist || steps[i+1].w != s.w) {
			t.Fatalf("step %d (%+v): no MinIO distributed run of its load after it", i, s)
		}
	}
	if want := 2 * (4*len(peerWorkloads) + 1); len(steps) != want {
		t.Errorf("%d steps, want %d", len(steps), want)
	}
}

func TestParseMinioLayouts(t *testing.T) {
	for in, want := range map[string][]string{
		"single,distributed": {tgtMinio, tgtMinioDist},
		"distributed,single": {tgtMinio, tgtMinioDist},
		"distributed":        {tgtMinioDist},
		"single":             {tgtMinio},
	} {
		if got, err := parseMinioLayouts(in); err != nil || !slices.Equal(got, want) {
			t.Errorf("parseMinioLayouts(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseMinioLayouts("single,cluster"); err == nil {
		t.Error("an unknown layout: want an error")
	}
}

func TestSpread(t *testing.T) {
	s := spreadOf([]float64{3, 1, 2})
	if s != (spread{mean: 2, min: 1, max: 3}) {
		t.Fatalf("spreadOf = %+v", s)
	}
	if got := s.format("MiB/s"); got != "2.0 MiB/s (1.0–3.0)" {
		t.Fatalf("format = %q", got)
	}
	if got := spreadOf([]float64{5}).format("ops/s"); got != "5.0 ops/s" {
		t.Fatalf("format of one = %q", got)
	}
}

// fakeRun is a run of w through target moving mib MiB/s for 1 s, with
// cpu seconds per group.
func fakeRun(rep int, w peerWorkload, target string, mib float64, prepared int64, cpu map[string]float64) peerRun {
	r := peerRun{peerStep: peerStep{rep: rep, w: w, target: target}, prepared: prepared, cpu: map[string]time.Duration{}}
	r.res = loadgen.Result{Op: w.op, Size: w.size, MiBPerSec: mib, OpsPerSec: mib * (1 << 20) / float64(w.size),
		Bytes: int64(mib * (1 << 20)), BytesVerified: int64(mib * (1 << 20)), Latency: loadgen.Latency{P50: 10, P99: 20}}
	for g, s := range cpu {
		r.cpu[g] = time.Duration(s * float64(time.Second))
	}
	return r
}

func TestCPUPerGiBTakesOffThePreparation(t *testing.T) {
	// Puts: 2 GiB for 4 s of gateway CPU: 2 s/GiB. The get moved 1 GiB
	// after putting 0.5 GiB (1 s at the put rate) and used 3 s: 2 s/GiB
	// for the reads alone.
	runs := []peerRun{
		fakeRun(0, peerPut8M, tgtGateway, 1024, 0, map[string]float64{"gateway": 2}),
		fakeRun(1, peerPut8M, tgtGateway, 1024, 0, map[string]float64{"gateway": 2}),
		fakeRun(0, peerGet8M, tgtGateway, 1024, 512<<20, map[string]float64{"gateway": 3}),
	}
	st := summarize(runs)
	put, get := st[peerKey{peerPut8M, tgtGateway}], st[peerKey{peerGet8M, tgtGateway}]
	if got := cpuPerGiB(put, nil)["gateway"]; got != 2 {
		t.Errorf("put: %v s/GiB, want 2", got)
	}
	if got := cpuPerGiB(get, put)["gateway"]; got != 2 {
		t.Errorf("get: %v s/GiB, want 2", got)
	}
	if got := cpuPerGiB(get, nil)["gateway"]; got != 3 {
		t.Errorf("get without the put rate: %v s/GiB, want 3", got)
	}
}

func peerTable(p peerResult) string {
	var out bytes.Buffer
	printTable(&out, peerRows(p))
	return out.String()
}

func TestPeerRowsRatiosAndTargets(t *testing.T) {
	cl := map[string]float64{"meta": 0.1, "storage": 1, "gateway": 0.5, "load": 0.2}
	mn := map[string]float64{"minio": 1.5, "load": 0.2}
	md := map[string]float64{"minio": 2.5, "load": 0.2} // the 6 processes, summed
	var runs []peerRun
	for rep := range 2 {
		runs = append(runs,
			fakeRun(rep, peerPut8M, tgtGateway, 270+float64(rep)*20, 0, cl), // mean 280
			fakeRun(rep, peerPut8M, tgtMinio, 300, 0, mn),
			fakeRun(rep, peerPut8M, tgtMinioDist, 200, 0, md),
			fakeRun(rep, peerPut8M, tgtFast, 360, 0, cl),
			fakeRun(rep, peerPut8M, tgtNative, 320, 0, map[string]float64{"meta": 0.1, "storage": 1, "load": 0.5}),
			fakeRun(rep, peerGet8M, tgtGateway, 500, 256<<20, cl),
			fakeRun(rep, peerGet8M, tgtMinio, 550, 256<<20, mn),
			fakeRun(rep, peerGet8M, tgtMinioDist, 400, 256<<20, md),
			fakeRun(rep, peerPut64K, tgtGateway, 20, 0, cl),
			fakeRun(rep, peerPut64K, tgtMinio, 10, 0, mn),
			fakeRun(rep, peerPut64K, tgtMinioDist, 8, 0, md),
			fakeRun(rep, peerGet64K, tgtGateway, 40, 2<<20, cl),
			fakeRun(rep, peerGet64K, tgtMinio, 40, 2<<20, mn),
			fakeRun(rep, peerGet64K, tgtMinioDist, 50, 2<<20, md),
		)
	}
	text := peerTable(peerResult{stats: summarize(runs), reps: 2})
	for _, want := range []string{
		"| gateway put 8.0 MiB × 8 (md5 ETags) | 280.0 MiB/s (270.0–290.0), 35.0 ops/s (33.8–36.2) | 300.0 MiB/s (MinIO single) | 0.93 | ≥ 0.90 ✅ |",
		"| gateway get 8.0 MiB × 8 | 500.0 MiB/s, 62.5 ops/s | 550.0 MiB/s (MinIO single) | 0.91 | ≥ 1.00 ❌ |",
		"| gateway put 8.0 MiB × 8 (fast ETags) | 360.0 MiB/s, 45.0 ops/s | 300.0 MiB/s (MinIO single) | 1.20 | ≥ 1.10 ✅ |",
		"| gateway put ÷ native put, put 8.0 MiB × 8 | 280.0 MiB/s (gateway) | 320.0 MiB/s (native client) | 0.88 | ≥ 0.80 ✅ |",
		"| gateway put 64.0 KiB × 8 | 20.0 MiB/s, 320.0 ops/s | 10.0 MiB/s (MinIO single) | 2.00 |  |",
		"| MinIO single put 8.0 MiB × 8 | 300.0 MiB/s, 37.5 ops/s | — | — |  |",
		"| MinIO distributed put 8.0 MiB × 8 | 200.0 MiB/s, 25.0 ops/s | — | — |  |",
		"| MinIO distributed get 64.0 KiB × 8 | 50.0 MiB/s, 800.0 ops/s | — | — |  |",
		// The ratios to MinIO distributed, without a target.
		"| gateway ÷ MinIO distributed, put 8.0 MiB × 8 | 280.0 MiB/s (gateway) | 200.0 MiB/s (MinIO distributed) | 1.40 |  | means over the runs; no target (the targets are against MinIO single); fast ETags: 360.0 MiB/s, 1.80 |",
		"| gateway ÷ MinIO distributed, get 8.0 MiB × 8 | 500.0 MiB/s (gateway) | 400.0 MiB/s (MinIO distributed) | 1.25 |  |",
		"| gateway ÷ MinIO distributed, get 64.0 KiB × 8 | 40.0 MiB/s (gateway) | 50.0 MiB/s (MinIO distributed) | 0.80 |  |",
		"CPU s/GiB: meta 0.37, storage 3.66, gateway 1.83, load 0.73; total 6.58 (1.13× MinIO single's, 0.48× MinIO distributed's)",
		"CPU s/GiB: minio 5.12, load 0.68; total 5.80",
		"CPU s/GiB: minio 12.80, load 1.02; total 13.82",
		"Targets met: 3 of 4.",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("table lacks %q:\n%s", want, text)
		}
	}
}

func TestPeerRowsWithoutMinio(t *testing.T) {
	runs := []peerRun{
		fakeRun(0, peerPut8M, tgtGateway, 280, 0, map[string]float64{"gateway": 1}),
		fakeRun(0, peerGet8M, tgtGateway, 500, 256<<20, map[string]float64{"gateway": 1}),
	}
	err := errors.New("go install: exit status 1")
	text := peerTable(peerResult{stats: summarize(runs), reps: 1,
		minioErr: map[string]error{tgtMinio: err, tgtMinioDist: err}})
	for _, want := range []string{
		"| gateway put 8.0 MiB × 8 (md5 ETags) | 280.0 MiB/s, 35.0 ops/s | MinIO single failed: go install: exit status 1 | — | ≥ 0.90 (no ratio) |",
		"| MinIO single get 8.0 MiB × 8 | MinIO single failed: go install: exit status 1 |",
		"| MinIO distributed get 8.0 MiB × 8 | MinIO distributed failed: go install: exit status 1 |",
		"| gateway ÷ MinIO distributed, get 8.0 MiB × 8 | 500.0 MiB/s (gateway) | MinIO distributed failed: go install: exit status 1 | — |  |",
		"Targets met: 0 of 0.",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("table lacks %q:\n%s", want, text)
		}
	}
}

func TestPeerRowsDistributedFailedOrNotRun(t *testing.T) {
	runs := []peerRun{
		fakeRun(0, peerPut8M, tgtGateway, 280, 0, map[string]float64{"gateway": 1}),
		fakeRun(0, peerPut8M, tgtMinio, 300, 0, map[string]float64{"minio": 1}),
		fakeRun(0, peerGet8M, tgtGateway, 500, 256<<20, map[string]float64{"gateway": 1}),
		fakeRun(0, peerGet8M, tgtMinio, 400, 256<<20, map[string]float64{"minio": 1}),
	}
	// MinIO distributed failed: the single server's rows and targets stand.
	text := peerTable(peerResult{stats: summarize(runs), reps: 1,
		minioErr: map[string]error{tgtMinioDist: errors.New("/minio/health/cluster: timed out")}})
	for _, want := range []string{
		"| gateway put 8.0 MiB × 8 (md5 ETags) | 280.0 MiB/s, 35.0 ops/s | 300.0 MiB/s (MinIO single) | 0.93 | ≥ 0.90 ✅ |",
		"| gateway get 8.0 MiB × 8 | 500.0 MiB/s, 62.5 ops/s | 400.0 MiB/s (MinIO single) | 1.25 | ≥ 1.00 ✅ |",
		"| MinIO distributed put 8.0 MiB × 8 | MinIO distributed failed: /minio/health/cluster: timed out |",
		"| gateway ÷ MinIO distributed, put 8.0 MiB × 8 | 280.0 MiB/s (gateway) | MinIO distributed failed: /minio/health/cluster: timed out | — |  |",
		"Targets met: 2 of 2.",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("table lacks %q:\n%s", want, text)
		}
	}
	// Only the single server asked for: no rows for the distributed one.
	text = peerTable(peerResult{stats: summarize(runs), reps: 1, layouts: []string{tgtMinio}})
	if strings.Contains(text, "distributed") {
		t.Errorf("rows of MinIO distributed, not run:\n%s", text)
	}
	if !strings.Contains(text, "Targets met: 2 of 2.") {
		t.Errorf("targets:\n%s", text)
	}
	// Only the distributed one: the targets have no ratio.
	text = peerTable(peerResult{stats: summarize(runs), reps: 1, layouts: []string{tgtMinioDist}})
	for _, want := range []string{
		"| gateway put 8.0 MiB × 8 (md5 ETags) | 280.0 MiB/s, 35.0 ops/s | MinIO single: not run | — | ≥ 0.90 (no ratio) |",
		"| MinIO distributed put 8.0 MiB × 8 | not measured |",
		"Targets met: 0 of 0.",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("table lacks %q:\n%s", want, text)
		}
	}
}

func TestPidCPU(t *testing.T) {
	// This process has run: some CPU time, read without error.
	d, err := pidCPU(1)
	if err != nil || d < 0 {
		t.Fatalf("pidCPU(1) = %v, %v", d, err)
	}
	if _, err := pidCPU(-1); err == nil {
		t.Fatal("pidCPU(-1): want an error")
	}
}

func TestParseMachineCPU(t *testing.T) {
	d, err := parseMachineCPU("cpu  100 5 50 1000 30 2 3 1 0 0")
	if err != nil || d != 1610*time.Millisecond {
		t.Fatalf("parseMachineCPU = %v, %v; want 1.61s", d, err)
	}
	if _, err := parseMachineCPU("cpu0 1 2 3"); err == nil {
		t.Fatal("a short line: want an error")
	}
	if d, err := machineCPU(); err != nil || d <= 0 {
		t.Fatalf("machineCPU = %v, %v", d, err)
	}
}
