// Package conns keeps one gRPC connection per address for a process that
// talks to many servers (the client and the storage node to meta members
// and storage nodes, meta members to each other). Connections are made
// lazily, shared by every caller and closed together.
//
// A connection that breaks reconnects with a short, jittered backoff (at
// most MaxReconnectDelay) instead of gRPC's default of up to two minutes:
// a storage node that restarts must be reachable again within a second or
// two, not after its callers' backoff runs out.
package conns

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// ErrClosed is returned by Get after Close.
var ErrClosed = errors.New("connections closed")

// MaxReconnectDelay bounds the pause between two attempts to re-establish
// a broken connection.
const MaxReconnectDelay = time.Second

// reconnect is gRPC's exponential backoff, capped at MaxReconnectDelay.
var reconnect = grpc.ConnectParams{
	Backoff: backoff.Config{
		BaseDelay:  50 * time.Millisecond,
		Multiplier: 1.6,
		Jitter:     0.2,
		MaxDelay:   MaxReconnectDelay,
	},
	MinConnectTimeout: 5 * time.Second,
}

// Cache holds one connection per address, dialled with the same options.
// It is safe for concurrent use.
type Cache struct {
	opts []grpc.DialOption

	mu struct {
		sync.Mutex
		conns  map[string]*grpc.ClientConn
		closed bool
	}
}

// New returns an empty cache whose connections use opts (credentials
// among them) and the short reconnect backoff.
func New(opts ...grpc.DialOption) *Cache {
	c := &Cache{opts: append([]grpc.DialOption{grpc.WithConnectParams(reconnect)}, opts...)}
	c.mu.conns = make(map[string]*grpc.ClientConn)
	return c
}

// Get returns the connection to addr, making it on first use. Making one
// does not wait for the server: the first call on it does.
func (c *Cache) Get(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return nil, ErrClosed
	}
	if cc, ok := c.mu.conns[addr]; ok {
		return cc, nil
	}
	cc, err := grpc.NewClient(addr, c.opts...)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", addr, err)
	}
	c.mu.conns[addr] = cc
	return cc, nil
}

// Close closes every connection; calls in flight on them fail, and Get
// fails from now on.
func (c *Cache) Close() error {
	c.mu.Lock()
	conns := c.mu.conns
	c.mu.conns, c.mu.closed = nil, true
	c.mu.Unlock()
	var errs []error
	for _, cc := range conns {
		errs = append(errs, cc.Close())
	}
	return errors.Join(errs...)
}
