// Package metatest runs in-process meta clusters for tests: real Raft over
// TCP on 127.0.0.1 (or raft's InmemTransport when a test needs
// partitions), real bbolt in temp dirs, and each member's MetaService on a
// real gRPC server on 127.0.0.1.
package metatest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/clipstore/clipstore/meta"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Cluster is a meta cluster of in-process members.
type Cluster struct {
	t       testing.TB
	Members []*Member
	opts    Options
}

// Options shape a cluster.
type Options struct {
	// Inmem uses raft.InmemTransport (connected all-to-all) instead of TCP.
	Inmem bool
	// Configure adjusts each member's config before it starts.
	Configure func(*meta.Config)
	// Log receives the members' logs; nil discards them.
	Log io.Writer
	// DialOptions, if set, are those of the members' Clients (with TLS,
	// its credentials); nil: plain text.
	DialOptions []grpc.DialOption
}

// Member is one meta member and a client connected to it.
type Member struct {
	ID       string
	Dir      string
	Node     *meta.Node
	Client   pb.MetaServiceClient
	GRPCAddr string
	RaftAddr string
	Inmem    *raft.InmemTransport

	c      *Cluster
	conn   *grpc.ClientConn
	served chan error // Serve's result, once the member stops
}

// FastTimings shortens Raft's timers so that tests elect leaders quickly.
func FastTimings(c *meta.Config) {
	c.HeartbeatTimeout = 300 * time.Millisecond
	c.ElectionTimeout = 300 * time.Millisecond
	c.LeaderLeaseTimeout = 300 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.ApplyTimeout = 5 * time.Second
	c.HeartbeatInterval = 100 * time.Millisecond
	c.NodeDownAfter = 30 * time.Second // tests of liveness set it lower
}

// New starts an n-member cluster: member 0 bootstraps, the others join
// through member 0. It waits (bounded) for a leader and registers cleanup.
func New(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	c := &Cluster{t: t, opts: opts}
	root := t.TempDir()
	for i := range n {
		m := &Member{ID: fmt.Sprintf("m%d", i), Dir: filepath.Join(root, fmt.Sprintf("m%d", i)), c: c}
		c.Members = append(c.Members, m)
		if opts.Inmem {
			var addr raft.ServerAddress
			addr, m.Inmem = raft.NewInmemTransport("")
			m.RaftAddr = string(addr)
		} else {
			m.RaftAddr = "127.0.0.1:0" // the real port is known once it listens
		}
		m.GRPCAddr = "127.0.0.1:0"
	}
	if opts.Inmem {
		for _, a := range c.Members {
			for _, b := range c.Members {
				if a != b {
					a.Inmem.Connect(raft.ServerAddress(b.RaftAddr), b.Inmem)
				}
			}
		}
	}
	t.Cleanup(c.Close)
	c.Members[0].Start(true)
	c.WaitLeader()
	for _, m := range c.Members[1:] {
		m.Start(false)
		c.join(m)
	}
	return c
}

// join adds m through member 0, retrying while leadership moves (as
// `clipstore meta --join` does), for at most 20 s.
func (c *Cluster) join(m *Member) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.Node.Join(ctx, c.Members[0].GRPCAddr); err != nil {
		c.t.Fatalf("join %s: %v", m.ID, err)
	}
}

// Start starts (or restarts) the member on its data dir and addresses.
func (m *Member) Start(bootstrap bool) {
	t := m.c.t
	t.Helper()
	lis, err := net.Listen("tcp", m.GRPCAddr)
	if err != nil {
		t.Fatalf("listen %s: %v", m.GRPCAddr, err)
	}
	m.GRPCAddr = lis.Addr().String()
	cfg := meta.DefaultConfig()
	cfg.ID, cfg.DataDir, cfg.GRPCAddress, cfg.Bootstrap = m.ID, m.Dir, m.GRPCAddr, bootstrap
	cfg.RaftBind = m.RaftAddr
	if m.Inmem != nil {
		cfg.Transport = m.Inmem
	}
	FastTimings(&cfg)
	w := m.c.opts.Log
	if w == nil {
		w = io.Discard
	}
	cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})).With("m", m.ID)
	if m.c.opts.Configure != nil {
		m.c.opts.Configure(&cfg)
	}
	node, err := meta.New(cfg)
	if err != nil {
		lis.Close()
		t.Fatalf("start %s: %v", m.ID, err)
	}
	m.RaftAddr = node.RaftAddress()
	m.Node, m.served = node, make(chan error, 1)
	go func() { m.served <- node.Serve(lis) }()
	dial := m.c.opts.DialOptions
	if dial == nil {
		dial = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	conn, err := grpc.NewClient(m.GRPCAddr, dial...)
	if err != nil {
		t.Fatal(err)
	}
	m.conn, m.Client = conn, pb.NewMetaServiceClient(conn)
}

// Stop shuts the member down (gracefully: leadership is handed over).
func (m *Member) Stop() {
	if m.Node == nil {
		return
	}
	m.conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := errors.Join(m.Node.Shutdown(ctx), <-m.served); err != nil {
		m.c.t.Errorf("shutdown %s: %v", m.ID, err)
	}
	m.Node = nil
}

// Crash stops the member abruptly: no leadership transfer, connections cut.
func (m *Member) Crash() {
	if m.Node == nil {
		return
	}
	m.conn.Close()
	if err := errors.Join(m.Node.Close(), <-m.served); err != nil {
		m.c.t.Errorf("close %s: %v", m.ID, err)
	}
	m.Node = nil
}

// Running reports whether the member is started.
func (m *Member) Running() bool { return m.Node != nil }

// Close stops every member.
func (c *Cluster) Close() {
	for _, m := range c.Members {
		m.Stop()
	}
}

// WaitLeader waits (at most 15 s) until a running member leads and every
// running member agrees, and returns it.
func (c *Cluster) WaitLeader() *Member {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if l := c.leader(); l != nil {
			return l
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatal("no leader within 15s")
	return nil
}

func (c *Cluster) leader() *Member {
	var leader *Member
	for _, m := range c.Members {
		if m.Running() && m.Node.IsLeader() {
			leader = m
		}
	}
	if leader == nil {
		return nil
	}
	for _, m := range c.Members {
		if m.Running() && m.Node.Leader() != leader.ID {
			return nil
		}
	}
	return leader
}

// Followers returns the running members that do not lead.
func (c *Cluster) Followers() []*Member {
	var out []*Member
	for _, m := range c.Members {
		if m.Running() && !m.Node.IsLeader() {
			out = append(out, m)
		}
	}
	return out
}

// WaitConverged waits (at most 20 s) until every running member has the
// same state digest at the same applied index, and fails the test if not.
func (c *Cluster) WaitConverged() {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		var digest []byte
		var applied uint64
		same := true
		for _, m := range c.Members {
			if !m.Running() {
				continue
			}
			d, a, err := m.Node.StateDigest()
			if err != nil {
				c.t.Fatalf("digest %s: %v", m.ID, err)
			}
			if digest == nil {
				digest, applied = d, a
			} else if !bytes.Equal(d, digest) || a != applied {
				same = false
				last = fmt.Sprintf("%s at %d differs from the first member at %d", m.ID, a, applied)
			}
		}
		if same {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("members did not converge within 20s: %s", last)
}

// Isolate cuts the member's Raft traffic in both directions: it can reach
// no peer and no peer can reach it. Only its Raft is cut; its gRPC server
// stays reachable, so clients and forwarded requests still get to it. The
// cluster must have been created with Options{Inmem: true}.
func (m *Member) Isolate() {
	m.c.t.Helper()
	m.c.requireInmem()
	m.Inmem.DisconnectAll()
	for _, o := range m.c.Members {
		if o != m {
			o.Inmem.Disconnect(raft.ServerAddress(m.RaftAddr))
		}
	}
}

// Heal reconnects the member's Raft to every other member in both
// directions, undoing Isolate (and the disconnection a Crash leaves on an
// in-memory transport). Options{Inmem: true} only.
func (m *Member) Heal() {
	m.c.t.Helper()
	m.c.requireInmem()
	for _, o := range m.c.Members {
		if o != m {
			m.Inmem.Connect(raft.ServerAddress(o.RaftAddr), o.Inmem)
			o.Inmem.Connect(raft.ServerAddress(m.RaftAddr), m.Inmem)
		}
	}
}

func (c *Cluster) requireInmem() {
	c.t.Helper()
	if !c.opts.Inmem {
		c.t.Fatal("partitions need a cluster made with Options{Inmem: true}")
	}
}
