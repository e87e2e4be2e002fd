package main

// The tls section (make bench-tls): 8 MiB puts and gets through the native
// client (`clipstore bench`) on two clusters of the layout `make bench`
// measures (1 meta, 6 storage processes, RS 4+2), one in plain text and
// one with TLS on every link (certificates made by `clipstore admin
// certs`), both up throughout, the runs alternating between them; and,
// to explain the cost, AES-GCM's rate on this CPU from a Go benchmark
// (BenchmarkAESGCMSeal in tls_test.go). It is not part of `make bench`.

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/bytesize"
	"github.com/clipstore/clipstore/internal/loadgen"
	"github.com/clipstore/clipstore/internal/tlsconf"
)

// The two sides of the comparison, as peerStep targets.
const (
	tlsPlain = "plain"
	tlsOn    = "tls"
)

var tlsTargets = []string{tlsPlain, tlsOn}

// The loads: 8 MiB clips, 8 at once (peerConc), the put before the get
// (whose CPU per GiB takes off the puts it makes first at the put's rate).
var tlsWorkloads = []peerWorkload{peerPut8M, peerGet8M}

const (
	tlsBucket = "tlsbench"
	// targetTLSRatio is what TLS's MiB/s must reach, over plain text's.
	targetTLSRatio = 0.85
)

// The certificates of the TLS cluster: one per role, as in test/e2e.
const (
	tlsMetaCert    = "meta"
	tlsStorageCert = "storage"
	tlsClientCert  = "client"
)

// tlsSchedule is the order of the runs: rep after rep, each workload on
// plain text then on TLS, so that the sides strictly alternate (plain,
// TLS, plain, TLS...) and drift on the machine hits both alike.
func tlsSchedule(reps int) []peerStep {
	var steps []peerStep
	for rep := range reps {
		for _, w := range tlsWorkloads {
			for _, t := range tlsTargets {
				steps = append(steps, peerStep{rep: rep, w: w, target: t})
			}
		}
	}
	return steps
}

// benchTLS is a CA and certificates in dir, made by `clipstore admin
// certs`: ca.crt, and NAME.crt, NAME.key for meta, storage (both naming
// 127.0.0.1) and client. A nil *benchTLS is plain text.
type benchTLS struct{ dir string }

// makeBenchTLS makes the CA and the certificates in dir with the CLI.
func makeBenchTLS(ctx context.Context, bin, dir string) (*benchTLS, error) {
	for _, args := range [][]string{
		{"init"},
		{"node", tlsMetaCert, "--role", "meta", "--host", "127.0.0.1"},
		{"node", tlsStorageCert, "--role", "storage", "--host", "127.0.0.1"},
		{"client", tlsClientCert},
	} {
		cmd := exec.CommandContext(ctx, bin, slices.Concat([]string{"admin", "certs"}, args, []string{"--dir", dir})...)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("clipstore admin certs %s: %w", strings.Join(args, " "), err)
		}
	}
	return &benchTLS{dir: dir}, nil
}

func (t *benchTLS) files(name string) tlsconf.Files {
	return tlsconf.Files{Cert: filepath.Join(t.dir, name+".crt"), Key: filepath.Join(t.dir, name+".key"), CA: filepath.Join(t.dir, "ca.crt")}
}

// flags are the TLS flags of a process with certificate name; none if t
// is nil.
func (t *benchTLS) flags(name string) []string {
	if t == nil {
		return nil
	}
	f := t.files(name)
	return []string{"--tls-cert", f.Cert, "--tls-key", f.Key, "--tls-ca", f.CA}
}

// loader loads certificate name; nil (plain text) if t is nil.
func (t *benchTLS) loader(name string) (*tlsconf.Loader, error) {
	if t == nil {
		return nil, nil
	}
	return tlsconf.New(t.files(name), slog.New(slog.DiscardHandler))
}

// negotiatedSuite is the cipher suite a handshake with the client
// certificate gets from the server at addr (as gRPC makes it: ALPN h2).
func (t *benchTLS) negotiatedSuite(ctx context.Context, addr string) (string, error) {
	id, err := t.loader(tlsClientCert)
	if err != nil {
		return "", err
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	cfg := id.ClientConfig(host)
	cfg.NextProtos = []string{"h2"}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	cs := conn.(*tls.Conn).ConnectionState()
	return tls.VersionName(cs.Version) + " " + tls.CipherSuiteName(cs.CipherSuite), nil
}

// aesGCMBench is the Go benchmark of the reference, in tls_test.go; its
// sub-benchmarks are aesGCMKeys' names.
const aesGCMBench = "BenchmarkAESGCMSeal"

// aesGCMKeys are the key sizes measured: sub-benchmark name, label.
var aesGCMKeys = []struct{ name, label string }{{"aes128", "AES-128-GCM"}, {"aes256", "AES-256-GCM"}}

// aesGCMRates runs the benchmark and returns the sealing rate of each key
// size, in bytes/s of one core, by sub-benchmark name.
func aesGCMRates(benchtime string, count int) (map[string]float64, error) {
	res, err := goBench("^"+aesGCMBench+"$", benchtime, count, []string{"./cmd/benchreport"})
	if err != nil {
		return nil, err
	}
	return aesRatesFrom(res)
}

// aesRatesFrom picks the rates of aesGCMKeys out of the benchmark's
// results; it fails if one is missing.
func aesRatesFrom(res map[string]result) (map[string]float64, error) {
	rates := map[string]float64{}
	for _, k := range aesGCMKeys {
		r, ok := res[aesGCMBench+"/"+k.name]
		if !ok || r.mbPerSec <= 0 {
			return nil, fmt.Errorf("no MB/s of %s/%s in the output", aesGCMBench, k.name)
		}
		rates[k.name] = r.mbPerSec * 1e6
	}
	return rates, nil
}

// tlsResult is what the rows are made of.
type tlsResult struct {
	runs     []peerRun
	aes      map[string]float64 // sealing rates, bytes/s, by aesGCMKeys name
	aesRuns  string             // how the AES benchmark ran, for the notes
	suite    string             // what the TLS cluster negotiated, e.g. "TLS 1.3 TLS_AES_128_GCM_SHA256"
	cpuInfo  string             // the CPU's model and AES flags
	reps     int
	duration time.Duration
}

// wireFactor is how many bytes cross the client's links per byte of clip
// data: a put sends all k+m shards, a get reads k.
func wireFactor(op string) float64 {
	if op == "put" {
		return float64(dataShards+parityShards) / dataShards
	}
	return 1
}

// suiteKey is the aesGCMKeys name of the negotiated suite's cipher ("":
// not AES-GCM, or not known).
func suiteKey(suite string) string {
	switch {
	case strings.Contains(suite, "AES_128_GCM"):
		return "aes128"
	case strings.Contains(suite, "AES_256_GCM"):
		return "aes256"
	}
	return ""
}

// aesSecondsPerGiB is the CPU time AES-GCM alone costs per GiB of clip
// data of op at rate (bytes/s sealed): every byte on the wire is sealed
// once and opened once (opening costs about what sealing does).
func aesSecondsPerGiB(op string, rate float64) float64 {
	if rate <= 0 {
		return 0
	}
	return 2 * wireFactor(op) * (1 << 30) / rate
}

// repRatios are TLS's MiB/s over plain text's of w, rep by rep, for the
// reps where both ran.
func repRatios(runs []peerRun, w peerWorkload) []float64 {
	byRep := map[int]map[string]float64{}
	var reps []int
	for _, r := range runs {
		if r.w != w {
			continue
		}
		if byRep[r.rep] == nil {
			byRep[r.rep] = map[string]float64{}
			reps = append(reps, r.rep)
		}
		byRep[r.rep][r.target] = r.res.MiBPerSec
	}
	slices.Sort(reps)
	var out []float64
	for _, rep := range reps {
		plain, on := byRep[rep][tlsPlain], byRep[rep][tlsOn]
		if plain > 0 && on > 0 {
			out = append(out, on/plain)
		}
	}
	return out
}

func tlsRows(r tlsResult) []row {
	stats := summarize(r.runs)
	key := suiteKey(r.suite)
	setup := fmt.Sprintf("reps: %d, alternating plain text and TLS; %v runs of `clipstore bench` (native client, every byte read verified), concurrency %d; "+
		"two clusters up throughout, each 1 meta + %d storage processes, RS %d+%d; TLS on every link of the other (client–meta, client–storage, storage–meta, Raft), "+
		"mutual, certificates by `clipstore admin certs` (ECDSA P-256); negotiated: %s; CPU: %s",
		r.reps, r.duration, peerConc, storageNodes, dataShards, parityShards, r.suite, r.cpuInfo)
	rows := []row{{area: "tls", name: "setup", measured: "—", reference: "—", note: setup}}
	for _, k := range aesGCMKeys {
		rate := r.aes[k.name]
		note := fmt.Sprintf("crypto/aes + cipher.NewGCM, Seal of 16 KiB records (TLS's largest) with a 5-byte header as additional data, %s; %.2f CPU-s per GiB sealed",
			r.aesRuns, (1<<30)/rate)
		if k.name == key {
			note += "; the cipher the TLS cluster negotiated"
		}
		rows = append(rows, row{area: "tls", name: "reference: " + k.label + " seal, one core (Go benchmark)",
			measured: mibps(rate), reference: "—", note: note})
	}
	for _, w := range tlsWorkloads {
		describe := func(t string) (row, *peerStats, float64) {
			r := row{area: "tls", name: w.String() + ", plain text", reference: "—"}
			if t == tlsOn {
				r.name = w.String() + ", TLS (÷ plain text)"
			}
			st := stats[peerKey{w, t}]
			if st == nil {
				r.measured = "not measured"
				return r, nil, 0
			}
			var put *peerStats
			if w.op == "get" {
				put = stats[peerKey{peerWorkload{"put", w.size}, t}]
			}
			cpu, total := formatCPU(st.groups, cpuPerGiB(st, put))
			runs := "runs"
			if st.n == 1 {
				runs = "run"
			}
			r.measured = st.mib.format("MiB/s") + ", " + st.ops.format("ops/s")
			r.note = fmt.Sprintf("%d %s; p50 %.1f ms, p99 %.1f ms (means); %s; other processes %.1f CPU-s per run",
				st.n, runs, st.p50, st.p99, cpu, st.other/float64(st.n))
			if w.op == "get" {
				r.note += fmt.Sprintf("; %s verified", bytesize.Human(st.verified))
				if st.prepared > 0 && put != nil {
					r.note += fmt.Sprintf("; CPU less the puts of the %s read, at the put row's rate", bytesize.Human(st.prepared/int64(st.n)))
				}
			}
			return r, st, total
		}
		plain, pst, ptotal := describe(tlsPlain)
		on, ost, ototal := describe(tlsOn)
		if pst != nil && ost != nil && pst.mib.mean > 0 {
			on.reference = pst.mib.format("MiB/s") + " (plain text, the runs in between)"
			on.ratio = ost.mib.mean / pst.mib.mean
			var parts []string
			for _, x := range repRatios(r.runs, w) {
				parts = append(parts, fmt.Sprintf("%.2f", x))
			}
			on.note += "; TLS ÷ plain rep by rep: " + strings.Join(parts, ", ")
			on.note += fmt.Sprintf("; CPU %+.2f s/GiB over plain text", ototal-ptotal)
			if aes := aesSecondsPerGiB(w.op, r.aes[key]); aes > 0 {
				on.note += fmt.Sprintf(" (AES-GCM alone ≈ %.2f: %.1f× the clip's bytes on the wire, each sealed and opened once)", aes, wireFactor(w.op))
				if ptotal > 0 {
					// On CPU-bound cores, the best TLS can do is plain
					// text's CPU plus the cipher's: its ratio bounds this one.
					on.note += fmt.Sprintf("; the ratio AES-GCM alone allows when CPU-bound: %.2f", ptotal/(ptotal+aes))
				}
			}
		} else {
			on.reference = "plain text: not measured"
		}
		on.target, on.ok = atLeast(on.ratio, targetTLSRatio)
		rows = append(rows, plain, on)
	}
	return rows
}

// cpuInfo is the CPU's model name and whether it has the AES-NI and
// carry-less multiply instructions AES-GCM uses (/proc/cpuinfo).
func cpuInfo() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	model, flags := "unknown model", map[string]bool{}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "model name":
			model = strings.TrimSpace(v)
		case "flags":
			for _, f := range strings.Fields(v) {
				flags[f] = true
			}
		}
	}
	yes := func(f string) string {
		if flags[f] {
			return f + " yes"
		}
		return f + " NO"
	}
	return fmt.Sprintf("%s, %d logical CPUs; %s, %s", model, runtime.NumCPU(), yes("aes"), yes("pclmulqdq"))
}

// tlsSection is the section: the AES-GCM reference, then the two clusters
// started, the schedule run, the rows made.
func tlsSection(ctx context.Context, o options) ([]row, error) {
	r := tlsResult{reps: 3, duration: 10 * time.Second, cpuInfo: cpuInfo()}
	benchtime, count := "1s", 3
	if o.quick {
		r.reps, r.duration, benchtime, count = 2, 3*time.Second, "200ms", 1
	}
	if o.reps > 0 {
		r.reps = o.reps
	}
	// The reference first, on an idle machine.
	var err error
	if r.aes, err = aesGCMRates(benchtime, count); err != nil {
		return nil, fmt.Errorf("AES-GCM reference: %w", err)
	}
	r.aesRuns = fmt.Sprintf("-benchtime %s, mean of %d", benchtime, count)
	bin, err := build(o.dir)
	if err != nil {
		return nil, err
	}
	root := filepath.Join(o.dir, "tls-bench")
	certs, err := makeBenchTLS(ctx, bin, filepath.Join(root, "certs"))
	if err != nil {
		return nil, err
	}
	type side struct {
		c     *benchCluster
		cl    *client.Client // the harness's, to delete each run's clips
		procs []peerProc
	}
	sides := map[string]side{}
	for _, t := range tlsTargets {
		var id *benchTLS
		if t == tlsOn {
			id = certs
		}
		dir := filepath.Join(root, t)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		c, err := startBenchClusterTLS(ctx, bin, dir, storageNodes, id)
		if err != nil {
			return nil, fmt.Errorf("%s cluster: %w", t, err)
		}
		defer c.stop()
		if _, err := c.clipstore(ctx, nil, nil, "mb", tlsBucket, "--ec", fmt.Sprintf("%d+%d", dataShards, parityShards)); err != nil {
			return nil, err
		}
		cl, err := c.client(ctx)
		if err != nil {
			return nil, err
		}
		defer cl.Close()
		procs := []peerProc{{"meta", c.meta.Pid()}}
		for _, s := range c.storage {
			procs = append(procs, peerProc{"storage", s.Pid()})
		}
		sides[t] = side{c, cl, procs}
		fmt.Fprintf(os.Stderr, "%s cluster: meta on %s, logs in %s\n", t, c.meta.Addr, dir)
	}
	if r.suite, err = certs.negotiatedSuite(ctx, sides[tlsOn].c.storage[0].Addr); err != nil {
		return nil, fmt.Errorf("TLS handshake with a storage node: %w", err)
	}
	fmt.Fprintf(os.Stderr, "TLS cluster negotiates %s\n", r.suite)

	steps := tlsSchedule(r.reps)
	start := time.Now()
	for i, s := range steps {
		sd := sides[s.target]
		prefix := fmt.Sprintf("r%d/%s-%s/", s.rep, s.target, s.w.op)
		args := slices.Concat([]string{"--meta", sd.c.meta.Addr}, sd.c.tls.flags(tlsClientCert), sd.c.keyFlags(),
			[]string{"--bucket", tlsBucket, "--prefix", prefix, "--size", strconv.FormatInt(s.w.size, 10),
				"--concurrency", strconv.Itoa(peerConc), "--duration", r.duration.String(), "--no-clean", "--json"})
		fmt.Fprintf(os.Stderr, "[%d/%d, %v] rep %d, %s, %s\n", i+1, len(steps), time.Since(start).Round(time.Second), s.rep+1, s.w, s.target)
		run, measured, err := runStep(ctx, bin, s, sd.procs, args, loadgen.NewClientStore(sd.cl), tlsBucket, prefix, sd.c)
		if measured {
			r.runs = append(r.runs, run)
		}
		if err != nil {
			return tlsRows(r), fmt.Errorf("%s, %s: %w", s.w, s.target, err)
		}
	}
	return tlsRows(r), nil
}
