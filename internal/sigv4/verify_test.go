package sigv4_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/clipstore/clipstore/internal/sigv4"
)

// Requests whose authentication cannot be used fail with the error that
// says why, before any signature is computed.
func TestVerifyRejects(t *testing.T) {
	const (
		cred  = "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"
		sh    = "SignedHeaders=host;x-amz-content-sha256;x-amz-date"
		sig   = "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
		good  = "AWS4-HMAC-SHA256 " + cred + ", " + sh + ", " + sig
		dates = "x-amz-date: 20130524T000000Z\nx-amz-content-sha256: UNSIGNED-PAYLOAD\n"
		query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request" +
			"&X-Amz-Date=20130524T000000Z&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
	)
	header := func(auth string) string { return "Authorization: " + auth + "\n" + dates }
	for _, tc := range []struct {
		name    string
		target  string // request target; "/" if empty
		headers string
		want    *sigv4.Error
	}{
		{name: "anonymous", want: sigv4.ErrMissingAuth},
		{name: "Signature Version 2 header", headers: header("AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg="),
			want: sigv4.ErrUnsupportedAlgorithm},
		{name: "SigV4a header", headers: header("AWS4-ECDSA-P256-SHA256 " + cred + ", " + sh + ", " + sig),
			want: sigv4.ErrUnsupportedAlgorithm},
		{name: "Signature Version 2 query", target: "/k?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1141889120&Signature=vjbyPxybd",
			want: sigv4.ErrUnsupportedAlgorithm},
		{name: "SigV4a query", target: "/k?" + strings.Replace(query, "AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256", 1) + "&X-Amz-Expires=60",
			want: sigv4.ErrUnsupportedAlgorithm},
		{name: "header and query", target: "/k?" + query + "&X-Amz-Expires=60", headers: header(good),
			want: sigv4.ErrAmbiguousAuth},
		{name: "no fields", headers: header("AWS4-HMAC-SHA256"), want: sigv4.ErrMalformedAuthorization},
		{name: "missing Signature", headers: header("AWS4-HMAC-SHA256 " + cred + ", " + sh), want: sigv4.ErrMalformedAuthorization},
		{name: "unknown field", headers: header(good + ", Foo=bar"), want: sigv4.ErrMalformedAuthorization},
		{name: "repeated field", headers: header(good + ", " + sig), want: sigv4.ErrMalformedAuthorization},
		{name: "field without =", headers: header(good + ", Foo"), want: sigv4.ErrMalformedAuthorization},
		{name: "credential of four parts", headers: header(strings.Replace(good, "/s3/", "/", 1)),
			want: sigv4.ErrMalformedAuthorization},
		{name: "empty access key", headers: header(strings.Replace(good, "AKIAIOSFODNN7EXAMPLE", "", 1)),
			want: sigv4.ErrMalformedAuthorization},
		{name: "credential date not a date", headers: header(strings.Replace(good, "20130524/", "20131324/", 1)),
			want: sigv4.ErrMalformedAuthorization},
		{name: "credential date not the request's", headers: header(strings.Replace(good, "20130524/", "20130525/", 1)),
			want: sigv4.ErrMalformedAuthorization},
		{name: "empty region", headers: header(strings.Replace(good, "us-east-1", "", 1)),
			want: sigv4.ErrMalformedAuthorization},
		{name: "another service", headers: header(strings.Replace(good, "/s3/", "/ec2/", 1)),
			want: sigv4.ErrMalformedAuthorization},
		{name: "bad terminator", headers: header(strings.Replace(good, "aws4_request", "aws5_request", 1)),
			want: sigv4.ErrMalformedAuthorization},
		{name: "host not signed", headers: header(strings.Replace(good, "host;", "", 1)),
			want: sigv4.ErrMalformedAuthorization},
		{name: "uppercase signed header", headers: header(strings.Replace(good, "host;", "host;Range;", 1)),
			want: sigv4.ErrMalformedAuthorization},
		{name: "repeated signed header", headers: header(strings.Replace(good, "host;", "host;host;", 1)),
			want: sigv4.ErrMalformedAuthorization},
		{name: "empty signed header", headers: header(strings.Replace(good, "host;", "host;;", 1)),
			want: sigv4.ErrMalformedAuthorization},
		{name: "short signature", headers: header(strings.TrimSuffix(good, "1")), want: sigv4.ErrMalformedAuthorization},
		{name: "signature not hex", headers: header(strings.Replace(good, "f0e8", "g0e8", 1)),
			want: sigv4.ErrMalformedAuthorization},
		{name: "no date", headers: "Authorization: " + good + "\nx-amz-content-sha256: UNSIGNED-PAYLOAD\n",
			want: sigv4.ErrMissingDate},
		{name: "x-amz-date not ISO 8601 basic", headers: "Authorization: " + good + "\nx-amz-date: 2013-05-24T00:00:00Z\nx-amz-content-sha256: UNSIGNED-PAYLOAD\n",
			want: sigv4.ErrMissingDate},
		{name: "Date not an HTTP date", headers: "Authorization: " + strings.Replace(good, "x-amz-date", "date", 1) +
			"\nDate: yesterday\nx-amz-content-sha256: UNSIGNED-PAYLOAD\n", want: sigv4.ErrMissingDate},
		{name: "x-amz header not signed", headers: header(good) + "x-amz-acl: public-read\n", want: sigv4.ErrHeadersNotSigned},
		{name: "x-amz-content-sha256 missing", headers: "Authorization: " + good + "\nx-amz-date: 20130524T000000Z\n",
			want: sigv4.ErrMissingContentSHA256},
		{name: "x-amz-content-sha256 not a hash", headers: "Authorization: " + good + "\nx-amz-date: 20130524T000000Z\nx-amz-content-sha256: abc\n",
			want: sigv4.ErrInvalidContentSHA256},
		{name: "x-amz-content-sha256 of SigV4a", headers: "Authorization: " + good +
			"\nx-amz-date: 20130524T000000Z\nx-amz-content-sha256: STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD\n",
			want: sigv4.ErrInvalidContentSHA256},
		{name: "query not percent-encoding", target: "/k?prefix=%zz", headers: header(good), want: sigv4.ErrInvalidQuery},
		{name: "presigned without X-Amz-Expires", target: "/k?" + query, want: sigv4.ErrMalformedPresign},
		{name: "presigned with X-Amz-Date twice", target: "/k?" + query + "&X-Amz-Expires=60&X-Amz-Date=20130524T000000Z",
			want: sigv4.ErrMalformedPresign},
		{name: "presigned for more than a week", target: "/k?" + query + "&X-Amz-Expires=604801", want: sigv4.ErrMalformedPresign},
		{name: "presigned for negative time", target: "/k?" + query + "&X-Amz-Expires=-1", want: sigv4.ErrMalformedPresign},
		{name: "presigned X-Amz-Date not ISO 8601", target: "/k?" + strings.Replace(query, "20130524T000000Z", "20130524", 1) + "&X-Amz-Expires=60",
			want: sigv4.ErrMalformedPresign},
		{name: "presigned credential for another service", target: "/k?" + strings.Replace(query, "%2Fs3%2F", "%2Fiam%2F", 1) + "&X-Amz-Expires=60",
			want: sigv4.ErrMalformedPresign},
		{name: "presigned signature not hex", target: "/k?" + strings.Replace(query, "aeeed9", "zzzzzz", 1) + "&X-Amz-Expires=60",
			want: sigv4.ErrMalformedPresign},
		{name: "presigned with an unsigned x-amz header", target: "/k?" + query + "&X-Amz-Expires=60",
			headers: "x-amz-acl: public-read\n", want: sigv4.ErrHeadersNotSigned},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := tc.target
			if target == "" {
				target = "/"
			}
			r := readRequest(t, "GET "+target+" HTTP/1.1\nHost: examplebucket.s3.amazonaws.com\n"+tc.headers+"\n")
			keys := func(context.Context, string, string, string, string) ([]byte, error) {
				t.Fatal("Verify asked for a key")
				return nil, nil
			}
			a, err := sigv4.Verify(context.Background(), r, exampleTime, keys)
			t.Log(err)
			if a != nil {
				t.Errorf("Verify returned %+v with error %v", a, err)
			}
			wantError(t, err, tc.want)
		})
	}
}

// A request signed with only a Date header (no x-amz-date) verifies, its
// time taken from Date. The signature is computed here by hand.
func TestVerifyDateHeader(t *testing.T) {
	key := sigv4.DeriveKey(exampleSecret, "20130524", "us-east-1", "s3")
	canonical := "GET\n/photos/a%20b.jpg\n\ndate:Fri, 24 May 2013 00:00:00 GMT\nhost:examplebucket.s3.amazonaws.com\n" +
		"x-amz-content-sha256:UNSIGNED-PAYLOAD\n\ndate;host;x-amz-content-sha256\nUNSIGNED-PAYLOAD"
	sum := sha256.Sum256([]byte(canonical))
	sts := "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n" + hex.EncodeToString(sum[:])
	m := hmac.New(sha256.New, key)
	m.Write([]byte(sts))
	r := readRequest(t, `GET /photos/a%20b.jpg HTTP/1.1
Host: examplebucket.s3.amazonaws.com
Date: Fri, 24 May 2013 00:00:00 GMT
x-amz-content-sha256: UNSIGNED-PAYLOAD
Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=date;host;x-amz-content-sha256, Signature=`+hex.EncodeToString(m.Sum(nil))+`

`)
	a, err := sigv4.Verify(context.Background(), r, exampleTime, exampleKeys)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !a.Time.Equal(exampleTime) || a.Payload != sigv4.PayloadUnsigned ||
		strings.Join(a.SignedHeaders, ";") != "date;host;x-amz-content-sha256" {
		t.Errorf("Auth = %+v", a)
	}
}

// A KeyFunc failure other than an unknown key is returned wrapped, not as
// an *Error, and Verify passes its context to the KeyFunc.
func TestVerifyKeyFuncError(t *testing.T) {
	unavailable := errors.New("metadata service unavailable")
	type ctxKey struct{}
	ctx := context.WithValue(context.Background(), ctxKey{}, "request 7")
	keys := func(ctx context.Context, accessKey, date, region, service string) ([]byte, error) {
		if ctx.Value(ctxKey{}) != "request 7" {
			t.Error("the KeyFunc did not get Verify's context")
		}
		if accessKey != testAccessKey || date != "20260314" || region != testRegion || service != "s3" {
			t.Errorf("KeyFunc(%q, %q, %q, %q)", accessKey, date, region, service)
		}
		return nil, unavailable
	}
	req, _ := http.NewRequest(http.MethodGet, "http://s3.test/bucket/key", nil)
	signHeader(t, req, "UNSIGNED-PAYLOAD", signTime)
	_, err := sigv4.Verify(ctx, req, serverTime, keys)
	var e *sigv4.Error
	if !errors.Is(err, unavailable) || errors.As(err, &e) {
		t.Fatalf("Verify = %v; want the KeyFunc's error, wrapped", err)
	}
}

// What Auth reports of a verified request, including the security token
// of temporary credentials in either mode.
func TestVerifyAuthFields(t *testing.T) {
	creds := testCreds
	creds.SessionToken = "session/token+="
	req, _ := http.NewRequest(http.MethodGet, "http://s3.test/bucket/key", nil)
	req.Header.Set("X-Amz-Content-Sha256", sha256Hex(""))
	err := v4.NewSigner().SignHTTP(context.Background(), creds, req, sha256Hex(""), "s3", testRegion, signTime,
		func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	if err != nil {
		t.Fatal(err)
	}
	a, err := sigv4.Verify(context.Background(), req, serverTime, testKeys)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := sigv4.Auth{
		AccessKey: testAccessKey, Region: testRegion, Date: "20260314", Service: "s3", Time: signTime,
		SignedHeaders: []string{"host", "x-amz-content-sha256", "x-amz-date", "x-amz-security-token"},
		SecurityToken: "session/token+=", Payload: sigv4.PayloadSigned, ContentSHA256: sha256Hex(""),
	}
	if a.Signature == "" || a.AccessKey != want.AccessKey || a.Region != want.Region || a.Date != want.Date ||
		a.Service != want.Service || !a.Time.Equal(want.Time) || strings.Join(a.SignedHeaders, ";") != strings.Join(want.SignedHeaders, ";") ||
		a.SecurityToken != want.SecurityToken || a.Payload != want.Payload || a.ContentSHA256 != want.ContentSHA256 ||
		a.Presigned || !a.Expires.IsZero() {
		t.Errorf("Auth = %+v\nwant %+v", a, want)
	}

	key := sigv4.DeriveKey(testSecret, a.Date, a.Region, a.Service)
	for _, format := range []string{"%v", "%+v", "%#v"} {
		if s := fmt.Sprintf(format, *a); strings.Contains(s, hex.EncodeToString(key)) || strings.Contains(s, fmt.Sprint(key)) {
			t.Errorf("Printf(%q) of an Auth shows the signing key: %s", format, s)
		}
	}

	req, _ = http.NewRequest(http.MethodGet, "http://s3.test/bucket/key?X-Amz-Expires=300", nil)
	u, _, err := v4.NewSigner().PresignHTTP(context.Background(), creds, req, "UNSIGNED-PAYLOAD", "s3", testRegion, signTime,
		func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	if err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest(http.MethodGet, u, nil)
	a, err = sigv4.Verify(context.Background(), req, serverTime, testKeys)
	if err != nil {
		t.Fatalf("Verify presigned: %v", err)
	}
	if !a.Presigned || a.SecurityToken != "session/token+=" || !a.Expires.Equal(signTime.Add(5*time.Minute)) ||
		a.Payload != sigv4.PayloadUnsigned || a.ContentSHA256 != "" {
		t.Errorf("presigned Auth = %+v", a)
	}
}

// A presigned request that declares x-amz-content-sha256 (signed) is
// checked against it.
func TestPresignedWithContentSHA256(t *testing.T) {
	srv := verifyServer(t, serverTime, testKeys)
	req, _ := http.NewRequest(http.MethodPut, objectURL(srv, "k", "X-Amz-Expires=60"), nil)
	req.Header.Set("X-Amz-Content-Sha256", sha256Hex("good"))
	u, headers, err := v4.NewSigner().PresignHTTP(context.Background(), testCreds, req, sha256Hex("good"), "s3", testRegion, signTime,
		func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"good", "evil"} {
		req, _ := http.NewRequest(http.MethodPut, u, strings.NewReader(body))
		req.Header.Set("X-Amz-Content-Sha256", headers.Get("X-Amz-Content-Sha256"))
		resp := do(t, srv.Client(), req)
		if body == "good" {
			resp.expect(t, nil, "good")
		} else {
			resp.expect(t, sigv4.ErrContentSHA256Mismatch, "")
		}
	}
}

func TestPayloadMode(t *testing.T) {
	for _, tc := range []struct {
		m       sigv4.PayloadMode
		s       string
		chunked bool
	}{
		{sigv4.PayloadSigned, "SHA-256", false},
		{sigv4.PayloadUnsigned, "UNSIGNED-PAYLOAD", false},
		{sigv4.PayloadStreamingSigned, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", true},
		{sigv4.PayloadStreamingSignedTrailer, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", true},
		{sigv4.PayloadStreamingUnsignedTrailer, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", true},
		{0, "PayloadMode(0)", false},
	} {
		if tc.m.String() != tc.s || tc.m.Chunked() != tc.chunked {
			t.Errorf("%d: String %q, Chunked %v; want %q, %v", int(tc.m), tc.m.String(), tc.m.Chunked(), tc.s, tc.chunked)
		}
	}
}

// FuzzVerify feeds arbitrary Authorization headers, query strings, dates
// and paths to Verify: it must not panic, and must either succeed (the
// seeds are AWS examples) or fail with an *Error and no Auth.
func FuzzVerify(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"+
		"SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
		"max-keys=2&prefix=J", "20130524T000000Z", "/", sha256Hex(""))
	f.Add("", "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"+
		"&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"+
		"&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404", "", "/test.txt", "")
	f.Fuzz(func(t *testing.T, auth, query, date, path, payload string) {
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: path, RawQuery: query},
			Host: "examplebucket.s3.amazonaws.com", Header: http.Header{}}
		for name, v := range map[string]string{"Authorization": auth, "X-Amz-Date": date, "X-Amz-Content-Sha256": payload} {
			if v != "" {
				r.Header.Set(name, v)
			}
		}
		a, err := sigv4.Verify(context.Background(), r, exampleTime, exampleKeys)
		var e *sigv4.Error
		switch {
		case err == nil && a == nil:
			t.Fatal("no Auth and no error")
		case err != nil && (a != nil || !errors.As(err, &e)):
			t.Fatalf("Verify = %+v, %v", a, err)
		}
	})
}

// Body refuses an Auth that Verify did not make.
func TestBodyNeedsVerify(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPut, "http://s3.test/b/k", strings.NewReader("x"))
	if _, err := (&sigv4.Auth{Payload: sigv4.PayloadUnsigned}).Body(req); err == nil {
		t.Fatal("Body of a hand-made Auth succeeded")
	}
}
