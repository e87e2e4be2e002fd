// Package rawshard is the framing of raw shard transfers: a storage node's
// ReadShard and WriteShard carried on a plain TCP connection without
// gRPC's HTTP/2 frames, so that a unit of hundreds of KiB crosses in one
// writev(2) and is read into one buffer.
//
// A client opens a connection to the node's gRPC port and writes Magic;
// the node answers Magic and one byte saying what it serves (ServesReads,
// ServesWrites). A node that serves neither (an older one, or one with
// raw transfers off) answers something else or closes the connection, and
// the client uses gRPC. Then, one at a time, the client makes a request:
//
//	request:  kind (1 byte) | length (4, big-endian) | protobuf
//	  RequestRead   ReadShardRequest
//	  RequestWrite  ShardHeader, the shard about to be written
//	frame:    type (1 byte) | block (8) | length (4) | payload
//
// A read is answered with frames:
//
//	FrameHeader   the shard's ShardHeader, first
//	FrameUnit     block's piece then its trailer (length bytes)
//	FrameCorrupt  the node found block's piece corrupt (skip_corrupt)
//	FrameEnd      the answer is complete
//	FrameError    the answer failed: google.rpc.Status (code, message,
//	              details)
//
// A write request is followed by the client's frames: a FrameUnit per
// piece in block order, then FrameFinish (block: the shard's block count;
// payload: WriteFinish). The node answers with one frame, FrameAnswer
// (payload: WriteShardResponse) once the shard is committed, or
// FrameError. A FrameError may come before FrameFinish was sent (the node
// refused the header or a piece); the node then reads and drops what the
// client still sends, for a bounded time, and closes the connection.
//
// After FrameEnd, FrameAnswer, or a read's FrameError, the connection
// takes the next request. A client that stops reading an answer early, or
// writing a shard, closes the connection.
package rawshard

import (
	"encoding/binary"
	"fmt"
	"io"

	pb "github.com/clipstore/clipstore/proto/storagepb"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Magic opens a raw connection, from the client and in the node's answer.
const Magic = "CLIPRAW2"

// What a node serves, in the byte after its Magic.
const (
	ServesReads  byte = 1 << 0
	ServesWrites byte = 1 << 1
)

// Request kinds.
const (
	RequestRead  byte = 'R'
	RequestWrite byte = 'W'
)

// Frame types.
const (
	FrameUnit    byte = 'U'
	FrameCorrupt byte = 'C'
	FrameEnd     byte = 'E'
	FrameError   byte = 'X'
	FrameFinish  byte = 'F'
	FrameAnswer  byte = 'A'
	FrameHeader  byte = 'H'
)

const (
	// FrameHeaderSize is the size of a frame's header.
	FrameHeaderSize = 13
	// MaxRequest bounds an encoded request, and the payload of a
	// FrameFinish, FrameAnswer or FrameHeader.
	MaxRequest = 4 << 10
	// MaxError bounds an error frame's payload.
	MaxError = 4 << 10
)

// Hello is the node's answer to a client's Magic.
func Hello(serves byte) []byte { return append([]byte(Magic), serves) }

// WriteRequest writes req, a *ReadShardRequest or a *ShardHeader, as one
// request.
func WriteRequest(w io.Writer, req proto.Message) error {
	var kind byte
	switch req.(type) {
	case *pb.ReadShardRequest:
		kind = RequestRead
	case *pb.ShardHeader:
		kind = RequestWrite
	default:
		return fmt.Errorf("rawshard: a request cannot be a %T", req)
	}
	b, err := proto.Marshal(req)
	if err != nil {
		return err
	}
	if len(b) > MaxRequest {
		return fmt.Errorf("rawshard: request of %d bytes, at most %d", len(b), MaxRequest)
	}
	out := make([]byte, 5, 5+len(b))
	out[0] = kind
	binary.BigEndian.PutUint32(out[1:], uint32(len(b)))
	_, err = w.Write(append(out, b...))
	return err
}

// ReadRequest reads one request: a *ReadShardRequest or a *ShardHeader.
// io.EOF: the client closed the connection between requests.
func ReadRequest(r io.Reader) (proto.Message, error) {
	var head [5]byte
	if _, err := io.ReadFull(r, head[:1]); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(r, head[1:]); err != nil {
		return nil, unexpected(err)
	}
	var req proto.Message
	switch head[0] {
	case RequestRead:
		req = &pb.ReadShardRequest{}
	case RequestWrite:
		req = &pb.ShardHeader{}
	default:
		return nil, fmt.Errorf("rawshard: unknown request kind %#x", head[0])
	}
	if err := readMessage(r, binary.BigEndian.Uint32(head[1:]), req); err != nil {
		return nil, fmt.Errorf("rawshard: request: %w", err)
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
// It checks the length against the type; which types may come at a point
// of a conversation is the caller's to check.
func ReadFrameHeader(r io.Reader, b []byte) (typ byte, block uint64, length uint32, err error) {
	b = b[:FrameHeaderSize]
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, 0, 0, unexpected(err)
	}
	typ, block, length = b[0], binary.BigEndian.Uint64(b[1:]), binary.BigEndian.Uint32(b[9:])
	switch typ {
	case FrameUnit:
	case FrameCorrupt, FrameEnd:
		if length != 0 {
			return 0, 0, 0, fmt.Errorf("rawshard: frame %q with a payload of %d bytes", typ, length)
		}
	case FrameError:
		if length > MaxError {
			return 0, 0, 0, fmt.Errorf("rawshard: error frame of %d bytes, at most %d", length, MaxError)
		}
	case FrameFinish, FrameAnswer, FrameHeader:
		if length > MaxRequest {
			return 0, 0, 0, fmt.Errorf("rawshard: frame %q of %d bytes, at most %d", typ, length, MaxRequest)
		}
	default:
		return 0, 0, 0, fmt.Errorf("rawshard: unknown frame type %#x", typ)
	}
	return typ, block, length, nil
}

// WriteEnd writes FrameEnd.
func WriteEnd(w io.Writer) error {
	var b [FrameHeaderSize]byte
	_, err := w.Write(PutFrameHeader(b[:], FrameEnd, 0, 0))
	return err
}

// WriteMessage writes a FrameFinish, FrameAnswer or FrameHeader frame
// carrying m.
func WriteMessage(w io.Writer, typ byte, block uint64, m proto.Message) error {
	if typ != FrameFinish && typ != FrameAnswer && typ != FrameHeader {
		return fmt.Errorf("rawshard: frame %q carries no message", typ)
	}
	body, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	if len(body) > MaxRequest {
		return fmt.Errorf("rawshard: frame %q of %d bytes, at most %d", typ, len(body), MaxRequest)
	}
	b := make([]byte, FrameHeaderSize, FrameHeaderSize+len(body))
	PutFrameHeader(b, typ, block, uint32(len(body)))
	_, err = w.Write(append(b, body...))
	return err
}

// ReadMessage reads the payload of a FrameFinish, FrameAnswer or
// FrameHeader frame whose header said length, into m.
func ReadMessage(r io.Reader, length uint32, m proto.Message) error {
	if err := readMessage(r, length, m); err != nil {
		return fmt.Errorf("rawshard: %w", err)
	}
	return nil
}

func readMessage(r io.Reader, length uint32, m proto.Message) error {
	if length > MaxRequest {
		return fmt.Errorf("message of %d bytes, at most %d", length, MaxRequest)
	}
	b := make([]byte, length)
	if _, err := io.ReadFull(r, b); err != nil {
		return unexpected(err)
	}
	return proto.Unmarshal(b, m)
}

// WriteError writes FrameError carrying err's gRPC status: its code,
// message and details (an ErrorInfo's reason and metadata). A message too
// long to fit is cut, then the details dropped if it still does not.
func WriteError(w io.Writer, err error) error {
	st := status.Convert(err).Proto()
	if st == nil || st.Code == int32(codes.OK) {
		return fmt.Errorf("rawshard: an error frame for %v, which has code OK", err)
	}
	if len(st.Message) > MaxError/2 {
		st.Message = st.Message[:MaxError/2]
	}
	body, merr := proto.Marshal(st)
	if merr == nil && len(body) > MaxError {
		st.Details = nil
		body, merr = proto.Marshal(st)
	}
	if merr != nil {
		return merr
	}
	b := make([]byte, FrameHeaderSize, FrameHeaderSize+len(body))
	PutFrameHeader(b, FrameError, 0, uint32(len(body)))
	_, werr := w.Write(append(b, body...))
	return werr
}

// ReadError reads the payload of a FrameError frame whose header said
// length: nodeErr is the gRPC status error the node sent, err a failure
// to read it.
func ReadError(r io.Reader, length uint32) (nodeErr, err error) {
	payload := make([]byte, length)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, unexpected(err)
	}
	return ParseError(payload), nil
}

// ParseError turns an error frame's payload into the gRPC status error
// it carries.
func ParseError(payload []byte) error {
	st := &spb.Status{}
	if err := proto.Unmarshal(payload, st); err != nil {
		return fmt.Errorf("rawshard: error frame: %w", err)
	}
	if st.Code == int32(codes.OK) {
		return fmt.Errorf("rawshard: error frame with code OK (%q)", st.Message)
	}
	return status.ErrorProto(st)
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
