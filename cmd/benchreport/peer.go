package main

// The s3peer section (make bench-s3): the `clipstore s3` gateway on the
// cluster `make bench` measures, side by side with MinIO on the same
// machine and disk in two layouts (one server with 6 folders; 6 servers
// with one folder each, one erasure set), driven by the same `clipstore
// bench --s3` loads, alternating between them. It is not part of `make
// bench`.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/internal/bytesize"
	"github.com/clipstore/clipstore/internal/loadgen"
	"golang.org/x/sync/errgroup"
)

// minioModule is the MinIO the harness installs into bin/ when missing.
const minioModule = "github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"

// MinIO's root credential, which the loads use as their S3 key.
const (
	minioUser     = "benchadmin"
	minioPassword = "bench-secret-key-0123"
)

// The buckets of the peer runs: the same name on both sides; the
// clipstore one RS 4+2 as `make bench`'s, with md5 ETags (the default),
// and a second one with fast ETags.
const (
	peerBucket     = "s3peer"
	peerFastBucket = "s3peer-fast"
	peerConc       = 8
)

// The targets a load runs against.
const (
	tgtGateway   = "gateway"      // clipstore s3, md5 ETags
	tgtFast      = "gateway-fast" // clipstore s3, bucket with --etag-mode fast
	tgtMinio     = "minio"        // one MinIO server, 6 folders
	tgtMinioDist = "minio-dist"   // 6 MinIO servers, one folder each
	tgtNative    = "native"       // clipstore bench without --s3: the client library
	tgtDev       = "dev"          // the same through clipstore dev: every node in one process
)

// minioLayout is one of MinIO's layouts.
type minioLayout struct {
	name   string // as -minio-layouts takes it
	target string
	label  string // in the table
}

// minioLayouts are MinIO's layouts, in the order they run after the
// gateway. Both are one erasure set of 6 drives, EC:2, on the same disk. In
// the single one MinIO reads and writes all 6 shards of an object in one
// process; in the distributed one, 5 of the 6 cross loopback between its
// processes, as clipstore's shards do between the gateway and the storage
// nodes: the fair comparison for the gets.
var minioLayouts = []minioLayout{
	{"single", tgtMinio, "MinIO single"},
	{"distributed", tgtMinioDist, "MinIO distributed"},
}

// minioTargets are the targets of all of MinIO's layouts, in order.
func minioTargets() []string {
	var ts []string
	for _, l := range minioLayouts {
		ts = append(ts, l.target)
	}
	return ts
}

// parseMinioLayouts reads -minio-layouts, layout names comma-separated,
// into their targets, in the order they run.
func parseMinioLayouts(s string) ([]string, error) {
	var ts []string
	for name := range strings.SplitSeq(s, ",") {
		i := slices.IndexFunc(minioLayouts, func(l minioLayout) bool { return l.name == strings.TrimSpace(name) })
		if i < 0 {
			return nil, fmt.Errorf("unknown MinIO layout %q (want single, distributed or both)", name)
		}
		ts = append(ts, minioLayouts[i].target)
	}
	var out []string
	for _, t := range minioTargets() {
		if slices.Contains(ts, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// minioLabel names a MinIO target in the table.
func minioLabel(target string) string {
	for _, l := range minioLayouts {
		if l.target == target {
			return l.label
		}
	}
	return target
}

func isMinio(target string) bool { return slices.Contains(minioTargets(), target) }

// peerWorkload is one load: an operation on clips of one size.
type peerWorkload struct {
	op   string // "put" or "get"
	size int64
}

func (w peerWorkload) String() string {
	return fmt.Sprintf("%s %s × %d", w.op, bytesize.Human(w.size), peerConc)
}

var (
	peerPut8M  = peerWorkload{"put", 8 << 20}
	peerGet8M  = peerWorkload{"get", 8 << 20}
	peerPut64K = peerWorkload{"put", 64 << 10}
	peerGet64K = peerWorkload{"get", 64 << 10}
	peerGet1M  = peerWorkload{"get", 1 << 20}
	// Each put before the get of its size: a get row's CPU per GiB
	// subtracts the cost of the clips its run put first, at the rate the
	// put row measured (1 MiB gets have no put row: their few MiB of
	// clips put first stay in their CPU).
	peerWorkloads = []peerWorkload{peerPut8M, peerGet8M, peerGet1M, peerPut64K, peerGet64K}
)

// peerStep is one run of the schedule.
type peerStep struct {
	rep    int
	w      peerWorkload
	target string
}

// peerSchedule is the order of the runs: rep after rep, each workload
// through the gateway and then through each of MinIO's layouts (minios, in
// that order), so that they alternate and drift on the machine hits all
// alike; every workload also runs through the native client (clipstore's
// own data path, no gateway), and the 8 MiB puts through the fast-ETag
// bucket.
func peerSchedule(reps int, minios []string) []peerStep {
	var steps []peerStep
	for rep := range reps {
		for _, w := range peerWorkloads {
			targets := append([]string{tgtGateway}, minios...)
			if w == peerPut8M {
				targets = append(targets, tgtFast)
			}
			targets = append(targets, tgtNative, tgtDev)
			for _, t := range targets {
				steps = append(steps, peerStep{rep: rep, w: w, target: t})
			}
		}
	}
	return steps
}

// peerRun is what one run measured.
type peerRun struct {
	peerStep
	res      loadgen.Result
	prepared int64                    // bytes the run put before its measurement (get runs)
	cpu      map[string]time.Duration // CPU time used during the run, by process group
	other    time.Duration            // CPU time the rest of the machine used meanwhile
}

// peerKey names a row: a workload through a target.
type peerKey struct {
	w      peerWorkload
	target string
}

// spread is the mean, least and greatest of a figure over the reps.
type spread struct{ mean, min, max float64 }

func spreadOf(xs []float64) spread {
	if len(xs) == 0 {
		return spread{}
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return spread{mean: sum / float64(len(xs)), min: slices.Min(xs), max: slices.Max(xs)}
}

func (s spread) format(unit string) string {
	if s.min == s.max {
		return fmt.Sprintf("%.1f %s", s.mean, unit)
	}
	return fmt.Sprintf("%.1f %s (%.1f–%.1f)", s.mean, unit, s.min, s.max)
}

// peerStats sums up the runs of one workload through one target.
type peerStats struct {
	n        int
	mib, ops spread
	p50, p99 float64 // means over the runs, ms
	bytes    int64   // moved by the measured operations
	prepared int64   // put before the measurements
	cpu      map[string]float64
	groups   []string // of cpu, in the order first seen
	verified int64
	other    float64 // seconds, all runs
}

func summarize(runs []peerRun) map[peerKey]*peerStats {
	type acc struct {
		mib, ops, p50, p99 []float64
		st                 *peerStats
	}
	accs := map[peerKey]*acc{}
	for _, r := range runs {
		k := peerKey{r.w, r.target}
		a := accs[k]
		if a == nil {
			a = &acc{st: &peerStats{cpu: map[string]float64{}}}
			accs[k] = a
		}
		a.mib = append(a.mib, r.res.MiBPerSec)
		a.ops = append(a.ops, r.res.OpsPerSec)
		a.p50 = append(a.p50, r.res.Latency.P50)
		a.p99 = append(a.p99, r.res.Latency.P99)
		st := a.st
		st.n++
		st.bytes += r.res.Bytes
		st.verified += r.res.BytesVerified
		st.prepared += r.prepared
		st.other += r.other.Seconds()
		for _, g := range sortedGroups(r.cpu) {
			if _, ok := st.cpu[g]; !ok {
				st.groups = append(st.groups, g)
			}
			st.cpu[g] += r.cpu[g].Seconds()
		}
	}
	out := map[peerKey]*peerStats{}
	for k, a := range accs {
		a.st.mib, a.st.ops = spreadOf(a.mib), spreadOf(a.ops)
		a.st.p50, a.st.p99 = spreadOf(a.p50).mean, spreadOf(a.p99).mean
		out[k] = a.st
	}
	return out
}

// groupOrder is the order process groups are reported in.
var groupOrder = []string{"meta", "storage", "gateway", "dev", "minio", "load"}

func sortedGroups(cpu map[string]time.Duration) []string {
	var gs []string
	for _, g := range groupOrder {
		if _, ok := cpu[g]; ok {
			gs = append(gs, g)
		}
	}
	for g := range cpu {
		if !slices.Contains(gs, g) {
			gs = append(gs, g)
		}
	}
	return gs
}

// cpuPerGiB is the CPU seconds each process group spent per GiB the
// measured operations moved. A get run puts its clips first (prepared
// bytes): that cost is taken off at the rate put (the put row of the same
// size and target; nil: none known) measured for the same group.
func cpuPerGiB(st, put *peerStats) map[string]float64 {
	out := map[string]float64{}
	if st.bytes == 0 {
		return out
	}
	const gib = 1 << 30
	for g, sec := range st.cpu {
		if put != nil && st.prepared > 0 && put.bytes > 0 {
			sec -= put.cpu[g] / float64(put.bytes) * float64(st.prepared)
		}
		out[g] = max(sec, 0) / (float64(st.bytes) / gib)
	}
	return out
}

func formatCPU(groups []string, perGiB map[string]float64) (string, float64) {
	var parts []string
	var total float64
	for _, g := range groups {
		parts = append(parts, fmt.Sprintf("%s %.2f", g, perGiB[g]))
		total += perGiB[g]
	}
	return fmt.Sprintf("CPU s/GiB: %s; total %.2f", strings.Join(parts, ", "), total), total
}

// peerResult is what the rows are made of.
type peerResult struct {
	stats    map[peerKey]*peerStats
	reps     int
	duration time.Duration
	layouts  []string         // the MinIO targets compared with (nil: all)
	minioErr map[string]error // by MinIO target: it could not be installed, started or run; its figures are missing
	setup    string
}

// The targets: what each ratio must reach.
const (
	targetGatewayPutVsMinio = 0.90
	targetGatewayGetVsMinio = 1.00
	targetFastPutVsMinio    = 1.10
	targetGatewayVsNative   = 0.80
)

func peerRows(p peerResult) []row {
	rows := []row{{area: "s3 peer", name: "setup", measured: "—", reference: "—", note: p.setup}}
	layouts := p.layouts
	if layouts == nil {
		layouts = minioTargets()
	}
	stat := func(w peerWorkload, t string) *peerStats { return p.stats[peerKey{w, t}] }
	// cpuRef is a CPU total per GiB another row is compared with.
	type cpuRef struct {
		label string
		total float64
	}
	// describe is a target's row of a workload: its figures, latencies
	// and CPU per GiB (also returned, totalled; 0: not measured),
	// compared with the CPU totals vs that are not 0.
	describe := func(w peerWorkload, t, name string, vs []cpuRef) (row, float64) {
		r := row{area: "s3 peer", name: name}
		st := stat(w, t)
		if st == nil {
			r.measured = "not measured"
			return r, 0
		}
		var put *peerStats
		if w.op == "get" {
			put = stat(peerWorkload{"put", w.size}, t)
		}
		cpu, total := formatCPU(st.groups, cpuPerGiB(st, put))
		var cmp []string
		for _, v := range vs {
			if v.total > 0 {
				cmp = append(cmp, fmt.Sprintf("%.2f× %s's", total/v.total, v.label))
			}
		}
		if len(cmp) > 0 {
			cpu += " (" + strings.Join(cmp, ", ") + ")"
		}
		runs := "runs"
		if st.n == 1 {
			runs = "run"
		}
		r.measured = st.mib.format("MiB/s") + ", " + st.ops.format("ops/s")
		r.note = fmt.Sprintf("%d %s; p50 %.1f ms, p99 %.1f ms (means); %s; other processes %.1f CPU-s per run", st.n, runs, st.p50, st.p99, cpu, st.other/float64(st.n))
		if w.op == "get" {
			r.note += fmt.Sprintf("; %s verified", bytesize.Human(st.verified))
			if st.prepared > 0 && put != nil {
				r.note += fmt.Sprintf("; CPU less the puts of the %s read, at the put row's rate", bytesize.Human(st.prepared/int64(st.n)))
			}
		}
		return r, total
	}
	// minioRef is the reference a MinIO layout gives a workload: its
	// figure, or why there is none, and its mean MiB/s (0: none).
	minioRef := func(w peerWorkload, t string) (string, float64) {
		label := minioLabel(t)
		if !slices.Contains(layouts, t) {
			return label + ": not run", 0
		}
		if err := p.minioErr[t]; err != nil {
			return label + " failed: " + err.Error(), 0
		}
		st := stat(w, t)
		if st == nil {
			return label + ": not measured", 0
		}
		return st.mib.format("MiB/s") + " (" + label + ")", st.mib.mean
	}
	// versus sets r's ratio to the MinIO reference of its workload, and
	// its target.
	versus := func(r *row, st *peerStats, ref string, refMean, min float64) {
		r.reference = ref
		if st != nil && refMean > 0 {
			r.ratio = st.mib.mean / refMean
			r.target, r.ok = atLeast(r.ratio, min)
			return
		}
		r.target = fmt.Sprintf("≥ %.2f (no ratio)", min)
	}
	// The targets are against the single server, as they were set; the
	// distributed layout gets ratio rows without one.
	targets := map[peerWorkload]float64{peerPut8M: targetGatewayPutVsMinio, peerGet8M: targetGatewayGetVsMinio}
	for _, w := range peerWorkloads {
		var vs []cpuRef
		for _, t := range layouts {
			_, total := describe(w, t, "", nil)
			vs = append(vs, cpuRef{minioLabel(t), total})
		}
		gw, _ := describe(w, tgtGateway, "gateway "+w.String(), vs)
		ref, refMean := minioRef(w, tgtMinio)
		if min, ok := targets[w]; ok {
			versus(&gw, stat(w, tgtGateway), ref, refMean, min)
		} else if st := stat(w, tgtGateway); st != nil && refMean > 0 {
			gw.reference, gw.ratio = ref, st.mib.mean/refMean
		} else {
			gw.reference = ref
		}
		if w == peerPut8M {
			gw.name += " (md5 ETags)"
		}
		rows = append(rows, gw)
		for _, t := range layouts {
			mn, _ := describe(w, t, minioLabel(t)+" "+w.String(), nil)
			if err := p.minioErr[t]; err != nil {
				mn.measured = minioLabel(t) + " failed: " + err.Error()
			}
			mn.reference = "—"
			rows = append(rows, mn)
		}
		if slices.Contains(layouts, tgtMinioDist) {
			rows = append(rows, distRatioRow(w, stat(w, tgtGateway), stat(w, tgtFast), minioRef))
		}
		// clipstore's own data path beside MinIO: no target here (the
		// performance issue sets them).
		native, _ := describe(w, tgtNative, "native client "+w.String()+" (no gateway)", vs)
		native.reference = ref
		if st := stat(w, tgtNative); st != nil && refMean > 0 {
			native.ratio = st.mib.mean / refMean
		}
		dev, _ := describe(w, tgtDev, "clipstore dev "+w.String()+" (one process, native client)", vs)
		dev.reference = ref
		if st := stat(w, tgtDev); st != nil && refMean > 0 {
			dev.ratio = st.mib.mean / refMean
		}
		if w != peerPut8M {
			rows = append(rows, native, dev)
			continue
		}
		fast, _ := describe(w, tgtFast, "gateway "+w.String()+" (fast ETags)", vs)
		versus(&fast, stat(w, tgtFast), ref, refMean, targetFastPutVsMinio)
		rows = append(rows, fast, native, dev)
		if g, n := stat(w, tgtGateway), stat(w, tgtNative); g != nil && n != nil && n.mib.mean > 0 {
			r := row{area: "s3 peer", name: "gateway put ÷ native put, " + w.String(),
				measured: fmt.Sprintf("%.1f MiB/s (gateway)", g.mib.mean), reference: fmt.Sprintf("%.1f MiB/s (native client)", n.mib.mean),
				ratio: g.mib.mean / n.mib.mean, note: "means over the runs"}
			r.target, r.ok = atLeast(r.ratio, targetGatewayVsNative)
			rows = append(rows, r)
		}
	}
	return rows
}

// distRatioRow is the gateway's ratio to MinIO distributed on workload w
// (and, for the puts, the fast-ETag bucket's in the note): no target.
func distRatioRow(w peerWorkload, gw, fast *peerStats, minioRef func(peerWorkload, string) (string, float64)) row {
	r := row{area: "s3 peer", name: "gateway ÷ MinIO distributed, " + w.String(), measured: "gateway: not measured",
		note: "means over the runs; no target (the targets are against MinIO single)"}
	var refMean float64
	r.reference, refMean = minioRef(w, tgtMinioDist)
	if gw != nil {
		r.measured = fmt.Sprintf("%.1f MiB/s (gateway)", gw.mib.mean)
		if refMean > 0 {
			r.ratio = gw.mib.mean / refMean
		}
	}
	if fast != nil && refMean > 0 {
		r.note += fmt.Sprintf("; fast ETags: %.1f MiB/s, %.2f", fast.mib.mean, fast.mib.mean/refMean)
	}
	return r
}

// peerProc is a process whose CPU time a run reads.
type peerProc struct {
	group string
	pid   int
}

// sampleCPU reads the CPU time of every process, summed by group.
func sampleCPU(procs []peerProc) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for _, p := range procs {
		d, err := pidCPU(p.pid)
		if err != nil {
			return nil, err
		}
		out[p.group] += d
	}
	return out, nil
}

// machineCPU is the CPU time every CPU has spent busy (not idle nor
// waiting for I/O) since boot: the first line of /proc/stat.
func machineCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseMachineCPU(line)
}

// parseMachineCPU reads "cpu user nice system idle iowait irq softirq
// steal ...", in USER_HZ ticks: the sum of all but idle and iowait.
func parseMachineCPU(line string) (time.Duration, error) {
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: %q", line)
	}
	var busy int64
	for i, v := range f[1:9] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %q: %w", line, err)
		}
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / userHZ, nil
}

// s3Peer is the section: MinIO installed (if missing) and started, the
// cluster and a gateway started, the schedule run, the rows made.
func s3Peer(ctx context.Context, o options) ([]row, error) {
	reps, dur := 5, 10*time.Second
	if o.quick {
		reps, dur = 2, 3*time.Second
	}
	if o.reps > 0 {
		reps = o.reps
	}
	layouts := o.minioLayouts
	if layouts == nil {
		layouts = minioTargets()
	}
	p := peerResult{reps: reps, duration: dur, layouts: layouts, minioErr: map[string]error{}}
	minioFailed := func(t string, err error) {
		p.minioErr[t] = err
		fmt.Fprintf(os.Stderr, "benchreport: %s: %v\nbenchreport: going on without it\n", minioLabel(t), err)
	}
	// MinIO first: its build takes minutes and both cores, so it must not
	// overlap a measurement.
	minioBin, err := ensureMinio(ctx, o.minio)
	if err != nil {
		for _, t := range layouts {
			minioFailed(t, err)
		}
	}
	bin, err := build(o.dir)
	if err != nil {
		return nil, err
	}
	minios := map[string]*minioServer{}
	for _, t := range layouts {
		if p.minioErr[t] != nil {
			continue
		}
		start := startMinio
		if t == tgtMinioDist {
			start = startMinioDist
		}
		m, err := start(ctx, minioBin, o.dir)
		if err != nil {
			minioFailed(t, err)
			continue
		}
		defer m.kill()
		minios[t] = m
	}
	c, err := startBenchCluster(ctx, bin, o.dir, storageNodes)
	if err != nil {
		return nil, err
	}
	defer c.stop()
	if err := makePeerBuckets(ctx, c); err != nil {
		return nil, err
	}
	gw, key, err := c.startGateway(ctx)
	if err != nil {
		return nil, fmt.Errorf("s3 gateway: %w", err)
	}
	defer gw.kill()
	gwStore, err := loadgen.NewS3Store(loadgen.S3Config{Endpoint: "http://" + gw.Addr, AccessKey: key.ID, SecretKey: key.Secret, Concurrency: peerConc})
	if err != nil {
		return nil, err
	}
	defer gwStore.Close()

	clusterProcs := []peerProc{{"meta", c.meta.Pid()}}
	for _, s := range c.storage {
		clusterProcs = append(clusterProcs, peerProc{"storage", s.Pid()})
	}
	type side struct {
		procs []peerProc
		args  []string      // clipstore bench flags that pick the target
		store loadgen.Store // where the run's clips are deleted
	}
	gwArgs := []string{"--s3", "http://" + gw.Addr, "--access-key", key.ID, "--secret-key", key.Secret}
	sides := map[string]side{
		tgtGateway: {append(slices.Clone(clusterProcs), peerProc{"gateway", gw.Pid()}), append(slices.Clone(gwArgs), "--bucket", peerBucket), gwStore},
		tgtFast:    {append(slices.Clone(clusterProcs), peerProc{"gateway", gw.Pid()}), append(slices.Clone(gwArgs), "--bucket", peerFastBucket), gwStore},
		tgtNative:  {clusterProcs, []string{"--meta", c.meta.Addr, "--bucket", peerBucket}, gwStore},
	}
	// clipstore dev: 1 meta and 6 storage nodes in one process, RS 4+2.
	dev, err := startProc(bin, o.dir, "dev", slices.Concat([]string{"dev", "--data", filepath.Join(o.dir, "dev"), "--listen", "127.0.0.1:0", "--s3", "off",
		"--log-level", "warn"}, storageFlags)...)
	if err != nil {
		return nil, fmt.Errorf("clipstore dev: %w", err)
	}
	defer dev.kill()
	devClient, err := client.New(ctx, client.Config{Meta: []string{dev.Addr}})
	if err != nil {
		return nil, err
	}
	defer devClient.Close()
	sides[tgtDev] = side{[]peerProc{{"dev", dev.Pid()}}, []string{"--meta", dev.Addr, "--bucket", peerBucket}, loadgen.NewClientStore(devClient)}
	for t, m := range minios {
		// The loads talk to the first process; the CPU is that of all.
		st, err := loadgen.NewS3Store(loadgen.S3Config{Endpoint: m.endpoint, AccessKey: minioUser, SecretKey: minioPassword, Concurrency: peerConc})
		if err != nil {
			return nil, err
		}
		defer st.Close()
		var procs []peerProc
		for _, mp := range m.procs {
			procs = append(procs, peerProc{"minio", mp.cmd.Process.Pid})
		}
		sides[t] = side{procs, []string{"--s3", m.endpoint, "--access-key", minioUser, "--secret-key", minioPassword, "--bucket", peerBucket}, st}
	}
	var labels, setups []string
	for _, t := range layouts {
		labels = append(labels, minioLabel(t))
		switch t {
		case tgtMinio:
			setups = append(setups, "single: one server, 6 folders on the same disk, EC:2")
		case tgtMinioDist:
			setups = append(setups, "distributed: 6 servers on loopback, one folder each on the same disk, one erasure set of 6 drives, EC:2, the loads sent to the first, CPU summed over the 6")
		}
	}
	p.setup = fmt.Sprintf("reps: %d, alternating gateway, %s; %v runs, concurrency %d, `clipstore bench --s3` (unsigned payloads, every byte read verified); "+
		"clipstore: 1 meta + %d storage processes, RS %d+%d, one gateway, and clipstore dev (the same nodes in one process); MinIO %s: %s",
		reps, strings.Join(labels, ", "), dur, peerConc, storageNodes, dataShards, parityShards, strings.TrimPrefix(minioModule, "github.com/minio/minio@"), strings.Join(setups, "; "))

	var runs []peerRun
	steps := peerSchedule(reps, layouts)
	start := time.Now()
	for i, s := range steps {
		sd, ok := sides[s.target]
		if !ok || p.minioErr[s.target] != nil {
			continue
		}
		bucket := peerBucket
		if s.target == tgtFast {
			bucket = peerFastBucket
		}
		prefix := fmt.Sprintf("r%d/%s-%s-%s/", s.rep, s.target, s.w.op, bytesize.Format(s.w.size))
		args := append(slices.Clone(sd.args), "--prefix", prefix, "--size", strconv.FormatInt(s.w.size, 10),
			"--concurrency", strconv.Itoa(peerConc), "--duration", dur.String(), "--no-clean", "--json")
		fmt.Fprintf(os.Stderr, "[%d/%d, %v] rep %d, %s through %s\n", i+1, len(steps), time.Since(start).Round(time.Second), s.rep+1, s.w, s.target)
		settle := c
		if isMinio(s.target) {
			settle = nil
		}
		run, measured, err := runStep(ctx, bin, s, sd.procs, args, sd.store, bucket, prefix, settle)
		if measured {
			runs = append(runs, run)
		}
		if err != nil {
			if isMinio(s.target) {
				p.minioErr[s.target] = fmt.Errorf("%w (see %s)", err, minios[s.target].logs)
				fmt.Fprintf(os.Stderr, "benchreport: %s: %v; no more runs through it\n", minioLabel(s.target), p.minioErr[s.target])
				continue
			}
			p.stats = summarize(runs)
			return peerRows(p), fmt.Errorf("%s through %s: %w", s.w, s.target, err)
		}
	}
	p.stats = summarize(runs)
	rows := peerRows(p)
	var errs []error
	for _, t := range layouts {
		if err := p.minioErr[t]; err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", minioLabel(t), err))
		}
	}
	return rows, errors.Join(errs...)
}

// peerLoad runs one `clipstore bench` and reads the CPU time of procs
// around it, and of the bench process itself.
func peerLoad(ctx context.Context, bin string, s peerStep, procs []peerProc, prepared int64, args []string) (peerRun, error) {
	run := peerRun{peerStep: s, prepared: prepared}
	before, err := sampleCPU(procs)
	if err != nil {
		return run, err
	}
	busy0, err := machineCPU()
	if err != nil {
		return run, err
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, append([]string{"bench", s.w.op}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	runErr := cmd.Run()
	busy1, err := machineCPU()
	if err != nil {
		return run, err
	}
	after, err := sampleCPU(procs)
	if err != nil {
		return run, err
	}
	run.cpu = map[string]time.Duration{}
	for g, d := range after {
		run.cpu[g] = d - before[g]
	}
	if ps := cmd.ProcessState; ps != nil {
		run.cpu["load"] = ps.UserTime() + ps.SystemTime()
	}
	run.other = busy1 - busy0
	for _, d := range run.cpu {
		run.other -= d
	}
	run.other = max(run.other, 0)
	var rep loadgen.Report
	if jerr := json.Unmarshal(out.Bytes(), &rep); jerr != nil {
		if runErr == nil {
			runErr = fmt.Errorf("clipstore bench %s: bad JSON (%v): %q", s.w.op, jerr, out.String())
		}
		return run, runErr
	}
	if runErr != nil {
		return run, fmt.Errorf("clipstore bench %s: %w: %v", s.w.op, runErr, rep.ErrorSamples)
	}
	for _, r := range rep.Results {
		if r.Op == s.w.op {
			run.res = r
			fmt.Fprintf(os.Stderr, "%.1f MiB/s, %.1f ops/s, p50 %.1f ms, p99 %.1f ms\n", r.MiBPerSec, r.OpsPerSec, r.Latency.P50, r.Latency.P99)
			return run, nil
		}
	}
	return run, fmt.Errorf("clipstore bench %s: no %q result in %q", s.w.op, s.w.op, out.String())
}

// keepUntilEnd says whether a run's objects stay (until the work
// directory goes) instead of being deleted after it: those of small puts,
// tens of thousands of files. On a filesystem that holds freed inodes back
// from reuse for a minute (ext4 without a journal: recently_deleted),
// deleting them made the creates of whichever run came next scan the inode
// bitmaps for free ones (docs/performance.md).
func keepUntilEnd(w peerWorkload) bool { return w.op == "put" && w.size < 1<<20 }

// runStep runs one step of a schedule: clipstore bench with args (a get
// first puts the clips it reads), then, outside the measurement, deletes
// its clips under bucket/prefix from store and waits for settle (if any)
// to go quiet, unless keepUntilEnd, and flushes the disk, so that no run
// pays for the one before.
// measured says whether the run itself succeeded, whatever came after.
func runStep(ctx context.Context, bin string, s peerStep, procs []peerProc, args []string,
	store loadgen.Store, bucket, prefix string, settle *benchCluster) (run peerRun, measured bool, err error) {
	var prepared int64
	if s.w.op == "get" {
		objects := getObjects(s.w.size, peerConc)
		args = append(args, "--objects", strconv.Itoa(objects))
		prepared = int64(objects) * s.w.size
	}
	run, err = peerLoad(ctx, bin, s, procs, prepared, args)
	measured = err == nil
	if keepUntilEnd(s.w) {
		syscall.Sync()
		return run, measured, err
	}
	if cerr := deletePrefix(ctx, store, bucket, prefix); cerr != nil && err == nil {
		err = fmt.Errorf("clean up %s/%s: %w", bucket, prefix, cerr)
	}
	if settle != nil {
		if qerr := settle.waitQuiet(ctx); qerr != nil && err == nil {
			err = qerr
		}
	}
	syscall.Sync()
	return run, measured, err
}

// deletePrefix deletes every object under prefix, peerConc at a time.
func deletePrefix(ctx context.Context, st loadgen.Store, bucket, prefix string) error {
	var keys []string
	for e, err := range st.List(ctx, bucket, prefix) {
		if err != nil {
			return err
		}
		keys = append(keys, e.Key)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(peerConc)
	for _, k := range keys {
		g.Go(func() error {
			if err := st.Delete(gctx, bucket, k); err != nil && !errors.Is(err, loadgen.ErrNotFound) {
				return err
			}
			return nil
		})
	}
	return g.Wait()
}

// makePeerBuckets makes the clipstore buckets, RS 4+2: peerBucket with
// md5 ETags, peerFastBucket with fast ones (clipstore mb --etag-mode).
func makePeerBuckets(ctx context.Context, c *benchCluster) error {
	ec := fmt.Sprintf("%d+%d", dataShards, parityShards)
	for bucket, mode := range map[string]string{peerBucket: "md5", peerFastBucket: "fast"} {
		if _, err := c.clipstore(ctx, nil, nil, "mb", bucket, "--ec", ec, "--etag-mode", mode); err != nil {
			return err
		}
	}
	return nil
}

// ensureMinio returns the MinIO binary: path if given, else bin/minio,
// which it installs (go install minioModule) when missing.
func ensureMinio(ctx context.Context, path string) (string, error) {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", err
		}
		return path, nil
	}
	binDir, err := filepath.Abs("bin")
	if err != nil {
		return "", err
	}
	path = filepath.Join(binDir, "minio")
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
		return path, nil
	}
	fmt.Fprintf(os.Stderr, "installing %s into %s (minutes: it builds MinIO)\n", minioModule, binDir)
	start := time.Now()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", "install", minioModule)
	cmd.Env = append(os.Environ(), "GOBIN="+binDir)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("GOBIN=%s go install %s: %w: %s", binDir, minioModule, err, lastLines(out.String(), 15))
	}
	fmt.Fprintf(os.Stderr, "MinIO installed in %v\n", time.Since(start).Round(time.Second))
	return path, nil
}

// lastLines is the end of s, n lines at most, on one line.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// minioServer is a running MinIO deployment: one process, or several that
// form one erasure set. The loads talk to the first.
type minioServer struct {
	procs    []*minioProc
	endpoint string // the first process's
	logs     string // where the logs are, for the errors
}

// minioProc is one MinIO server process.
type minioProc struct {
	cmd      *exec.Cmd
	endpoint string
	logPath  string
	log      *os.File
	done     chan struct{}
}

// minioEnv is the environment of every MinIO process.
func minioEnv() []string {
	return append(os.Environ(),
		"MINIO_ROOT_USER="+minioUser, "MINIO_ROOT_PASSWORD="+minioPassword,
		"MINIO_STORAGE_CLASS_STANDARD=EC:2",
		// Nothing that phones home: no update check, no call home.
		"MINIO_UPDATE=off", "MINIO_CALLHOME_ENABLE=off",
		// The folders are on the root filesystem, which MinIO refuses
		// unless told that "root drives" are those of at most 1 byte.
		// (MINIO_CI_CD would do it too, but changes its buffer pool.)
		"MINIO_ROOTDRIVE_THRESHOLD_SIZE=1",
	)
}

func minioAddr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// startMinio runs one MinIO server on 6 folders under dir/minio, EC:2,
// on loopback, and waits (at most a minute) until it has write quorum.
func startMinio(ctx context.Context, bin, dir string) (*minioServer, error) {
	root := filepath.Join(dir, "minio")
	for i := 1; i <= 6; i++ {
		if err := os.MkdirAll(filepath.Join(root, fmt.Sprintf("d%d", i)), 0o755); err != nil {
			return nil, err
		}
	}
	logPath := filepath.Join(dir, "minio.log")
	var lastErr error
	for range 3 { // the free ports may be taken before MinIO binds them
		ports, err := freePorts(2)
		if err != nil {
			return nil, err
		}
		mp, err := startMinioProc(bin, logPath, minioEnv(), "server", "--address", minioAddr(ports[0]),
			"--console-address", minioAddr(ports[1]), filepath.Join(root, "d{1...6}"))
		if err != nil {
			return nil, err
		}
		m := &minioServer{procs: []*minioProc{mp}, endpoint: mp.endpoint, logs: logPath}
		if err := m.waitReady(ctx, time.Minute); err != nil {
			m.kill()
			lastErr = fmt.Errorf("minio server on %s: %w; log: %s", m.endpoint, err, logPath)
			continue
		}
		fmt.Fprintf(os.Stderr, "MinIO single serves on %s (console 127.0.0.1:%d), log %s\n", m.endpoint, ports[1], logPath)
		return m, nil
	}
	return nil, lastErr
}

// minioDistProcs is the number of processes of MinIO distributed, one
// drive each.
const minioDistProcs = 6

// startMinioDist runs MinIO distributed: 6 server processes on loopback,
// each with its own port and one folder under dir/minio-dist, all given
// the same 6 endpoints http://127.0.0.1:PORTi/.../di, which make one
// erasure set, EC:2; it waits (at most 2 minutes) until every process
// serves and has write quorum.
func startMinioDist(ctx context.Context, bin, dir string) (*minioServer, error) {
	root, err := filepath.Abs(filepath.Join(dir, "minio-dist"))
	if err != nil {
		return nil, err
	}
	logs := filepath.Join(dir, fmt.Sprintf("minio-dist-{1..%d}.log", minioDistProcs))
	var lastErr error
	for range 3 { // the free ports may be taken before MinIO binds them
		// A failed try may have formatted drives: start afresh.
		if err := os.RemoveAll(root); err != nil {
			return nil, err
		}
		ports, err := freePorts(2 * minioDistProcs) // API, then console
		if err != nil {
			return nil, err
		}
		var endpoints []string
		for i := range minioDistProcs {
			drive := filepath.Join(root, fmt.Sprintf("d%d", i+1))
			if err := os.MkdirAll(drive, 0o755); err != nil {
				return nil, err
			}
			endpoints = append(endpoints, "http://"+minioAddr(ports[i])+drive)
		}
		m := &minioServer{logs: logs}
		for i := range minioDistProcs {
			// MinIO takes itself for orchestrated when it finds
			// /.dockerenv (or $KUBERNETES_SERVICE_HOST), and then waits
			// forever for an endpoint on 127.0.0.1 to resolve to an
			// address other than loopback ("127.0.0.1 resolves to
			// localhost in a containerized deployment"); this names the
			// process's own endpoint (host:port) local, the others remote.
			// Outside a container it is not read.
			env := append(minioEnv(), "_MINIO_SERVER_LOCAL="+minioAddr(ports[i]))
			args := append([]string{"server", "--address", minioAddr(ports[i]), "--console-address", minioAddr(ports[minioDistProcs+i])}, endpoints...)
			mp, err := startMinioProc(bin, filepath.Join(dir, fmt.Sprintf("minio-dist-%d.log", i+1)), env, args...)
			if err != nil {
				m.kill()
				return nil, err
			}
			m.procs = append(m.procs, mp)
		}
		m.endpoint = m.procs[0].endpoint
		if err := m.waitReady(ctx, 2*time.Minute); err != nil {
			m.kill()
			lastErr = fmt.Errorf("minio distributed on %s: %w; logs: %s", strings.Join(endpoints, " "), err, logs)
			continue
		}
		fmt.Fprintf(os.Stderr, "MinIO distributed serves on %s..%s (the loads on the first), logs %s\n", m.endpoint, m.procs[minioDistProcs-1].endpoint, logs)
		return m, nil
	}
	return nil, lastErr
}

// startMinioProc starts `bin args...` with env, its output appended to
// logPath, on the endpoint of its --address.
func startMinioProc(bin, logPath string, env []string, args ...string) (*minioProc, error) {
	i := slices.Index(args, "--address")
	if i < 0 || i+1 >= len(args) {
		return nil, fmt.Errorf("minio %v: no --address", args)
	}
	mp := &minioProc{endpoint: "http://" + args[i+1], logPath: logPath, done: make(chan struct{})}
	var err error
	if mp.log, err = os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		return nil, err
	}
	mp.cmd = exec.Command(bin, args...)
	mp.cmd.Env = env
	mp.cmd.Stdout, mp.cmd.Stderr = mp.log, mp.log
	mp.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := mp.cmd.Start(); err != nil {
		mp.log.Close()
		return nil, err
	}
	go func() {
		mp.cmd.Wait()
		close(mp.done)
	}()
	return mp, nil
}

// waitReady waits, at most limit in all, until every process serves
// (/minio/health/live) and then has write quorum (/minio/health/cluster);
// it gives up at once if one exits.
func (m *minioServer) waitReady(ctx context.Context, limit time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var exited *minioProc
	deadline := time.Now().Add(limit)
	for _, path := range []string{"/minio/health/live", "/minio/health/cluster"} {
		err := await.Poll(ctx, time.Until(deadline), 100*time.Millisecond, func() (bool, string) {
			var waiting []string
			for _, mp := range m.procs {
				select {
				case <-mp.done:
					exited = mp
					cancel()
					return false, mp.endpoint + " exited"
				default:
				}
				resp, err := hc.Get(mp.endpoint + path)
				if err != nil {
					waiting = append(waiting, err.Error())
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					waiting = append(waiting, mp.endpoint+path+": "+resp.Status)
				}
			}
			return len(waiting) == 0, strings.Join(waiting, "; ")
		})
		if exited != nil {
			return fmt.Errorf("%s exited (%v); log: %s", exited.endpoint, exited.cmd.ProcessState, exited.logPath)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (m *minioServer) kill() {
	for _, mp := range m.procs {
		mp.cmd.Process.Kill()
		<-mp.done
		mp.log.Close()
	}
}

// freePorts returns n loopback ports free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
