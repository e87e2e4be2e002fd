package server

import (
	"context"
	"strings"
	"time"

	"github.com/clipstore/clipstore/internal/tlsconf"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// transportCredentials are the node's calls' (to meta, to other nodes):
// TLS with its identity, or plain text without one.
func (c Config) transportCredentials() credentials.TransportCredentials {
	if c.TLS == nil {
		return insecure.NewCredentials()
	}
	return c.TLS.ClientCredentials()
}

// serverCredentials require a certificate of the CA bundle from every
// caller, and a cluster member's for the cluster's own calls.
func (c Config) serverCredentials() []grpc.ServerOption {
	if c.TLS == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.Creds(credentials.NewTLS(c.TLS.ServerConfig(true))),
		grpc.ChainUnaryInterceptor(checkRole)}
}

// serverLimits bound what one caller may use: streams per connection,
// header size, idle connections, and keepalive pings no more often than
// every 10 s (the message size is bounded by MaxPieceSize).
func (c Config) serverLimits() []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.MaxHeaderListSize(64 << 10),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if c.MaxStreams > 0 {
		opts = append(opts, grpc.MaxConcurrentStreams(c.MaxStreams))
	}
	if c.IdleTimeout > 0 {
		opts = append(opts, grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: c.IdleTimeout}))
	}
	return opts
}

// clusterCalls are the node's RPCs only cluster members make: deleting a
// shard is meta's decision, carried out by the node itself.
var clusterCalls = map[string]bool{"DeleteShard": true}

func checkRole(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
	if clusterCalls[method] {
		if cert := tlsconf.PeerCertificate(ctx); cert == nil || !tlsconf.HasRole(cert, tlsconf.RoleMeta, tlsconf.RoleStorage) {
			return nil, status.Errorf(codes.PermissionDenied, "%s is for certificates with the meta or storage role", method)
		}
	}
	return handler(ctx, req)
}
