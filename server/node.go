package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/clipstore/clipstore/internal/conns"
	"github.com/clipstore/clipstore/internal/metacall"
	"github.com/clipstore/clipstore/internal/wire"
	pb "github.com/clipstore/clipstore/proto/storagepb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Node is a storage node: the shard store served over gRPC.
type Node struct {
	cfg    Config
	log    *slog.Logger
	store  *Store
	grpc   *grpc.Server
	health *health.Server

	// bg owns every goroutine the node runs besides gRPC's, and the
	// synchronous runs of the same work; Shutdown stops them all.
	bg *background
	// conns holds the node's connections: to meta members and to the
	// peers repairs read from.
	conns *conns.Cache
	// meta is the node's one way to call meta; nil when stand-alone.
	meta *metacall.Caller

	hb  *heartbeater // nil when stand-alone
	rep *repairer    // runs meta's repair work; nil when stand-alone
	// scrub verifies the shards; it runs in the background only with meta.
	scrub *scrubber
	gc    *collector // nil when stand-alone
	// losses counts the shards found lost behind the node's back.
	losses *losses
	// gate checks callers' capability tokens.
	gate *gate
	// raw serves raw shard reads and writes; nil when the node serves
	// neither.
	raw *rawServer

	mu struct {
		sync.Mutex
		started, stopped bool
	}
}

// New opens the node's disks (see OpenStore) and prepares its gRPC server.
func New(cfg Config) (*Node, error) {
	store, err := OpenStore(cfg)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: store.log, store: store, health: health.NewServer(), bg: newBackground(),
		conns: conns.New(append(wire.DialOptions(), grpc.WithTransportCredentials(cfg.transportCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cfg.maxMessageSize())))...)}
	n.gate = &gate{tls: cfg.TLS != nil, now: time.Now}
	if len(cfg.Meta) == 0 {
		n.gate.set(nil, true) // stand-alone: no meta, no tokens
	}
	n.grpc = grpc.NewServer(append(append(wire.ServerOptions(),
		grpc.MaxRecvMsgSize(cfg.maxMessageSize()),
		grpc.MaxSendMsgSize(cfg.maxMessageSize()),
		grpc.ChainUnaryInterceptor(n.gate.unary), grpc.ChainStreamInterceptor(n.gate.stream),
	), append(cfg.serverLimits(), cfg.serverCredentials()...)...)...)
	n.losses = newLosses(cfg.Registerer)
	svc := &service{store: store, nodeID: cfg.NodeID, onDamage: n.noteDamage}
	pb.RegisterStorageServiceServer(n.grpc, svc)
	if serves := cfg.rawServes(); serves != 0 {
		n.raw = newRawServer(svc, cfg.IdleTimeout, serves)
	}
	healthpb.RegisterHealthServer(n.grpc, n.health)
	if len(cfg.Meta) > 0 {
		n.meta, err = metacall.New(metacall.Config{Members: cfg.Meta, Conns: n.conns,
			AttemptTimeout: cfg.MetaTimeout, Attempts: len(cfg.Meta)})
		if err != nil {
			n.conns.Close()
			store.Close()
			return nil, err
		}
		n.hb = newHeartbeater(n)
		n.rep = newRepairer(n)
		n.gc = newCollector(n)
	}
	n.scrub = newScrubber(n)
	return n, nil
}

// Store returns the node's shard store.
func (n *Node) Store() *Store { return n.store }

// GRPCServer returns the node's gRPC server, so that a process may register
// more services on it before Serve.
func (n *Node) GRPCServer() *grpc.Server { return n.grpc }

// Serve answers gRPC requests on lis until Shutdown. It returns nil after a
// Shutdown.
func (n *Node) Serve(lis net.Listener) error {
	n.log.Info("storage node serving", "node", n.cfg.NodeID, "addr", lis.Addr().String(), "disks", len(n.store.disks))
	n.startBackground()
	if n.raw != nil {
		lis = newMuxListener(lis, n.raw)
	}
	err := n.grpc.Serve(lis)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Shutdown stops the background work, stops accepting requests, waits for
// those in flight until ctx is done (then cancels them), and closes the
// disks and connections. Writes cut short leave nothing behind.
func (n *Node) Shutdown(ctx context.Context) error {
	n.mu.Lock()
	n.mu.stopped = true
	n.mu.Unlock()
	n.bg.stop()
	n.health.Shutdown()
	done := make(chan struct{})
	go func() {
		n.grpc.GracefulStop()
		close(done)
	}()
	if n.raw != nil {
		n.raw.shutdown(ctx)
	}
	select {
	case <-done:
	case <-ctx.Done():
		n.grpc.Stop()
		<-done
	}
	return errors.Join(n.store.Close(), n.conns.Close())
}

// startBackground starts the node's work with meta once, unless shut
// down: the heartbeater, the repair workers, the scrubber and the garbage
// collector.
func (n *Node) startBackground() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.hb == nil || n.mu.started || n.mu.stopped {
		return
	}
	n.mu.started = true
	n.bg.start(n.hb.run)
	for range n.cfg.RepairConcurrency {
		n.bg.start(n.rep.work)
	}
	n.scrub.start()
	n.gc.start()
}
