package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clipstore/clipstore/erasure"
	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/internal/metrictest"
	"github.com/clipstore/clipstore/meta"
	"github.com/clipstore/clipstore/meta/metatest"
	metapb "github.com/clipstore/clipstore/proto/metapb"
	pb "github.com/clipstore/clipstore/proto/storagepb"
	"github.com/clipstore/clipstore/server"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

const (
	repairK, repairM = 4, 2
	repairBlock      = 16 << 10
)

// repairCluster is a real meta member and storage nodes heartbeating to it,
// with one bucket coded 4+2 in 16 KiB blocks.
type repairCluster struct {
	meta  metapb.MetaServiceClient
	nodes map[string]*testNode // by node id
	ids   []string
	code  *erasure.Code
	rng   *rand.Rand
}

func newRepairCluster(t *testing.T, n int) *repairCluster {
	t.Helper()
	// Meta's own repair planning is paused: these tests hand out the
	// repair work themselves, and a planned repair of the same shard would
	// race them.
	rc, _ := startRepairCluster(t, n, metatest.Options{Configure: func(cfg *meta.Config) { cfg.RepairConcurrency = 0 }}, 7, nil)
	return rc
}

// startRepairCluster starts one meta member with opts and n storage nodes
// (one zone each, tweak applied to their configs), waits until every node
// heartbeats and creates bucket "clips" with the repair tests' profile.
func startRepairCluster(t *testing.T, n int, opts metatest.Options, seed uint64, tweak func(*server.Config)) (*repairCluster, *metatest.Cluster) {
	t.Helper()
	mc := metatest.New(t, 1, opts)
	rc := &repairCluster{meta: mc.Members[0].Client, nodes: map[string]*testNode{}, rng: rand.New(rand.NewPCG(seed, seed+1))}
	for i := range n {
		cfg := testConfig(t, 1)
		cfg.NodeID = fmt.Sprintf("node-%d", i)
		cfg.Zone = fmt.Sprintf("zone-%d", i)
		cfg.Meta = []string{mc.Members[0].GRPCAddr}
		cfg.HeartbeatInterval = 50 * time.Millisecond
		if tweak != nil {
			tweak(&cfg)
		}
		rc.nodes[cfg.NodeID] = startNodeAdvertised(t, cfg)
		rc.ids = append(rc.ids, cfg.NodeID)
	}
	ctx := t.Context()
	await.True(t, 10*time.Second, "every node to register and heartbeat", func() bool {
		resp, err := rc.meta.ListNodes(ctx, &metapb.ListNodesRequest{})
		if err != nil || len(resp.Nodes) != n {
			return false
		}
		for _, nd := range resp.Nodes {
			if nd.LastHeartbeatUnixNano == 0 {
				return false
			}
		}
		return true
	})
	profile := &metapb.ECProfile{DataShards: repairK, ParityShards: repairM, BlockSize: repairBlock}
	if _, err := rc.meta.CreateBucket(ctx, &metapb.CreateBucketRequest{Name: "clips", DefaultProfile: profile}); err != nil {
		t.Fatal(err)
	}
	var err error
	if rc.code, err = erasure.New(repairK, repairM, erasure.WithBlockSize(repairBlock)); err != nil {
		t.Fatal(err)
	}
	return rc, mc
}

// storedClip is a committed clip and the shard streams its writer sent.
type storedClip struct {
	data    []byte
	streams [][]byte // by index
	rec     *metapb.ClipRecord
}

// put stores a clip as the client does: BeginPut, encode, WriteShard to
// every target, CommitPut.
func (rc *repairCluster) put(t *testing.T, key string, size int) *storedClip {
	t.Helper()
	ctx := t.Context()
	c := &storedClip{data: make([]byte, size)}
	for i := range c.data {
		c.data[i] = byte(rc.rng.Uint32())
	}
	begin, err := rc.meta.BeginPut(ctx, &metapb.BeginPutRequest{Bucket: "clips", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	bufs := make([]bytes.Buffer, rc.code.Shards())
	writers := make([]io.Writer, len(bufs))
	for i := range bufs {
		writers[i] = &bufs[i]
	}
	res, err := rc.code.Encode(bytes.NewReader(c.data), writers)
	if err != nil {
		t.Fatal(err)
	}
	layout, err := rc.code.Layout(int64(size))
	if err != nil {
		t.Fatal(err)
	}
	var shards []*metapb.Shard
	for _, tg := range begin.Targets {
		stream := bufs[tg.Index].Bytes()
		c.streams = append(c.streams, stream)
		reqs := []*pb.WriteShardRequest{{Msg: &pb.WriteShardRequest_Header{Header: &pb.ShardHeader{
			ShardId: tg.ShardId, ClipId: begin.ClipId, Index: tg.Index, DataShards: repairK, ParityShards: repairM,
			BlockSize: repairBlock, CommitDeadlineUnixNano: begin.CommitDeadlineUnixNano}}}}
		for b := range layout.Blocks() {
			unit := stream[layout.UnitOffset(b) : layout.UnitOffset(b)+int64(layout.UnitLen(b))]
			p := layout.PieceLen(b)
			reqs = append(reqs, &pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Piece{Piece: &pb.Piece{
				Block: uint64(b), Data: unit[:p], Trailer: unit[p:]}}})
		}
		sum := res.ShardSums[tg.Index]
		reqs = append(reqs, &pb.WriteShardRequest{Msg: &pb.WriteShardRequest_Finish{Finish: &pb.WriteFinish{
			Blocks: uint64(layout.Blocks()), Checksum: &sum}}})
		w, err := sendWrite(ctx, rc.nodes[tg.NodeId].client, reqs)
		if err != nil {
			t.Fatalf("write shard %d to %s: %v", tg.Index, tg.NodeId, err)
		}
		shards = append(shards, &metapb.Shard{Index: tg.Index, NodeId: tg.NodeId, ShardId: tg.ShardId,
			Length: w.Length, Checksum: w.Checksum, State: metapb.ShardState_SHARD_STATE_OK})
	}
	commit, err := rc.meta.CommitPut(ctx, &metapb.CommitPutRequest{Bucket: "clips", Key: key, UploadId: begin.UploadId,
		ClipId: begin.ClipId, CommitDeadlineUnixNano: begin.CommitDeadlineUnixNano, Size: uint64(size),
		ContentCrc32C: res.Checksum, Profile: begin.Profile, Shards: shards})
	if err != nil {
		t.Fatal(err)
	}
	c.rec = commit.Clip
	return c
}

func (rc *repairCluster) record(t *testing.T, key string) *metapb.ClipRecord {
	t.Helper()
	resp, err := rc.meta.GetClip(t.Context(), &metapb.GetClipRequest{Bucket: "clips", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Clip
}

// shardOf returns the node holding shard index of the clip.
func (rc *repairCluster) shardOf(c *storedClip, index int) (*metapb.Shard, *testNode) {
	s := c.rec.Parts[0].Shards[index]
	return s, rc.nodes[s.NodeId]
}

// spare returns a node holding no shard of the clip.
func (rc *repairCluster) spare(t *testing.T, c *storedClip) *testNode {
	t.Helper()
	for _, id := range rc.ids {
		if !slices.ContainsFunc(c.rec.Parts[0].Shards, func(s *metapb.Shard) bool { return s.NodeId == id }) {
			return rc.nodes[id]
		}
	}
	t.Fatal("no spare node")
	return nil
}

// work builds the repair of index from the given source indices.
func (rc *repairCluster) work(c *storedClip, index int, sources ...int) *metapb.RepairWork {
	part := c.rec.Parts[0]
	w := &metapb.RepairWork{TaskId: newID(rc.rng), ClipId: c.rec.ClipId, Generation: c.rec.Generation,
		Index: uint32(index), OldShardId: part.Shards[index].ShardId, NewShardId: newID(rc.rng),
		Profile: part.Profile, PartLength: part.Length, CommitDeadlineUnixNano: time.Now().Add(time.Hour).UnixNano()}
	for _, i := range sources {
		s := part.Shards[i]
		w.Sources = append(w.Sources, &metapb.ShardSource{Index: s.Index, NodeId: s.NodeId,
			Address: rc.nodes[s.NodeId].addr, ShardId: s.ShardId})
	}
	return w
}

// readStream reads a whole shard back as its stream of units.
func readStream(t *testing.T, n *testNode, id []byte) []byte {
	t.Helper()
	_, pieces, err := readShard(t.Context(), n.client, &pb.ReadShardRequest{ShardId: id})
	if err != nil {
		t.Fatalf("read shard %x: %v", id, err)
	}
	var out []byte
	for _, p := range pieces {
		out = append(append(out, p.Data...), p.Trailer...)
	}
	return out
}

// flipPieceByte damages one byte of block b's piece in a stored shard.
func flipPieceByte(t *testing.T, n *testNode, id []byte, b int) {
	t.Helper()
	unit := erasure.PieceSize(repairBlock, repairK) + erasure.TrailerSize(repairK+repairM)
	flipByte(t, shardPath(n.dirs[0], id), int64(128+b*unit+5))
}

func deleteShard(t *testing.T, n *testNode, id []byte) {
	t.Helper()
	if _, err := n.client.DeleteShard(t.Context(), &pb.DeleteShardRequest{ShardId: id}); err != nil {
		t.Fatal(err)
	}
}

// deadAddr is an address nothing listens on.
func deadAddr(t *testing.T) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

func nodeShards(t *testing.T, rc *repairCluster, node string) [][]byte {
	t.Helper()
	resp, err := rc.meta.ListNodeShards(t.Context(), &metapb.ListNodeShardsRequest{NodeId: node, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, s := range resp.Shards {
		out = append(out, s.ShardId)
	}
	return out
}

func containsID(ids [][]byte, id []byte) bool {
	return slices.ContainsFunc(ids, func(x []byte) bool { return bytes.Equal(x, id) })
}

// checkRepaired asserts that index of the clip now lives on node under the
// work's new shard id, byte-identical to what the writer sent, that meta
// moved the entry and queued the old shard for deletion, and that the clip
// decodes from the new shard and k-1 others.
func checkRepaired(t *testing.T, rc *repairCluster, c *storedClip, key string, w *metapb.RepairWork, node *testNode) {
	t.Helper()
	ctx := t.Context()
	index := int(w.Index)
	old, oldNode := rc.shardOf(c, index)
	st, err := node.client.StatShard(ctx, &pb.StatShardRequest{ShardId: w.NewShardId})
	if err != nil {
		t.Fatalf("new shard on target: %v", err)
	}
	if st.Shard.Checksum != old.Checksum || st.Shard.Length != old.Length {
		t.Errorf("new shard checksum %08x length %d, record had %08x %d", st.Shard.Checksum, st.Shard.Length,
			old.Checksum, old.Length)
	}
	stream := readStream(t, node, w.NewShardId)
	if !bytes.Equal(stream, c.streams[index]) {
		t.Errorf("rebuilt shard stream differs from the one the writer sent (%d vs %d bytes)", len(stream), len(c.streams[index]))
	}
	rec := rc.record(t, key)
	got := rec.Parts[0].Shards[index]
	nodeID, _ := nodeIDOf(rc, node)
	if got.NodeId != nodeID || !bytes.Equal(got.ShardId, w.NewShardId) || got.State != metapb.ShardState_SHARD_STATE_OK ||
		got.Checksum != old.Checksum {
		t.Errorf("record's shard %d is %v, want node %s shard %x OK", index, got, nodeID, w.NewShardId)
	}
	if containsID(nodeShards(t, rc, old.NodeId), old.ShardId) {
		t.Errorf("meta still lists old shard %x on %s", old.ShardId, old.NodeId)
	}
	if !containsID(nodeShards(t, rc, nodeID), w.NewShardId) {
		t.Errorf("meta does not list new shard %x on %s", w.NewShardId, nodeID)
	}
	// Meta queued the old shard's delete; its node carries it out.
	await.True(t, 10*time.Second, "the old shard's delete to reach its node", func() bool {
		_, err := oldNode.client.StatShard(ctx, &pb.StatShardRequest{ShardId: old.ShardId})
		cs, serr := rc.meta.ClusterStatus(ctx, &metapb.ClusterStatusRequest{})
		return statusCode(err) == codes.NotFound && serr == nil && cs.PendingDeletes == 0
	})
	readers := make([]io.Reader, rc.code.Shards())
	readers[index] = bytes.NewReader(stream)
	// The other shards from the highest index down, past any corrupted
	// source of a low index.
	for i, used := rc.code.Shards()-1, 1; used < repairK; i-- {
		if s := rec.Parts[0].Shards[i]; i != index {
			readers[i] = bytes.NewReader(readStream(t, rc.nodes[s.NodeId], s.ShardId))
			used++
		}
	}
	var out bytes.Buffer
	if _, err := rc.code.Decode(&out, readers, int64(rec.Size)); err != nil {
		t.Fatalf("decode with the repaired shard: %v", err)
	}
	if !bytes.Equal(out.Bytes(), c.data) {
		t.Fatal("decoded clip differs from the original")
	}
}

func nodeIDOf(rc *repairCluster, n *testNode) (string, bool) {
	for id, x := range rc.nodes {
		if x == n {
			return id, true
		}
	}
	return "", false
}

// checkNothingLeft asserts that the target kept nothing of a failed repair
// and that the clip's record did not change.
func checkNothingLeft(t *testing.T, rc *repairCluster, c *storedClip, key string, w *metapb.RepairWork, node *testNode) {
	t.Helper()
	_, err := node.client.StatShard(t.Context(), &pb.StatShardRequest{ShardId: w.NewShardId})
	wantCode(t, err, codes.NotFound)
	if left := tmpFiles(t, node.dirs); len(left) > 0 {
		t.Errorf("temp files left behind: %v", left)
	}
	// The record is unchanged, except that a source a read found corrupt
	// may have been reported as such.
	rec := rc.record(t, key)
	for i, s := range rec.Parts[0].Shards {
		if s.State == metapb.ShardState_SHARD_STATE_CORRUPT {
			s.State = c.rec.Parts[0].Shards[i].State
		}
	}
	if !proto.Equal(rec, c.rec) {
		t.Errorf("record changed:\n got %v\nwant %v", rec, c.rec)
	}
}

// TestRepair rebuilds lost shards with real nodes and a real meta: the
// repair reads k sources (falling back past dead and corrupt ones), writes
// the shard, and meta commits the new placement conditionally.
//
// Half the nodes serve and read over gRPC only, the others raw as well, so
// that repairs read their sources both ways; the nodes' metrics must show
// both.
func TestRepair(t *testing.T) {
	regs := map[string]*prometheus.Registry{}
	rc, _ := startRepairCluster(t, 7, metatest.Options{Configure: func(cfg *meta.Config) { cfg.RepairConcurrency = 0 }}, 7,
		func(c *server.Config) {
			c.NoRawReads = len(regs)%2 == 0
			regs[c.NodeID] = prometheus.NewRegistry()
			c.Registerer = regs[c.NodeID]
		})
	const size = 100_003 // 7 blocks, the last one short
	defer func() {
		var raw, grpc float64
		for i, id := range rc.ids {
			r, g := shardReads(t, regs[id], "raw"), shardReads(t, regs[id], "grpc")
			if i%2 == 0 && r != 0 {
				t.Errorf("%s serves reads over gRPC only, yet served %v raw", id, r)
			}
			raw, grpc = raw+r, grpc+g
		}
		if raw == 0 || grpc == 0 {
			t.Errorf("repairs read %v sources raw and %v over gRPC; want both", raw, grpc)
		}
	}()

	t.Run("rebuilds onto a spare node", func(t *testing.T) {
		c := rc.put(t, "spare", size)
		old, oldNode := rc.shardOf(c, 1)
		deleteShard(t, oldNode, old.ShardId)
		w := rc.work(c, 1, 0, 2, 3, 4, 5)
		target := rc.spare(t, c)
		start := time.Now()
		if err := target.node.Repair(t.Context(), w); err != nil {
			t.Fatal(err)
		}
		t.Logf("repaired %d bytes in %v", old.Length, time.Since(start))
		checkRepaired(t, rc, c, "spare", w, target)
	})

	t.Run("onto the node that lost it, past a corrupt source piece", func(t *testing.T) {
		c := rc.put(t, "corrupt", size)
		old, oldNode := rc.shardOf(c, 5)
		deleteShard(t, oldNode, old.ShardId)
		src, srcNode := rc.shardOf(c, 0)
		flipPieceByte(t, srcNode, src.ShardId, 2)
		w := rc.work(c, 5, 0, 1, 2, 3, 4)
		if err := oldNode.node.Repair(t.Context(), w); err != nil {
			t.Fatal(err)
		}
		checkRepaired(t, rc, c, "corrupt", w, oldNode)
	})

	for name, breakSource := range map[string]func(*metapb.ShardSource){
		"past a dead source node":     func(s *metapb.ShardSource) { s.Address = deadAddr(t) },
		"past a missing source shard": func(s *metapb.ShardSource) { s.ShardId = newID(rc.rng) },
	} {
		t.Run(name, func(t *testing.T) {
			key := strings.ReplaceAll(name, " ", "-")
			c := rc.put(t, key, size)
			w := rc.work(c, 2, 0, 1, 3, 4, 5)
			breakSource(w.Sources[0])
			target := rc.spare(t, c)
			if err := target.node.Repair(t.Context(), w); err != nil {
				t.Fatal(err)
			}
			checkRepaired(t, rc, c, key, w, target)
		})
	}

	// A move: the work names the shard itself to copy.
	for _, tc := range []struct {
		name, key string
		sources   []int // to rebuild from if the copy fails
		corrupt   bool  // the copy meets a corrupt piece
		rate      uint64
	}{
		{"a move copies the shard itself", "copy", nil, false, 0}, // no source: only the copy can work
		{"a move whose copy fails rebuilds", "copy-fails", []int{0, 2, 3, 4, 5}, true, 0},
		{"a paced move copies at its rate", "paced", nil, false, 8000},
		{"a paced rebuild rebuilds at its rate", "paced-rebuild", []int{0, 2, 3, 4, 5}, true, 8000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := rc.put(t, tc.key, size)
			w := rc.work(c, 1, tc.sources...)
			old, from := rc.shardOf(c, 1)
			if tc.corrupt {
				flipPieceByte(t, from, old.ShardId, 3)
			}
			w.CopyFrom = &metapb.ShardSource{Index: 1, NodeId: old.NodeId, Address: from.addr, ShardId: old.ShardId}
			sum := old.Checksum
			w.ExpectedChecksum = &sum
			w.BytesPerSec = tc.rate
			target := rc.spare(t, c)
			start := time.Now()
			if err := target.node.Repair(t.Context(), w); err != nil {
				t.Fatal(err)
			}
			checkRepaired(t, rc, c, tc.key, w, target)
			if tc.rate > 0 {
				// The first block size's worth goes at once (the pacer's
				// burst); the rest takes at least its bytes over the rate.
				burst := uint64(w.Profile.BlockSize)
				least := time.Duration(float64(old.Length-burst) / float64(tc.rate) * float64(time.Second))
				if took := time.Since(start); took < least {
					t.Fatalf("a %d-byte shard at %d B/s took %v; at least %v expected", old.Length, tc.rate, took, least)
				}
			}
		})
	}

	t.Run("refused update drops the new shard", func(t *testing.T) {
		c := rc.put(t, "refused", size)
		w := rc.work(c, 3, 0, 1, 2, 4, 5)
		w.Generation++
		target := rc.spare(t, c)
		err := target.node.Repair(t.Context(), w)
		if !errors.Is(err, server.ErrRepairRefused) {
			t.Fatalf("got %v, want ErrRepairRefused", err)
		}
		checkNothingLeft(t, rc, c, "refused", w, target)
	})

	t.Run("fewer than k healthy sources", func(t *testing.T) {
		c := rc.put(t, "lost", size)
		src, srcNode := rc.shardOf(c, 1)
		flipPieceByte(t, srcNode, src.ShardId, 4)
		w := rc.work(c, 0, 1, 2, 3, 4) // k sources, one with a corrupt piece
		w.Sources = append(w.Sources, &metapb.ShardSource{Index: 5, NodeId: "gone", Address: deadAddr(t),
			ShardId: c.rec.Parts[0].Shards[5].ShardId})
		target := rc.spare(t, c)
		err := target.node.Repair(t.Context(), w)
		if !errors.Is(err, erasure.ErrUnrecoverable) {
			t.Fatalf("got %v, want ErrUnrecoverable", err)
		}
		checkNothingLeft(t, rc, c, "lost", w, target)
		await.True(t, 10*time.Second, "the source node to report the corrupt piece it served", func() bool {
			return rc.record(t, "lost").Parts[0].Shards[1].State == metapb.ShardState_SHARD_STATE_CORRUPT
		})
	})
}

// repairMeta stands in for meta's repair scheduler: it forwards a node's
// registration, heartbeats and shard updates to a real meta member and adds
// the same repair work to every heartbeat response, as meta re-sends work
// that is not done yet.
type repairMeta struct {
	metapb.UnimplementedMetaServiceServer
	real    metapb.MetaServiceClient
	updates atomic.Int32

	mu      sync.Mutex
	repairs []*metapb.RepairWork
}

func (m *repairMeta) RegisterNode(ctx context.Context, req *metapb.RegisterNodeRequest) (*metapb.RegisterNodeResponse, error) {
	return m.real.RegisterNode(ctx, req)
}

func (m *repairMeta) Heartbeat(ctx context.Context, req *metapb.HeartbeatRequest) (*metapb.HeartbeatResponse, error) {
	resp, err := m.real.Heartbeat(ctx, req)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	resp.Repairs = append(resp.Repairs, m.repairs...)
	m.mu.Unlock()
	return resp, nil
}

func (m *repairMeta) UpdateShard(ctx context.Context, req *metapb.UpdateShardRequest) (*metapb.UpdateShardResponse, error) {
	m.updates.Add(1)
	return m.real.UpdateShard(ctx, req)
}

func (m *repairMeta) send(w ...*metapb.RepairWork) {
	m.mu.Lock()
	m.repairs = w
	m.mu.Unlock()
}

func startRepairMeta(t *testing.T, real metapb.MetaServiceClient) (*repairMeta, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &repairMeta{real: real}
	srv := grpc.NewServer()
	metapb.RegisterMetaServiceServer(srv, m)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return m, lis.Addr().String()
}

// TestRepairFromHeartbeats hands repair work to a node in its heartbeat
// responses, again and again: the node's workers run it once and meta
// commits it.
func TestRepairFromHeartbeats(t *testing.T) {
	rc := newRepairCluster(t, 6)
	// The clip goes on the six nodes first, so that node-hb, the repair
	// target, holds none of its shards (meta refuses a second one).
	c := rc.put(t, "hb", 50_000)
	fake, addr := startRepairMeta(t, rc.meta)
	cfg := testConfig(t, 1)
	cfg.NodeID, cfg.Zone = "node-hb", "zone-hb"
	cfg.Meta = []string{addr}
	cfg.HeartbeatInterval = 20 * time.Millisecond
	n := startNodeAdvertised(t, cfg)
	rc.nodes[cfg.NodeID] = n

	old, oldNode := rc.shardOf(c, 4)
	deleteShard(t, oldNode, old.ShardId)
	w := rc.work(c, 4, 0, 1, 2, 3, 5)
	fake.send(w)
	await.True(t, 10*time.Second, "meta to name the repaired shard", func() bool {
		s := rc.record(t, "hb").Parts[0].Shards[4]
		return s.NodeId == cfg.NodeID && bytes.Equal(s.ShardId, w.NewShardId)
	})
	time.Sleep(10 * cfg.HeartbeatInterval) // more re-sends of the same task
	if got := fake.updates.Load(); got != 1 {
		t.Errorf("the task ran %d times, want once", got)
	}
	checkRepaired(t, rc, c, "hb", w, n)
}

func TestRepairNeedsMeta(t *testing.T) {
	cfg := testConfig(t, 1)
	cfg.Meta, cfg.Advertise, cfg.RepairConcurrency = []string{"127.0.0.1:1"}, "127.0.0.1:2", 0
	var ce *server.ConfigError
	if _, err := server.New(cfg); !errors.As(err, &ce) || ce.Field != "RepairConcurrency" {
		t.Errorf("RepairConcurrency 0: got %v, want a config error naming it", err)
	}
	n := startNode(t, testConfig(t, 1)) // stand-alone: no meta to commit to
	err := n.node.Repair(t.Context(), &metapb.RepairWork{})
	if !errors.Is(err, server.ErrInvalidArgument) {
		t.Errorf("stand-alone Repair: got %v, want ErrInvalidArgument", err)
	}
}

// shardReads is a node's clipstore_storage_shard_reads_total{transport}.
func shardReads(t *testing.T, reg *prometheus.Registry, transport string) float64 {
	return metrictest.Value(t, reg, "clipstore_storage_shard_reads_total", "transport", transport)
}
