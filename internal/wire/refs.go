package wire

// A piece can also be received without any copy at all: its bytes stay in
// the buffers gRPC read its HTTP/2 frames into (16 KiB each), and the
// receiver keeps a reference to each until it is done with them. A reader
// of a clip verifies and writes out the pieces from there: the only copy of
// a byte on the client is then the kernel's, from the socket.

import (
	"io"

	pb "github.com/clipstore/clipstore/proto/storagepb"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// RefUnit is a unit (a piece, then its trailer) received without a copy:
// Segs are slices of gRPC's frame buffers, in order, and the unit holds a
// reference to each of those buffers until Free.
type RefUnit struct {
	Segs [][]byte
	bufs []mem.Buffer
}

// OwnedUnit is a unit held whole in buf, a buffer from Pool, which Free
// gives back (a unit read from a raw connection, package rawshard).
func OwnedUnit(buf *[]byte) RefUnit {
	return RefUnit{Segs: [][]byte{*buf}, bufs: []mem.Buffer{mem.NewBuffer(buf, Pool)}}
}

// Len returns the unit's length in bytes.
func (u *RefUnit) Len() int {
	n := 0
	for _, s := range u.Segs {
		n += len(s)
	}
	return n
}

// Free gives the frame buffers back; Segs must not be used after it. Free
// on a unit without segments does nothing.
func (u *RefUnit) Free() {
	for _, b := range u.bufs {
		b.Free()
	}
	u.Segs, u.bufs = nil, nil
}

// PieceRefs receives a ReadShardResponse, its piece's data and trailer
// left in gRPC's frame buffers as one RefUnit. Pass it to RecvMsg of a
// ReadShard stream on a connection that uses DialOptions (Codec decodes
// it; no other codec can):
//
//	var m wire.PieceRefs
//	err := stream.RecvMsg(&m)
//	... use m.Unit.Segs ...
//	m.Unit.Free()
//
// RecvMsg replaces what m held: take m.Unit out first if it is still in use.
type PieceRefs struct {
	Header   *pb.ShardHeader // first message of a stream only
	HasPiece bool            // the message carries a piece (a header-only message does not)
	Block    uint64
	Corrupt  bool    // the node found the piece corrupt: no data, no trailer
	Unit     RefUnit // the piece's data then its trailer
}

// WriteRefs receives a WriteShardRequest with its piece's data left in
// gRPC's frame buffers, as PieceRefs does for a ReadShardResponse: a
// storage node verifies the piece and writes it to its file from there.
// Pass it to RecvMsg of a WriteShard stream on a server that uses
// ServerOptions:
//
//	var m wire.WriteRefs
//	err := stream.RecvMsg(&m)
//	... use m.Data.Segs and m.Trailer ...
//	m.Data.Free()
//
// Exactly one of Header, HasPiece and Finish is set after a successful
// RecvMsg of a well-formed message (none for an empty one). RecvMsg
// replaces what m held: take m.Data out, or free it, first.
type WriteRefs struct {
	Header   *pb.ShardHeader
	HasPiece bool
	Block    uint64
	Data     RefUnit // the piece's data
	Trailer  []byte  // the piece's trailer, copied: a few dozen bytes
	Finish   *pb.WriteFinish
}

// unmarshalWriteRefs decodes a WriteShardRequest into m (see WriteRefs)
// as protobuf would: its three fields are a oneof, so another one present
// replaces what came before, and the same one again is merged into it.
// The trailer is decoded into the array m.Trailer had.
func unmarshalWriteRefs(data mem.BufferSlice, m *WriteRefs) error {
	trailer := m.Trailer[:0]
	*m = WriteRefs{Trailer: trailer}
	var cur protowire.Number
	err := decodeFields(data, func(r *reader, num protowire.Number, typ protowire.Type) error {
		if typ != protowire.BytesType || num < 1 || num > 3 {
			return r.skip(typ)
		}
		if num != cur {
			m.Data.Free()
			*m = WriteRefs{Trailer: trailer}
			cur = num
		}
		switch num {
		case 1:
			if m.Header == nil {
				m.Header = new(pb.ShardHeader)
			}
			return r.message(m.Header)
		case 2:
			m.HasPiece = true
			var corrupt bool // not a field of a piece being written
			return r.pieceFields(&m.Block, &corrupt,
				func(r *reader) error {
					m.Data.Free() // a repeated field: the last one wins
					return r.refs(&m.Data)
				},
				func(r *reader) error {
					b, err := r.bytesInto(trailer)
					m.Trailer = b
					return err
				})
		default:
			if m.Finish == nil {
				m.Finish = new(pb.WriteFinish)
			}
			return r.message(m.Finish)
		}
	})
	if err != nil {
		m.Data.Free()
	}
	return err
}

// unmarshalPieceRefs decodes a ReadShardResponse into m (see PieceRefs).
func unmarshalPieceRefs(data mem.BufferSlice, m *PieceRefs) error {
	*m = PieceRefs{}
	var trailer RefUnit
	err := decodeReadShardResponse(data, &m.Header, func(r *reader) error {
		m.HasPiece = true
		return r.pieceRefs(m, &trailer)
	})
	// The data, then the trailer, whichever order the fields came in.
	m.Unit.Segs = append(m.Unit.Segs, trailer.Segs...)
	m.Unit.bufs = append(m.Unit.bufs, trailer.bufs...)
	if err != nil {
		m.Unit.Free()
	}
	return err
}

// pieceRefs reads a length-delimited Piece: its data into m.Unit and its
// trailer into trailer, as references.
func (r *reader) pieceRefs(m *PieceRefs, trailer *RefUnit) error {
	return r.pieceFields(&m.Block, &m.Corrupt,
		func(r *reader) error { return r.refs(&m.Unit) },
		func(r *reader) error { return r.refs(trailer) })
}

// refs reads a length-delimited field as references appended to u.
func (r *reader) refs(u *RefUnit) error {
	n, err := r.length()
	if err != nil {
		return err
	}
	if !r.c.take(n, u) {
		return errTruncated
	}
	r.limit -= n
	return nil
}

// cursor reads a BufferSlice from front to back.
type cursor struct {
	bufs mem.BufferSlice
	i    int    // the buffer cur is in; -1 before the first
	cur  []byte // what is left of bufs[i]
}

// next moves to the next buffer that is not empty; false at the end.
func (c *cursor) next() bool {
	for len(c.cur) == 0 {
		if c.i+1 >= len(c.bufs) {
			return false
		}
		c.i++
		c.cur = c.bufs[c.i].ReadOnlyData()
	}
	return true
}

func (c *cursor) readByte() (byte, error) {
	if !c.next() {
		return 0, io.EOF
	}
	b := c.cur[0]
	c.cur = c.cur[1:]
	return b, nil
}

// read fills p; false if the slice ends first.
func (c *cursor) read(p []byte) bool {
	for len(p) > 0 {
		if !c.next() {
			return false
		}
		k := copy(p, c.cur)
		p, c.cur = p[k:], c.cur[k:]
	}
	return true
}

// discard skips n bytes; false if the slice ends first.
func (c *cursor) discard(n int) bool {
	for n > 0 {
		if !c.next() {
			return false
		}
		k := min(n, len(c.cur))
		n, c.cur = n-k, c.cur[k:]
	}
	return true
}

// take appends the next n bytes to u as slices of the buffers they are
// in, taking a reference to each of those buffers; false if the slice
// ends first (u may then hold part of them).
func (c *cursor) take(n int, u *RefUnit) bool {
	for n > 0 {
		if !c.next() {
			return false
		}
		k := min(n, len(c.cur))
		b := c.bufs[c.i]
		b.Ref()
		u.Segs = append(u.Segs, c.cur[:k:k])
		u.bufs = append(u.bufs, b)
		n, c.cur = n-k, c.cur[k:]
	}
	return true
}
