package main

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/loadgen"
)

// BenchmarkAESGCMSeal is the tls section's reference (make bench-tls):
// AES-GCM sealing 16 KiB records, TLS's largest, each with a 5-byte header
// as additional data, as crypto/tls seals them, on one core.
func BenchmarkAESGCMSeal(b *testing.B) {
	for _, k := range []struct {
		name string
		size int
	}{{"aes128", 16}, {"aes256", 32}} {
		b.Run(k.name, func(b *testing.B) {
			key := make([]byte, k.size)
			rand.Read(key)
			block, err := aes.NewCipher(key)
			if err != nil {
				b.Fatal(err)
			}
			gcm, err := cipher.NewGCM(block)
			if err != nil {
				b.Fatal(err)
			}
			nonce, header, record := make([]byte, gcm.NonceSize()), make([]byte, 5), make([]byte, 16<<10)
			rand.Read(record)
			out := make([]byte, 0, len(record)+gcm.Overhead())
			b.SetBytes(int64(len(record)))
			for i := 0; b.Loop(); i++ {
				nonce[0], nonce[1] = byte(i), byte(i>>8) // a sequence number, as TLS 1.3's
				out = gcm.Seal(out[:0], nonce, record, header)
			}
		})
	}
}

func TestAESRatesFrom(t *testing.T) {
	out := `BenchmarkAESGCMSeal/aes128-2   	  300000	      4096 ns/op	4000.00 MB/s	       0 B/op	       0 allocs/op
BenchmarkAESGCMSeal/aes128-2   	  300000	      4096 ns/op	2000.00 MB/s	       0 B/op	       0 allocs/op
BenchmarkAESGCMSeal/aes256-2   	  200000	      5000 ns/op	2500.00 MB/s	       0 B/op	       0 allocs/op
`
	rates, err := aesRatesFrom(parse(strings.NewReader(out)))
	if err != nil || rates["aes128"] != 3000e6 || rates["aes256"] != 2500e6 {
		t.Fatalf("aesRatesFrom = %v, %v; want aes128 3000e6 (the mean), aes256 2500e6", rates, err)
	}
	if _, err := aesRatesFrom(parse(strings.NewReader(strings.SplitAfterN(out, "\n", 3)[0]))); err == nil {
		t.Fatal("no aes256 result: want an error")
	}
}

func TestTLSScheduleAlternates(t *testing.T) {
	steps := tlsSchedule(3)
	if len(steps) != 3*len(tlsWorkloads)*len(tlsTargets) {
		t.Fatalf("%d steps, want %d", len(steps), 3*len(tlsWorkloads)*len(tlsTargets))
	}
	count := map[peerKey]int{}
	for i, s := range steps {
		count[peerKey{s.w, s.target}]++
		want := tlsPlain
		if i%2 == 1 {
			want = tlsOn
		}
		if s.target != want {
			t.Fatalf("step %d (%+v): target %s, want %s (plain, TLS, plain, TLS...)", i, s, s.target, want)
		}
		if i%2 == 1 && (steps[i-1].w != s.w || steps[i-1].rep != s.rep) {
			t.Fatalf("step %d (%+v) does not follow the plain-text run of its load: %+v", i, s, steps[i-1])
		}
	}
	for _, w := range tlsWorkloads {
		for _, tg := range tlsTargets {
			if count[peerKey{w, tg}] != 3 {
				t.Errorf("%v on %s: %d runs, want 3", w, tg, count[peerKey{w, tg}])
			}
		}
	}
	// In each rep the put runs before the get, whose CPU takes off its
	// preparation at the put's rate.
	if steps[0].w.op != "put" || steps[2].w.op != "get" {
		t.Errorf("rep 1 runs %v then %v, want put then get", steps[0].w, steps[2].w)
	}
}

// tlsTestRun is a run that moved 1 GiB at mib MiB/s, with the given CPU
// seconds by group.
func tlsTestRun(rep int, w peerWorkload, target string, mib float64, cpu map[string]float64) peerRun {
	r := peerRun{peerStep: peerStep{rep: rep, w: w, target: target}, cpu: map[string]time.Duration{}}
	r.res = loadgen.Result{Op: w.op, Size: w.size, Bytes: 1 << 30, MiBPerSec: mib, OpsPerSec: mib / 8}
	r.res.Latency.P50, r.res.Latency.P99 = 100, 300
	for g, s := range cpu {
		r.cpu[g] = time.Duration(s * float64(time.Second))
	}
	if w.op == "get" {
		r.prepared = 1 << 30
		r.res.BytesVerified = 1 << 30
	}
	return r
}

func TestTLSRows(t *testing.T) {
	cpu := func(meta, storage, load float64) map[string]float64 {
		return map[string]float64{"meta": meta, "storage": storage, "load": load}
	}
	res := tlsResult{reps: 2, duration: 10 * time.Second, suite: "TLS 1.3 TLS_AES_128_GCM_SHA256", cpuInfo: "test CPU",
		aes: map[string]float64{"aes128": 2 << 30, "aes256": 1 << 30}, aesRuns: "test",
		runs: []peerRun{
			// put: plain 100, 100; TLS 90, 80: 85 ÷ 100 = 0.85, met.
			tlsTestRun(0, peerPut8M, tlsPlain, 100, cpu(0.1, 2, 1)),
			tlsTestRun(0, peerPut8M, tlsOn, 90, cpu(0.1, 3, 2)),
			tlsTestRun(1, peerPut8M, tlsPlain, 100, cpu(0.1, 2, 1)),
			tlsTestRun(1, peerPut8M, tlsOn, 80, cpu(0.1, 3, 2)),
			// get: plain 200; TLS 160: 0.80, missed. Each run put 1 GiB
			// first, which costs the put row's 3.1 (plain) and 5.1 (TLS).
			tlsTestRun(0, peerGet8M, tlsPlain, 200, cpu(0.1, 3, 2.5)),
			tlsTestRun(0, peerGet8M, tlsOn, 160, cpu(0.1, 4, 4)),
		}}
	rows := tlsRows(res)
	find := func(name string) row {
		t.Helper()
		for _, r := range rows {
			if r.name == name {
				return r
			}
		}
		t.Fatalf("no row %q in %v", name, rows)
		return row{}
	}
	put := find("put 8.0 MiB × 8, TLS (÷ plain text)")
	if math.Abs(put.ratio-0.85) > 1e-9 || put.ok == nil || !*put.ok {
		t.Errorf("put TLS row: ratio %v, ok %v; want 0.85 met", put.ratio, put.ok)
	}
	for _, want := range []string{"TLS ÷ plain rep by rep: 0.90, 0.80", "CPU +2.00 s/GiB over plain text",
		"AES-GCM alone ≈ 1.50: 1.5× the clip's bytes on the wire", "storage 3.00", "p99 300.0 ms"} {
		if !strings.Contains(put.note, want) {
			t.Errorf("put TLS note lacks %q: %s", want, put.note)
		}
	}
	if want := "85.0 MiB/s (80.0–90.0)"; !strings.HasPrefix(put.measured, want) {
		t.Errorf("put TLS measured %q, want it to start with %q", put.measured, want)
	}
	if want := "100.0 MiB/s (plain text"; !strings.HasPrefix(put.reference, want) {
		t.Errorf("put TLS reference %q, want %q...", put.reference, want)
	}
	plain := find("put 8.0 MiB × 8, plain text")
	if plain.ok != nil || plain.ratio != 0 || !strings.Contains(plain.note, "meta 0.10, storage 2.00, load 1.00; total 3.10") {
		t.Errorf("put plain row: %+v", plain)
	}
	get := find("get 8.0 MiB × 8, TLS (÷ plain text)")
	if math.Abs(get.ratio-0.80) > 1e-9 || get.ok == nil || *get.ok {
		t.Errorf("get TLS row: ratio %v, ok %v; want 0.80 missed", get.ratio, get.ok)
	}
	// The gets' CPU less their preparation: plain 5.6 − 3.1 = 2.5, TLS
	// 8.1 − 5.1 = 3.0; AES-GCM alone 2 × 1.0 / 2 GiB/s = 1.00.
	for _, want := range []string{"total 2.50", "CPU +0.50 s/GiB over plain text", "AES-GCM alone ≈ 1.00", "1.0 GiB verified"} {
		if !strings.Contains(get.note, want) && !strings.Contains(find("get 8.0 MiB × 8, plain text").note, want) {
			t.Errorf("get rows lack %q: %s", want, get.note)
		}
	}
	aes128 := find("reference: AES-128-GCM seal, one core (Go benchmark)")
	if aes128.measured != "2048.0 MiB/s" || !strings.Contains(aes128.note, "0.50 CPU-s per GiB") || !strings.Contains(aes128.note, "negotiated") {
		t.Errorf("AES-128 row: %+v", aes128)
	}
	if strings.Contains(find("reference: AES-256-GCM seal, one core (Go benchmark)").note, "negotiated") {
		t.Error("AES-256 marked as the negotiated cipher")
	}
	var out bytes.Buffer
	printTable(&out, rows)
	if !strings.Contains(out.String(), "Targets met: 1 of 2.") {
		t.Errorf("table:\n%s", out.String())
	}
}

func TestTLSRowsWithoutRuns(t *testing.T) {
	rows := tlsRows(tlsResult{reps: 1, aes: map[string]float64{"aes128": 1, "aes256": 1}})
	var missed int
	for _, r := range rows {
		if r.ok != nil {
			if *r.ok {
				t.Errorf("row %q met its target without runs", r.name)
			}
			missed++
		}
	}
	if missed != len(tlsWorkloads) {
		t.Errorf("%d rows with a target, want %d", missed, len(tlsWorkloads))
	}
}

func TestSuiteKeyAndWireFactor(t *testing.T) {
	for suite, want := range map[string]string{"TLS 1.3 TLS_AES_128_GCM_SHA256": "aes128", "TLS 1.3 TLS_AES_256_GCM_SHA384": "aes256", "TLS 1.3 TLS_CHACHA20_POLY1305_SHA256": ""} {
		if got := suiteKey(suite); got != want {
			t.Errorf("suiteKey(%q) = %q, want %q", suite, got, want)
		}
	}
	if wireFactor("put") != 1.5 || wireFactor("get") != 1 {
		t.Errorf("wire factors %v, %v; want 1.5 (RS 4+2), 1", wireFactor("put"), wireFactor("get"))
	}
	if aesSecondsPerGiB("get", 0) != 0 {
		t.Error("no rate: want no estimate")
	}
}
