package loadgen

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/s3gw"
	"github.com/clipstore/clipstore/internal/sigv4"
)

// The credential of the test gateway.
const (
	testAccessKey = "CLIPSTORETESTKEY"
	testSecret    = "test/secret+key=="
)

// testKeys is the gateway's KeyFunc of the test credential.
func testKeys(_ context.Context, accessKey, date, region, service string) (client.SigningKey, error) {
	if accessKey != testAccessKey {
		return client.SigningKey{}, fmt.Errorf("%w: %s", sigv4.ErrUnknownAccessKey, accessKey)
	}
	return client.SigningKey{Key: sigv4.DeriveKey(testSecret, date, region, service),
		Grants: client.Policy{{Bucket: "*", Access: client.AccessAdmin}}}, nil
}

// startGateway serves an S3 gateway over the cluster cl talks to on plain
// HTTP in this process, and returns an S3Store of it for concurrency
// workers, and its URL. Both stop at cleanup. The requests that do not
// look as S3Store means to send them are noted in odd.
func startGateway(t *testing.T, cl *client.Client, concurrency int, odd *oddRequests) (st *S3Store, endpoint string) {
	t.Helper()
	gw, err := s3gw.New(s3gw.Config{Client: cl, Keys: testKeys, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		odd.check(r)
		gw.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	st, err = NewS3Store(S3Config{Endpoint: srv.URL, AccessKey: testAccessKey, SecretKey: testSecret, Concurrency: concurrency})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st, srv.URL
}

// oddRequests are the requests that hashed their payload, carried a
// checksum or an Expect header, or a body of unknown length (aws-chunked).
type oddRequests struct {
	mu struct {
		sync.Mutex
		list []string
	}
}

func (o *oddRequests) check(r *http.Request) {
	var why []string
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "UNSIGNED-PAYLOAD" {
		why = append(why, "X-Amz-Content-Sha256: "+h)
	}
	for name := range r.Header {
		if n := strings.ToLower(name); strings.HasPrefix(n, "x-amz-checksum-") || n == "x-amz-sdk-checksum-algorithm" ||
			n == "x-amz-trailer" || n == "x-amz-decoded-content-length" || n == "expect" || n == "content-encoding" {
			why = append(why, name+": "+r.Header.Get(name))
		}
	}
	if r.Method == http.MethodPut && r.ContentLength < 0 {
		why = append(why, "a body of unknown length")
	}
	if len(why) > 0 {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.mu.list = append(o.mu.list, r.Method+" "+r.URL.Path+": "+strings.Join(why, ", "))
	}
}

func (o *oddRequests) get() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.mu.list)
}

// TestS3Store runs the workloads through an S3 gateway over a real
// cluster: the same counts, the same verification, and damage reported.
func TestS3Store(t *testing.T) {
	cl := startCluster(t)
	var odd oddRequests
	st, endpoint := startGateway(t, cl, 3, &odd)
	sizes := []int64{1000, 200_000} // one block; several blocks, the last partial

	t.Run("put", func(t *testing.T) {
		rep := run(t, st, Config{Workload: WorkloadPut, Sizes: sizes, Concurrency: 3, Count: 12})
		checkClean(t, cl, rep)
		if got := counts(rep); len(got) != 2 || got["put/1000B"] != 6 || got["put/200000B"] != 6 {
			t.Fatalf("counts %v, want 6 puts of each size", got)
		}
	})

	// What an S3 put stores is the content, byte for byte: the native
	// client reads it back through a verifier.
	t.Run("put then native get", func(t *testing.T) {
		rep := run(t, st, Config{Workload: WorkloadPut, Sizes: sizes, Concurrency: 2, Count: 4, Keep: true, Prefix: "cross/"})
		keys := listed(t, cl, rep.Bucket, "cross/")
		if len(keys) != 4 || rep.Errors() != 0 {
			t.Fatalf("kept %q, %d errors", keys, rep.Errors())
		}
		for i, key := range keys {
			var n int64
			if _, err := fmt.Sscanf(key, "cross/put/%d", &n); err != nil {
				t.Fatalf("key %q: %v", key, err)
			}
			size := sizes[n%2]
			v := NewContent(0).NewVerifier(key, size)
			if _, err := cl.Get(t.Context(), rep.Bucket, key, v, nil); err != nil || v.Err() != nil {
				t.Fatalf("clip %d, %s: %v, %v", i, key, err, v.Err())
			}
			if err := cl.Delete(t.Context(), rep.Bucket, key); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("get", func(t *testing.T) {
		rep := run(t, st, Config{Workload: WorkloadGet, Sizes: sizes, Concurrency: 3, Count: 20, Objects: 3})
		checkClean(t, cl, rep)
		for _, r := range rep.Results {
			if r.Count != 10 || r.Bytes != 10*r.Size || r.BytesVerified != r.Bytes {
				t.Fatalf("result %+v: want 10 gets, every byte read verified", r)
			}
		}
	})

	t.Run("get range", func(t *testing.T) { testGetRange(t, st, cl, sizes) })

	t.Run("mixed and list", func(t *testing.T) {
		rep := run(t, st, Config{Workload: WorkloadMixed, Sizes: []int64{3000}, Concurrency: 3, Count: 60, Objects: 3})
		checkClean(t, cl, rep)
		rep = run(t, st, Config{Workload: WorkloadList, Sizes: []int64{100}, Concurrency: 2, Count: 4, Objects: 15})
		checkClean(t, cl, rep)
		if len(rep.Results) != 1 || rep.Results[0].Entries != 4*15 {
			t.Fatalf("list results %+v", rep.Results)
		}
	})

	testDamageReported(t, st, cl, sizes)

	if reqs := odd.get(); len(reqs) > 0 {
		t.Errorf("%d requests not as meant, the first: %s", len(reqs), reqs[0])
	}

	t.Run("a wrong secret fails the run", func(t *testing.T) {
		bad, err := NewS3Store(S3Config{Endpoint: endpoint, AccessKey: testAccessKey, SecretKey: "wrong"})
		if err != nil {
			t.Fatal(err)
		}
		defer bad.Close()
		_, err = Run(t.Context(), bad, Config{Workload: WorkloadPut, Sizes: []int64{10}, Count: 1})
		if err == nil || !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
			t.Fatalf("Run with a wrong secret: %v", err)
		}
	})
}

func TestS3Config(t *testing.T) {
	for _, tc := range []struct {
		cfg  S3Config
		want string
	}{
		{S3Config{AccessKey: "a", SecretKey: "s"}, "Endpoint"},
		{S3Config{Endpoint: "ftp://host:21", AccessKey: "a", SecretKey: "s"}, "Endpoint"},
		{S3Config{Endpoint: "127.0.0.1:9000", AccessKey: "a"}, "SecretKey"},
		{S3Config{Endpoint: "127.0.0.1:9000", AccessKey: "a", SecretKey: "s", Concurrency: -1}, "Concurrency"},
	} {
		if _, err := NewS3Store(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewS3Store(%+v) = %v, want an error about %s", tc.cfg, err, tc.want)
		}
	}
	st, err := NewS3Store(S3Config{Endpoint: "127.0.0.1:9000", AccessKey: "a", SecretKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got := *st.client.Options().BaseEndpoint; got != "http://127.0.0.1:9000" || st.transport.MaxIdleConnsPerHost != DefaultConcurrency {
		t.Fatalf("endpoint %q, %d idle connections per host", got, st.transport.MaxIdleConnsPerHost)
	}
}

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in          string
		first, size int64
		ok          bool
	}{
		{"bytes 0-99/1000", 0, 1000, true},
		{"bytes 900-999/1000", 900, 1000, true},
		{"", 0, 0, false},
		{"bytes 0-99/*", 0, 0, false},
		{"bytes */1000", 0, 0, false},
		{"items 0-99/1000", 0, 0, false},
	} {
		first, size, err := parseContentRange(tc.in)
		if (err == nil) != tc.ok || first != tc.first || size != tc.size {
			t.Errorf("parseContentRange(%q) = %d, %d, %v", tc.in, first, size, err)
		}
	}
}
