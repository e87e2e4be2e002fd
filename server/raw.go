package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/clipstore/clipstore/internal/rawshard"
	pb "github.com/clipstore/clipstore/proto/storagepb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Raw shard transfers. gRPC carries a shard's pieces in 16 KiB HTTP/2
// frames, each read with two read(2) calls and handled one by one: for
// 8 MiB gets the node and the reader spend about 0.9 CPU-s per GiB where
// the same bytes in a plain TCP stream cost 0.4 (docs/performance.md). So
// a plain-text node also answers ReadShard and WriteShard on connections
// that open with rawshard.Magic instead of HTTP/2's preface, on the same
// port: the same requests, the same checks and the same errors (package
// rawshard has the framing), each unit in one frame (rawwrite.go has the
// writes). Everything else, and every TLS connection, is gRPC.

// muxListener accepts connections for the gRPC server, handing those that
// open with rawshard.Magic to raw instead.
type muxListener struct {
	net.Listener
	raw   *rawServer
	conns chan net.Conn
	errc  chan error
	done  chan struct{}
	once  sync.Once

	mu       sync.Mutex
	sniffing map[net.Conn]struct{} // closed by Close
}

func newMuxListener(lis net.Listener, raw *rawServer) *muxListener {
	m := &muxListener{Listener: lis, raw: raw, conns: make(chan net.Conn), errc: make(chan error, 1), done: make(chan struct{}),
		sniffing: map[net.Conn]struct{}{}}
	go m.acceptLoop()
	return m
}

// sniffTimeout bounds the wait for a new connection's first bytes.
const sniffTimeout = 10 * time.Second

func (m *muxListener) acceptLoop() {
	for {
		c, err := m.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			m.errc <- err
			return
		}
		go m.sniff(c)
	}
}

// sniff reads c's first bytes: rawshard.Magic hands it to raw, anything
// else goes to gRPC with those bytes put back in front.
func (m *muxListener) sniff(c net.Conn) {
	m.mu.Lock()
	select {
	case <-m.done:
		m.mu.Unlock()
		c.Close()
		return
	default:
	}
	m.sniffing[c] = struct{}{}
	m.mu.Unlock()
	var head [len(rawshard.Magic)]byte
	c.SetReadDeadline(time.Now().Add(sniffTimeout))
	n, err := io.ReadFull(c, head[:])
	c.SetReadDeadline(time.Time{})
	m.mu.Lock()
	delete(m.sniffing, c)
	m.mu.Unlock()
	if err == nil && string(head[:]) == rawshard.Magic {
		m.raw.serve(c)
		return
	}
	if n == 0 && err != nil {
		c.Close()
		return
	}
	select {
	case m.conns <- &prefixConn{Conn: c, prefix: head[:n]}:
	case <-m.done:
		c.Close()
	}
}

func (m *muxListener) Accept() (net.Conn, error) {
	select {
	case c := <-m.conns:
		return c, nil
	case err := <-m.errc:
		m.errc <- err // for the next caller
		return nil, err
	case <-m.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting, and closes the connections whose first bytes
// have not come yet. Connections handed on are their server's to close.
func (m *muxListener) Close() error {
	m.once.Do(func() {
		m.mu.Lock()
		close(m.done)
		for c := range m.sniffing {
			c.Close()
		}
		m.mu.Unlock()
	})
	return m.Listener.Close()
}

// prefixConn is a connection whose first bytes were read already.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// rawServer serves raw shard reads and writes.
type rawServer struct {
	svc    *service
	idle   time.Duration // a connection with no request for this long is closed (0: never)
	serves byte          // rawshard.ServesReads, rawshard.ServesWrites

	mu     sync.Mutex
	conns  map[net.Conn]bool // true while a request is being answered
	closed bool
	wg     sync.WaitGroup
	drain  chan struct{} // closed when closed and no request is being answered
}

func newRawServer(svc *service, idle time.Duration, serves byte) *rawServer {
	return &rawServer{svc: svc, idle: idle, serves: serves, conns: map[net.Conn]bool{}}
}

// serve answers c's requests, one at a time, until c fails or closes.
func (s *rawServer) serve(c net.Conn) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.conns[c] = false
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.checkDrainedLocked()
		s.mu.Unlock()
		s.wg.Done()
	}()
	if _, err := c.Write(rawshard.Hello(s.serves)); err != nil {
		return
	}
	r := bufio.NewReaderSize(c, 4<<10)
	w := &rawSink{conn: c, timeout: s.idle}
	for {
		if s.idle > 0 {
			c.SetReadDeadline(time.Now().Add(s.idle))
		}
		req, err := rawshard.ReadRequest(r)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					s.svc.store.log.Debug("raw transfer: bad request", "remote", c.RemoteAddr(), "err", err)
				}
			}
			return
		}
		c.SetReadDeadline(time.Time{})
		if !s.begin(c) {
			return
		}
		var next bool
		switch req := req.(type) {
		case *pb.ReadShardRequest:
			next = s.read(c, w, req)
		case *pb.ShardHeader:
			next = s.write(c, r, req)
		}
		if !s.end(c) || !next {
			return
		}
	}
}

// read answers a read request. It reports whether c can take the next
// request.
func (s *rawServer) read(c net.Conn, w *rawSink, req *pb.ReadShardRequest) bool {
	var err error
	if s.serves&rawshard.ServesReads == 0 {
		err = status.Error(codes.Unimplemented, "this node serves shard reads over gRPC only")
	} else {
		s.svc.store.metrics.shardRead("raw")
		err = s.svc.readShard(req, w)
	}
	if w.failed == nil {
		w.arm()
		if err != nil {
			w.failed = rawshard.WriteError(c, toStatus(err))
		} else {
			w.failed = rawshard.WriteEnd(c)
		}
	}
	return w.failed == nil
}

func (s *rawServer) begin(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = true
	return true
}

func (s *rawServer) end(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns[c] = false
	s.checkDrainedLocked()
	return !s.closed
}

func (s *rawServer) checkDrainedLocked() {
	if !s.closed || s.drain == nil {
		return
	}
	for _, busy := range s.conns {
		if busy {
			return
		}
	}
	select {
	case <-s.drain:
	default:
		close(s.drain)
	}
}

// shutdown takes no more requests, closes idle connections, lets the
// requests being answered finish until ctx is done, then closes every
// connection and waits for their goroutines.
func (s *rawServer) shutdown(ctx context.Context) {
	s.mu.Lock()
	s.closed = true
	s.drain = make(chan struct{})
	for c, busy := range s.conns {
		if !busy {
			c.Close()
		}
	}
	s.checkDrainedLocked()
	drain := s.drain
	s.mu.Unlock()
	select {
	case <-drain:
	case <-ctx.Done():
	}
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// rawSink writes readShard's answer as raw frames, the shard's header
// first. A client that takes nothing of a frame for timeout (the node's
// idle timeout; 0: no bound) is cut off. Nothing cancels an answer but a
// failed write (a client gone, or a shutdown closing the connection), so
// its context is Background.
type rawSink struct {
	conn    net.Conn
	timeout time.Duration
	hdr     [2][rawshard.FrameHeaderSize]byte // frame headers: the shard header's, a unit's
	header  []byte                            // the encoded shard header
	iov     [5][]byte                         // frames: the shard header's, then a unit's
	bufs    net.Buffers                       // over iov; WriteTo consumes it, not iov
	failed  error                             // a write failed: the connection is done
}

func (w *rawSink) arm() {
	if w.timeout > 0 {
		w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
	}
}

func (w *rawSink) Context() context.Context { return context.Background() }

// frames starts the frames of one write: the frame carrying h first, if
// h is not nil (the first of an answer).
func (w *rawSink) frames(h *pb.ShardHeader) [][]byte {
	if h == nil {
		return w.iov[:0]
	}
	var err error
	w.header, err = proto.MarshalOptions{}.MarshalAppend(w.header[:0], h)
	if err != nil { // a header the node built itself: cannot happen
		panic(fmt.Sprintf("rawshard: encoding a shard header: %v", err))
	}
	return append(w.iov[:0], rawshard.PutFrameHeader(w.hdr[0][:], rawshard.FrameHeader, 0, uint32(len(w.header))), w.header)
}

func (w *rawSink) sendHeader(h *pb.ShardHeader) error { return w.write(w.frames(h)) }

func (w *rawSink) sendCorrupt(h *pb.ShardHeader, b uint64) error {
	return w.write(append(w.frames(h), rawshard.PutFrameHeader(w.hdr[1][:], rawshard.FrameCorrupt, b, 0)))
}

func (w *rawSink) sendPiece(h *pb.ShardHeader, b uint64, data, trailer []byte, _ *[]byte) (bool, error) {
	unit := rawshard.PutFrameHeader(w.hdr[1][:], rawshard.FrameUnit, b, uint32(len(data)+len(trailer)))
	return false, w.write(append(w.frames(h), unit, data, trailer))
}

// write writes frames (held in w.iov) with one writev(2).
func (w *rawSink) write(frames [][]byte) error {
	w.arm()
	w.bufs = frames
	_, err := w.bufs.WriteTo(w.conn)
	w.iov = [5][]byte{} // drop the references to the piece
	if err != nil {
		w.failed = err
	}
	return err
}
