package meta

import (
	"context"
	"errors"
	"fmt"

	"github.com/clipstore/clipstore/internal/callauth"
	pb "github.com/clipstore/clipstore/proto/metapb"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// forwardedKey marks a request forwarded by another member, so that a
// member that is not the leader either answers or fails, never forwards on.
const forwardedKey = "clipstore-forwarded-by"

// leaderClient returns a client for the leader's MetaService, or
// ErrNotLeader when no leader is known or the request was forwarded here
// already.
func (n *Node) leaderClient(ctx context.Context) (pb.MetaServiceClient, context.Context, error) {
	cc, fctx, err := n.leaderConn(ctx)
	if err != nil {
		return nil, nil, err
	}
	return pb.NewMetaServiceClient(cc), fctx, nil
}

// leaderConn is leaderClient's connection.
func (n *Node) leaderConn(ctx context.Context) (*grpc.ClientConn, context.Context, error) {
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get(forwardedKey)) > 0 {
		return nil, nil, n.notLeader(fmt.Sprintf("member %s was forwarded a request but is not the leader", n.cfg.ID))
	}
	leader := n.Leader()
	if leader == "" {
		return nil, nil, n.notLeader("no leader elected; retry")
	}
	addr, err := n.memberAddress(leader)
	if err != nil {
		return nil, nil, err
	}
	cc, err := n.peers.Get(addr)
	if err != nil {
		return nil, nil, n.notLeader(fmt.Sprintf("dial the leader: %v", err))
	}
	return cc, forwardContext(ctx, n.cfg.ID), nil
}

// forwardContext is the context of a call forwarded by member id: it says
// so, and carries the call's signature or asserted principal, which the
// leader checks again (the request's bytes are the same).
func forwardContext(ctx context.Context, id string) context.Context {
	kv := []string{forwardedKey, id}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		for _, k := range []string{callauth.Header, callauth.PrincipalHeader} {
			for _, v := range md.Get(k) {
				kv = append(kv, k, v)
			}
		}
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// notLeader is ErrNotLeader with the leader this member knows of.
func (n *Node) notLeader(detail string) error {
	e := &NotLeaderError{LeaderID: n.Leader(), Detail: detail}
	if e.LeaderID != "" {
		e.LeaderAddress, _ = n.memberAddress(e.LeaderID)
	}
	return e
}

// memberAddress looks up a member's gRPC address in the FSM.
func (n *Node) memberAddress(id string) (string, error) {
	var addr string
	err := n.fsm.viewApplied(func(tx *bolt.Tx) error {
		m := &pb.Member{}
		found, err := getMsg(tx.Bucket(bktMembers), []byte(id), m)
		if found {
			addr = m.GrpcAddress
		}
		return err
	})
	if err == nil && addr == "" {
		err = fmt.Errorf("%w: the address of leader %s is not known here yet; retry", ErrNotLeader, id)
	}
	return addr, err
}

// onLeader runs local on the leader, or the same call on the leader when
// this member is not it.
func onLeader[Req, Resp any](ctx context.Context, n *Node, req Req,
	local func(context.Context, Req) (Resp, error),
	remote func(pb.MetaServiceClient, context.Context, Req, ...grpc.CallOption) (Resp, error),
) (Resp, error) {
	if n.IsLeader() {
		resp, err := local(ctx, req)
		if !errors.Is(err, ErrNotLeader) {
			return resp, toStatus(err)
		}
		// Leadership moved while we worked: the new leader answers.
	}
	var zero Resp
	c, fctx, err := n.leaderClient(ctx)
	if err != nil {
		return zero, toStatus(err)
	}
	return remote(c, fctx, req)
}

// read answers a read locally when stale reads are allowed or this member
// leads (after a read barrier), and on the leader otherwise.
func read[Req, Resp any](ctx context.Context, n *Node, req Req, opts *pb.ReadOptions,
	local func(context.Context, Req) (Resp, error),
	remote func(pb.MetaServiceClient, context.Context, Req, ...grpc.CallOption) (Resp, error),
) (Resp, error) {
	if opts.GetStale() {
		resp, err := local(ctx, req)
		return resp, toStatus(err)
	}
	return onLeader(ctx, n, req, func(ctx context.Context, req Req) (Resp, error) {
		if err := n.linearizable(ctx); err != nil {
			var zero Resp
			return zero, err
		}
		return local(ctx, req)
	}, remote)
}
