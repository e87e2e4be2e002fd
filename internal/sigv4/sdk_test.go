package sigv4_test

// Requests signed by the AWS SDK for Go v2's signer, as its S3 client signs
// them, sent over HTTP to a server that verifies them.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go/encoding/httpbinding"
	"github.com/clipstore/clipstore/internal/sigv4"
)

const (
	testAccessKey = "CLIPSTOREKEY1"
	testSecret    = "s3cr3t/with+odd=chars"
	testRegion    = "eu-west-3"
)

var (
	testKeys  = secretKeys(map[string]string{testAccessKey: testSecret})
	testCreds = aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: testSecret}
	// signTime is when the test requests are signed; the server's clock
	// reads serverTime unless a test says otherwise.
	signTime   = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	serverTime = signTime.Add(time.Minute)
)

// verifyServer is an S3 endpoint that verifies each request at the time
// now and answers 200 with the object's bytes, or the status of the error
// with its code in X-Error-Code. X-Path echoes the decoded path.
func verifyServer(t *testing.T, now time.Time, keys sigv4.KeyFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Path", r.URL.Path)
		w.Header().Set("X-Request-Uri", r.RequestURI)
		b, err := verifyAndRead(r, now, keys)
		var e *sigv4.Error
		switch {
		case errors.As(err, &e):
			w.Header().Set("X-Error-Code", e.Code)
			http.Error(w, e.Message, e.HTTPStatus)
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		default:
			w.Write(b)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func verifyAndRead(r *http.Request, now time.Time, keys sigv4.KeyFunc) ([]byte, error) {
	a, err := sigv4.Verify(r.Context(), r, now, keys)
	if err != nil {
		return nil, err
	}
	body, err := a.Body(r)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(body)
}

// response is what verifyServer answered.
type response struct {
	status          int
	code, path, uri string
	body            string
}

func do(t *testing.T, c *http.Client, req *http.Request) response {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	h := resp.Header
	return response{resp.StatusCode, h.Get("X-Error-Code"), h.Get("X-Path"), h.Get("X-Request-Uri"), string(b)}
}

// expect checks an answer: success with the body, or the error code of
// want.
func (r response) expect(t *testing.T, want *sigv4.Error, body string) {
	t.Helper()
	switch {
	case want == nil && r.status != http.StatusOK:
		t.Fatalf("got %d %s: %s", r.status, r.code, r.body)
	case want == nil && r.body != body:
		t.Fatalf("got body %q, want %q", r.body, body)
	case want != nil && (r.status != want.HTTPStatus || r.code != want.Code):
		t.Fatalf("got %d %s (%s), want %d %s", r.status, r.code, strings.TrimSpace(r.body), want.HTTPStatus, want.Code)
	}
}

// awkwardKeys are object keys that S3 clients must encode.
var awkwardKeys = []string{
	"plain.txt",
	"my file.txt",
	"a+b.txt",
	"ünïcødé/文件.bin",
	"tilde~name",
	"k=v&x=y",
	"dir//double/slash",
	"dir/",
	"sub-delims!$'()*,;:@",
	"100%.txt",
	"question?hash#",
	"-_.~ unreserved",
}

// objectURL is the URL of key in bucket on srv, the key encoded as the
// SDK's S3 client encodes it (every byte but unreserved ones and '/').
func objectURL(srv *httptest.Server, key, rawQuery string) string {
	u := srv.URL + "/bucket/" + httpbinding.EscapePath(key, false)
	if rawQuery != "" {
		u += "?" + rawQuery
	}
	return u
}

// signHeader signs req with an Authorization header as the S3 client does:
// x-amz-content-sha256 set to payloadHash, the path not escaped again.
func signHeader(t *testing.T, req *http.Request, payloadHash string, at time.Time) {
	t.Helper()
	req.Header.Set("X-Amz-Content-Sha256", payloadHash)
	err := v4.NewSigner().SignHTTP(context.Background(), testCreds, req, payloadHash, "s3", testRegion, at,
		func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	if err != nil {
		t.Fatalf("SignHTTP: %v", err)
	}
}

// presign presigns req for expires and returns the request to send.
func presign(t *testing.T, req *http.Request, expires time.Duration, at time.Time, body string) *http.Request {
	t.Helper()
	q := req.URL.Query()
	q.Set("X-Amz-Expires", strconv.Itoa(int(expires/time.Second)))
	req.URL.RawQuery = q.Encode()
	u, headers, err := v4.NewSigner().PresignHTTP(context.Background(), testCreds, req, "UNSIGNED-PAYLOAD", "s3", testRegion, at,
		func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	if err != nil {
		t.Fatalf("PresignHTTP: %v", err)
	}
	out, err := http.NewRequest(req.Method, u, strings.NewReader(body))
	if err != nil {
		t.Fatalf("presigned URL %s: %v", u, err)
	}
	for name, v := range headers {
		if name != "Host" {
			out.Header[name] = v
		}
	}
	return out
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Keys with awkward characters, signed by the SDK with headers and
// presigned, with signed and unsigned payloads, reach the server intact
// and verify.
func TestSDKKeys(t *testing.T) {
	srv := verifyServer(t, serverTime, testKeys)
	const body = "clip bytes\x00\xff"
	for _, key := range awkwardKeys {
		t.Run(key, func(t *testing.T) {
			for _, mode := range []string{"signed payload", "UNSIGNED-PAYLOAD", "presigned"} {
				req, err := http.NewRequest(http.MethodPut, objectURL(srv, key, ""), strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				switch mode {
				case "signed payload":
					signHeader(t, req, sha256Hex(body), signTime)
				case "UNSIGNED-PAYLOAD":
					signHeader(t, req, "UNSIGNED-PAYLOAD", signTime)
				case "presigned":
					req = presign(t, req, time.Hour, signTime, body)
				}
				resp := do(t, srv.Client(), req)
				resp.expect(t, nil, body)
				if resp.path != "/bucket/"+key {
					t.Errorf("%s: server saw path %q, want %q", mode, resp.path, "/bucket/"+key)
				}
			}
		})
	}
}

// Query strings as the S3 operations use them, in both modes.
func TestSDKQueries(t *testing.T) {
	srv := verifyServer(t, serverTime, testKeys)
	for _, rawQuery := range []string{
		"list-type=2&prefix=photos/2026 03/&delimiter=/",
		"uploads",
		"partNumber=3&uploadId=abc~def/+=%20xyz",
		"prefix=ü&max-keys=10&encoding-type=url&start-after=a%2Fb",
		"tagging&versionId=",
		"b=2&a=1&a=0",
	} {
		t.Run(rawQuery, func(t *testing.T) {
			u := objectURL(srv, "dir/", rawQuery)
			req, _ := http.NewRequest(http.MethodGet, u, nil)
			signHeader(t, req, sha256Hex(""), signTime)
			do(t, srv.Client(), req).expect(t, nil, "")

			req, _ = http.NewRequest(http.MethodGet, u, nil)
			do(t, srv.Client(), presign(t, req, time.Minute, signTime, "")).expect(t, nil, "")
		})
	}
}

// Clients that send the path or query in another encoding than the
// canonical one, and sign what they send, verify.
func TestSentEncodings(t *testing.T) {
	srv := verifyServer(t, serverTime, testKeys)
	for _, tc := range []struct{ name, path, query string }{
		{"sub-delims unencoded", "/bucket/a!$'()*,;=:@b", ""},
		{"tilde encoded", "/bucket/a%7Eb", ""},
		{"lowercase escapes", "/bucket/%c3%bc", ""},
		{"query with '+' for space, unsorted", "/bucket", "prefix=a+b&delimiter=/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+tc.path, nil)
			req.URL.RawPath, req.URL.RawQuery = tc.path, tc.query
			signHeader(t, req, sha256Hex(""), signTime)
			req.URL.RawQuery = tc.query // the signer rewrote it canonically
			resp := do(t, srv.Client(), req)
			resp.expect(t, nil, "")
			if want := strings.TrimSuffix(tc.path+"?"+tc.query, "?"); resp.uri != want {
				t.Errorf("sent %q, want %q", resp.uri, want)
			}
		})
	}
}

// Whatever the signer covered, changing it after signing fails, with the
// error that says what is wrong.
func TestSDKTampering(t *testing.T) {
	const body = "the original body"
	for _, tc := range []struct {
		name   string
		now    time.Time
		keys   sigv4.KeyFunc
		sign   func(t *testing.T, req *http.Request) *http.Request
		tamper func(req *http.Request)
		want   *sigv4.Error
	}{
		{name: "header changed", tamper: func(r *http.Request) { r.Header.Set("Range", "bytes=0-99") },
			want: sigv4.ErrSignatureMismatch},
		{name: "unsigned x-amz header added", tamper: func(r *http.Request) { r.Header.Set("X-Amz-Meta-Owner", "mallory") },
			want: sigv4.ErrHeadersNotSigned},
		{name: "query changed", tamper: func(r *http.Request) { r.URL.RawQuery = strings.Replace(r.URL.RawQuery, "J", "K", 1) },
			want: sigv4.ErrSignatureMismatch},
		{name: "query parameter added", tamper: func(r *http.Request) { r.URL.RawQuery += "&versionId=1" },
			want: sigv4.ErrSignatureMismatch},
		{name: "path changed", tamper: func(r *http.Request) { r.URL.Path, r.URL.RawPath = "/bucket/other", "" },
			want: sigv4.ErrSignatureMismatch},
		{name: "method changed", tamper: func(r *http.Request) { r.Method = http.MethodPost },
			want: sigv4.ErrSignatureMismatch},
		{name: "body changed", tamper: func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader("the tampered body"))
		}, want: sigv4.ErrContentSHA256Mismatch},
		{name: "wrong secret", keys: secretKeys(map[string]string{testAccessKey: "not the secret"}),
			want: sigv4.ErrSignatureMismatch},
		{name: "unknown access key", keys: secretKeys(nil), want: sigv4.ErrUnknownAccessKey},
		{name: "signed 16 minutes ago", now: signTime.Add(16 * time.Minute), want: sigv4.ErrRequestTimeTooSkewed},
		{name: "signed 16 minutes ahead", now: signTime.Add(-16 * time.Minute), want: sigv4.ErrRequestTimeTooSkewed},
		{name: "signed 14 minutes ago", now: signTime.Add(14 * time.Minute)},
		{name: "presigned, expired", now: signTime.Add(time.Hour + time.Second), sign: presignHour,
			want: sigv4.ErrRequestExpired},
		{name: "presigned, last second", now: signTime.Add(time.Hour), sign: presignHour},
		{name: "presigned, dated 16 minutes ahead", now: signTime.Add(-16 * time.Minute), sign: presignHour,
			want: sigv4.ErrRequestNotYetValid},
		{name: "presigned, expiry extended", sign: presignHour, tamper: func(r *http.Request) {
			r.URL.RawQuery = strings.Replace(r.URL.RawQuery, "X-Amz-Expires=3600", "X-Amz-Expires=7200", 1)
		}, want: sigv4.ErrSignatureMismatch},
		{name: "presigned, signed header changed", sign: presignHour, tamper: func(r *http.Request) {
			r.Header.Set("Range", "bytes=5-9")
		}, want: sigv4.ErrSignatureMismatch},
		{name: "presigned, header auth added", sign: presignHour, tamper: func(r *http.Request) {
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=x")
		}, want: sigv4.ErrAmbiguousAuth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now, keys := cmpOr(tc.now, serverTime), tc.keys
			if keys == nil {
				keys = testKeys
			}
			srv := verifyServer(t, now, keys)
			req, _ := http.NewRequest(http.MethodPut, objectURL(srv, "a key", "prefix=J"), strings.NewReader(body))
			req.Header.Set("Range", "bytes=0-9")
			if tc.sign != nil {
				req = tc.sign(t, req)
			} else {
				signHeader(t, req, sha256Hex(body), signTime)
			}
			if tc.tamper != nil {
				tc.tamper(req)
			}
			do(t, srv.Client(), req).expect(t, tc.want, body)
		})
	}
}

func presignHour(t *testing.T, req *http.Request) *http.Request {
	b, _ := io.ReadAll(req.Body)
	return presign(t, req, time.Hour, signTime, string(b))
}

func cmpOr(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return t
}

// Presign's URLs verify, with their query and signed headers, and carry the
// key encoded.
func TestPresign(t *testing.T) {
	srv := verifyServer(t, serverTime, testKeys)
	key := sigv4.DeriveKey(testSecret, signTime.Format("20060102"), testRegion, "s3")
	for _, objKey := range awkwardKeys {
		u, err := sigv4.Presign(http.MethodPut, srv.URL+"/bucket/"+url.PathEscape(objKey)+"?partNumber=1&uploadId=x%2By",
			testAccessKey, key, testRegion, signTime, time.Hour, http.Header{"Content-Type": {"video/mp4"}})
		if err != nil {
			t.Fatalf("Presign: %v", err)
		}
		req, _ := http.NewRequest(http.MethodPut, u, strings.NewReader("data"))
		req.Header.Set("Content-Type", "video/mp4")
		resp := do(t, srv.Client(), req)
		resp.expect(t, nil, "data")
		if resp.path != "/bucket/"+objKey {
			t.Errorf("server saw path %q, want %q", resp.path, "/bucket/"+objKey)
		}

		req, _ = http.NewRequest(http.MethodPut, u, strings.NewReader("data"))
		req.Header.Set("Content-Type", "text/plain")
		do(t, srv.Client(), req).expect(t, sigv4.ErrSignatureMismatch, "")
	}
}

// A URL Presign signs with x-amz-content-sha256 admits that body only.
func TestPresignContentSHA256(t *testing.T) {
	srv := verifyServer(t, serverTime, testKeys)
	key := sigv4.DeriveKey(testSecret, signTime.Format("20060102"), testRegion, "s3")
	h := http.Header{"X-Amz-Content-Sha256": {sha256Hex("data")}}
	u, err := sigv4.Presign(http.MethodPut, srv.URL+"/bucket/k", testAccessKey, key, testRegion, signTime, time.Hour, h)
	if err != nil {
		t.Fatalf("Presign: %v", err)
	}
	for _, body := range []string{"data", "datx"} {
		req, _ := http.NewRequest(http.MethodPut, u, strings.NewReader(body))
		req.Header.Set("X-Amz-Content-Sha256", sha256Hex("data"))
		resp := do(t, srv.Client(), req)
		if body == "data" {
			resp.expect(t, nil, body)
		} else {
			resp.expect(t, sigv4.ErrContentSHA256Mismatch, "")
		}
	}
}

func TestPresignRefuses(t *testing.T) {
	key := make([]byte, 32)
	for _, tc := range []struct {
		name, method, url, accessKey, region string
		expires                              time.Duration
	}{
		{"relative URL", "GET", "/bucket/key", "AK", "r", time.Hour},
		{"no method", "", "http://h/b/k", "AK", "r", time.Hour},
		{"no access key", "GET", "http://h/b/k", "", "r", time.Hour},
		{"access key with slash", "GET", "http://h/b/k", "A/K", "r", time.Hour},
		{"no region", "GET", "http://h/b/k", "AK", "", time.Hour},
		{"zero expiry", "GET", "http://h/b/k", "AK", "r", 0},
		{"expiry over a week", "GET", "http://h/b/k", "AK", "r", sigv4.MaxExpires + time.Second},
		{"fractional expiry", "GET", "http://h/b/k", "AK", "r", 1500 * time.Millisecond},
		{"already presigned", "GET", "http://h/b/k?X-Amz-Date=x", "AK", "r", time.Hour},
		{"bad escape", "GET", "http://h/b/k?a=%zz", "AK", "r", time.Hour},
	} {
		if u, err := sigv4.Presign(tc.method, tc.url, tc.accessKey, key, tc.region, signTime, tc.expires, nil); err == nil {
			t.Errorf("%s: Presign = %s, want an error", tc.name, u)
		}
	}
}
