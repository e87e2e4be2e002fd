package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/server"
	"golang.org/x/sync/errgroup"
)

// DurabilityProfile is the 4+2 profile of the durability tests, with small
// blocks so that small clips still span several blocks.
var DurabilityProfile = &client.Profile{DataShards: 4, ParityShards: 2, BlockSize: 64 << 10}

// Stored is what a test stored under a key: enough to check it.
type Stored struct {
	Size int
	Sum  [32]byte // SHA-256 of the content
	Seed uint64   // the content is ClipBytes(Seed, Size)
}

// ClipBytes is the deterministic content of a test clip.
func ClipBytes(seed uint64, size int) []byte {
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

// CheckAll reads every clip back whole and a random range of each, and
// compares them with what was stored.
func CheckAll(t testing.TB, cl *client.Client, bucket string, want map[string]Stored) {
	t.Helper()
	var g errgroup.Group
	g.SetLimit(4)
	r := mrand.New(mrand.NewPCG(uint64(len(want)), 1))
	for key, s := range want {
		off := 0
		if s.Size > 0 {
			off = r.IntN(s.Size)
		}
		n := 0
		if s.Size > off {
			n = 1 + r.IntN(min(s.Size-off, 3<<20))
		}
		g.Go(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			h := sha256.New()
			info, err := cl.Get(ctx, bucket, key, h, nil)
			if err != nil {
				return fmt.Errorf("get %s: %w", key, err)
			}
			if info.Size != int64(s.Size) || !bytes.Equal(h.Sum(nil), s.Sum[:]) {
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
			if !bytes.Equal(got, ClipBytes(s.Seed, s.Size)[off:off+n]) {
				return fmt.Errorf("range %s [%d,+%d) differs", key, off, n)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// PutClip stores ClipBytes(seed, size) under key and returns what
// CheckAll needs and the record.
func PutClip(cl *client.Client, bucket, key string, seed uint64, size int) (Stored, *client.ClipInfo, error) {
	data := ClipBytes(seed, size)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	info, err := cl.Put(ctx, bucket, key, bytes.NewReader(data), nil)
	if err != nil {
		return Stored{}, nil, err
	}
	if info.Size != int64(size) {
		return Stored{}, nil, fmt.Errorf("put %s: recorded %d bytes, sent %d", key, info.Size, size)
	}
	return Stored{Size: size, Sum: sha256.Sum256(data), Seed: seed}, info, nil
}

// SortedKeys is the keys of m in order.
func SortedKeys(m map[string]Stored) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// WaitNodeUp waits until meta's ClusterStatus reports node id up (or not).
func WaitNodeUp(t testing.TB, cl *client.Client, id string, up bool) {
	t.Helper()
	await.TrueWhy(t, 20*time.Second, fmt.Sprintf("meta to report %s up=%v", id, up), func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := cl.ClusterStatus(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, n := range st.Nodes {
			if n.ID == id {
				return n.Up == up, fmt.Sprintf("%s up=%v down since %v", id, n.Up, n.DownSince)
			}
		}
		return false, id + " not registered"
	})
}

// FsckClean runs `clipstore admin fsck --deep` and reports whether it
// exits 0, and if not, the end of what it said.
func (c *Cluster) FsckClean() (bool, string) {
	out, errOut, code := c.CLI("admin", "fsck", "--deep")
	return code == 0, fmt.Sprintf("fsck exit %d: %s%s", code, lastLines(out, 8), strings.TrimSpace(errOut))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// ClipsFull reports whether every clip of keys has k+m OK shards on
// distinct nodes, none of them in avoid; otherwise it describes the first
// clip that does not.
func ClipsFull(cl *client.Client, bucket string, keys []string, avoid map[string]bool) (bool, string) {
	for _, key := range keys {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		info, err := cl.Stat(ctx, bucket, key)
		cancel()
		if err != nil {
			return false, fmt.Sprintf("stat %s: %v", key, err)
		}
		if why := ShardsProblem(info, avoid); why != "" {
			return false, key + ": " + why
		}
	}
	return true, ""
}

// ShardsProblem says what keeps a clip from k+m OK shards on distinct
// nodes, none of them in avoid; "" if nothing does.
func ShardsProblem(info *client.ClipInfo, avoid map[string]bool) string {
	want := info.Profile.DataShards + info.Profile.ParityShards
	if len(info.Shards) != want {
		return fmt.Sprintf("%d shards, want %d", len(info.Shards), want)
	}
	nodes := map[string]bool{}
	for _, s := range info.Shards {
		switch {
		case s.State != client.ShardOK:
			return fmt.Sprintf("shard %d on %q is %v", s.Index, s.Node, s.State)
		case s.Node == "" || avoid[s.Node]:
			return fmt.Sprintf("shard %d on node %q", s.Index, s.Node)
		case nodes[s.Node]:
			return fmt.Sprintf("two shards on %s", s.Node)
		}
		nodes[s.Node] = true
	}
	return ""
}

// ShardPath is where node keeps the shard with the hex id.
func (c *Cluster) ShardPath(node, id string) string {
	var sid server.ShardID
	if n, err := hex.Decode(sid[:], []byte(id)); err != nil || n != len(sid) {
		panic(fmt.Sprintf("shard id %q: not %d hex bytes", id, len(sid)))
	}
	return server.ShardFile(filepath.Join(c.Root, node), sid)
}

// MustHex decodes a hex string or fails t.
func MustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
