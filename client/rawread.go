package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/clipstore/clipstore/internal/rawread"
	"github.com/clipstore/clipstore/internal/wire"
	storagepb "github.com/clipstore/clipstore/proto/storagepb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Raw reads (package rawread): a plain-text client reads shards over
// connections of its own to each node's port, which carry a unit in one
// frame instead of gRPC's 16 KiB HTTP/2 frames. A node that does not
// answer the raw handshake is read over gRPC, and asked again after
// rawRetryAfter.

const (
	rawIdlePerNode = 32               // idle connections kept per node
	rawRetryAfter  = time.Minute      // before asking a refusing node again
	rawHandshake   = 10 * time.Second // bound of a dial and its handshake
)

// rawConn is a raw connection and its read buffer, kept together: an
// answer ends with its last frame, so the buffer holds nothing when the
// connection goes back to the pool.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

// rawPool keeps idle raw connections per node address.
type rawPool struct {
	mu      sync.Mutex
	idle    map[string][]*rawConn
	refused map[string]time.Time // when the node answered without rawread.Magic
	closed  bool
}

func newRawPool() *rawPool {
	return &rawPool{idle: map[string][]*rawConn{}, refused: map[string]time.Time{}}
}

// errNoRaw: the node does not serve raw reads; use gRPC.
var errNoRaw = errors.New("node does not serve raw reads")

// get returns an idle connection to addr (reused), or a new one (always,
// with fresh). errNoRaw: the node refused raw reads lately.
func (p *rawPool) get(ctx context.Context, addr string, fresh bool) (c *rawConn, reused bool, err error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, false, fmt.Errorf("%w: client closed", ErrUnavailable)
	}
	if t, ok := p.refused[addr]; ok && time.Since(t) < rawRetryAfter {
		p.mu.Unlock()
		return nil, false, errNoRaw
	}
	if idle := p.idle[addr]; len(idle) > 0 && !fresh {
		c := idle[len(idle)-1]
		p.idle[addr] = idle[:len(idle)-1]
		p.mu.Unlock()
		return c, true, nil
	}
	p.mu.Unlock()
	c, err = p.dial(ctx, addr)
	return c, false, err
}

// dial opens a raw connection to addr and makes the handshake.
func (p *rawPool) dial(ctx context.Context, addr string) (*rawConn, error) {
	dctx, cancel := context.WithTimeout(ctx, rawHandshake)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "raw read: %v", err)
	}
	c.SetDeadline(time.Now().Add(rawHandshake))
	var answer [len(rawread.Magic)]byte
	_, err = c.Write([]byte(rawread.Magic))
	if err == nil {
		_, err = io.ReadFull(c, answer[:])
	}
	c.SetDeadline(time.Time{})
	if err != nil || string(answer[:]) != rawread.Magic {
		c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		p.mu.Lock()
		p.refused[addr] = time.Now()
		p.mu.Unlock()
		return nil, errNoRaw
	}
	return &rawConn{Conn: c, r: bufio.NewReaderSize(c, 32<<10)}, nil
}

// put keeps c for the next read from addr.
func (p *rawPool) put(addr string, c *rawConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle[addr]) >= rawIdlePerNode {
		c.Close()
		return
	}
	p.idle[addr] = append(p.idle[addr], c)
}

func (p *rawPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, cs := range p.idle {
		for _, c := range cs {
			c.Close()
		}
	}
	p.idle = nil
}

// rawPump is pump over a raw connection to addr; a node that does not
// serve raw reads is read with pump, over gRPC. An idle connection may
// have been closed by the node since it was last used (its idle timeout,
// a restart): a request that gets no answer at all on one is sent again
// on a new connection.
func (s *unitStream) rawPump(ctx context.Context, pool *rawPool, addr string, sc storagepb.StorageServiceClient,
	req *storagepb.ReadShardRequest, idle time.Duration) {
	for fresh := false; ; fresh = true {
		c, reused, err := pool.get(ctx, addr, fresh)
		switch {
		case errors.Is(err, errNoRaw):
			s.pump(ctx, sc, req, idle)
			return
		case err != nil:
			s.deliver(ctx, unitMsg{err: err})
			return
		}
		if !s.rawRead(ctx, pool, addr, c, reused, req, idle) {
			return
		}
	}
}

// rawRead reads req's answer on c and delivers it. It returns true, having
// delivered nothing, when c was reused and failed before the first frame.
func (s *unitStream) rawRead(ctx context.Context, pool *rawPool, addr string, c *rawConn, reused bool,
	req *storagepb.ReadShardRequest, idle time.Duration) (retry bool) {
	// Cancelling ctx wakes a read by moving the deadline into the past;
	// cancelled keeps a later deadline from undoing it.
	var mu sync.Mutex
	cancelled := false
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		cancelled = true
		c.SetDeadline(time.Unix(1, 0))
		mu.Unlock()
	})
	arm := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if !cancelled {
			c.SetDeadline(time.Now().Add(idle))
		}
		return !cancelled
	}
	reusable, frames := false, 0
	defer func() {
		if stop() && reusable {
			c.SetDeadline(time.Time{})
			pool.put(addr, c)
		} else {
			c.Close()
		}
	}()
	failed := func(err error) bool {
		var ne net.Error
		switch {
		case ctx.Err() != nil:
		case errors.As(err, &ne) && ne.Timeout():
			s.timedOut.Store(true) // the consumer says the node was too slow
		case reused && frames == 0:
			return true
		default:
			s.deliver(ctx, unitMsg{err: status.Errorf(codes.Unavailable, "raw read from %s: %v", addr, err)})
		}
		return false
	}
	if !arm() {
		return false
	}
	if err := rawread.WriteRequest(c, req); err != nil {
		return failed(err)
	}
	r := c.r
	var hdr [rawread.FrameHeaderSize]byte
	for ; arm(); frames++ {
		typ, block, n, err := rawread.ReadFrameHeader(r, hdr[:])
		if err != nil {
			return failed(err)
		}
		switch typ {
		case rawread.FrameEnd:
			reusable = true
			return false
		case rawread.FrameError:
			payload := make([]byte, n)
			if _, err := io.ReadFull(r, payload); err != nil {
				return failed(err)
			}
			reusable = true
			s.deliver(ctx, unitMsg{err: rawread.ParseError(payload)})
			return false
		case rawread.FrameCorrupt:
			if !s.deliver(ctx, unitMsg{block: int64(block), corrupt: true}) {
				return false
			}
		case rawread.FrameUnit:
			if n == 0 || n > maxMessageSize {
				return failed(fmt.Errorf("unit of %d bytes", n))
			}
			buf := wire.Pool.Get(int(n))
			if _, err := io.ReadFull(r, *buf); err != nil {
				wire.Pool.Put(buf)
				return failed(err)
			}
			m := unitMsg{block: int64(block), unit: wire.OwnedUnit(buf)}
			if !s.deliver(ctx, m) {
				m.unit.Free()
				return false
			}
		}
	}
	return false
}
