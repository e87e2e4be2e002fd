package server_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/clipstore/clipstore/erasure"
	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/meta"
	"github.com/clipstore/clipstore/meta/metatest"
	metapb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/clipstore/clipstore/server"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// gcMeta forwards a node's registration, heartbeats and CheckShards calls
// to a real meta member, remembering the shards the node asked about; it
// can add a shard to the answer that the node did not ask about.
type gcMeta struct {
	metapb.UnimplementedMetaServiceServer
	real metapb.MetaServiceClient

	mu          sync.Mutex
	checked     [][]byte
	extra       []byte
	dropDeletes bool // strip delete work from heartbeat responses
}

func (m *gcMeta) RegisterNode(ctx context.Context, req *metapb.RegisterNodeRequest) (*metapb.RegisterNodeResponse, error) {
	return m.real.RegisterNode(ctx, req)
}

func (m *gcMeta) Heartbeat(ctx context.Context, req *metapb.HeartbeatRequest) (*metapb.HeartbeatResponse, error) {
	resp, err := m.real.Heartbeat(ctx, req)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil && m.dropDeletes {
		resp.Deletes = nil
	}
	return resp, err
}

func (m *gcMeta) set(f func(m *gcMeta)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(m)
}

func (m *gcMeta) CheckShards(ctx context.Context, req *metapb.CheckShardsRequest) (*metapb.CheckShardsResponse, error) {
	m.mu.Lock()
	for _, s := range req.Shards {
		m.checked = append(m.checked, s.ShardId)
	}
	extra := m.extra
	m.mu.Unlock()
	resp, err := m.real.CheckShards(ctx, req)
	if err == nil && extra != nil {
		resp.Collectable = append(resp.Collectable, extra)
	}
	return resp, err
}

// asked reports whether the node sent id in a CheckShards call, and forgets
// the calls.
func (m *gcMeta) asked(id []byte) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	found := containsID(m.checked, id)
	m.checked = nil
	return found
}

// startGCMeta serves a gcMeta until the test ends or stop is called.
func startGCMeta(t *testing.T, real metapb.MetaServiceClient) (m *gcMeta, addr string, stop func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m = &gcMeta{real: real}
	srv := grpc.NewServer()
	metapb.RegisterMetaServiceServer(srv, m)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return m, lis.Addr().String(), srv.Stop
}

// gcShard writes a 1+0 shard whose header carries the given commit
// deadline; id and clip may be nil (random).
func gcShard(t *testing.T, n *testNode, r *rand.Rand, id, clip []byte, deadline time.Time) *testShard {
	t.Helper()
	s := makeShard(r, 1, 0, 0, 4096, 5000)
	if id != nil {
		s.header.ShardId, s.header.ClipId = id, clip
	}
	s.header.CommitDeadlineUnixNano = deadline.UnixNano()
	if _, err := writeShard(t.Context(), n.client, s); err != nil {
		t.Fatal(err)
	}
	return s
}

func stored(t *testing.T, n *testNode, s *testShard) bool {
	t.Helper()
	_, err := n.node.Store().Header(server.ShardID(s.id()))
	if err != nil && !errors.Is(err, server.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// TestCollectGarbage runs garbage collection against a real meta member
// with no GC grace: only unreferenced shards past their commit deadline go,
// and nothing goes when meta cannot be asked or answers about shards it
// was not asked about.
func TestCollectGarbage(t *testing.T) {
	mc := metatest.New(t, 1, metatest.Options{Configure: func(c *meta.Config) { c.GCGrace = 0 }})
	real := mc.Members[0].Client
	proxy, addr, stopProxy := startGCMeta(t, real)
	cfg := testConfig(t, 1)
	cfg.Meta = []string{addr}
	cfg.HeartbeatInterval = 50 * time.Millisecond
	cfg.ScrubInterval, cfg.GCInterval = 0, 0
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	n := startNodeAdvertised(t, cfg)
	ctx := t.Context()
	await.True(t, 10*time.Second, "the node to register", func() bool {
		resp, err := real.ListNodes(ctx, &metapb.ListNodesRequest{})
		return err == nil && len(resp.Nodes) == 1 && resp.Nodes[0].LastHeartbeatUnixNano > 0
	})
	r := rand.New(rand.NewPCG(61, 62))
	past := time.Now().Add(-time.Hour)

	// (b) A committed clip whose shard's header deadline is long past.
	profile := &metapb.ECProfile{DataShards: 1, ParityShards: 0, BlockSize: 4096}
	if _, err := real.CreateBucket(ctx, &metapb.CreateBucketRequest{Name: "bkt", DefaultProfile: profile}); err != nil {
		t.Fatal(err)
	}
	begin, err := real.BeginPut(ctx, &metapb.BeginPutRequest{Bucket: "bkt", Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	committed := gcShard(t, n, r, begin.Targets[0].ShardId, begin.ClipId, past)
	_, err = real.CommitPut(ctx, &metapb.CommitPutRequest{Bucket: "bkt", Key: "k", UploadId: begin.UploadId,
		ClipId: begin.ClipId, CommitDeadlineUnixNano: begin.CommitDeadlineUnixNano, Size: 5000, Profile: profile,
		Shards: []*metapb.Shard{{Index: 0, NodeId: cfg.NodeID, ShardId: committed.id(), Length: committed.length,
			Checksum: committed.checksum, State: metapb.ShardState_SHARD_STATE_OK}}})
	if err != nil {
		t.Fatal(err)
	}
	// (a) Orphans past their deadline: an upload that never committed.
	var orphans []*testShard
	for range 3 {
		orphans = append(orphans, gcShard(t, n, r, nil, nil, past))
	}
	// (c) An upload still within its deadline.
	future := gcShard(t, n, r, nil, nil, time.Now().Add(time.Hour))

	t.Run("ambiguous answer deletes nothing", func(t *testing.T) {
		proxy.set(func(m *gcMeta) { m.extra = newID(r) })
		defer proxy.set(func(m *gcMeta) { m.extra = nil })
		deleted, err := n.node.CollectGarbage(t.Context())
		if err == nil || deleted != 0 {
			t.Fatalf("got %d deleted, %v; want an error and nothing deleted", deleted, err)
		}
		for _, s := range append(orphans, committed, future) {
			if !stored(t, n, s) {
				t.Errorf("shard %x deleted", s.id())
			}
		}
	})

	t.Run("collects exactly the orphans", func(t *testing.T) {
		start := time.Now()
		deleted, err := n.node.CollectGarbage(t.Context())
		if err != nil || deleted != len(orphans) {
			t.Fatalf("got %d deleted, %v; want %d", deleted, err, len(orphans))
		}
		t.Logf("collected %d shards in %v", deleted, time.Since(start))
		for _, s := range orphans {
			if stored(t, n, s) {
				t.Errorf("orphan %x kept", s.id())
			}
		}
		if !stored(t, n, committed) {
			t.Error("the committed clip's shard was deleted")
		}
		if !stored(t, n, future) {
			t.Error("the shard within its commit deadline was deleted")
		}
		if proxy.asked(future.id()) {
			t.Error("the shard within its commit deadline was sent to meta")
		}
		if got := metricValue(t, reg, "clipstore_storage_gc_deleted_total"); got != float64(len(orphans)) {
			t.Errorf("gc_deleted_total = %v, want %d", got, len(orphans))
		}
		if got := metricValue(t, reg, "clipstore_storage_gc_runs_total"); got != 2 {
			t.Errorf("gc_runs_total = %v, want 2", got)
		}
		// Nothing left to collect.
		if deleted, err := n.node.CollectGarbage(t.Context()); err != nil || deleted != 0 {
			t.Errorf("second run: %d deleted, %v", deleted, err)
		}
	})

	t.Run("a deleted clip's shard whose delete never arrived", func(t *testing.T) {
		// The delete work meta queues does not reach the node; GC is the
		// backstop: no record names the shard any more.
		proxy.set(func(m *gcMeta) { m.dropDeletes = true })
		defer proxy.set(func(m *gcMeta) { m.dropDeletes = false })
		if _, err := real.DeleteClip(ctx, &metapb.DeleteClipRequest{Bucket: "bkt", Key: "k"}); err != nil {
			t.Fatal(err)
		}
		deleted, err := n.node.CollectGarbage(t.Context())
		if err != nil || deleted != 1 || stored(t, n, committed) {
			t.Fatalf("got %d deleted, %v (shard stored: %v); want the deleted clip's shard collected",
				deleted, err, stored(t, n, committed))
		}
	})

	t.Run("meta unreachable deletes nothing", func(t *testing.T) {
		orphan := gcShard(t, n, r, nil, nil, past)
		mc.Members[0].Stop()
		stopProxy()
		deleted, err := n.node.CollectGarbage(t.Context())
		if err == nil || deleted != 0 {
			t.Fatalf("got %d deleted, %v; want an error and nothing deleted", deleted, err)
		}
		t.Logf("with meta down: %v", err)
		if !stored(t, n, orphan) || !stored(t, n, future) {
			t.Error("a shard was deleted while meta was unreachable")
		}
	})
}

// TestCollectGarbagePages collects more shards than one CheckShards call
// may carry, in the background, past a meta member that is down.
func TestCollectGarbagePages(t *testing.T) {
	mc := metatest.New(t, 1, metatest.Options{Configure: func(c *meta.Config) { c.GCGrace = 0 }})
	cfg := testConfig(t, 1)
	cfg.Meta = []string{deadAddr(t), mc.Members[0].GRPCAddr}
	cfg.HeartbeatInterval = 50 * time.Millisecond
	cfg.ScrubInterval, cfg.GCInterval = 0, 50*time.Millisecond
	n := startNodeAdvertised(t, cfg)
	store := n.node.Store()
	const count = 1005
	r := rand.New(rand.NewPCG(71, 72))
	past := time.Now().Add(-time.Hour).UnixNano()
	for range count {
		h := server.ShardHeader{DataShards: 1, BlockSize: 64, CommitDeadline: past}
		copy(h.ShardID[:], newID(r))
		copy(h.ClipID[:], newID(r))
		w, err := store.Create(h)
		if err != nil {
			t.Fatal(err)
		}
		data := []byte("orphan")
		crcs := []uint32{erasure.PieceCRC(0, 0, data)}
		if err := w.WritePiece(0, data, erasure.AppendTrailer(nil, 0, 0, crcs)); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Commit(1, nil); err != nil {
			t.Fatal(err)
		}
	}
	await.True(t, 15*time.Second, "the background collector to take every orphan", func() bool {
		entries, _, err := store.List(nil, 10)
		return err == nil && len(entries) == 0
	})
}
