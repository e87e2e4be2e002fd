package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/clipstore/clipstore/client"
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
		Short: "Meta members and leader, storage nodes, clip counts",
		Long: `Show the meta members and leader, the storage nodes and the clip counts.
--json prints one object: leader, term, applied_index, buckets, clips,
degraded_clips, repairs_in_flight, pending_deletes, clips_by_lost_shards
(index i: clips with i+1 lost shards), repair_limits (concurrency,
bytes_per_sec), members (id,
raft_address, grpc_address, voter, leader) and storage_nodes (id, address,
zone, up, capacity, free, shards, last_heartbeat, down_since; times RFC 3339).`,
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
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "leader %s, term %d, applied index %d\n", st.Leader, st.Term, st.AppliedIndex)
			fmt.Fprintf(w, "%d buckets, %d clips (%d degraded), %d repairs in flight, %d shard deletes pending\n",
				st.Buckets, st.Clips, st.DegradedClips, st.RepairsInFlight, st.PendingDeletes)
			for i, n := range st.ClipsByLostShards {
				if n > 0 {
					fmt.Fprintf(w, "  %d clips with %d shards missing or corrupt\n", n, i+1)
				}
			}
			fmt.Fprintln(w)
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
			fmt.Fprintln(tw, "\nSTORAGE NODE\tADDRESS\tZONE\tSTATE\tCAPACITY\tUSED\tSHARDS\tLAST HEARTBEAT")
			for _, n := range st.Nodes {
				state, seen := "up", "-"
				if !n.Up {
					state = "down"
				}
				if !n.LastHeartbeat.IsZero() {
					seen = time.Since(n.LastHeartbeat).Round(100*time.Millisecond).String() + " ago"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", n.ID, n.Address, n.Zone, state,
					humanBytes(int64(n.Capacity)), humanBytes(int64(n.Capacity-min(n.Free, n.Capacity))), n.Shards, seen)
			}
			return tw.Flush()
		},
	}
	status.Flags().BoolVar(&o.jsonOut, "json", false, "print the status as JSON")
	cmd.AddCommand(status)
	return cmd
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
		node := map[string]any{"id": n.ID, "address": n.Address, "zone": n.Zone, "up": n.Up,
			"capacity": n.Capacity, "free": n.Free, "shards": n.Shards}
		if !n.LastHeartbeat.IsZero() {
			node["last_heartbeat"] = n.LastHeartbeat.UTC().Format(time.RFC3339Nano)
		}
		if !n.DownSince.IsZero() {
			node["down_since"] = n.DownSince.UTC().Format(time.RFC3339Nano)
		}
		nodes = append(nodes, node)
	}
	return map[string]any{"leader": st.Leader, "term": st.Term, "applied_index": st.AppliedIndex,
		"buckets": st.Buckets, "clips": st.Clips, "degraded_clips": st.DegradedClips,
		"repairs_in_flight": st.RepairsInFlight, "pending_deletes": st.PendingDeletes,
		"clips_by_lost_shards": st.ClipsByLostShards,
		"repair_limits":        map[string]any{"concurrency": st.RepairLimits.Concurrency, "bytes_per_sec": st.RepairLimits.BytesPerSec},
		"members":              members, "storage_nodes": nodes}
}
