package s3gw

import (
	"bytes"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/clipstore/clipstore/client"
)

// TestWriteHeaders drives, over one cluster, what the headers of a write
// ask for beyond its bytes: capture attributes in x-amz-meta-*, and ACL
// and storage-class headers that ask for the default.
func TestWriteHeaders(t *testing.T) {
	tg := newTestGateway(t)
	c := tg.sdk(true)
	t.Run("capture attributes", func(t *testing.T) { testCaptureAttributes(t, tg, c) })
	t.Run("capture attributes, multipart", func(t *testing.T) { testCaptureMultipart(t, tg, c) })
	t.Run("malformed capture attributes", func(t *testing.T) { testCaptureRefused(t, tg, c) })
	t.Run("default ACL and storage class", func(t *testing.T) { testDefaultHeaders(t, tg, c) })
}

// captureMeta is what an ingest tool sends: offsets and fractions in the
// times, spaces in the tags, so that the round trip shows they come back
// as sent.
var captureMeta = map[string]string{
	"vehicle-id":    "veh-0042",
	"camera":        "front-left",
	"capture-start": "2024-05-01T15:45:00.25+02:00",
	"capture-end":   "2024-05-01T13:46:30Z",
	"tags":          "rain, night,highway",
	"rig":           "r2", // not a capture attribute
}

// wantCapture is captureMeta's typed form.
var wantCapture = client.Capture{VehicleID: "veh-0042", Camera: "front-left",
	Start: time.Date(2024, 5, 1, 13, 45, 0, 250e6, time.UTC), End: time.Date(2024, 5, 1, 13, 46, 30, 0, time.UTC),
	Tags: []string{"rain", "night", "highway"}}

func checkCapture(t *testing.T, what string, got *client.Capture, want client.Capture) {
	t.Helper()
	if got == nil || got.VehicleID != want.VehicleID || got.Camera != want.Camera || !got.Start.Equal(want.Start) ||
		!got.End.Equal(want.End) || !slices.Equal(got.Tags, want.Tags) {
		t.Errorf("%s: capture %+v, want %+v", what, got, want)
	}
}

// checkMetaHeaders checks the x-amz-meta-* headers of an answer as they
// came over the wire: exactly those sent, values byte for byte.
func checkMetaHeaders(t *testing.T, what string, md middleware.Metadata, want map[string]string) {
	t.Helper()
	resp, ok := awsmiddleware.GetRawResponse(md).(*smithyhttp.Response)
	if !ok {
		t.Fatalf("%s: no raw response", what)
	}
	got := map[string]string{}
	for name, vals := range resp.Header {
		if meta, ok := strings.CutPrefix(strings.ToLower(name), "x-amz-meta-"); ok {
			got[meta] = strings.Join(vals, "|")
		}
	}
	if !mapsEqual(got, want) {
		t.Errorf("%s: x-amz-meta-* headers %v, want %v", what, got, want)
	}
}

// testCaptureAttributes: a PutObject's capture headers become the clip's
// typed attributes, as a native client's Stat shows them, and GET and
// HEAD answer the headers sent; a copy keeps both.
func testCaptureAttributes(t *testing.T, tg *testGateway, c *s3.Client) {
	ctx := t.Context()
	mkBucket(t, c, "capture")
	data := randBytes(41, 100_000)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("capture"), Key: aws.String("clip.mp4"),
		Body: bytes.NewReader(data), Metadata: captureMeta}); err != nil {
		t.Fatal(err)
	}
	info, err := tg.client.Stat(ctx, "capture", "clip.mp4")
	if err != nil {
		t.Fatal(err)
	}
	checkCapture(t, "native stat", info.Capture, wantCapture)
	if !mapsEqual(info.Metadata, captureMeta) {
		t.Errorf("native stat: metadata %v, want %v", info.Metadata, captureMeta)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("capture"), Key: aws.String("clip.mp4")})
	if err != nil {
		t.Fatal(err)
	}
	out.Body.Close()
	checkMetaHeaders(t, "get", out.ResultMetadata, captureMeta)
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("capture"), Key: aws.String("clip.mp4")})
	if err != nil {
		t.Fatal(err)
	}
	checkMetaHeaders(t, "head", head.ResultMetadata, captureMeta)

	if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("capture"), Key: aws.String("copy.mp4"),
		CopySource: aws.String("capture/clip.mp4")}); err != nil {
		t.Fatal(err)
	}
	info, err = tg.client.Stat(ctx, "capture", "copy.mp4")
	if err != nil {
		t.Fatal(err)
	}
	checkCapture(t, "copy", info.Capture, wantCapture)
	if !mapsEqual(info.Metadata, captureMeta) {
		t.Errorf("copy: metadata %v, want %v", info.Metadata, captureMeta)
	}
	if got := get(t, c, "capture", "copy.mp4"); !bytes.Equal(got, data) {
		t.Errorf("copy: %d bytes, not the %d put", len(got), len(data))
	}

	// Metadata without capture headers stores no capture.
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("capture"), Key: aws.String("plain"),
		Body: strings.NewReader("x"), Metadata: map[string]string{"rig": "r2"}}); err != nil {
		t.Fatal(err)
	}
	if info, err := tg.client.Stat(ctx, "capture", "plain"); err != nil || info.Capture != nil {
		t.Errorf("stat of an object without capture headers: %v, capture %+v", err, info)
	}
}

// testCaptureMultipart: CreateMultipartUpload's capture headers are the
// completed object's.
func testCaptureMultipart(t *testing.T, tg *testGateway, c *s3.Client) {
	ctx := t.Context()
	mkBucket(t, c, "capture-mp")
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("capture-mp"),
		Key: aws.String("clip.mp4"), Metadata: captureMeta})
	if err != nil {
		t.Fatal(err)
	}
	parts := [][]byte{randBytes(42, minPartSize), randBytes(43, 1000)}
	var done []types.CompletedPart
	for i, p := range parts {
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("capture-mp"), Key: aws.String("clip.mp4"),
			UploadId: up.UploadId, PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(p)})
		if err != nil {
			t.Fatal(err)
		}
		done = append(done, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.ETag})
	}
	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("capture-mp"),
		Key: aws.String("clip.mp4"), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done}}); err != nil {
		t.Fatal(err)
	}
	info, err := tg.client.Stat(ctx, "capture-mp", "clip.mp4")
	if err != nil {
		t.Fatal(err)
	}
	checkCapture(t, "native stat of a multipart object", info.Capture, wantCapture)
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("capture-mp"), Key: aws.String("clip.mp4")})
	if err != nil {
		t.Fatal(err)
	}
	checkMetaHeaders(t, "head of a multipart object", head.ResultMetadata, captureMeta)
}

// testCaptureRefused: a malformed capture attribute is InvalidArgument,
// and nothing is stored.
func testCaptureRefused(t *testing.T, tg *testGateway, c *s3.Client) {
	ctx := t.Context()
	mkBucket(t, c, "capture-bad")
	for _, tt := range []struct {
		name   string
		md     map[string]string
		header string // named by the message
	}{
		{"start not RFC 3339", map[string]string{"capture-start": "2024-05-01 13:45:00"}, "x-amz-meta-capture-start"},
		{"end not a time", map[string]string{"vehicle-id": "v1", "capture-end": "yesterday"}, "x-amz-meta-capture-end"},
		{"end before start", map[string]string{"capture-start": "2024-05-01T13:45:00Z", "capture-end": "2024-05-01T13:44:00Z"},
			"x-amz-meta-capture-end"},
		{"vehicle id over meta's bound", map[string]string{"vehicle-id": strings.Repeat("v", 300)}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("capture-bad"), Key: aws.String(tt.name),
				Body: strings.NewReader("video"), Metadata: tt.md})
			wantErr(t, "put", err, "InvalidArgument", http.StatusBadRequest)
			if _, err := tg.client.Stat(ctx, "capture-bad", tt.name); !errors.Is(err, client.ErrNotFound) {
				t.Errorf("after a refused put: stat %v, want not found", err)
			}
			_, err = c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("capture-bad"),
				Key: aws.String(tt.name), Metadata: tt.md})
			wantErr(t, "create multipart upload", err, "InvalidArgument", http.StatusBadRequest)
			var ae smithy.APIError
			if errors.As(err, &ae) && !strings.Contains(ae.ErrorMessage(), tt.header) {
				t.Errorf("message %q does not name %s", ae.ErrorMessage(), tt.header)
			}
		})
	}
	ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("capture-bad")})
	if err != nil || len(ups.Uploads) != 0 {
		t.Errorf("uploads after refused creates: %v, %d", err, len(ups.Uploads))
	}
}

// testDefaultHeaders: x-amz-acl private or bucket-owner-full-control and
// x-amz-storage-class STANDARD are accepted; other canned ACLs and
// storage classes are refused by PutObject and CreateMultipartUpload, and
// nothing is stored.
func testDefaultHeaders(t *testing.T, tg *testGateway, c *s3.Client) {
	ctx := t.Context()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("acl"), ACL: types.BucketCannedACLPrivate}); err != nil {
		t.Fatalf("create bucket with the private ACL: %v", err)
	}
	b := aws.String("acl")
	for _, acl := range []types.ObjectCannedACL{types.ObjectCannedACLPrivate, types.ObjectCannedACLBucketOwnerFullControl} {
		key := aws.String("k-" + string(acl))
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: key, Body: strings.NewReader("x"), ACL: acl,
			StorageClass: types.StorageClassStandard}); err != nil {
			t.Errorf("put with %s, STANDARD: %v", acl, err)
		}
		up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: key, ACL: acl,
			StorageClass: types.StorageClassStandard})
		if err != nil {
			t.Errorf("create multipart upload with %s, STANDARD: %v", acl, err)
		} else if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: b, Key: key, UploadId: up.UploadId}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("copy-" + string(acl)),
			CopySource: aws.String("acl/k-" + string(acl)), ACL: acl, StorageClass: types.StorageClassStandard}); err != nil {
			t.Errorf("copy with %s, STANDARD: %v", acl, err)
		}
	}
	for _, tt := range []struct {
		name   string
		acl    types.ObjectCannedACL
		class  types.StorageClass
		code   string
		status int
	}{
		{"public-read", types.ObjectCannedACLPublicRead, "", "NotImplemented", http.StatusNotImplemented},
		{"authenticated-read", types.ObjectCannedACLAuthenticatedRead, "", "NotImplemented", http.StatusNotImplemented},
		{"no canned ACL", "everyone", "", "InvalidArgument", http.StatusBadRequest},
		{"GLACIER", "", types.StorageClassGlacier, "NotImplemented", http.StatusNotImplemented},
		{"no storage class", "", "COLD", "InvalidStorageClass", http.StatusBadRequest},
	} {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("refused"), Body: strings.NewReader("x"),
			ACL: tt.acl, StorageClass: tt.class})
		wantErr(t, "put with "+tt.name, err, tt.code, tt.status)
		_, err = c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("refused"),
			ACL: tt.acl, StorageClass: tt.class})
		wantErr(t, "create multipart upload with "+tt.name, err, tt.code, tt.status)
	}
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("refused"), Body: strings.NewReader("x"),
		GrantRead: aws.String(`uri="http://acs.amazonaws.com/groups/global/AllUsers"`)})
	wantErr(t, "put with x-amz-grant-read", err, "NotImplemented", http.StatusNotImplemented)
	if _, err := tg.client.Stat(ctx, "acl", "refused"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("after refused puts: stat %v, want not found", err)
	}
	ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: b})
	if err != nil || len(ups.Uploads) != 0 {
		t.Errorf("uploads after refused creates: %v, %d", err, len(ups.Uploads))
	}
}

func TestCaptureOf(t *testing.T) {
	for _, tt := range []struct {
		md      map[string]string
		want    *client.Capture
		wantErr string
	}{
		{md: nil},
		{md: map[string]string{"rig": "r2"}},
		{md: map[string]string{"camera": "rear"}, want: &client.Capture{Camera: "rear"}},
		{md: map[string]string{"tags": " a,,b , "}, want: &client.Capture{Tags: []string{"a", "b"}}},
		{md: map[string]string{"capture-start": "", "vehicle-id": "v"}, want: &client.Capture{VehicleID: "v"}},
		{md: map[string]string{"capture-start": "2024-05-01T13:45:00-07:00"},
			want: &client.Capture{Start: time.Date(2024, 5, 1, 20, 45, 0, 0, time.UTC)}},
		{md: map[string]string{"capture-end": "2024-05-01T13:45:00.123456789Z"},
			want: &client.Capture{End: time.Date(2024, 5, 1, 13, 45, 0, 123456789, time.UTC)}},
		{md: map[string]string{"capture-start": "1714571100"}, wantErr: "x-amz-meta-capture-start"},
		{md: map[string]string{"capture-end": "2024-05-01T13:45:00"}, wantErr: "x-amz-meta-capture-end"},
		{md: map[string]string{"capture-start": "2024-05-01T13:45:01Z", "capture-end": "2024-05-01T13:45:00Z"},
			wantErr: "before"},
	} {
		got, err := captureOf(tt.md)
		switch {
		case tt.wantErr != "":
			if !errors.Is(err, errInvalidArgument) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("captureOf(%v): %v, want InvalidArgument naming %s", tt.md, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("captureOf(%v): %v", tt.md, err)
		case (got == nil) != (tt.want == nil):
			t.Errorf("captureOf(%v) = %+v, want %+v", tt.md, got, tt.want)
		case got != nil:
			checkCapture(t, "captureOf", got, *tt.want)
		}
	}
}

func TestCheckDefaultsOnly(t *testing.T) {
	for _, tt := range []struct {
		header map[string]string
		want   *s3Error // nil: accepted
	}{
		{nil, nil},
		{map[string]string{"X-Amz-Acl": "private"}, nil},
		{map[string]string{"X-Amz-Acl": "bucket-owner-full-control", "X-Amz-Storage-Class": "STANDARD"}, nil},
		{map[string]string{"X-Amz-Acl": "public-read"}, errNotImplemented},
		{map[string]string{"X-Amz-Acl": "public-read-write"}, errNotImplemented},
		{map[string]string{"X-Amz-Acl": "log-delivery-write"}, errNotImplemented},
		{map[string]string{"X-Amz-Acl": "Private"}, errInvalidArgument},
		{map[string]string{"X-Amz-Grant-Full-Control": "id=someone"}, errNotImplemented},
		{map[string]string{"X-Amz-Storage-Class": "STANDARD_IA"}, errNotImplemented},
		{map[string]string{"X-Amz-Storage-Class": "DEEP_ARCHIVE"}, errNotImplemented},
		{map[string]string{"X-Amz-Storage-Class": "standard"}, errInvalidStorageClass},
		{map[string]string{"X-Amz-Storage-Class": "HOT"}, errInvalidStorageClass},
	} {
		h := http.Header{}
		for k, v := range tt.header {
			h.Set(k, v)
		}
		err := checkDefaultsOnly(h)
		switch {
		case tt.want == nil && err != nil:
			t.Errorf("%v: %v, want accepted", tt.header, err)
		case tt.want != nil && !errors.Is(err, tt.want):
			t.Errorf("%v: %v, want %s", tt.header, err, tt.want.Code)
		}
	}
}

// TestCompletionChecksumHeader: the object checksum a
// CompleteMultipartUpload declares in x-amz-checksum-<alg> is checked
// against the one made from the parts; a composite one may come without
// its "-N", as minio-go sends it.
func TestCompletionChecksumHeader(t *testing.T) {
	parts := [][]byte{randBytes(1, minPartSize), randBytes(2, 100)}
	uploaded := map[int]client.PartInfo{}
	var named []completedPart
	for i, p := range parts {
		n := i + 1
		uploaded[n] = client.PartInfo{Number: n, Size: int64(len(p)), ETag: md5hex(p), Checksums: map[string]string{"crc32c": crc32cOf(p)}}
		named = append(named, completedPart{PartNumber: n})
	}
	assembled := func(full bool) *assembly {
		a, err := assemble(named, uploaded, uploadChecksum{alg: checksumAlgByName("crc32c"), full: full})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	composite, full := assembled(false), assembled(true)
	compositeSum, fullSum := composite.sums["crc32c"], crc32cOf(append(slices.Clone(parts[0]), parts[1]...))
	bare, _, _ := strings.Cut(compositeSum, "-")
	if full.sums["crc32c"] != fullSum || !strings.HasSuffix(compositeSum, "-2") {
		t.Fatalf("assembled checksums: composite %q, full %q (want %q)", compositeSum, full.sums["crc32c"], fullSum)
	}
	for _, tt := range []struct {
		a        *assembly
		declared string
		ok       bool
	}{
		{composite, "", true},
		{composite, compositeSum, true},
		{composite, bare, true},
		{composite, bare + "-3", false},
		{composite, fullSum, false},
		{full, fullSum, true},
		{full, fullSum + "-2", false},
		{full, bare, false},
	} {
		h := http.Header{}
		if tt.declared != "" {
			h.Set("x-amz-checksum-crc32c", tt.declared)
		}
		err := tt.a.checkRequest(h)
		if tt.ok != (err == nil) || (err != nil && !errors.Is(err, errBadDigest)) {
			t.Errorf("%s upload, declared %q: %v", tt.a.cs.typeName(), tt.declared, err)
		}
	}
}
