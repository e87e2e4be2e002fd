package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/test/e2e"
)

// statusOut is the part of `clipstore cluster status --json` this test reads.
type statusOut struct {
	Repair struct {
		State          string   `json:"state"`
		QueueShards    uint64   `json:"queue_shards"`
		RepairedShards uint64   `json:"repaired_shards"`
		RepairedBytes  uint64   `json:"repaired_bytes"`
		BytesPerSec    float64  `json:"bytes_per_sec"`
		ETASeconds     *float64 `json:"eta_seconds"`
	} `json:"repair"`
	Scrub struct {
		CorruptFound uint64 `json:"corrupt_found"`
	} `json:"scrub"`
	StorageNodes []struct {
		ID    string `json:"id"`
		Scrub *struct {
			Passes       uint64 `json:"passes_completed"`
			BytesDone    uint64 `json:"bytes_done"`
			BytesTotal   uint64 `json:"bytes_total"`
			CorruptFound uint64 `json:"corrupt_found"`
			LastPassEnd  string `json:"last_pass_end"`
		} `json:"scrub"`
	} `json:"storage_nodes"`
}

// TestStatusShowsScrubAndRepair damages three shards: `clipstore cluster
// status --json` then shows the scrubbers' passes and the corruptions they
// found, and once repair has rebuilt the shards, the bytes it repaired and
// an empty queue.
func TestStatusShowsScrubAndRepair(t *testing.T) {
	c := e2e.StartDurabilityCluster(t, 6)
	cl := c.Client()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := cl.CreateBucket(ctx, "fleet", e2e.DurabilityProfile); err != nil {
		t.Fatal(err)
	}
	var damaged []client.ShardInfo
	for i := range 3 {
		_, info, err := e2e.PutClip(cl, "fleet", fmt.Sprintf("clip/%d", i), uint64(300+i), 200_000)
		if err != nil {
			t.Fatal(err)
		}
		damaged = append(damaged, info.Shards[2*i])
	}
	for _, s := range damaged {
		path := c.ShardPath(s.Node, s.ID)
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		raw[128+100] ^= 0x40 // in the first piece
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var st statusOut
	await.TrueWhy(t, 60*time.Second, "status to show the scrub passes, the corruptions found and their repair", func() (bool, string) {
		out, errOut, code := c.CLI("cluster", "status", "--json")
		if code != 0 {
			return false, fmt.Sprintf("exit %d: %s", code, errOut)
		}
		st = statusOut{}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return false, fmt.Sprintf("%v: %s", err, out)
		}
		why := statusProblem(&st)
		return why == "", why
	})
	r := st.Repair
	if r.RepairedBytes == 0 || r.BytesPerSec <= 0 || r.State != "idle" || r.ETASeconds == nil || *r.ETASeconds != 0 {
		t.Errorf("repair after the shards were rebuilt: %+v", r)
	}
	if out, _, code := c.CLI("cluster", "status"); code != 0 || testing.Verbose() {
		t.Logf("clipstore cluster status (exit %d):\n%s", code, out)
	}
}

// statusProblem says what the status does not show yet: at least the three
// corruptions found and repaired, nothing left to repair, and on every node
// a finished pass that read shard bytes, its findings adding up to the
// cluster's.
func statusProblem(st *statusOut) string {
	if r := st.Repair; st.Scrub.CorruptFound < 3 || r.RepairedShards < 3 || r.QueueShards != 0 {
		return fmt.Sprintf("%d corrupt shards found, %d repaired, %d queued", st.Scrub.CorruptFound, r.RepairedShards, r.QueueShards)
	}
	var corrupt uint64
	for _, n := range st.StorageNodes {
		s := n.Scrub
		if s == nil || s.Passes == 0 || s.LastPassEnd == "" || s.BytesDone == 0 || s.BytesDone > s.BytesTotal {
			return fmt.Sprintf("node %s scrub %+v", n.ID, s)
		}
		corrupt += s.CorruptFound
	}
	if corrupt != st.Scrub.CorruptFound {
		return fmt.Sprintf("nodes found %d corrupt shards, the cluster total says %d", corrupt, st.Scrub.CorruptFound)
	}
	return ""
}
