package durability

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/erasure"
	"github.com/clipstore/clipstore/internal/await"
	metapb "github.com/clipstore/clipstore/proto/metapb"
	storagepb "github.com/clipstore/clipstore/proto/storagepb"
	"github.com/clipstore/clipstore/test/e2e"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// TestCorruptShardsAreScrubbedAndRepaired flips a byte in 100 shard files
// (two of each of 50 clips): the scrubbers find every one, meta has them rebuilt, fsck --deep
// comes back clean and every clip reads back identical, also while the
// damage is there.
func TestCorruptShardsAreScrubbedAndRepaired(t *testing.T) {
	c := e2e.StartDurabilityCluster(t, 7)
	cl := c.Client()
	ctx := context.Background()
	if err := cl.CreateBucket(ctx, "fleet", &client.Profile{DataShards: 4, ParityShards: 2, BlockSize: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	want := map[string]e2e.Stored{}
	var shards []client.ShardInfo
	for i := range 50 {
		size := 150_000 + i*7919
		data := e2e.ClipBytes(uint64(100+i), size)
		key := fmt.Sprintf("clip/%02d", i)
		info, err := cl.Put(ctx, "fleet", key, bytes.NewReader(data), nil)
		if err != nil {
			t.Fatal(err)
		}
		want[key] = e2e.Stored{Size: size, Sum: sha256.Sum256(data), Seed: uint64(100 + i)}
		// Two shards of each clip (m = 2), spread over the indices: 100 in all.
		shards = append(shards, info.Shards[i%6], info.Shards[(i+3)%6])
	}
	r := mrand.New(mrand.NewPCG(5, 5))
	for _, s := range shards {
		path := c.ShardPath(s.Node, s.ID)
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		raw[128+r.IntN(int(s.Length)/2)] ^= byte(1 + r.IntN(255)) // inside the first pieces
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e2e.CheckAll(t, cl, "fleet", want) // degraded reads around the damage
	await.True(t, 90*time.Second, "scrub and repair to make fsck --deep clean", func() bool {
		_, _, code := c.CLI("admin", "fsck", "--deep")
		return code == 0
	})
	current := map[string]bool{}
	for k := range want {
		info, err := cl.Stat(ctx, "fleet", k)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range info.Shards {
			current[s.ID] = true
		}
	}
	for _, s := range shards {
		if current[s.ID] {
			t.Fatalf("damaged shard %s is still in a record", s.ID)
		}
	}
	e2e.CheckAll(t, cl, "fleet", want)
}

// TestAbandonedUploadIsCollected writes every shard of a clip and never
// commits it (a client killed between the two): the clip never becomes
// visible, and once the commit deadline passes the storage nodes' GC
// removes the shards; committed clips are untouched.
func TestAbandonedUploadIsCollected(t *testing.T) {
	c := e2e.StartDurabilityCluster(t, 6)
	cl := c.Client()
	ctx := context.Background()
	if err := cl.CreateBucket(ctx, "fleet", &client.Profile{DataShards: 4, ParityShards: 2, BlockSize: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	keep := e2e.ClipBytes(1, 500_000)
	if _, err := cl.Put(ctx, "fleet", "kept", bytes.NewReader(keep), nil); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(strings.Split(c.MetaAddrs(), ",")[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	mc := metapb.NewMetaServiceClient(conn)
	var begin *metapb.BeginPutResponse
	if err := e2e.Retry(t, func(ctx context.Context) (err error) {
		begin, err = mc.BeginPut(ctx, &metapb.BeginPutRequest{Bucket: "fleet", Key: "abandoned"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// The shards are written (an upload in progress), then the client dies.
	k, m := int(begin.Profile.DataShards), int(begin.Profile.ParityShards)
	code, err := erasure.New(k, m, erasure.WithBlockSize(int(begin.Profile.BlockSize)))
	if err != nil {
		t.Fatal(err)
	}
	c2 := e2e.EncodeClip(t, code, 400_000)
	for i, tg := range begin.Targets {
		hdr := c2.Shards[i][0].GetHeader()
		hdr.ShardId, hdr.ClipId, hdr.CommitDeadlineUnixNano = tg.ShardId, begin.ClipId, begin.CommitDeadlineUnixNano
		if _, err := e2e.WriteShard(t, e2e.StorageClient(t, tg.Address), c2.Shards[i]); err != nil {
			t.Fatalf("write shard %d: %v", i, err)
		}
	}
	if _, err := cl.Stat(ctx, "fleet", "abandoned"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("an uncommitted clip: stat says %v, want not found", err)
	}
	await.True(t, 60*time.Second, "GC to remove the abandoned shards", func() bool {
		for _, tg := range begin.Targets {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := e2e.StorageClient(t, tg.Address).StatShard(sctx, &storagepb.StatShardRequest{ShardId: tg.ShardId})
			cancel()
			if status.Code(err) != codes.NotFound {
				return false
			}
		}
		return true
	})
	if out, errOut, code := c.CLI("admin", "fsck", "--deep"); code != 0 {
		t.Fatalf("fsck after GC: exit %d\n%s%s", code, out, errOut)
	}
	var got bytes.Buffer
	if _, err := cl.Get(ctx, "fleet", "kept", &got, nil); err != nil || !bytes.Equal(got.Bytes(), keep) {
		t.Fatalf("committed clip after GC: %v", err)
	}
}

// TestTooManyCorruptShards: with m+1 shards of one clip damaged, a get fails
// with a data-loss error, never wrong bytes, and fsck reports the damage.
func TestTooManyCorruptShards(t *testing.T) {
	c := e2e.StartDurabilityCluster(t, 6)
	cl := c.Client()
	ctx := context.Background()
	if err := cl.CreateBucket(ctx, "fleet", &client.Profile{DataShards: 4, ParityShards: 2, BlockSize: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	data := e2e.ClipBytes(7, 400_000)
	info, err := cl.Put(ctx, "fleet", "doomed", bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range info.Shards[:3] { // m+1 = 3: block 0's piece of each
		path := c.ShardPath(s.Node, s.ID)
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		raw[128+10] ^= 0xff
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var got bytes.Buffer
	_, err = cl.Get(ctx, "fleet", "doomed", &got, nil)
	if !errors.Is(err, client.ErrUnrecoverable) {
		t.Fatalf("get with m+1 corrupt shards: %v, want ErrUnrecoverable", err)
	}
	if got.Len() > 0 {
		t.Fatalf("%d bytes written before the error; block 0 is unrecoverable, nothing may be", got.Len())
	}
	out, _, code := c.CLI("admin", "fsck", "--deep")
	if code == 0 || strings.Count(out, "corrupt") < 3 {
		t.Fatalf("fsck with m+1 corrupt shards: exit %d\n%s", code, out)
	}
	// The get reported the pieces it met; the scrubbers report the rest:
	// cluster status counts the clip unrecoverable, and repair leaves it be.
	await.TrueWhy(t, 20*time.Second, "cluster status to count the clip unrecoverable", func() (bool, string) {
		st, err := cl.ClusterStatus(ctx)
		if err != nil {
			return false, err.Error()
		}
		return st.UnrecoverableClips == 1 && st.Repair.QueueShards == 0,
			fmt.Sprintf("%d unrecoverable, %d shards queued, by lost shards %v", st.UnrecoverableClips, st.Repair.QueueShards, st.ClipsByLostShards)
	})
}
