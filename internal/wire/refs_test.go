package wire

import (
	"bytes"
	"testing"

	pb "github.com/clipstore/clipstore/proto/storagepb"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// countingPool hands out buffers and counts those that come back, to check
// that a RefUnit keeps frame buffers out of the pool until it is freed.
type countingPool struct{ out, back int }

func (p *countingPool) Get(n int) *[]byte { p.out++; b := make([]byte, n, max(n, 4096)); return &b } // pooled whatever n
func (p *countingPool) Put(*[]byte)       { p.back++ }
func (p *countingPool) allBack() bool     { return p.back == p.out }

// unmarshalPooled decodes message b into v as gRPC hands a message over:
// cut into pooled frame buffers of at most n bytes, decoded by Codec, and
// then gRPC's own references dropped. The pool tells which buffers v still
// holds.
func unmarshalPooled(b []byte, n int, v any) (*countingPool, error) {
	p := &countingPool{}
	var data mem.BufferSlice
	for len(b) > 0 {
		k := min(n, len(b))
		buf := p.Get(k)
		copy(*buf, b[:k])
		data = append(data, mem.NewBuffer(buf, p))
		b = b[k:]
	}
	err := Codec.Unmarshal(data, v)
	data.Free()
	return p, err
}

func TestPieceRefsRoundTrip(t *testing.T) {
	for _, msg := range pieceMessages() {
		want, ok := msg.(*pb.ReadShardResponse)
		if !ok {
			continue
		}
		b, _ := proto.Marshal(want)
		for _, chunk := range []int{1, 3, 16, 16384} {
			var m PieceRefs
			p, err := unmarshalPooled(b, chunk, &m)
			if err != nil {
				t.Fatalf("%v in chunks of %d: %v", want, chunk, err)
			}
			if !proto.Equal(m.Header, want.Header) && (m.Header != nil || want.Header != nil) {
				t.Fatalf("%v in chunks of %d: header %v", want, chunk, m.Header)
			}
			wp := want.GetPiece()
			if m.HasPiece != (wp != nil) || m.Block != wp.GetBlock() || m.Corrupt != wp.GetCorrupt() {
				t.Fatalf("%v in chunks of %d: piece %v/%d/%v", want, chunk, m.HasPiece, m.Block, m.Corrupt)
			}
			unit := append(bytes.Clone(wp.GetData()), wp.GetTrailer()...)
			if got := bytes.Join(m.Unit.Segs, nil); !bytes.Equal(got, unit) || m.Unit.Len() != len(unit) {
				t.Fatalf("%v in chunks of %d: unit of %d bytes, want %d", want, chunk, len(got), len(unit))
			}
			if len(unit) > 0 && p.allBack() {
				t.Fatalf("%v in chunks of %d: every frame buffer went back to the pool while the unit holds them", want, chunk)
			}
			m.Unit.Free()
			if !p.allBack() {
				t.Fatalf("%v in chunks of %d: %d of %d buffers back after Free", want, chunk, p.back, p.out)
			}
		}
	}
}

func TestPieceRefsTrailerFirst(t *testing.T) {
	// Protobuf fields may come in any order: the unit is still the data
	// followed by the trailer.
	var inner []byte
	inner = protowire.AppendTag(inner, 3, protowire.BytesType)
	inner = protowire.AppendBytes(inner, []byte("TRAILER"))
	inner = protowire.AppendTag(inner, 1, protowire.VarintType)
	inner = protowire.AppendVarint(inner, 9)
	inner = protowire.AppendTag(inner, 2, protowire.BytesType)
	inner = protowire.AppendBytes(inner, []byte("data bytes"))
	msg := protowire.AppendTag(nil, 2, protowire.BytesType)
	msg = protowire.AppendBytes(msg, inner)
	var m PieceRefs
	if err := Codec.Unmarshal(split(msg, 4), &m); err != nil {
		t.Fatal(err)
	}
	if got := string(bytes.Join(m.Unit.Segs, nil)); got != "data bytesTRAILER" || m.Block != 9 {
		t.Fatalf("unit %q, block %d", got, m.Block)
	}
}

// rejectsTruncations decodes every proper prefix of the message b into a
// new message from msg, whose kept returns the segments it holds: each
// must fail, keep none, and leave every buffer back in the pool.
func rejectsTruncations(t *testing.T, b []byte, msg func() (v any, kept func() [][]byte)) {
	t.Helper()
	for n := 1; n < len(b); n++ {
		v, segs := msg()
		p, err := unmarshalPooled(b[:n], 7, v)
		if err == nil {
			t.Errorf("truncated to %d of %d bytes: no error", n, len(b))
		}
		if kept := segs(); !p.allBack() || kept != nil {
			t.Fatalf("truncated to %d bytes: %d of %d buffers back, %d segments kept", n, p.back, p.out, len(kept))
		}
	}
}

func TestPieceRefsRejectBadInput(t *testing.T) {
	b, _ := proto.Marshal(&pb.ReadShardResponse{Piece: &pb.Piece{Block: 1, Data: pattern(100, 1), Trailer: pattern(8, 2)}})
	rejectsTruncations(t, b, func() (any, func() [][]byte) {
		m := new(PieceRefs)
		return m, func() [][]byte { return m.Unit.Segs }
	})
}

// FuzzPieceRefs checks PieceRefs against proto.Unmarshal: never a panic,
// the same piece whenever both accept the input, and every buffer back in
// the pool once the unit is freed.
func FuzzPieceRefs(f *testing.F) {
	for _, m := range pieceMessages() {
		b, _ := proto.Marshal(m)
		f.Add(b, uint8(3))
	}
	f.Fuzz(func(t *testing.T, b []byte, chunk uint8) {
		var got PieceRefs
		p, err := unmarshalPooled(b, int(chunk)+1, &got)
		want := new(pb.ReadShardResponse)
		if (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, want) == nil && err == nil {
			wp := want.GetPiece()
			unit := append(bytes.Clone(wp.GetData()), wp.GetTrailer()...)
			if !bytes.Equal(bytes.Join(got.Unit.Segs, nil), unit) || got.Block != wp.GetBlock() || got.Corrupt != wp.GetCorrupt() {
				t.Fatalf("decoded piece %d/%v/%q, protobuf decodes %v", got.Block, got.Corrupt, bytes.Join(got.Unit.Segs, nil), wp)
			}
		}
		got.Unit.Free()
		if !p.allBack() {
			t.Fatalf("%d of %d buffers back after Free", p.back, p.out)
		}
	})
}

// writeRequest is the WriteShardRequest that m holds.
func writeRequest(m *WriteRefs) *pb.WriteShardRequest {
	switch {
	case m.Header != nil:
		return &pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Header{Header: m.Header}}
	case m.HasPiece:
		return &pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Piece{Piece: &pb.Piece{
			Block: m.Block, Data: bytes.Join(m.Data.Segs, nil), Trailer: m.Trailer}}}
	case m.Finish != nil:
		return &pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Finish{Finish: m.Finish}}
	}
	return &pb.WriteShardRequest{}
}

func TestWriteRefsRoundTrip(t *testing.T) {
	msgs := []*pb.WriteShardRequest{{}}
	for _, msg := range pieceMessages() {
		if w, ok := msg.(*pb.WriteShardRequest); ok {
			msgs = append(msgs, w)
		}
	}
	var m WriteRefs // reused, as a storage node reuses it
	for _, want := range msgs {
		b, _ := proto.Marshal(want)
		for _, chunk := range []int{1, 3, 16, 16384} {
			p, err := unmarshalPooled(b, chunk, &m)
			if err != nil {
				t.Fatalf("%v in chunks of %d: %v", want, chunk, err)
			}
			if got := writeRequest(&m); !proto.Equal(got, want) {
				t.Fatalf("%v in chunks of %d: decoded %v", want, chunk, got)
			}
			if len(want.GetPiece().GetData()) > 0 && p.allBack() {
				t.Fatalf("%v in chunks of %d: every frame buffer went back to the pool while the piece holds them", want, chunk)
			}
			m.Data.Free()
			if !p.allBack() {
				t.Fatalf("%v in chunks of %d: %d of %d buffers back after Free", want, chunk, p.back, p.out)
			}
		}
	}
}

func TestWriteRefsRejectBadInput(t *testing.T) {
	b, _ := proto.Marshal(&pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Piece{
		Piece: &pb.Piece{Block: 1, Data: pattern(100, 1), Trailer: pattern(8, 2)}}})
	rejectsTruncations(t, b, func() (any, func() [][]byte) {
		m := new(WriteRefs)
		return m, func() [][]byte { return m.Data.Segs }
	})
}

// FuzzWriteRefs checks WriteRefs against proto.Unmarshal: never a panic,
// the same message whenever both accept the input, and every buffer back
// in the pool once the piece is freed.
func FuzzWriteRefs(f *testing.F) {
	for _, m := range pieceMessages() {
		if _, ok := m.(*pb.WriteShardRequest); ok {
			b, _ := proto.Marshal(m)
			f.Add(b, uint8(3))
			f.Add(append(b, b...), uint8(9)) // the oneof twice: merged
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, chunk uint8) {
		var got WriteRefs
		p, err := unmarshalPooled(b, int(chunk)+1, &got)
		want := new(pb.WriteShardRequest)
		if (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, want) == nil && err == nil {
			if g := writeRequest(&got); !proto.Equal(g, want) {
				t.Fatalf("decoded %v, protobuf decodes %v", g, want)
			}
		}
		got.Data.Free()
		if !p.allBack() {
			t.Fatalf("%d of %d buffers back after Free", p.back, p.out)
		}
	})
}
