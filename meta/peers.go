package meta

import (
	"sync"

	pb "github.com/clipstore/clipstore/proto/metapb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// peerConns caches gRPC connections to other members, for forwarding.
type peerConns struct {
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func newPeerConns() *peerConns { return &peerConns{conns: map[string]*grpc.ClientConn{}} }

func (p *peerConns) client(addr string) (pb.MetaServiceClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return pb.NewMetaServiceClient(c), nil
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
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
