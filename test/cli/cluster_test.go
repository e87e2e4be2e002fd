package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/test/e2e"
	"golang.org/x/sync/errgroup"
)

// TestClusterEndToEnd runs the whole system as processes: 3 meta and 6
// storage nodes; concurrent puts of 100 clips from 0 B to 8 MiB, reads and
// ranges, overwrites and deletes, SIGKILL of two storage nodes and of the
// meta leader, a restart of every process, and bad input through the CLI.
func TestClusterEndToEnd(t *testing.T) {
	c := startCluster(t)
	cl := c.Client()
	if out, errOut, code := c.CLI("mb", "fleet", "--ec", "4+2", "--block-size", "256KiB"); code != 0 {
		t.Fatalf("mb: %s %s", out, errOut)
	}
	t.Run("find", func(t *testing.T) { testFind(t, c) })
	want := map[string]e2e.Stored{}
	var mu sync.Mutex
	put := func(key string, seed uint64, size int) error {
		data := e2e.ClipBytes(seed, size)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		info, err := cl.Put(ctx, "fleet", key, bytes.NewReader(data), nil)
		if err != nil {
			return fmt.Errorf("put %s (%d bytes): %w", key, size, err)
		}
		if info.Size != int64(size) {
			return fmt.Errorf("put %s: recorded %d bytes, sent %d", key, info.Size, size)
		}
		mu.Lock()
		want[key] = e2e.Stored{Size: size, Sum: sha256.Sum256(data), Seed: seed}
		mu.Unlock()
		return nil
	}
	r := mrand.New(mrand.NewPCG(2026, 11))
	var g errgroup.Group
	g.SetLimit(8)
	total := 0
	for i := range 100 {
		size := int(float64(8<<20) * pow4(r.Float64()))
		switch i {
		case 0:
			size = 0
		case 1:
			size = 1
		case 2:
			size = 8 << 20
		case 3:
			size = 256<<10 + 1
		}
		total += size
		key := fmt.Sprintf("car-%02d/front/%03d.mp4", i%7, i)
		g.Go(func() error { return put(key, uint64(i), size) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	t.Logf("stored 100 clips, %d MiB", total>>20)
	keys := 0
	for e, err := range cl.List(context.Background(), "fleet", "") {
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := want[e.Key]; !ok {
			t.Fatalf("listing has %q, never stored", e.Key)
		}
		keys++
	}
	if keys != 100 {
		t.Fatalf("listing has %d clips, want 100", keys)
	}
	e2e.CheckAll(t, cl, "fleet", want)

	// Overwrite 10 clips, delete 10 others.
	for i := range 10 {
		key := fmt.Sprintf("car-%02d/front/%03d.mp4", (10+i)%7, 10+i)
		if err := put(key, uint64(1000+i), 100_000+i); err != nil {
			t.Fatal(err)
		}
		del := fmt.Sprintf("car-%02d/front/%03d.mp4", (50+i)%7, 50+i)
		if err := cl.Delete(context.Background(), "fleet", del); err != nil {
			t.Fatal(err)
		}
		delete(want, del)
		if _, err := cl.Stat(context.Background(), "fleet", del); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("stat after delete: %v", err)
		}
	}
	e2e.CheckAll(t, cl, "fleet", want)

	// Two storage nodes die: every clip still reads back (4+2 loses 2).
	c.Storage[1].Proc.Kill()
	c.Storage[4].Proc.Kill()
	e2e.CheckAll(t, cl, "fleet", want)
	c.StartStorage(c.Storage[1])
	c.StartStorage(c.Storage[4])
	c.WaitNodesUp(6)

	// The meta leader dies: puts and gets go on after failover.
	leader, _ := c.MetaLeader(cl)
	leader.Proc.Kill()
	for i := range 5 {
		if err := put(fmt.Sprintf("after-failover/%d", i), uint64(2000+i), 300_000); err != nil {
			t.Fatal(err)
		}
	}
	e2e.CheckAll(t, cl, "fleet", want)
	leader.Start(t)

	// Stop and restart every process: everything intact.
	for _, s := range c.Storage {
		if err := s.Proc.Stop(); err != nil {
			t.Fatalf("stop %s: %v", s.ID, err)
		}
	}
	for _, m := range c.Metas {
		if err := m.Proc.Stop(); err != nil {
			t.Fatalf("stop %s: %v", m.ID, err)
		}
	}
	for _, m := range c.Metas {
		m.Start(t)
	}
	for _, s := range c.Storage {
		c.StartStorage(s)
	}
	c.WaitNodesUp(6)
	cl = c.Client()
	e2e.CheckAll(t, cl, "fleet", want)

	// Bad input through the CLI: a clear line, a non-zero exit, nothing changed.
	before, _ := cl.ClusterStatus(context.Background())
	missing := filepath.Join(t.TempDir(), "missing.mp4")
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"put", "nope/k", empty}, "bucket"},
		{[]string{"put", "fleet/", empty}, "BUCKET/KEY"},
		{[]string{"put", "fleet/k", missing}, "no such file"},
		{[]string{"get", "fleet/car-01/front/001.mp4", "--range", "9000000-9000001", "-"}, "past the end"},
		{[]string{"get", "fleet/no-such-clip", "-"}, "not found"},
		{[]string{"mb", "Bad_Name"}, "bucket name"},
	} {
		out, errOut, code := c.CLI(tc.args...)
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		if code == 0 || len(lines) != 1 || !strings.Contains(errOut, tc.want) || out != "" {
			t.Errorf("clipstore %v: exit %d, stdout %q, stderr %q; want one line with %q", tc.args, code, out, errOut, tc.want)
		}
	}
	after, _ := cl.ClusterStatus(context.Background())
	if before.Clips != after.Clips || before.Buckets != after.Buckets {
		t.Fatalf("bad input changed the cluster: %d→%d clips, %d→%d buckets", before.Clips, after.Clips, before.Buckets, after.Buckets)
	}

	// fsck: clean now; then a corrupt and a lost shard are both reported.
	if out, errOut, code := c.CLI("admin", "fsck", "--deep"); code != 0 || !strings.Contains(out, ": 0 problems") {
		t.Fatalf("fsck on a healthy cluster: exit %d\n%s%s", code, out, errOut)
	}
	info, err := cl.Stat(context.Background(), "fleet", "car-02/front/002.mp4") // the 8 MiB clip
	if err != nil {
		t.Fatal(err)
	}
	shardFile := func(s client.ShardInfo) string {
		return c.ShardPath(s.Node, s.ID)
	}
	raw, err := os.ReadFile(shardFile(info.Shards[0]))
	if err != nil {
		t.Fatal(err)
	}
	raw[128+1000] ^= 0x40
	if err := os.WriteFile(shardFile(info.Shards[0]), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(shardFile(info.Shards[1])); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := c.CLI("admin", "fsck", "--deep")
	if code == 0 || !strings.Contains(out, ": 2 problems") || !strings.Contains(out, "corrupt") ||
		!strings.Contains(out, "missing") || !strings.Contains(errOut, "fsck found 2 problems") {
		t.Fatalf("fsck after damaging two shards: exit %d\n%s%s", code, out, errOut)
	}
}

func pow4(x float64) float64 { return x * x * x * x }
