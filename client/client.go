package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/clipstore/clipstore/erasure"
	"github.com/clipstore/clipstore/internal/wire"
	metapb "github.com/clipstore/clipstore/proto/metapb"
	storagepb "github.com/clipstore/clipstore/proto/storagepb"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// maxMessageSize bounds a gRPC message to or from a storage node: a whole
// piece (at most a 16 MiB block with k = 1), its trailer and framing.
const maxMessageSize = 17 << 20

// Client talks to a clipstore cluster: meta members for records, storage
// nodes for shard data. It is safe for concurrent use; make one per
// process and Close it when done.
type Client struct {
	cfg Config
	log *slog.Logger

	mu struct {
		sync.Mutex
		conns  map[string]*grpc.ClientConn // by address: meta members and storage nodes
		codes  map[Profile]*erasure.Code
		next   int // the meta member to try first
		closed bool
	}
}

// New returns a client for the meta members in cfg.Meta. Connections are
// made lazily and reused: one per address.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Client{cfg: cfg, log: cfg.Logger}
	c.mu.conns = map[string]*grpc.ClientConn{}
	c.mu.codes = map[Profile]*erasure.Code{}
	for _, addr := range cfg.Meta {
		if _, err := c.conn(addr); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close closes every connection. Calls in flight fail.
func (c *Client) Close() error {
	c.mu.Lock()
	conns := c.mu.conns
	c.mu.conns, c.mu.closed = map[string]*grpc.ClientConn{}, true
	c.mu.Unlock()
	var errs []error
	for _, cc := range conns {
		errs = append(errs, cc.Close())
	}
	return errors.Join(errs...)
}

// conn returns the connection to addr, dialling it (lazily) on first use.
func (c *Client) conn(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return nil, fmt.Errorf("%w: client closed", ErrUnavailable)
	}
	if cc, ok := c.mu.conns[addr]; ok {
		return cc, nil
	}
	opts := append(wire.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageSize), grpc.MaxCallSendMsgSize(maxMessageSize)))
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: connect %s: %v", ErrUnavailable, addr, err)
	}
	c.mu.conns[addr] = cc
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

// metaMember returns the meta member to try for attempt n of a call.
func (c *Client) metaMember(attempt int) (metapb.MetaServiceClient, int, error) {
	c.mu.Lock()
	i := (c.mu.next + attempt) % len(c.cfg.Meta)
	c.mu.Unlock()
	cc, err := c.conn(c.cfg.Meta[i])
	if err != nil {
		return nil, i, err
	}
	return metapb.NewMetaServiceClient(cc), i, nil
}

// answered remembers the member that answered, to try it first next time.
func (c *Client) answered(i int) {
	c.mu.Lock()
	c.mu.next = i
	c.mu.Unlock()
}

// callMeta runs one meta call with retries: every attempt gets
// RequestTimeout; an attempt that fails with Unavailable (no leader, a
// leader change, a member down) or times out is retried on the next member
// after an exponential backoff with jitter, at most MaxRetries times. The
// request is built once by the caller, so a retried write carries the same
// request id and the FSM answers it with the first outcome.
func callMeta[Resp any](ctx context.Context, c *Client, what string,
	call func(context.Context, metapb.MetaServiceClient) (Resp, error)) (Resp, error) {
	var zero Resp
	var err error
	for attempt := 0; ; attempt++ {
		var mc metapb.MetaServiceClient
		var member int
		mc, member, err = c.metaMember(attempt)
		if err != nil {
			return zero, err
		}
		actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		resp, cerr := call(actx, mc)
		cancel()
		if cerr == nil {
			c.answered(member)
			return resp, nil
		}
		err = fromStatus(what, cerr)
		if ctx.Err() != nil {
			return zero, fmt.Errorf("%s: %w", what, ctx.Err())
		}
		if !retryable(err) || attempt >= c.cfg.MaxRetries {
			return zero, err
		}
		c.log.Debug("meta call failed, retrying", "call", what, "attempt", attempt+1, "err", err)
		if serr := sleep(ctx, backoff(attempt)); serr != nil {
			return zero, fmt.Errorf("%s: %w (last error: %v)", what, serr, err)
		}
	}
}

// backoff returns the pause before retry attempt+1: 25 ms doubling up to
// 2 s, with full jitter over its upper half.
func backoff(attempt int) time.Duration {
	d := 25 * time.Millisecond << min(attempt, 7)
	d = min(d, 2*time.Second)
	return d/2 + rand.N(d/2+1)
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// newRequestID returns a fresh 16-byte idempotency key: a UUIDv7, so that
// meta's request index, keyed by it, grows at its right edge (see meta's
// newID).
func newRequestID() []byte {
	id := uuid.Must(uuid.NewV7()) // fails only if crypto/rand does, which it never does
	return id[:]
}
