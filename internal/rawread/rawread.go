// Package rawread is the framing of raw piece reads: a storage node's
// ReadShard answered on a plain TCP connection, without gRPC's HTTP/2
// frames, so that a unit of hundreds of KiB crosses in one writev(2) and
// is read into one buffer.
//
// A client opens a connection to the node's gRPC port and writes Magic;
// the node answers Magic (a node that does not serve raw reads answers
// something else, or closes the connection, and the client uses gRPC).
// Then, one at a time, the client writes a request and reads the answer:
//
//	request:  length (4 bytes, big-endian) | ReadShardRequest (protobuf)
//	answer:   frames, each type (1 byte) | block (8) | length (4) | payload
//	  FrameUnit     block's piece then its trailer (length bytes)
//	  FrameCorrupt  the node found block's piece corrupt (skip_corrupt)
//	  FrameEnd      the answer is complete
//	  FrameError    the answer failed: gRPC code (4 bytes) | message
//
// After FrameEnd or FrameError the connection takes the next request. A
// client that stops reading an answer early closes the connection.
package rawread

import (
	"encoding/binary"
	"fmt"
	"io"

	pb "github.com/clipstore/clipstore/proto/storagepb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Magic opens a raw connection, from the client and in the node's answer.
const Magic = "CLIPRAW1"

// Frame types.
const (
	FrameUnit    byte = 'U'
	FrameCorrupt byte = 'C'
	FrameEnd     byte = 'E'
	FrameError   byte = 'X'
)

const (
	// FrameHeaderSize is the size of a frame's header.
	FrameHeaderSize = 13
	// MaxRequest bounds an encoded request.
	MaxRequest = 4 << 10
	// MaxError bounds an error frame's payload.
	MaxError = 4 << 10
)

// WriteRequest writes req as one request.
func WriteRequest(w io.Writer, req *pb.ReadShardRequest) error {
	b, err := proto.Marshal(req)
	if err != nil {
		return err
	}
	if len(b) > MaxRequest {
		return fmt.Errorf("rawread: request of %d bytes, at most %d", len(b), MaxRequest)
	}
	_, err = w.Write(binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b))))
	if err == nil {
		_, err = w.Write(b)
	}
	return err
}

// ReadRequest reads one request. io.EOF: the client closed the connection
// between requests.
func ReadRequest(r io.Reader) (*pb.ReadShardRequest, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > MaxRequest {
		return nil, fmt.Errorf("rawread: request of %d bytes, at most %d", size, MaxRequest)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, unexpected(err)
	}
	req := &pb.ReadShardRequest{}
	if err := proto.Unmarshal(b, req); err != nil {
		return nil, fmt.Errorf("rawread: request: %w", err)
	}
	return req, nil
}

// PutFrameHeader encodes a frame header into b (FrameHeaderSize bytes)
// and returns it.
func PutFrameHeader(b []byte, typ byte, block uint64, length uint32) []byte {
	b = b[:FrameHeaderSize]
	b[0] = typ
	binary.BigEndian.PutUint64(b[1:], block)
	binary.BigEndian.PutUint32(b[9:], length)
	return b
}

// ReadFrameHeader reads a frame header, using b (FrameHeaderSize bytes).
func ReadFrameHeader(r io.Reader, b []byte) (typ byte, block uint64, length uint32, err error) {
	b = b[:FrameHeaderSize]
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, 0, 0, unexpected(err)
	}
	typ, block, length = b[0], binary.BigEndian.Uint64(b[1:]), binary.BigEndian.Uint32(b[9:])
	switch {
	case typ != FrameUnit && typ != FrameCorrupt && typ != FrameEnd && typ != FrameError:
		return 0, 0, 0, fmt.Errorf("rawread: unknown frame type %#x", typ)
	case typ == FrameError && length > MaxError:
		return 0, 0, 0, fmt.Errorf("rawread: error frame of %d bytes, at most %d", length, MaxError)
	case (typ == FrameCorrupt || typ == FrameEnd) && length != 0:
		return 0, 0, 0, fmt.Errorf("rawread: frame %q with a payload of %d bytes", typ, length)
	}
	return typ, block, length, nil
}

// WriteEnd writes FrameEnd.
func WriteEnd(w io.Writer) error {
	var b [FrameHeaderSize]byte
	_, err := w.Write(PutFrameHeader(b[:], FrameEnd, 0, 0))
	return err
}

// WriteError writes FrameError with code and msg (cut to fit).
func WriteError(w io.Writer, code codes.Code, msg string) error {
	if len(msg) > MaxError-4 {
		msg = msg[:MaxError-4]
	}
	b := make([]byte, FrameHeaderSize, FrameHeaderSize+4+len(msg))
	PutFrameHeader(b, FrameError, 0, uint32(4+len(msg)))
	b = append(binary.BigEndian.AppendUint32(b, uint32(code)), msg...)
	_, err := w.Write(b)
	return err
}

// ParseError turns an error frame's payload into the gRPC status error
// it carries.
func ParseError(payload []byte) error {
	if len(payload) < 4 {
		return fmt.Errorf("rawread: error frame of %d bytes", len(payload))
	}
	return status.Error(codes.Code(binary.BigEndian.Uint32(payload)), string(payload[4:]))
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
