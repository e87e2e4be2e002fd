package durability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/test/e2e"
)

// TestDatasetPinsGenerations: datasets made with the CLI (from a query and
// from a list) pin what they list. After every member is overwritten or
// deleted, each still reads back byte-identical at its pinned generation,
// also after a storage node holding its shards is killed and repair
// rebuilds them elsewhere; the bucket cannot be removed; cluster status
// counts what only datasets keep; removing the datasets lets GC delete
// the old shard files, and fsck is clean throughout. A purge takes a key
// out of every dataset and deletes it.
func TestDatasetPinsGenerations(t *testing.T) {
	c := e2e.StartDurabilityCluster(t, 7)
	cl := c.Client()
	if _, errOut, code := c.CLI("mb", "train"); code != 0 {
		t.Fatalf("mb: %s", errOut)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	type clip struct {
		key  string
		data []byte
		gen  uint64
		rain bool
	}
	var clips []*clip
	start := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	for i := range 12 {
		cp := &clip{key: fmt.Sprintf("v%d/front/%02d.mp4", i%3, i), data: e2e.ClipBytes(uint64(500+i), 40_000+i*3_001), rain: i%2 == 0}
		capture := &client.Capture{VehicleID: fmt.Sprintf("v%d", i%3), Camera: "front", Start: start.Add(time.Duration(i) * time.Minute),
			End: start.Add(time.Duration(i)*time.Minute + 30*time.Second)}
		if cp.rain {
			capture.Tags = []string{"rain"}
		}
		info, err := cl.Put(ctx, "train", cp.key, bytes.NewReader(cp.data), &client.PutOptions{Capture: capture})
		if err != nil {
			t.Fatal(err)
		}
		cp.gen = info.Generation
		clips = append(clips, cp)
	}
	cli := func(args ...string) string {
		t.Helper()
		out, errOut, code := c.CLI(args...)
		if code != 0 {
			t.Fatalf("%v: %s", args, errOut)
		}
		return out
	}
	out := cli("dataset", "create", "rain-v1", "train", "--tag", "rain", "--json")
	var ds struct {
		Clips int64 `json:"clips"`
	}
	if err := json.Unmarshal([]byte(out), &ds); err != nil || ds.Clips != 6 {
		t.Fatalf("dataset create from a query: %s (%v); want 6 clips", out, err)
	}
	list := filepath.Join(t.TempDir(), "keys.txt")
	var keys []string
	for _, cp := range clips {
		keys = append(keys, cp.key)
	}
	if err := os.WriteFile(list, []byte("# every clip\n"+strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli("dataset", "create", "all-v1", "train", "--from-list", list)
	if out := cli("dataset", "ls"); !strings.Contains(out, "rain-v1") || !strings.Contains(out, "all-v1") {
		t.Fatalf("dataset ls: %s", out)
	}

	// Overwrite the even clips, delete the odd ones.
	for i, cp := range clips {
		if i%2 == 0 {
			if _, err := cl.Put(ctx, "train", cp.key, bytes.NewReader(e2e.ClipBytes(uint64(900+i), 1000)), nil); err != nil {
				t.Fatal(err)
			}
		} else if err := cl.Delete(ctx, "train", cp.key); err != nil {
			t.Fatal(err)
		}
	}
	readsBack := func(when string) {
		t.Helper()
		for _, cp := range clips {
			var got bytes.Buffer
			if _, err := cl.Get(ctx, "train", cp.key, &got, &client.GetOptions{Generation: cp.gen}); err != nil || !bytes.Equal(got.Bytes(), cp.data) {
				t.Fatalf("%s: %s at generation %d: %d bytes, %v", when, cp.key, cp.gen, got.Len(), err)
			}
		}
		back := filepath.Join(t.TempDir(), "back")
		cli("get", "train/"+clips[1].key, back, "--generation", fmt.Sprint(clips[1].gen))
		if b, _ := os.ReadFile(back); !bytes.Equal(b, clips[1].data) {
			t.Fatalf("%s: clipstore get --generation read other bytes", when)
		}
	}
	readsBack("after every member was overwritten or deleted")
	if _, errOut, code := c.CLI("rb", "train"); code == 0 || !strings.Contains(errOut, "datasets hold") {
		t.Fatalf("rb of a bucket datasets hold: exit %d, %s", code, errOut)
	}
	var st struct {
		Clips            uint64 `json:"clips"`
		DatasetOnlyClips uint64 `json:"dataset_only_clips"`
		DatasetOnlyBytes uint64 `json:"dataset_only_bytes"`
	}
	if err := json.Unmarshal([]byte(cli("cluster", "status", "--json")), &st); err != nil || st.DatasetOnlyClips != 12 || st.Clips != 6 {
		t.Fatalf("cluster status: %+v, %v; want 12 generations kept only by datasets, 6 current clips", st, err)
	}

	// Repair keeps pinned generations whole: kill a node that holds shards
	// of one, and wait for every pinned generation to be whole elsewhere.
	info, err := cl.StatAt(ctx, "train", clips[0].key, clips[0].gen)
	if err != nil {
		t.Fatal(err)
	}
	victim := info.Shards[0].Node
	for _, s := range c.Storage {
		if s.ID == victim {
			s.Proc.Kill()
		}
	}
	await.TrueWhy(t, 90*time.Second, "every pinned generation k+m OK off "+victim, func() (bool, string) {
		for _, cp := range clips {
			info, err := cl.StatAt(ctx, "train", cp.key, cp.gen)
			if err != nil {
				return false, err.Error()
			}
			if why := e2e.ShardsProblem(info, map[string]bool{victim: true}); why != "" {
				return false, cp.key + ": " + why
			}
		}
		return true, ""
	})
	readsBack("after the repair")
	await.TrueWhy(t, 30*time.Second, "fsck --deep clean with pinned generations", c.FsckClean)
	var rep struct {
		Clips, Pinned, Shards int
	}
	if err := json.Unmarshal([]byte(cli("admin", "fsck", "--deep", "--json")), &rep); err != nil || rep.Clips != 6 || rep.Pinned != 12 ||
		rep.Shards != 18*6 {
		t.Fatalf("fsck: %+v, %v; want the 6 current clips and the 12 pinned generations checked, 108 shards", rep, err)
	}

	// The shard files of the pinned generations, as they are now.
	type file struct{ node, path string }
	var pinnedFiles []file
	for _, cp := range clips {
		info, err := cl.StatAt(ctx, "train", cp.key, cp.gen)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range info.Shards {
			pinnedFiles = append(pinnedFiles, file{s.Node, c.ShardPath(s.Node, s.ID)})
		}
	}
	// A purge: the first clip leaves both datasets and is gone.
	cli("dataset", "purge", "train/"+clips[0].key)
	if _, err := cl.StatAt(ctx, "train", clips[0].key, clips[0].gen); err == nil {
		t.Fatal("a purged generation still reads")
	}
	if _, err := cl.Stat(ctx, "train", clips[0].key); err == nil {
		t.Fatal("a purged key still has a current generation")
	}
	// The epoch plan over 2 ranks (a process each) reads every member left
	// once, and the same again.
	planned := map[string]int{}
	for rank := range 2 {
		args := []string{"plan", "all-v1", "--seed", "7", "--epoch", "1", "--world", "2", "--rank", fmt.Sprint(rank), "--json"}
		out := cli(args...)
		if again := cli(args...); again != out {
			t.Fatalf("two runs of %v differ", args)
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var it struct {
				Key string `json:"key"`
			}
			if err := json.Unmarshal([]byte(line), &it); err != nil {
				t.Fatalf("plan line %q: %v", line, err)
			}
			planned[it.Key]++
		}
	}
	if len(planned) != 11 || planned[clips[0].key] != 0 {
		t.Fatalf("the plan of all-v1 after the purge: %v; want the 11 other keys once", planned)
	}
	for k, n := range planned {
		if n != 1 {
			t.Fatalf("%s planned %d times", k, n)
		}
	}
	// Removing the datasets lets GC delete every old shard file.
	cli("dataset", "rm", "rain-v1")
	cli("dataset", "rm", "all-v1")
	await.TrueWhy(t, 60*time.Second, "the unpinned generations' shard files deleted", func() (bool, string) {
		for _, f := range pinnedFiles {
			if f.node == victim {
				continue // the killed node's files stay until it returns
			}
			if _, err := os.Stat(f.path); err == nil {
				return false, f.path + " is still there"
			}
		}
		return true, ""
	})
	if err := json.Unmarshal([]byte(cli("cluster", "status", "--json")), &st); err != nil || st.DatasetOnlyClips != 0 || st.Clips != 5 {
		t.Fatalf("cluster status after the datasets went: %+v, %v", st, err)
	}
	await.TrueWhy(t, 30*time.Second, "fsck --deep clean after the datasets went", c.FsckClean)
}
