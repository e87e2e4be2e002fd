package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/clipstore/clipstore/internal/rawshard"
	pb "github.com/clipstore/clipstore/proto/storagepb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// rawDrain bounds how long a node reads and drops what a client still
// sends after the node refused its write mid-stream.
const rawDrain = 5 * time.Second

// write receives the shard whose header p came as a request: its pieces
// and its finish as frames on r, then the answer. It reports whether c
// can take the next request: a write refused before its finish frame
// leaves the client's frames in flight, so the node drains and closes c.
func (s *rawServer) write(c net.Conn, r *bufio.Reader, p *pb.ShardHeader) bool {
	var res WriteResult
	var err error
	atEnd := true
	if s.serves&rawshard.ServesWrites == 0 {
		err = status.Error(codes.Unimplemented, "this node takes shard writes over gRPC only")
		atEnd = false
	} else {
		s.svc.store.metrics.shardWrite("raw")
		res, atEnd, err = s.svc.rawWriteShard(c, r, p)
	}
	if s.idle > 0 {
		c.SetWriteDeadline(time.Now().Add(s.idle))
	}
	if err != nil {
		if rawshard.WriteError(c, toStatus(err)) != nil {
			return false
		}
		if !atEnd {
			c.SetReadDeadline(time.Now().Add(rawDrain))
			io.Copy(io.Discard, r)
			return false
		}
		return true
	}
	return rawshard.WriteMessage(c, rawshard.FrameAnswer, 0, res.proto()) == nil
}

// rawWriteShard is writeShard for a raw connection (raw.go): the header
// came as the request, each piece comes with its trailer in one unit
// frame, which ShardWriter.ReadPiece reads straight into the file's
// staging buffer. atEnd reports whether the finish frame was read: r then
// stands between requests.
func (s *service) rawWriteShard(c net.Conn, r *bufio.Reader, p *pb.ShardHeader) (res WriteResult, atEnd bool, err error) {
	w, err := s.create(context.Background(), p) // plain text: no capability to check
	if err != nil {
		return WriteResult{}, false, err
	}
	defer w.Abort() // no-op after Commit
	idle := s.store.cfg.WriteIdleTimeout
	ts, maxUnit := w.h.trailerSize(), w.h.unitSize()
	var hdr [rawshard.FrameHeaderSize]byte
	for {
		c.SetReadDeadline(time.Now().Add(idle))
		typ, block, n, err := rawshard.ReadFrameHeader(r, hdr[:])
		if err != nil {
			return WriteResult{}, false, rawRecvError(err, idle)
		}
		switch typ {
		case rawshard.FrameUnit:
			if int(n) <= ts || int(n) > maxUnit {
				return WriteResult{}, false, fmt.Errorf("%w: a unit frame of %d bytes; this shard's hold a piece of 1 to %d bytes and a %d-byte trailer",
					ErrInvalidArgument, n, maxUnit-ts, ts)
			}
			rr := recordingReader{r: r}
			if err := w.ReadPiece(block, int(n)-ts, &rr); err != nil {
				if rr.err != nil {
					err = rawRecvError(rr.err, idle)
				}
				return WriteResult{}, false, err
			}
		case rawshard.FrameFinish:
			var fin pb.WriteFinish
			if err := rawshard.ReadMessage(r, n, &fin); err != nil {
				return WriteResult{}, false, fmt.Errorf("%w: finish frame: %v", ErrInvalidArgument, err)
			}
			res, err := w.Commit(fin.GetBlocks(), fin.Checksum)
			return res, true, err
		default:
			return WriteResult{}, false, fmt.Errorf("%w: a frame of type %q in a write (a unit or the finish)", ErrInvalidArgument, typ)
		}
	}
}

// rawRecvError explains why a raw write's frames stopped: the client went
// silent for the idle timeout, or its connection ended mid-write.
func rawRecvError(err error, idle time.Duration) error {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%w: no frame for %v while waiting for a piece or the finish (write abandoned)", ErrTimeout, idle)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fmt.Errorf("%w: connection ended before the finish frame (truncated write)", ErrInvalidArgument)
	}
	return fmt.Errorf("write interrupted: %w", err)
}

// recordingReader remembers its reader's error, to tell a failed read of
// the connection from a piece or disk the writer refused.
type recordingReader struct {
	r   io.Reader
	err error
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && r.err == nil {
		r.err = err
	}
	return n, err
}
