package s3gw

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/sigv4"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultRegion is the region a gateway serves when Config.Region is
// empty.
const DefaultRegion = "us-east-1"

// Config configures a Gateway.
type Config struct {
	// Client is the cluster's client; the gateway does not close it.
	Client *client.Client
	// Keys gives the signing keys requests are verified with and the
	// grants they are authorized by (KeyCache over ClientKeys in
	// production).
	Keys KeyFunc
	// Region is the one region requests may be signed for (default
	// DefaultRegion).
	Region string
	// Domain, if set, turns on virtual-host-style addressing: a request to
	// the host <bucket>.<Domain> names that bucket. Other hosts are
	// path-style.
	Domain string
	// Logger receives the gateway's logs; nil discards them.
	Logger *slog.Logger
	// Audit receives a record per refused request (AccessDenied by a
	// key's grants); nil: Logger.
	Audit *slog.Logger
	// Now is the clock requests are checked against (default time.Now).
	Now func() time.Time
	// SettingsTTL is how long buckets' settings (their ETag mode) are
	// kept between reads from meta (default DefaultSettingsTTL).
	SettingsTTL time.Duration
}

// Gateway is the S3 gateway's http.Handler. It keeps no state between
// requests but its metrics; it is safe for concurrent use.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	metrics  *metrics
	settings *settingsCache
	// md5 hashes the bodies of concurrent writes together, in the lanes
	// of the CPU's vector units (AVX-512 or AVX2; crypto/md5 without):
	// a fraction of the CPU per byte of one crypto/md5 per body.
	md5  *md5Servers
	bufs sync.Pool // *[]byte of copyBufSize, for GetObject

	skipBudget int // defaultSkipBudget; tests lower it
	// copySourceHook, if set, wraps the source of every copy; tests slow
	// or interrupt copies with it. Nil outside tests.
	copySourceHook func(io.Reader) io.Reader
	// keepAliveAfter is how long a copy may run before its answer begins
	// (nanoseconds; defaultKeepAliveAfter, tests shorten it).
	keepAliveAfter atomic.Int64
}

// New returns a gateway for cfg.
func New(cfg Config) (*Gateway, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("s3gw config: Client is required")
	case cfg.Keys == nil:
		return nil, errors.New("s3gw config: Keys is required")
	case strings.ContainsAny(cfg.Domain, "/: "):
		return nil, fmt.Errorf("s3gw config: Domain %q: want a DNS name without port", cfg.Domain)
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Audit == nil {
		cfg.Audit = cfg.Logger
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Domain = strings.ToLower(strings.TrimSuffix(cfg.Domain, "."))
	g := &Gateway{cfg: cfg, log: cfg.Logger, metrics: newMetrics(), skipBudget: defaultSkipBudget,
		settings: newSettingsCache(cfg.Client, cfg.SettingsTTL, cfg.Now), md5: &md5Servers{}}
	g.keepAliveAfter.Store(int64(defaultKeepAliveAfter))
	g.bufs.New = func() any {
		b := make([]byte, copyBufSize)
		return &b
	}
	return g, nil
}

// Close releases what the gateway holds (its MD5 server's goroutine),
// once it serves no more requests.
func (g *Gateway) Close() { g.md5.Close() }

// newMD5 is the MD5 of one body, a lane of the gateway's MD5 server; the
// caller closes it (digester.stop).
func (g *Gateway) newMD5() hash.Hash { return g.md5.NewHash() }

// Collectors returns the gateway's metrics, for the caller to register.
func (g *Gateway) Collectors() []prometheus.Collector { return g.metrics.collectors() }

// request is one S3 request as the gateway routes it.
type request struct {
	*http.Request
	id          string
	op          string // the operation, for metrics and logs
	bucket, key string
	query       url.Values
	auth        *sigv4.Auth
	policy      client.Policy // what the request's access key may do
	bodyBytes   int64         // decoded body bytes read
}

// handler serves one operation. An error it returns is answered as S3's
// error document, unless the response has begun.
type handler func(g *Gateway, w *response, req *request) error

// ServeHTTP authenticates the request, routes it to its operation and
// answers.
func (g *Gateway) ServeHTTP(hw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	g.metrics.inFlight.Inc()
	defer g.metrics.inFlight.Dec()
	w := &response{ResponseWriter: hw}
	req := g.newRequest(r)
	w.Header().Set("x-amz-request-id", req.id)
	w.Header().Set("Server", "clipstore")
	if r.ContentLength == 0 && strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		// net/http sends no "100 Continue" for an empty body, and botocore
		// (boto3, aws-cli v1), which asked for one, then stalls its next
		// request on the same connection for its read timeout: that
		// connection is not reused.
		w.Header().Set("Connection", "close")
	}
	op, h, routeErr := g.route(req)
	req.op = op
	err := g.authenticate(req) // first: no answer but AccessDenied without it
	if err == nil {
		err = routeErr
	}
	if err == nil {
		err = g.authorize(req)
	}
	if err == nil {
		err = h(g, w, req)
	}
	if err != nil {
		g.writeError(w, req, err)
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	g.metrics.observe(req.op, w.status, req.bodyBytes, w.bytes, time.Since(start))
}

// newRequest gives r an id and reads the bucket and key it addresses:
// from the host <bucket>.<Domain> and the path (virtual-host style), or
// from the path /<bucket>/<key> (path style).
func (g *Gateway) newRequest(r *http.Request) *request {
	req := &request{Request: r, id: newRequestID(), query: r.URL.Query()}
	path := strings.TrimPrefix(r.URL.Path, "/")
	if b, ok := g.virtualBucket(r.Host); ok {
		req.bucket, req.key = b, path
	} else {
		req.bucket, req.key, _ = strings.Cut(path, "/")
	}
	return req
}

// virtualBucket returns the bucket a virtual-host-style host names.
func (g *Gateway) virtualBucket(host string) (string, bool) {
	if g.cfg.Domain == "" {
		return "", false
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	b, ok := strings.CutSuffix(host, "."+g.cfg.Domain)
	return b, ok && b != ""
}

// newRequestID returns 16 hex digits, as S3's request ids are.
func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

// authenticate verifies the request's signature. Anonymous requests are
// refused; so is a credential for another region.
func (g *Gateway) authenticate(req *request) error {
	var key client.SigningKey // what Verify fetched: its grants authorize the request
	a, err := sigv4.Verify(req.Context(), req.Request, g.cfg.Now(), g.keys(&key))
	var wrong *wrongRegionError
	switch {
	case errors.As(err, &wrong):
		e := errMalformedAuth.with("The authorization header is malformed; the region '%s' is wrong; expecting '%s'",
			truncate(wrong.region), g.cfg.Region)
		e.region = g.cfg.Region
		return e
	case err != nil:
		return err // a *sigv4.Error, or the KeyFunc's failure (meta unavailable: 503)
	case a.SecurityToken != "":
		return errInvalidToken // the gateway issues no session tokens
	}
	req.auth, req.policy = a, key.Grants
	// Meta authorizes the calls made for the request as the key's: over
	// TLS it takes the assertion from the gateway's certificate.
	req.Request = req.WithContext(client.OnBehalfOf(req.Context(), a.AccessKey))
	return nil
}

// opAccess is the access each operation needs on the request's bucket.
// ListBuckets needs none (it lists the buckets the key has a grant on);
// HeadBucket and GetBucketLocation any. A copy needs read on its source
// besides (checkRead).
var opAccess = map[string]client.Access{
	"GetBucketVersioning": client.AccessRead,
	"ListObjectsV2":       client.AccessRead,
	"ListObjects":         client.AccessRead,
	"GetObject":           client.AccessRead,
	"ClipstorePlan":       client.AccessRead,
	"HeadObject":          client.AccessRead,

	"PutObject":               client.AccessWrite,
	"CopyObject":              client.AccessWrite,
	"DeleteObject":            client.AccessWrite,
	"DeleteObjects":           client.AccessWrite,
	"CreateMultipartUpload":   client.AccessWrite,
	"UploadPart":              client.AccessWrite,
	"UploadPartCopy":          client.AccessWrite,
	"CompleteMultipartUpload": client.AccessWrite,
	"AbortMultipartUpload":    client.AccessWrite,
	"ListParts":               client.AccessWrite,
	"ListMultipartUploads":    client.AccessWrite,

	"CreateBucket": client.AccessAdmin,
	"DeleteBucket": client.AccessAdmin,
}

// authorize checks the request's operation against its key's grants.
func (g *Gateway) authorize(req *request) error {
	switch req.op {
	case "ListBuckets":
		return nil
	case "HeadBucket", "GetBucketLocation":
		if req.policy.AllowsAny(req.bucket) {
			return nil
		}
		return g.denied(req, req.bucket, "any access")
	}
	need, ok := opAccess[req.op]
	if !ok {
		return g.denied(req, req.bucket, req.op) // an operation without a rule is no one's
	}
	if !req.policy.Allows(req.bucket, need) {
		return g.denied(req, req.bucket, need.String())
	}
	return nil
}

// checkRead checks that the request's key may read bucket: a copy's
// source.
func (g *Gateway) checkRead(req *request, bucket string) error {
	if !req.policy.Allows(bucket, client.AccessRead) {
		return g.denied(req, bucket, client.AccessRead.String())
	}
	return nil
}

// denied logs a refusal and returns S3's AccessDenied, saying what was
// refused.
func (g *Gateway) denied(req *request, bucket, what string) error {
	g.cfg.Audit.Info("denied", "id", req.id, "access_key", req.auth.AccessKey, "op", req.op, "bucket", bucket, "needs", what,
		"caller", req.RemoteAddr)
	g.metrics.denied.Inc()
	return errAccessDenied.with("Access Denied: access key %s has no %s access to bucket %q.", req.auth.AccessKey, what, truncate(bucket))
}

// wrongRegionError is a credential scope for a region the gateway does not
// serve.
type wrongRegionError struct{ region string }

func (e *wrongRegionError) Error() string { return "credential scope of region " + e.region }

// keys is cfg.Keys as sigv4.Verify takes it, for the gateway's region
// only; the key it fetches goes to *got too.
func (g *Gateway) keys(got *client.SigningKey) sigv4.KeyFunc {
	return func(ctx context.Context, accessKey, date, region, service string) ([]byte, error) {
		if region != g.cfg.Region {
			return nil, &wrongRegionError{region: region}
		}
		k, err := g.cfg.Keys(ctx, accessKey, date, region, service)
		*got = k
		return k.Key, err
	}
}

// body returns the request's decoded, verified body, counted for the
// metrics.
func (req *request) body() (*sigv4.Reader, io.Reader, error) {
	b, err := req.auth.Body(req.Request)
	if err != nil {
		return nil, nil, err
	}
	return b, &countingReader{r: b, n: &req.bodyBytes}, nil
}

type countingReader struct {
	r io.Reader
	n *int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}

// response records the status and the body bytes of an answer.
type response struct {
	http.ResponseWriter
	status int   // 0 until the header is written
	bytes  int64 // body bytes written
	// keptAlive: a keep-alive sent 200 and the XML declaration; the
	// outcome, result or error, is the rest of the body.
	keptAlive bool
}

func (w *response) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *response) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *response) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// xmlNS is the namespace of S3's XML documents.
const xmlNS = "http://s3.amazonaws.com/doc/2006-03-01/"

// writeXML answers status with v as an XML document.
func writeXML(w *response, status int, v any) {
	body, err := xml.Marshal(v)
	if err != nil { // a bug: every document is a plain struct
		status, body = http.StatusInternalServerError, []byte("<Error><Code>InternalError</Code></Error>")
	}
	if w.keptAlive { // the status and the declaration are out
		w.Write(body)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", fmt.Sprint(len(xml.Header)+len(body)))
	w.WriteHeader(status)
	io.WriteString(w, xml.Header)
	w.Write(body)
}

// truncate shortens what a client sent for an error message.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
