package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"

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

	hb  *heartbeater // nil when stand-alone
	rep *repairer    // runs meta's repair work; nil when stand-alone
	// scrub verifies the shards; it runs in the background only with meta.
	scrub *scrubber
	gc    *collector // nil when stand-alone

	mu struct {
		sync.Mutex
		hbCancel context.CancelFunc // set while the heartbeater runs
		hbDone   chan struct{}
		stopped  bool
	}
}

// New opens the node's disks (see OpenStore) and prepares its gRPC server.
func New(cfg Config) (*Node, error) {
	store, err := OpenStore(cfg)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: store.log, store: store, health: health.NewServer()}
	n.grpc = grpc.NewServer(append(wire.ServerOptions(),
		grpc.MaxRecvMsgSize(cfg.maxMessageSize()),
		grpc.MaxSendMsgSize(cfg.maxMessageSize()),
	)...)
	svc := &service{store: store, nodeID: cfg.NodeID}
	pb.RegisterStorageServiceServer(n.grpc, svc)
	healthpb.RegisterHealthServer(n.grpc, n.health)
	if len(cfg.Meta) > 0 {
		if n.hb, err = newHeartbeater(n); err != nil {
			store.Close()
			return nil, err
		}
		// A read that meets a corrupt piece reports the shard as a scrub does.
		svc.onCorrupt = func(id ShardID) { n.hb.reportCorrupt([]ShardID{id}) }
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
	n.startHeartbeats()
	err := n.grpc.Serve(lis)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Shutdown stops accepting requests, waits for those in flight until ctx is
// done (then cancels them), and closes the disks. Writes cut short leave
// nothing behind.
func (n *Node) Shutdown(ctx context.Context) error {
	n.stopHeartbeats()
	n.health.Shutdown()
	done := make(chan struct{})
	go func() {
		n.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		n.grpc.Stop()
		<-done
	}
	return n.store.Close()
}

// startHeartbeats starts the heartbeater once, unless shut down.
func (n *Node) startHeartbeats() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.hb == nil || n.mu.hbDone != nil || n.mu.stopped {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	n.mu.hbCancel, n.mu.hbDone = cancel, done
	go func() {
		defer close(done)
		n.hb.run(ctx)
	}()
	n.rep.start()
	n.scrub.start()
	n.gc.start()
}

// stopHeartbeats stops the heartbeater, the repair workers it feeds, the
// scrubber and the garbage collector, and waits for them.
func (n *Node) stopHeartbeats() {
	n.mu.Lock()
	cancel, done := n.mu.hbCancel, n.mu.hbDone
	first := !n.mu.stopped
	n.mu.stopped = true
	n.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	if !first {
		return
	}
	n.scrub.bg.stop()
	if n.hb != nil {
		n.rep.stop()
		n.gc.bg.stop()
		n.hb.close()
	}
}
