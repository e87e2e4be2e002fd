package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/bytesize"
	"github.com/spf13/cobra"
)

func newAdminCommand(co *clientOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "admin", Short: "Operate the cluster"}
	cmd.AddCommand(newFsckCommand(co), newRepairCommand(co), newMovesCommand(co), newNodeCommand(co), newRebalanceCommand(co), newKeysCommand(co), newCertsCommand())
	return cmd
}

type limitsOptions struct {
	*clientOptions
	concurrency int
	rate        string
}

func newRepairCommand(co *clientOptions) *cobra.Command {
	return newLimitsCommand(co, "repair", "Show or change the cluster-wide repair limits",
		`Show the repair limits in force, or change them at run time: --concurrency
bounds the repairs running at once across the cluster, --rate the shard bytes
planned per second (e.g. 100MiB; 0 means no bound). The change is replicated
and survives restarts.`, (*client.Client).SetRepairLimits)
}

func newMovesCommand(co *clientOptions) *cobra.Command {
	return newLimitsCommand(co, "moves", "Show or change the cluster-wide limits of moves (drains)",
		`Show the limits of moves in force, or change them at run time: moves (a
drain's) are planned after every repair of a lost shard; --concurrency bounds
those running at once across the cluster (0 pauses them), --rate the shard
bytes planned per second (e.g. 200MiB; 0 means no bound). The change is
replicated and survives restarts.`, (*client.Client).SetMoveLimits)
}

// newLimitsCommand shows or changes one kind of cluster-wide limits.
func newLimitsCommand(co *clientOptions, use, short, long string,
	set func(*client.Client, context.Context, *int, *uint64) (client.RepairLimits, error)) *cobra.Command {
	o := &limitsOptions{clientOptions: co}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var conc *int
			var rate *uint64
			if cmd.Flags().Changed("concurrency") {
				conc = &o.concurrency
			}
			if cmd.Flags().Changed("rate") {
				r, err := bytesize.Parse(strings.TrimSuffix(o.rate, "/s"))
				if err != nil {
					return fmt.Errorf("--rate %q: want bytes per second such as 100MiB", o.rate)
				}
				v := uint64(r)
				rate = &v
			}
			c, ctx, done, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			l, err := set(c, ctx, conc, rate)
			if err != nil {
				return err
			}
			bound := "no bound"
			if l.BytesPerSec > 0 {
				bound = bytesize.Human(int64(l.BytesPerSec)) + "/s"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s concurrency %d, rate %s\n", use, l.Concurrency, bound)
			return nil
		},
	}
	cmd.Flags().IntVar(&o.concurrency, "concurrency", 0, "running at once, cluster-wide (0 pauses them)")
	cmd.Flags().StringVar(&o.rate, "rate", "", "shard bytes per second, e.g. 100MiB (0: no bound)")
	return cmd
}

type fsckOptions struct {
	*clientOptions
	jsonOut, deep, repair bool
}

func newFsckCommand(co *clientOptions) *cobra.Command {
	o := &fsckOptions{clientOptions: co}
	cmd := &cobra.Command{
		Use:   "fsck",
		Short: "Check every clip record against the storage nodes",
		Long: `Check that every shard of every clip is on its node with the recorded length and
checksum (--deep re-reads and verifies every piece), and that no node keeps a shard
that no record references past its commit deadline. Changes nothing, unless
--repair: then every shard it finds missing from its node, corrupt or
mismatched is reported to meta at once and rebuilt, instead of waiting for its
node's next inventory or scrub pass. Exits non-zero if it finds any problem.
--json prints one object: buckets, clips, shards, nodes, queued (reported for
repair) and problems (kind: missing, corrupt, mismatch, unreachable or orphan;
bucket, key, clip_id, index, node, shard_id, detail, recoverable, queued).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, done, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			rep, err := c.Fsck(ctx, &client.FsckOptions{Deep: o.deep, Repair: o.repair})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.jsonOut {
				if err := writeJSON(w, rep); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(w, "%d buckets, %d clips (and %d generations only datasets keep), %d shards on %d live nodes checked: %d problems\n",
					rep.Buckets, rep.Clips, rep.Pinned, rep.Shards, rep.Nodes, len(rep.Problems))
				for _, p := range rep.Problems {
					where := p.Bucket + "/" + p.Key
					if p.Key == "" {
						where = "clip " + p.ClipID
					}
					note := ""
					switch {
					case p.Queued:
						note = " [queued for repair]"
					case p.Kind != client.ProblemOrphan && !p.Recoverable:
						note = " [UNRECOVERABLE]"
					}
					fmt.Fprintf(w, "%-11s %s shard %d on %s (%s): %s%s\n", p.Kind, where, p.Index, p.Node, p.ShardID, p.Detail, note)
				}
				if o.repair {
					fmt.Fprintf(w, "%d shards queued for repair\n", rep.Queued)
				}
			}
			if len(rep.Problems) > 0 {
				return fmt.Errorf("fsck found %d problems", len(rep.Problems))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&o.jsonOut, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&o.deep, "deep", false, "re-read and verify every piece")
	cmd.Flags().BoolVar(&o.repair, "repair", false, "report every missing, corrupt or mismatched shard found to meta for repair now")
	return cmd
}
