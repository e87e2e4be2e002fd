package meta

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// dialOptions are the options of a member's connections to other members
// (forwarding to the leader, Join): the configured ones, else TLS with the
// member's identity if it has one, else plain text.
func (n *Node) dialOptions() []grpc.DialOption {
	switch {
	case len(n.cfg.DialOptions) > 0:
		return n.cfg.DialOptions
	case n.cfg.TLS != nil:
		return []grpc.DialOption{grpc.WithTransportCredentials(n.cfg.TLS.ClientCredentials())}
	}
	return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
}
