package s3gw

import (
	"bytes"
	"encoding/hex"
	"errors"
	"hash/crc64"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/clipstore/clipstore/client"
)

func TestParseRange(t *testing.T) {
	const size = 100
	for _, tt := range []struct {
		header        string
		start, length int64
		status        int // 0: InvalidRange
	}{
		{"", 0, size, 200},
		{"bytes=0-9", 0, 10, 206},
		{"bytes=90-", 90, 10, 206},
		{"bytes=-10", 90, 10, 206},
		{"bytes=-1000", 0, size, 206},
		{"bytes=50-5000", 50, 50, 206},
		{"bytes=99-99", 99, 1, 206},
		{"bytes=100-", 0, 0, 0},
		{"bytes=100-200", 0, 0, 0},
		{"bytes=-0", 0, 0, 0},
		{"bytes=0-1,3-4", 0, size, 200}, // several ranges: the whole object
		{"bytes=5-4", 0, size, 200},     // malformed: ignored
		{"bytes=a-4", 0, size, 200},
		{"bytes=-x", 0, size, 200},
		{"bytes=5", 0, size, 200},
		{"lines=0-4", 0, size, 200},
	} {
		sp, err := parseRange(tt.header, size)
		switch {
		case tt.status == 0 && !errors.Is(err, errInvalidRange):
			t.Errorf("%q: %+v, %v; want InvalidRange", tt.header, sp, err)
		case tt.status != 0 && (err != nil || *sp != span{tt.start, tt.length, tt.status}):
			t.Errorf("%q: %+v, %v; want %d+%d, %d", tt.header, sp, err, tt.start, tt.length, tt.status)
		}
	}
	if _, err := parseRange("bytes=0-", 0); !errors.Is(err, errInvalidRange) {
		t.Errorf("a range of an empty object: %v, want InvalidRange", err)
	}
}

func TestEvalConditions(t *testing.T) {
	mod := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	now := mod.Add(time.Hour)
	at := func(d time.Duration) string { return mod.Add(d).Format(http.TimeFormat) }
	for _, tt := range []struct {
		name string
		h    map[string]string
		want int
	}{
		{"none", nil, 0},
		{"if-match", map[string]string{"If-Match": `"abc"`}, 0},
		{"if-match in a list, weak", map[string]string{"If-Match": `"x", W/"abc"`}, 0},
		{"if-match other", map[string]string{"If-Match": `"x"`}, 412},
		{"if-match *", map[string]string{"If-Match": "*"}, 0},
		{"if-unmodified-since before", map[string]string{"If-Unmodified-Since": at(-time.Second)}, 412},
		{"if-unmodified-since then", map[string]string{"If-Unmodified-Since": at(0)}, 0},
		{"if-unmodified-since unparsable", map[string]string{"If-Unmodified-Since": "yesterday"}, 0},
		{"if-match beats if-unmodified-since", map[string]string{"If-Match": `"abc"`, "If-Unmodified-Since": at(-time.Hour)}, 0},
		{"if-none-match", map[string]string{"If-None-Match": `"abc"`}, 304},
		{"if-none-match *", map[string]string{"If-None-Match": "*"}, 304},
		{"if-none-match other", map[string]string{"If-None-Match": `"x"`}, 0},
		{"if-modified-since then", map[string]string{"If-Modified-Since": at(0)}, 304},
		{"if-modified-since before", map[string]string{"If-Modified-Since": at(-time.Second)}, 0},
		{"if-modified-since in the future", map[string]string{"If-Modified-Since": at(2 * time.Hour)}, 0},
		{"if-none-match beats if-modified-since", map[string]string{"If-None-Match": `"x"`, "If-Modified-Since": at(0)}, 0},
		{"412 before 304", map[string]string{"If-Match": `"x"`, "If-None-Match": `"abc"`}, 412},
	} {
		h := http.Header{}
		for k, v := range tt.h {
			h.Set(k, v)
		}
		if got := evalConditions(h, "abc", mod, now); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestCRC64NVME checks the table against the catalogue's check value.
func TestCRC64NVME(t *testing.T) {
	if got := crc64.Checksum([]byte("123456789"), crc64NVME); got != 0xae8b14860a799888 {
		t.Fatalf("CRC-64/NVME of 123456789 = %#x, want 0xae8b14860a799888", got)
	}
}

func TestParseDigests(t *testing.T) {
	for _, tt := range []struct {
		name     string
		h        map[string]string
		trailers []string
		alg      string // "" none
		err      *s3Error
	}{
		{name: "none"},
		{name: "content-md5", h: map[string]string{"Content-Md5": "1B2M2Y8AsgTpgAmY7PhCfg=="}},
		{name: "bad content-md5", h: map[string]string{"Content-Md5": "1B2M2Y8Asg=="}, err: errInvalidDigest},
		{name: "header", h: map[string]string{"X-Amz-Checksum-Crc32c": "AAAAAA=="}, alg: "crc32c"},
		{name: "header of the wrong size", h: map[string]string{"X-Amz-Checksum-Crc32c": "AAAAAAAA"}, err: errInvalidRequest},
		{name: "unknown algorithm", h: map[string]string{"X-Amz-Checksum-Md4": "AAAAAA=="}, err: errInvalidRequest},
		{name: "two headers", h: map[string]string{"X-Amz-Checksum-Crc32c": "AAAAAA==", "X-Amz-Checksum-Crc32": "AAAAAA=="},
			err: errInvalidRequest},
		{name: "trailer", trailers: []string{"x-amz-checksum-sha256"}, alg: "sha256"},
		{name: "header and trailer", h: map[string]string{"X-Amz-Checksum-Crc32": "AAAAAA=="},
			trailers: []string{"x-amz-checksum-sha256"}, err: errInvalidRequest},
		{name: "sdk algorithm alone", h: map[string]string{"X-Amz-Sdk-Checksum-Algorithm": "CRC64NVME"}, alg: "crc64nvme"},
		{name: "sdk algorithm and its header", h: map[string]string{"X-Amz-Sdk-Checksum-Algorithm": "CRC32",
			"X-Amz-Checksum-Crc32": "AAAAAA=="}, alg: "crc32"},
		{name: "sdk algorithm and another header", h: map[string]string{"X-Amz-Sdk-Checksum-Algorithm": "SHA1",
			"X-Amz-Checksum-Crc32": "AAAAAA=="}, err: errInvalidRequest},
		{name: "mode is no checksum", h: map[string]string{"X-Amz-Checksum-Mode": "ENABLED"}},
	} {
		h := http.Header{}
		for k, v := range tt.h {
			h.Set(k, v)
		}
		d, err := parseDigests(h, tt.trailers)
		switch {
		case tt.err != nil:
			if !errors.Is(err, tt.err) {
				t.Errorf("%s: %v, want %v", tt.name, err, tt.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.alg == "" && d.alg != nil, tt.alg != "" && (d.alg == nil || d.alg.name != tt.alg):
			t.Errorf("%s: algorithm %v, want %q", tt.name, d.alg, tt.alg)
		}
	}
}

// TestPastPrefix: the key a listing restarts after sorts after every
// valid key under the prefix, up to the longest, and before every key
// after them.
func TestPastPrefix(t *testing.T) {
	const maxRune = "\U0010FFFF"
	for _, prefix := range []string{"a/", "é/", "dir" + maxRune + "/", "x"} {
		past := pastPrefix(prefix)
		rest := maxKeyLen - len(prefix)
		under := []string{prefix, prefix + "z", prefix + "\u00ff\u00ff", prefix + strings.Repeat(maxRune, rest/4),
			prefix + strings.Repeat(maxRune, rest/4) + strings.Repeat("~", rest%4), prefix + strings.Repeat("\uffff", rest/3)}
		for _, k := range under {
			if len(k) > maxKeyLen || !(k < past) {
				t.Errorf("prefix %q: key %q (%d bytes) does not sort before the restart key", prefix, truncate(k), len(k))
			}
		}
		next := prefix[:len(prefix)-1] + string(rune(prefix[len(prefix)-1])+1)
		if !(past < next) {
			t.Errorf("prefix %q: the restart key sorts after %q", prefix, next)
		}
	}
}

func TestCommonPrefix(t *testing.T) {
	for _, tt := range []struct {
		prefix, delim, key, want string
	}{
		{"", "/", "a/b/c", "a/"},
		{"a/", "/", "a/b/c", "a/b/"},
		{"a/", "/", "a/b", ""},
		{"", "", "a/b", ""},
		{"", "--", "x--y--z", "x--"},
		{"b", "/", "a/b", ""},
	} {
		if got := (listParams{prefix: tt.prefix, delimiter: tt.delim}).commonPrefix(tt.key); got != tt.want {
			t.Errorf("prefix %q, delimiter %q, key %q: %q, want %q", tt.prefix, tt.delim, tt.key, got, tt.want)
		}
	}
}

func TestURLEncode(t *testing.T) {
	if got, want := urlEncode("a b/c+d&é~_.-"), "a%20b/c%2Bd%26%C3%A9~_.-"; got != want {
		t.Fatalf("urlEncode = %q, want %q", got, want)
	}
}

// TestDigester: the bytes pass unchanged and are hashed in full, in
// reads of any size; a body cut short is IncompleteBody, never an
// io.ErrUnexpectedEOF.
func TestDigester(t *testing.T) {
	data := randBytes(1, 3*digestBufSize+123)
	d := newDigester(iotest.HalfReader(bytes.NewReader(data)), (&digests{}).hashes())
	got, err := io.ReadAll(d)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read through: %d bytes, %v", len(got), err)
	}
	sums, err := d.sums()
	if err != nil || md5hex(data) != hex.EncodeToString(sums[0]) {
		t.Fatalf("MD5 %x, %v; want %s", sums, err, md5hex(data))
	}

	short := newDigester(io.MultiReader(bytes.NewReader(data[:10]), iotest.ErrReader(io.ErrUnexpectedEOF)), (&digests{}).hashes())
	defer short.stop()
	_, err = io.ReadAll(short)
	if !errors.Is(err, errIncompleteBody) || errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a short body: %v; want IncompleteBody, not io.ErrUnexpectedEOF", err)
	}
	if _, err := short.sums(); err == nil {
		t.Fatal("digests of a body not read to its end")
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestRoute(t *testing.T) {
	for _, tt := range []struct {
		method, target, copySource string
		op                         string
		err                        *s3Error
	}{
		{"GET", "/", "", "ListBuckets", nil},
		{"PUT", "/", "", "MethodNotAllowed", errMethodNotAllowed},
		{"PUT", "/b", "", "CreateBucket", nil},
		{"GET", "/b?location", "", "GetBucketLocation", nil},
		{"GET", "/b?list-type=2&prefix=a", "", "ListObjectsV2", nil},
		{"GET", "/b?prefix=a", "", "ListObjects", nil},
		{"GET", "/b?list-type=3", "", "ListObjects", errInvalidArgument},
		{"POST", "/b?delete", "", "DeleteObjects", nil},
		{"HEAD", "/b/", "", "HeadBucket", nil},
		{"DELETE", "/b", "", "DeleteBucket", nil},
		{"PUT", "/b?versioning", "", "NotImplemented", errNotImplemented},
		{"GET", "/b?uploads", "", "ListMultipartUploads", nil},
		{"POST", "/b?uploads", "", "MethodNotAllowed", errMethodNotAllowed},
		{"PUT", "/b/k", "", "PutObject", nil},
		{"PUT", "/b/k", "/b/other", "CopyObject", nil},
		{"PUT", "/b/k?partNumber=1&uploadId=x", "", "UploadPart", nil},
		{"PUT", "/b/k?partNumber=1&uploadId=x", "/b/other", "UploadPartCopy", nil},
		{"PUT", "/b/k?uploadId=x", "", "UploadPart", errInvalidArgument},
		{"PUT", "/b/k?uploadId=x", "/b/other", "UploadPartCopy", errInvalidArgument},
		{"PUT", "/b/k?acl", "/b/other", "NotImplemented", errNotImplemented},
		{"POST", "/b/k?uploadId=x", "", "CompleteMultipartUpload", nil},
		{"DELETE", "/b/k?uploadId=x", "", "AbortMultipartUpload", nil},
		{"GET", "/b/k?uploadId=x", "", "ListParts", nil},
		{"HEAD", "/b/k?uploadId=x", "", "MethodNotAllowed", errMethodNotAllowed},
		{"POST", "/b/k?uploads", "", "CreateMultipartUpload", nil},
		{"GET", "/b/k?uploads", "", "MethodNotAllowed", errMethodNotAllowed},
		{"GET", "/b/k?acl", "", "NotImplemented", errNotImplemented},
		{"GET", "/b/k?tagging", "", "NotImplemented", errNotImplemented},
		{"POST", "/b/k?select&select-type=2", "", "NotImplemented", errNotImplemented},
		{"GET", "/b/k/with//slashes/", "", "GetObject", nil},
		{"HEAD", "/b/k", "", "HeadObject", nil},
		{"DELETE", "/b/k", "", "DeleteObject", nil},
		{"PATCH", "/b/k", "", "MethodNotAllowed", errMethodNotAllowed},
	} {
		r, err := http.NewRequest(tt.method, "http://127.0.0.1:9000"+tt.target, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tt.copySource != "" {
			r.Header.Set("X-Amz-Copy-Source", tt.copySource)
		}
		g := &Gateway{}
		op, h, err := g.route(g.newRequest(r))
		if op != tt.op || (tt.err == nil) != (h != nil) || (tt.err != nil && !errors.Is(err, tt.err)) {
			t.Errorf("%s %s: %s, %v; want %s, %v", tt.method, tt.target, op, err, tt.op, tt.err)
		}
	}
}

func TestAddressing(t *testing.T) {
	g := &Gateway{cfg: Config{Domain: "s3.example.net"}}
	for _, tt := range []struct {
		host, path, bucket, key string
	}{
		{"s3.example.net", "/b/k/x", "b", "k/x"},
		{"b.s3.example.net", "/k/x", "b", "k/x"},
		{"B.S3.Example.Net:9000", "/k", "b", "k"},
		{"my.bucket.s3.example.net", "/", "my.bucket", ""},
		{"127.0.0.1:9000", "/b/", "b", ""},
		{"other.example.net", "/b/k", "b", "k"},
	} {
		r := &http.Request{Host: tt.host, URL: mustURL(t, "http://"+tt.host+tt.path)}
		req := g.newRequest(r)
		if req.bucket != tt.bucket || req.key != tt.key {
			t.Errorf("%s%s: bucket %q, key %q; want %q, %q", tt.host, tt.path, req.bucket, req.key, tt.bucket, tt.key)
		}
	}
}

func TestRequestIDs(t *testing.T) {
	var ids []string
	for range 100 {
		ids = append(ids, newRequestID())
	}
	slices.Sort(ids)
	if len(slices.Compact(ids)) != 100 || len(ids[0]) != 16 || strings.ToUpper(ids[0]) != ids[0] {
		t.Fatalf("request ids: %q...", ids[:3])
	}
}

// TestListingFill: past its budget of keys under one common prefix, a
// page leaves the listing and says to list again after the prefix.
func TestListingFill(t *testing.T) {
	keys := []string{"a/1", "a/2", "a/3", "a/4", "a/5", "b"}
	seq := func(yield func(*client.ClipEntry, error) bool) {
		for _, k := range keys {
			if !yield(&client.ClipEntry{Key: k}, nil) {
				return
			}
		}
	}
	p := listParams{delimiter: "/", maxKeys: 10}
	l := &listing{}
	restart, err := l.fill(seq, p, 2)
	if err != nil || restart != pastPrefix("a/") || !slices.Equal(l.prefixes, []string{"a/"}) || len(l.objects) != 0 {
		t.Fatalf("budget 2: restart %q, prefixes %q, %d objects, %v", truncate(restart), l.prefixes, len(l.objects), err)
	}
	l = &listing{}
	restart, err = l.fill(seq, p, 10)
	if err != nil || restart != "" || !slices.Equal(l.prefixes, []string{"a/"}) || len(l.objects) != 1 || l.last != "b" {
		t.Fatalf("budget 10: restart %q, prefixes %q, %d objects, last %q, %v", truncate(restart), l.prefixes, len(l.objects), l.last, err)
	}
}
