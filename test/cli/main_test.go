package cli

import (
	"testing"

	"github.com/clipstore/clipstore/test/e2e"
)

func TestMain(m *testing.M) { e2e.Main(m) }

// startCluster runs 3 meta and 6 storage processes with no scrubbing:
// TestClusterEndToEnd damages shards on purpose and checks that fsck sees
// the damage before anything repairs it.
func startCluster(t *testing.T) *e2e.Cluster {
	return e2e.StartCluster(t, e2e.ClusterOptions{StorageNodes: 6, StorageArgs: []string{"--scrub-interval", "0"}})
}
