package main

import (
	"fmt"

	"github.com/clipstore/clipstore/client"
	"github.com/spf13/cobra"
)

type mbOptions struct {
	*clientOptions
	ec, blockSize string
	etagMode      string
}

func newMbCommand(co *clientOptions) *cobra.Command {
	o := &mbOptions{clientOptions: co}
	cmd := &cobra.Command{
		Use:   "mb BUCKET",
		Short: "Make a bucket",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var profile *client.Profile
			if o.ec != "" || o.blockSize != "" {
				ec, bs := o.ec, o.blockSize
				if ec == "" {
					ec = "4+2"
				}
				if bs == "" {
					bs = "1MiB"
				}
				p, err := parseProfile(ec, bs)
				if err != nil {
					return err
				}
				profile = &client.Profile{DataShards: int(p.DataShards), ParityShards: int(p.ParityShards), BlockSize: int(p.BlockSize)}
			}
			c, ctx, done, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			if err := c.CreateBucketWith(ctx, args[0], client.BucketOptions{Profile: profile, ETagMode: o.etagMode}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "bucket %s created\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&o.ec, "ec", "", "erasure code K+M of the bucket's clips (default: the cluster's)")
	cmd.Flags().StringVar(&o.blockSize, "block-size", "", "block size of the bucket's clips, e.g. 1MiB (default: the cluster's)")
	cmd.Flags().StringVar(&o.etagMode, "etag-mode", "", "the S3 gateway's ETags of the bucket: md5 (S3's) or fast (the clip id; no MD5 of the bytes) (default: the cluster's)")
	return cmd
}

func newRbCommand(co *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "rb BUCKET",
		Short: "Remove an empty bucket",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, done, err := co.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			if err := c.DeleteBucket(ctx, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "bucket %s removed\n", args[0])
			return nil
		},
	}
}
