package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "clipstore",
		Short:         "A distributed object store for fleet sensor video",
		SilenceUsage:  true,
		SilenceErrors: true, // main prints the one error line
	}
	root.AddCommand(newStorageCommand(), newMetaCommand(), newDevCommand())
	co := &clientOptions{}
	for _, c := range []*cobra.Command{newMbCommand(co), newRbCommand(co), newPutCommand(co), newGetCommand(co),
		newLsCommand(co), newStatCommand(co), newRmCommand(co), newClusterCommand(co)} {
		co.AddFlags(c)
		root.AddCommand(c)
	}
	return root
}

// newLogger builds the process logger: text on w at the given level.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
