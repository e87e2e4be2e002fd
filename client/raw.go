package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/clipstore/clipstore/internal/rawshard"
	"github.com/clipstore/clipstore/internal/wire"
	storagepb "github.com/clipstore/clipstore/proto/storagepb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Raw transfers (package rawshard): a plain-text client reads and writes
// shards over connections of its own to each node's port, which carry a
// unit in one frame instead of gRPC's 16 KiB HTTP/2 frames (writes are in
// rawwrite.go). A node that does not answer the raw handshake, or does
// not serve the kind of transfer, is read or written over gRPC, and asked
// again a minute later (rawshard.Pool).

// rawConn gets a raw connection to addr for a transfer of kind from pool.
func rawConn(ctx context.Context, pool *rawshard.Pool, addr string, kind byte, fresh bool) (*rawshard.Conn, bool, error) {
	c, reused, err := pool.Get(ctx, addr, kind, fresh)
	if errors.Is(err, rawshard.ErrPoolClosed) {
		err = fmt.Errorf("%w: client closed", ErrUnavailable)
	}
	return c, reused, err
}

// rawPump is pump over a raw connection to addr; a node that does not
// serve raw reads is read with pump, over gRPC. An idle connection may
// have been closed by the node since it was last used (its idle timeout,
// a restart): a request that gets no answer at all on one is sent again
// on a new connection.
func (s *unitStream) rawPump(ctx context.Context, pool *rawshard.Pool, addr string, sc storagepb.StorageServiceClient,
	req *storagepb.ReadShardRequest, idle time.Duration) {
	for fresh := false; ; fresh = true {
		c, reused, err := rawConn(ctx, pool, addr, rawshard.ServesReads, fresh)
		switch {
		case errors.Is(err, rawshard.ErrNoRaw):
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
func (s *unitStream) rawRead(ctx context.Context, pool *rawshard.Pool, addr string, c *rawshard.Conn, reused bool,
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
			pool.Put(addr, c)
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
	r := c.R
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
			nodeErr, err := rawshard.ReadError(r, n)
			if err != nil {
				return failed(err)
			}
			reusable = true
			s.deliver(ctx, unitMsg{err: nodeErr})
			return false
		case rawshard.FrameHeader: // the shard's header: nothing a client read needs
			if _, err := r.Discard(int(n)); err != nil {
				return failed(err)
			}
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
			m.sum = s.sum(m)
			if !s.deliver(ctx, m) {
				m.unit.Free()
				return false
			}
		default:
			return failed(fmt.Errorf("a frame %q in a read's answer", typ))
		}
	}
	return false
}
