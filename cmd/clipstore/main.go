// Command clipstore is the one clipstore binary: a meta member (meta), a
// storage node (storage), a whole cluster in one process for a laptop
// (dev), the client commands (mb, rb, put, get, ls, stat, rm), cluster
// status, admin repair and admin fsck, and the load generator (bench).
// Each subcommand is wiring over the meta, server and client packages and
// internal/devcluster and internal/loadgen.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "clipstore:", err)
		os.Exit(1)
	}
}
