package client_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/metrictest"
	"github.com/clipstore/clipstore/server"
	"github.com/prometheus/client_golang/prometheus"
)

// readsBy is node metric clipstore_storage_shard_reads_total{transport}.
func readsBy(t *testing.T, reg *prometheus.Registry, transport string) float64 {
	return metrictest.Value(t, reg, "clipstore_storage_shard_reads_total", "transport", transport)
}

// writesBy is node metric clipstore_storage_shard_write_requests_total{transport}.
func writesBy(t *testing.T, reg *prometheus.Registry, transport string) float64 {
	return metrictest.Value(t, reg, "clipstore_storage_shard_write_requests_total", "transport", transport)
}

// halfRaw starts six nodes, each with a registry of its own, the even ones
// configured by off (a kind of raw transfer turned off), and makes bucket
// "raw" coded 4+2 in 64 KiB blocks.
func halfRaw(t *testing.T, off func(*server.Config)) (*testCluster, []*prometheus.Registry) {
	t.Helper()
	regs := make([]*prometheus.Registry, 6)
	tc := newClusterNodes(t, 6, client.Config{}, nil, func(i int, c *server.Config) {
		if i%2 == 0 {
			off(c)
		}
		regs[i] = prometheus.NewRegistry()
		c.Registerer = regs[i]
	})
	tc.mkBucket("raw", &client.Profile{DataShards: 4, ParityShards: 2, BlockSize: 64 << 10})
	return tc, regs
}

// TestRawReadsBesideGRPC: in a cluster where half the nodes serve raw
// reads and half do not, a client reads every clip whole and in ranges
// (the others over gRPC after a refused handshake), also with a node
// stopped (its shards rebuilt from parity), and so does a client with raw
// reads off.
func TestRawReadsBesideGRPC(t *testing.T) {
	tc, regs := halfRaw(t, func(c *server.Config) { c.NoRawReads = true })
	ctx := t.Context()
	data := randBytes(77, 1<<20+12345)
	if _, err := tc.client.Put(ctx, "raw", "clip", bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	grpcOnly, err := client.New(ctx, client.Config{Meta: []string{tc.meta.Members[0].GRPCAddr}, NoRawReads: true})
	if err != nil {
		t.Fatal(err)
	}
	defer grpcOnly.Close()
	check := func(when string) {
		t.Helper()
		for name, c := range map[string]*client.Client{"default client": tc.client, "gRPC-only client": grpcOnly} {
			var got bytes.Buffer
			if _, err := c.Get(ctx, "raw", "clip", &got, nil); err != nil || !bytes.Equal(got.Bytes(), data) {
				t.Fatalf("%s, %s: Get: %d bytes, %v", when, name, got.Len(), err)
			}
			r, err := c.Open(ctx, "raw", "clip")
			if err != nil {
				t.Fatal(err)
			}
			for _, off := range []int64{0, 65535, 300_000, int64(len(data)) - 1000} {
				buf := make([]byte, 1000)
				if _, err := r.ReadAt(buf, off); err != nil || !bytes.Equal(buf, data[off:off+1000]) {
					r.Close()
					t.Fatalf("%s, %s: ReadAt %d: %v", when, name, off, err)
				}
			}
			r.Close()
		}
	}
	check("all nodes up")
	var rawServed float64
	for i, reg := range regs {
		raw, grpc := readsBy(t, reg, "raw"), readsBy(t, reg, "grpc")
		rawServed += raw
		switch {
		case i%2 == 0 && raw != 0:
			t.Fatalf("node s%d has raw reads off, yet served %v", i, raw)
		case i%2 == 1 && grpc > 0 && raw == 0: // read by both clients, raw by none
			t.Fatalf("node s%d serves raw reads, yet the default client read it over gRPC only", i)
		}
	}
	if rawServed == 0 {
		t.Fatal("no raw read was served")
	}
	tc.stopNode("s1") // serves raw reads
	check("a raw node stopped")
}

// TestRawWritesBesideGRPC: in a cluster where half the nodes take raw
// writes and half do not, a client writes each shard the way its node
// takes it, and so does a client with raw writes off (over gRPC only);
// every clip reads back whole. The nodes' metrics say which transport
// each write came by.
func TestRawWritesBesideGRPC(t *testing.T) {
	tc, regs := halfRaw(t, func(c *server.Config) { c.NoRawWrites = true })
	ctx := t.Context()
	grpcOnly, err := client.New(ctx, client.Config{Meta: []string{tc.meta.Members[0].GRPCAddr}, NoRawWrites: true})
	if err != nil {
		t.Fatal(err)
	}
	defer grpcOnly.Close()
	clips := map[string][]byte{}
	for i, c := range []*client.Client{tc.client, grpcOnly, tc.client} {
		key := fmt.Sprintf("clip-%d", i)
		clips[key] = randBytes(uint64(90+i), 700_000+i*1000)
		if _, err := c.Put(ctx, "raw", key, bytes.NewReader(clips[key]), nil); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	var raw, grpc float64
	for i, reg := range regs {
		r, g := writesBy(t, reg, "raw"), writesBy(t, reg, "grpc")
		raw, grpc = raw+r, grpc+g
		switch {
		case i%2 == 0 && r != 0:
			t.Fatalf("node s%d has raw writes off, yet took %v", i, r)
		case i%2 == 1 && r != 2: // the default client's two puts; one shard each
			t.Fatalf("node s%d takes raw writes and was written %v times raw, %v over gRPC; want 2 raw", i, r, g)
		}
	}
	if raw != 6 || grpc != 12 {
		t.Fatalf("%v raw writes and %v over gRPC; want 6 and 12", raw, grpc)
	}
	for key, data := range clips {
		var got bytes.Buffer
		if _, err := grpcOnly.Get(ctx, "raw", key, &got, nil); err != nil || !bytes.Equal(got.Bytes(), data) {
			t.Fatalf("%s: Get: %d bytes, %v", key, got.Len(), err)
		}
	}
}

// TestRawReadsAfterNodesCloseIdle: nodes close raw connections idle for
// their idle timeout; a client holding them in its pool sends its next
// requests on new ones, and reads and writes as before (a write cannot
// resend what it sent on a dead connection, so it checks an idle one
// before it uses it).
func TestRawReadsAfterNodesCloseIdle(t *testing.T) {
	tc := newClusterNodes(t, 6, client.Config{}, nil, func(_ int, c *server.Config) { c.IdleTimeout = 200 * time.Millisecond })
	p := client.Profile{DataShards: 4, ParityShards: 2, BlockSize: 64 << 10}
	tc.mkBucket("raw", &p)
	ctx := t.Context()
	data := randBytes(78, 300_000)
	if _, err := tc.client.Put(ctx, "raw", "clip", bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		var got bytes.Buffer
		if _, err := tc.client.Get(ctx, "raw", "clip", &got, nil); err != nil || !bytes.Equal(got.Bytes(), data) {
			t.Fatalf("Get %d: %d bytes, %v", i, got.Len(), err)
		}
		time.Sleep(500 * time.Millisecond) // every pooled connection is closed by its node meanwhile
		info, err := tc.client.Put(ctx, "raw", fmt.Sprintf("after-%d", i), bytes.NewReader(data), nil)
		if err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
		for _, sh := range info.Shards {
			if sh.State != client.ShardOK {
				t.Fatalf("Put %d: shard %d is %s", i, sh.Index, sh.State)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
}
