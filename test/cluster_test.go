package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
	"golang.org/x/sync/errgroup"
)

// cluster is 3 `clipstore meta` and 6 `clipstore storage` processes.
type cluster struct {
	t           *testing.T
	root        string
	metas       []*metaMember
	storage     []*storageProc
	storageArgs []string // extra flags for every storage process
}

type storageProc struct {
	id, dir, zone string
	proc          *process
}

func startCluster(t *testing.T) *cluster {
	// No scrubbing: this test damages shards on purpose and checks that
	// fsck sees the damage before anything repairs it.
	c := &cluster{t: t, root: t.TempDir(), storageArgs: []string{"--scrub-interval", "0"}}
	for i := range 3 {
		c.metas = append(c.metas, &metaMember{id: fmt.Sprintf("m%d", i), dir: filepath.Join(c.root, fmt.Sprintf("m%d", i))})
	}
	c.metas[0].start(t, "--bootstrap")
	c.metas[1].start(t, "--join", c.metas[0].grpcAddr)
	c.metas[2].start(t, "--join", c.metas[0].grpcAddr)
	for i := range 6 {
		s := &storageProc{id: fmt.Sprintf("s%d", i), dir: filepath.Join(c.root, fmt.Sprintf("s%d", i)), zone: fmt.Sprintf("zone-%d", i%3)}
		c.storage = append(c.storage, s)
		c.startStorage(s)
	}
	c.waitNodesUp(6)
	return c
}

// metaLeader returns the member cluster status names as the leader, and
// the term.
func (c *cluster) metaLeader(cl *client.Client) (*metaMember, uint64) {
	c.t.Helper()
	st, err := cl.ClusterStatus(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	for _, m := range c.metas {
		if m.id == st.Leader {
			return m, st.Term
		}
	}
	c.t.Fatalf("leader %q is none of the members", st.Leader)
	return nil, 0
}

func (c *cluster) metaAddrs() string {
	var out []string
	for _, m := range c.metas {
		out = append(out, m.grpcAddr)
	}
	return strings.Join(out, ",")
}

func (c *cluster) startStorage(s *storageProc) {
	args := []string{"storage", "--id", s.id, "--data", s.dir, "--listen", "127.0.0.1:0", "--zone", s.zone,
		"--meta", c.metaAddrs(), "--log-level", "debug"}
	s.proc = start(c.t, append(args, c.storageArgs...)...)
}

func (c *cluster) client() *client.Client {
	cl, err := client.New(context.Background(), client.Config{Meta: strings.Split(c.metaAddrs(), ",")})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// waitNodesUp waits until meta's leader has heard from n storage nodes
// registered at their current addresses.
func (c *cluster) waitNodesUp(n int) {
	c.t.Helper()
	cl := c.client()
	live := map[string]bool{}
	for _, s := range c.storage {
		if s.proc != nil {
			select {
			case <-s.proc.done:
			default:
				live[s.proc.addr] = true
			}
		}
	}
	waitUntil(c.t, 60*time.Second, fmt.Sprintf("%d storage nodes up", n), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := cl.ClusterStatus(ctx)
		if err != nil {
			return false
		}
		up := 0
		for _, node := range st.Nodes {
			if node.Up && live[node.Address] && time.Since(node.LastHeartbeat) < 3*time.Second {
				up++
			}
		}
		return up >= n
	})
}

// cli runs the clipstore binary against the cluster and returns its
// stdout, stderr and exit code.
func (c *cluster) cli(args ...string) (string, string, int) {
	c.t.Helper()
	cmd := exec.Command(binary, append(args, "--meta", c.metaAddrs())...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		c.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

type stored struct {
	size int
	sum  [32]byte
	seed uint64
}

func clipBytes(seed uint64, size int) []byte {
	r := mrand.New(mrand.NewPCG(seed, 7))
	b := make([]byte, size)
	for i := 0; i+8 <= size; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := size &^ 7; i < size; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// checkAll reads every clip back whole and a random range of each, and
// compares them with what was stored.
func checkAll(t *testing.T, cl *client.Client, bucket string, want map[string]stored) {
	t.Helper()
	var g errgroup.Group
	g.SetLimit(4)
	r := mrand.New(mrand.NewPCG(uint64(len(want)), 1))
	for key, s := range want {
		off := 0
		if s.size > 0 {
			off = r.IntN(s.size)
		}
		n := 0
		if s.size > off {
			n = 1 + r.IntN(min(s.size-off, 3<<20))
		}
		g.Go(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			h := sha256.New()
			info, err := cl.Get(ctx, bucket, key, h, nil)
			if err != nil {
				return fmt.Errorf("get %s: %w", key, err)
			}
			if info.Size != int64(s.size) || !bytes.Equal(h.Sum(nil), s.sum[:]) {
				return fmt.Errorf("get %s: %d bytes, content differs from what was stored", key, info.Size)
			}
			if n == 0 {
				return nil
			}
			rd, err := cl.Open(ctx, bucket, key)
			if err != nil {
				return fmt.Errorf("open %s: %w", key, err)
			}
			defer rd.Close()
			got := make([]byte, n)
			if _, err := rd.ReadAt(got, int64(off)); err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("range %s [%d,+%d): %w", key, off, n, err)
			}
			if !bytes.Equal(got, clipBytes(s.seed, s.size)[off:off+n]) {
				return fmt.Errorf("range %s [%d,+%d) differs", key, off, n)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestClusterEndToEnd runs the whole system as processes: 3 meta and 6
// storage nodes; concurrent puts of 100 clips from 0 B to 8 MiB, reads and
// ranges, overwrites and deletes, SIGKILL of two storage nodes and of the
// meta leader, a restart of every process, and bad input through the CLI.
func TestClusterEndToEnd(t *testing.T) {
	c := startCluster(t)
	cl := c.client()
	if out, errOut, code := c.cli("mb", "fleet", "--ec", "4+2", "--block-size", "256KiB"); code != 0 {
		t.Fatalf("mb: %s %s", out, errOut)
	}
	want := map[string]stored{}
	var mu sync.Mutex
	put := func(key string, seed uint64, size int) error {
		data := clipBytes(seed, size)
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
		want[key] = stored{size: size, sum: sha256.Sum256(data), seed: seed}
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
	checkAll(t, cl, "fleet", want)

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
	checkAll(t, cl, "fleet", want)

	// Two storage nodes die: every clip still reads back (4+2 loses 2).
	c.storage[1].proc.kill()
	c.storage[4].proc.kill()
	checkAll(t, cl, "fleet", want)
	c.startStorage(c.storage[1])
	c.startStorage(c.storage[4])
	c.waitNodesUp(6)

	// The meta leader dies: puts and gets go on after failover.
	leader, _ := c.metaLeader(cl)
	leader.proc.kill()
	for i := range 5 {
		if err := put(fmt.Sprintf("after-failover/%d", i), uint64(2000+i), 300_000); err != nil {
			t.Fatal(err)
		}
	}
	checkAll(t, cl, "fleet", want)
	leader.start(t)

	// Stop and restart every process: everything intact.
	for _, s := range c.storage {
		if err := s.proc.stop(); err != nil {
			t.Fatalf("stop %s: %v", s.id, err)
		}
	}
	for _, m := range c.metas {
		if err := m.proc.stop(); err != nil {
			t.Fatalf("stop %s: %v", m.id, err)
		}
	}
	for _, m := range c.metas {
		m.start(t)
	}
	for _, s := range c.storage {
		c.startStorage(s)
	}
	c.waitNodesUp(6)
	cl = c.client()
	checkAll(t, cl, "fleet", want)

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
		out, errOut, code := c.cli(tc.args...)
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
	if out, errOut, code := c.cli("admin", "fsck", "--deep"); code != 0 || !strings.Contains(out, ": 0 problems") {
		t.Fatalf("fsck on a healthy cluster: exit %d\n%s%s", code, out, errOut)
	}
	info, err := cl.Stat(context.Background(), "fleet", "car-02/front/002.mp4") // the 8 MiB clip
	if err != nil {
		t.Fatal(err)
	}
	shardFile := func(s client.ShardInfo) string {
		return shardPath(c, s.Node, s.ID)
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
	out, errOut, code := c.cli("admin", "fsck", "--deep")
	if code == 0 || !strings.Contains(out, ": 2 problems") || !strings.Contains(out, "corrupt") ||
		!strings.Contains(out, "missing") || !strings.Contains(errOut, "fsck found 2 problems") {
		t.Fatalf("fsck after damaging two shards: exit %d\n%s%s", code, out, errOut)
	}
}

func pow4(x float64) float64 { return x * x * x * x }
