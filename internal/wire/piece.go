package wire

// Messages that carry a shard piece (ReadShardResponse, WriteShardRequest)
// are decoded straight from gRPC's frame buffers, without first gathering
// the message into one buffer, and the piece lands in memory the receiver
// provides: one copy of each byte instead of three, and no allocation per
// piece.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	pb "github.com/clipstore/clipstore/proto/storagepb"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// PieceInto prepares a message to receive a piece into buf: the piece's
// data and then its trailer are decoded into buf's array when they fit, so
// that Unit can return them without a copy. Use it before RecvMsg:
//
//	resp := wire.PieceInto(new(pb.ReadShardResponse), buf)
//	err := stream.RecvMsg(resp)
//
// Decoding is done by Codec; with any other codec the piece is decoded
// elsewhere and Unit copies it.
func PieceInto[M *pb.ReadShardResponse | *pb.WriteShardRequest](m M, buf []byte) M {
	p := &pb.Piece{Data: buf[:0]}
	switch m := any(m).(type) {
	case *pb.ReadShardResponse:
		m.Piece = p
	case *pb.WriteShardRequest:
		m.Msg = &pb.WriteShardRequest_Piece{Piece: p}
	}
	return m
}

// Unit returns p's data followed by its trailer in buf's array: in place
// if they were decoded there (see PieceInto), else copied; buf must have
// room for both or a new array is used.
func Unit(p *pb.Piece, buf []byte) []byte {
	n := len(p.Data) + len(p.Trailer)
	if u, ok := adjacent(p.Data, p.Trailer); ok && cap(buf) > 0 && len(u) > 0 && &u[0] == &buf[:1][0] {
		return u
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	u := buf[:n]
	copy(u[copy(u, p.Data):], p.Trailer)
	return u
}

// adjacent reports whether b starts where a ends in the same array, and if
// so returns a and b as one slice: Unit uses it to hand back a piece that
// PieceInto decoded in place, with its trailer, without a copy.
func adjacent(a, b []byte) ([]byte, bool) {
	if len(b) == 0 {
		return a, true
	}
	if len(a) == 0 || cap(a)-len(a) < len(b) || &a[:len(a)+1][len(a)] != &b[0] {
		return nil, false
	}
	return a[:len(a)+len(b)], true
}

// unmarshalPieceMessage decodes m from data if it is a message this file
// handles; handled is false otherwise.
func unmarshalPieceMessage(data mem.BufferSlice, v any) (handled bool, err error) {
	switch m := v.(type) {
	case *pb.ReadShardResponse:
		dst := m.GetPiece().GetData()
		proto.Reset(m)
		return true, decodeReadShardResponse(data, &m.Header, func(r *reader) error {
			if m.Piece == nil {
				m.Piece = new(pb.Piece)
			}
			return r.piece(m.Piece, dst)
		})
	case *pb.WriteShardRequest:
		var dst []byte
		if p, ok := m.Msg.(*pb.WriteShardRequest_Piece); ok {
			dst = p.Piece.GetData()
		}
		proto.Reset(m)
		return true, decodeFields(data, func(r *reader, num protowire.Number, typ protowire.Type) error {
			if typ != protowire.BytesType {
				return r.skip(typ)
			}
			switch num {
			case 1:
				h := new(pb.ShardHeader)
				m.Msg = &pb.WriteShardRequest_Header{Header: h}
				return r.message(h)
			case 2:
				p := new(pb.Piece)
				m.Msg = &pb.WriteShardRequest_Piece{Piece: p}
				return r.piece(p, dst)
			case 3:
				f := new(pb.WriteFinish)
				m.Msg = &pb.WriteShardRequest_Finish{Finish: f}
				return r.message(f)
			}
			return r.skip(typ)
		})
	}
	return false, nil
}

// decodeReadShardResponse decodes a ReadShardResponse's fields: the
// header into *header (merged, as protobuf merges a repeated message), the
// piece through piece.
func decodeReadShardResponse(data mem.BufferSlice, header **pb.ShardHeader, piece func(*reader) error) error {
	return decodeFields(data, func(r *reader, num protowire.Number, typ protowire.Type) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			if *header == nil {
				*header = new(pb.ShardHeader)
			}
			return r.message(*header)
		case num == 2 && typ == protowire.BytesType:
			return piece(r)
		}
		return r.skip(typ)
	})
}

var errTruncated = errors.New("wire: truncated message")

// reader reads protobuf wire format from a BufferSlice, within a limit.
type reader struct {
	c     cursor
	limit int // bytes left in the current message
}

func decodeFields(data mem.BufferSlice, field func(r *reader, num protowire.Number, typ protowire.Type) error) error {
	r := &reader{c: cursor{bufs: data, i: -1}, limit: data.Len()}
	return r.fields(field)
}

// fields calls field for every field up to the limit.
func (r *reader) fields(field func(r *reader, num protowire.Number, typ protowire.Type) error) error {
	for r.limit > 0 {
		tag, err := r.varint()
		if err != nil {
			return err
		}
		num, typ := protowire.DecodeTag(tag)
		if num < protowire.MinValidNumber {
			return fmt.Errorf("wire: invalid field number %d", num)
		}
		if err := field(r, num, typ); err != nil {
			return err
		}
	}
	return nil
}

func (r *reader) varint() (uint64, error) {
	lr := limitedByteReader{r}
	v, err := binary.ReadUvarint(&lr)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, errTruncated
		}
		return 0, fmt.Errorf("wire: %w", err)
	}
	return v, nil
}

type limitedByteReader struct{ r *reader }

func (l *limitedByteReader) ReadByte() (byte, error) {
	if l.r.limit <= 0 {
		return 0, io.EOF
	}
	b, err := l.r.c.readByte()
	if err == nil {
		l.r.limit--
	}
	return b, err
}

// length reads a length prefix and checks it against the limit.
func (r *reader) length() (int, error) {
	n, err := r.varint()
	if err != nil {
		return 0, err
	}
	if n > uint64(r.limit) {
		return 0, errTruncated
	}
	return int(n), nil
}

// bytesInto reads a length-delimited field into dst's array when it fits,
// else into a new array.
func (r *reader) bytesInto(dst []byte) ([]byte, error) {
	n, err := r.length()
	if err != nil {
		return nil, err
	}
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	if !r.c.read(dst) {
		return nil, errTruncated
	}
	r.limit -= n
	return dst, nil
}

// message reads a length-delimited submessage into m with proto.Unmarshal
// (merging, as protobuf does with a repeated message field; unknown
// fields dropped).
func (r *reader) message(m proto.Message) error {
	b, err := r.bytesInto(nil)
	if err != nil {
		return err
	}
	return proto.UnmarshalOptions{Merge: true, DiscardUnknown: true}.Unmarshal(b, m)
}

// piece reads a length-delimited Piece into p, its data and then its
// trailer into dst's array where they fit.
func (r *reader) piece(p *pb.Piece, dst []byte) error {
	used := 0
	into := func(field *[]byte) func(*reader) error {
		return func(r *reader) error {
			b, err := r.bytesInto(dst[min(used, cap(dst)):cap(dst)][:0])
			*field, used = b, used+len(b)
			return err
		}
	}
	return r.pieceFields(&p.Block, &p.Corrupt, into(&p.Data), into(&p.Trailer))
}

// pieceFields reads a length-delimited Piece: its block number and corrupt
// flag into block and corrupt, its data and trailer fields (whichever
// order they come in) through data and trailer.
func (r *reader) pieceFields(block *uint64, corrupt *bool, data, trailer func(*reader) error) error {
	n, err := r.length()
	if err != nil {
		return err
	}
	outer := r.limit - n
	r.limit = n
	err = r.fields(func(r *reader, num protowire.Number, typ protowire.Type) error {
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, err := r.varint()
			*block = v
			return err
		case num == 2 && typ == protowire.BytesType:
			return data(r)
		case num == 3 && typ == protowire.BytesType:
			return trailer(r)
		case num == 4 && typ == protowire.VarintType:
			v, err := r.varint()
			*corrupt = v != 0
			return err
		}
		return r.skip(typ)
	})
	r.limit = outer
	return err
}

// skip reads past one field's value.
func (r *reader) skip(typ protowire.Type) error {
	var n int
	switch typ {
	case protowire.VarintType:
		_, err := r.varint()
		return err
	case protowire.Fixed32Type:
		n = 4
	case protowire.Fixed64Type:
		n = 8
	case protowire.BytesType:
		var err error
		if n, err = r.length(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("wire: unsupported wire type %d", typ)
	}
	if n > r.limit {
		return errTruncated
	}
	if !r.c.discard(n) {
		return errTruncated
	}
	r.limit -= n
	return nil
}

// OwnedPiece is a ReadShardResponse to send whose piece data is handed to
// gRPC without a copy: Data must start Buf, which belongs to gRPC once the
// message is marshalled (gRPC gives it back to Pool, or to the package's
// Pool when that is nil, once the bytes are on the wire or the stream is
// gone). Send it with the stream's SendMsg on a server that uses
// ServerOptions; the receiver sees a ReadShardResponse.
//
// Without a Header it is also a WriteShardRequest carrying a piece: the two
// messages number their piece field alike. A client sends pieces that way
// on a connection that uses DialOptions.
type OwnedPiece struct {
	Header        *pb.ShardHeader // first message of a stream only
	Block         uint64
	Data, Trailer []byte
	Buf           *[]byte
	Pool          mem.BufferPool // where Buf goes back; nil for Pool
	// Taken is set when Buf was handed to gRPC: from then on gRPC gives it
	// back, exactly once. A SendMsg that failed before marshalling leaves
	// it false, and Buf with its sender.
	Taken bool
}

// marshalOwnedPiece encodes p as three buffers: the fields before the
// data, the data itself (Buf), and the trailer field.
func marshalOwnedPiece(p *OwnedPiece) (mem.BufferSlice, error) {
	var head []byte
	if p.Header != nil {
		h, err := proto.Marshal(p.Header)
		if err != nil {
			return nil, err
		}
		head = protowire.AppendTag(head, 1, protowire.BytesType)
		head = protowire.AppendBytes(head, h)
	}
	inner := 0
	if p.Block != 0 {
		inner += protowire.SizeTag(1) + protowire.SizeVarint(p.Block)
	}
	inner += protowire.SizeTag(2) + protowire.SizeBytes(len(p.Data))
	inner += protowire.SizeTag(3) + protowire.SizeBytes(len(p.Trailer))
	head = protowire.AppendTag(head, 2, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(inner))
	if p.Block != 0 {
		head = protowire.AppendTag(head, 1, protowire.VarintType)
		head = protowire.AppendVarint(head, p.Block)
	}
	head = protowire.AppendTag(head, 2, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(len(p.Data)))
	tail := protowire.AppendTag(nil, 3, protowire.BytesType)
	tail = protowire.AppendBytes(tail, p.Trailer) // copied: the trailer may share Buf
	out := mem.BufferSlice{mem.SliceBuffer(head)}
	switch {
	case len(p.Data) == 0:
	case p.Buf != nil && len(*p.Buf) > 0 && &(*p.Buf)[0] == &p.Data[0] &&
		!mem.IsBelowBufferPoolingThreshold(cap(*p.Buf)):
		// (A buffer under the threshold would be referenced without a
		// count and never given back: it is copied, as the default is.)
		*p.Buf = (*p.Buf)[:len(p.Data)]
		pool := p.Pool
		if pool == nil {
			pool = Pool
		}
		out = append(out, mem.NewBuffer(p.Buf, pool))
		p.Taken = true
	default:
		out = append(out, mem.SliceBuffer(bytes.Clone(p.Data)))
	}
	return append(out, mem.SliceBuffer(tail)), nil
}
