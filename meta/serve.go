package meta

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/clipstore/clipstore/internal/metacall"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Serve answers MetaService calls on lis until Shutdown or Close, on a gRPC
// server built with opts (credentials, interceptors, limits). It returns nil
// once the member is shut down, and an error if it is already shut down or
// serving. lis should accept connections at Config.GRPCAddress, the address
// the member advertises to the others.
func (n *Node) Serve(lis net.Listener, opts ...grpc.ServerOption) error {
	n.mu.Lock()
	switch {
	case n.mu.closed:
		n.mu.Unlock()
		lis.Close()
		return ErrShutdown
	case n.mu.grpc != nil:
		n.mu.Unlock()
		return fmt.Errorf("%w: meta member %s is serving already", ErrFailedPrecondition, n.cfg.ID)
	}
	// The audit interceptor first: it sees the refusals of those after it.
	opts = append(append(append(append(n.serverLimits(), grpc.ChainUnaryInterceptor(n.audit)), opts...), n.serverCredentials()...),
		grpc.ChainUnaryInterceptor(n.authorize, n.leaderHeader))
	srv := grpc.NewServer(opts...)
	pb.RegisterMetaServiceServer(srv, &service{n: n})
	n.mu.grpc = srv
	n.mu.Unlock()
	n.log.Info("meta member serving", "grpc", lis.Addr().String(), "raft", n.RaftAddress())
	if err := srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// leaderHeader names the leader this member knows of in every answer's
// header, so that callers (metacall) send their next calls there directly.
func (n *Node) leaderHeader(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if addr := n.leaderAddress(); addr != "" {
		grpc.SetHeader(ctx, metadata.Pairs(metacall.LeaderHeader, addr))
	}
	return handler(ctx, req)
}

// leaderHintTTL is how long leaderAddress trusts a looked-up address.
const leaderHintTTL = time.Second

type leaderHint struct {
	id, addr string
	at       time.Time
}

// leaderAddress is the leader's gRPC address as this member knows it, ""
// when it knows no leader; it looks the address up in the state at most
// once a second.
func (n *Node) leaderAddress() string {
	id := n.Leader()
	if id == "" {
		return ""
	}
	if h := n.hint.Load(); h != nil && h.id == id && time.Since(h.at) < leaderHintTTL {
		return h.addr
	}
	addr, err := n.memberAddress(id)
	if err != nil {
		return ""
	}
	n.hint.Store(&leaderHint{id: id, addr: addr, at: time.Now()})
	return addr
}

// joinRetryInterval is the pause between two JoinMember attempts.
const joinRetryInterval = 250 * time.Millisecond

// Join asks the member at addr, any member of a running cluster, to add this
// one to the Raft configuration as a voter, and retries while the cluster
// cannot answer (no leader yet, a leader change, a member starting) until
// ctx ends. A member that is in the configuration already joins again
// without harm, so a restarted process may call it too. Answers that no
// retry changes (a bad id or address) end it at once.
func (n *Node) Join(ctx context.Context, addr string) error {
	conn, err := grpc.NewClient(addr, n.dialOptions()...)
	if err != nil {
		return fmt.Errorf("join through %s: %w", addr, err)
	}
	defer conn.Close()
	mc := pb.NewMetaServiceClient(conn)
	req := &pb.JoinMemberRequest{Id: n.cfg.ID, RaftAddress: n.RaftAddress(), GrpcAddress: n.cfg.GRPCAddress}
	for {
		actx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
		_, err := mc.JoinMember(actx, req)
		cancel()
		if err == nil {
			n.log.Info("joined the meta cluster", "through", addr)
			return nil
		}
		if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
			return fmt.Errorf("join through %s: %w", addr, err)
		}
		t := time.NewTimer(joinRetryInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("join through %s: %w (last answer: %v)", addr, ctx.Err(), err)
		case <-t.C:
		}
	}
}
