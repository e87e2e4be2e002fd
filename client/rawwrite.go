package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/clipstore/clipstore/internal/rawshard"
	storagepb "github.com/clipstore/clipstore/proto/storagepb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// rawTx is a shard write on a raw connection (package rawshard): the
// header as the request, then each piece and its trailer in one unit
// frame, written with one writev(2) from the block where they lie (the
// call returns once the kernel has them, so nothing is pinned), then the
// finish. One goroutine reads the node's single answer, which may come
// early: a node that refuses the header or a piece says so at once, and
// the next piece sent sees it.
type rawTx struct {
	pool    *rawshard.Pool
	addr    string
	c       *rawshard.Conn
	timeout time.Duration  // bounds each frame's write and the wait for the answer
	answer  chan rawAnswer // the reader's one result
	got     *rawAnswer     // the answer, once taken from the channel
	stop    func() bool    // unregisters the context's AfterFunc
	hdr     [rawshard.FrameHeaderSize]byte
	iov     [3][]byte   // a unit frame's header, piece and trailer
	bufs    net.Buffers // over iov; WriteTo consumes it, not iov
	closed  bool
}

// rawAnswer is the node's answer to a raw write, or why none was read.
type rawAnswer struct {
	resp    *storagepb.WriteShardResponse
	err     error
	refused bool // err is the node's (an error frame), not the connection's
}

// openRawTx starts a write of the shard h describes on a raw connection
// to addr. rawshard.ErrNoRaw: the node (or this client) does not write
// raw; use gRPC.
func openRawTx(ctx context.Context, pool *rawshard.Pool, addr string, h *storagepb.ShardHeader, timeout time.Duration) (*rawTx, error) {
	c, reused, err := rawConn(ctx, pool, addr, rawshard.ServesWrites, false)
	if err == nil && reused && !c.Alive() {
		c.Close()
		c, _, err = rawConn(ctx, pool, addr, rawshard.ServesWrites, true)
	}
	if err != nil {
		return nil, err
	}
	t := &rawTx{pool: pool, addr: addr, c: c, timeout: timeout, answer: make(chan rawAnswer, 1)}
	// A cancelled write is never finished, so cancelling closes c.
	t.stop = context.AfterFunc(ctx, func() { c.Close() })
	c.SetWriteDeadline(time.Now().Add(timeout))
	if err := rawshard.WriteRequest(c, h); err != nil {
		t.close()
		return nil, t.transportError(err)
	}
	go t.readAnswer()
	return t, nil
}

// readAnswer reads the node's one answer frame.
func (t *rawTx) readAnswer() {
	var a rawAnswer
	var hdr [rawshard.FrameHeaderSize]byte
	typ, _, n, err := rawshard.ReadFrameHeader(t.c.R, hdr[:])
	switch {
	case err != nil:
		a.err = t.transportError(err)
	case typ == rawshard.FrameAnswer:
		resp := &storagepb.WriteShardResponse{}
		if err := rawshard.ReadMessage(t.c.R, n, resp); err != nil {
			a.err = t.transportError(err)
		} else {
			a.resp = resp
		}
	case typ == rawshard.FrameError:
		nodeErr, err := rawshard.ReadError(t.c.R, n)
		if err != nil {
			a.err = t.transportError(err)
		} else {
			a.err, a.refused = nodeErr, true
		}
	default:
		a.err = t.transportError(fmt.Errorf("a frame %q in a write's answer", typ))
	}
	t.answer <- a
}

// transportError is a failure of the connection itself.
func (t *rawTx) transportError(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return status.Errorf(codes.DeadlineExceeded, "raw write to %s: the node took or answered nothing for %v", t.addr, t.timeout)
	}
	return status.Errorf(codes.Unavailable, "raw write to %s: %v", t.addr, err)
}

// early returns the node's answer if it came before the finish: only a
// refusal can.
func (t *rawTx) early() error {
	if t.got == nil {
		select {
		case a := <-t.answer:
			t.got = &a
		default:
			return nil
		}
	}
	if t.got.err != nil {
		return t.got.err
	}
	return status.Errorf(codes.Internal, "raw write to %s: the node answered before the shard was finished", t.addr)
}

// failed explains a failed send: the node's refusal when it sent one
// before it hung up (waiting a moment for it), else the send's error.
func (t *rawTx) failed(err error) error {
	if t.got == nil {
		t.c.SetReadDeadline(time.Now().Add(time.Second))
		a := <-t.answer
		t.got = &a
	}
	if t.got.refused {
		return t.got.err
	}
	return t.transportError(err)
}

// piece sends block's piece and its trailer.
func (t *rawTx) piece(block uint64, data, trailer []byte) error {
	if err := t.early(); err != nil {
		return err
	}
	t.iov = [3][]byte{rawshard.PutFrameHeader(t.hdr[:], rawshard.FrameUnit, block, uint32(len(data)+len(trailer))), data, trailer}
	t.bufs = t.iov[:]
	t.c.SetWriteDeadline(time.Now().Add(t.timeout))
	_, err := t.bufs.WriteTo(t.c)
	t.iov = [3][]byte{} // drop the references to the block
	if err != nil {
		return t.failed(err)
	}
	return nil
}

// finish sends the finish frame and returns the node's answer. A
// connection answered in full goes back to the pool.
func (t *rawTx) finish(f *storagepb.WriteFinish) (*storagepb.WriteShardResponse, error) {
	if err := t.early(); err != nil {
		return nil, err
	}
	t.c.SetWriteDeadline(time.Now().Add(t.timeout))
	if err := rawshard.WriteMessage(t.c, rawshard.FrameFinish, f.GetBlocks(), f); err != nil {
		return nil, t.failed(err)
	}
	t.c.SetReadDeadline(time.Now().Add(t.timeout)) // the node fsyncs, then answers
	a := <-t.answer
	t.got = &a
	if a.err != nil {
		return nil, a.err
	}
	if t.stop() { // not cancelled: c is whole and between requests
		t.closed = true
		t.c.SetDeadline(time.Time{})
		t.pool.Put(t.addr, t.c)
	}
	return a.resp, nil
}

// close abandons the write, unless finish returned its connection to the
// pool: the node sees the connection end and drops the shard.
func (t *rawTx) close() {
	if t.closed {
		return
	}
	t.closed = true
	t.stop()
	t.c.Close()
}
