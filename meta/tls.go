package meta

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/clipstore/clipstore/internal/tlsconf"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
)

// With Config.TLS every link of a member is TLS 1.3 with certificates of
// the cluster's CA on both ends: the gRPC server (clients, storage nodes
// and other members present theirs), the calls it makes to other members,
// and the Raft transport, where both ends must carry the meta role.

// handshakeTimeout bounds a Raft connection's TLS handshake.
const handshakeTimeout = 10 * time.Second

// tlsStreamLayer is Raft's stream layer over TLS between meta members.
type tlsStreamLayer struct {
	net.Listener // plain TCP; Accept does the handshake
	tls          *tlsconf.Loader
	log          hclog.Logger
}

// Accept returns the next connection whose TLS handshake succeeded with a
// meta member's certificate; others are closed, logged, and skipped.
func (l *tlsStreamLayer) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := tls.Server(c, l.tls.ServerConfig(true))
		if err := handshakeAs(tc, tlsconf.RoleMeta); err != nil {
			l.log.Warn("raft connection refused", "remote", c.RemoteAddr().String(), "err", err)
			c.Close()
			continue
		}
		return tc, nil
	}
}

// Dial connects to the member at addr, which must prove the meta role.
func (l *tlsStreamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	host, _, err := net.SplitHostPort(string(addr))
	if err != nil {
		return nil, err
	}
	c, err := net.DialTimeout("tcp", string(addr), timeout)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(c, l.tls.ClientConfig(host))
	if err := handshakeAs(tc, tlsconf.RoleMeta); err != nil {
		c.Close()
		return nil, fmt.Errorf("raft peer %s: %w", addr, err)
	}
	return tc, nil
}

// handshakeAs completes c's handshake and checks that the peer's
// certificate carries role.
func handshakeAs(c *tls.Conn, role string) error {
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		return err
	}
	certs := c.ConnectionState().PeerCertificates
	if len(certs) == 0 || !tlsconf.HasRole(certs[0], role) {
		return fmt.Errorf("the peer's certificate lacks the %s role", role)
	}
	return nil
}

// newTLSTransport is newTCPTransport over TLS.
func newTLSTransport(bind string, l *tlsconf.Loader, logger hclog.Logger) (*raft.NetworkTransport, error) {
	lis, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	if a, ok := lis.Addr().(*net.TCPAddr); !ok || a.IP.IsUnspecified() {
		lis.Close()
		return nil, fmt.Errorf("raft bind address %s is not one the other members can reach: give a host", lis.Addr())
	}
	layer := &tlsStreamLayer{Listener: lis, tls: l, log: logger}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: layer,
		Logger: logger, MaxPool: 3, Timeout: 10 * time.Second, MaxRPCsInFlight: 1}), nil
}

// serverLimits are the gRPC server's bounds on what one caller may use:
// request size, streams per connection, header size, idle connections, and
// keepalive pings no more often than every 10 s.
func (n *Node) serverLimits() []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.MaxHeaderListSize(maxHeaderBytes),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if n.cfg.MaxRequestBytes > 0 {
		opts = append(opts, grpc.MaxRecvMsgSize(n.cfg.MaxRequestBytes))
	}
	if n.cfg.MaxStreams > 0 {
		opts = append(opts, grpc.MaxConcurrentStreams(n.cfg.MaxStreams))
	}
	if n.cfg.IdleTimeout > 0 {
		opts = append(opts, grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: n.cfg.IdleTimeout}))
	}
	return opts
}

// maxHeaderBytes bounds a request's gRPC metadata.
const maxHeaderBytes = 64 << 10

// serverCredentials are the gRPC server options of the member's TLS:
// every caller presents a certificate of the cluster's CA (authorize
// checks the roles).
func (n *Node) serverCredentials() []grpc.ServerOption {
	if n.cfg.TLS == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.Creds(credentials.NewTLS(n.cfg.TLS.ServerConfig(true)))}
}

// clusterCalls are the RPCs only cluster members make: storage nodes'
// registration, heartbeats, repairs' updates, inventories and garbage
// collection (meta members forward them too).
var clusterCalls = map[string]bool{
	"RegisterNode": true, "Heartbeat": true, "UpdateShard": true, "ListNodeShards": true, "CheckShards": true,
}

// memberCalls are the RPCs only meta members make: joining the group.
var memberCalls = map[string]bool{"JoinMember": true}

// gatewayCalls are the RPCs only S3 gateways make.
var gatewayCalls = map[string]bool{"SigningKey": true}

// fsckCalls are the cluster calls a cluster admin's key may make too:
// fsck's reads of the shard index.
var fsckCalls = map[string]bool{"ListNodeShards": true, "CheckShards": true}

// roleCalls returns the roles whose certificates may make method; nil
// for a user call (any certificate of the CA).
func roleCalls(method string) []string {
	switch {
	case clusterCalls[method]:
		return []string{tlsconf.RoleMeta, tlsconf.RoleStorage}
	case memberCalls[method]:
		return []string{tlsconf.RoleMeta}
	case gatewayCalls[method]:
		return []string{tlsconf.RoleGateway}
	}
	return nil
}

// checkRole refuses a cluster call from a certificate without a member's
// role, and a gateway's call from one without the gateway role.
func checkRole(cert *x509.Certificate, method string) error {
	roles := roleCalls(method)
	if roles == nil {
		return nil
	}
	if cert == nil || !tlsconf.HasRole(cert, roles...) {
		msg := fmt.Sprintf("%s is for certificates with the %s role", method, strings.Join(roles, " or "))
		if fsckCalls[method] {
			msg += ", or calls signed by a cluster admin's key"
		}
		return fmt.Errorf("%w: %s", ErrPermissionDenied, msg)
	}
	return nil
}
