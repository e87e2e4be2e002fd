package meta

import (
	"sync"

	pb "github.com/clipstore/clipstore/proto/metapb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// peerConns caches gRPC connections to other members, for forwarding.
type peerConns struct {
	opts  []grpc.DialOption
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func newPeerConns(opts []grpc.DialOption) *peerConns {
	return &peerConns{opts: dialOptions(opts), conns: map[string]*grpc.ClientConn{}}
}

// dialOptions are the options of a member's connections to other members:
// the configured ones, or plain text when they set no credentials.
func dialOptions(opts []grpc.DialOption) []grpc.DialOption {
	if len(opts) == 0 {
		return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	return opts
}

func (p *peerConns) client(addr string) (pb.MetaServiceClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return pb.NewMetaServiceClient(c), nil
	}
	c, err := grpc.NewClient(addr, p.opts...)
	if err != nil {
		return nil, err
	}
	p.conns[addr] = c
	return pb.NewMetaServiceClient(c), nil
}

func (p *peerConns) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, c := range p.conns {
		c.Close()
		delete(p.conns, addr)
	}
}
