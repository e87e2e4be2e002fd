package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/clipstore/clipstore/internal/bytesize"
	"github.com/clipstore/clipstore/internal/loadgen"
)

// The cluster `make bench` measures: RS 4+2 on 6 storage processes.
const (
	dataShards, parityShards = 4, 2
	storageNodes             = 6
	clientRSSLimit           = 64 << 20
	storageRSSLimit          = 128 << 20
)

func endToEnd(ctx context.Context, o options) ([]row, error) {
	bin, err := build(o.dir)
	if err != nil {
		return nil, err
	}
	// The references first, on an idle machine and the cluster's disk.
	diskBytes, tcpBytes, refDur := int64(1<<30), int64(4<<30), 5*time.Second
	if o.quick {
		diskBytes, tcpBytes, refDur = 256<<20, 1<<30, 2*time.Second
	}
	// The machine is shared and noisy: each rate is the best of three, so
	// the reference is what the hardware can do, not a slow moment of it.
	disk, err := bestOf(3, func() (float64, error) { return diskWriteRate(o.dir, diskBytes) })
	if err != nil {
		return nil, fmt.Errorf("disk reference: %w", err)
	}
	tcp, err := bestOf(3, func() (float64, error) { return loopbackTCPRate(tcpBytes) })
	if err != nil {
		return nil, fmt.Errorf("loopback reference: %w", err)
	}
	small, published := map[int]float64{}, map[int]float64{}
	for _, c := range o.concurrency {
		if small[c], err = bestOf(2, func() (float64, error) {
			return smallFilesOpsPerSec(o.dir, dataShards+parityShards, (64<<10)/dataShards, c, refDur, false)
		}); err != nil {
			return nil, fmt.Errorf("small-file reference: %w", err)
		}
		if published[c], err = bestOf(2, func() (float64, error) {
			return smallFilesOpsPerSec(o.dir, dataShards+parityShards, (64<<10)/dataShards, c, refDur, true)
		}); err != nil {
			return nil, fmt.Errorf("small-file reference: %w", err)
		}
	}
	putRef := disk * dataShards / (dataShards + parityShards)
	rows := []row{
		{area: "reference", name: "disk: 1 MiB writes then fsync (dd conv=fsync)", measured: mibps(disk), note: fmt.Sprintf("%s file, best of 3", bytesize.Human(diskBytes))},
		{area: "reference", name: "loopback TCP copy, one connection", measured: mibps(tcp), note: fmt.Sprintf("%s in 1 MiB writes, best of 3", bytesize.Human(tcpBytes))},
	}
	for _, c := range o.concurrency {
		rows = append(rows, row{area: "reference", name: fmt.Sprintf("create+write+fsync %d files of 16 KiB, %d at once", dataShards+parityShards, c),
			measured: fmt.Sprintf("%.0f ops/s", small[c]), note: fmt.Sprintf("%v, best of 2", refDur)},
			row{area: "reference", name: "the same, each file as a shard is written: temp, fsync, rename, fsync dir",
				measured: fmt.Sprintf("%.0f ops/s", published[c]), note: fmt.Sprintf("%v, best of 2; the storage protocol's own ceiling", refDur)})
	}

	c, err := startBenchCluster(ctx, bin, o.dir, storageNodes)
	if err != nil {
		return rows, err
	}
	defer c.stop()
	if _, err := c.clipstore(ctx, nil, nil, "mb", "bench", "--ec", fmt.Sprintf("%d+%d", dataShards, parityShards)); err != nil {
		return rows, err
	}

	// Memory first, so the storage nodes' peak RSS is that of the big clip.
	more, err := memoryRows(ctx, c, o.memClip)
	rows = append(rows, more...)
	if err != nil {
		return rows, err
	}

	for _, size := range o.sizes {
		for _, conc := range o.concurrency {
			common := []string{"--bucket", "bench", "--size", strconv.FormatInt(size, 10), "--concurrency", strconv.Itoa(conc),
				"--duration", o.duration.String(), "--json"}
			// The rows with a target are measured as their references
			// are, best of three runs (the machine is shared and noisy),
			// except in quick mode.
			putRuns, getRuns := 1, 1
			if !o.quick && conc == 8 && (size == 8<<20 || size == 64<<10) {
				putRuns = 3
			}
			if !o.quick && conc == 8 && size == 8<<20 {
				getRuns = 3
			}
			puts, err := runBest(ctx, c, putRuns, "put", common...)
			if err != nil {
				return rows, err
			}
			put := puts.best
			r := loadRow(put, "put", size, conc)
			r.note += puts.others
			if size < 1<<20 {
				r.reference = fmt.Sprintf("%.0f ops/s (%d fsync'd files of %s, %d at once)", small[conc],
					dataShards+parityShards, bytesize.Human(size/dataShards), conc)
				r.ratio = put.OpsPerSec / small[conc]
				r.note = fmt.Sprintf("%.2f of the temp+rename+dir-fsync rate (%.0f ops/s); %s", put.OpsPerSec/published[conc], published[conc], r.note)
				if conc == 8 {
					r.target, r.ok = atLeast(r.ratio, 0.50)
				}
			} else {
				r.reference = fmt.Sprintf("%s (disk × %d/%d)", mibps(putRef), dataShards, dataShards+parityShards)
				r.ratio = put.MiBPerSec * (1 << 20) / putRef
				if size == 8<<20 && conc == 8 {
					r.target, r.ok = atLeast(r.ratio, 0.60)
				}
			}
			rows = append(rows, r)

			gets, err := runBest(ctx, c, getRuns, "get", append(common, "--objects", strconv.Itoa(getObjects(size, conc)))...)
			if err != nil {
				return rows, err
			}
			get := gets.best
			r = loadRow(get, "get", size, conc)
			r.note += gets.others
			r.reference = mibps(tcp) + " (loopback TCP)"
			r.ratio = get.MiBPerSec * (1 << 20) / tcp
			if size == 8<<20 && conc == 8 {
				r.target, r.ok = atLeast(r.ratio, 0.35)
			}
			r.note += fmt.Sprintf(", %s verified", bytesize.Human(get.BytesVerified))
			rows = append(rows, r)
			if size == gatewaySize && conc == gatewayConc {
				more, err := gatewayRows(ctx, c, o, puts, gets)
				rows = append(rows, more...)
				if err != nil {
					return rows, err
				}
			}
		}
	}
	more, err = drainRows(ctx, c, o, disk)
	return append(rows, more...), err
}

// getObjects is how many clips a get run of size bytes and conc workers
// reads from: 4 per worker, within 1 GiB, at least one per worker.
func getObjects(size int64, conc int) int {
	return max(conc, min(4*conc, int((1<<30)/size)))
}

// The S3 gateway is measured with the 8 MiB clips, 8 at once.
const (
	gatewaySize = 8 << 20
	gatewayConc = 8
)

// gatewayRows starts a `clipstore s3` gateway and runs the put and get
// loads through it that were just run through the native client (puts,
// gets: as many runs, the same flags), and compares them; it adds the
// gateway's peak RSS beside the native bench processes', and its CPU time
// per GiB it moved.
func gatewayRows(ctx context.Context, c *benchCluster, o options, puts, gets loadRuns) ([]row, error) {
	gw, key, err := c.startGateway(ctx)
	if err != nil {
		return nil, fmt.Errorf("s3 gateway: %w", err)
	}
	defer gw.kill()
	fmt.Fprintf(os.Stderr, "through the s3 gateway on %s:\n", gw.Addr)
	common := []string{"--s3", "http://" + gw.Addr, "--access-key", key.ID, "--secret-key", key.Secret,
		"--bucket", "bench", "--size", strconv.Itoa(gatewaySize), "--concurrency", strconv.Itoa(gatewayConc),
		"--duration", o.duration.String(), "--json"}
	objects := getObjects(gatewaySize, gatewayConc)
	cpu0, err := gw.cpuTime()
	if err != nil {
		return nil, err
	}
	s3puts, err := runBest(ctx, c, puts.n, "put", common...)
	if err != nil {
		return nil, fmt.Errorf("through the s3 gateway: %w", err)
	}
	cpu1, err := gw.cpuTime()
	if err != nil {
		return nil, err
	}
	s3gets, err := runBest(ctx, c, gets.n, "get", append(common, "--objects", strconv.Itoa(objects))...)
	if err != nil {
		return nil, fmt.Errorf("through the s3 gateway: %w", err)
	}
	cpu2, err := gw.cpuTime()
	if err != nil {
		return nil, err
	}
	rss, err := gw.peakRSS()
	if err != nil {
		return nil, err
	}

	// CPU per GiB: a put run moves what it measured; a get run also puts
	// the clips it reads first, which cost what the put runs' bytes did.
	const gib = 1 << 30
	putCPU := (cpu1 - cpu0).Seconds() / (float64(s3puts.bytes) / gib)
	prepared := int64(gets.n*objects) * gatewaySize
	getCPU := (cpu2 - cpu1).Seconds() / (float64(s3gets.bytes+prepared) / gib)
	readCPU := ((cpu2 - cpu1).Seconds() - putCPU*float64(prepared)/gib) / (float64(s3gets.bytes) / gib)

	put := loadRow(s3puts.best, "S3 gateway put", gatewaySize, gatewayConc)
	put.reference = fmt.Sprintf("%.1f MiB/s (native client, above)", puts.best.MiBPerSec)
	put.ratio = s3puts.best.MiBPerSec / puts.best.MiBPerSec
	put.note += s3puts.others + fmt.Sprintf("; gateway CPU %.2f s/GiB", putCPU)
	get := loadRow(s3gets.best, "S3 gateway get", gatewaySize, gatewayConc)
	get.reference = fmt.Sprintf("%.1f MiB/s (native client, above)", gets.best.MiBPerSec)
	get.ratio = s3gets.best.MiBPerSec / gets.best.MiBPerSec
	get.note += s3gets.others + fmt.Sprintf(", %s verified; gateway CPU %.2f s/GiB moved (%s read, %s put to read), ≈ %.2f s/GiB for the reads alone",
		bytesize.Human(s3gets.best.BytesVerified), getCPU, bytesize.Human(s3gets.bytes), bytesize.Human(prepared), readCPU)
	py, err := pythonRow(ctx, c, gw, key, o)
	if err != nil {
		return []row{put, get}, fmt.Errorf("python epoch: %w", err)
	}
	nativeRSS := max(puts.peakRSS, gets.peakRSS)
	mem := row{area: "memory", name: fmt.Sprintf("clipstore s3 during the S3 gateway puts and gets of %s × %d", bytesize.Human(gatewaySize), gatewayConc),
		measured: bytesize.Human(rss) + " peak RSS", reference: bytesize.Human(nativeRSS) + " (native clipstore bench of the same loads)",
		ratio: float64(rss) / float64(nativeRSS), note: "VmHWM of the gateway process; the native figure is the larger of the put and get processes'"}
	return []row{put, get, mem, py}, nil
}

// drainRows measures a drain: a 7th storage node joins and one of the first
// six is drained (its shards copied onto the nodes that hold no other shard
// of their clip) under the default move limits, while 8 MiB gets run; the
// gets' rate is compared with theirs just before.
func drainRows(ctx context.Context, c *benchCluster, o options, disk float64) ([]row, error) {
	if err := c.addStorage(ctx); err != nil {
		return nil, err
	}
	const size, conc = 8 << 20, 8
	// The data to move: clips kept in place, 1 GiB (256 MiB quick), of
	// which the drained node holds a sixth.
	dataset := int64(128)
	if o.quick {
		dataset = 32
	}
	if _, _, err := runLoad(ctx, c, "put", "--bucket", "bench", "--prefix", "drain/", "--size", strconv.FormatInt(size, 10),
		"--concurrency", strconv.Itoa(conc), "--count", strconv.FormatInt(dataset, 10), "--no-clean", "--json"); err != nil {
		return nil, err
	}
	// Shards to move: those meta places on s0, as the planner counts them.
	var plan struct {
		Nodes []struct {
			ID          string `json:"id"`
			PlacedBytes uint64 `json:"placed_bytes"`
		} `json:"nodes"`
	}
	var out bytes.Buffer
	if _, err := c.clipstore(ctx, nil, &out, "admin", "rebalance", "--dry-run", "--json"); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(out.Bytes(), &plan); err != nil {
		return nil, fmt.Errorf("rebalance --dry-run --json: %w", err)
	}
	var moving uint64
	for _, n := range plan.Nodes {
		if n.ID == "s0" {
			moving = n.PlacedBytes
		}
	}
	// The gets last about as long as the drain should at the default 100
	// MiB/s, before it and during it.
	d := max(2*time.Second, time.Duration(float64(moving)/(100<<20)*float64(time.Second)))
	getArgs := []string{"--bucket", "bench", "--size", strconv.FormatInt(size, 10), "--concurrency", strconv.Itoa(conc),
		"--duration", d.Round(100 * time.Millisecond).String(), "--json", "--objects", strconv.Itoa(4 * conc)}
	before, _, err := runLoad(ctx, c, "get", getArgs...)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	drained := make(chan error, 1)
	go func() {
		_, err := c.clipstore(ctx, nil, io.Discard, "admin", "node", "drain", "s0", "--wait")
		drained <- err
	}()
	during, _, err := runLoadNow(ctx, c, "get", getArgs...)
	if err != nil {
		return nil, err
	}
	if err := <-drained; err != nil {
		return nil, err
	}
	took := time.Since(start)
	rate := float64(moving) / took.Seconds()
	moveRow := row{area: "end to end", name: "drain one of 7 storage nodes, default move limits (8 at once, 4 from one node, 100 MiB/s)",
		measured:  fmt.Sprintf("%s (%s in %v)", mibps(rate), bytesize.Human(int64(moving)), took.Round(100*time.Millisecond)),
		reference: mibps(disk) + " (disk, fsync'd writes)", ratio: rate / disk,
		note: "shards copied from the draining node and verified; 8 MiB gets ran meanwhile"}
	getRow := loadRow(during, "get during the drain", size, conc)
	getRow.reference = fmt.Sprintf("%.1f MiB/s (the same gets just before)", before.MiBPerSec)
	getRow.ratio = during.MiBPerSec / before.MiBPerSec
	getRow.target, getRow.ok = atLeast(getRow.ratio, 0.80)
	return []row{moveRow, getRow}, nil
}

// loadRuns are n runs of one load: the best, and the totals of all.
type loadRuns struct {
	n       int
	best    loadgen.Result // the run with the highest ops/s
	others  string         // a note of every run's ops/s ("" when n is 1)
	bytes   int64          // moved by the measured operations of every run
	peakRSS int64          // the largest of the bench processes'
}

// runBest runs the load n times (each as runLoad does).
func runBest(ctx context.Context, c *benchCluster, n int, workload string, args ...string) (loadRuns, error) {
	runs := loadRuns{n: n}
	var all []string
	for i := range n {
		res, rss, err := runLoad(ctx, c, workload, args...)
		if err != nil {
			return runs, err
		}
		all = append(all, fmt.Sprintf("%.1f", res.OpsPerSec))
		if i == 0 || res.OpsPerSec > runs.best.OpsPerSec {
			runs.best = res
		}
		runs.bytes += res.Bytes
		runs.peakRSS = max(runs.peakRSS, rss)
	}
	if n > 1 {
		runs.others = fmt.Sprintf("; best of %d runs (ops/s: %s)", n, strings.Join(all, ", "))
	}
	return runs, nil
}

// runLoad runs `clipstore bench WORKLOAD args...`, once the cluster is
// idle, and returns the result of its operation and the process's peak
// RSS; any failed operation is an error.
func runLoad(ctx context.Context, c *benchCluster, workload string, args ...string) (loadgen.Result, int64, error) {
	if err := c.waitQuiet(ctx); err != nil {
		return loadgen.Result{}, 0, err
	}
	return runLoadNow(ctx, c, workload, args...)
}

// runLoadNow is runLoad without waiting for the cluster to be idle: a
// measurement made during background work.
func runLoadNow(ctx context.Context, c *benchCluster, workload string, args ...string) (loadgen.Result, int64, error) {
	var out bytes.Buffer
	rss, err := c.clipstore(ctx, nil, &out, append([]string{"bench", workload}, args...)...)
	var rep loadgen.Report
	if jerr := json.Unmarshal(out.Bytes(), &rep); jerr != nil {
		if err == nil {
			err = fmt.Errorf("clipstore bench %s: bad JSON (%v): %q", workload, jerr, out.String())
		}
		return loadgen.Result{}, rss, err
	}
	if err != nil {
		return loadgen.Result{}, rss, fmt.Errorf("%w: %v", err, rep.ErrorSamples)
	}
	for _, r := range rep.Results {
		if r.Op == workload {
			fmt.Fprintf(os.Stderr, "%s %s ×%d: %.1f MiB/s, %.1f ops/s, p50 %.1f ms, p99 %.1f ms\n", workload,
				bytesize.Human(r.Size), rep.Concurrency, r.MiBPerSec, r.OpsPerSec, r.Latency.P50, r.Latency.P99)
			return r, rss, nil
		}
	}
	return loadgen.Result{}, rss, fmt.Errorf("clipstore bench %s: no %q result in %q", workload, workload, out.String())
}

func loadRow(r loadgen.Result, op string, size int64, conc int) row {
	return row{area: "end to end", name: fmt.Sprintf("%s %s × %d", op, bytesize.Human(size), conc),
		measured: fmt.Sprintf("%.1f MiB/s, %.0f ops/s", r.MiBPerSec, r.OpsPerSec),
		note:     fmt.Sprintf("p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms", r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max)}
}

// memoryRows puts and gets one clip of size bytes through the CLI
// (stdin to stdout) and reports the peak RSS of the client processes and
// of the storage nodes.
func memoryRows(ctx context.Context, c *benchCluster, size int64) ([]row, error) {
	crc := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	src := io.TeeReader(newPatternReader(size), crc)
	start := time.Now()
	putRSS, err := c.clipstore(ctx, src, nil, "put", "bench/memory", "-")
	if err != nil {
		return nil, err
	}
	putTime := time.Since(start)
	got := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	counter := &countingWriter{w: got}
	start = time.Now()
	getRSS, err := c.clipstore(ctx, nil, counter, "get", "bench/memory", "-")
	if err != nil {
		return nil, err
	}
	getTime := time.Since(start)
	if counter.n != size || got.Sum32() != crc.Sum32() {
		return nil, fmt.Errorf("get of the %s clip returned %d bytes with CRC32C %08x, want %d bytes with %08x",
			bytesize.Human(size), counter.n, got.Sum32(), size, crc.Sum32())
	}
	var nodeRSS int64
	var worst string
	for _, p := range c.storage {
		rss, err := p.peakRSS()
		if err != nil {
			return nil, err
		}
		if rss > nodeRSS {
			nodeRSS, worst = rss, p.name
		}
	}
	if _, err := c.clipstore(ctx, nil, nil, "rm", "bench/memory"); err != nil {
		return nil, err
	}
	limitRow := func(name string, rss, limit int64, note string) row {
		ok := rss < limit
		return row{area: "memory", name: name, measured: bytesize.Human(rss) + " peak RSS", reference: bytesize.Human(limit) + " (limit)",
			ratio: float64(rss) / float64(limit), target: "< 1.00", ok: &ok, note: note}
	}
	clip := bytesize.Human(size)
	return []row{
		limitRow("clipstore put of a "+clip+" clip from stdin", putRSS, clientRSSLimit, fmt.Sprintf("%s in %v", mibps(float64(size)/putTime.Seconds()), putTime.Round(time.Millisecond))),
		limitRow("clipstore get of a "+clip+" clip to stdout", getRSS, clientRSSLimit, fmt.Sprintf("%s in %v, CRC32C checked", mibps(float64(size)/getTime.Seconds()), getTime.Round(time.Millisecond))),
		limitRow("storage node during both", nodeRSS, storageRSSLimit, "largest of the "+strconv.Itoa(len(c.storage))+" nodes' VmHWM ("+worst+")"),
	}, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.w.Write(p)
}

func mibps(bytesPerSec float64) string { return fmt.Sprintf("%.1f MiB/s", bytesPerSec/(1<<20)) }
