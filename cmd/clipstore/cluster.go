package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/bytesize"
	"github.com/spf13/cobra"
)

type clusterStatusOptions struct {
	*clientOptions
	jsonOut bool
}

func newClusterCommand(co *clientOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Inspect the cluster"}
	o := &clusterStatusOptions{clientOptions: co}
	status := &cobra.Command{
		Use:   "status",
		Short: "Meta members and leader, storage nodes, clip counts, repair and scrub progress",
		Long: `Show the meta members and leader, the storage nodes, the clip counts, the
repair queue and rate, and the storage nodes' scrubbing.
--json prints one object: leader, term, applied_index, buckets, clips,
degraded_clips, unrecoverable_clips (more shards lost than parity) and
unrecoverable_keys (bucket/key of the first 100), lost_shards (shard files
found gone behind their nodes' back: scrub, inventory, read), corrupt_shards
(found corrupt, likewise), repairs_in_flight, pending_deletes, clips_by_lost_shards
(index i: clips with i+1 lost shards), repair_limits (concurrency,
bytes_per_sec), repair (state: paused, idle, repairing or waiting;
queue_shards, queue_bytes, paused, since, repaired_shards, repaired_bytes,
bytes_per_sec over the last minute, eta_seconds or null when unknown),
repair_hold (null, or while the mass-down guard holds repair back: since,
until, nodes, threshold), rebalance (as clipstore admin rebalance --json prints
it), move_limits,
scrub (nodes_running, bytes_done and bytes_total of the passes in progress,
corrupt_found), members (id, raft_address, grpc_address, voter, leader) and
storage_nodes (id, address, zone, up, capacity, free, shards,
last_heartbeat, down_since and down_reason, admin_state (active, draining,
maintenance, decommissioned), maintenance_until, drain_dead, shards_to_move, drain_blocked,
lost and corrupt as above, failed_disks (path, reason),
scrub: running, passes_completed, bytes_done, bytes_total, shards_done,
shards_total, last_pass_end, last_pass_corrupt, last_pass_lost,
corrupt_found, interval_seconds with 0 for no background scrubbing; times
RFC 3339). Repair figures are the leader's since its
election; scrub figures each node's since it started.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, done, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			st, err := c.ClusterStatus(ctx)
			if err != nil {
				return err
			}
			if o.jsonOut {
				return writeJSON(cmd.OutOrStdout(), statusJSON(st))
			}
			return writeStatus(cmd.OutOrStdout(), st, time.Now())
		},
	}
	status.Flags().BoolVar(&o.jsonOut, "json", false, "print the status as JSON")
	cmd.AddCommand(status, newSettingsCommand(co))
	return cmd
}

type settingsOptions struct {
	*clientOptions
	bucket, etagMode string
	jsonOut          bool
}

func newSettingsCommand(co *clientOptions) *cobra.Command {
	o := &settingsOptions{clientOptions: co}
	cmd := &cobra.Command{
		Use:   "settings [--bucket BUCKET] [--etag-mode md5|fast|default]",
		Short: "Show or change the cluster's settings, or a bucket's",
		Long: `Show the cluster's settings, or a bucket's (--bucket) with what applies to it,
or change one. Settings live in meta, so every S3 gateway follows them (within
10 seconds of a change).

  --etag-mode md5   the S3 gateway's ETags are S3's: the MD5 of the bytes (of the
                    parts' MD5s, "-N", for multipart uploads). The default.
  --etag-mode fast  the ETag is the clip id, "<hex>-1" ("-N" for multipart):
                    unique per write, so If-Match still detects an overwrite,
                    and no MD5 is computed (a Content-MD5 sent is still checked).
  --etag-mode default  (on a bucket) back to the cluster's.`,
		Example: `  clipstore cluster settings
  clipstore cluster settings --etag-mode fast
  clipstore cluster settings --bucket raw --etag-mode md5`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, done, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			var info client.SettingsInfo
			if cmd.Flags().Changed("etag-mode") {
				mode := o.etagMode
				if mode == "default" {
					if o.bucket == "" {
						return errors.New("--etag-mode default is for a bucket: the cluster's default is md5")
					}
					mode = ""
				}
				info, err = c.SetETagMode(ctx, o.bucket, mode)
			} else {
				info, err = c.Settings(ctx, o.bucket)
			}
			if err != nil {
				return err
			}
			if o.jsonOut {
				out := map[string]any{"cluster": map[string]any{"etag_mode": info.Cluster.ETagMode},
					"effective": map[string]any{"etag_mode": info.Effective.ETagMode}}
				if o.bucket != "" {
					out["bucket"] = map[string]any{"name": o.bucket, "etag_mode": info.Bucket.ETagMode}
				}
				return writeJSON(cmd.OutOrStdout(), out)
			}
			mode := info.Effective.ETagMode
			switch {
			case o.bucket == "":
				if info.Cluster.ETagMode == "" {
					mode += " (the default)"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "etag-mode  %s\n", mode)
			case info.Bucket.ETagMode == "":
				fmt.Fprintf(cmd.OutOrStdout(), "bucket %s\netag-mode  %s (the cluster's)\n", o.bucket, mode)
			default:
				fmt.Fprintf(cmd.OutOrStdout(), "bucket %s\netag-mode  %s\n", o.bucket, mode)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.bucket, "bucket", "", "a bucket's settings instead of the cluster's")
	cmd.Flags().StringVar(&o.etagMode, "etag-mode", "", "set the S3 gateway's ETag mode: md5, fast, or (on a bucket) default")
	cmd.Flags().BoolVar(&o.jsonOut, "json", false, "print the settings as JSON")
	return cmd
}

// writeStatus prints the human form of the status, with ages as of now.
func writeStatus(w io.Writer, st *client.ClusterStatus, now time.Time) error {
	fmt.Fprintf(w, "leader %s, term %d, applied index %d\n", st.Leader, st.Term, st.AppliedIndex)
	fmt.Fprintf(w, "%d buckets, %d clips (%d degraded), %d repairs in flight, %d shard deletes pending\n",
		st.Buckets, st.Clips, st.DegradedClips, st.RepairsInFlight, st.PendingDeletes)
	if st.Datasets > 0 || st.DatasetOnlyClips > 0 {
		fmt.Fprintf(w, "%d datasets; they alone keep %d generations, %s\n", st.Datasets, st.DatasetOnlyClips, bytesize.Human(int64(st.DatasetOnlyBytes)))
	}
	for i, n := range st.ClipsByLostShards {
		if n > 0 {
			fmt.Fprintf(w, "  %d clips with %d shards missing or corrupt\n", n, i+1)
		}
	}
	if st.UnrecoverableClips > 0 {
		fmt.Fprintf(w, "  %d clips UNRECOVERABLE: more shards lost than parity; repair cannot rebuild them\n", st.UnrecoverableClips)
		for _, key := range st.UnrecoverableKeys {
			fmt.Fprintf(w, "    %s\n", key)
		}
		if n := st.UnrecoverableClips - uint64(len(st.UnrecoverableKeys)); n > 0 {
			fmt.Fprintf(w, "    ... and %d more\n", n)
		}
	}
	if l := st.Lost; l.Total() > 0 {
		fmt.Fprintf(w, "shard files lost behind their nodes' back: %d (found by scrub %d, inventory %d, reads %d), reported for repair\n",
			l.Total(), l.Scrub, l.Inventory, l.Read)
	}
	if c := st.Corrupt; c.Total() > 0 {
		fmt.Fprintf(w, "corrupt shards found: %d (by scrub %d, inventory %d, reads %d), reported for repair\n",
			c.Total(), c.Scrub, c.Inventory, c.Read)
	}
	for _, n := range st.Nodes {
		for _, d := range n.FailedDisks {
			fmt.Fprintf(w, "DISK FAILED: %s %s: %s\n", n.ID, d.Path, d.Reason)
		}
	}
	if h := st.RepairHold; h != nil {
		fmt.Fprintf(w, "REPAIR HELD: %d storage nodes went silent at once (the guard allows %d); their shards are not rebuilt before %s (in %s) unless they return\n",
			h.Nodes, h.Threshold, h.Until.UTC().Format(time.RFC3339), max(h.Until.Sub(now), 0).Round(time.Second))
	}
	writeRepair(w, st.Repair, now)
	writeMoves(w, st.Moves)
	fmt.Fprintf(w, "limits: repair %s; moves %s\n", limitsText(st.RepairLimits), limitsText(st.MoveLimits))
	if rb := st.Rebalance; rb != nil {
		switch {
		case rb.Running:
			fmt.Fprintf(w, "rebalance: running since %s (%s): spread %.1f points -> %.1f planned, %d moves (%s) in flight, %s moved\n",
				ago(now, rb.StartedAt), rb.StartedBy, 100*rb.SpreadBefore, 100*rb.SpreadAfter, rb.MovesInFlight,
				bytesize.Human(int64(rb.BytesInFlight)), bytesize.Human(int64(rb.MovedBytes)))
		case !rb.EndedAt.IsZero():
			fmt.Fprintf(w, "rebalance: idle; the last one ended %s: %s\n", ago(now, rb.EndedAt), rb.EndedWhy)
		default:
			fmt.Fprintf(w, "rebalance: idle\n")
		}
	}
	s := st.Scrub
	fmt.Fprintf(w, "scrub: %d of %d nodes scrubbing", s.Running, len(st.Nodes))
	if s.Running > 0 {
		fmt.Fprintf(w, ", %s of %s read (%s)", bytesize.Human(int64(s.BytesDone)), bytesize.Human(int64(s.BytesTotal)),
			percent(s.BytesDone, s.BytesTotal))
	}
	fmt.Fprintf(w, "; %d corrupt shards found\n\n", s.CorruptFound)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tRAFT\tGRPC\tROLE")
	for _, m := range st.Members {
		role := "follower"
		if m.Leader {
			role = "leader"
		} else if !m.Voter {
			role = "nonvoter"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.ID, m.RaftAddress, m.GRPCAddress, role)
	}
	fmt.Fprintln(tw, "\nSTORAGE NODE\tADDRESS\tZONE\tSTATE\tADMIN\tCAPACITY\tUSED\tSHARDS\tLAST HEARTBEAT\tSCRUB\tCORRUPT FOUND\tLOST FOUND")
	for _, n := range st.Nodes {
		state, seen, corrupt := "up", "-", "-"
		if !n.Up {
			state = "down"
			if n.DownReason != "" {
				state += " (" + n.DownReason + ")"
			}
		}
		if !n.LastHeartbeat.IsZero() {
			seen = ago(now, n.LastHeartbeat)
		}
		if n.Scrub != nil {
			corrupt = fmt.Sprint(n.Scrub.CorruptFound)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%d\n", n.ID, n.Address, n.Zone, state, adminCell(n, now),
			bytesize.Human(int64(n.Capacity)), usedCell(n), n.Shards, seen,
			scrubCell(n.Scrub, now), corrupt, n.Lost.Total())
	}
	return tw.Flush()
}

// writeRepair prints the repair queue line and the rate line.
func writeRepair(w io.Writer, r client.RepairStatus, now time.Time) {
	fmt.Fprintf(w, "repair queue: %d shards, %s\n", r.QueueShards, bytesize.Human(int64(r.QueueBytes)))
	fmt.Fprintf(w, "repair rate: ")
	switch state := repairState(r); state {
	case "paused":
		fmt.Fprintf(w, "paused (repair concurrency 0)")
	case "idle":
		fmt.Fprintf(w, "idle, nothing to repair")
	default:
		fmt.Fprintf(w, "%.2f MB/s over the last minute, ETA %s", r.BytesPerSec/1e6, eta(r))
	}
	if !r.Since.IsZero() {
		fmt.Fprintf(w, "; %d shards (%s) repaired since the leader's election %s",
			r.RepairedShards, bytesize.Human(int64(r.RepairedBytes)), ago(now, r.Since))
	}
	fmt.Fprintln(w)
}

// writeMoves prints the moves' line: what drains and the rebalance have
// left to move, the rate and the ETA; nothing when there is nothing to move
// and nothing moved.
func writeMoves(w io.Writer, m client.MoveStatus) {
	if m.QueueBytes == 0 && m.MovedShards == 0 {
		return
	}
	fmt.Fprintf(w, "moves: %s to move", bytesize.Human(int64(m.QueueBytes)))
	switch state := moveState(m); state {
	case "paused":
		fmt.Fprintf(w, ", paused (move concurrency 0)")
	case "moving":
		fmt.Fprintf(w, ", %.2f MB/s over the last minute, ETA %s", m.BytesPerSec/1e6, m.ETA.Round(time.Second))
	case "waiting":
		fmt.Fprintf(w, ", nothing moved in the last minute")
	}
	fmt.Fprintf(w, "; %d shards (%s) moved since the leader's election\n", m.MovedShards, bytesize.Human(int64(m.MovedBytes)))
}

// moveState names what moves are doing, as repairState does for repair.
func moveState(m client.MoveStatus) string {
	switch {
	case m.Paused:
		return "paused"
	case m.QueueBytes == 0:
		return "idle"
	case m.BytesPerSec > 0 && m.ETAKnown:
		return "moving"
	default:
		return "waiting"
	}
}

// usedCell is a node's used space, and its share of the capacity.
func usedCell(n client.StorageNode) string {
	used := n.Capacity - min(n.Free, n.Capacity)
	if n.Capacity == 0 {
		return bytesize.Human(int64(used))
	}
	return fmt.Sprintf("%s (%.0f%%)", bytesize.Human(int64(used)), 100*float64(used)/float64(n.Capacity))
}

// limitsText is one kind of limits in a few words.
func limitsText(l client.RepairLimits) string {
	rate := "no rate bound"
	if l.BytesPerSec > 0 {
		rate = bytesize.Human(int64(l.BytesPerSec)) + "/s"
	}
	if l.Concurrency == 0 {
		return "paused (concurrency 0), " + rate
	}
	return fmt.Sprintf("concurrency %d, %s", l.Concurrency, rate)
}

// repairState names what repair is doing: paused (concurrency 0), idle
// (nothing queued), repairing (shards rebuilt in the last minute) or
// waiting (shards queued, none rebuilt in the last minute).
func repairState(r client.RepairStatus) string {
	switch {
	case r.Paused:
		return "paused"
	case r.QueueShards == 0:
		return "idle"
	case r.BytesPerSec > 0:
		return "repairing"
	default:
		return "waiting"
	}
}

func eta(r client.RepairStatus) string {
	if !r.ETAKnown {
		return "unknown"
	}
	return r.ETA.Round(time.Second).String()
}

// scrubCell describes a node's scrubbing in one table cell.
func scrubCell(s *client.ScrubStatus, now time.Time) string {
	switch {
	case s == nil:
		return "-"
	case s.Running:
		return fmt.Sprintf("pass %d: %s of %s (%s)", s.PassesCompleted+1, bytesize.Human(int64(s.BytesDone)),
			bytesize.Human(int64(s.BytesTotal)), percent(s.BytesDone, s.BytesTotal))
	case s.PassesCompleted == 0 && s.Interval == 0:
		return "off"
	case s.PassesCompleted == 0:
		return "no pass yet"
	default:
		passes := "passes"
		if s.PassesCompleted == 1 {
			passes = "pass"
		}
		return fmt.Sprintf("idle, %d %s, last ended %s", s.PassesCompleted, passes, ago(now, s.LastPassEnd))
	}
}

func percent(done, total uint64) string {
	if total == 0 {
		return "100%"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(done)/float64(total))
}

func ago(now, t time.Time) string {
	return now.Sub(t).Round(100*time.Millisecond).String() + " ago"
}

// statusJSON is the stable JSON form of `cluster status --json`.
func statusJSON(st *client.ClusterStatus) map[string]any {
	members := []map[string]any{}
	for _, m := range st.Members {
		members = append(members, map[string]any{"id": m.ID, "raft_address": m.RaftAddress,
			"grpc_address": m.GRPCAddress, "voter": m.Voter, "leader": m.Leader})
	}
	nodes := []map[string]any{}
	for _, n := range st.Nodes {
		nodes = append(nodes, nodeJSON(n))
	}
	r := st.Repair
	repair := map[string]any{"state": repairState(r), "queue_shards": r.QueueShards, "queue_bytes": r.QueueBytes,
		"paused": r.Paused, "repaired_shards": r.RepairedShards, "repaired_bytes": r.RepairedBytes,
		"bytes_per_sec": r.BytesPerSec, "eta_seconds": nil}
	if r.ETAKnown {
		repair["eta_seconds"] = r.ETA.Seconds()
	}
	if !r.Since.IsZero() {
		repair["since"] = jsonTime(r.Since)
	}
	moves := map[string]any{"state": moveState(st.Moves), "queue_bytes": st.Moves.QueueBytes,
		"moved_shards": st.Moves.MovedShards, "moved_bytes": st.Moves.MovedBytes, "bytes_per_sec": st.Moves.BytesPerSec,
		"eta_seconds": nil}
	if st.Moves.ETAKnown {
		moves["eta_seconds"] = st.Moves.ETA.Seconds()
	}
	var hold any
	if h := st.RepairHold; h != nil {
		hold = map[string]any{"since": jsonTime(h.Since), "until": jsonTime(h.Until), "nodes": h.Nodes, "threshold": h.Threshold}
	}
	return map[string]any{"leader": st.Leader, "term": st.Term, "applied_index": st.AppliedIndex,
		"buckets": st.Buckets, "clips": st.Clips, "degraded_clips": st.DegradedClips, "unrecoverable_clips": st.UnrecoverableClips,
		"unrecoverable_keys": append([]string{}, st.UnrecoverableKeys...), "lost_shards": lossesJSON(st.Lost),
		"corrupt_shards":    lossesJSON(st.Corrupt),
		"repairs_in_flight": st.RepairsInFlight, "pending_deletes": st.PendingDeletes,
		"datasets": st.Datasets, "dataset_only_clips": st.DatasetOnlyClips, "dataset_only_bytes": st.DatasetOnlyBytes,
		"clips_by_lost_shards": st.ClipsByLostShards,
		"repair_limits":        map[string]any{"concurrency": st.RepairLimits.Concurrency, "bytes_per_sec": st.RepairLimits.BytesPerSec},
		"move_limits":          map[string]any{"concurrency": st.MoveLimits.Concurrency, "bytes_per_sec": st.MoveLimits.BytesPerSec},
		"repair":               repair,
		"moves":                moves,
		"repair_hold":          hold,
		"rebalance":            rebalanceOrNil(st.Rebalance),
		"scrub": map[string]any{"nodes_running": st.Scrub.Running, "bytes_done": st.Scrub.BytesDone,
			"bytes_total": st.Scrub.BytesTotal, "corrupt_found": st.Scrub.CorruptFound},
		"members": members, "storage_nodes": nodes}
}

func lossesJSON(l client.ShardLosses) map[string]any {
	return map[string]any{"scrub": l.Scrub, "inventory": l.Inventory, "read": l.Read}
}

func jsonTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// nodeJSON is the stable JSON form of a storage node, in cluster status and
// in the node commands.
func nodeJSON(n client.StorageNode) map[string]any {
	failed := []map[string]any{}
	for _, d := range n.FailedDisks {
		failed = append(failed, map[string]any{"path": d.Path, "reason": d.Reason})
	}
	node := map[string]any{"id": n.ID, "address": n.Address, "zone": n.Zone, "up": n.Up,
		"capacity": n.Capacity, "free": n.Free, "shards": n.Shards, "lost": lossesJSON(n.Lost),
		"corrupt": lossesJSON(n.Corrupt), "failed_disks": failed, "admin_state": cmp.Or(n.AdminState, client.AdminActive),
		"drain_dead": n.DrainDead, "shards_to_move": n.ShardsToMove, "bytes_to_move": n.BytesToMove,
		"drain_blocked": n.DrainBlocked}
	if !n.MaintenanceUntil.IsZero() {
		node["maintenance_until"] = jsonTime(n.MaintenanceUntil)
	}
	if !n.LastHeartbeat.IsZero() {
		node["last_heartbeat"] = jsonTime(n.LastHeartbeat)
	}
	if !n.DownSince.IsZero() {
		node["down_since"] = jsonTime(n.DownSince)
		node["down_reason"] = n.DownReason
	}
	if s := n.Scrub; s != nil {
		scrub := map[string]any{"running": s.Running, "passes_completed": s.PassesCompleted,
			"bytes_done": s.BytesDone, "bytes_total": s.BytesTotal, "shards_done": s.ShardsDone,
			"shards_total": s.ShardsTotal, "last_pass_corrupt": s.LastPassCorrupt, "last_pass_lost": s.LastPassLost,
			"corrupt_found":    s.CorruptFound,
			"interval_seconds": s.Interval.Seconds()}
		if !s.LastPassEnd.IsZero() {
			scrub["last_pass_end"] = jsonTime(s.LastPassEnd)
		}
		node["scrub"] = scrub
	}
	return node
}
