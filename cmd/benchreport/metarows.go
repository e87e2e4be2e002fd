package main

import (
	"fmt"
	"strconv"
)

// metaRows runs meta's benchmarks: CommitPut/s on a 3-member cluster
// beside 4 KiB append+fsync/s on the same disk and beside hashicorp/raft
// by itself (an FSM that does nothing, no gRPC), GetClip linearizable
// beside stale, and the bbolt cost and listing rate of a big bucket.
func metaRows(o options) ([]row, error) {
	res, err := goBench("CommitPut|RaftApply|GetClip", o.commits, 1, []string{"./meta/"})
	if err != nil {
		return nil, err
	}
	var rows []row
	fsync, ok := res["BenchmarkCommitPut/reference=fsync-4KiB"]
	if !ok {
		return nil, fmt.Errorf("no CommitPut fsync reference in the output")
	}
	bare, ok := res["BenchmarkRaftApply/clients=64"]
	if !ok {
		return nil, fmt.Errorf("no RaftApply reference in the output")
	}
	rows = append(rows, row{area: "reference", name: "hashicorp/raft alone: Apply, 3 members, FSM doing nothing, 64 clients",
		measured: fmt.Sprintf("%.0f applies/s", bare.metrics["ops/s"]),
		note:     fmt.Sprintf("p50 %.2f ms, p99 %.2f ms; meta's Raft configuration, raft-boltdb, TCP, no gRPC", bare.metrics["p50-ms"], bare.metrics["p99-ms"])})
	for _, clients := range []int{1, 16, 64} {
		r, ok := res["BenchmarkCommitPut/clients="+strconv.Itoa(clients)]
		if !ok {
			return nil, fmt.Errorf("no CommitPut result for %d clients", clients)
		}
		rw := row{area: "meta", name: fmt.Sprintf("CommitPut, 3 members, %d clients", clients),
			measured: fmt.Sprintf("%.0f commits/s", r.metrics["ops/s"]), reference: fmt.Sprintf("%.0f fsyncs/s (4 KiB append+fsync)", fsync.metrics["ops/s"]),
			ratio: r.metrics["ops/s"] / fsync.metrics["ops/s"],
			note:  fmt.Sprintf("p50 %.2f ms, p99 %.2f ms, %.1f entries/batch", r.metrics["p50-ms"], r.metrics["p99-ms"], r.metrics["entries/batch"])}
		if clients == 64 {
			met := r.metrics["ops/s"] >= 10000
			rw.target, rw.ok = "≥ 10,000 commits/s", &met
			rw.note += fmt.Sprintf("; %.2f of raft alone", r.metrics["ops/s"]/bare.metrics["ops/s"])
		}
		rows = append(rows, rw)
	}
	stale, ok := res["BenchmarkGetClip/follower/stale"]
	if !ok {
		return nil, fmt.Errorf("no stale GetClip result in the output")
	}
	for _, name := range []string{"leader/linearizable", "follower/linearizable"} {
		r, ok := res["BenchmarkGetClip/"+name]
		if !ok {
			return nil, fmt.Errorf("no GetClip %s result in the output", name)
		}
		rows = append(rows, row{area: "meta", name: "GetClip " + name + ", 16 readers",
			measured: fmt.Sprintf("%.0f gets/s", r.metrics["ops/s"]), reference: fmt.Sprintf("%.0f gets/s (stale, follower)", stale.metrics["ops/s"]),
			ratio: r.metrics["ops/s"] / stale.metrics["ops/s"], note: fmt.Sprintf("p50 %.2f ms, p99 %.2f ms", r.metrics["p50-ms"], r.metrics["p99-ms"])})
	}
	res, err = goBench("BytesPerClip|ListClips", "1x", 1, []string{"./meta/"}, "-args", "-bench.clips="+strconv.Itoa(o.clips))
	if err != nil {
		return nil, err
	}
	if r, ok := res["BenchmarkBytesPerClip"]; ok {
		rows = append(rows, row{area: "meta", name: "bbolt bytes per 4+2 clip record (100,000 clips)",
			measured: fmt.Sprintf("%.0f B", r.metrics["bytes/clip"]), reference: "no reference",
			note: fmt.Sprintf("%.0f B in use in pages", r.metrics["inuse-bytes/clip"])})
	}
	if r, ok := res["BenchmarkListClips"]; ok {
		rows = append(rows, row{area: "meta", name: fmt.Sprintf("ListClips over %d clips, 1000 a page", o.clips),
			measured: fmt.Sprintf("%.0f entries/s", r.metrics["entries/s"]), reference: "no reference"})
	}
	// Each query 20 times over one fill of the bucket.
	if res, err = goBench("Find", "20x", 1, []string{"./meta/"}, "-args", "-bench.clips="+strconv.Itoa(o.clips)); err != nil {
		return nil, err
	}
	for _, q := range []string{"vehicle-day", "vehicle-collision", "camera-hour", "rain-collision", "3-vehicles-rear-rain"} {
		r, ok := res["BenchmarkFind/"+q]
		if !ok {
			continue
		}
		read := r.metrics["entries-read/query"]
		rows = append(rows, row{area: "meta", name: fmt.Sprintf("Find %s over %d clips", q, o.clips),
			measured:  fmt.Sprintf("%.2f ms/query, %.0f clips", r.nsPerOp/1e6, r.metrics["clips/query"]),
			reference: fmt.Sprintf("%d clips in the bucket", o.clips),
			note:      fmt.Sprintf("%.0f index entries read a query, %.4f%% of the bucket's clips", read, 100*read/float64(o.clips))})
	}
	return rows, nil
}

// rebuildRows runs the rebuild benchmarks: a 7-node in-process cluster
// loses a node for good and rebuilds its shards elsewhere, with readers
// meanwhile (the target's row) and alone (its rate and CPU).
func rebuildRows() ([]row, error) {
	res, err := goBench("^BenchmarkRebuild", "1x", 1, []string{"./internal/devcluster/"})
	if err != nil {
		return nil, err
	}
	r, ok := res["BenchmarkRebuild"]
	alone, aloneOK := res["BenchmarkRebuildAlone"]
	if !ok || !aloneOK {
		return nil, fmt.Errorf("no BenchmarkRebuild or BenchmarkRebuildAlone result in the output")
	}
	return []row{
		{area: "durability", name: "rebuild of a lost node's shards (4+2, 7 nodes, 4 readers meanwhile), from the moment it is marked down",
			measured: fmt.Sprintf("%.1f MB/s", r.metrics["rebuild-MB/s"]), reference: fmt.Sprintf("%.1f MB/s (fsync'd file write)", r.metrics["disk-write-MB/s"]),
			ratio: r.metrics["rebuild/disk"], note: fmt.Sprintf("gets during the rebuild at %.2f× their rate before; marked down %.2f s after it stopped",
				r.metrics["get-during/before"], r.metrics["detection-s"])},
		{area: "durability", name: "the same rebuild alone (no readers, 4× the clips)",
			measured: fmt.Sprintf("%.1f MB/s", alone.metrics["rebuild-MB/s"]), reference: fmt.Sprintf("%.1f MB/s (fsync'd file write)", alone.metrics["disk-write-MB/s"]),
			ratio: alone.metrics["rebuild/disk"], note: fmt.Sprintf("%.2f CPU-s per GiB rebuilt (every node and meta, in one process), %.2f cores busy",
				alone.metrics["CPU-s/GiB"], alone.metrics["cores"])},
	}, nil
}
