package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
)

// sampleStatus is a cluster repairing 40 queued shards at 2 MB/s, with one
// node part way through a scrub pass, one idle after two passes, one that
// has not reported, one that scrubs only on demand and one yet to start.
func sampleStatus(now time.Time) *client.ClusterStatus {
	return &client.ClusterStatus{Leader: "m0", Term: 3, AppliedIndex: 120, Buckets: 1, Clips: 50, DegradedClips: 20,
		RepairsInFlight: 4, ClipsByLostShards: []uint64{20},
		RepairLimits: client.RepairLimits{Concurrency: 16, BytesPerSec: 200 << 20},
		MoveLimits:   client.RepairLimits{Concurrency: 0, BytesPerSec: 100 << 20},
		Repair: client.RepairStatus{QueueShards: 40, QueueBytes: 10 << 20, Since: now.Add(-5 * time.Minute),
			RepairedShards: 60, RepairedBytes: 15 << 20, BytesPerSec: 2e6, ETA: 5243 * time.Millisecond, ETAKnown: true},
		Scrub:   client.ScrubSummary{Running: 1, BytesDone: 1 << 20, BytesTotal: 4 << 20, CorruptFound: 7},
		Members: []client.Member{{ID: "m0", RaftAddress: "127.0.0.1:7401", GRPCAddress: "127.0.0.1:7400", Voter: true, Leader: true}},
		Nodes: []client.StorageNode{
			{ID: "s0", Address: "127.0.0.1:7500", Up: true, Capacity: 100 << 30, Free: 50 << 30, Shards: 10,
				LastHeartbeat: now.Add(-time.Second), Scrub: &client.ScrubStatus{Running: true, PassesCompleted: 2,
					BytesDone: 1 << 20, BytesTotal: 4 << 20, CorruptFound: 5}},
			{ID: "s1", Address: "127.0.0.1:7501", Up: true, Capacity: 100 << 30, Free: 50 << 30, Shards: 10,
				LastHeartbeat: now.Add(-time.Second), Scrub: &client.ScrubStatus{PassesCompleted: 2, BytesDone: 3 << 20,
					BytesTotal: 3 << 20, CorruptFound: 2, LastPassEnd: now.Add(-time.Minute)}},
			{ID: "s2", Address: "127.0.0.1:7502"},
			{ID: "s3", Address: "127.0.0.1:7503", Scrub: &client.ScrubStatus{}},
			{ID: "s4", Address: "127.0.0.1:7504", Scrub: &client.ScrubStatus{Interval: time.Hour}},
		}}
}

func TestClusterStatusText(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name   string
		change func(*client.ClusterStatus)
		want   []string
	}{
		{"repairing", func(*client.ClusterStatus) {}, []string{
			"repair queue: 40 shards, 10.0 MiB",
			"limits: repair concurrency 16, 200.0 MiB/s; moves paused (concurrency 0), 100.0 MiB/s",
			"repair rate: 2.00 MB/s over the last minute, ETA 5s; 60 shards (15.0 MiB) repaired since the leader's election 5m0s ago",
			"scrub: 1 of 5 nodes scrubbing, 1.0 MiB of 4.0 MiB read (25%); 7 corrupt shards found",
			"pass 3: 1.0 MiB of 4.0 MiB (25%)",
			"idle, 2 passes, last ended 1m0s ago",
			"  off  ",
			"no pass yet",
		}},
		{"paused", func(st *client.ClusterStatus) { st.Repair.Paused = true }, []string{"repair rate: paused (repair concurrency 0)"}},
		{"idle", func(st *client.ClusterStatus) { st.Repair.QueueShards, st.Repair.QueueBytes = 0, 0 }, []string{
			"repair queue: 0 shards, 0 B", "repair rate: idle, nothing to repair; 60 shards"}},
		{"waiting", func(st *client.ClusterStatus) { st.Repair.BytesPerSec, st.Repair.ETAKnown = 0, false }, []string{
			"repair rate: 0.00 MB/s over the last minute, ETA unknown"}},
		{"no scrub running", func(st *client.ClusterStatus) { st.Scrub = client.ScrubSummary{CorruptFound: 7} }, []string{
			"scrub: 0 of 5 nodes scrubbing; 7 corrupt shards found"}},
		{"unrecoverable", func(st *client.ClusterStatus) { st.UnrecoverableClips = 3 }, []string{
			"3 clips UNRECOVERABLE: more shards lost than parity"}},
		{"repair held", func(st *client.ClusterStatus) {
			st.RepairHold = &client.RepairHold{Since: now.Add(-time.Minute), Until: now.Add(4 * time.Minute), Nodes: 4, Threshold: 3}
		}, []string{"REPAIR HELD: 4 storage nodes went silent at once (the guard allows 3); their shards are not rebuilt before " +
			now.Add(4*time.Minute).UTC().Format(time.RFC3339) + " (in 4m0s) unless they return"}},
		{"down with a reason", func(st *client.ClusterStatus) {
			st.Nodes[2].DownSince, st.Nodes[2].DownReason = now.Add(-time.Minute), "no heartbeat for 10s"
		}, []string{"down (no heartbeat for 10s)"}},
		{"admin states", func(st *client.ClusterStatus) {
			st.Nodes[0].AdminState, st.Nodes[0].MaintenanceUntil = client.AdminMaintenance, now.Add(30*time.Minute)
			st.Nodes[1].AdminState, st.Nodes[1].DrainDead = client.AdminDraining, true
			st.Nodes[2].AdminState = client.AdminDecommissioned
		}, []string{"maintenance until " + now.Add(30*time.Minute).UTC().Format(time.RFC3339) + " (in 30m0s)",
			"draining (dead: its shards are rebuilt elsewhere)", "decommissioned", "  active  "}},
		{"draining", func(st *client.ClusterStatus) {
			st.Nodes[1].AdminState, st.Nodes[1].ShardsToMove, st.Nodes[1].BytesToMove = client.AdminDraining, 12, 24<<20
			st.Moves = client.MoveStatus{QueueBytes: 24 << 20, MovedShards: 3, MovedBytes: 6 << 20, BytesPerSec: 4e6,
				ETA: 6300 * time.Millisecond, ETAKnown: true}
		}, []string{"draining, 12 shards (24.0 MiB) to move",
			"moves: 24.0 MiB to move, 4.00 MB/s over the last minute, ETA 6s; 3 shards (6.0 MiB) moved since the leader's election"}},
		{"moves paused", func(st *client.ClusterStatus) {
			st.Moves = client.MoveStatus{QueueBytes: 24 << 20, Paused: true}
		}, []string{"moves: 24.0 MiB to move, paused (move concurrency 0); 0 shards (0 B) moved"}},
		{"rebalance running", func(st *client.ClusterStatus) {
			st.Rebalance = &client.RebalanceStatus{Running: true, StartedAt: now.Add(-time.Minute), StartedBy: "storage node s7 joined",
				SpreadBefore: 0.3, SpreadAfter: 0.04, MovesInFlight: 3, BytesInFlight: 3 << 20, MovedBytes: 7 << 20}
		}, []string{"rebalance: running since 1m0s ago (storage node s7 joined): spread 30.0 points -> 4.0 planned, 3 moves (3.0 MiB) in flight, 7.0 MiB moved",
			"50.0 GiB (50%)"}},
		{"rebalance ended", func(st *client.ClusterStatus) {
			st.Rebalance = &client.RebalanceStatus{EndedAt: now.Add(-time.Hour), EndedWhy: "balanced: every node within 5.0 points of the mean (40.0%)"}
		}, []string{"rebalance: idle; the last one ended 1h0m0s ago: balanced: every node within 5.0 points"}},
		{"lost and corrupt found", func(st *client.ClusterStatus) {
			st.Lost, st.Corrupt = client.ShardLosses{Scrub: 1, Inventory: 2}, client.ShardLosses{Scrub: 3, Read: 1}
		}, []string{"shard files lost behind their nodes' back: 3 (found by scrub 1, inventory 2, reads 0)",
			"corrupt shards found: 4 (by scrub 3, inventory 0, reads 1)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := sampleStatus(now)
			c.change(st)
			var out bytes.Buffer
			if err := writeStatus(&out, st, now); err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestClusterStatusJSON(t *testing.T) {
	now := time.Now()
	st := sampleStatus(now)
	st.Repair.BytesPerSec, st.Repair.ETAKnown = 0, false
	st.UnrecoverableClips = 2
	var out bytes.Buffer
	if err := writeJSON(&out, statusJSON(st)); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Leader            string   `json:"leader"`
		RepairsInFlight   uint64   `json:"repairs_in_flight"`
		ClipsByLostShards []uint64 `json:"clips_by_lost_shards"`
		Unrecoverable     uint64   `json:"unrecoverable_clips"`
		Repair            struct {
			State          string   `json:"state"`
			QueueShards    uint64   `json:"queue_shards"`
			QueueBytes     uint64   `json:"queue_bytes"`
			RepairedBytes  uint64   `json:"repaired_bytes"`
			BytesPerSec    float64  `json:"bytes_per_sec"`
			ETASeconds     *float64 `json:"eta_seconds"`
			Since          string   `json:"since"`
			RepairedShards uint64   `json:"repaired_shards"`
		} `json:"repair"`
		Scrub struct {
			NodesRunning int    `json:"nodes_running"`
			BytesDone    uint64 `json:"bytes_done"`
			BytesTotal   uint64 `json:"bytes_total"`
			CorruptFound uint64 `json:"corrupt_found"`
		} `json:"scrub"`
		StorageNodes []struct {
			ID    string `json:"id"`
			Scrub *struct {
				Running      bool    `json:"running"`
				Passes       uint64  `json:"passes_completed"`
				BytesDone    uint64  `json:"bytes_done"`
				CorruptFound uint64  `json:"corrupt_found"`
				LastPassEnd  string  `json:"last_pass_end"`
				Interval     float64 `json:"interval_seconds"`
			} `json:"scrub"`
		} `json:"storage_nodes"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	r := got.Repair
	if got.Leader != "m0" || got.RepairsInFlight != 4 || len(got.ClipsByLostShards) != 1 {
		t.Errorf("existing keys changed: %s", out.String())
	}
	if got.Unrecoverable != 2 {
		t.Errorf("unrecoverable_clips %d, want 2", got.Unrecoverable)
	}
	if r.State != "waiting" || r.QueueShards != 40 || r.QueueBytes != 10<<20 || r.RepairedShards != 60 ||
		r.RepairedBytes != 15<<20 || r.BytesPerSec != 0 || r.ETASeconds != nil || r.Since == "" {
		t.Errorf("repair %+v", r)
	}
	if s := got.Scrub; s.NodesRunning != 1 || s.BytesDone != 1<<20 || s.BytesTotal != 4<<20 || s.CorruptFound != 7 {
		t.Errorf("scrub %+v", s)
	}
	nodes := got.StorageNodes
	if len(nodes) != 5 || nodes[0].Scrub == nil || !nodes[0].Scrub.Running || nodes[0].Scrub.CorruptFound != 5 ||
		nodes[1].Scrub == nil || nodes[1].Scrub.LastPassEnd == "" || nodes[1].Scrub.Passes != 2 || nodes[2].Scrub != nil ||
		nodes[4].Scrub == nil || nodes[4].Scrub.Interval != 3600 {
		t.Errorf("storage nodes' scrub: %s", out.String())
	}
	st.Repair.BytesPerSec, st.Repair.ETAKnown = 2e6, true
	if eta := statusJSON(st)["repair"].(map[string]any)["eta_seconds"]; eta != st.Repair.ETA.Seconds() {
		t.Errorf("eta_seconds %v, want %v", eta, st.Repair.ETA.Seconds())
	}
}
