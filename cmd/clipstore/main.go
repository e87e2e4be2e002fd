// Command clipstore is the one clipstore binary: the storage node and, as
// they land, the meta node, the dev cluster and the client commands.
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
