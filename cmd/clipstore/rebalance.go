package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/bytesize"
	"github.com/spf13/cobra"
)

type rebalanceOptions struct {
	*clientOptions
	threshold string
	dryRun    bool
	jsonOut   bool
}

func newRebalanceCommand(co *clientOptions) *cobra.Command {
	o := &rebalanceOptions{clientOptions: co}
	cmd := &cobra.Command{
		Use:   "rebalance [status|start|stop]",
		Short: "Move shards toward an even fill of the storage nodes",
		Long: `A rebalance moves shards (copies, then deletes) until every storage node's used
fraction (the shard bytes meta places on it over its capacity) is within
--threshold of the cluster's mean, moving little more than the excess over the
mean, never two shards of a clip onto one node nor a clip's zone spread made
worse. It runs after repairs and drains, within the move limits (clipstore
admin moves), starts by itself when a node joins or changes capacity, and ends
by itself, saying why. status (the default) shows it and the latest plan;
--dry-run plans and moves nothing: bytes in and out per node, the spread
before and after.`,
		Args:      cobra.MaximumNArgs(1),
		ValidArgs: []string{"status", "start", "stop"},
		RunE: func(cmd *cobra.Command, args []string) error {
			action := client.RebalanceStatusOnly
			verb := "status"
			if len(args) == 1 {
				verb = args[0]
			}
			switch verb {
			case "status":
			case "start":
				action = client.RebalanceStart
			case "stop":
				action = client.RebalanceStop
			default:
				return fmt.Errorf("unknown rebalance action %q: want status, start or stop", verb)
			}
			if o.dryRun {
				if verb != "status" && verb != "start" {
					return fmt.Errorf("--dry-run plans a start; it does not go with %s", verb)
				}
				action = client.RebalanceDryRun
			}
			threshold, err := parseThreshold(o.threshold)
			if err != nil {
				return err
			}
			c, ctx, done, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			st, err := c.Rebalance(ctx, action, threshold)
			if err != nil {
				return err
			}
			if o.jsonOut {
				return writeJSON(cmd.OutOrStdout(), rebalanceJSON(st))
			}
			return writeRebalance(cmd.OutOrStdout(), st, o.dryRun, time.Now())
		},
	}
	cmd.Flags().StringVar(&o.threshold, "threshold", "", "band around the mean fill, e.g. 5% or 0.05 (default: the cluster's, 5%)")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "plan and print the moves, move nothing")
	cmd.Flags().BoolVar(&o.jsonOut, "json", false, "print the status as JSON")
	return cmd
}

// parseThreshold reads 5% or 0.05; "" is 0 (the cluster's default).
func parseThreshold(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	pct := strings.HasSuffix(s, "%")
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if pct {
		v /= 100
	}
	if err != nil || v <= 0 || v > 1 {
		return 0, fmt.Errorf("--threshold %q: want a share of capacity such as 5%% or 0.05", s)
	}
	return v, nil
}

func writeRebalance(w io.Writer, st *client.RebalanceStatus, dry bool, now time.Time) error {
	switch {
	case dry:
		fmt.Fprintf(w, "dry run (nothing moves): ")
	case st.Running:
		fmt.Fprintf(w, "rebalance running since %s (%s), threshold %.1f%%: ", ago(now, st.StartedAt), st.StartedBy, 100*st.Threshold)
	case !st.EndedAt.IsZero():
		fmt.Fprintf(w, "rebalance idle; the last one ended %s: %s; ", ago(now, st.EndedAt), st.EndedWhy)
	default:
		fmt.Fprintf(w, "rebalance idle; ")
	}
	fmt.Fprintf(w, "mean fill %.1f%%, spread %.1f points -> %.1f after the plan; %d moves, %s planned (excess over the mean %s)",
		100*st.Mean, 100*st.SpreadBefore, 100*st.SpreadAfter, st.PlannedMoves, bytesize.Human(int64(st.PlannedBytes)),
		bytesize.Human(int64(st.ExcessBytes)))
	if st.Running {
		fmt.Fprintf(w, "; %d moves (%s) in flight, %s moved", st.MovesInFlight, bytesize.Human(int64(st.BytesInFlight)),
			bytesize.Human(int64(st.MovedBytes)))
	}
	fmt.Fprintln(w)
	if len(st.Nodes) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nNODE\tCAPACITY\tPLACED\tUSED\tIN\tOUT\tUSED AFTER")
	for _, n := range st.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f%%\t%s\t%s\t%.1f%%\n", n.ID, bytesize.Human(int64(n.Capacity)), bytesize.Human(int64(n.PlacedBytes)),
			100*n.UsedBefore, bytesize.Human(int64(n.BytesIn)), bytesize.Human(int64(n.BytesOut)), 100*n.UsedAfter)
	}
	return tw.Flush()
}

func rebalanceOrNil(st *client.RebalanceStatus) any {
	if st == nil {
		return nil
	}
	return rebalanceJSON(st)
}

func rebalanceJSON(st *client.RebalanceStatus) map[string]any {
	nodes := []map[string]any{}
	for _, n := range st.Nodes {
		nodes = append(nodes, map[string]any{"id": n.ID, "capacity": n.Capacity, "placed_bytes": n.PlacedBytes,
			"bytes_in": n.BytesIn, "bytes_out": n.BytesOut, "used_before": n.UsedBefore, "used_after": n.UsedAfter})
	}
	out := map[string]any{"running": st.Running, "threshold": st.Threshold, "started_by": st.StartedBy, "ended_why": st.EndedWhy,
		"mean": st.Mean, "spread_before": st.SpreadBefore, "spread_after": st.SpreadAfter, "planned_moves": st.PlannedMoves,
		"planned_bytes": st.PlannedBytes, "excess_bytes": st.ExcessBytes, "moves_in_flight": st.MovesInFlight,
		"bytes_in_flight": st.BytesInFlight, "moved_bytes": st.MovedBytes, "nodes": nodes}
	if !st.StartedAt.IsZero() {
		out["started_at"] = jsonTime(st.StartedAt)
	}
	if !st.EndedAt.IsZero() {
		out["ended_at"] = jsonTime(st.EndedAt)
	}
	return out
}
