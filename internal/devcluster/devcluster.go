// Package devcluster runs a whole clipstore cluster in one process: real
// meta members (Raft, bbolt) and real storage nodes, each on its own
// loopback port, with their data under one directory that is kept across
// restarts. `clipstore dev` and tests use it.
package devcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/clipstore/clipstore/internal/tlsconf"
	"github.com/clipstore/clipstore/meta"
	metapb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/clipstore/clipstore/server"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Config shapes a dev cluster.
type Config struct {
	Dir          string // data for every node, kept across restarts
	MetaAddr     string // gRPC address of the first meta member
	MetaNodes    int
	StorageNodes int
	Profile      *metapb.ECProfile // the cluster's default EC profile
	Logger       *slog.Logger
	// Registerer receives every node's metrics, labelled node="<id>"; nil:
	// none.
	Registerer prometheus.Registerer
	// ConfigureMeta and ConfigureStorage adjust each node's config (timers,
	// knobs) before it starts; nil leaves the defaults.
	ConfigureMeta    func(*meta.Config)
	ConfigureStorage func(*server.Config)
	// TLS, if set, is every node's identity (a certificate with the
	// meta and storage roles): all their links are TLS. Nil: plain text.
	TLS *tlsconf.Loader
}

// registerer returns the registerer for one node's metrics.
func (c *Cluster) registerer(node string) prometheus.Registerer {
	if c.cfg.Registerer == nil {
		return nil
	}
	return prometheus.WrapRegistererWith(prometheus.Labels{"node": node}, c.cfg.Registerer)
}

// Cluster is a running dev cluster.
type Cluster struct {
	cfg     Config
	log     *slog.Logger
	layout  layout
	metas   []*metaMember
	storage []*storageNode
}

type metaMember struct {
	node   *meta.Node
	served chan error // Serve's result, once the member stops
}

type storageNode struct {
	node *server.Node
	addr string
	done chan error
}

// layout is what must stay the same across restarts: Raft addresses are
// part of the Raft configuration.
type layout struct {
	Meta []memberLayout `json:"meta"`
}

type memberLayout struct {
	ID   string `json:"id"`
	Raft string `json:"raft"`
	GRPC string `json:"grpc"`
}

const layoutFile = "dev-cluster.json"

// Start brings the cluster up and returns once every storage node has
// heartbeated to meta.
func Start(ctx context.Context, cfg Config) (_ *Cluster, err error) {
	if cfg.MetaNodes < 1 || cfg.StorageNodes < 1 {
		return nil, errors.New("dev cluster needs at least one meta member and one storage node")
	}
	c := &Cluster{cfg: cfg, log: cfg.Logger}
	if c.log == nil {
		c.log = slog.Default()
	}
	defer func() {
		if err != nil {
			c.Shutdown(context.Background())
		}
	}()
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	fresh, err := c.loadLayout()
	if err != nil {
		return nil, err
	}
	for i := range cfg.MetaNodes {
		if err := c.startMeta(i, fresh); err != nil {
			return nil, err
		}
	}
	if err := c.saveLayout(); err != nil {
		return nil, err
	}
	if fresh {
		for i := 1; i < cfg.MetaNodes; i++ {
			if err := c.join(ctx, i); err != nil {
				return nil, err
			}
		}
	}
	for i := range cfg.StorageNodes {
		if err := c.startStorage(i); err != nil {
			return nil, err
		}
	}
	return c, c.waitForHeartbeats(ctx)
}

func (c *Cluster) loadLayout() (fresh bool, err error) {
	b, err := os.ReadFile(filepath.Join(c.cfg.Dir, layoutFile))
	if errors.Is(err, os.ErrNotExist) {
		for i := range c.cfg.MetaNodes {
			m := memberLayout{ID: fmt.Sprintf("meta-%d", i), Raft: "127.0.0.1:0", GRPC: "127.0.0.1:0"}
			if i == 0 {
				m.GRPC = c.cfg.MetaAddr
			}
			c.layout.Meta = append(c.layout.Meta, m)
		}
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, &c.layout); err != nil {
		return false, fmt.Errorf("%s: %w", layoutFile, err)
	}
	if len(c.layout.Meta) != c.cfg.MetaNodes {
		return false, fmt.Errorf("%s has %d meta members, asked for %d: use another data directory", layoutFile, len(c.layout.Meta), c.cfg.MetaNodes)
	}
	return false, nil
}

func (c *Cluster) saveLayout() error {
	b, _ := json.MarshalIndent(c.layout, "", "  ")
	tmp := filepath.Join(c.cfg.Dir, layoutFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(c.cfg.Dir, layoutFile))
}

func (c *Cluster) startMeta(i int, fresh bool) error {
	ml := &c.layout.Meta[i]
	lis, err := net.Listen("tcp", ml.GRPC)
	if err != nil {
		return fmt.Errorf("meta member %s: listen on %s: %w", ml.ID, ml.GRPC, err)
	}
	ml.GRPC = lis.Addr().String()
	cfg := meta.DefaultConfig()
	cfg.ID, cfg.DataDir, cfg.RaftBind, cfg.GRPCAddress = ml.ID, filepath.Join(c.cfg.Dir, ml.ID), ml.Raft, ml.GRPC
	cfg.Bootstrap = fresh && i == 0
	cfg.Logger, cfg.Registerer = c.log.With("node", ml.ID), c.registerer(ml.ID)
	cfg.TLS = c.cfg.TLS
	if c.cfg.Profile != nil {
		cfg.DefaultProfile = c.cfg.Profile
	}
	if c.cfg.ConfigureMeta != nil {
		c.cfg.ConfigureMeta(&cfg)
	}
	node, err := meta.New(cfg)
	if err != nil {
		lis.Close()
		return err
	}
	ml.Raft = node.RaftAddress()
	m := &metaMember{node: node, served: make(chan error, 1)}
	go func() { m.served <- node.Serve(lis) }()
	c.metas = append(c.metas, m)
	return nil
}

// join adds member i through member 0, retrying for up to a minute while
// the cluster elects its first leader.
func (c *Cluster) join(ctx context.Context, i int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return c.metas[i].node.Join(ctx, c.layout.Meta[0].GRPC)
}

func (c *Cluster) startStorage(i int) error {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	cfg := server.DefaultConfig()
	cfg.NodeID = fmt.Sprintf("storage-%d", i)
	cfg.DataDirs = []string{filepath.Join(c.cfg.Dir, cfg.NodeID)}
	cfg.Advertise, cfg.Zone = lis.Addr().String(), fmt.Sprintf("zone-%d", i%3)
	cfg.Meta = c.MetaAddrs()
	cfg.Logger, cfg.Registerer = c.log.With("node", cfg.NodeID), c.registerer(cfg.NodeID)
	cfg.TLS = c.cfg.TLS
	if c.cfg.ConfigureStorage != nil {
		c.cfg.ConfigureStorage(&cfg)
	}
	node, err := server.New(cfg)
	if err != nil {
		lis.Close()
		return err
	}
	s := &storageNode{node: node, addr: cfg.Advertise, done: make(chan error, 1)}
	go func() { s.done <- node.Serve(lis) }()
	c.storage = append(c.storage, s)
	return nil
}

func (c *Cluster) waitForHeartbeats(ctx context.Context) error {
	client, closeConn, err := c.metaClient()
	if err != nil {
		return err
	}
	defer closeConn()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		resp, err := client.ListNodes(ctx, &metapb.ListNodesRequest{})
		if err == nil && countLive(resp.Nodes, c.StorageAddrs()) == len(c.storage) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("storage nodes did not all heartbeat to meta within a minute (last: %v)", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// countLive counts nodes registered at one of addrs and heard from.
func countLive(nodes []*metapb.StorageNode, addrs []string) int {
	want := map[string]bool{}
	for _, a := range addrs {
		want[a] = true
	}
	n := 0
	for _, node := range nodes {
		if want[node.Address] && node.LastHeartbeatUnixNano > 0 && node.State == metapb.NodeState_NODE_STATE_UP {
			n++
		}
	}
	return n
}

func (c *Cluster) metaClient() (metapb.MetaServiceClient, func(), error) {
	creds := insecure.NewCredentials()
	if c.cfg.TLS != nil {
		creds = c.cfg.TLS.ClientCredentials()
	}
	conn, err := grpc.NewClient(c.layout.Meta[0].GRPC, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, nil, err
	}
	return metapb.NewMetaServiceClient(conn), func() { conn.Close() }, nil
}

// MetaAddrs returns the meta members' gRPC addresses.
func (c *Cluster) MetaAddrs() []string {
	var out []string
	for _, m := range c.layout.Meta {
		out = append(out, m.GRPC)
	}
	return out
}

// StorageAddrs returns the storage nodes' gRPC addresses.
func (c *Cluster) StorageAddrs() []string {
	var out []string
	for _, s := range c.storage {
		out = append(out, s.addr)
	}
	return out
}

// StopStorage stops storage node i (as if it died: it does not come back).
func (c *Cluster) StopStorage(ctx context.Context, i int) error {
	s := c.storage[i]
	err := errors.Join(s.node.Shutdown(ctx), <-s.done)
	c.storage = append(c.storage[:i:i], c.storage[i+1:]...)
	return err
}

// Shutdown stops the storage nodes, then the meta members.
func (c *Cluster) Shutdown(ctx context.Context) error {
	var errs []error
	for _, s := range c.storage {
		errs = append(errs, s.node.Shutdown(ctx), <-s.done)
	}
	c.storage = nil
	for _, m := range c.metas {
		errs = append(errs, m.node.Shutdown(ctx), <-m.served)
	}
	c.metas = nil
	return errors.Join(errs...)
}
