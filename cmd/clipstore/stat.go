package main

import (
	"fmt"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/bytesize"
	"github.com/spf13/cobra"
)

type statOptions struct {
	*clientOptions
	jsonOut bool
}

func newStatCommand(co *clientOptions) *cobra.Command {
	o := &statOptions{clientOptions: co}
	cmd := &cobra.Command{
		Use:   "stat BUCKET/KEY",
		Short: "Show a clip's record: size, checksum, profile and where its shards are",
		Long: `Show a clip's record. --json prints one object with the fields bucket, key,
clip_id (hex), generation, size, crc32c (hex), content_type, metadata, created
(RFC 3339), ec ("K+M"), block_size and shards (index, node, shard_id, state:
ok, missing or corrupt). put --json prints the same object.`,
		Args: cobra.ExactArgs(1),
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
			info, err := c.Stat(ctx, bucket, key)
			if err != nil {
				return err
			}
			if o.jsonOut {
				return writeJSON(cmd.OutOrStdout(), clipJSON(info))
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "clip        %s/%s\n", info.Bucket, info.Key)
			fmt.Fprintf(w, "size        %d (%s)\n", info.Size, bytesize.Human(info.Size))
			fmt.Fprintf(w, "crc32c      %08x\n", info.CRC32C)
			fmt.Fprintf(w, "generation  %d\n", info.Generation)
			fmt.Fprintf(w, "clip id     %s\n", info.ClipID)
			fmt.Fprintf(w, "created     %s\n", info.Created.Local().Format(time.RFC3339))
			fmt.Fprintf(w, "profile     RS %d+%d, %s blocks\n", info.Profile.DataShards, info.Profile.ParityShards, bytesize.Human(int64(info.Profile.BlockSize)))
			if info.ContentType != "" {
				fmt.Fprintf(w, "type        %s\n", info.ContentType)
			}
			for _, s := range info.Shards {
				fmt.Fprintf(w, "shard %-4d  %-8s %s\n", s.Index, s.State, s.Node)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&o.jsonOut, "json", false, "print the record as JSON")
	return cmd
}

// clipJSON is the stable JSON form of a clip record (stat --json,
// put --json).
func clipJSON(c *client.ClipInfo) map[string]any {
	shards := make([]map[string]any, 0, len(c.Shards))
	for _, s := range c.Shards {
		shards = append(shards, map[string]any{"index": s.Index, "node": s.Node, "shard_id": s.ID, "state": s.State.String()})
	}
	return map[string]any{
		"bucket": c.Bucket, "key": c.Key, "clip_id": c.ClipID, "generation": c.Generation, "size": c.Size,
		"crc32c": fmt.Sprintf("%08x", c.CRC32C), "content_type": c.ContentType, "metadata": c.Metadata,
		"created": c.Created.UTC().Format(time.RFC3339Nano),
		"ec":      fmt.Sprintf("%d+%d", c.Profile.DataShards, c.Profile.ParityShards), "block_size": c.Profile.BlockSize,
		"shards": shards,
	}
}

func newRmCommand(co *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "rm BUCKET/KEY",
		Short: "Delete a clip",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bucket, key, err := splitPath(args[0], true)
			if err != nil {
				return err
			}
			c, ctx, done, err := co.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			if err := c.Delete(ctx, bucket, key); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s/%s deleted\n", bucket, key)
			return nil
		},
	}
}
