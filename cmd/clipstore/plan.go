package main

import (
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/bytesize"
	"github.com/spf13/cobra"
)

type planOptions struct {
	*clientOptions
	o       client.PlanOptions
	summary bool
	jsonOut bool
}

func newPlanCommand(co *clientOptions) *cobra.Command {
	o := &planOptions{clientOptions: co}
	cmd := &cobra.Command{
		Use:   "plan DATASET --seed S --epoch E --world W --rank R [--from OFFSET]",
		Short: "Print a rank's share of an epoch of a dataset, in reading order",
		Long: `An epoch plan is a pure function of the dataset, the seed, the epoch, the
world size and the rank (algorithm version 1): every rank of a job computes
the same global order, and takes every W-th clip of it from its rank on.
--from resumes at a checkpoint (the global offset every rank has passed),
also at another world size; --pad or --drop-last give every rank the same
count. Printed: position (in the global order), generation, size, key; or
with --json one object per line. --summary prints the share's size and the
spread over the ranks only.`,
		Example: `  clipstore plan rain-front-v1 --seed 7 --epoch 0 --world 64 --rank 3
  clipstore plan rain-front-v1 --seed 7 --epoch 0 --world 32 --rank 3 --from 12800 --drop-last --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("world") {
				return errors.New("--world is required (the number of ranks)")
			}
			c, ctx, done, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			info, err := c.PlanSummary(ctx, args[0], o.o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if o.jsonOut && o.summary {
				return writeJSON(out, map[string]any{"version": info.Version, "bucket": info.Bucket, "rank_items": info.RankItems,
					"epoch_length": info.EpochLength, "min_items": info.MinItems, "max_items": info.MaxItems,
					"min_bytes": info.MinBytes, "max_bytes": info.MaxBytes})
			}
			if !o.jsonOut {
				fmt.Fprintf(out, "plan v%d of %s (bucket %s), seed %d, epoch %d: rank %d of %d reads %d of %d positions; ranks read %d..%d clips, %s..%s\n",
					info.Version, args[0], info.Bucket, o.o.Seed, o.o.Epoch, o.o.Rank, o.o.World, info.RankItems, info.EpochLength,
					info.MinItems, info.MaxItems, bytesize.Human(info.MinBytes), bytesize.Human(info.MaxBytes))
			}
			if o.summary {
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			for it, err := range c.Plan(ctx, args[0], o.o) {
				if err != nil {
					return err
				}
				if o.jsonOut {
					if err := writeJSON(out, map[string]any{"position": it.Position, "key": it.Key, "generation": it.Generation,
						"size": it.Size, "member": it.Member}); err != nil {
						return err
					}
					continue
				}
				fmt.Fprintf(tw, "%d\t%d\t%s\t%s\n", it.Position, it.Generation, bytesize.Human(it.Size), it.Key)
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&o.o.Seed, "seed", 0, "the job's shuffle seed")
	f.Uint64Var(&o.o.Epoch, "epoch", 0, "the epoch (each has its own order)")
	f.IntVar(&o.o.World, "world", 0, "how many ranks read the epoch")
	f.IntVar(&o.o.Rank, "rank", 0, "this rank, 0..world-1")
	f.Int64Var(&o.o.From, "from", 0, "resume at this global offset (a checkpoint every rank has passed)")
	f.BoolVar(&o.o.Pad, "pad", false, "repeat clips from the start so that every rank reads the same count")
	f.BoolVar(&o.o.DropLast, "drop-last", false, "drop the last clips so that every rank reads the same count")
	f.BoolVar(&o.summary, "summary", false, "print the share's size and the spread over the ranks only")
	f.BoolVar(&o.jsonOut, "json", false, "one JSON object per line")
	return cmd
}
