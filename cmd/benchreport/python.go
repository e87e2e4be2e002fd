package main

// The Python loader's row: an epoch of a dataset read by
// clipstore.ClipDataset (python/, Debian's python3 with boto3 and torch)
// through the S3 gateway, beside the native client reading the same clips
// with as many in flight, in the same run.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/bytesize"
	"golang.org/x/sync/errgroup"
)

const (
	pyClipSize = 1 << 20
	pyWorkers  = 2
	pyPrefetch = 4
)

// pythonEpoch is the script that reads one epoch and prints its time.
const pythonEpoch = `
import json, os, sys, time
from clipstore import ClipDataset
ds = ClipDataset(os.environ["EP"], os.environ["DATASET"], os.environ["BUCKET"], seed=1, epoch=0, rank=0, world_size=1,
                 access_key=os.environ["KEY"], secret_key=os.environ["SECRET"], prefetch=int(os.environ["PREFETCH"]))
t0 = time.monotonic(); n = 0; b = 0
for clip in ds.loader(num_workers=int(os.environ["WORKERS"])):
    n += 1; b += len(clip.data)
print(json.dumps({"seconds": time.monotonic() - t0, "clips": n, "bytes": b}))
`

// pythonRow puts the clips, makes a dataset of them, and times a Python
// epoch and the native client's reads of the same clips.
func pythonRow(ctx context.Context, c *benchCluster, gw *proc, key accessKey, o options) (row, error) {
	r := row{area: "clip-native", name: fmt.Sprintf("Python DataLoader epoch over the S3 gateway, %s clips, %d workers × %d prefetch",
		bytesize.Human(pyClipSize), pyWorkers, pyPrefetch)}
	if err := exec.Command("/usr/bin/python3", "-c", "import boto3, torch").Run(); err != nil {
		r.measured, r.note = "not measured", "needs Debian's python3-boto3 and python3-torch (make test-deps installs them)"
		return r, nil
	}
	n := 256
	if o.quick {
		n = 64
	}
	cl, err := c.client(ctx)
	if err != nil {
		return r, err
	}
	defer cl.Close()
	data := bytes.Repeat([]byte("clipstore python epoch "), pyClipSize/23+1)[:pyClipSize]
	keys := make([]string, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range n {
		keys[i] = fmt.Sprintf("py/%04d.mp4", i)
		g.Go(func() error {
			_, err := cl.Put(gctx, "bench", keys[i], bytes.NewReader(data), nil)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return r, err
	}
	const dataset = "bench-python"
	cl.DeleteDataset(ctx, dataset) // a kept directory's
	if _, err := cl.CreateDataset(ctx, client.DatasetSpec{Name: dataset, Bucket: "bench", Keys: keys}); err != nil {
		return r, err
	}
	defer cl.DeleteDataset(context.Background(), dataset)

	// The reference first: the native client, as many clips in flight.
	start := time.Now()
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(pyWorkers * pyPrefetch)
	for _, k := range keys {
		g.Go(func() error {
			var buf bytes.Buffer
			_, err := cl.Get(gctx, "bench", k, &buf, nil)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return r, err
	}
	native := float64(n*pyClipSize) / (1 << 20) / time.Since(start).Seconds()

	python, err := filepath.Abs("python")
	if err != nil {
		return r, err
	}
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", "-c", pythonEpoch)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+python, "EP=http://"+gw.Addr, "DATASET="+dataset, "BUCKET=bench",
		"KEY="+key.ID, "SECRET="+key.Secret, fmt.Sprintf("WORKERS=%d", pyWorkers), fmt.Sprintf("PREFETCH=%d", pyPrefetch))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return r, fmt.Errorf("python epoch: %w: %s", err, strings.TrimSpace(errOut.String()))
	}
	var res struct {
		Seconds float64 `json:"seconds"`
		Clips   int     `json:"clips"`
		Bytes   int64   `json:"bytes"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return r, fmt.Errorf("python epoch output %q: %w", out.String(), err)
	}
	if res.Clips != n || res.Bytes != int64(n*pyClipSize) {
		return r, errors.New("the python epoch read " + fmt.Sprint(res.Clips) + " clips, want " + fmt.Sprint(n))
	}
	py := float64(res.Bytes) / (1 << 20) / res.Seconds
	r.measured = fmt.Sprintf("%.1f MiB/s, %.1f clips/s", py, float64(n)/res.Seconds)
	r.reference = fmt.Sprintf("%.1f MiB/s (native client, the same %d clips, %d in flight)", native, n, pyWorkers*pyPrefetch)
	r.ratio = py / native
	r.note = fmt.Sprintf("one epoch of a %d-clip dataset (plan v1, 1 rank), every clip at its pinned generation (S3 versionId), sizes checked; "+
		"the time from the first plan request to the last clip, worker start-up (torch import, fork) included", n)
	return r, nil
}
