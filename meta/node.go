package meta

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clipstore/clipstore/internal/conns"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Node is one member of the meta Raft group: its FSM, its Raft instance and
// the leader-only duties (placement, storage node liveness).
type Node struct {
	cfg    Config
	plans  planCache // epoch plans computed last (plan.go)
	log    *slog.Logger
	fsm    *fsm
	stores *raftStores
	trans  raft.Transport
	raft   *raft.Raft

	reads      *readBatcher
	live       *liveness
	repairs    *repairs
	rebalancer *rebalancer
	reports    *reportQueue
	progress   *repairProgress // repairs of lost shards
	moves      *repairProgress // drains' and rebalances' moves
	peers      *conns.Cache    // to other members, for forwarding
	metrics    *metrics
	secrets    cipher.AEAD // seals access keys' secrets; nil without Config.SecretsKey
	auditLog   *slog.Logger
	principals principalCache // access keys as authentication sees them
	ring       atomic.Pointer[keyringCache]

	// ctx is the member's lifetime: the leader's background loops propose
	// under it, and Shutdown or Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	replan chan struct{} // a repair landed: plan the next ones now
	hint   atomic.Pointer[leaderHint]
	wg     sync.WaitGroup
	// waiting counts the goroutines waiting on a raft future (waitFuture);
	// stop lets them end before raft shuts down, since raft drops a
	// committed entry's future unanswered when it stops before applying it.
	waiting atomic.Int64
	once    sync.Once

	mu struct {
		sync.Mutex
		grpc   *grpc.Server // set by Serve
		closed bool
	}
}

// New opens (or creates) the member's state in cfg.DataDir and starts Raft.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger, replan: make(chan struct{}, 1), progress: newRepairProgress(), moves: newRepairProgress()}
	n.ctx, n.cancel = context.WithCancel(context.Background()) // the member's lifetime; see Shutdown
	if n.log == nil {
		n.log = slog.Default()
	}
	n.log = n.log.With("member", cfg.ID)
	secrets, err := secretsAEAD(cfg.SecretsKey)
	if err != nil {
		return nil, fmt.Errorf("meta: secrets key: %w", err)
	}
	n.secrets = secrets
	n.auditLog = newAuditLog(cfg, n.log)
	f, err := openFSM(filepath.Join(cfg.DataDir, fsmFile), n.log, fsmOptions{requestTTL: cfg.RequestTTL,
		commitInterval: cfg.StateBatchInterval, commitEntries: cfg.StateBatchLimit})
	if err != nil {
		return nil, err
	}
	n.fsm = f
	n.metrics = newMetrics(cfg.Registerer, n)
	f.batchSize = n.metrics.batchSize
	if err := n.startRaft(); err != nil {
		n.closeStores()
		return nil, err
	}
	n.reads = newReadBatcher(n.raft, cfg.ApplyTimeout, n.waitApplied)
	n.live = newLiveness()
	n.repairs = newRepairs()
	n.rebalancer = newRebalancer()
	n.peers = conns.New(n.dialOptions()...)
	n.reports = newReportQueue()
	n.wg.Add(2)
	go n.leaderLoop()
	go n.proposeReports()
	return n, nil
}

// Shutdown stops the member gracefully, as net/http.Server.Shutdown does:
// it hands leadership over if this member leads (so that the cluster does
// not wait an election timeout), stops taking calls and waits for those in
// flight, then stops the leader's loops and Raft and closes the state. When
// ctx ends first, the leadership transfer is abandoned and calls still in
// flight are cut; the member still stops, and Shutdown returns ctx's error
// joined with any other. Calls after the first (of Shutdown or Close) do
// nothing and return nil.
func (n *Node) Shutdown(ctx context.Context) error {
	var err error
	n.once.Do(func() {
		err = errors.Join(n.transferOnShutdown(ctx), n.stopServing(ctx), n.stop(false))
	})
	return err
}

// Close stops the member at once, without handing leadership over and
// without waiting for calls in flight: to the rest of the cluster it is as
// if the member crashed.
func (n *Node) Close() error {
	var err error
	n.once.Do(func() {
		if srv := n.closeServer(); srv != nil {
			srv.Stop()
		}
		err = n.stop(true)
	})
	return err
}

// transferOnShutdown hands leadership to another voter if this member leads
// one of several, waiting for it until ctx ends.
func (n *Node) transferOnShutdown(ctx context.Context) error {
	if n.raft.State() != raft.Leader || len(n.voters()) < 2 {
		return nil
	}
	done := make(chan error, 1)
	// The future resolves when the transfer ends: at the latest its RPC
	// timeout (5 s) after it began, even past raft's shutdown.
	go func() { done <- n.raft.LeadershipTransfer().Error() }()
	select {
	case err := <-done:
		if err != nil {
			n.log.Warn("leadership transfer on shutdown failed", "err", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("leadership transfer on shutdown: %w", ctx.Err())
	}
}

// closeServer makes Serve refuse to start and returns the gRPC server it
// runs, if any.
func (n *Node) closeServer() *grpc.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.closed = true
	return n.mu.grpc
}

// stopServing stops the gRPC server Serve runs: gracefully until ctx ends,
// then by cutting every connection.
func (n *Node) stopServing(ctx context.Context) error {
	srv := n.closeServer()
	if srv == nil {
		return nil
	}
	done := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		srv.Stop()
		<-done
		return fmt.Errorf("calls in flight cut at shutdown: %w", ctx.Err())
	}
}

// drainFutures waits, at most ApplyTimeout, for the proposals in flight to
// be answered (committed and applied, or lost with the leadership) while
// raft still runs: raft.Shutdown would leave an entry committed but not yet
// applied unanswered, and its waiter blocked for good.
func (n *Node) drainFutures() {
	deadline := time.Now().Add(n.cfg.ApplyTimeout)
	for n.waiting.Load() > 0 {
		if time.Now().After(deadline) {
			n.log.Warn("shutting raft down with proposals unanswered", "proposals", n.waiting.Load())
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stop ends the member's lifetime: the leader's loops, Raft, the peer
// connections and the state. An abrupt stop (Close) cuts the member off
// from its peers first, as a crash would, so that they elect a new leader
// without waiting for it to wind down.
func (n *Node) stop(abrupt bool) error {
	nt, ours := n.trans.(*raft.NetworkTransport)
	ours = ours && n.cfg.Transport == nil
	if abrupt && ours {
		nt.CloseStreams()
		nt.Close()
	}
	n.cancel()
	n.wg.Wait()
	// Reads and proposals in flight end while raft still runs: raft.Shutdown
	// answers the futures it holds, but drops those of entries (a read
	// barrier, a proposal) committed and not yet applied, and a waiter on one
	// would block for good. New reads are refused from here on.
	n.reads.close()
	n.drainFutures()
	err := n.raft.Shutdown().Error()
	n.peers.Close()
	if ours {
		nt.CloseStreams() // pooled connections too, so that peers' readers end
		nt.Close()
	}
	return errors.Join(err, n.closeStores())
}

func (n *Node) closeStores() error {
	var errs []error
	if n.stores != nil {
		errs = append(errs, n.stores.logs.Close())
	}
	errs = append(errs, n.fsm.close())
	return errors.Join(errs...)
}

func (n *Node) voters() []raft.Server {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var out []raft.Server
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			out = append(out, s)
		}
	}
	return out
}

// IsLeader reports whether this member is the Raft leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the leader's member id, empty when unknown.
func (n *Node) Leader() string {
	_, id := n.raft.LeaderWithID()
	return string(id)
}

// propose replicates cmd through Raft and returns its outcome. Only the
// leader proposes. A proposal whose fate is unknown (timeout, leadership
// lost after it was sent) is ErrOutcomeUnknown, never "not written".
func (n *Node) propose(ctx context.Context, cmd *pb.Command) (proto.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cmd.ProposedUnixNano = n.cfg.now().UnixNano()
	data, err := proto.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	timeout := n.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	start := time.Now()
	f := n.raft.Apply(data, timeout)
	wctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	if err := n.waitFuture(wctx, f); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout):
			// Never entered the log: definitely not written.
			n.metrics.proposed(start, "not_leader")
			return nil, fmt.Errorf("%w: %v", ErrNotLeader, err)
		case errors.Is(err, raft.ErrRaftShutdown):
			n.metrics.proposed(start, "unknown")
			return nil, fmt.Errorf("%w: %w (the write may or may not be committed)", ErrOutcomeUnknown, ErrShutdown)
		default:
			n.metrics.proposed(start, "unknown")
			return nil, fmt.Errorf("%w: %v (retry with the same request id to learn it)", ErrOutcomeUnknown, err)
		}
	}
	res, ok := f.Response().(*applyResult)
	if !ok {
		n.metrics.proposed(start, "unknown")
		return nil, fmt.Errorf("%w: entry %d returned %T", ErrOutcomeUnknown, f.Index(), f.Response())
	}
	if res.err != nil {
		n.metrics.proposed(start, "rejected")
	} else {
		n.metrics.proposed(start, "ok")
	}
	return res.resp, res.err
}

// waitFuture waits for a proposal's outcome, or for ctx. raft bounds only
// the enqueueing of an entry by Apply's timeout; once queued, its future
// resolves at commit, lost leadership or shutdown, so the caller's context
// bounds the wait (and the outcome is then unknown).
func (n *Node) waitFuture(ctx context.Context, f raft.ApplyFuture) error {
	done := make(chan error, 1)
	n.waiting.Add(1)
	go func() {
		defer n.waiting.Add(-1)
		done <- f.Error()
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// linearizable returns once every write acknowledged before the call is
// applied to this member's FSM and the member was still the leader, so
// that a read of the FSM afterwards sees them all. Only the leader can.
func (n *Node) linearizable(ctx context.Context) error {
	if n.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	start := time.Now()
	err := n.reads.wait(ctx)
	n.metrics.readSec.Observe(time.Since(start).Seconds())
	return err
}

// TransferLeadership hands leadership to another voter (for maintenance);
// only the leader can.
func (n *Node) TransferLeadership() error {
	if err := n.raft.LeadershipTransfer().Error(); err != nil {
		return fmt.Errorf("%w: leadership transfer: %v", ErrUnavailable, err)
	}
	return nil
}

// Snapshot makes the member write a Raft snapshot now and compact its log.
func (n *Node) Snapshot() error {
	if err := n.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}
