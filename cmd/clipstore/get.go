package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

type getOptions struct {
	*clientOptions
	rng        string
	generation uint64
}

func newGetCommand(co *clientOptions) *cobra.Command {
	o := &getOptions{clientOptions: co}
	cmd := &cobra.Command{
		Use:   "get BUCKET/KEY [FILE|-]",
		Short: "Read a clip, or a byte range of it, to a file or stdout",
		Long: `Read a clip to FILE (default: the key's base name) or to stdout with "-".
--range START-END reads bytes START to END inclusive, as an HTTP Range does;
START- reads to the end. A file is written beside its final name and renamed
into place only once every byte was read and verified.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			bucket, key, err := splitPath(args[0], true)
			if err != nil {
				return err
			}
			dest := filepath.Base(key)
			if len(args) == 2 {
				dest = args[1]
			}
			return o.get(cmd, bucket, key, dest)
		},
	}
	cmd.Flags().StringVar(&o.rng, "range", "", "inclusive byte range START-END (or START-)")
	cmd.Flags().Uint64Var(&o.generation, "generation", 0, "read this generation of the key (one a dataset keeps) instead of the current one")
	return cmd
}

func (o *getOptions) get(cmd *cobra.Command, bucket, key, dest string) (err error) {
	c, ctx, done, err := o.connect(cmd)
	if err != nil {
		return err
	}
	defer done()
	r, err := c.OpenAt(ctx, bucket, key, o.generation)
	if err != nil {
		return err
	}
	defer r.Close()
	start, n, err := parseRange(o.rng, r.Size())
	if err != nil {
		return err
	}
	var w io.Writer = cmd.OutOrStdout()
	if dest != "-" {
		f, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".part-*")
		if err != nil {
			return err
		}
		defer func() {
			if err == nil {
				err = f.Close()
			} else {
				f.Close()
			}
			if err == nil {
				err = os.Rename(f.Name(), dest)
			}
			if err != nil {
				os.Remove(f.Name())
			}
		}()
		w = f
	}
	if bar := progress(cmd, n, "get "+key); bar != nil {
		w = io.MultiWriter(w, bar)
		defer bar.Finish()
	}
	if o.rng == "" {
		// A whole read also checks the clip's content checksum, from the
		// record the Reader pinned (no second call to meta).
		_, err = r.WriteTo(w)
		return err
	}
	_, err = io.Copy(w, io.NewSectionReader(r, start, n))
	return err
}

// parseRange reads "START-END" (inclusive) or "START-" against a clip of
// size bytes; empty means the whole clip.
func parseRange(s string, size int64) (start, n int64, err error) {
	if s == "" {
		return 0, size, nil
	}
	a, b, ok := strings.Cut(s, "-")
	start, err1 := strconv.ParseInt(a, 10, 64)
	end := size - 1
	var err2 error
	if b != "" {
		end, err2 = strconv.ParseInt(b, 10, 64)
	}
	switch {
	case !ok || err1 != nil || err2 != nil || start < 0 || end < start:
		return 0, 0, fmt.Errorf("--range %q: want START-END with 0 <= START <= END, or START-", s)
	case start >= size || end >= size:
		return 0, 0, fmt.Errorf("--range %q is past the end of the %d-byte clip", s, size)
	}
	return start, end - start + 1, nil
}
