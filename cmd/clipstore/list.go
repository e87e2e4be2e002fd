package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/bytesize"
	"github.com/spf13/cobra"
)

type lsOptions struct {
	*clientOptions
	jsonOut bool
}

func newLsCommand(co *clientOptions) *cobra.Command {
	o := &lsOptions{clientOptions: co}
	cmd := &cobra.Command{
		Use:   "ls [BUCKET[/PREFIX]]",
		Short: "List buckets, or the clips of a bucket under a prefix",
		Long: `List the buckets, or the clips of BUCKET whose keys start with PREFIX.
--json prints one JSON object a line: for clips {"key","size","generation",
"clip_id","created"}, for buckets {"name","ec","block_size","created"};
times are RFC 3339.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, done, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			if len(args) == 0 {
				return o.listBuckets(cmd, c)
			}
			bucket, prefix, err := splitPath(args[0], false)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', tabwriter.AlignRight)
			for e, err := range c.List(ctx, bucket, prefix) {
				if err != nil {
					return err
				}
				if o.jsonOut {
					if err := writeJSON(cmd.OutOrStdout(), entryJSON(e)); err != nil {
						return err
					}
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t %s\n", bytesize.Human(e.Size), e.Created.Local().Format("2006-01-02 15:04:05"), e.Key)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&o.jsonOut, "json", false, "one JSON object per line")
	return cmd
}

func (o *lsOptions) listBuckets(cmd *cobra.Command, c *client.Client) error {
	buckets, err := c.ListBuckets(cmd.Context())
	if err != nil {
		return err
	}
	for _, b := range buckets {
		if o.jsonOut {
			if err := writeJSON(cmd.OutOrStdout(), map[string]any{"name": b.Name,
				"ec":         fmt.Sprintf("%d+%d", b.Profile.DataShards, b.Profile.ParityShards),
				"block_size": b.Profile.BlockSize, "created": b.Created.UTC().Format(time.RFC3339Nano)}); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s  RS %d+%d  %s blocks  %s\n", b.Name, b.Profile.DataShards, b.Profile.ParityShards,
			bytesize.Human(int64(b.Profile.BlockSize)), b.Created.Local().Format("2006-01-02 15:04:05"))
	}
	return nil
}
