package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync/atomic"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/bytesize"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
)

type putOptions struct {
	*clientOptions
	recursive   bool
	jobs        int
	contentType string
	jsonOut     bool
	capture     captureFlags
}

func newPutCommand(co *clientOptions) *cobra.Command {
	o := &putOptions{clientOptions: co}
	cmd := &cobra.Command{
		Use:   "put BUCKET/KEY FILE|-  |  put -r DIR BUCKET/PREFIX",
		Short: "Store a clip from a file or stdin, or every file under a directory",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.recursive {
				return o.putTree(cmd, args[0], args[1])
			}
			return o.putOne(cmd, args[0], args[1])
		},
	}
	cmd.Flags().BoolVarP(&o.recursive, "recursive", "r", false, "store every regular file under DIR, keyed PREFIX/relative/path")
	cmd.Flags().IntVar(&o.jobs, "jobs", 4, "clips stored at once with -r")
	cmd.Flags().StringVar(&o.contentType, "content-type", "", "content type recorded with the clip")
	o.capture.addFlags(cmd)
	cmd.Flags().BoolVar(&o.jsonOut, "json", false, "print the stored clip's record as JSON")
	return cmd
}

func (o *putOptions) putOne(cmd *cobra.Command, dest, src string) error {
	bucket, key, err := splitPath(dest, true)
	if err != nil {
		return err
	}
	var r io.Reader = cmd.InOrStdin()
	var size int64 = -1
	if src != "-" {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			size = fi.Size()
		}
		r = f
	}
	c, ctx, done, err := o.connect(cmd)
	if err != nil {
		return err
	}
	defer done()
	capture, err := o.capture.parse()
	if err != nil {
		return err
	}
	opts := &client.PutOptions{ContentType: o.contentType, SizeHint: max(size, 0), Capture: capture}
	if bar := progress(cmd, size, "put "+key); bar != nil {
		opts.Progress = func(n int64) { bar.Set64(n) }
		defer bar.Finish()
	}
	info, err := c.Put(ctx, bucket, key, r, opts)
	if err != nil {
		return err
	}
	if o.jsonOut {
		return writeJSON(cmd.OutOrStdout(), clipJSON(info))
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s/%s: %s, generation %d\n", bucket, key, bytesize.Human(info.Size), info.Generation)
	return nil
}

// putTree stores every regular file under dir, jobs at a time.
func (o *putOptions) putTree(cmd *cobra.Command, dir, dest string) error {
	bucket, prefix, err := splitPath(dest, false)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("%s: not a directory", dir)
	}
	capture, err := o.capture.parse() // every file gets the same
	if err != nil {
		return err
	}
	c, ctx, done, err := o.connect(cmd)
	if err != nil {
		return err
	}
	defer done()
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(o.jobs, 1))
	var files, bytes atomic.Int64
	walkErr := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || ctx.Err() != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		key := path.Join(prefix, filepath.ToSlash(rel))
		g.Go(func() error {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			info, err := c.Put(ctx, bucket, key, f, &client.PutOptions{ContentType: o.contentType, Capture: capture})
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			files.Add(1)
			bytes.Add(info.Size)
			return nil
		})
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	if walkErr != nil {
		return walkErr
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%d clips, %s stored under %s/%s\n", files.Load(), bytesize.Human(bytes.Load()), bucket, prefix)
	return nil
}
