// Package wire holds the gRPC settings of clipstore's bulk data path:
// shard pieces of hundreds of KiB stream between clients and storage
// nodes, and gRPC's defaults are tuned for small RPCs.
//
//   - Buffers: gRPC's default buffer pool zeroes every buffer it hands out
//     and has no size class between 32 KiB and 1 MiB, so each 256 KiB
//     piece cost clearing 1 MiB. Pool never zeroes (every user overwrites
//     what it asks for) and has quarter-power-of-two classes, so no buffer
//     is more than 25% larger than asked.
//   - Codec: the standard protobuf codec, on Pool, except that messages
//     carrying a piece are decoded straight from the frame buffers into
//     memory the receiver provides (see PieceInto).
//   - Flow control: static windows large enough for several pieces per
//     stream in flight, and a bigger write buffer, so a stream is not held
//     up by window updates on a fast link.
//   - No read buffer: gRPC then reads each frame's payload from the socket
//     straight into its frame buffer, instead of reading into a buffer of
//     its own and copying every byte out of it again. That costs one more
//     read(2) per 16 KiB frame (for the 9-byte header) and saves a copy of
//     every byte received. On a 2-core machine, `clipstore bench get` of
//     8 MiB clips by 8 workers went from 749 to 892 MiB/s (means of three
//     A/B pairs of fresh clusters), and `bench put` gained about 5%.
//
// Both ends of a connection should use these options, but either works
// with a peer that does not: the wire format is plain gRPC and protobuf.
package wire

import (
	"fmt"
	"math/bits"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
)

const (
	// StreamWindow is the HTTP/2 flow-control window of one stream: eight
	// pieces of a 4+2 clip with 1 MiB blocks, two of a 1+m one. A reader
	// holds up to about this much per shard it reads in frame buffers
	// (PieceRefs); 4 MiB cost a 1 GiB Get 5-8 MiB more peak RSS and
	// gained nothing in A/B runs on loopback, where 2 MiB is many
	// round trips of bandwidth.
	StreamWindow = 2 << 20
	// ConnWindow is the window of a connection, shared by its streams.
	ConnWindow = 16 << 20
	// SocketBuffer is the size of gRPC's write buffer around each
	// connection's socket (it has no read buffer; see above).
	SocketBuffer = 256 << 10
)

// DialOptions are the options for a connection that carries shard data.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(Codec)),
		experimental.WithBufferPool(Pool),
		grpc.WithStaticStreamWindowSize(StreamWindow),
		grpc.WithStaticConnWindowSize(ConnWindow),
		grpc.WithReadBufferSize(0),
		grpc.WithWriteBufferSize(SocketBuffer),
	}
}

// ServerOptions are the options for a server that receives or sends shard
// data.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(Codec),
		experimental.BufferPool(Pool),
		grpc.StaticStreamWindowSize(StreamWindow),
		grpc.StaticConnWindowSize(ConnWindow),
		grpc.ReadBufferSize(0),
		grpc.WriteBufferSize(SocketBuffer),
	}
}

// Pool is a buffer pool whose buffers are not zeroed: size classes of
// 2^n, 1.25·2^n, 1.5·2^n and 1.75·2^n bytes from 4 KiB to 64 MiB, one
// sync.Pool each. Smaller and larger requests are allocated.
var Pool mem.BufferPool = newPool()

const (
	minClassShift = 12 // 4 KiB
	maxClassShift = 26 // 64 MiB
)

type pool struct {
	classes [(maxClassShift - minClassShift + 1) * 4]sync.Pool
}

func newPool() *pool { return &pool{} }

// class returns the index and capacity of the smallest class holding n
// bytes; ok is false outside the classes.
func class(n int) (idx, size int, ok bool) {
	if n <= 1<<minClassShift {
		return 0, 1 << minClassShift, n > 0
	}
	shift := bits.Len(uint(n-1)) - 1 // 2^shift < n <= 2^(shift+1)
	if shift+1 > maxClassShift {
		return 0, 0, false
	}
	base := 1 << shift
	quarter := base / 4
	q := (n - base + quarter - 1) / quarter // 1..4 quarters above base
	idx = (shift-minClassShift)*4 + q
	return idx, base + q*quarter, true
}

func (p *pool) Get(n int) *[]byte {
	idx, size, ok := class(n)
	if !ok {
		b := make([]byte, n)
		return &b
	}
	if b, _ := p.classes[idx].Get().(*[]byte); b != nil {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, size)
	return &b
}

func (p *pool) Put(b *[]byte) {
	idx, size, ok := class(cap(*b))
	if !ok || size != cap(*b) {
		return // not one of ours
	}
	*b = (*b)[:0]
	p.classes[idx].Put(b)
}

// Codec is the protobuf codec (registered name "proto"), marshalling into
// and unmarshalling from Pool.
var Codec encoding.CodecV2 = codec{}

type codec struct{}

func (codec) Name() string { return "proto" }

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	if p, ok := v.(*OwnedPiece); ok {
		return marshalOwnedPiece(p)
	}
	m := messageOf(v)
	if m == nil {
		return nil, fmt.Errorf("wire: cannot marshal %T: not a protobuf message", v)
	}
	size := proto.Size(m)
	opts := proto.MarshalOptions{UseCachedSize: true} // the size just computed
	if mem.IsBelowBufferPoolingThreshold(size) {
		b, err := opts.Marshal(m)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	buf := Pool.Get(size)
	if _, err := opts.MarshalAppend((*buf)[:0], m); err != nil {
		Pool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, Pool)}, nil
}

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *PieceRefs:
		return unmarshalPieceRefs(data, m)
	case *WriteRefs:
		return unmarshalWriteRefs(data, m)
	}
	m := messageOf(v)
	if m == nil {
		return fmt.Errorf("wire: cannot unmarshal into %T: not a protobuf message", v)
	}
	if handled, err := unmarshalPieceMessage(data, m); handled {
		return err
	}
	buf := data.MaterializeToBuffer(Pool)
	defer buf.Free()
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}

func messageOf(v any) proto.Message {
	switch v := v.(type) {
	case protoadapt.MessageV1:
		return protoadapt.MessageV2Of(v)
	case protoadapt.MessageV2:
		return v
	}
	return nil
}
