package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/clipstore/clipstore/internal/rawshard"
	"github.com/clipstore/clipstore/internal/wire"
	storagepb "github.com/clipstore/clipstore/proto/storagepb"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Raw transfers (package rawshard): a plain-text client reads and writes
// shards over connections of its own to each node's port, which carry a
// unit in one frame instead of gRPC's 16 KiB HTTP/2 frames (writes are in
// rawwrite.go). A node that does not answer the raw handshake, or does
// not serve the kind of transfer, is read or written over gRPC, and asked
// again after rawRetryAfter.

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
	r      *bufio.Reader
	serves byte // what the node said it serves
}

// alive reports whether an idle connection is still open: the node has
// neither closed it (its idle timeout, a restart) nor sent anything since
// the last answer. A write cannot find that out by failing, as a read
// does: the first pieces fit in the socket's buffers and are gone before
// the reset comes back, and a shard cannot be sent twice.
func (c *rawConn) alive() bool {
	if c.r.Buffered() > 0 {
		return false
	}
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, rerr := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		open = rerr == unix.EAGAIN // nothing to read, not even the end
		return true
	})
	return err == nil && open
}

// rawPool keeps idle raw connections per node address.
type rawPool struct {
	use byte // what this client does over raw connections: rawshard.ServesReads, ServesWrites

	mu      sync.Mutex
	idle    map[string][]*rawConn
	refused map[string]refusal
	closed  bool
}

// refusal is what a node did not serve, and when it said so.
type refusal struct {
	kinds byte
	at    time.Time
}

func newRawPool(use byte) *rawPool {
	return &rawPool{use: use, idle: map[string][]*rawConn{}, refused: map[string]refusal{}}
}

// errNoRaw: the node does not serve this kind of raw transfer; use gRPC.
var errNoRaw = errors.New("node does not serve this raw transfer")

// get returns an idle connection to addr (reused), or a new one (always,
// with fresh), for a transfer of kind (rawshard.ServesReads or
// ServesWrites). errNoRaw: the client does not use raw transfers of that
// kind, or the node refused them lately. A new connection whose node does
// not serve kind goes back to the pool if it serves the other kind.
func (p *rawPool) get(ctx context.Context, addr string, kind byte, fresh bool) (c *rawConn, reused bool, err error) {
	if p == nil || p.use&kind == 0 {
		return nil, false, errNoRaw
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, false, fmt.Errorf("%w: client closed", ErrUnavailable)
	}
	if r, ok := p.refused[addr]; ok && r.kinds&kind != 0 && time.Since(r.at) < rawRetryAfter {
		p.mu.Unlock()
		return nil, false, errNoRaw
	}
	if idle := p.idle[addr]; len(idle) > 0 && !fresh {
		c := idle[len(idle)-1]
		if c.serves&kind == 0 { // the node said so on this connection
			p.mu.Unlock()
			return nil, false, errNoRaw
		}
		p.idle[addr] = idle[:len(idle)-1]
		p.mu.Unlock()
		return c, true, nil
	}
	p.mu.Unlock()
	c, err = p.dial(ctx, addr)
	if err != nil {
		return nil, false, err
	}
	if c.serves&kind == 0 {
		p.refuse(addr, kind)
		p.put(addr, c) // closed unless it serves the other kind we use
		return nil, false, errNoRaw
	}
	return c, false, nil
}

// refuse records that addr does not serve kinds.
func (p *rawPool) refuse(addr string, kinds byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.refused[addr]
	if time.Since(r.at) >= rawRetryAfter {
		r.kinds = 0
	}
	p.refused[addr] = refusal{kinds: r.kinds | kinds, at: time.Now()}
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
	var answer [len(rawshard.Magic) + 1]byte
	_, err = c.Write([]byte(rawshard.Magic))
	if err == nil {
		_, err = io.ReadFull(c, answer[:])
	}
	c.SetDeadline(time.Time{})
	if err != nil || string(answer[:len(rawshard.Magic)]) != rawshard.Magic {
		c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		p.refuse(addr, rawshard.ServesReads|rawshard.ServesWrites)
		return nil, errNoRaw
	}
	return &rawConn{Conn: c, r: bufio.NewReaderSize(c, 32<<10), serves: answer[len(rawshard.Magic)]}, nil
}

// put keeps c for the next transfer with addr.
func (p *rawPool) put(addr string, c *rawConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || c.serves&p.use == 0 || len(p.idle[addr]) >= rawIdlePerNode {
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
		c, reused, err := pool.get(ctx, addr, rawshard.ServesReads, fresh)
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
	if err := rawshard.WriteRequest(c, req); err != nil {
		return failed(err)
	}
	r := c.r
	var hdr [rawshard.FrameHeaderSize]byte
	for ; arm(); frames++ {
		typ, block, n, err := rawshard.ReadFrameHeader(r, hdr[:])
		if err != nil {
			return failed(err)
		}
		switch typ {
		case rawshard.FrameEnd:
			reusable = true
			return false
		case rawshard.FrameError:
			payload := make([]byte, n)
			if _, err := io.ReadFull(r, payload); err != nil {
				return failed(err)
			}
			reusable = true
			s.deliver(ctx, unitMsg{err: rawshard.ParseError(payload)})
			return false
		case rawshard.FrameCorrupt:
			if !s.deliver(ctx, unitMsg{block: int64(block), corrupt: true}) {
				return false
			}
		case rawshard.FrameUnit:
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
