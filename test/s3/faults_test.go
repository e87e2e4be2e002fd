package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/await"
	metapb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/clipstore/clipstore/test/e2e"
)

// faultMaxUpload is the fault cluster's --max-upload-duration: the commit
// deadline of every put and part, so that the shards of an upload cut off
// are collectable (GC grace 0) within seconds.
const faultMaxUpload = 5 * time.Second

// partSize is S3's smallest size of a part that is not the last.
const partSize = 5 << 20

// TestS3Faults runs the gateway over a real cluster (3 meta, 6 storage
// nodes, RS 4+2) while processes die under it, one case after another,
// each in its own bucket and starting from a whole cluster: a storage node
// SIGKILLed in the middle of a multipart upload and during concurrent
// GETs, the meta leader SIGKILLed around CompleteMultipartUpload, and the
// gateway itself SIGKILLed with a PutObject and an UploadPart streaming
// and a PutObject whose shards are written but not committed.
func TestS3Faults(t *testing.T) {
	f := startFaultCluster(t)
	t.Run("storage node killed during a multipart upload", f.storageKilledDuringMultipart)
	t.Run("storage node killed during GETs", f.storageKilledDuringGets)
	t.Run("meta leader killed during Complete", f.leaderKilledDuringComplete)
	t.Run("gateway killed mid-upload", f.gatewayKilledMidUpload)
}

// faultCluster is a cluster with short failure-detection, upload and GC
// timers, an access key, and the gateway in service (replaced when a case
// kills it), driven by the AWS SDK for Go v2 and by requests its signer
// signs.
type faultCluster struct {
	t        *testing.T // the test that owns the processes
	c        *e2e.Cluster
	cl       *client.Client
	metaArgs []string // every meta member's flags, at every start
	gwArgs   []string
	creds    aws.Credentials
	hc       *http.Client

	gw       *e2e.Process
	endpoint string
	s3       *s3sdk.Client
}

// startFaultCluster starts 3 meta members and 6 storage nodes, creates an
// access key and starts a gateway.
func startFaultCluster(t *testing.T) *faultCluster {
	t.Helper()
	secretFile, metaArgs := secretFiles(t, t.TempDir())
	metaArgs = append(metaArgs, "--node-down-after", "2s", "--repair-after", "1s",
		"--gc-grace", "0s", "--max-upload-duration", faultMaxUpload.String())
	c := e2e.StartCluster(t, e2e.ClusterOptions{StorageNodes: 6, MetaArgs: metaArgs, StorageArgs: []string{"--gc-interval", "1s"}})
	key := createKey(t, c, "s3 fault tests", "*:admin")
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	f := &faultCluster{t: t, c: c, cl: c.Client(), metaArgs: metaArgs,
		gwArgs: []string{"s3", "--listen", "127.0.0.1:0", "--meta", c.MetaAddrs(), "--cluster-secret-file", secretFile, "--log-level", "debug"},
		creds:  aws.Credentials{AccessKeyID: key.ID, SecretAccessKey: key.Secret}, hc: &http.Client{Transport: tr}}
	f.startGateway()
	return f
}

// startGateway starts a gateway process and points f.s3 at it.
func (f *faultCluster) startGateway() {
	f.gw = e2e.Start(f.t, f.gwArgs...)
	f.endpoint = "http://" + f.gw.Addr
	f.s3 = s3sdk.New(s3sdk.Options{Region: "us-east-1", Credentials: credentials.StaticCredentialsProvider{Value: f.creds},
		BaseEndpoint: aws.String(f.endpoint), UsePathStyle: true, HTTPClient: f.hc,
		Retryer: aws.NopRetryer{}}) // every failure counts
}

// heal brings back every process an earlier case killed and waits until
// meta hears from every storage node and no repair is left.
func (f *faultCluster) heal(t *testing.T) {
	t.Helper()
	for _, m := range f.c.Metas {
		if m.Proc.Exited() {
			f.restartMeta(t, m)
		}
	}
	for _, s := range f.c.Storage {
		if s.Proc.Exited() {
			f.c.StartStorage(s)
		}
	}
	f.c.WaitNodesUp(len(f.c.Storage))
	if f.gw.Exited() {
		f.startGateway()
	}
	await.TrueWhy(t, 30*time.Second, "no clip degraded and no repair queued", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := f.cl.ClusterStatus(ctx)
		if err != nil {
			return false, err.Error()
		}
		return st.DegradedClips == 0 && st.Repair.QueueShards == 0 && st.RepairsInFlight == 0,
			fmt.Sprintf("%d degraded clips, %d shards queued, %d repairs in flight", st.DegradedClips, st.Repair.QueueShards, st.RepairsInFlight)
	})
}

// restartMeta starts a killed member again, with the flags it first had
// (but --bootstrap or --join), and waits until it knows the leader and has
// applied what the leader had applied.
func (f *faultCluster) restartMeta(t *testing.T, m *e2e.MetaMember) {
	t.Helper()
	var applied uint64
	await.TrueWhy(t, 20*time.Second, "a meta leader", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := f.cl.ClusterStatus(ctx)
		if err != nil {
			return false, err.Error()
		}
		applied = st.AppliedIndex
		return true, ""
	})
	m.Start(f.t, f.metaArgs...)
	await.TrueWhy(t, 20*time.Second, m.ID+" caught up", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := m.Client.ClusterStatus(ctx, &metapb.ClusterStatusRequest{Read: &metapb.ReadOptions{Stale: true}})
		if err != nil {
			return false, err.Error()
		}
		return st.LeaderId != "" && st.AppliedIndex >= applied,
			fmt.Sprintf("leader %q, applied %d of the leader's %d", st.LeaderId, st.AppliedIndex, applied)
	})
}

// storageKilledDuringMultipart: part 1 is uploaded with all 6 storage
// nodes up; one node is SIGKILLed while part 2 streams to it (its
// temporary shard file is on disk), and parts 2, 3 and 4 are stored on
// the 5 left (k+1). The upload completes, reads back byte-identical
// (degraded), and once the node is back every shard of every part is OK
// on 6 distinct nodes and fsck --deep is clean.
func (f *faultCluster) storageKilledDuringMultipart(t *testing.T) {
	f.heal(t)
	const bucket, key = "mp-storage", "cam/front/0001.mp4"
	f.mkBucket(t, bucket)
	data := e2e.ClipBytes(101, 3*partSize+777_777)
	id := f.createUpload(t, bucket, key)
	parts := []types.CompletedPart{f.uploadPart(t, bucket, key, id, 1, data[:partSize])}

	victim := f.c.Storage[2]
	part2 := f.startGated(t, http.MethodPut, partPath(bucket, key, id, 2), data[partSize:2*partSize], partSize/2)
	part2.waitGate(t)
	await.TrueWhy(t, 10*time.Second, "part 2 streaming to "+victim.ID, func() (bool, string) {
		n := len(victim.Proc.TempFiles(t, victim.Dir))
		return n > 0, fmt.Sprintf("%d temporary files", n)
	})
	victim.Proc.Kill()
	killed := time.Now()
	part2.open()
	status, hdr, body, err := part2.wait(t)
	if err != nil || status != http.StatusOK {
		t.Fatalf("part 2, %s killed while it streamed: %v, %d %s", victim.ID, err, status, body)
	}
	if want := `"` + md5hex(data[partSize:2*partSize]) + `"`; hdr.Get("ETag") != want {
		t.Fatalf("part 2: ETag %s, want %s", hdr.Get("ETag"), want)
	}
	parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(2), ETag: aws.String(hdr.Get("ETag"))})
	parts = append(parts, f.uploadPart(t, bucket, key, id, 3, data[2*partSize:3*partSize]))
	parts = append(parts, f.uploadPart(t, bucket, key, id, 4, data[3*partSize:]))
	f.complete(t, bucket, key, id, parts, data)
	f.checkObject(t, bucket, key, data)
	f.checkRange(t, bucket, key, data, partSize-1000, partSize+2000) // across parts 1 and 2
	t.Logf("parts 2-4 stored and completed with %s dead, read back degraded %v after the kill",
		victim.ID, time.Since(killed).Round(10*time.Millisecond))

	f.c.StartStorage(victim)
	back := time.Now()
	await.TrueWhy(t, 30*time.Second, "every shard of every part OK on 6 distinct nodes", func() (bool, string) {
		return f.partsFull(bucket, key)
	})
	await.TrueWhy(t, 30*time.Second, "fsck --deep clean", f.c.FsckClean)
	t.Logf("%s back: k+m OK and fsck clean %v later", victim.ID, time.Since(back).Round(10*time.Millisecond))
	f.checkObject(t, bucket, key, data)
}

// storageKilledDuringGets: 6 readers GET three objects of 8 to 12 MiB
// over and over, whole and in random ranges, reading the answers slowly
// (so that the kill lands in the middle of their streams); a storage node
// holding a shard of each is SIGKILLed. Not one GET may fail, and every
// byte must be the object's.
func (f *faultCluster) storageKilledDuringGets(t *testing.T) {
	f.heal(t)
	const bucket = "reads"
	f.mkBucket(t, bucket)
	objects := map[string][]byte{}
	for i, size := range []int{8<<20 + 5, 10<<20 + 333, 12<<20 - 1} {
		key := fmt.Sprintf("clip/%d.mp4", i)
		objects[key] = e2e.ClipBytes(uint64(200+i), size)
		f.put(t, bucket, key, objects[key])
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range objects {
			if !yield(k) {
				return
			}
		}
	})
	victim, data := f.dataShardHolder(t, bucket, keys)
	var (
		mu       sync.Mutex
		failures []error
		killed   atomic.Bool
		inFlight atomic.Int64
		before   atomic.Int64 // GETs done, started before the kill
		after    atomic.Int64 // GETs done, started after it
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for r := range 6 {
		wg.Go(func() {
			rng := mrand.New(mrand.NewPCG(uint64(r), 17))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := keys[(r+i)%len(keys)]
				data := objects[key]
				off, end := 0, len(data)
				if (r+i)%2 == 1 {
					off = rng.IntN(len(data))
					end = off + 1 + rng.IntN(min(len(data)-off, 4<<20))
				}
				started := killed.Load()
				inFlight.Add(1)
				err := f.slowGet(bucket, key, data, off, end)
				inFlight.Add(-1)
				switch {
				case err != nil:
					mu.Lock()
					failures = append(failures, fmt.Errorf("GET %s [%d, %d) (started after the kill: %v): %w", key, off, end, started, err))
					mu.Unlock()
				case started:
					after.Add(1)
				default:
					before.Add(1)
				}
			}
		})
	}
	stopped := false
	defer func() {
		if !stopped {
			close(stop)
			wg.Wait()
		}
	}()
	await.True(t, 30*time.Second, "6 GETs done", func() bool { return before.Load() >= 6 })
	cut := inFlight.Load()
	victim.Proc.Kill()
	killed.Store(true)
	await.TrueWhy(t, 60*time.Second, "6 GETs started after the kill done", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return after.Load() >= 6, fmt.Sprintf("%d done, %d failed", after.Load(), len(failures))
	})
	close(stop)
	wg.Wait()
	stopped = true
	for _, err := range failures {
		t.Error(err)
	}
	t.Logf("%s (holding data shards of %d of the 3 objects) killed with %d GETs in flight: %d GETs before, %d after, %d failed",
		victim.ID, data, cut, before.Load(), after.Load(), len(failures))
	f.c.StartStorage(victim)
	f.c.WaitNodesUp(len(f.c.Storage))
}

// dataShardHolder returns the storage node holding data shards (those a
// read needs when every node is up) of the most of keys, and how many.
func (f *faultCluster) dataShardHolder(t *testing.T, bucket string, keys []string) (*e2e.StorageNode, int) {
	t.Helper()
	held := map[string]int{}
	for _, key := range keys {
		info, err := f.cl.Stat(t.Context(), bucket, key)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range info.Shards {
			if s.Index < info.Profile.DataShards {
				held[s.Node]++
			}
		}
	}
	best := f.c.Storage[0]
	for _, s := range f.c.Storage {
		if held[s.ID] > held[best.ID] {
			best = s
		}
	}
	return best, held[best.ID]
}

// slowGet reads bytes [off, end) of key (the whole object when they span
// it) in 128 KiB reads with a pause after each, and compares them with
// data.
func (f *faultCluster) slowGet(bucket, key string, data []byte, off, end int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	in := &s3sdk.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
	if off > 0 || end < len(data) {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, end-1))
	}
	out, err := f.s3.GetObject(ctx, in)
	if err != nil {
		return err
	}
	defer out.Body.Close()
	if aws.ToInt64(out.ContentLength) != int64(end-off) {
		return fmt.Errorf("Content-Length %d, want %d", aws.ToInt64(out.ContentLength), end-off)
	}
	buf := make([]byte, 128<<10)
	pos := off
	for {
		n, err := out.Body.Read(buf)
		if pos+n > end || !bytes.Equal(buf[:n], data[pos:pos+n]) {
			return fmt.Errorf("bytes at %d differ from the object's", pos)
		}
		pos += n
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("after %d bytes: %w", pos-off, err)
		}
		time.Sleep(3 * time.Millisecond)
	}
	if pos != end {
		return fmt.Errorf("%d bytes, want %d", pos-off, end-off)
	}
	return nil
}

// leaderKilledDuringComplete: CompleteMultipartUpload runs while the meta
// leader is SIGKILLed, round after round, the kill aimed by bisection at
// the moment the Complete commits: between a kill that came before it
// (the Complete answers only once a new leader is elected) and one that
// came after (it answers at once). Each time the outcome must be all or
// nothing: the object whole and the upload gone, or no object and the
// upload with its parts, which a retried Complete then completes. The
// killed member returns before the next round.
func (f *faultCluster) leaderKilledDuringComplete(t *testing.T) {
	f.heal(t)
	const bucket = "complete"
	f.mkBucket(t, bucket)
	// Completes without a fault, to aim the kills.
	calm := time.Hour
	for i := range 2 {
		key := fmt.Sprintf("calm/%d.mp4", i)
		data := e2e.ClipBytes(uint64(300+i), partSize+400_000)
		id := f.createUpload(t, bucket, key)
		parts := []types.CompletedPart{f.uploadPart(t, bucket, key, id, 1, data[:partSize]),
			f.uploadPart(t, bucket, key, id, 2, data[partSize:])}
		start := time.Now()
		f.complete(t, bucket, key, id, parts, data)
		calm = min(calm, time.Since(start))
	}
	lo, hi := time.Duration(0), calm
	for round := range 4 {
		f.heal(t)
		key := fmt.Sprintf("leader-kill/%d.mp4", round)
		data := e2e.ClipBytes(uint64(310+round), partSize+400_000+round)
		id := f.createUpload(t, bucket, key)
		parts := []types.CompletedPart{f.uploadPart(t, bucket, key, id, 1, data[:partSize]),
			f.uploadPart(t, bucket, key, id, 2, data[partSize:])}
		leader, term := f.c.MetaLeader(f.cl)
		type result struct {
			err  error
			took time.Duration
		}
		res := make(chan result, 1)
		delay := (lo + hi) / 2
		start := time.Now()
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := f.s3.CompleteMultipartUpload(ctx, &s3sdk.CompleteMultipartUploadInput{Bucket: aws.String(bucket),
				Key: aws.String(key), UploadId: aws.String(id), MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
			res <- result{err, time.Since(start)}
		}()
		time.Sleep(delay)
		killedAt := time.Since(start)
		leader.Proc.Kill()
		r := <-res
		landed := "before it answered: it waited for a new leader"
		if r.took < killedAt+250*time.Millisecond {
			landed, hi = "after it committed", delay
		} else {
			lo = delay
		}
		outcome := f.checkAllOrNothing(t, bucket, key, id, parts, data, r.err)
		t.Logf("round %d: leader %s (term %d) killed %v into the Complete (%v without a fault), %s; it answered after %v: %v; %s",
			round, leader.ID, term, killedAt.Round(time.Microsecond), calm.Round(time.Microsecond), landed,
			r.took.Round(time.Millisecond), r.err, outcome)
	}
	f.heal(t)
}

// checkAllOrNothing checks the state a Complete that answered err left,
// and ends with the object complete: whole, and the upload gone; or
// absent, the upload listing its parts, and then completed by a retry.
func (f *faultCluster) checkAllOrNothing(t *testing.T, bucket, key, id string, parts []types.CompletedPart, data []byte, err error) string {
	t.Helper()
	ctx := t.Context()
	_, herr := f.s3.HeadObject(ctx, &s3sdk.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	exists := herr == nil
	if herr != nil && apiCode(herr) != "NotFound" {
		t.Fatalf("head %s after the kill: %v", key, herr)
	}
	listed, lerr := f.s3.ListParts(ctx, &s3sdk.ListPartsInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: aws.String(id)})
	if lerr != nil && apiCode(lerr) != "NoSuchUpload" {
		t.Fatalf("list parts of %s after the kill: %v", key, lerr)
	}
	switch {
	case exists && lerr == nil:
		t.Fatalf("%s: the object exists and its upload still lists %d parts", key, len(listed.Parts))
	case exists:
		f.checkObject(t, bucket, key, data)
		if err == nil {
			return "the object is whole, the upload gone"
		}
		// S3 answers a Complete retried after its success with the
		// object; say what this gateway answers.
		_, rerr := f.s3.CompleteMultipartUpload(ctx, &s3sdk.CompleteMultipartUploadInput{Bucket: aws.String(bucket),
			Key: aws.String(key), UploadId: aws.String(id), MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
		return fmt.Sprintf("the Complete failed but the object is whole and the upload gone; a retry answers %v", rerr)
	case lerr != nil:
		t.Fatalf("%s: no object and no upload after the Complete (answered %v)", key, err)
	case err == nil:
		t.Fatalf("%s: the Complete succeeded and there is no object", key)
	}
	var got []string
	for _, p := range listed.Parts {
		got = append(got, fmt.Sprintf("%d %s", aws.ToInt32(p.PartNumber), aws.ToString(p.ETag)))
	}
	var want []string
	for _, p := range parts {
		want = append(want, fmt.Sprintf("%d %s", aws.ToInt32(p.PartNumber), aws.ToString(p.ETag)))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s: no object, and the upload lists parts %v, want %v", key, got, want)
	}
	f.complete(t, bucket, key, id, parts, data)
	f.checkObject(t, bucket, key, data)
	return "no object, the upload with its parts; a retried Complete completed it"
}

// gatewayKilledMidUpload: with a multipart upload of two recorded parts
// and another of one, the gateway is SIGKILLed while a PutObject of 8 MiB
// and a third part stream (each held after its first MiBs, their
// temporary shard files on the nodes) and while a third put of 2 MiB has
// written all of its shards but cannot commit them (every meta member
// frozen). Through a new gateway process: nothing of the cut-off put is
// visible, the held put is absent or whole, the uploads list exactly the
// recorded parts, one is resumed and completed (byte-identical), the
// other aborted; every file the cut-off writes left on the storage nodes
// goes (the temporary files, and the held put's shards if it did not
// commit: GC, past their commit deadline), and fsck --deep is clean.
func (f *faultCluster) gatewayKilledMidUpload(t *testing.T) {
	f.heal(t)
	ctx := t.Context()
	const bucket, resumeKey, abortKey = "gw-kill", "mp/resume.mp4", "mp/abort.mp4"
	const singleKey, heldKey = "single/big.mp4", "single/held.mp4"
	f.mkBucket(t, bucket)
	resumeData := e2e.ClipBytes(401, 2*partSize+1_234_567)
	abortData := e2e.ClipBytes(402, partSize)
	single := e2e.ClipBytes(403, 8<<20+99)
	heldData := e2e.ClipBytes(404, 2<<20+5)
	resumeID := f.createUpload(t, bucket, resumeKey)
	recorded := []types.CompletedPart{f.uploadPart(t, bucket, resumeKey, resumeID, 1, resumeData[:partSize]),
		f.uploadPart(t, bucket, resumeKey, resumeID, 2, resumeData[partSize:2*partSize])}
	abortID := f.createUpload(t, bucket, abortKey)
	abortParts := []types.CompletedPart{f.uploadPart(t, bucket, abortKey, abortID, 1, abortData)}

	before := f.allFiles(t)
	start := time.Now()
	put := f.startGated(t, http.MethodPut, "/"+bucket+"/"+singleKey, single, 3<<20)
	part3 := f.startGated(t, http.MethodPut, partPath(bucket, resumeKey, resumeID, 3), resumeData[2*partSize:], 1<<20)
	held := f.startGated(t, http.MethodPut, "/"+bucket+"/"+heldKey, heldData, 1<<20)
	left, heldShards := f.killGatewayUnder(t, before, []*gatedUpload{put, part3}, held)
	f.startGateway()
	t.Logf("gateway killed %v into the uploads, with %d temporary files of theirs and %d shards of the held put on the nodes; a new gateway on %s",
		time.Since(start).Round(time.Millisecond), len(left), len(heldShards), f.endpoint)

	_, err := f.s3.HeadObject(ctx, &s3sdk.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(singleKey)})
	if apiCode(err) != "NotFound" {
		t.Fatalf("head of the put cut off: %v, want NotFound", err)
	}
	// The held put's CommitPut may have been in a frozen member's socket
	// buffer when the gateway died; whether meta then applies it is a
	// race. Either way the object is all or nothing.
	var visible []string // what a listing may show
	_, err = f.s3.HeadObject(ctx, &s3sdk.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(heldKey)})
	switch {
	case err == nil:
		f.checkObject(t, bucket, heldKey, heldData)
		t.Logf("the held put's commit, sent before the gateway died, was applied: the object is whole")
		visible = []string{heldKey}
	case apiCode(err) != "NotFound":
		t.Fatalf("head of the held put: %v", err)
	default:
		t.Logf("the held put was not committed: its %d shards are orphans", len(heldShards))
		maps.Copy(left, heldShards)
	}
	if listed := f.listKeys(t, bucket); !slices.Equal(listed, visible) {
		t.Fatalf("listed after the kill: %v, want %v", listed, visible)
	}
	f.checkParts(t, bucket, resumeKey, resumeID, recorded)
	f.checkParts(t, bucket, abortKey, abortID, abortParts)

	recorded = append(recorded, f.uploadPart(t, bucket, resumeKey, resumeID, 3, resumeData[2*partSize:]))
	f.complete(t, bucket, resumeKey, resumeID, recorded, resumeData)
	f.checkObject(t, bucket, resumeKey, resumeData)
	f.abort(t, bucket, abortKey, abortID)
	f.put(t, bucket, singleKey, single) // the put again, whole
	f.checkObject(t, bucket, singleKey, single)

	await.TrueWhy(t, 30*time.Second, "the cut-off writes' files removed and orphan shards collected", func() (bool, string) {
		now := f.allFiles(t)
		var still []string
		for name := range left {
			if now[name] {
				still = append(still, name)
			}
		}
		return len(still) == 0, fmt.Sprintf("%d left: %v", len(still), still)
	})
	// Past the commit deadline of the cut-off writes, fsck counts any
	// shard of theirs still on a node as an orphan.
	if d := time.Until(start.Add(faultMaxUpload + time.Second)); d > 0 {
		time.Sleep(d)
	}
	await.TrueWhy(t, 30*time.Second, "fsck --deep clean", f.c.FsckClean)
	t.Logf("every file of the cut-off writes gone and fsck clean %v after the kill", time.Since(start).Round(100*time.Millisecond))
}

// killGatewayUnder SIGKILLs the gateway while the streaming requests are
// held at their gates and the held one has written all of its shards but
// cannot commit them (every meta member frozen until the gateway is
// dead). It checks that no request succeeded and returns the temporary
// files the writes had on the nodes and the held put's shard files.
func (f *faultCluster) killGatewayUnder(t *testing.T, before map[string]bool, streaming []*gatedUpload, held *gatedUpload) (tmp, heldShards map[string]bool) {
	t.Helper()
	all := append(slices.Clone(streaming), held)
	for _, u := range all {
		u.waitGate(t)
	}
	await.TrueWhy(t, 10*time.Second, "every write streaming to 6 nodes", func() (bool, string) {
		tmp = newFiles(before, f.allFiles(t))
		return len(tmp) >= 6*len(all), fmt.Sprintf("%d new files on the nodes", len(tmp))
	})
	f.freezeMeta(t)
	held.open()
	heldShards = map[string]bool{}
	await.TrueWhy(t, 10*time.Second, "the held put's 6 shards written", func() (bool, string) {
		clear(heldShards)
		for name := range newFiles(before, f.allFiles(t)) {
			if strings.Contains(name, "/shards/") && !strings.Contains(name, "/#") { // named: linked
				heldShards[name] = true
			}
		}
		return len(heldShards) >= 6, fmt.Sprintf("%d shard files", len(heldShards))
	})
	f.gw.Kill()
	f.thawMeta(t)
	for _, u := range all {
		u.open() // the client streams on, into a dead connection
		if status, _, body, err := u.wait(t); err == nil {
			t.Fatalf("a request cut off by the gateway's death answered %d %s", status, body)
		}
	}
	return tmp, heldShards
}

// listKeys lists a bucket's keys (one page).
func (f *faultCluster) listKeys(t *testing.T, bucket string) []string {
	t.Helper()
	list, err := f.s3.ListObjectsV2(t.Context(), &s3sdk.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("list %s: %v", bucket, err)
	}
	var keys []string
	for _, o := range list.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

// abort aborts an upload and checks that it is gone, and that the bucket
// has no upload left.
func (f *faultCluster) abort(t *testing.T, bucket, key, id string) {
	t.Helper()
	ctx := t.Context()
	if _, err := f.s3.AbortMultipartUpload(ctx, &s3sdk.AbortMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key),
		UploadId: aws.String(id)}); err != nil {
		t.Fatalf("abort %s: %v", key, err)
	}
	_, err := f.s3.ListParts(ctx, &s3sdk.ListPartsInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: aws.String(id)})
	if apiCode(err) != "NoSuchUpload" {
		t.Fatalf("list parts of the aborted upload: %v, want NoSuchUpload", err)
	}
	uploads, err := f.s3.ListMultipartUploads(ctx, &s3sdk.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil || len(uploads.Uploads) != 0 {
		t.Fatalf("list uploads: %v, %d left, want none", err, len(uploads.Uploads))
	}
}

// freezeMeta stops (SIGSTOP) every meta member until thawMeta, or the
// test's end.
func (f *faultCluster) freezeMeta(t *testing.T) {
	t.Helper()
	for _, m := range f.c.Metas {
		if err := m.Proc.Freeze(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, m := range f.c.Metas {
			m.Proc.Thaw() // again, in case the test failed while they were frozen
		}
	})
}

// thawMeta lets the members freezeMeta stopped run on.
func (f *faultCluster) thawMeta(t *testing.T) {
	t.Helper()
	for _, m := range f.c.Metas {
		if err := m.Proc.Thaw(); err != nil {
			t.Fatal(err)
		}
	}
}

// checkParts checks that an upload lists exactly parts.
func (f *faultCluster) checkParts(t *testing.T, bucket, key, id string, parts []types.CompletedPart) {
	t.Helper()
	out, err := f.s3.ListParts(t.Context(), &s3sdk.ListPartsInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: aws.String(id)})
	if err != nil {
		t.Fatalf("list parts of %s: %v", key, err)
	}
	var got, want []string
	for _, p := range out.Parts {
		got = append(got, fmt.Sprintf("%d %s", aws.ToInt32(p.PartNumber), aws.ToString(p.ETag)))
	}
	for _, p := range parts {
		want = append(want, fmt.Sprintf("%d %s", aws.ToInt32(p.PartNumber), aws.ToString(p.ETag)))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s lists parts %v, want %v", key, got, want)
	}
}

func (f *faultCluster) mkBucket(t *testing.T, bucket string) {
	t.Helper()
	if _, err := f.s3.CreateBucket(t.Context(), &s3sdk.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket %s: %v", bucket, err)
	}
}

func (f *faultCluster) put(t *testing.T, bucket, key string, data []byte) {
	t.Helper()
	if _, err := f.s3.PutObject(t.Context(), &s3sdk.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Body: bytes.NewReader(data)}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func (f *faultCluster) createUpload(t *testing.T, bucket, key string) string {
	t.Helper()
	out, err := f.s3.CreateMultipartUpload(t.Context(), &s3sdk.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key),
		ContentType: aws.String("video/mp4")})
	if err != nil {
		t.Fatalf("create upload of %s: %v", key, err)
	}
	return aws.ToString(out.UploadId)
}

func (f *faultCluster) uploadPart(t *testing.T, bucket, key, id string, n int32, data []byte) types.CompletedPart {
	t.Helper()
	out, err := f.s3.UploadPart(t.Context(), &s3sdk.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(key),
		UploadId: aws.String(id), PartNumber: aws.Int32(n), Body: bytes.NewReader(data)})
	if err != nil {
		t.Fatalf("upload part %d of %s: %v", n, key, err)
	}
	if want := `"` + md5hex(data) + `"`; aws.ToString(out.ETag) != want {
		t.Fatalf("part %d of %s: ETag %s, want %s", n, key, aws.ToString(out.ETag), want)
	}
	return types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.ETag}
}

// complete completes an upload of data and checks the answer's ETag.
func (f *faultCluster) complete(t *testing.T, bucket, key, id string, parts []types.CompletedPart, data []byte) {
	t.Helper()
	out, err := f.s3.CompleteMultipartUpload(t.Context(), &s3sdk.CompleteMultipartUploadInput{Bucket: aws.String(bucket),
		Key: aws.String(key), UploadId: aws.String(id), MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	if err != nil {
		t.Fatalf("complete %s: %v", key, err)
	}
	if want := `"` + multipartETag(data, partSize) + `"`; aws.ToString(out.ETag) != want {
		t.Fatalf("complete %s: ETag %s, want %s", key, aws.ToString(out.ETag), want)
	}
}

// checkObject reads key whole and compares it (bytes, length, and the
// multipart or plain ETag) with data.
func (f *faultCluster) checkObject(t *testing.T, bucket, key string, data []byte) {
	t.Helper()
	out, err := f.s3.GetObject(t.Context(), &s3sdk.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	got, err := io.ReadAll(out.Body)
	if err != nil || sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("get %s: %d bytes (%v), not the %d stored", key, len(got), err, len(data))
	}
	etag := aws.ToString(out.ETag)
	if etag != `"`+md5hex(data)+`"` && etag != `"`+multipartETag(data, partSize)+`"` {
		t.Fatalf("get %s: ETag %s is neither the MD5 nor the multipart ETag of the data", key, etag)
	}
}

// checkRange reads bytes [off, end) of key and compares them with data's.
func (f *faultCluster) checkRange(t *testing.T, bucket, key string, data []byte, off, end int) {
	t.Helper()
	out, err := f.s3.GetObject(t.Context(), &s3sdk.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, end-1))})
	if err != nil {
		t.Fatalf("get %s [%d, %d): %v", key, off, end, err)
	}
	defer out.Body.Close()
	if got, err := io.ReadAll(out.Body); err != nil || !bytes.Equal(got, data[off:end]) {
		t.Fatalf("get %s [%d, %d): %d bytes (%v), not the object's", key, off, end, len(got), err)
	}
}

// partsFull reports whether every part of key has k+m OK shards on
// distinct nodes, as meta records them; otherwise it says what is not.
func (f *faultCluster) partsFull(bucket, key string) (bool, string) {
	var m *e2e.MetaMember
	for _, mm := range f.c.Metas {
		if !mm.Proc.Exited() {
			m = mm
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := m.Client.GetClip(ctx, &metapb.GetClipRequest{Bucket: bucket, Key: key})
	if err != nil {
		return false, err.Error()
	}
	for i, p := range resp.Clip.Parts {
		if want := int(p.Profile.DataShards + p.Profile.ParityShards); len(p.Shards) != want {
			return false, fmt.Sprintf("part %d: %d shards, want %d", i, len(p.Shards), want)
		}
		nodes := map[string]bool{}
		for _, s := range p.Shards {
			if s.State != metapb.ShardState_SHARD_STATE_OK || s.NodeId == "" || nodes[s.NodeId] {
				return false, fmt.Sprintf("part %d: shard %d on %q is %v (or a second one there)", i, s.Index, s.NodeId, s.State)
			}
			nodes[s.NodeId] = true
		}
	}
	return true, ""
}

// files lists a storage node's files under its data directory's sub
// (shards or tmp), as "node/path".
func (f *faultCluster) files(t *testing.T, s *e2e.StorageNode, sub string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(s.Dir, sub), func(path string, d fs.DirEntry, err error) error {
		switch {
		case errors.Is(err, fs.ErrNotExist): // renamed or removed under the walk
			return nil
		case err != nil:
			return err
		case d.IsDir():
			return nil
		}
		rel, err := filepath.Rel(s.Dir, path)
		out = append(out, s.ID+"/"+filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// allFiles is the set of every storage node's shard and temporary files
// (those of writes in progress have no name on disk: see e2e.TempFiles).
func (f *faultCluster) allFiles(t *testing.T) map[string]bool {
	t.Helper()
	set := map[string]bool{}
	for _, s := range f.c.Storage {
		for _, name := range f.files(t, s, "shards") {
			set[name] = true
		}
		for _, name := range s.Proc.TempFiles(t, s.Dir) {
			rel, err := filepath.Rel(s.Dir, name)
			if err != nil {
				t.Fatal(err)
			}
			set[s.ID+"/"+filepath.ToSlash(rel)] = true
		}
	}
	return set
}

// newFiles is the files of now not in before.
func newFiles(before, now map[string]bool) map[string]bool {
	out := map[string]bool{}
	for name := range now {
		if !before[name] {
			out[name] = true
		}
	}
	return out
}

func partPath(bucket, key, id string, n int) string {
	return fmt.Sprintf("/%s/%s?partNumber=%d&uploadId=%s", bucket, key, n, id)
}

// apiCode is the S3 error code of an SDK error, "" if none.
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// gatedUpload is a PUT (signed by the SDK's signer, UNSIGNED-PAYLOAD,
// with its Content-Length) whose body stops after its first gate bytes
// until open is called: a client that streams slowly, held at a point the
// test chooses.
type gatedUpload struct {
	body *gatedBody
	done chan struct{} // closed when the answer (or the error) is in

	status int
	header http.Header
	answer []byte
	err    error
}

// startGated sends the request in a goroutine of its own; the test's
// cleanup unblocks the body and waits for the goroutine.
func (f *faultCluster) startGated(t *testing.T, method, pathQuery string, data []byte, gate int) *gatedUpload {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	u := &gatedUpload{body: &gatedBody{ctx: ctx, data: data, gate: gate, reached: make(chan struct{}), opened: make(chan struct{}),
		closed: make(chan struct{})}, done: make(chan struct{})}
	req, err := http.NewRequestWithContext(ctx, method, f.endpoint+pathQuery, u.body)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	req.ContentLength = int64(len(data))
	req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	if err := v4.NewSigner().SignHTTP(ctx, f.creds, req, "UNSIGNED-PAYLOAD", "s3", "us-east-1", time.Now()); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		defer close(u.done)
		defer cancel()
		resp, err := f.hc.Do(req)
		if err != nil {
			u.err = err
			return
		}
		defer resp.Body.Close()
		u.status, u.header = resp.StatusCode, resp.Header
		u.answer, u.err = io.ReadAll(resp.Body)
	}()
	t.Cleanup(func() {
		u.body.Close()
		<-u.done
	})
	return u
}

// waitGate waits until the body has given its first gate bytes.
func (u *gatedUpload) waitGate(t *testing.T) {
	t.Helper()
	select {
	case <-u.body.reached:
	case <-u.done:
		t.Fatalf("the request ended before its body reached the gate: %v, %d %s", u.err, u.status, u.answer)
	case <-time.After(20 * time.Second):
		t.Fatal("the body did not reach its gate within 20 s")
	}
}

// open lets the rest of the body through. Idempotent.
func (u *gatedUpload) open() { u.body.open.Do(func() { close(u.body.opened) }) }

// wait waits (at most a minute, the request's own deadline) for the answer.
func (u *gatedUpload) wait(t *testing.T) (int, http.Header, []byte, error) {
	t.Helper()
	select {
	case <-u.done:
	case <-time.After(70 * time.Second):
		t.Fatal("no answer within 70 s")
	}
	return u.status, u.header, u.answer, u.err
}

// gatedBody reads data, stopping after gate bytes until opened (or
// closed, or ctx ends: then it fails).
type gatedBody struct {
	ctx     context.Context
	data    []byte
	off     int // read by one goroutine at a time: the transport's
	gate    int
	reached chan struct{} // closed once gate bytes are read
	opened  chan struct{}
	closed  chan struct{}
	once    sync.Once // of reached
	open    sync.Once // of opened
	close   sync.Once // of closed
}

func (b *gatedBody) Read(p []byte) (int, error) {
	if b.off == b.gate {
		b.once.Do(func() { close(b.reached) })
		select {
		case <-b.opened:
		case <-b.closed:
			return 0, errors.New("gated body closed")
		case <-b.ctx.Done():
			return 0, b.ctx.Err()
		}
	}
	if b.off == len(b.data) {
		return 0, io.EOF
	}
	end := len(b.data)
	if b.off < b.gate {
		end = b.gate
	}
	n := copy(p, b.data[b.off:end])
	b.off += n
	return n, nil
}

func (b *gatedBody) Close() error {
	b.close.Do(func() { close(b.closed) })
	return nil
}
