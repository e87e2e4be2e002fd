package server

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"github.com/clipstore/clipstore/internal/capability"
	"github.com/clipstore/clipstore/internal/tlsconf"
	metapb "github.com/clipstore/clipstore/proto/metapb"
	pb "github.com/clipstore/clipstore/proto/storagepb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Capabilities (see internal/capability and meta/capability.go). A node
// learns from meta, when it registers and in heartbeat answers, whether
// tokens are required and the keyring to check them with. Then a caller
// whose certificate is not a cluster member's (meta or storage: repairs'
// sources, moves) opens a shard stream only with a token that covers it:
// reads and stats of shards whose header names a clip of a read token,
// writes of a write token's shard ids with its clip and deadline, listings
// with an inventory token. Until a node with TLS has registered, it does
// not know whether tokens are required, and takes only members' calls.

// gate is the node's capability check.
type gate struct {
	tls   bool // the node serves TLS: without it, nothing is checked
	state atomic.Pointer[gateState]
	now   func() time.Time
}

type gateState struct {
	required       bool
	ring           capability.Keyring
	newest, oldest uint32
}

// set takes the keyring meta sent; nil from a registration: none required.
func (g *gate) set(k *metapb.Keyring, registering bool) {
	if k == nil {
		if registering {
			g.state.Store(&gateState{})
		}
		return
	}
	st := &gateState{required: k.Required, ring: capability.Keyring{}}
	for _, key := range k.Keys {
		st.ring[key.Id] = key.Secret
		if st.oldest == 0 || key.Id < st.oldest {
			st.oldest = key.Id
		}
		st.newest = max(st.newest, key.Id)
	}
	g.state.Store(st)
}

// held returns the ids of the keys the node holds, for its heartbeat.
func (g *gate) held() (newest, oldest uint32) {
	if st := g.state.Load(); st != nil {
		return st.newest, st.oldest
	}
	return 0, 0
}

// gatedCalls are the calls that need a token.
var gatedCalls = map[string]bool{"WriteShard": true, "ReadShard": true, "StatShard": true, "ListShards": true}

type capKey struct{}

// admit decides whether a call may open: a member's certificate, or a
// cluster without capabilities, passes; otherwise the call's token is
// checked and goes into the context for the handler's finer checks.
func (g *gate) admit(ctx context.Context, method string) (context.Context, error) {
	if !g.tls || !gatedCalls[method] {
		return ctx, nil
	}
	if cert := tlsconf.PeerCertificate(ctx); cert != nil && tlsconf.HasRole(cert, tlsconf.RoleMeta, tlsconf.RoleStorage) {
		return ctx, nil
	}
	st := g.state.Load()
	switch {
	case st == nil:
		return nil, status.Error(codes.Unavailable, "this storage node has not registered with meta yet: it does not know whether tokens are required")
	case !st.required:
		return ctx, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	tokens := md.Get(capability.Header)
	if len(tokens) != 1 {
		return nil, status.Errorf(codes.Unauthenticated, "%s needs a capability token from meta (%d given)", method, len(tokens))
	}
	c, err := st.ring.Verify([]byte(tokens[0]), g.now())
	if err != nil {
		return nil, status.Errorf(codes.Unauthenticated, "%s: %v", method, err)
	}
	return context.WithValue(ctx, capKey{}, c), nil
}

// tokenOf is the capability a call was admitted with; nil for a member's
// call or a cluster without capabilities.
func tokenOf(ctx context.Context) *pb.Capability {
	c, _ := ctx.Value(capKey{}).(*pb.Capability)
	return c
}

// denied is a token that does not cover what the call does.
func denied(method string, err error) error {
	return status.Errorf(codes.PermissionDenied, "%s: %v", method, err)
}

// checkRead refuses a read (or stat) of a shard of clip the call's token
// does not cover.
func checkRead(ctx context.Context, method string, clip ClipID) error {
	if c := tokenOf(ctx); c != nil {
		if err := capability.AllowsRead(c, clip[:]); err != nil {
			return denied(method, err)
		}
	}
	return nil
}

// checkWrite refuses a write the call's token does not cover.
func checkWrite(ctx context.Context, h ShardHeader) error {
	if c := tokenOf(ctx); c != nil {
		if err := capability.AllowsWrite(c, h.ClipID[:], h.ShardID[:], h.CommitDeadline); err != nil {
			return denied("WriteShard", err)
		}
	}
	return nil
}

// checkInventory refuses a listing without an inventory token.
func checkInventory(ctx context.Context) error {
	if c := tokenOf(ctx); c != nil {
		if err := capability.AllowsInventory(c); err != nil {
			return denied("ListShards", err)
		}
	}
	return nil
}

func (g *gate) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := g.admit(ctx, info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:])
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (g *gate) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := g.admit(ss.Context(), info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:])
	if err != nil {
		return err
	}
	if ctx == ss.Context() {
		return handler(srv, ss)
	}
	return handler(srv, &gatedStream{ServerStream: ss, ctx: ctx})
}

// gatedStream is a stream whose context carries its token.
type gatedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *gatedStream) Context() context.Context { return s.ctx }
