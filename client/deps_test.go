package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies holds the line DESIGN.md draws: ingest pipelines import
// the client, so it must not pull in meta, the storage server, raft or
// bbolt.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/clipstore/clipstore/client").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/clipstore/clipstore/meta",
		"github.com/clipstore/clipstore/server",
		"github.com/hashicorp/raft",
		"go.etcd.io/bbolt",
		"github.com/boltdb/bolt",
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if pkg == f || strings.HasPrefix(pkg, f+"/") {
				t.Errorf("client depends on %s", pkg)
			}
		}
	}
}
