package client_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/meta"
	"github.com/clipstore/clipstore/meta/metatest"
	metapb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/clipstore/clipstore/server"
)

// testCluster is one meta member and storage nodes s0..sN-1 in this
// process, with a client connected to it.
type testCluster struct {
	t testing.TB
	// configureNode, if set, changes node i's configuration at start.
	configureNode func(int, *server.Config)
	meta          *metatest.Cluster
	nodes         []*testNode
	client        *client.Client
}

type testNode struct {
	id      string
	dir     string
	node    *server.Node
	served  chan error
	stopped bool
}

// newCluster starts meta and n storage nodes and waits until meta has
// heard from every node. Meta keeps a stopped node a placement candidate
// for a minute, so that tests can put while a target is down.
func newCluster(t testing.TB, n int, cfg client.Config) *testCluster {
	t.Helper()
	return newClusterWith(t, n, cfg, nil)
}

// newClusterWith is newCluster with meta's configuration changed by
// configure.
func newClusterWith(t testing.TB, n int, cfg client.Config, configure func(*meta.Config)) *testCluster {
	t.Helper()
	return newClusterNodes(t, n, cfg, configure, nil)
}

// newClusterNodes is newClusterWith with storage node i's configuration
// changed by node (nil: none).
func newClusterNodes(t testing.TB, n int, cfg client.Config, configure func(*meta.Config), node func(int, *server.Config)) *testCluster {
	t.Helper()
	mc := metatest.New(t, 1, metatest.Options{Configure: func(c *meta.Config) {
		c.NodeDownAfter = time.Minute
		if configure != nil {
			configure(c)
		}
	}})
	tc := &testCluster{t: t, meta: mc, configureNode: node}
	root := t.TempDir()
	for i := range n {
		tc.nodes = append(tc.nodes, tc.startNode(fmt.Sprintf("s%d", i), filepath.Join(root, fmt.Sprintf("s%d", i)), i))
	}
	t.Cleanup(tc.close)
	tc.waitNodes(n)
	cfg.Meta = []string{mc.Members[0].GRPCAddr}
	c, err := client.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tc.client = c
	return tc
}

func (tc *testCluster) startNode(id, dir string, i int) *testNode {
	tc.t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tc.t.Fatal(err)
	}
	cfg := server.DefaultConfig()
	cfg.NodeID, cfg.DataDirs, cfg.Meta = id, []string{dir}, []string{tc.meta.Members[0].GRPCAddr}
	cfg.Advertise, cfg.Zone = lis.Addr().String(), fmt.Sprintf("zone-%d", i%3)
	cfg.HeartbeatInterval = 50 * time.Millisecond
	cfg.Logger = slog.New(slog.DiscardHandler)
	if tc.configureNode != nil {
		tc.configureNode(i, &cfg)
	}
	node, err := server.New(cfg)
	if err != nil {
		lis.Close()
		tc.t.Fatal(err)
	}
	tn := &testNode{id: id, dir: dir, node: node, served: make(chan error, 1)}
	go func() { tn.served <- node.Serve(lis) }()
	return tn
}

func (tc *testCluster) waitNodes(n int) {
	tc.t.Helper()
	await.True(tc.t, 15*time.Second, "storage nodes to heartbeat", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		resp, err := tc.meta.Members[0].Client.ListNodes(ctx, &metapb.ListNodesRequest{})
		if err != nil {
			return false
		}
		up := 0
		for _, node := range resp.Nodes {
			if node.LastHeartbeatUnixNano > 0 {
				up++
			}
		}
		return up >= n
	})
}

// stopNode shuts storage node id down.
func (tc *testCluster) stopNode(id string) {
	tc.t.Helper()
	for _, n := range tc.nodes {
		if n.id == id && !n.stopped {
			n.stopped = true
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := n.node.Shutdown(ctx); err != nil {
				tc.t.Errorf("shutdown %s: %v", id, err)
			}
			if err := <-n.served; err != nil {
				tc.t.Errorf("serve %s: %v", id, err)
			}
			return
		}
	}
	tc.t.Fatalf("no running node %q", id)
}

func (tc *testCluster) node(id string) *testNode {
	for _, n := range tc.nodes {
		if n.id == id {
			return n
		}
	}
	tc.t.Fatalf("no node %q", id)
	return nil
}

func (tc *testCluster) close() {
	if tc.client != nil {
		tc.client.Close()
	}
	for _, n := range tc.nodes {
		if !n.stopped {
			tc.stopNode(n.id)
		}
	}
}

// shardPath is where node keeps the shard with the given hex id.
func (tc *testCluster) shardPath(node, id string) string {
	var sid server.ShardID
	if n, err := hex.Decode(sid[:], []byte(id)); err != nil || n != len(sid) {
		panic(fmt.Sprintf("shard id %q: not %d hex bytes", id, len(sid)))
	}
	return server.ShardFile(tc.node(node).dir, sid)
}

// flipByte corrupts one byte of a stored shard at offset off of its shard
// stream (after the 128-byte file header).
func (tc *testCluster) flipByte(node, id string, off int64) {
	tc.t.Helper()
	if _, err := hex.DecodeString(id); err != nil {
		tc.t.Fatal(err)
	}
	f, err := os.OpenFile(tc.shardPath(node, id), os.O_RDWR, 0)
	if err != nil {
		tc.t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, 128+off); err != nil {
		tc.t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, 128+off); err != nil {
		tc.t.Fatal(err)
	}
}

func (tc *testCluster) mkBucket(name string, p *client.Profile) {
	tc.t.Helper()
	if err := tc.client.CreateBucket(tc.t.Context(), name, p); err != nil {
		tc.t.Fatalf("create bucket %s: %v", name, err)
	}
}

func mustErr(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
}
