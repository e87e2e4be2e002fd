package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/test/e2e"
)

// TestPythonLoader runs the Python package's tests (python/tests, with
// Debian's python3, boto3 and torch) against a cluster and gateway: a
// dataset of 500 clips, 50 of them overwritten after it was made, read by
// a two-rank, two-worker DataLoader exactly once at their pinned
// generations, in the plan the Go CLI prints; a job killed mid-epoch
// resumes from its state_dict at another world size, exactly once.
func TestPythonLoader(t *testing.T) {
	g := startGateway(t)
	cl := g.c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, errOut, code := g.c.CLI("mb", "loader"); code != 0 {
		t.Fatalf("mb: %s", errOut)
	}
	type member struct {
		Generation uint64 `json:"generation"`
		SHA256     string `json:"sha256"`
		Size       int    `json:"size"`
		Vehicle    string `json:"vehicle"`
	}
	clips := map[string]member{}
	var keys []string
	for i := range 500 {
		key := fmt.Sprintf("clips/%03d.mp4", i)
		data := e2e.ClipBytes(uint64(7000+i), 1500+(i*37)%4000)
		vehicle := fmt.Sprintf("v%d", i%7)
		info, err := cl.Put(ctx, "loader", key, bytes.NewReader(data), &client.PutOptions{Capture: &client.Capture{VehicleID: vehicle, Camera: "front"}})
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		clips[key] = member{Generation: info.Generation, SHA256: hex.EncodeToString(sum[:]), Size: len(data), Vehicle: vehicle}
		keys = append(keys, key)
	}
	dir := t.TempDir()
	list := filepath.Join(dir, "keys.txt")
	if err := os.WriteFile(list, []byte(strings.Join(keys, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := g.c.CLI("dataset", "create", "loader-v1", "loader", "--from-list", list); code != 0 {
		t.Fatalf("dataset create: %s", errOut)
	}
	for i := 0; i < 500; i += 10 { // the loader must read what the dataset pinned
		if _, err := cl.Put(ctx, "loader", keys[i], bytes.NewReader([]byte("overwritten")), nil); err != nil {
			t.Fatal(err)
		}
	}
	plans := map[string][]string{}
	for _, wr := range [][2]int{{2, 0}, {2, 1}, {3, 2}} {
		out, errOut, code := g.c.CLI("plan", "loader-v1", "--seed", "3", "--epoch", "1", "--world", fmt.Sprint(wr[0]), "--rank", fmt.Sprint(wr[1]), "--json")
		if code != 0 {
			t.Fatalf("plan: %s", errOut)
		}
		var ks []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var it struct {
				Key string `json:"key"`
			}
			if err := json.Unmarshal([]byte(line), &it); err != nil {
				t.Fatal(err)
			}
			ks = append(ks, it.Key)
		}
		plans[fmt.Sprintf("%d/%d", wr[0], wr[1])] = ks
	}
	manifest, err := json.Marshal(map[string]any{"clips": clips, "plans": plans})
	if err != nil {
		t.Fatal(err)
	}
	manifestFile := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(manifestFile, manifest, 0o600); err != nil {
		t.Fatal(err)
	}
	python, err := filepath.Abs("../../python")
	if err != nil {
		t.Fatal(err)
	}
	tctx, tcancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer tcancel()
	cmd := exec.CommandContext(tctx, "/usr/bin/python3", "-m", "unittest", "discover", "-v", "-s", filepath.Join(python, "tests"))
	cmd.Dir = python
	cmd.Env = append(g.env(), "PYTHONPATH="+python, "CLIPSTORE_PYTHON="+python, "TMPDIR="+dir,
		"CLIPSTORE_TEST_ENDPOINT="+g.endpoint, "CLIPSTORE_TEST_BUCKET=loader", "CLIPSTORE_TEST_DATASET=loader-v1",
		"CLIPSTORE_TEST_MANIFEST="+manifestFile)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python tests: %v\n%s", err, out)
	}
	t.Logf("python tests:\n%s", out)
}
