package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/clipstore/clipstore/erasure"
	pb "github.com/clipstore/clipstore/proto/storagepb"
)

// EncodedClip is a clip encoded for a test that talks to storage nodes
// directly: its bytes and, per shard index, the write requests that store
// that shard.
type EncodedClip struct {
	Data   []byte
	Code   *erasure.Code
	Shards [][]*pb.WriteShardRequest
	Sums   []uint32 // per shard, as the encoder computed them
}

// EncodeClip encodes size random bytes with code into shards with random
// ids, a random clip id and a commit deadline an hour away.
func EncodeClip(t testing.TB, code *erasure.Code, size int) *EncodedClip {
	t.Helper()
	c := &EncodedClip{Data: make([]byte, size), Code: code, Shards: make([][]*pb.WriteShardRequest, code.Shards())}
	rand.Read(c.Data)
	clipID := make([]byte, 16)
	rand.Read(clipID)
	deadline := time.Now().Add(time.Hour).UnixNano()
	for i := range c.Shards {
		id := make([]byte, 16)
		rand.Read(id)
		c.Shards[i] = append(c.Shards[i], &pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Header{Header: &pb.ShardHeader{
			ShardId: id, ClipId: clipID, Index: uint32(i), DataShards: uint32(code.DataShards()),
			ParityShards: uint32(code.ParityShards()), BlockSize: uint32(code.BlockSize()), CommitDeadlineUnixNano: deadline,
		}}})
	}
	enc := code.NewEncoder(bytes.NewReader(c.Data))
	for {
		b, err := enc.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for i := range c.Shards {
			p := &pb.Piece{Block: uint64(b.Num), Data: bytes.Clone(b.Pieces[i]), Trailer: bytes.Clone(b.Trailer(i))}
			c.Shards[i] = append(c.Shards[i], &pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Piece{Piece: p}})
		}
		b.Release()
	}
	res := enc.Result()
	c.Sums = res.ShardSums
	for i := range c.Shards {
		sum := res.ShardSums[i]
		c.Shards[i] = append(c.Shards[i], &pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Finish{
			Finish: &pb.WriteFinish{Blocks: uint64(res.Blocks), Checksum: &sum}}})
	}
	return c
}

// ShardID is the id of shard index i.
func (c *EncodedClip) ShardID(i int) []byte { return c.Shards[i][0].GetHeader().ShardId }

// WriteShard sends one shard's write requests to a storage node, within a
// minute.
func WriteShard(t testing.TB, client pb.StorageServiceClient, reqs []*pb.WriteShardRequest) (*pb.WriteShardResponse, error) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	stream, err := client.WriteShard(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range reqs {
		if err := stream.Send(r); err != nil {
			break // the node answered early; CloseAndRecv has its status
		}
	}
	return stream.CloseAndRecv()
}
