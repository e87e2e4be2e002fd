package s3gw

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/await"
)

// copyHook is the gateway's copySourceHook in tests: set and cleared by a
// test while the gateway serves.
type copyHook struct {
	mu sync.Mutex
	fn func(io.Reader) io.Reader // nil: the source as it is
}

func (h *copyHook) wrap(r io.Reader) io.Reader {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fn == nil {
		return r
	}
	return h.fn(r)
}

// set wraps the source of the copies the gateway makes until the test
// ends.
func (h *copyHook) set(t *testing.T, fn func(io.Reader) io.Reader) {
	h.mu.Lock()
	h.fn = fn
	h.mu.Unlock()
	t.Cleanup(func() {
		h.mu.Lock()
		h.fn = nil
		h.mu.Unlock()
	})
}

// beforeRead calls fn once, before the read that follows the first after
// bytes of r.
type beforeRead struct {
	r     io.Reader
	after int64
	fn    func()
	n     int64
	done  bool
}

func (b *beforeRead) Read(p []byte) (int, error) {
	if !b.done && b.n >= b.after {
		b.done = true
		b.fn()
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	return n, err
}

// copyBucket is the bucket of testCopy.
const copyBucket = "copies"

// testCopy drives CopyObject and UploadPartCopy.
func testCopy(t *testing.T, tg *testGateway) {
	c := tg.sdk(true)
	mkBucket(t, c, copyBucket)
	t.Run("object", func(t *testing.T) { testCopyObject(t, tg, c) })
	t.Run("multipart source", func(t *testing.T) { testCopyMultipart(t, c) })
	t.Run("conditions", func(t *testing.T) { testCopyConditions(t, c) })
	t.Run("errors", func(t *testing.T) { testCopyErrors(t, tg, c) })
	t.Run("source overwritten", func(t *testing.T) { testCopySourceOverwritten(t, tg, c) })
	t.Run("keep-alive", func(t *testing.T) { testCopyKeepAlive(t, tg, c) })
}

// testCopyObject copies 3 MiB into another bucket (byte-identical, the
// ETag its MD5, content type, metadata and checksum algorithm kept, no
// shard shared), then onto itself with REPLACE, which changes the
// metadata and the checksum, not the bytes.
func testCopyObject(t *testing.T, tg *testGateway, c *s3.Client) {
	ctx := t.Context()
	mkBucket(t, c, "copies-to")
	data := randBytes(71, 3<<20)
	key := "src/a b.mp4" // the copy source is URL-encoded
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(copyBucket), Key: aws.String(key), Body: bytes.NewReader(data),
		ContentType: aws.String("video/mp4"), Metadata: map[string]string{"vehicle": "v3"}, ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c})
	if err != nil {
		t.Fatal(err)
	}
	src, err := tg.client.Stat(ctx, copyBucket, key)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("copies-to"), Key: aws.String("dst"),
		CopySource: aws.String(copyBucket + "/src/a%20b.mp4")})
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	etag := `"` + md5hex(data) + `"`
	res := out.CopyObjectResult
	if aws.ToString(res.ETag) != etag || aws.ToString(res.ChecksumCRC32C) != crc32cOf(data) ||
		res.ChecksumType != types.ChecksumTypeFullObject || res.LastModified == nil || time.Since(*res.LastModified) > time.Minute ||
		aws.ToString(out.CopySourceVersionId) != strconv.FormatUint(src.Generation, 10) {
		t.Fatalf("copy answered %+v, %+v; want ETag %s, the source's CRC32C, version id %d", out, res, etag, src.Generation)
	}
	if got := get(t, c, "copies-to", "dst"); !bytes.Equal(got, data) {
		t.Fatalf("the copy has %d bytes, not the source's %d", len(got), len(data))
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("copies-to"), Key: aws.String("dst"),
		ChecksumMode: types.ChecksumModeEnabled})
	if err != nil || aws.ToString(head.ETag) != etag || aws.ToString(head.ContentType) != "video/mp4" ||
		!mapsEqual(head.Metadata, map[string]string{"vehicle": "v3"}) || aws.ToString(head.ChecksumCRC32C) != crc32cOf(data) {
		t.Fatalf("head of the copy: %v, %+v", err, head)
	}
	dst, err := tg.client.Stat(ctx, "copies-to", "dst")
	if err != nil {
		t.Fatal(err)
	}
	if dst.ClipID == src.ClipID || slices.ContainsFunc(dst.Shards, func(d client.ShardInfo) bool {
		return slices.ContainsFunc(src.Shards, func(s client.ShardInfo) bool { return s.ID == d.ID })
	}) {
		t.Fatalf("the copy shares the source's clip id or a shard: %+v, %+v", dst, src)
	}

	out, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("copies-to"), Key: aws.String("dst"),
		CopySource: aws.String("/copies-to/dst"), MetadataDirective: types.MetadataDirectiveReplace, ContentType: aws.String("text/plain"),
		Metadata: map[string]string{"camera": "rear"}, ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
	sha := sha256.Sum256(data)
	if err != nil || aws.ToString(out.CopyObjectResult.ETag) != etag ||
		aws.ToString(out.CopyObjectResult.ChecksumSHA256) != base64.StdEncoding.EncodeToString(sha[:]) {
		t.Fatalf("self-copy with REPLACE: %v, %+v", err, out)
	}
	head, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("copies-to"), Key: aws.String("dst")})
	if err != nil || aws.ToString(head.ContentType) != "text/plain" || !mapsEqual(head.Metadata, map[string]string{"camera": "rear"}) {
		t.Fatalf("head after REPLACE: %v, %+v", err, head)
	}
	if got := get(t, c, "copies-to", "dst"); !bytes.Equal(got, data) {
		t.Fatalf("self-copy changed the bytes")
	}
}

// testCopyMultipart copies an object written in two parts (one
// CopyObject: a plain MD5 ETag and a FULL_OBJECT CRC32 of the whole), then
// assembles a multipart upload of two ranges of it (one across its part
// boundary) and a part uploaded as usual.
func testCopyMultipart(t *testing.T, c *s3.Client) {
	ctx := t.Context()
	b := aws.String(copyBucket)
	data := randBytes(73, 5<<20+1000)
	create, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("mp"),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
	if err != nil {
		t.Fatal(err)
	}
	var parts []types.CompletedPart
	for i, p := range [][]byte{data[:5<<20], data[5<<20:]} {
		n := aws.Int32(int32(i + 1))
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: aws.String("mp"), UploadId: create.UploadId, PartNumber: n,
			Body: bytes.NewReader(p), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, types.CompletedPart{PartNumber: n, ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32})
	}
	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String("mp"),
		UploadId: create.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}); err != nil {
		t.Fatal(err)
	}

	out, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("mp-copy"), CopySource: aws.String(copyBucket + "/mp")})
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	etag := `"` + md5hex(data) + `"`
	if res := out.CopyObjectResult; aws.ToString(res.ETag) != etag || aws.ToString(res.ChecksumCRC32) != crc32Of(data) {
		t.Fatalf("copy of a multipart object answered %+v; want ETag %s, CRC32 %s", res, etag, crc32Of(data))
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("mp-copy"), PartNumber: aws.Int32(1)})
	if err != nil || aws.ToString(head.ETag) != etag || head.PartsCount != nil || aws.ToInt64(head.ContentLength) != int64(len(data)) {
		t.Fatalf("head part 1 of the copy: %v, %+v; want the whole object in one part", err, head)
	}
	if got := get(t, c, copyBucket, "mp-copy"); !bytes.Equal(got, data) {
		t.Fatalf("the copy has %d bytes, not the source's %d", len(got), len(data))
	}

	create, err = c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("assembled"),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
	if err != nil {
		t.Fatal(err)
	}
	id := create.UploadId
	pieces := [][]byte{data[1000 : 1000+5<<20], data[:5<<20], randBytes(74, 777)}
	parts = nil
	for i, rng := range []string{"bytes=1000-5243879", "bytes=0-5242879"} {
		n := aws.Int32(int32(i + 1))
		out, err := c.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: b, Key: aws.String("assembled"), UploadId: id, PartNumber: n,
			CopySource: aws.String(copyBucket + "/mp"), CopySourceRange: aws.String(rng)})
		if err != nil {
			t.Fatalf("copy %s into part %d: %v", rng, *n, err)
		}
		res := out.CopyPartResult
		if aws.ToString(res.ETag) != `"`+md5hex(pieces[i])+`"` || aws.ToString(res.ChecksumCRC32) != crc32Of(pieces[i]) ||
			res.LastModified == nil || out.CopySourceVersionId == nil {
			t.Fatalf("copy %s into part %d answered %+v, %+v", rng, *n, out, res)
		}
		parts = append(parts, types.CompletedPart{PartNumber: n, ETag: res.ETag, ChecksumCRC32: res.ChecksumCRC32})
	}
	last, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: aws.String("assembled"), UploadId: id, PartNumber: aws.Int32(3),
		Body: bytes.NewReader(pieces[2]), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
	if err != nil {
		t.Fatal(err)
	}
	parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(3), ETag: last.ETag, ChecksumCRC32: last.ChecksumCRC32})
	for _, tt := range []struct {
		name, rng, code string
		status          int
	}{
		{"a range past the end", "bytes=0-5243880", "InvalidRange", http.StatusRequestedRangeNotSatisfiable},
		{"a range starting past the end", "bytes=6000000-6000001", "InvalidRange", http.StatusRequestedRangeNotSatisfiable},
		{"an open range", "bytes=5-", "InvalidArgument", http.StatusBadRequest},
		{"a suffix range", "bytes=-5", "InvalidArgument", http.StatusBadRequest},
	} {
		_, err := c.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: b, Key: aws.String("assembled"), UploadId: id,
			PartNumber: aws.Int32(4), CopySource: aws.String(copyBucket + "/mp"), CopySourceRange: aws.String(tt.rng)})
		wantErr(t, tt.name, err, tt.code, tt.status)
	}
	_, err = c.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: b, Key: aws.String("assembled"), UploadId: id,
		PartNumber: aws.Int32(4), CopySource: aws.String(copyBucket + "/mp"), CopySourceIfMatch: aws.String(`"0123"`)})
	wantErr(t, "a part copy whose source condition fails", err, "PreconditionFailed", http.StatusPreconditionFailed)
	_, err = c.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: b, Key: aws.String("assembled"), UploadId: aws.String(strings.Repeat("ab", 16)),
		PartNumber: aws.Int32(4), CopySource: aws.String(copyBucket + "/mp")})
	wantErr(t, "a part copy into an unknown upload", err, "NoSuchUpload", http.StatusNotFound)

	done, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String("assembled"),
		UploadId: id, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	if err != nil {
		t.Fatalf("complete: %v", err)
	}
	if aws.ToString(done.ETag) != `"`+multipartETag(pieces...)+`"` || aws.ToString(done.ChecksumCRC32) != compositeCRC32(pieces...) {
		t.Fatalf("complete answered ETag %s, CRC32 %s", aws.ToString(done.ETag), aws.ToString(done.ChecksumCRC32))
	}
	if got := get(t, c, copyBucket, "assembled"); !bytes.Equal(got, bytes.Join(pieces, nil)) {
		t.Fatalf("the assembled object has %d bytes, not the concatenation of its parts", len(got))
	}
}

// testCopyConditions: the x-amz-copy-source-if-* conditions, with S3's
// precedence (If-Match over If-Unmodified-Since, If-None-Match over
// If-Modified-Since; every failure 412), and If-None-Match: * on the
// destination. A copy that fails leaves the destination as it was.
func testCopyConditions(t *testing.T, c *s3.Client) {
	ctx := t.Context()
	b := aws.String(copyBucket)
	data := randBytes(75, 1000)
	put(t, c, copyBucket, "cond-src", data)
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("cond-src")})
	if err != nil {
		t.Fatal(err)
	}
	etag, mod := head.ETag, *head.LastModified
	before, after := aws.Time(mod.Add(-time.Hour)), aws.Time(mod)
	for _, tt := range []struct {
		name string
		in   s3.CopyObjectInput
		ok   bool
	}{
		{"if-match", s3.CopyObjectInput{CopySourceIfMatch: etag}, true},
		{"if-match another", s3.CopyObjectInput{CopySourceIfMatch: aws.String(`"0123"`)}, false},
		{"if-none-match", s3.CopyObjectInput{CopySourceIfNoneMatch: etag}, false},
		{"if-none-match another", s3.CopyObjectInput{CopySourceIfNoneMatch: aws.String(`"0123"`)}, true},
		{"if-unmodified-since before", s3.CopyObjectInput{CopySourceIfUnmodifiedSince: before}, false},
		{"if-modified-since before", s3.CopyObjectInput{CopySourceIfModifiedSince: before}, true},
		{"if-modified-since the time", s3.CopyObjectInput{CopySourceIfModifiedSince: after}, false},
		{"if-match wins over if-unmodified-since", s3.CopyObjectInput{CopySourceIfMatch: etag, CopySourceIfUnmodifiedSince: before}, true},
		{"if-none-match wins over if-modified-since", s3.CopyObjectInput{CopySourceIfNoneMatch: aws.String(`"0123"`),
			CopySourceIfModifiedSince: after}, true},
		{"if-none-match * on the destination", s3.CopyObjectInput{IfNoneMatch: aws.String("*")}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			old := []byte("the destination before: " + tt.name)
			put(t, c, copyBucket, "cond-dst", old)
			in := tt.in
			in.Bucket, in.Key, in.CopySource = b, aws.String("cond-dst"), aws.String(copyBucket+"/cond-src")
			_, err := c.CopyObject(ctx, &in)
			want := data
			if tt.ok {
				if err != nil {
					t.Fatalf("copy: %v", err)
				}
			} else {
				wantErr(t, "copy", err, "PreconditionFailed", http.StatusPreconditionFailed)
				want = old
			}
			if got := get(t, c, copyBucket, "cond-dst"); !bytes.Equal(got, want) {
				t.Fatalf("the destination has %q", got[:min(len(got), 40)])
			}
		})
	}
	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("cond-new"), CopySource: aws.String(copyBucket + "/cond-src"),
		IfNoneMatch: aws.String("*")})
	if err != nil {
		t.Fatalf("copy with If-None-Match: * to a new key: %v", err)
	}
}

// testCopyErrors: a missing source key or bucket, a self-copy that
// changes nothing, version ids, a malformed source or directive, and the
// signature over x-amz-copy-source.
func testCopyErrors(t *testing.T, tg *testGateway, c *s3.Client) {
	ctx := t.Context()
	b := aws.String(copyBucket)
	put(t, c, copyBucket, "small", []byte("small"))
	info, err := tg.client.Stat(ctx, copyBucket, "small")
	if err != nil {
		t.Fatal(err)
	}
	gen := strconv.FormatUint(info.Generation, 10)
	for _, tt := range []struct {
		name, key, source string
		directive         types.MetadataDirective
		code              string // "" if the copy succeeds
		status            int
		bucket            string // of the destination; "" for copyBucket
	}{
		{"a missing key", "e1", copyBucket + "/no-such-key", "", "NoSuchKey", http.StatusNotFound, ""},
		{"a missing bucket", "e2", "no-such-bucket/small", "", "NoSuchBucket", http.StatusNotFound, ""},
		{"onto itself", "small", copyBucket + "/small", "", "InvalidRequest", http.StatusBadRequest, ""},
		{"onto itself with COPY", "small", copyBucket + "/small", types.MetadataDirectiveCopy, "InvalidRequest", http.StatusBadRequest, ""},
		{"no key", "e3", copyBucket, "", "InvalidArgument", http.StatusBadRequest, ""},
		{"a bad escape", "e4", copyBucket + "/sm%zzall", "", "InvalidArgument", http.StatusBadRequest, ""},
		{"its generation", "v1", copyBucket + "/small?versionId=" + gen, "", "", http.StatusOK, ""},
		{"version null", "v2", copyBucket + "/small?versionId=null", "", "", http.StatusOK, ""},
		{"another generation", "e5", copyBucket + "/small?versionId=1", "", "NoSuchVersion", http.StatusNotFound, ""},
		{"a malformed version", "e6", copyBucket + "/small?versionId=abc", "", "InvalidArgument", http.StatusBadRequest, ""},
		{"into a missing bucket", "e7", copyBucket + "/small", "", "NoSuchBucket", http.StatusNotFound, "no-such-bucket"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dstBucket := b
			if tt.bucket != "" {
				dstBucket = aws.String(tt.bucket)
			}
			_, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: dstBucket, Key: aws.String(tt.key), CopySource: aws.String(tt.source),
				MetadataDirective: tt.directive})
			if tt.code == "" {
				if err != nil {
					t.Fatalf("copy: %v", err)
				}
				if got := get(t, c, copyBucket, tt.key); string(got) != "small" {
					t.Fatalf("the copy has %q", got)
				}
				return
			}
			wantErr(t, "copy", err, tt.code, tt.status)
			if tt.key != "small" {
				_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String(tt.key)})
				wantErr(t, "the destination after a failed copy", err, "", http.StatusNotFound)
			}
		})
	}
	// The error document names the source that is missing.
	resp := rawRequest(t, tg, http.MethodPut, "/"+copyBucket+"/e8", nil, http.Header{"X-Amz-Copy-Source": {copyBucket + "/gone"}})
	if body := readAll(t, resp); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "<Key>gone</Key>") {
		t.Fatalf("copy of a missing key: %d %s", resp.StatusCode, body)
	}
	resp = rawRequest(t, tg, http.MethodPut, "/"+copyBucket+"/e8", []byte("a body"), http.Header{"X-Amz-Copy-Source": {copyBucket + "/small"}})
	if body := readAll(t, resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "<Code>InvalidRequest</Code>") {
		t.Fatalf("a copy with a body: %d %s", resp.StatusCode, body)
	}
	// x-amz-copy-source is signed: changed or added after signing, the
	// request is refused.
	req := signedRequest(t, tg.srv.URL, http.MethodPut, "/"+copyBucket+"/e9", nil, http.Header{"X-Amz-Copy-Source": {copyBucket + "/small"}})
	req.Header.Set("X-Amz-Copy-Source", copyBucket+"/mp")
	if resp := do(t, tg, req); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a copy source changed after signing: %d", resp.StatusCode)
	}
	req = signedRequest(t, tg.srv.URL, http.MethodPut, "/"+copyBucket+"/e9", nil, nil)
	req.Header.Set("X-Amz-Copy-Source", copyBucket+"/small")
	if resp := do(t, tg, req); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a copy source added after signing: %d", resp.StatusCode)
	}
	_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("e9")})
	wantErr(t, "the destination of refused copies", err, "", http.StatusNotFound)
}

func do(t *testing.T, tg *testGateway, req *http.Request) *http.Response {
	t.Helper()
	resp, err := tg.httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	return resp
}

// testCopySourceOverwritten overwrites the source of a copy after the
// copy pinned it: once its first bytes are read (the old shards are still
// there; the check before the commit finds the new generation), and
// before any byte is read, its old shards deleted (the reads fail with
// ErrClipChanged). Either way the copy fails and the destination stays
// absent.
func testCopySourceOverwritten(t *testing.T, tg *testGateway, c *s3.Client) {
	for i, tt := range []struct {
		name        string
		after       int64
		waitDeletes bool
	}{
		{"after the first bytes", 1, false},
		{"before the first byte, old shards deleted", 0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			key, dst := "over-src-"+strconv.Itoa(i), "over-dst-"+strconv.Itoa(i)
			put(t, c, copyBucket, key, randBytes(uint64(80+i), 2<<20))
			fresh := randBytes(uint64(90+i), 1000)
			tg.hook.set(t, func(r io.Reader) io.Reader {
				return &beforeRead{r: r, after: tt.after, fn: func() {
					if _, err := tg.client.Put(ctx, copyBucket, key, bytes.NewReader(fresh), nil); err != nil {
						t.Errorf("overwrite the source: %v", err)
					}
					if tt.waitDeletes {
						// Poll, not True: this runs in the gateway's goroutine.
						err := await.Poll(ctx, 10*time.Second, await.Interval, func() (bool, string) {
							st, err := tg.client.ClusterStatus(ctx)
							return err == nil && st.PendingDeletes == 0, fmt.Sprint(st, err)
						})
						if err != nil {
							t.Errorf("the old shards are not deleted: %v", err)
						}
					}
				}}
			})
			_, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(copyBucket), Key: aws.String(dst),
				CopySource: aws.String(copyBucket + "/" + key)})
			wantErr(t, "copy", err, "ServiceUnavailable", http.StatusServiceUnavailable)
			_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(copyBucket), Key: aws.String(dst)})
			wantErr(t, "the destination", err, "", http.StatusNotFound)
			if got := get(t, c, copyBucket, key); !bytes.Equal(got, fresh) {
				t.Fatalf("the source has %d bytes, not the %d it was overwritten with", len(got), len(fresh))
			}
		})
	}
}

func crc32Of(data []byte) string {
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(data)))
}

// TestParseCopySource reads x-amz-copy-source values.
func TestParseCopySource(t *testing.T) {
	for _, tt := range []struct {
		in                   string
		bucket, key, version string
		bad                  bool
	}{
		{in: "b/k", bucket: "b", key: "k"},
		{in: "/b/dir/k", bucket: "b", key: "dir/k"},
		{in: "b/a%20b%3Fc%2Bd", bucket: "b", key: "a b?c+d"},
		{in: "b/k?versionId=42", bucket: "b", key: "k", version: "42"},
		{in: "b/%E2%82%AC", bucket: "b", key: "€"},
		{in: "b", bad: true},
		{in: "b/", bad: true},
		{in: "/k", bad: true},
		{in: "", bad: true},
		{in: "b/%zz", bad: true},
		{in: "b/k?versionId=", bad: true},
	} {
		s, err := parseCopySource(tt.in)
		switch {
		case tt.bad && err == nil:
			t.Errorf("%q: %+v, want an error", tt.in, s)
		case !tt.bad && (err != nil || s != copySource{bucket: tt.bucket, key: tt.key, version: tt.version}):
			t.Errorf("%q: %+v, %v", tt.in, s, err)
		}
	}
}

// TestParseCopyRange reads x-amz-copy-source-range values.
func TestParseCopyRange(t *testing.T) {
	for _, tt := range []struct {
		in          string
		first, last int64
		ok, bad     bool
	}{
		{in: ""},
		{in: "bytes=0-0", ok: true},
		{in: "bytes=10-99", first: 10, last: 99, ok: true},
		{in: "bytes=5-4", bad: true},
		{in: "bytes=5-", bad: true},
		{in: "bytes=-5", bad: true},
		{in: "bytes=1-2,4-5", bad: true},
		{in: "5-9", bad: true},
	} {
		first, last, ok, err := parseCopyRange(tt.in)
		if (err != nil) != tt.bad || (!tt.bad && (first != tt.first || last != tt.last || ok != tt.ok)) {
			t.Errorf("%q: %d-%d %v %v", tt.in, first, last, ok, err)
		}
	}
}

// slowReader sleeps before its first read, then reads r; fail, if set, is
// what it answers instead.
type slowReader struct {
	r     io.Reader
	delay time.Duration
	fail  error
	slept bool
}

func (s *slowReader) Read(p []byte) (int, error) {
	if !s.slept {
		s.slept = true
		time.Sleep(s.delay)
	}
	if s.fail != nil {
		return 0, s.fail
	}
	return s.r.Read(p)
}

// testCopyKeepAlive: a copy that runs past the keep-alive delay answers
// 200 at once (the client's read timeout does not run out), keeps the
// connection alive, then sends the result; a copy that fails after that
// sends the error document within the 200, which the SDK reports as an
// error, and nothing becomes visible.
func testCopyKeepAlive(t *testing.T, tg *testGateway, c *s3.Client) {
	ctx := t.Context()
	tg.gw.keepAliveAfter.Store(int64(100 * time.Millisecond))
	t.Cleanup(func() { tg.gw.keepAliveAfter.Store(int64(defaultKeepAliveAfter)) })
	src := randBytes(101, 1<<20)
	put(t, c, copyBucket, "slow-src", src)
	const delay = 1500 * time.Millisecond // past one whitespace tick too
	tg.hook.set(t, func(r io.Reader) io.Reader { return &slowReader{r: r, delay: delay} })

	req := signedRequest(t, tg.srv.URL, http.MethodPut, "/"+copyBucket+"/slow-dst", nil,
		http.Header{"X-Amz-Copy-Source": {copyBucket + "/slow-src"}})
	start := time.Now()
	resp, err := tg.httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	headers := time.Since(start)
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusOK || headers >= delay || !strings.HasPrefix(body, xml.Header+" ") ||
		!strings.Contains(body, "<CopyObjectResult") {
		t.Fatalf("a slow copy: %d after %v (the copy took %v): %q", resp.StatusCode, headers, delay, body)
	}
	if got := get(t, c, copyBucket, "slow-dst"); !bytes.Equal(got, src) {
		t.Fatal("the slow copy reads back wrong")
	}
	if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(copyBucket), Key: aws.String("slow-sdk"),
		CopySource: aws.String(copyBucket + "/slow-src")}); err != nil {
		t.Fatalf("a slow copy through the SDK: %v", err)
	}

	tg.hook.set(t, func(r io.Reader) io.Reader {
		return &slowReader{r: r, delay: 300 * time.Millisecond, fail: errors.New("source gone")}
	})
	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(copyBucket), Key: aws.String("slow-fail"),
		CopySource: aws.String(copyBucket + "/slow-src")})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() == "" {
		t.Fatalf("a copy that fails after its 200: %v, want an S3 error from the body", err)
	}
	_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(copyBucket), Key: aws.String("slow-fail")})
	wantErr(t, "the failed copy's destination", err, "", http.StatusNotFound)
}
