package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
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
		Short: "Show a clip's record: size, checksums, parts, profile and where its shards are",
		Long: `Show a clip's record. --json prints one object with the fields bucket, key,
clip_id (hex), generation, size, crc32c (hex), content_type, metadata, created
(RFC 3339), etag and checksums (as the writer stored them: the S3 gateway
stores S3's ETag and x-amz-checksum-* values; empty for a clip written by the
native client), capture (vehicle_id, camera, start, end, tags; absent if the
clip has none), ec ("K+M"), block_size, shards (index, node, shard_id, state:
ok, missing or corrupt) of the first part, and parts (number, offset, size,
etag, checksums), in the clip's order: one part numbered 0 for a clip written
whole, the parts of its multipart upload otherwise. put --json prints the
same object.`,
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
			writeClipText(cmd.OutOrStdout(), info)
			return nil
		},
	}
	cmd.Flags().BoolVar(&o.jsonOut, "json", false, "print the record as JSON")
	return cmd
}

// writeClipText writes a clip record for people (stat).
func writeClipText(w io.Writer, info *client.ClipInfo) {
	fmt.Fprintf(w, "clip        %s/%s\n", info.Bucket, info.Key)
	fmt.Fprintf(w, "size        %d (%s)\n", info.Size, bytesize.Human(info.Size))
	fmt.Fprintf(w, "crc32c      %08x\n", info.CRC32C)
	if info.ETag != "" {
		fmt.Fprintf(w, "etag        %s\n", info.ETag)
	}
	for _, alg := range slices.Sorted(maps.Keys(info.Checksums)) {
		fmt.Fprintf(w, "%-11s %s\n", alg, info.Checksums[alg])
	}
	fmt.Fprintf(w, "generation  %d\n", info.Generation)
	fmt.Fprintf(w, "clip id     %s\n", info.ClipID)
	fmt.Fprintf(w, "created     %s\n", info.Created.Local().Format(time.RFC3339))
	fmt.Fprintf(w, "profile     RS %d+%d, %s blocks\n", info.Profile.DataShards, info.Profile.ParityShards, bytesize.Human(int64(info.Profile.BlockSize)))
	if info.ContentType != "" {
		fmt.Fprintf(w, "type        %s\n", info.ContentType)
	}
	if c := info.Capture; c != nil {
		fmt.Fprintf(w, "capture     vehicle %s, camera %s, %s to %s, tags %s\n", orDash(c.VehicleID), orDash(c.Camera),
			timeOrDash(c.Start), timeOrDash(c.End), orDash(strings.Join(c.Tags, ",")))
	}
	if multipart(info) {
		fmt.Fprintf(w, "parts       %d\n", len(info.Parts))
		for _, p := range info.Parts {
			fmt.Fprintf(w, "part %-5d  offset %d, size %d (%s), etag %s", p.Number, p.Offset, p.Size, bytesize.Human(p.Size), orDash(p.ETag))
			for _, alg := range slices.Sorted(maps.Keys(p.Checksums)) {
				fmt.Fprintf(w, ", %s %s", alg, p.Checksums[alg])
			}
			fmt.Fprintln(w)
		}
	}
	for _, s := range info.Shards {
		fmt.Fprintf(w, "shard %-4d  %-8s %s\n", s.Index, s.State, s.Node)
	}
}

// multipart reports whether the clip was made of a multipart upload's
// parts (a clip written whole has one part, numbered 0).
func multipart(info *client.ClipInfo) bool {
	return len(info.Parts) > 1 || len(info.Parts) == 1 && info.Parts[0].Number != 0
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// clipJSON is the stable JSON form of a clip record (stat --json,
// put --json).
func clipJSON(c *client.ClipInfo) map[string]any {
	shards := make([]map[string]any, 0, len(c.Shards))
	for _, s := range c.Shards {
		shards = append(shards, map[string]any{"index": s.Index, "node": s.Node, "shard_id": s.ID, "state": s.State.String()})
	}
	parts := make([]map[string]any, 0, len(c.Parts))
	for _, p := range c.Parts {
		parts = append(parts, map[string]any{"number": p.Number, "offset": p.Offset, "size": p.Size, "etag": p.ETag,
			"checksums": nonNil(p.Checksums)})
	}
	m := map[string]any{
		"bucket": c.Bucket, "key": c.Key, "clip_id": c.ClipID, "generation": c.Generation, "size": c.Size,
		"crc32c": fmt.Sprintf("%08x", c.CRC32C), "content_type": c.ContentType, "metadata": c.Metadata,
		"created": c.Created.UTC().Format(time.RFC3339Nano), "etag": c.ETag, "checksums": nonNil(c.Checksums),
		"ec": fmt.Sprintf("%d+%d", c.Profile.DataShards, c.Profile.ParityShards), "block_size": c.Profile.BlockSize,
		"shards": shards, "parts": parts,
	}
	if c.Capture != nil {
		m["capture"] = captureJSON(c.Capture)
	}
	return m
}

// nonNil is m, or an empty map: JSON {} rather than null.
func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func nonNilSlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
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
