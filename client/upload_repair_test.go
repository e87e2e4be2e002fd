package client_test

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/meta"
	metapb "github.com/clipstore/clipstore/proto/metapb"
)

// TestUploadPartRepairedBeforeComplete: a storage node holding a shard of
// an upload's part dies before the upload completes; the storage nodes
// rebuild that shard elsewhere (meta plans it as a clip's), so the clip
// the upload becomes has every shard OK on live nodes, and reads back.
func TestUploadPartRepairedBeforeComplete(t *testing.T) {
	tc := newClusterWith(t, 7, client.Config{}, func(c *meta.Config) {
		c.HeartbeatInterval, c.NodeDownAfter, c.RepairAfter = 50*time.Millisecond, 500*time.Millisecond, 100*time.Millisecond
	})
	ctx := t.Context()
	tc.mkBucket("parts", &client.Profile{DataShards: 4, ParityShards: 2, BlockSize: 64 << 10})
	up, err := tc.client.CreateUpload(ctx, "parts", "clip", nil)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 700_001)
	for i := range data {
		data[i] = byte(rand.N(256))
	}
	if _, err := tc.client.PutPart(ctx, "parts", "clip", up.UploadID, 1, bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	mc := tc.meta.Members[0].Client
	holders := map[string]uint32{} // node -> the part's shard index it holds
	for _, n := range tc.nodes {
		resp, err := mc.ListNodeShards(ctx, &metapb.ListNodeShardsRequest{NodeId: n.id})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range resp.Shards {
			holders[n.id] = s.Index
		}
	}
	if len(holders) != 6 {
		t.Fatalf("the part's shards are on %d nodes, want 6: %v", len(holders), holders)
	}
	var victim, spare string
	for _, n := range tc.nodes {
		if _, ok := holders[n.id]; !ok {
			spare = n.id
		} else if victim == "" {
			victim = n.id
		}
	}
	lost := holders[victim]
	tc.stopNode(victim)
	await.TrueWhy(t, 20*time.Second, "the lost shard rebuilt on "+spare, func() (bool, string) {
		resp, err := mc.ListNodeShards(ctx, &metapb.ListNodeShardsRequest{NodeId: spare})
		if err != nil {
			return false, err.Error()
		}
		return len(resp.Shards) == 1 && resp.Shards[0].Index == lost, "not yet"
	})
	info, err := tc.client.CompleteUpload(ctx, "parts", "clip", up.UploadID, []client.CompletedPart{{Number: 1}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := mc.GetClip(ctx, &metapb.GetClipRequest{Bucket: "parts", Key: "clip"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rec.Clip.Parts[0].Shards {
		if s.State != metapb.ShardState_SHARD_STATE_OK || s.NodeId == victim {
			t.Errorf("shard %d of the completed clip: %v on %s", s.Index, s.State, s.NodeId)
		}
	}
	var got bytes.Buffer
	if _, err := tc.client.Get(ctx, "parts", "clip", &got, nil); err != nil || !bytes.Equal(got.Bytes(), data) || info.Size != int64(len(data)) {
		t.Fatalf("read back %d bytes (%v), want the %d written", got.Len(), err, len(data))
	}
}
