package tlsconf

import (
	"context"
	"net"

	"google.golang.org/grpc/credentials"
)

// ClientCredentials are gRPC transport credentials with the Loader's
// identity that verify each server against the host of its dial address
// (the connection's authority), by IP address or DNS name. One value
// serves connections to every address, as a conns.Cache needs.
//
// credentials.NewTLS(l.ClientConfig("")) cannot do this for servers dialled
// by IP address: gRPC writes the host into its per-handshake copy of the
// config, out of VerifyConnection's reach, and crypto/tls does not send an
// IP address as SNI, the one name VerifyConnection sees.
func (l *Loader) ClientCredentials() credentials.TransportCredentials {
	return &clientCreds{TransportCredentials: credentials.NewTLS(l.ClientConfig("")), l: l}
}

type clientCreds struct {
	credentials.TransportCredentials // ServerHandshake, Info
	l                                *Loader
}

func (c *clientCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	host, _, err := net.SplitHostPort(authority)
	if err != nil {
		host = authority // no port, as gRPC itself allows
	}
	return credentials.NewTLS(c.l.ClientConfig(host)).ClientHandshake(ctx, authority, raw)
}

func (c *clientCreds) Clone() credentials.TransportCredentials {
	return &clientCreds{TransportCredentials: c.TransportCredentials.Clone(), l: c.l}
}
