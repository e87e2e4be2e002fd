package server_test

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	pb "github.com/clipstore/clipstore/proto/storagepb"
	"github.com/clipstore/clipstore/server"
	"github.com/clipstore/clipstore/server/faultfs"
	"google.golang.org/grpc/codes"
)

// writeShards stores n small shards on a node and returns them.
func writeShards(t *testing.T, n *testNode, r *rand.Rand, count int) []*testShard {
	t.Helper()
	var out []*testShard
	for range count {
		s := makeShard(r, 2, 1, 0, 1000, 1200)
		if _, err := writeShard(t.Context(), n.client, s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// fileOf finds the data directory holding a shard's file.
func fileOf(t *testing.T, n *testNode, id []byte) string {
	t.Helper()
	for _, d := range n.dirs {
		if p := shardPath(d, id); fileExists(p) {
			return p
		}
	}
	t.Fatalf("shard %x is on no disk", id)
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func sortedIDs(shards []*testShard) []server.ShardID {
	var out []server.ShardID
	for _, s := range shards {
		out = append(out, server.ShardID(s.id()))
	}
	slices.SortFunc(out, shardOrder)
	return out
}

// TestAuditFindsLostAndDamagedFiles: files removed behind the node's back
// are found lost by one audit, dropped from the index and answered
// NotFound; files cut short are found damaged; nothing else is named.
func TestAuditFindsLostAndDamagedFiles(t *testing.T) {
	n := startNode(t, testConfig(t, 2))
	r := rand.New(rand.NewPCG(31, 32))
	shards := writeShards(t, n, r, 40)
	removed, truncated := shards[:10], shards[10:15]
	for _, s := range removed {
		if err := os.Remove(fileOf(t, n, s.id())); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range truncated {
		p := fileOf(t, n, s.id())
		fi, _ := os.Stat(p)
		if err := os.Truncate(p, fi.Size()-10); err != nil {
			t.Fatal(err)
		}
	}
	res, err := n.node.Store().AuditFiles(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(res.Lost, shardOrder)
	slices.SortFunc(res.Corrupt, shardOrder)
	if res.Shards != 40 || !slices.Equal(res.Lost, sortedIDs(removed)) || !slices.Equal(res.Corrupt, sortedIDs(truncated)) ||
		res.DirsMade != 0 || len(res.Failed) != 0 {
		t.Fatalf("audit: %d shards, lost %v, corrupt %v, %d dirs made, failed %v; want 40, the 10 removed, the 5 cut short",
			res.Shards, res.Lost, res.Corrupt, res.DirsMade, res.Failed)
	}
	assertShardCount(t, n, 30)
	_, _, err = readShard(t.Context(), n.client, &pb.ReadShardRequest{ShardId: removed[0].id()})
	wantCode(t, err, codes.NotFound)

	// The lost ones are gone from the index: the next audit does not name
	// them again. The damaged files are still there, and still damaged.
	res, err = n.node.Store().AuditFiles(t.Context())
	if err != nil || res.Shards != 30 || len(res.Lost) != 0 || len(res.Corrupt) != 5 {
		t.Fatalf("second audit: %+v, %v", res, err)
	}
}

// TestReadFindsLostFile: a read of a shard whose file is gone says
// NotFound, counts the loss and drops the shard from the index; a shard the
// node deleted itself is no loss.
func TestReadFindsLostFile(t *testing.T) {
	n := startNode(t, testConfig(t, 1))
	r := rand.New(rand.NewPCG(33, 34))
	shards := writeShards(t, n, r, 3)
	if err := os.Remove(fileOf(t, n, shards[0].id())); err != nil {
		t.Fatal(err)
	}
	_, _, err := readShard(t.Context(), n.client, &pb.ReadShardRequest{ShardId: shards[0].id()})
	wantCode(t, err, codes.NotFound)
	if _, err := n.node.Store().Stat(server.ShardID(shards[0].id())); !errors.Is(err, server.ErrNotFound) {
		t.Fatalf("stat after the read: %v, want not found", err)
	}
	if _, err := n.node.Store().Delete(server.ShardID(shards[1].id())); err != nil {
		t.Fatal(err)
	}
	_, _, err = readShard(t.Context(), n.client, &pb.ReadShardRequest{ShardId: shards[1].id()})
	wantCode(t, err, codes.NotFound)
	if got := n.node.LossCounts(); got != (server.LossCounts{Read: 1}) {
		t.Fatalf("loss counts %+v, want one found by a read", got)
	}
	assertShardCount(t, n, 1)
}

// TestAuditTellsDeletionsFromLosses: shards the node deletes and writes
// while audits run are never taken for lost.
func TestAuditTellsDeletionsFromLosses(t *testing.T) {
	n := startNode(t, testConfig(t, 2))
	r := rand.New(rand.NewPCG(35, 36))
	shards := writeShards(t, n, r, 120)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < len(shards); i += 6 {
			var ids []server.ShardID
			for _, s := range shards[i:min(i+6, len(shards))] {
				ids = append(ids, server.ShardID(s.id()))
			}
			n.node.Store().DeleteMany(ids)
		}
	}()
	go func() {
		defer wg.Done()
		rr := rand.New(rand.NewPCG(37, 38))
		for range 60 {
			s := makeShard(rr, 2, 1, 0, 1000, 1200)
			if _, err := writeShard(t.Context(), n.client, s); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	for audits := 0; ; audits++ {
		res, err := n.node.Store().AuditFiles(t.Context())
		if err != nil || len(res.Lost) != 0 || len(res.Corrupt) != 0 {
			t.Fatalf("audit %d while the node deletes and writes: %+v, %v", audits, res, err)
		}
		select {
		case <-done:
			assertShardCount(t, n, 60)
			t.Logf("%d audits ran while the node deleted %d shards and wrote 60", audits+1, len(shards))
			return
		default:
		}
	}
}

// TestAuditRemakesLayout: a node whose shards/ tree and tmp/ were removed
// keeps taking writes (each remakes what it needs), and the next audit
// remakes every directory and names every shard that was in them lost;
// with shards written as unnamed files and through tmp/.
func TestAuditRemakesLayout(t *testing.T) {
	for _, mode := range []string{"unnamed", "named"} {
		t.Run(mode, func(t *testing.T) { auditRemakesLayout(t, mode) })
	}
}

func auditRemakesLayout(t *testing.T, mode string) {
	cfg := testConfig(t, 1)
	var throughTmp atomic.Int32 // writes that made a named temp file
	injectFaults(&cfg, func(op faultfs.Op, name string) error {
		if op == faultfs.OpOpen && strings.HasPrefix(name, "tmp/") {
			throughTmp.Add(1)
		}
		if mode == "named" {
			return noUnnamed(op, name)
		}
		return nil
	})
	n := startNode(t, cfg)
	throughTmp.Store(0) // the disk's identity file, written at start
	r := rand.New(rand.NewPCG(39, 40))
	old := writeShards(t, n, r, 20)
	for _, dir := range []string{"shards", "tmp"} {
		if err := os.RemoveAll(filepath.Join(n.dirs[0], dir)); err != nil {
			t.Fatal(err)
		}
	}
	fresh := writeShards(t, n, r, 5)
	res, err := n.node.Store().AuditFiles(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(res.Lost, shardOrder)
	if !slices.Equal(res.Lost, sortedIDs(old)) || res.DirsMade < 256-5 || len(res.Failed) != 0 {
		t.Fatalf("audit: lost %v, %d dirs made, failed %v; want the 20 old shards and the layout", res.Lost, res.DirsMade, res.Failed)
	}
	entries, err := os.ReadDir(filepath.Join(n.dirs[0], "shards"))
	if err != nil || len(entries) != 256 {
		t.Fatalf("%d fan-out directories after the audit (%v), want 256", len(entries), err)
	}
	for _, s := range fresh {
		if _, _, err := readShard(t.Context(), n.client, &pb.ReadShardRequest{ShardId: s.id()}); err != nil {
			t.Fatalf("shard written after the damage: %v", err)
		}
	}
	writeShards(t, n, r, 5)
	assertShardCount(t, n, 10)
	if got := throughTmp.Load(); (got > 0) != (mode == "named") {
		t.Fatalf("%d writes went through tmp/ in mode %s", got, mode)
	}
}

// TestAuditFailsAndRecoversADisk: a disk whose shard directory cannot be
// listed is failed: it reports no free space and takes no new shard, until
// an audit reads it again.
func TestAuditFailsAndRecoversADisk(t *testing.T) {
	var broken sync.Mutex
	fail := false
	cfg := testConfig(t, 1)
	injectFaults(&cfg, func(op faultfs.Op, name string) error {
		broken.Lock()
		defer broken.Unlock()
		if fail && op == faultfs.OpReadDir && name == "shards" {
			return syscall.EIO
		}
		return nil
	})
	n := startNode(t, cfg)
	r := rand.New(rand.NewPCG(41, 42))
	writeShards(t, n, r, 3)
	broken.Lock()
	fail = true
	broken.Unlock()
	res, err := n.node.Store().AuditFiles(t.Context())
	if err != nil || len(res.Failed) != 1 || len(res.Lost) != 0 {
		t.Fatalf("audit of a disk that fails to list: %+v, %v", res, err)
	}
	usage, err := n.node.Store().Usage()
	if err != nil || usage[0].Failed == "" || usage[0].Free != 0 {
		t.Fatalf("usage of a failed disk: %+v, %v", usage, err)
	}
	if _, err := writeShard(t.Context(), n.client, makeShard(r, 2, 1, 0, 1000, 1200)); err == nil {
		t.Fatal("a write to a node whose only disk failed succeeded")
	}
	broken.Lock()
	fail = false
	broken.Unlock()
	if res, err := n.node.Store().AuditFiles(t.Context()); err != nil || len(res.Failed) != 0 {
		t.Fatalf("audit once the disk reads again: %+v, %v", res, err)
	}
	if usage, _ := n.node.Store().Usage(); usage[0].Failed != "" || usage[0].Free == 0 {
		t.Fatalf("usage once recovered: %+v", usage)
	}
	writeShards(t, n, r, 1)
	assertShardCount(t, n, 4)
}
