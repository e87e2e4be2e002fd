package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/clipstore/clipstore/erasure"
	"github.com/clipstore/clipstore/internal/conns"
	"github.com/clipstore/clipstore/internal/metacall"
	"github.com/clipstore/clipstore/internal/rawshard"
	"github.com/clipstore/clipstore/internal/tlsconf"
	"github.com/clipstore/clipstore/internal/wire"
	metapb "github.com/clipstore/clipstore/proto/metapb"
	storagepb "github.com/clipstore/clipstore/proto/storagepb"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// maxMessageSize bounds a gRPC message to or from a storage node: a whole
// piece (at most a 16 MiB block with k = 1), its trailer and framing.
const maxMessageSize = 17 << 20

// Client talks to a clipstore cluster: meta members for records, storage
// nodes for shard data. It is safe for concurrent use; make one per
// process and Close it when done.
type Client struct {
	cfg   Config
	log   *slog.Logger
	conns *conns.Cache // meta members and storage nodes, one connection each
	meta  *metacall.Caller
	raw   *rawshard.Pool // raw connections; nil: shards go over gRPC (raw.go)

	mu struct {
		sync.Mutex
		codes map[Profile]*erasure.Code
	}
}

// New returns a client for the meta members in cfg.Meta. Connections are
// made lazily and reused: one per address.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Client{cfg: cfg, log: cfg.Logger, conns: conns.New(append(wire.DialOptions(),
		grpc.WithTransportCredentials(transportCredentials(cfg.TLS)),
		grpc.WithChainUnaryInterceptor(cfg.sign),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageSize), grpc.MaxCallSendMsgSize(maxMessageSize)))...)}
	c.mu.codes = map[Profile]*erasure.Code{}
	if use := cfg.rawUse(); use != 0 {
		c.raw = rawshard.NewPool(use)
	}
	var err error
	c.meta, err = metacall.New(metacall.Config{Members: cfg.Meta, Conns: c.conns,
		AttemptTimeout: cfg.MetaTimeout, Attempts: cfg.MaxRetries + 1})
	if err != nil {
		c.Close()
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// transportCredentials are TLS with identity l, or plain text if l is nil.
func transportCredentials(l *tlsconf.Loader) credentials.TransportCredentials {
	if l == nil {
		return insecure.NewCredentials()
	}
	return l.ClientCredentials()
}

// Close closes every connection. Calls in flight fail.
func (c *Client) Close() error {
	if c.raw != nil {
		c.raw.Close()
	}
	return c.conns.Close()
}

// conn returns the connection to addr, dialling it (lazily) on first use.
func (c *Client) conn(addr string) (*grpc.ClientConn, error) {
	cc, err := c.conns.Get(addr)
	if errors.Is(err, conns.ErrClosed) {
		return nil, fmt.Errorf("%w: client closed", ErrUnavailable)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return cc, nil
}

// storage returns a client for the storage node at addr.
func (c *Client) storage(addr string) (storagepb.StorageServiceClient, error) {
	if addr == "" {
		return nil, fmt.Errorf("%w: storage node has no known address", ErrUnavailable)
	}
	cc, err := c.conn(addr)
	if err != nil {
		return nil, err
	}
	return storagepb.NewStorageServiceClient(cc), nil
}

// code returns the erasure code of a profile, shared by every put and read
// of the client so that block buffers are reused.
func (c *Client) code(p Profile) (*erasure.Code, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if code, ok := c.mu.codes[p]; ok {
		return code, nil
	}
	code, err := erasure.New(p.DataShards, p.ParityShards,
		erasure.WithBlockSize(p.BlockSize), erasure.WithBlockCache(c.cfg.BlocksInFlight))
	if err != nil {
		return nil, fmt.Errorf("%w: profile %v: %v", ErrInvalidArgument, p, err)
	}
	c.mu.codes[p] = code
	return code, nil
}

// callMeta runs one meta call through the client's metacall.Caller: to the
// member believed to lead, every attempt bounded by MetaTimeout, on to
// the next member when one is unavailable or does not answer, at most
// MaxRetries times more. The request is built once by the caller, so a
// retried write carries the same request id and the FSM answers it with the
// first outcome. Errors are *StatusError, wrapped with what.
func callMeta[Resp any](ctx context.Context, c *Client, what string,
	call func(context.Context, metapb.MetaServiceClient) (Resp, error)) (Resp, error) {
	resp, err := metacall.Call(ctx, c.meta, call)
	if err != nil {
		if ctx.Err() != nil {
			return resp, fmt.Errorf("%s: %w", what, err)
		}
		return resp, fromStatus(what, err)
	}
	return resp, nil
}

// newRequestID returns a fresh 16-byte idempotency key: a UUIDv7, so that
// meta's request index, keyed by it, grows at its right edge (see meta's
// newID).
func newRequestID() []byte {
	id := uuid.Must(uuid.NewV7()) // fails only if crypto/rand does, which it never does
	return id[:]
}
