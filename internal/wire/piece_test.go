package wire

import (
	"bytes"
	"testing"

	pb "github.com/clipstore/clipstore/proto/storagepb"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// split cuts b into buffers of at most n bytes, as gRPC hands over a
// message that spans several HTTP/2 frames.
func split(b []byte, n int) mem.BufferSlice {
	var s mem.BufferSlice
	for len(b) > 0 {
		k := min(n, len(b))
		s = append(s, mem.SliceBuffer(bytes.Clone(b[:k])))
		b = b[k:]
	}
	return s
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

func pieceMessages() []proto.Message {
	h := &pb.ShardHeader{ShardId: pattern(16, 1), ClipId: pattern(16, 2), Index: 3, DataShards: 4, ParityShards: 2, BlockSize: 1 << 20}
	piece := &pb.Piece{Block: 300, Data: pattern(1000, 3), Trailer: pattern(28, 4)}
	return []proto.Message{
		&pb.ReadShardResponse{Header: h},
		&pb.ReadShardResponse{Piece: piece},
		&pb.ReadShardResponse{Header: h, Piece: piece},
		&pb.ReadShardResponse{Piece: &pb.Piece{Block: 7, Corrupt: true}},
		&pb.ReadShardResponse{},
		&pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Header{Header: h}},
		&pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Piece{Piece: piece}},
		&pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Finish{Finish: &pb.WriteFinish{Blocks: 9, Checksum: proto.Uint32(5)}}},
		&pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Finish{Finish: &pb.WriteFinish{}}},
	}
}

func TestPieceMessagesRoundTrip(t *testing.T) {
	for _, want := range pieceMessages() {
		b, err := proto.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		for _, chunk := range []int{1, 3, 16, 1 << 20} {
			got := want.ProtoReflect().New().Interface()
			if err := Codec.Unmarshal(split(b, chunk), got); err != nil {
				t.Fatalf("%T in chunks of %d: %v", want, chunk, err)
			}
			if !proto.Equal(got, want) {
				t.Fatalf("%T in chunks of %d: decoded %v, want %v", want, chunk, got, want)
			}
		}
	}
}

func TestPieceIntoDecodesInPlace(t *testing.T) {
	piece := &pb.Piece{Block: 1, Data: pattern(5000, 5), Trailer: pattern(28, 6)}
	b, _ := proto.Marshal(&pb.ReadShardResponse{Piece: piece})
	for _, tc := range []struct {
		name             string
		cap              int
		inPlace, adjoins bool
	}{
		{"room for both", 6000, true, true},
		{"exact", 5028, true, true},
		{"room for the data only", 5010, true, false},
		{"too small", 100, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := make([]byte, 0, tc.cap)
			m := PieceInto(new(pb.ReadShardResponse), buf)
			if err := Codec.Unmarshal(split(b, 16384), m); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(m.Piece, piece) {
				t.Fatalf("decoded %v", m.Piece)
			}
			u := Unit(m.Piece, buf)
			if !bytes.Equal(u, append(bytes.Clone(piece.Data), piece.Trailer...)) {
				t.Fatal("Unit is not data then trailer")
			}
			if inPlace := &m.Piece.Data[0] == &buf[:1][0]; inPlace != tc.inPlace {
				t.Fatalf("data decoded in place: %v, want %v", inPlace, tc.inPlace)
			}
			if _, adj := adjacent(m.Piece.Data, m.Piece.Trailer); adj != tc.adjoins {
				t.Fatalf("data and trailer adjacent: %v, want %v", adj, tc.adjoins)
			}
		})
	}
	w := PieceInto(new(pb.WriteShardRequest), make([]byte, 0, 6000))
	b, _ = proto.Marshal(&pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Piece{Piece: piece}})
	if err := Codec.Unmarshal(split(b, 100), w); err != nil || !proto.Equal(w.GetPiece(), piece) {
		t.Fatalf("WriteShardRequest: %v, %v", w, err)
	}
}

func TestPieceMessagesSkipUnknownFields(t *testing.T) {
	want := &pb.ReadShardResponse{Piece: &pb.Piece{Block: 2, Data: []byte("abc"), Trailer: []byte("t")}}
	b, _ := proto.Marshal(want)
	// A newer sender's fields of every wire type, at both levels.
	extra := protowire.AppendTag(nil, 99, protowire.VarintType)
	extra = protowire.AppendVarint(extra, 1<<40)
	extra = protowire.AppendTag(extra, 98, protowire.Fixed32Type)
	extra = protowire.AppendFixed32(extra, 1)
	extra = protowire.AppendTag(extra, 97, protowire.Fixed64Type)
	extra = protowire.AppendFixed64(extra, 1)
	extra = protowire.AppendTag(extra, 96, protowire.BytesType)
	extra = protowire.AppendBytes(extra, []byte("ignored"))
	inner, _ := proto.Marshal(want.Piece)
	msg := protowire.AppendTag(append([]byte{}, extra...), 2, protowire.BytesType)
	msg = protowire.AppendBytes(msg, append(inner, extra...))
	got := new(pb.ReadShardResponse)
	if err := Codec.Unmarshal(split(msg, 5), got); err != nil {
		t.Fatal(err)
	}
	if got.Piece.Block != 2 || string(got.Piece.Data) != "abc" || string(got.Piece.Trailer) != "t" {
		t.Fatalf("decoded %v", got)
	}
	_ = b
}

func TestPieceMessagesRejectBadInput(t *testing.T) {
	b, _ := proto.Marshal(&pb.ReadShardResponse{Piece: &pb.Piece{Block: 1, Data: pattern(100, 1), Trailer: pattern(8, 2)}})
	for n := range len(b) {
		if err := Codec.Unmarshal(split(b[:n], 7), new(pb.ReadShardResponse)); n > 0 && err == nil {
			t.Errorf("truncated to %d of %d bytes: no error", n, len(b))
		}
	}
	bad := [][]byte{
		{0x12, 0xff, 0xff, 0xff, 0xff, 0x0f}, // piece longer than the message
		{0x0b},                               // start group: unsupported
		{0x00, 0x01},                         // field number 0
		{0x12, 0x03, 0x12, 0x05, 0x00},       // data longer than its piece
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, // varint overflow
	}
	for _, in := range bad {
		if err := Codec.Unmarshal(split(in, 2), new(pb.ReadShardResponse)); err == nil {
			t.Errorf("% x: no error", in)
		}
	}
}

// FuzzPieceMessages checks the decoder against proto.Unmarshal: never a
// panic, and the same message whenever both accept the input.
func FuzzPieceMessages(f *testing.F) {
	for _, m := range pieceMessages() {
		b, _ := proto.Marshal(m)
		f.Add(b, uint8(3), false)
		f.Add(b, uint8(200), true)
	}
	f.Fuzz(func(t *testing.T, b []byte, chunk uint8, write bool) {
		var want, got proto.Message = new(pb.ReadShardResponse), PieceInto(new(pb.ReadShardResponse), make([]byte, 0, 64))
		if write {
			want, got = new(pb.WriteShardRequest), PieceInto(new(pb.WriteShardRequest), make([]byte, 0, 64))
		}
		err := Codec.Unmarshal(split(b, int(chunk)+1), got)
		// Unknown fields are dropped, not kept as protobuf keeps them.
		if (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, want) == nil && err == nil && !proto.Equal(got, want) {
			t.Fatalf("decoded %v, protobuf decodes %v", got, want)
		}
	})
}

func BenchmarkUnmarshalPiece(b *testing.B) {
	msg, _ := proto.Marshal(&pb.ReadShardResponse{Piece: &pb.Piece{Block: 1, Data: pattern(256<<10, 1), Trailer: pattern(28, 2)}})
	data := split(msg, 16384)
	buf := make([]byte, 0, 256<<10+28)
	b.Run("wire", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			if err := Codec.Unmarshal(data, PieceInto(new(pb.ReadShardResponse), buf)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("protobuf", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			m := data.Materialize()
			if err := proto.Unmarshal(m, new(pb.ReadShardResponse)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// countPuts is a mem.BufferPool that counts the buffers given back.
type countPuts struct{ puts int }

func (p *countPuts) Get(n int) *[]byte { b := make([]byte, n); return &b }
func (p *countPuts) Put(*[]byte)       { p.puts++ }

// TestOwnedPieceOwnership: a buffer handed over is given back to its pool
// once, when gRPC frees the message, and not before; one that is not (too
// small to be counted, or not the buffer the data starts) is copied, so
// the sender may reuse it as soon as SendMsg returns. Without a header the
// message is a WriteShardRequest's piece.
func TestOwnedPieceOwnership(t *testing.T) {
	for _, tc := range []struct {
		name      string
		data      int
		sameBuf   bool
		wantTaken bool
	}{
		{"large, its own buffer", 70000, true, true},
		{"small", 600, true, false},
		{"large, data not at the buffer's start", 70000, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := pattern(tc.data, 3)
			buf := &raw
			data := raw
			if !tc.sameBuf {
				data = bytes.Clone(raw)
			}
			trailer := pattern(28, 4)
			want := &pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Piece{Piece: &pb.Piece{
				Block: 4, Data: bytes.Clone(data), Trailer: trailer}}}
			pool := &countPuts{}
			msg := &OwnedPiece{Block: 4, Data: data, Trailer: trailer, Buf: buf, Pool: pool}
			out, err := Codec.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			if msg.Taken != tc.wantTaken {
				t.Fatalf("Taken = %v, want %v", msg.Taken, tc.wantTaken)
			}
			if !msg.Taken {
				clear(data) // the sender reuses its buffer at once
			}
			got := new(pb.WriteShardRequest)
			if err := proto.Unmarshal(out.Materialize(), got); err != nil || !proto.Equal(got, want) {
				t.Fatalf("decodes as %v (%v), want %v", got, err, want)
			}
			if pool.puts != 0 {
				t.Fatalf("%d buffers given back while gRPC holds the message", pool.puts)
			}
			out.Free()
			if wantPuts := map[bool]int{true: 1, false: 0}[tc.wantTaken]; pool.puts != wantPuts {
				t.Fatalf("%d buffers given back after Free, want %d", pool.puts, wantPuts)
			}
		})
	}
}

func TestOwnedPieceMarshal(t *testing.T) {
	h := &pb.ShardHeader{ShardId: pattern(16, 1), Index: 2, DataShards: 4, ParityShards: 2, BlockSize: 1 << 20}
	for _, tc := range []struct {
		name   string
		header *pb.ShardHeader
		block  uint64
		data   int
		owned  bool
	}{
		{"owned, with header, block 0", h, 0, 70000, true},
		{"owned, block 5", nil, 5, 70000, true},
		{"not from the pool", nil, 9, 70000, false},
		{"small", h, 1, 10, true},
		{"empty data", nil, 3, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := Pool.Get(tc.data + 28)
			copy(*buf, pattern(tc.data+28, 9))
			data, trailer := (*buf)[:tc.data], (*buf)[tc.data:]
			want := &pb.ReadShardResponse{Header: tc.header, Piece: &pb.Piece{Block: tc.block, Data: bytes.Clone(data), Trailer: bytes.Clone(trailer)}}
			msg := &OwnedPiece{Header: tc.header, Block: tc.block, Data: data, Trailer: trailer, Buf: buf}
			if !tc.owned {
				msg.Data, msg.Buf = bytes.Clone(data), nil
			}
			out, err := Codec.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			if tc.owned && tc.data >= 1<<10 && out.Len() > 0 && len(out) == 3 && &out[1].ReadOnlyData()[0] != &data[0] {
				t.Fatal("the data was copied")
			}
			wire := out.Materialize()
			out.Free()
			got := new(pb.ReadShardResponse)
			if err := proto.Unmarshal(wire, got); err != nil {
				t.Fatalf("protobuf cannot decode it: %v", err)
			}
			if want.Piece.Data == nil {
				want.Piece.Data = []byte{}
			}
			if !proto.Equal(got, want) {
				t.Fatalf("protobuf decodes %v, want %v", got, want)
			}
			got2 := new(pb.ReadShardResponse)
			if err := Codec.Unmarshal(split(wire, 100), got2); err != nil || !proto.Equal(got2, want) {
				t.Fatalf("Codec decodes %v (%v), want %v", got2, err, want)
			}
		})
	}
}
