package server_test

import (
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/meta/metatest"
	metapb "github.com/clipstore/clipstore/proto/metapb"
	pb "github.com/clipstore/clipstore/proto/storagepb"
	"google.golang.org/grpc/codes"
)

// TestHeartbeatsCarryDeletes runs a storage node against a real meta
// member: the node registers and heartbeats; once a clip whose shard it
// holds is deleted, the delete arrives in a heartbeat response, the node
// removes the shard and acknowledges it, and meta's queue drains.
func TestHeartbeatsCarryDeletes(t *testing.T) {
	mc := metatest.New(t, 1, metatest.Options{})
	meta := mc.Members[0].Client
	cfg := testConfig(t, 1)
	cfg.Meta = []string{mc.Members[0].GRPCAddr}
	cfg.HeartbeatInterval = 50 * time.Millisecond
	cfg.Zone = "rack-1"
	n := startNodeAdvertised(t, cfg)
	ctx := t.Context()
	await.True(t, 10*time.Second, "the node to register and heartbeat", func() bool {
		resp, err := meta.ListNodes(ctx, &metapb.ListNodesRequest{})
		return err == nil && len(resp.Nodes) == 1 && resp.Nodes[0].LastHeartbeatUnixNano > 0 &&
			resp.Nodes[0].Zone == "rack-1" && len(resp.Nodes[0].Disks) == 1
	})
	s := commitOneShardClip(t, meta, n, cfg.NodeID, 41)
	if _, err := meta.DeleteClip(ctx, &metapb.DeleteClipRequest{Bucket: "bkt", Key: "k"}); err != nil {
		t.Fatal(err)
	}
	await.True(t, 10*time.Second, "the node to delete the shard and meta's queue to drain", func() bool {
		_, err := n.client.StatShard(ctx, &pb.StatShardRequest{ShardId: s.id()})
		st, serr := meta.ClusterStatus(ctx, &metapb.ClusterStatusRequest{})
		return statusCode(err) == codes.NotFound && serr == nil && st.PendingDeletes == 0
	})
}

// TestCorruptReadIsReported: a read that meets a corrupt piece reports the
// shard to meta, which marks it CORRUPT.
func TestCorruptReadIsReported(t *testing.T) {
	mc := metatest.New(t, 1, metatest.Options{})
	meta := mc.Members[0].Client
	cfg := testConfig(t, 1)
	cfg.Meta = []string{mc.Members[0].GRPCAddr}
	cfg.HeartbeatInterval = 50 * time.Millisecond
	n := startNodeAdvertised(t, cfg)
	ctx := t.Context()
	await.True(t, 10*time.Second, "the node to heartbeat", func() bool {
		resp, err := meta.ListNodes(ctx, &metapb.ListNodesRequest{})
		return err == nil && len(resp.Nodes) == 1 && resp.Nodes[0].LastHeartbeatUnixNano > 0
	})
	s := commitOneShardClip(t, meta, n, cfg.NodeID, 43)
	flipFileByte(t, shardPath(n.dirs[0], s.id()), 128+100)
	_, _, err := readShard(ctx, n.client, &pb.ReadShardRequest{ShardId: s.id()})
	wantCode(t, err, codes.DataLoss)
	await.True(t, 10*time.Second, "meta to mark the shard corrupt", func() bool {
		got, err := meta.GetClip(ctx, &metapb.GetClipRequest{Bucket: "bkt", Key: "k"})
		return err == nil && got.Clip.Parts[0].Shards[0].State == metapb.ShardState_SHARD_STATE_CORRUPT
	})

	// A restarted node numbers its reports on from meta's last, from its
	// very first heartbeat: the shard it finds missing at start (its file
	// was removed while it was down) is reported and applied, not taken
	// for a report applied already.
	s2 := commitOneShardClipAs(t, meta, n, cfg.NodeID, 44, "k2")
	n.stop()
	if err := os.Remove(shardPath(n.dirs[0], s2.id())); err != nil {
		t.Fatal(err)
	}
	cfg.Advertise = ""
	startNodeAdvertised(t, cfg)
	await.True(t, 10*time.Second, "meta to mark the restarted node's lost shard missing", func() bool {
		got, err := meta.GetClip(ctx, &metapb.GetClipRequest{Bucket: "bkt", Key: "k2"})
		return err == nil && got.Clip.Parts[0].Shards[0].State == metapb.ShardState_SHARD_STATE_MISSING
	})
}

// flipFileByte flips a bit of the byte at off of a file.
func flipFileByte(t *testing.T, path string, off int) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[off] ^= 1
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// commitOneShardClip stores a 1+0 clip of 10,000 bytes whose one shard is
// on node n, through meta as a client would (bucket "bkt", key "k"), and
// returns the shard.
func commitOneShardClip(t *testing.T, meta metapb.MetaServiceClient, n *testNode, nodeID string, seed uint64) *testShard {
	t.Helper()
	return commitOneShardClipAs(t, meta, n, nodeID, seed, "k")
}

// commitOneShardClipAs is commitOneShardClip under another key.
func commitOneShardClipAs(t *testing.T, meta metapb.MetaServiceClient, n *testNode, nodeID string, seed uint64, key string) *testShard {
	t.Helper()
	ctx := t.Context()
	profile := &metapb.ECProfile{DataShards: 1, ParityShards: 0, BlockSize: 4096}
	_, err := meta.CreateBucket(ctx, &metapb.CreateBucketRequest{Name: "bkt", DefaultProfile: profile})
	if err != nil && statusCode(err) != codes.AlreadyExists {
		t.Fatal(err)
	}
	begin, err := meta.BeginPut(ctx, &metapb.BeginPutRequest{Bucket: "bkt", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	s := makeShard(rand.New(rand.NewPCG(seed, seed+1)), 1, 0, 0, 4096, 10000)
	s.header.ShardId, s.header.ClipId = begin.Targets[0].ShardId, begin.ClipId
	s.header.CommitDeadlineUnixNano = begin.CommitDeadlineUnixNano
	w, err := writeShard(ctx, n.client, s)
	if err != nil {
		t.Fatal(err)
	}
	_, err = meta.CommitPut(ctx, &metapb.CommitPutRequest{Bucket: "bkt", Key: key, UploadId: begin.UploadId, ClipId: begin.ClipId,
		CommitDeadlineUnixNano: begin.CommitDeadlineUnixNano, Size: 10000, Profile: profile,
		Shards: []*metapb.Shard{{Index: 0, NodeId: nodeID, ShardId: s.id(), Length: w.Length, Checksum: w.Checksum,
			State: metapb.ShardState_SHARD_STATE_OK}}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCapacityOverride: a node configured with a capacity reports it to
// meta instead of its filesystem's size, and its free space as that
// capacity less the shard bytes it holds.
func TestCapacityOverride(t *testing.T) {
	mc := metatest.New(t, 1, metatest.Options{})
	meta := mc.Members[0].Client
	cfg := testConfig(t, 1)
	cfg.Meta = []string{mc.Members[0].GRPCAddr}
	cfg.HeartbeatInterval = 50 * time.Millisecond
	const capacity = 2 << 30 // above placement's 1 GiB free minimum
	cfg.Capacity = capacity
	n := startNodeAdvertised(t, cfg)
	ctx := t.Context()
	node := func() *metapb.StorageNode {
		resp, err := meta.ListNodes(ctx, &metapb.ListNodesRequest{})
		if err != nil || len(resp.Nodes) != 1 {
			return nil
		}
		return resp.Nodes[0]
	}
	await.True(t, 10*time.Second, "the node to report its set capacity, all of it free", func() bool {
		nd := node()
		return nd != nil && nd.Capacity == capacity && nd.Free == capacity
	})
	commitOneShardClip(t, meta, n, cfg.NodeID, 44)
	await.True(t, 10*time.Second, "the free space to drop by the shard's bytes", func() bool {
		nd := node()
		return nd != nil && nd.Capacity == capacity && nd.Free < capacity && nd.Free > capacity-(1<<20)
	})
}
