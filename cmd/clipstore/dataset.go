package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/bytesize"
	"github.com/spf13/cobra"
)

type datasetOptions struct {
	*clientOptions
	findFilters
	fromList    string
	description string
	jsonOut     bool
	members     bool
}

func newDatasetCommand(co *clientOptions) *cobra.Command {
	o := &datasetOptions{clientOptions: co}
	cmd := &cobra.Command{Use: "dataset", Aliases: []string{"datasets", "ds"},
		Short: "Make, list, show and delete datasets: frozen lists of clips that pin what they list"}
	create := &cobra.Command{
		Use:   "create NAME BUCKET [find's filters] | --from-list FILE",
		Short: "Freeze the clips a query finds (or a list names), at their current generations",
		Long: `Make a dataset: the bucket's clips that find's filters match (--vehicle,
--camera, --from, --to, --tag, --prefix; none: every clip with capture
attributes) or the keys of --from-list (one per line), each at its current
generation. The dataset pins them: overwriting or deleting a key keeps the
generation the dataset holds (clipstore get --generation) until the last
dataset holding it is removed.`,
		Example: `  clipstore dataset create rain-front-v1 fleet --camera front --tag rain --from 2026-11-23T00:00:00Z --to 2026-11-30T00:00:00Z
  clipstore dataset create eval-2026-12 fleet --from-list eval-keys.txt`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec := client.DatasetSpec{Name: args[0], Bucket: args[1], Description: o.description}
			if o.fromList != "" {
				if o.describe() != "" {
					return errors.New("--from-list and find's filters: give one")
				}
				keys, err := readKeyList(o.fromList)
				if err != nil {
					return err
				}
				spec.Keys = keys
				if spec.Description == "" {
					spec.Description = "--from-list " + o.fromList
				}
			} else {
				q, err := o.query()
				if err != nil {
					return err
				}
				spec.Query = &q
				if spec.Description == "" {
					spec.Description = strings.TrimSpace("find " + args[1] + " " + o.describe())
				}
			}
			c, ctx, done, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			ds, err := c.CreateDataset(ctx, spec)
			if err != nil {
				return err
			}
			if o.jsonOut {
				return writeJSON(cmd.OutOrStdout(), datasetJSON(ds))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "dataset %s: %d clips of %s, %s\n", ds.Name, ds.Members, ds.Bucket, bytesize.Human(ds.Bytes))
			return nil
		},
	}
	o.findFilters.addFlags(create)
	create.Flags().StringVar(&o.fromList, "from-list", "", "a file of the bucket's keys, one per line, instead of a query")
	create.Flags().StringVar(&o.description, "description", "", "what the dataset is (default: how it was made)")
	create.Flags().BoolVar(&o.jsonOut, "json", false, "print the dataset as JSON")

	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the datasets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, done, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			all, err := c.ListDatasets(ctx)
			if err != nil {
				return err
			}
			if o.jsonOut {
				out := []map[string]any{}
				for _, d := range all {
					out = append(out, datasetJSON(d))
				}
				return writeJSON(cmd.OutOrStdout(), out)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tBUCKET\tCLIPS\tSIZE\tCREATED")
			for _, d := range all {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", d.Name, d.Bucket, d.Members, bytesize.Human(d.Bytes), d.Created.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	ls.Flags().BoolVar(&o.jsonOut, "json", false, "print the datasets as JSON")

	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a dataset and, with --members, its clips in order",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, done, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			ds, err := c.DatasetInfo(ctx, args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if o.jsonOut {
				if err := writeJSON(out, datasetJSON(ds)); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(out, "name:        %s\nbucket:      %s\nclips:       %d\nsize:        %s\ncreated:     %s by %s\ndescription: %s\n",
					ds.Name, ds.Bucket, ds.Members, bytesize.Human(ds.Bytes), ds.Created.UTC().Format(time.RFC3339), orDash(ds.CreatedBy),
					orDash(ds.Description))
			}
			if !o.members {
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			for m, err := range c.DatasetMembers(ctx, args[0]) {
				if err != nil {
					return err
				}
				if o.jsonOut {
					if err := writeJSON(out, map[string]any{"key": m.Key, "generation": m.Generation, "clip_id": m.ClipID, "size": m.Size}); err != nil {
						return err
					}
					continue
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\n", m.Generation, bytesize.Human(m.Size), m.Key)
			}
			return tw.Flush()
		},
	}
	show.Flags().BoolVar(&o.jsonOut, "json", false, "print the dataset (and its members, one per line) as JSON")
	show.Flags().BoolVar(&o.members, "members", false, "list the clips: generation, size, key")

	rm := &cobra.Command{
		Use:   "rm NAME",
		Short: "Delete a dataset: the generations only it kept are collected",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, done, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			n, err := c.DeleteDataset(ctx, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "dataset %s deleted; %d generations no dataset keeps any more are collected\n", args[0], n)
			return nil
		},
	}
	purge := &cobra.Command{
		Use:   "purge BUCKET/KEY",
		Short: "Privacy deletion: take a clip out of every dataset and delete every generation of it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bucket, key, err := splitPath(args[0], true)
			if err != nil {
				return err
			}
			c, ctx, done, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			left, err := c.PurgeClip(ctx, bucket, key)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s purged; it left %d datasets %v\n", args[0], len(left), left)
			return nil
		},
	}
	cmd.AddCommand(create, ls, show, rm, purge)
	return cmd
}

// readKeyList reads keys, one per line; blank lines and # comments are
// skipped.
func readKeyList(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	keys := []string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		keys = append(keys, line)
	}
	return keys, sc.Err()
}

func datasetJSON(d client.Dataset) map[string]any {
	return map[string]any{"name": d.Name, "bucket": d.Bucket, "clips": d.Members, "bytes": d.Bytes,
		"created": d.Created.UTC().Format(time.RFC3339Nano), "created_by": d.CreatedBy, "description": d.Description}
}
