package s3gw

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/crc64"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/clipstore/clipstore/client"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestGateway drives the gateway with the AWS SDK for Go v2's S3 client
// (and, where the SDK cannot send what a test needs, with requests signed
// by its signer), over one cluster shared by the subtests, each in its
// own bucket.
func TestGateway(t *testing.T) {
	tg := newTestGateway(t)
	c := tg.sdk(true)
	t.Run("buckets", func(t *testing.T) { testBuckets(t, c) })
	t.Run("round trips", func(t *testing.T) { testRoundTrips(t, tg) })
	t.Run("ranges", func(t *testing.T) { testRanges(t, tg, c) })
	t.Run("conditional reads", func(t *testing.T) { testConditionalReads(t, c) })
	t.Run("conditional writes", func(t *testing.T) { testConditionalWrites(t, c) })
	t.Run("metadata", func(t *testing.T) { testMetadata(t, c) })
	t.Run("digests", func(t *testing.T) { testDigests(t, tg, c) })
	t.Run("incomplete body", func(t *testing.T) { testIncompleteBody(t, tg, c) })
	t.Run("listings", func(t *testing.T) { testListings(t, tg, c) })
	t.Run("deletes", func(t *testing.T) { testDeletes(t, tg, c) })
	t.Run("not implemented", func(t *testing.T) { testNotImplemented(t, c) })
	t.Run("authentication", func(t *testing.T) { testAuthentication(t, tg) })
	t.Run("versioning", func(t *testing.T) { testVersioning(t, tg, c) })
	t.Run("presigned", func(t *testing.T) { testPresigned(t, tg, c) })
	t.Run("virtual host", func(t *testing.T) { testVirtualHost(t, tg) })
	t.Run("client goes away", func(t *testing.T) { testClientGoesAway(t, tg, c) })
	t.Run("multipart", func(t *testing.T) { testMultipart(t, tg) })
	t.Run("copy", func(t *testing.T) { testCopy(t, tg) })
	t.Run("metrics", func(t *testing.T) { testMetrics(t, tg) })
	t.Run("authorization", func(t *testing.T) { testAuthorization(t, tg) })
	t.Run("fast etags", func(t *testing.T) { testFastETags(t, tg) })
}

func testBuckets(t *testing.T, c *s3.Client) {
	ctx := t.Context()
	mkBucket(t, c, "crud")
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("crud")}); err != nil {
		t.Fatalf("head bucket: %v", err)
	}
	list, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil || !slices.ContainsFunc(list.Buckets, func(b types.Bucket) bool {
		return aws.ToString(b.Name) == "crud" && b.CreationDate != nil && time.Since(*b.CreationDate) < time.Minute
	}) {
		t.Fatalf("list buckets: %v, %+v", err, list)
	}
	loc, err := c.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String("crud")})
	if err != nil || loc.LocationConstraint != "" {
		t.Fatalf("bucket location: %+v, %v; want the empty constraint of us-east-1", loc, err)
	}
	_, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("crud")})
	wantErr(t, "create again", err, "BucketAlreadyOwnedByYou", http.StatusConflict)
	_, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("elsewhere"),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraintEuWest1}})
	wantErr(t, "create in another region", err, "InvalidLocationConstraint", http.StatusBadRequest)
	_, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("Bad_Name")})
	wantErr(t, "create with a bad name", err, "InvalidBucketName", http.StatusBadRequest)

	put(t, c, "crud", "k", []byte("x"))
	_, err = c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("crud")})
	wantErr(t, "delete a bucket that is not empty", err, "BucketNotEmpty", http.StatusConflict)
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("crud"), Key: aws.String("k")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("crud")}); err != nil {
		t.Fatalf("delete bucket: %v", err)
	}
	_, err = c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("crud")})
	wantErr(t, "head a deleted bucket", err, "", http.StatusNotFound)
	_, err = c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("crud")})
	wantErr(t, "delete a deleted bucket", err, "NoSuchBucket", http.StatusNotFound)
	_, err = c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("crud")})
	wantErr(t, "list a deleted bucket", err, "NoSuchBucket", http.StatusNotFound)
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("crud"), Key: aws.String("k"), Body: strings.NewReader("x")})
	wantErr(t, "put into a deleted bucket", err, "NoSuchBucket", http.StatusNotFound)
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("crud"), Key: aws.String("k")})
	wantErr(t, "get from a deleted bucket", err, "NoSuchBucket", http.StatusNotFound)
}

// testRoundTrips puts and gets objects of several sizes, byte-identical,
// over HTTPS (the SDK sends an aws-chunked body with the checksum in a
// trailer, or an unsigned payload without one) and plain HTTP (a signed
// payload, the checksum in a header), and reads the checksums back (the
// SDK checks the one it gets with the object).
func testRoundTrips(t *testing.T, tg *testGateway) {
	ctx := t.Context()
	tlsc, plain := tg.sdk(true), tg.sdkPlain()
	mkBucket(t, tlsc, "trips")
	for i, tt := range []struct {
		name string
		c    *s3.Client
		size int
		alg  types.ChecksumAlgorithm
	}{
		{"empty, trailer", tlsc, 0, types.ChecksumAlgorithmCrc32},
		{"1 byte, signed", plain, 1, ""},
		{"1 MiB + 17, trailer", tlsc, 1<<20 + 17, types.ChecksumAlgorithmCrc32c},
		{"1 MiB + 17, unsigned", tlsc, 1<<20 + 17, ""},
		{"1 MiB + 17, header", plain, 1<<20 + 17, types.ChecksumAlgorithmCrc32},
		{"5 MiB, trailer", tlsc, 5 << 20, types.ChecksumAlgorithmSha256},
		{"crc64nvme", tlsc, 1000, types.ChecksumAlgorithmCrc64nvme},
		{"sha1", plain, 1000, types.ChecksumAlgorithmSha1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := randBytes(uint64(i), tt.size)
			key := "obj/" + tt.name
			out, err := tt.c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("trips"), Key: aws.String(key),
				Body: bytes.NewReader(data), ChecksumAlgorithm: tt.alg})
			if err != nil {
				t.Fatalf("put: %v", err)
			}
			etag := `"` + md5hex(data) + `"`
			if aws.ToString(out.ETag) != etag {
				t.Errorf("put answered ETag %s, want %s", aws.ToString(out.ETag), etag)
			}
			get, err := tt.c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("trips"), Key: aws.String(key),
				ChecksumMode: types.ChecksumModeEnabled})
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			got, err := io.ReadAll(get.Body)
			get.Body.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("get: %d bytes (%v), not the %d put", len(got), err, len(data))
			}
			if aws.ToString(get.ETag) != etag || aws.ToInt64(get.ContentLength) != int64(len(data)) {
				t.Errorf("get: ETag %s, length %d", aws.ToString(get.ETag), aws.ToInt64(get.ContentLength))
			}
			head, err := tt.c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("trips"), Key: aws.String(key),
				ChecksumMode: types.ChecksumModeEnabled})
			if err != nil {
				t.Fatalf("head: %v", err)
			}
			if aws.ToString(head.ETag) != etag || aws.ToInt64(head.ContentLength) != int64(len(data)) ||
				aws.ToString(head.AcceptRanges) != "bytes" {
				t.Errorf("head: ETag %s, length %d, accept-ranges %s", aws.ToString(head.ETag),
					aws.ToInt64(head.ContentLength), aws.ToString(head.AcceptRanges))
			}
			sums := map[types.ChecksumAlgorithm]*string{types.ChecksumAlgorithmCrc32: head.ChecksumCRC32,
				types.ChecksumAlgorithmCrc32c: head.ChecksumCRC32C, types.ChecksumAlgorithmCrc64nvme: head.ChecksumCRC64NVME,
				types.ChecksumAlgorithmSha1: head.ChecksumSHA1, types.ChecksumAlgorithmSha256: head.ChecksumSHA256}
			for alg, v := range sums {
				if want := checksumOf(alg, tt.alg, data); aws.ToString(v) != want {
					t.Errorf("head: %s checksum %q, want %q", alg, aws.ToString(v), want)
				}
			}
		})
	}
	_, err := tlsc.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("trips"), Key: aws.String("no/such/key")})
	wantErr(t, "get a missing key", err, "NoSuchKey", http.StatusNotFound)
	_, err = tlsc.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("trips"), Key: aws.String("no/such/key")})
	wantErr(t, "head a missing key", err, "", http.StatusNotFound)
}

// checksumOf is the base64 checksum alg of data if it is the algorithm
// put, else "" (no other is stored). CRC-64/NVME is not in the standard
// library: the SDK's check on GetObject covers it.
func checksumOf(alg, put types.ChecksumAlgorithm, data []byte) string {
	if alg != put {
		return ""
	}
	var sum []byte
	switch alg {
	case types.ChecksumAlgorithmCrc32:
		sum = binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(data))
	case types.ChecksumAlgorithmCrc32c:
		sum = binary.BigEndian.AppendUint32(nil, crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)))
	case types.ChecksumAlgorithmSha1:
		s := sha1.Sum(data)
		sum = s[:]
	case types.ChecksumAlgorithmSha256:
		s := sha256.Sum256(data)
		sum = s[:]
	case types.ChecksumAlgorithmCrc64nvme:
		sum = binary.BigEndian.AppendUint64(nil, crc64.Checksum(data, crc64NVME))
	}
	return base64.StdEncoding.EncodeToString(sum)
}

func testRanges(t *testing.T, tg *testGateway, c *s3.Client) {
	ctx := t.Context()
	mkBucket(t, c, "ranges")
	data := randBytes(7, 1<<20+17)
	n := len(data)
	put(t, c, "ranges", "r", data)
	for _, tt := range []struct {
		rng         string
		first, last int    // the bytes expected, inclusive; -1: an error
		contentRng  string // "": a whole answer, 200
	}{
		{"bytes=0-9", 0, 9, fmt.Sprintf("bytes 0-9/%d", n)},
		{"bytes=1048570-1048580", 1048570, 1048580, fmt.Sprintf("bytes 1048570-1048580/%d", n)},
		{"bytes=1048576-", 1048576, n - 1, fmt.Sprintf("bytes 1048576-%d/%d", n-1, n)},
		{"bytes=-5", n - 5, n - 1, fmt.Sprintf("bytes %d-%d/%d", n-5, n-1, n)},
		{"bytes=100-99999999", 100, n - 1, fmt.Sprintf("bytes 100-%d/%d", n-1, n)},
		{"bytes=-99999999", 0, n - 1, fmt.Sprintf("bytes 0-%d/%d", n-1, n)},
		{"bytes=0-0,5-9", 0, n - 1, ""},
		{"bytes=9-5", 0, n - 1, ""},
		{"items=0-9", 0, n - 1, ""},
		{fmt.Sprintf("bytes=%d-", n), -1, -1, ""},
		{"bytes=-0", -1, -1, ""},
	} {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("ranges"), Key: aws.String("r"), Range: aws.String(tt.rng)})
		if tt.first < 0 {
			wantErr(t, tt.rng, err, "InvalidRange", http.StatusRequestedRangeNotSatisfiable)
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.rng, err)
			continue
		}
		got, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil || !bytes.Equal(got, data[tt.first:tt.last+1]) || aws.ToString(out.ContentRange) != tt.contentRng {
			t.Errorf("%s: %d bytes, Content-Range %q (%v); want bytes %d-%d, Content-Range %q", tt.rng, len(got),
				aws.ToString(out.ContentRange), err, tt.first, tt.last, tt.contentRng)
		}
	}
	resp := rawRequest(t, tg, http.MethodGet, "/ranges/r", nil, http.Header{"Range": {fmt.Sprintf("bytes=%d-", n+5)}})
	if readAll(t, resp); resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", n) {
		t.Errorf("unsatisfiable range: %d, Content-Range %q", resp.StatusCode, resp.Header.Get("Content-Range"))
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("ranges"), Key: aws.String("r"), PartNumber: aws.Int32(1)})
	if err != nil || aws.ToInt64(out.ContentLength) != int64(n) {
		t.Errorf("part 1: %v", err)
	} else {
		out.Body.Close()
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("ranges"), Key: aws.String("r"), PartNumber: aws.Int32(2)})
	wantErr(t, "part 2", err, "InvalidPartNumber", http.StatusRequestedRangeNotSatisfiable)
}

func testConditionalReads(t *testing.T, c *s3.Client) {
	ctx := t.Context()
	mkBucket(t, c, "conds")
	data := []byte("conditional")
	put(t, c, "conds", "k", data)
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("conds"), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	etag, mod := aws.ToString(head.ETag), aws.ToTime(head.LastModified)
	past := mod.Add(-time.Hour)
	for _, tt := range []struct {
		name                          string
		ifMatch, ifNoneMatch          string
		ifModifiedSince, ifUnmodSince time.Time
		want                          int
	}{
		{name: "if-match", ifMatch: etag, want: 200},
		{name: "if-match *", ifMatch: "*", want: 200},
		{name: "if-match other", ifMatch: `"0123"`, want: 412},
		{name: "if-none-match", ifNoneMatch: etag, want: 304},
		{name: "if-none-match other", ifNoneMatch: `"0123"`, want: 200},
		{name: "if-modified-since before", ifModifiedSince: past, want: 200},
		{name: "if-modified-since then", ifModifiedSince: mod, want: 304},
		{name: "if-unmodified-since before", ifUnmodSince: past, want: 412},
		{name: "if-unmodified-since then", ifUnmodSince: mod, want: 200},
		{name: "if-match wins over if-unmodified-since", ifMatch: etag, ifUnmodSince: past, want: 200},
		{name: "if-none-match wins over if-modified-since", ifNoneMatch: `"0123"`, ifModifiedSince: mod, want: 200},
		{name: "if-none-match and if-modified-since", ifNoneMatch: etag, ifModifiedSince: past, want: 304},
		{name: "412 before 304", ifMatch: `"0123"`, ifNoneMatch: etag, want: 412},
	} {
		in := &s3.GetObjectInput{Bucket: aws.String("conds"), Key: aws.String("k")}
		hin := &s3.HeadObjectInput{Bucket: aws.String("conds"), Key: aws.String("k")}
		if tt.ifMatch != "" {
			in.IfMatch, hin.IfMatch = aws.String(tt.ifMatch), aws.String(tt.ifMatch)
		}
		if tt.ifNoneMatch != "" {
			in.IfNoneMatch, hin.IfNoneMatch = aws.String(tt.ifNoneMatch), aws.String(tt.ifNoneMatch)
		}
		if !tt.ifModifiedSince.IsZero() {
			in.IfModifiedSince, hin.IfModifiedSince = aws.Time(tt.ifModifiedSince), aws.Time(tt.ifModifiedSince)
		}
		if !tt.ifUnmodSince.IsZero() {
			in.IfUnmodifiedSince, hin.IfUnmodifiedSince = aws.Time(tt.ifUnmodSince), aws.Time(tt.ifUnmodSince)
		}
		out, err := c.GetObject(ctx, in)
		if err == nil {
			out.Body.Close()
		}
		_, herr := c.HeadObject(ctx, hin)
		for what, err := range map[string]error{"get": err, "head": herr} {
			if got := statusOf(err); got != tt.want {
				t.Errorf("%s, %s: status %d (%v), want %d", tt.name, what, got, err, tt.want)
			}
		}
	}
}

func testConditionalWrites(t *testing.T, c *s3.Client) {
	ctx := t.Context()
	mkBucket(t, c, "condput")
	in := func(body string) *s3.PutObjectInput {
		return &s3.PutObjectInput{Bucket: aws.String("condput"), Key: aws.String("k"), Body: strings.NewReader(body)}
	}
	first := in("first")
	first.IfNoneMatch = aws.String("*")
	out, err := c.PutObject(ctx, first)
	if err != nil {
		t.Fatalf("put if-none-match * of a new key: %v", err)
	}
	second := in("second")
	second.IfNoneMatch = aws.String("*")
	_, err = c.PutObject(ctx, second)
	wantErr(t, "put if-none-match * of a key that exists", err, "PreconditionFailed", http.StatusPreconditionFailed)
	if got := get(t, c, "condput", "k"); string(got) != "first" {
		t.Fatalf("after a failed conditional put: %q", got)
	}
	stale := in("third")
	stale.IfMatch = aws.String(`"0123"`)
	_, err = c.PutObject(ctx, stale)
	wantErr(t, "put if-match a stale ETag", err, "PreconditionFailed", http.StatusPreconditionFailed)
	current := in("fourth")
	current.IfMatch = out.ETag
	if _, err := c.PutObject(ctx, current); err != nil {
		t.Fatalf("put if-match the current ETag: %v", err)
	}
	if got := get(t, c, "condput", "k"); string(got) != "fourth" {
		t.Fatalf("after conditional puts: %q, want fourth", got)
	}
}

func testMetadata(t *testing.T, c *s3.Client) {
	ctx := t.Context()
	mkBucket(t, c, "meta")
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("meta"), Key: aws.String("clip.mp4"),
		Body: strings.NewReader("video"), ContentType: aws.String("video/mp4"),
		Metadata: map[string]string{"vehicle": "v17", "Camera": "Front Left"}})
	if err != nil {
		t.Fatal(err)
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("meta"), Key: aws.String("clip.mp4")})
	want := map[string]string{"vehicle": "v17", "camera": "Front Left"}
	if err != nil || aws.ToString(head.ContentType) != "video/mp4" || !mapsEqual(head.Metadata, want) {
		t.Fatalf("head: %v, type %s, metadata %v; want video/mp4, %v", err, aws.ToString(head.ContentType), head.Metadata, want)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("meta"), Key: aws.String("clip.mp4"),
		ResponseContentType: aws.String("application/x-override"), ResponseContentDisposition: aws.String("attachment")})
	if err != nil {
		t.Fatal(err)
	}
	out.Body.Close()
	if aws.ToString(out.ContentType) != "application/x-override" || aws.ToString(out.ContentDisposition) != "attachment" ||
		!mapsEqual(out.Metadata, want) {
		t.Fatalf("get with response overrides: type %s, disposition %s, metadata %v", aws.ToString(out.ContentType),
			aws.ToString(out.ContentDisposition), out.Metadata)
	}
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("meta"), Key: aws.String("big"),
		Body: strings.NewReader("x"), Metadata: map[string]string{"big": strings.Repeat("m", 3000)}})
	wantErr(t, "metadata over 2 KiB", err, "MetadataTooLarge", http.StatusBadRequest)
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("meta"), Key: aws.String(strings.Repeat("k", 1025)),
		Body: strings.NewReader("x")})
	wantErr(t, "a key over 1024 bytes", err, "KeyTooLongError", http.StatusBadRequest)
}

// testDigests: a wrong Content-MD5 or checksum is refused and nothing
// becomes visible; the right ones are accepted.
func testDigests(t *testing.T, tg *testGateway, c *s3.Client) {
	ctx := t.Context()
	mkBucket(t, c, "digests")
	orig := []byte("the original bytes")
	put(t, c, "digests", "k", orig)
	other := []byte("other bytes")
	otherMD5 := md5.Sum(other)
	origMD5 := md5.Sum(orig)
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("digests"), Key: aws.String("k"),
		Body: bytes.NewReader(other), ContentMD5: aws.String(base64.StdEncoding.EncodeToString(origMD5[:]))})
	wantErr(t, "a wrong Content-MD5", err, "BadDigest", http.StatusBadRequest)
	if got := get(t, c, "digests", "k"); !bytes.Equal(got, orig) {
		t.Fatalf("after a put with a wrong Content-MD5: %q", got)
	}
	// The same as a raw request with a signed payload, without the SDK's
	// checksum: only Content-MD5 is checked.
	resp := rawRequest(t, tg, http.MethodPut, "/digests/new", other,
		http.Header{"Content-Md5": {base64.StdEncoding.EncodeToString(origMD5[:])}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(readAll(t, resp), "<Code>BadDigest</Code>") {
		t.Fatalf("raw put with a wrong Content-MD5: %d", resp.StatusCode)
	}
	resp = rawRequest(t, tg, http.MethodPut, "/digests/new", other, http.Header{"Content-Md5": {"not base64"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(readAll(t, resp), "<Code>InvalidDigest</Code>") {
		t.Fatalf("raw put with a malformed Content-MD5: %d", resp.StatusCode)
	}
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("digests"), Key: aws.String("new"),
		Body: bytes.NewReader(other), ChecksumCRC32C: aws.String("AAAAAA==")})
	wantErr(t, "a wrong x-amz-checksum-crc32c", err, "BadDigest", http.StatusBadRequest)
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("digests"), Key: aws.String("new"),
		Body: bytes.NewReader(other), ChecksumSHA256: aws.String("AAAA")})
	wantErr(t, "a malformed x-amz-checksum-sha256", err, "InvalidRequest", http.StatusBadRequest)
	chunked := http.Header{"X-Amz-Content-Sha256": {"STREAMING-UNSIGNED-PAYLOAD-TRAILER"}, "Content-Encoding": {"aws-chunked"},
		"X-Amz-Trailer": {"x-amz-checksum-crc32"}, "X-Amz-Decoded-Content-Length": {"5"}}
	resp = rawRequest(t, tg, http.MethodPut, "/digests/new",
		[]byte("5\r\nhello\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"), chunked)
	if b := readAll(t, resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(b, "<Code>BadDigest</Code>") {
		t.Fatalf("a wrong CRC32 in a trailer: %d %s", resp.StatusCode, b)
	}
	_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("digests"), Key: aws.String("new")})
	wantErr(t, "the key of the refused puts", err, "", http.StatusNotFound)

	crc := crc32.Checksum(other, crc32.MakeTable(crc32.Castagnoli))
	crcB64 := base64.StdEncoding.EncodeToString([]byte{byte(crc >> 24), byte(crc >> 16), byte(crc >> 8), byte(crc)})
	out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("digests"), Key: aws.String("new"),
		Body: bytes.NewReader(other), ChecksumCRC32C: aws.String(crcB64),
		ContentMD5: aws.String(base64.StdEncoding.EncodeToString(otherMD5[:]))})
	if err != nil || aws.ToString(out.ChecksumCRC32C) != crcB64 {
		t.Fatalf("put with the right Content-MD5 and CRC32C: %v, answered CRC32C %q", err, aws.ToString(out.ChecksumCRC32C))
	}
}

// testIncompleteBody: a body that ends before its Content-Length stores
// nothing.
func testIncompleteBody(t *testing.T, tg *testGateway, c *s3.Client) {
	mkBucket(t, c, "short")
	req := signedRequest(t, tg.plain.URL, http.MethodPut, "/short/k", nil, http.Header{"X-Amz-Content-Sha256": {"UNSIGNED-PAYLOAD"}})
	conn, err := tg.plainTransport.DialContext(t.Context(), "tcp", "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var head bytes.Buffer
	fmt.Fprintf(&head, "PUT /short/k HTTP/1.1\r\nHost: %s\r\nContent-Length: 100\r\n", req.Host)
	req.Header.Write(&head)
	head.WriteString("\r\n")
	head.Write(bytes.Repeat([]byte("x"), 60))
	conn.Write(head.Bytes())
	conn.(interface{ CloseWrite() error }).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "<Code>IncompleteBody</Code>") {
		t.Fatalf("a short body: %d %s", resp.StatusCode, body)
	}
	_, err = c.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String("short"), Key: aws.String("k")})
	wantErr(t, "the key of a short body", err, "", http.StatusNotFound)
}

func testListings(t *testing.T, tg *testGateway, c *s3.Client) {
	mkBucket(t, c, "lists")
	var keys []string
	for i := range 10 {
		keys = append(keys, fmt.Sprintf("dir1/k%02d", i))
	}
	for i := range 8 {
		keys = append(keys, fmt.Sprintf("dir2/k%02d", i))
	}
	for i := range 5 {
		keys = append(keys, fmt.Sprintf("top%02d", i))
	}
	keys = append(keys, "dir3/sub/x", "é/ü")
	slices.Sort(keys)
	for _, k := range keys {
		put(t, c, "lists", k, []byte(k))
	}
	all := func(items []string) []string { return items } // for readability below
	for _, tt := range []struct {
		name                       string
		prefix, delimiter, startAt string
		maxKeys                    int32
		want                       []string // keys, and common prefixes ending in the delimiter
	}{
		{name: "everything in pages of 7", maxKeys: 7, want: all(keys)},
		{name: "everything", want: all(keys)},
		{name: "delimiter", delimiter: "/", want: []string{"dir1/", "dir2/", "dir3/", "top00", "top01", "top02", "top03", "top04", "é/"}},
		{name: "delimiter in pages of 2", delimiter: "/", maxKeys: 2,
			want: []string{"dir1/", "dir2/", "dir3/", "top00", "top01", "top02", "top03", "top04", "é/"}},
		{name: "prefix", prefix: "dir2/", maxKeys: 3, want: keys[10:18]},
		{name: "prefix and delimiter", prefix: "dir3/", delimiter: "/", want: []string{"dir3/sub/"}},
		{name: "start-after", startAt: "dir2/k05", maxKeys: 7, want: keys[16:]},
		{name: "start-after in a common prefix", delimiter: "/", startAt: "dir1/k05",
			want: []string{"dir2/", "dir3/", "top00", "top01", "top02", "top03", "top04", "é/"}},
		{name: "start-after a common prefix", delimiter: "/", startAt: "dir2/", maxKeys: 4,
			want: []string{"dir3/", "top00", "top01", "top02", "top03", "top04", "é/"}},
		{name: "no match", prefix: "nothing", want: nil},
	} {
		got, pages := listV2(t, c, "lists", tt.prefix, tt.delimiter, tt.startAt, tt.maxKeys)
		if !slices.Equal(got, tt.want) {
			t.Errorf("v2 %s: %q, want %q", tt.name, got, tt.want)
		}
		if tt.maxKeys > 0 && pages != (len(tt.want)+int(tt.maxKeys)-1)/int(tt.maxKeys) {
			t.Errorf("v2 %s: %d pages of %d for %d entries", tt.name, pages, tt.maxKeys, len(tt.want))
		}
		if tt.startAt == "" {
			if got := listV1(t, c, "lists", tt.prefix, tt.delimiter, tt.maxKeys); !slices.Equal(got, tt.want) {
				t.Errorf("v1 %s: %q, want %q", tt.name, got, tt.want)
			}
		}
	}
	// Skipping the rest of a common prefix by listing again after it
	// gives the same answer as stepping over its keys: a gateway that
	// steps over one key at most.
	gw, err := New(Config{Client: tg.client, Keys: testKeys})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	gw.skipBudget = 1
	srv := httptest.NewServer(gw)
	defer srv.Close()
	tr := dialing(srv.Listener.Addr().String())
	defer tr.CloseIdleConnections()
	got, _ := listV2(t, newSDK(srv.URL, true, &http.Client{Transport: tr}), "lists", "", "/", "", 3)
	if want := []string{"dir1/", "dir2/", "dir3/", "top00", "top01", "top02", "top03", "top04", "é/"}; !slices.Equal(got, want) {
		t.Errorf("skipping common prefixes by new listings: %q, want %q", got, want)
	}

	put(t, c, "lists", "enc/a b+c&d", []byte("x"))
	out, err := c.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String("lists"), Prefix: aws.String("enc/"),
		EncodingType: types.EncodingTypeUrl})
	if err != nil || len(out.Contents) != 1 || aws.ToString(out.Contents[0].Key) != "enc/a%20b%2Bc%26d" {
		t.Fatalf("encoding-type=url: %v, %+v", err, out)
	}
	_, err = c.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String("lists"), ContinuationToken: aws.String("!!")})
	wantErr(t, "a bad continuation token", err, "InvalidArgument", http.StatusBadRequest)
}

// listV2 lists with ListObjectsV2 page by page and returns the keys and
// common prefixes in order, and the number of pages.
func listV2(t *testing.T, c *s3.Client, bucket, prefix, delimiter, startAfter string, maxKeys int32) ([]string, int) {
	t.Helper()
	in := &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix), Delimiter: aws.String(delimiter),
		StartAfter: aws.String(startAfter)}
	if maxKeys > 0 {
		in.MaxKeys = aws.Int32(maxKeys)
	}
	var got []string
	pages := 0
	for {
		out, err := c.ListObjectsV2(t.Context(), in)
		if err != nil {
			t.Fatalf("list v2: %v", err)
		}
		pages++
		if n := len(out.Contents) + len(out.CommonPrefixes); int(aws.ToInt32(out.KeyCount)) != n ||
			(maxKeys > 0 && n > int(maxKeys)) {
			t.Fatalf("list v2: KeyCount %d for %d entries, max-keys %d", aws.ToInt32(out.KeyCount), n, maxKeys)
		}
		got = append(got, merge(out.Contents, out.CommonPrefixes)...)
		if !aws.ToBool(out.IsTruncated) {
			return got, pages
		}
		if pages > 100 {
			t.Fatal("list v2: more than 100 pages")
		}
		in.ContinuationToken = out.NextContinuationToken
	}
}

// listV1 lists with ListObjects, following NextMarker (with a delimiter)
// or the last key.
func listV1(t *testing.T, c *s3.Client, bucket, prefix, delimiter string, maxKeys int32) []string {
	t.Helper()
	in := &s3.ListObjectsInput{Bucket: aws.String(bucket), Prefix: aws.String(prefix), Delimiter: aws.String(delimiter)}
	if maxKeys > 0 {
		in.MaxKeys = aws.Int32(maxKeys)
	}
	var got []string
	for range 100 {
		out, err := c.ListObjects(t.Context(), in)
		if err != nil {
			t.Fatalf("list v1: %v", err)
		}
		page := merge(out.Contents, out.CommonPrefixes)
		got = append(got, page...)
		if !aws.ToBool(out.IsTruncated) {
			return got
		}
		switch {
		case delimiter != "" && aws.ToString(out.NextMarker) != page[len(page)-1]:
			t.Fatalf("list v1: NextMarker %q, the page ends with %q", aws.ToString(out.NextMarker), page[len(page)-1])
		case delimiter == "" && out.NextMarker != nil:
			t.Fatalf("list v1: NextMarker %q without a delimiter", aws.ToString(out.NextMarker))
		}
		in.Marker = aws.String(page[len(page)-1])
	}
	t.Fatal("list v1: more than 100 pages")
	return nil
}

// merge returns the keys and common prefixes of a page in key order.
func merge(objs []types.Object, prefixes []types.CommonPrefix) []string {
	var out []string
	for _, o := range objs {
		out = append(out, aws.ToString(o.Key))
	}
	for _, p := range prefixes {
		out = append(out, aws.ToString(p.Prefix))
	}
	slices.Sort(out)
	return out
}

func testDeletes(t *testing.T, tg *testGateway, c *s3.Client) {
	ctx := t.Context()
	mkBucket(t, c, "deletes")
	for _, k := range []string{"a", "b", "c", "d"} {
		put(t, c, "deletes", k, []byte(k))
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("deletes"), Key: aws.String("missing")}); err != nil {
		t.Fatalf("delete a missing key: %v", err)
	}
	_, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("no-such-bucket"), Key: aws.String("k")})
	wantErr(t, "delete in a missing bucket", err, "NoSuchBucket", http.StatusNotFound)
	ids := func(keys ...string) *types.Delete {
		d := &types.Delete{}
		for _, k := range keys {
			d.Objects = append(d.Objects, types.ObjectIdentifier{Key: aws.String(k)})
		}
		return d
	}
	out, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("deletes"), Delete: ids("a", "b", "missing")})
	if err != nil || len(out.Errors) != 0 || len(out.Deleted) != 3 {
		t.Fatalf("delete objects: %v, %+v", err, out)
	}
	quiet := ids("c")
	quiet.Quiet = aws.Bool(true)
	out, err = c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("deletes"), Delete: quiet})
	if err != nil || len(out.Errors) != 0 || len(out.Deleted) != 0 {
		t.Fatalf("quiet delete objects: %v, %+v", err, out)
	}
	if got, _ := listV2(t, c, "deletes", "", "", "", 0); !slices.Equal(got, []string{"d"}) {
		t.Fatalf("after the deletes: %q, want [d]", got)
	}
	many := make([]string, 1001)
	for i := range many {
		many[i] = fmt.Sprint(i)
	}
	_, err = c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("deletes"), Delete: ids(many...)})
	wantErr(t, "delete 1001 objects", err, "MalformedXML", http.StatusBadRequest)
	body := []byte(`<Delete><Object><Key>d</Key></Object></Delete>`)
	resp := rawRequest(t, tg, http.MethodPost, "/deletes?delete", body, nil)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(readAll(t, resp), "<Code>InvalidRequest</Code>") {
		t.Fatalf("delete objects without Content-MD5: %d", resp.StatusCode)
	}
	sum := md5.Sum(body)
	resp = rawRequest(t, tg, http.MethodPost, "/deletes?delete", body,
		http.Header{"Content-Md5": {base64.StdEncoding.EncodeToString(sum[:])}})
	if b := readAll(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(b, "<Deleted><Key>d</Key></Deleted>") {
		t.Fatalf("delete objects with Content-MD5: %d %s", resp.StatusCode, b)
	}
}

func testNotImplemented(t *testing.T, c *s3.Client) {
	ctx := t.Context()
	mkBucket(t, c, "unimpl")
	put(t, c, "unimpl", "k", []byte("x"))
	b, k := aws.String("unimpl"), aws.String("k")
	for name, call := range map[string]func() error{
		"PutBucketVersioning": func() error {
			_, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: b,
				VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}})
			return err
		},
		"GetObjectAcl": func() error {
			_, err := c.GetObjectAcl(ctx, &s3.GetObjectAclInput{Bucket: b, Key: k})
			return err
		},
		"GetBucketTagging": func() error {
			_, err := c.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: b})
			return err
		},
		"ListObjectVersions": func() error {
			_, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: b})
			return err
		},
	} {
		wantErr(t, name, call(), "NotImplemented", http.StatusNotImplemented)
	}
	if got := get(t, c, "unimpl", "k"); string(got) != "x" {
		t.Fatalf("after the unimplemented calls: %q", got)
	}
}

func testAuthentication(t *testing.T, tg *testGateway) {
	resp, err := tg.httpClient().Get(tg.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "<Code>AccessDenied</Code>") ||
		!strings.Contains(body, "<RequestId>"+resp.Header.Get("X-Amz-Request-Id")+"</RequestId>") ||
		len(resp.Header.Get("X-Amz-Request-Id")) != 16 {
		t.Fatalf("an unsigned request: %d, request id %q, %s", resp.StatusCode, resp.Header.Get("X-Amz-Request-Id"), body)
	}
	for _, tt := range []struct {
		name, key, secret, region, code string
		status                          int
	}{
		{"a wrong secret", testAccessKey, "wrong", DefaultRegion, "SignatureDoesNotMatch", http.StatusForbidden},
		{"an unknown key", "NOSUCHKEY", testSecret, DefaultRegion, "InvalidAccessKeyId", http.StatusForbidden},
		{"another region", testAccessKey, testSecret, "eu-west-1", "AuthorizationHeaderMalformed", http.StatusBadRequest},
	} {
		c := tg.sdk(true, func(o *s3.Options) {
			o.Credentials = credentials.NewStaticCredentialsProvider(tt.key, tt.secret, "")
			o.Region = tt.region
		})
		_, err := c.ListBuckets(t.Context(), &s3.ListBucketsInput{})
		wantErr(t, tt.name, err, tt.code, tt.status)
	}
	// The answer to a request signed for another region names the region
	// to sign for, as S3's does (s3cmd signs again for it).
	other := s3.NewPresignClient(tg.sdk(true, func(o *s3.Options) { o.Region = "US" }))
	preq, err := other.PresignGetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String("nosuchbucket"), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	resp, err = tg.httpClient().Get(preq.URL)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "<Region>"+DefaultRegion+"</Region>") {
		t.Fatalf("a request signed for region US: %d %s", resp.StatusCode, body)
	}
}

// testVersioning: a bucket's versioning is never enabled, and says so.
// testVersioning: buckets do not version, but a generation a dataset
// keeps reads as the object's version (its versionId the generation),
// after the key is overwritten; an unkept one is NoSuchVersion.
func testVersioning(t *testing.T, tg *testGateway, c *s3.Client) {
	ctx := t.Context()
	mkBucket(t, c, "versioning")
	v, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String("versioning")})
	if err != nil || v.Status != "" {
		t.Fatalf("versioning of a bucket: %+v, %v", v, err)
	}
	_, err = c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String("nosuchbucket")})
	wantErr(t, "versioning of a missing bucket", err, "NoSuchBucket", http.StatusNotFound)

	old := randBytes(7, 70_000)
	put(t, c, "versioning", "clip", old)
	info, err := tg.client.Stat(ctx, "versioning", "clip")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tg.client.CreateDataset(ctx, client.DatasetSpec{Name: "versioning-v1", Bucket: "versioning", Keys: []string{"clip"}}); err != nil {
		t.Fatal(err)
	}
	put(t, c, "versioning", "clip", []byte("new"))
	version := aws.String(strconv.FormatUint(info.Generation, 10))
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("versioning"), Key: aws.String("clip"), VersionId: version})
	if err != nil {
		t.Fatalf("get the dataset's version: %v", err)
	}
	got, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if !bytes.Equal(got, old) || aws.ToString(out.VersionId) != *version {
		t.Fatalf("version %s: %d bytes, version id %q", *version, len(got), aws.ToString(out.VersionId))
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("versioning"), Key: aws.String("clip"), VersionId: version})
	if err != nil || aws.ToInt64(head.ContentLength) != int64(len(old)) {
		t.Fatalf("head the dataset's version: %v, %v", head, err)
	}
	if got := get(t, c, "versioning", "clip"); string(got) != "new" {
		t.Fatalf("the current version: %q", got)
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("versioning"), Key: aws.String("clip"), VersionId: aws.String("1")})
	wantErr(t, "get an unkept version", err, "NoSuchVersion", http.StatusNotFound)
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("versioning"), Key: aws.String("clip"), VersionId: aws.String("x")})
	wantErr(t, "get a malformed version", err, "InvalidArgument", http.StatusBadRequest)
	if _, err := tg.client.DeleteDataset(ctx, "versioning-v1"); err != nil {
		t.Fatal(err)
	}
}

func testPresigned(t *testing.T, tg *testGateway, c *s3.Client) {
	ctx := t.Context()
	mkBucket(t, c, "presign")
	pc := s3.NewPresignClient(c)
	data := randBytes(99, 100_000)
	preq, err := pc.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("presign"), Key: aws.String("p")})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, preq.Method, preq.URL, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = preq.SignedHeader.Clone()
	resp, err := tg.httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(t, resp); resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") != `"`+md5hex(data)+`"` {
		t.Fatalf("presigned put: %d %s", resp.StatusCode, b)
	}
	greq, err := pc.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("presign"), Key: aws.String("p")})
	if err != nil {
		t.Fatal(err)
	}
	resp, err = tg.httpClient().Get(greq.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); resp.StatusCode != http.StatusOK || got != string(data) {
		t.Fatalf("presigned get: %d, %d bytes", resp.StatusCode, len(got))
	}
}

// testVirtualHost addresses the bucket as <bucket>.s3.test.
func testVirtualHost(t *testing.T, tg *testGateway) {
	ctx := t.Context()
	c := tg.sdk(false)
	mkBucket(t, c, "vhost")
	data := randBytes(5, 3000)
	put(t, c, "vhost", "a/b c", data)
	if got := get(t, c, "vhost", "a/b c"); !bytes.Equal(got, data) {
		t.Fatalf("virtual-host get: %d bytes", len(got))
	}
	if got, _ := listV2(t, c, "vhost", "", "/", "", 0); !slices.Equal(got, []string{"a/"}) {
		t.Fatalf("virtual-host listing: %q", got)
	}
	// The path-style client sees the same bucket.
	if got := get(t, tg.sdk(true), "vhost", "a/b c"); !bytes.Equal(got, data) {
		t.Fatalf("path-style get of a virtual-host put: %d bytes", len(got))
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("vhost"), Key: aws.String("a/b c")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("vhost")}); err != nil {
		t.Fatal(err)
	}
}

// testClientGoesAway: a client that leaves in the middle of a large
// GetObject ends the request (the reads stop with its context).
func testClientGoesAway(t *testing.T, tg *testGateway, c *s3.Client) {
	mkBucket(t, c, "leave")
	put(t, c, "leave", "big", randBytes(3, 5<<20))
	req := signedRequest(t, tg.plain.URL, http.MethodGet, "/leave/big", nil, nil)
	conn, err := tg.plainTransport.DialContext(t.Context(), "tcp", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("get: %v", err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(tg.gw.metrics.inFlight) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the gateway still serves a GetObject whose client left 10 s ago")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testMetrics(t *testing.T, tg *testGateway) {
	m := tg.gw.metrics
	if n := testutil.ToFloat64(m.requests.WithLabelValues("PutObject", "200")); n < 10 {
		t.Errorf("PutObject 200 counted %v times", n)
	}
	if n := testutil.ToFloat64(m.requests.WithLabelValues("NotImplemented", "501")); n < 1 {
		t.Errorf("NotImplemented 501 counted %v times", n)
	}
	if n := testutil.ToFloat64(m.received.WithLabelValues("PutObject")); n < 5<<20 {
		t.Errorf("PutObject received %v bytes", n)
	}
	if n := testutil.ToFloat64(m.sent.WithLabelValues("GetObject")); n < 5<<20 {
		t.Errorf("GetObject sent %v bytes", n)
	}
	if n := testutil.CollectAndCount(m.seconds); n < 10 {
		t.Errorf("latency histogram has %d series", n)
	}
	if len(tg.gw.Collectors()) != 6 {
		t.Errorf("Collectors: %d", len(tg.gw.Collectors()))
	}
}

// --- helpers

func mkBucket(t *testing.T, c *s3.Client, name string) {
	t.Helper()
	if _, err := c.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}

func put(t *testing.T, c *s3.Client, bucket, key string, data []byte) {
	t.Helper()
	if _, err := c.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Body: bytes.NewReader(data)}); err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
}

func get(t *testing.T, c *s3.Client, bucket, key string) []byte {
	t.Helper()
	out, err := c.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	return b
}

// wantErr fails the test unless err is an S3 error with the code (any,
// if empty: HEAD answers have no body) and HTTP status.
func wantErr(t *testing.T, what string, err error, code string, status int) {
	t.Helper()
	var ae smithy.APIError
	switch {
	case err == nil:
		t.Errorf("%s: no error, want %s (%d)", what, code, status)
	case statusOf(err) != status:
		t.Errorf("%s: status %d (%v), want %d", what, statusOf(err), err, status)
	case code != "" && (!errors.As(err, &ae) || ae.ErrorCode() != code):
		t.Errorf("%s: %v, want the code %s", what, err, code)
	}
}

// statusOf is the HTTP status of an SDK call's answer: 200 if err is nil.
func statusOf(err error) int {
	var re *awshttp.ResponseError
	switch {
	case err == nil:
		return http.StatusOK
	case errors.As(err, &re):
		return re.HTTPStatusCode()
	}
	return 0
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// signedRequest is a request to base+path signed by the SDK's signer,
// with the body's SHA-256 as the payload hash unless hdr sets another.
func signedRequest(t *testing.T, base, method, path string, body []byte, hdr http.Header) *http.Request {
	t.Helper()
	return signedRequestAs(t, testAccessKey, base, method, path, body, hdr)
}

// signedRequestAs is signedRequest signed with another test access key.
func signedRequestAs(t *testing.T, accessKey, base, method, path string, body []byte, hdr http.Header) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	hash := req.Header.Get("X-Amz-Content-Sha256")
	if hash == "" {
		sum := sha256.Sum256(body)
		hash = hex.EncodeToString(sum[:])
		req.Header.Set("X-Amz-Content-Sha256", hash)
	}
	creds := aws.Credentials{AccessKeyID: accessKey, SecretAccessKey: testSecret}
	if err := v4.NewSigner().SignHTTP(t.Context(), creds, req, hash, "s3", DefaultRegion, time.Now()); err != nil {
		t.Fatal(err)
	}
	return req
}

// rawRequestAs sends a request signed with another test access key.
func rawRequestAs(t *testing.T, tg *testGateway, accessKey, method, path string, body []byte, hdr http.Header) *http.Response {
	t.Helper()
	resp, err := tg.httpClient().Do(signedRequestAs(t, accessKey, tg.srv.URL, method, path, body, hdr))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// rawRequest sends a signed request and returns the answer.
func rawRequest(t *testing.T, tg *testGateway, method, path string, body []byte, hdr http.Header) *http.Response {
	t.Helper()
	resp, err := tg.httpClient().Do(signedRequest(t, tg.srv.URL, method, path, body, hdr))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
