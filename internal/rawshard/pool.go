package rawshard

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A Pool keeps a client's raw connections to the nodes, and remembers which
// nodes do not serve which kind of transfer: a node that does not answer
// the handshake, or does not serve the kind asked for, is left to gRPC
// and asked again after retryAfter. Clients and the storage nodes' repairs
// (which read their sources) use one each.

const (
	idlePerNode      = 32               // idle connections kept per node
	retryAfter       = time.Minute      // before asking a refusing node again
	handshakeTimeout = 10 * time.Second // bound of a dial and its handshake
)

// Conn is a raw connection and its read buffer, kept together: an
// answer ends with its last frame, so the buffer holds nothing when the
// connection goes back to the pool.
type Conn struct {
	net.Conn
	R      *bufio.Reader
	Serves byte // what the node said it serves
}

// Alive reports whether an idle connection is still open: the node has
// neither closed it (its idle timeout, a restart) nor sent anything since
// the last answer. A write cannot find that out by failing, as a read
// does: the first pieces fit in the socket's buffers and are gone before
// the reset comes back, and a shard cannot be sent twice.
func (c *Conn) Alive() bool {
	if c.R.Buffered() > 0 {
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

// Pool keeps idle raw connections per node address.
type Pool struct {
	use byte // what this client does over raw connections: ServesReads, ServesWrites

	mu      sync.Mutex
	idle    map[string][]*Conn
	refused map[string]refusal
	closed  bool
}

// refusal is what a node did not serve, and when it said so.
type refusal struct {
	kinds byte
	at    time.Time
}

// NewPool returns a pool for transfers of the kinds in use (ServesReads,
// ServesWrites).
func NewPool(use byte) *Pool {
	return &Pool{use: use, idle: map[string][]*Conn{}, refused: map[string]refusal{}}
}

var (
	// ErrNoRaw: the node does not serve this kind of raw transfer (or the
	// pool does not use it); use gRPC.
	ErrNoRaw = errors.New("node does not serve this raw transfer")
	// ErrPoolClosed: the pool was closed.
	ErrPoolClosed = errors.New("raw connection pool closed")
)

// Get returns an idle connection to addr (reused), or a new one (always,
// with fresh), for a transfer of kind (ServesReads or
// ServesWrites). ErrNoRaw: the client does not use raw transfers of that
// kind, or the node refused them lately. A new connection whose node does
// not serve kind goes back to the pool if it serves the other kind.
func (p *Pool) Get(ctx context.Context, addr string, kind byte, fresh bool) (c *Conn, reused bool, err error) {
	if p == nil || p.use&kind == 0 {
		return nil, false, ErrNoRaw
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, false, ErrPoolClosed
	}
	if r, ok := p.refused[addr]; ok && r.kinds&kind != 0 && time.Since(r.at) < retryAfter {
		p.mu.Unlock()
		return nil, false, ErrNoRaw
	}
	if idle := p.idle[addr]; len(idle) > 0 && !fresh {
		c := idle[len(idle)-1]
		if c.Serves&kind == 0 { // the node said so on this connection
			p.mu.Unlock()
			return nil, false, ErrNoRaw
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
	if c.Serves&kind == 0 {
		p.refuse(addr, kind)
		p.Put(addr, c) // closed unless it serves the other kind we use
		return nil, false, ErrNoRaw
	}
	return c, false, nil
}

// refuse records that addr does not serve kinds.
func (p *Pool) refuse(addr string, kinds byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.refused[addr]
	if time.Since(r.at) >= retryAfter {
		r.kinds = 0
	}
	p.refused[addr] = refusal{kinds: r.kinds | kinds, at: time.Now()}
}

// dial opens a raw connection to addr and makes the handshake.
func (p *Pool) dial(ctx context.Context, addr string) (*Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "raw connection: %v", err)
	}
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	var answer [len(Magic) + 1]byte
	_, err = c.Write([]byte(Magic))
	if err == nil {
		_, err = io.ReadFull(c, answer[:])
	}
	c.SetDeadline(time.Time{})
	if err != nil || string(answer[:len(Magic)]) != Magic {
		c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		p.refuse(addr, ServesReads|ServesWrites)
		return nil, ErrNoRaw
	}
	return &Conn{Conn: c, R: bufio.NewReaderSize(c, 32<<10), Serves: answer[len(Magic)]}, nil
}

// Put keeps c for the next transfer with addr.
func (p *Pool) Put(addr string, c *Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || c.Serves&p.use == 0 || len(p.idle[addr]) >= idlePerNode {
		c.Close()
		return
	}
	p.idle[addr] = append(p.idle[addr], c)
}

// Close closes the idle connections; Get then fails with ErrPoolClosed.
func (p *Pool) Close() {
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
