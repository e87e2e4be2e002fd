package s3gw

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// mpBucket is the bucket of testMultipart.
const mpBucket = "multipart"

// testMultipart drives multipart uploads with the SDK's transfer manager
// and its multipart calls.
func testMultipart(t *testing.T, tg *testGateway) {
	c := tg.sdk(true)
	mkBucket(t, c, mpBucket)
	t.Run("transfer manager", func(t *testing.T) { testMultipartTransfer(t, c) })
	t.Run("parts", func(t *testing.T) { testMultipartParts(t, c) })
	t.Run("errors", func(t *testing.T) { testMultipartErrors(t, c) })
	t.Run("list parts", func(t *testing.T) { testListParts(t, c) })
	t.Run("list uploads", func(t *testing.T) { testListUploads(t, c) })
}

// testMultipartTransfer uploads 3 parts (5 MiB, 5 MiB, 1 MiB + 3) with the
// transfer manager (CRC32 by default: a COMPOSITE checksum) and reads them
// back whole, by parts (the transfer manager's GetObject), one part and a
// range across a part boundary.
func testMultipartTransfer(t *testing.T, c *s3.Client) {
	ctx := t.Context()
	data := randBytes(31, 11<<20+3)
	parts := [][]byte{data[:5<<20], data[5<<20 : 10<<20], data[10<<20:]}
	tm := transfermanager.New(c, func(o *transfermanager.Options) {
		o.PartSizeBytes, o.MultipartUploadThreshold, o.Concurrency = 5<<20, 5<<20, 3
	})
	out, err := tm.UploadObject(ctx, &transfermanager.UploadObjectInput{Bucket: aws.String(mpBucket), Key: aws.String("big"),
		Body: bytes.NewReader(data)})
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	etag, crc := `"`+multipartETag(parts...)+`"`, compositeCRC32(parts...)
	if aws.ToString(out.ETag) != etag || aws.ToString(out.ChecksumCRC32) != crc || !strings.HasSuffix(etag, `-3"`) {
		t.Fatalf("upload: ETag %s, CRC32 %s; want %s, %s", aws.ToString(out.ETag), aws.ToString(out.ChecksumCRC32), etag, crc)
	}
	if got := get(t, c, mpBucket, "big"); !bytes.Equal(got, data) {
		t.Fatalf("get: %d bytes, not the %d uploaded", len(got), len(data))
	}
	byParts, err := tm.GetObject(ctx, &transfermanager.GetObjectInput{Bucket: aws.String(mpBucket), Key: aws.String("big")})
	if err != nil {
		t.Fatalf("get by parts: %v", err)
	}
	if got, err := io.ReadAll(byParts.Body); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get by parts: %d bytes (%v), not the %d uploaded", len(got), err, len(data))
	}

	p2, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(mpBucket), Key: aws.String("big"), PartNumber: aws.Int32(2),
		ChecksumMode: types.ChecksumModeEnabled}) // the SDK checks the part's CRC32
	if err != nil {
		t.Fatalf("get part 2: %v", err)
	}
	got, err := io.ReadAll(p2.Body)
	p2.Body.Close()
	wantRange := fmt.Sprintf("bytes %d-%d/%d", 5<<20, 10<<20-1, len(data))
	if err != nil || !bytes.Equal(got, parts[1]) || aws.ToString(p2.ContentRange) != wantRange ||
		aws.ToInt32(p2.PartsCount) != 3 || aws.ToString(p2.ETag) != etag {
		t.Fatalf("get part 2: %d bytes (%v), Content-Range %q, parts count %d, ETag %s", len(got), err,
			aws.ToString(p2.ContentRange), aws.ToInt32(p2.PartsCount), aws.ToString(p2.ETag))
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(mpBucket), Key: aws.String("big"), PartNumber: aws.Int32(3)})
	if err != nil || aws.ToInt64(head.ContentLength) != 1<<20+3 || aws.ToInt32(head.PartsCount) != 3 {
		t.Fatalf("head part 3: %v, %+v", err, head)
	}
	head, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(mpBucket), Key: aws.String("big"),
		ChecksumMode: types.ChecksumModeEnabled})
	if err != nil || aws.ToString(head.ETag) != etag || aws.ToString(head.ChecksumCRC32) != crc ||
		head.ChecksumType != types.ChecksumTypeComposite || head.PartsCount != nil {
		t.Fatalf("head: %v, ETag %s, CRC32 %s (%s), parts count %v", err, aws.ToString(head.ETag),
			aws.ToString(head.ChecksumCRC32), head.ChecksumType, head.PartsCount)
	}
	rng, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(mpBucket), Key: aws.String("big"),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", 5<<20-10, 5<<20+20))})
	if err != nil {
		t.Fatalf("range across parts 1 and 2: %v", err)
	}
	got, err = io.ReadAll(rng.Body)
	rng.Body.Close()
	if err != nil || !bytes.Equal(got, data[5<<20-10:5<<20+21]) {
		t.Fatalf("range across parts 1 and 2: %d bytes (%v)", len(got), err)
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(mpBucket), Key: aws.String("big"), PartNumber: aws.Int32(4)})
	wantErr(t, "part 4 of 3", err, "InvalidPartNumber", http.StatusRequestedRangeNotSatisfiable)
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(mpBucket), Prefix: aws.String("big")})
	if err != nil || len(list.Contents) != 1 || aws.ToString(list.Contents[0].ETag) != etag ||
		aws.ToInt64(list.Contents[0].Size) != int64(len(data)) {
		t.Fatalf("list: %v, %+v", err, list)
	}
}

// testMultipartParts: a part uploaded twice (the second wins), a part
// with another checksum than the upload's, a conditional completion, a
// FULL_OBJECT CRC32C made of the parts', the content type and metadata of
// the creation.
func testMultipartParts(t *testing.T, c *s3.Client) {
	ctx := t.Context()
	b, k := aws.String(mpBucket), aws.String("clip.mp4")
	create, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: k, ContentType: aws.String("video/mp4"),
		Metadata: map[string]string{"vehicle": "v9"}, ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
		ChecksumType: types.ChecksumTypeFullObject})
	if err != nil || create.ChecksumAlgorithm != types.ChecksumAlgorithmCrc32c || create.ChecksumType != types.ChecksumTypeFullObject {
		t.Fatalf("create: %v, %+v", err, create)
	}
	id := create.UploadId
	upload := func(n int32, data []byte) *string {
		t.Helper()
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: k, UploadId: id, PartNumber: aws.Int32(n),
			Body: bytes.NewReader(data), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c})
		if err != nil || aws.ToString(out.ETag) != `"`+md5hex(data)+`"` || aws.ToString(out.ChecksumCRC32C) != crc32cOf(data) {
			t.Fatalf("upload part %d: %v, %+v", n, err, out)
		}
		return out.ETag
	}
	part1, first2, part2 := randBytes(41, 5<<20), randBytes(42, 1000), randBytes(43, 777)
	e1, old2 := upload(1, part1), upload(2, first2)
	e2 := upload(2, part2)
	_, err = c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: k, UploadId: id, PartNumber: aws.Int32(3),
		Body: bytes.NewReader(part2), ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
	wantErr(t, "a part with another checksum than the upload's", err, "InvalidRequest", http.StatusBadRequest)
	complete := func(etag2 *string) (*s3.CompleteMultipartUploadOutput, error) {
		return c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: k, UploadId: id,
			IfNoneMatch: aws.String("*"), MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{
				{PartNumber: aws.Int32(1), ETag: e1}, {PartNumber: aws.Int32(2), ETag: etag2}}}})
	}
	_, err = complete(old2)
	wantErr(t, "complete with the ETag of a part uploaded again", err, "InvalidPart", http.StatusBadRequest)
	put(t, c, mpBucket, "clip.mp4", []byte("in the way"))
	_, err = complete(e2)
	wantErr(t, "complete if-none-match * of a key that exists", err, "PreconditionFailed", http.StatusPreconditionFailed)
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: k}); err != nil {
		t.Fatal(err)
	}
	out, err := complete(e2)
	data := append(slices.Clone(part1), part2...)
	if err != nil {
		t.Fatalf("complete: %v", err)
	}
	if etag := `"` + multipartETag(part1, part2) + `"`; aws.ToString(out.ETag) != etag || aws.ToString(out.ChecksumCRC32C) != crc32cOf(data) ||
		out.ChecksumType != types.ChecksumTypeFullObject || !strings.HasSuffix(aws.ToString(out.Location), "/"+mpBucket+"/clip.mp4") {
		t.Fatalf("complete: ETag %s (want %s), CRC32C %s (want %s), %s, location %s", aws.ToString(out.ETag), etag,
			aws.ToString(out.ChecksumCRC32C), crc32cOf(data), out.ChecksumType, aws.ToString(out.Location))
	}
	if got := get(t, c, mpBucket, "clip.mp4"); !bytes.Equal(got, data) {
		t.Fatalf("get: %d bytes, not the %d of parts 1 and the second 2", len(got), len(data))
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: k, ChecksumMode: types.ChecksumModeEnabled})
	if err != nil || aws.ToString(head.ContentType) != "video/mp4" || !mapsEqual(head.Metadata, map[string]string{"vehicle": "v9"}) ||
		aws.ToString(head.ChecksumCRC32C) != crc32cOf(data) || head.ChecksumType != types.ChecksumTypeFullObject {
		t.Fatalf("head: %v, %s, metadata %v, CRC32C %s (%s)", err, aws.ToString(head.ContentType), head.Metadata,
			aws.ToString(head.ChecksumCRC32C), head.ChecksumType)
	}
	_, err = c.ListParts(ctx, &s3.ListPartsInput{Bucket: b, Key: k, UploadId: id})
	wantErr(t, "list parts of a completed upload", err, "NoSuchUpload", http.StatusNotFound)
	// The Complete sent again, by a client that missed the answer, answers
	// the same object, as S3 does.
	again, err := complete(e2)
	if err != nil || aws.ToString(again.ETag) != aws.ToString(out.ETag) {
		t.Fatalf("complete sent again: %v, ETag %s (want %s)", err, aws.ToString(again.ETag), aws.ToString(out.ETag))
	}
}

// testMultipartErrors: what a completion refuses, a part with a wrong
// Content-MD5, and an upload after it is aborted.
func testMultipartErrors(t *testing.T, c *s3.Client) {
	ctx := t.Context()
	b, k := aws.String(mpBucket), aws.String("refused")
	create, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: k})
	if err != nil {
		t.Fatal(err)
	}
	id := create.UploadId
	small1, small2 := randBytes(51, 1000), randBytes(52, 1000)
	e1, e2 := uploadPart(t, c, "refused", id, 1, small1), uploadPart(t, c, "refused", id, 2, small2)
	complete := func(parts ...types.CompletedPart) error {
		_, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: k, UploadId: id,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
		return err
	}
	part := func(n int32, etag *string) types.CompletedPart {
		return types.CompletedPart{PartNumber: aws.Int32(n), ETag: etag}
	}
	wantErr(t, "parts out of order", complete(part(2, e2), part(1, e1)), "InvalidPartOrder", http.StatusBadRequest)
	wantErr(t, "a wrong ETag", complete(part(1, aws.String(`"0123"`)), part(2, e2)), "InvalidPart", http.StatusBadRequest)
	wantErr(t, "a part not uploaded", complete(part(1, e1), part(3, e2)), "InvalidPart", http.StatusBadRequest)
	wantErr(t, "a small part before the last", complete(part(1, e1), part(2, e2)), "EntityTooSmall", http.StatusBadRequest)

	sum := md5.Sum(small1)
	_, err = c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: k, UploadId: id, PartNumber: aws.Int32(3),
		Body: bytes.NewReader(small2), ContentMD5: aws.String(base64.StdEncoding.EncodeToString(sum[:]))})
	wantErr(t, "a part with a wrong Content-MD5", err, "BadDigest", http.StatusBadRequest)
	lp, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: b, Key: k, UploadId: id})
	if err != nil || len(lp.Parts) != 2 || aws.ToInt32(lp.Parts[1].PartNumber) != 2 {
		t.Fatalf("list parts after a refused part: %v, %+v", err, lp)
	}

	if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: b, Key: k, UploadId: id}); err != nil {
		t.Fatalf("abort: %v", err)
	}
	_, err = c.ListParts(ctx, &s3.ListPartsInput{Bucket: b, Key: k, UploadId: id})
	wantErr(t, "list parts of an aborted upload", err, "NoSuchUpload", http.StatusNotFound)
	_, err = c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: k, UploadId: id, PartNumber: aws.Int32(3), Body: bytes.NewReader(small2)})
	wantErr(t, "upload a part to an aborted upload", err, "NoSuchUpload", http.StatusNotFound)
	wantErr(t, "complete an aborted upload", complete(part(1, e1)), "NoSuchUpload", http.StatusNotFound)
	_, err = c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: b, Key: k, UploadId: id})
	wantErr(t, "abort again", err, "NoSuchUpload", http.StatusNotFound)
	_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: k})
	wantErr(t, "the key of an aborted upload", err, "", http.StatusNotFound)
	_, err = c.ListParts(ctx, &s3.ListPartsInput{Bucket: b, Key: k, UploadId: aws.String("not-an-upload")})
	wantErr(t, "a malformed upload id", err, "NoSuchUpload", http.StatusNotFound)
	_, err = c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("no-such-bucket"), Key: k})
	wantErr(t, "create in a missing bucket", err, "NoSuchBucket", http.StatusNotFound)
}

// testListParts pages through the parts of an upload two at a time.
func testListParts(t *testing.T, c *s3.Client) {
	ctx := t.Context()
	b, k := aws.String(mpBucket), aws.String("listed")
	create, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: k})
	if err != nil {
		t.Fatal(err)
	}
	id := create.UploadId
	defer c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: b, Key: k, UploadId: id})
	numbers := []int32{1, 2, 3, 5, 8}
	etags := map[int32]string{}
	for _, n := range numbers {
		etags[n] = aws.ToString(uploadPart(t, c, "listed", id, n, randBytes(uint64(n), int(n)*10)))
	}
	var got []int32
	in := &s3.ListPartsInput{Bucket: b, Key: k, UploadId: id, MaxParts: aws.Int32(2)}
	for page := 1; ; page++ {
		out, err := c.ListParts(ctx, in)
		if err != nil || len(out.Parts) > 2 || aws.ToString(out.UploadId) != aws.ToString(id) {
			t.Fatalf("list parts, page %d: %v, %+v", page, err, out)
		}
		for _, p := range out.Parts {
			n := aws.ToInt32(p.PartNumber)
			if aws.ToString(p.ETag) != etags[n] || aws.ToInt64(p.Size) != int64(n)*10 || p.LastModified == nil {
				t.Errorf("part %d: ETag %s, size %d", n, aws.ToString(p.ETag), aws.ToInt64(p.Size))
			}
			got = append(got, n)
		}
		if !aws.ToBool(out.IsTruncated) {
			if page != 3 {
				t.Errorf("%d pages of 2 for 5 parts", page)
			}
			break
		}
		if want := fmt.Sprint(got[len(got)-1]); aws.ToString(out.NextPartNumberMarker) != want || page > 5 {
			t.Fatalf("page %d: next part number marker %q, want %s", page, aws.ToString(out.NextPartNumberMarker), want)
		}
		in.PartNumberMarker = out.NextPartNumberMarker
	}
	if !slices.Equal(got, numbers) {
		t.Fatalf("listed parts %v, want %v", got, numbers)
	}
}

// testListUploads lists uploads in progress with a prefix, a delimiter
// and in pages of one.
func testListUploads(t *testing.T, c *s3.Client) {
	ctx := t.Context()
	b := aws.String(mpBucket)
	var all []types.MultipartUpload // by key, then upload id
	for _, key := range []string{"up/a/1", "up/a/2", "up/b", "up/b", "zz"} {
		out, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, types.MultipartUpload{Key: aws.String(key), UploadId: out.UploadId})
		defer c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: b, Key: aws.String(key), UploadId: out.UploadId})
	}
	if aws.ToString(all[2].UploadId) > aws.ToString(all[3].UploadId) {
		all[2], all[3] = all[3], all[2]
	}
	names := func(us []types.MultipartUpload, ps []types.CommonPrefix) []string {
		var out []string
		for _, u := range us {
			out = append(out, aws.ToString(u.Key)+" "+aws.ToString(u.UploadId))
		}
		for _, p := range ps {
			out = append(out, aws.ToString(p.Prefix))
		}
		return out
	}
	upPrefix := names(all[:4], nil)
	for _, tt := range []struct {
		name              string
		prefix, delimiter string
		max               int32
		want              []string
	}{
		{name: "prefix", prefix: "up/", want: upPrefix},
		{name: "prefix in pages of 1", prefix: "up/", max: 1, want: upPrefix},
		{name: "delimiter", prefix: "up/", delimiter: "/", want: append(names(all[2:4], nil), "up/a/")},
		{name: "delimiter in pages of 1", prefix: "up/", delimiter: "/", max: 1,
			want: append(names(all[2:4], nil), "up/a/")},
	} {
		in := &s3.ListMultipartUploadsInput{Bucket: b, Prefix: aws.String(tt.prefix), Delimiter: aws.String(tt.delimiter)}
		if tt.max > 0 {
			in.MaxUploads = aws.Int32(tt.max)
		}
		var got []string
		for page := 1; ; page++ {
			out, err := c.ListMultipartUploads(ctx, in)
			if err != nil || page > 10 {
				t.Fatalf("%s: page %d: %v", tt.name, page, err)
			}
			got = append(got, names(out.Uploads, out.CommonPrefixes)...)
			if !aws.ToBool(out.IsTruncated) {
				break
			}
			in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(tt.want))
		if !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", tt.name, got, want)
		}
	}
}

// uploadPart uploads a part and returns its ETag, which must be its MD5.
func uploadPart(t *testing.T, c *s3.Client, key string, id *string, n int32, data []byte) *string {
	t.Helper()
	out, err := c.UploadPart(t.Context(), &s3.UploadPartInput{Bucket: aws.String(mpBucket), Key: aws.String(key), UploadId: id,
		PartNumber: aws.Int32(n), Body: bytes.NewReader(data)})
	if err != nil || aws.ToString(out.ETag) != `"`+md5hex(data)+`"` {
		t.Fatalf("upload part %d of %s: %v, %+v", n, key, err, out)
	}
	return out.ETag
}

// multipartETag is S3's ETag of an object uploaded in these parts: the
// MD5 of their MD5s, with "-N".
func multipartETag(parts ...[]byte) string {
	h := md5.New()
	for _, p := range parts {
		s := md5.Sum(p)
		h.Write(s[:])
	}
	return fmt.Sprintf("%x-%d", h.Sum(nil), len(parts))
}

// compositeCRC32 is S3's COMPOSITE CRC32 of an object uploaded in these
// parts: the CRC32 of their CRC32s, with "-N".
func compositeCRC32(parts ...[]byte) string {
	var sums []byte
	for _, p := range parts {
		sums = binary.BigEndian.AppendUint32(sums, crc32.ChecksumIEEE(p))
	}
	return fmt.Sprintf("%s-%d", base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(sums))), len(parts))
}

func crc32cOf(data []byte) string {
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))))
}

func TestCRCCombine(t *testing.T) {
	data := randBytes(9, 70_000)
	for name, poly := range crcPolys {
		alg := checksumAlgByName(name)
		sum := func(b []byte) uint64 {
			h := alg.new()
			h.Write(b)
			return beUint(h.Sum(nil))
		}
		for _, cut := range []int{0, 1, 3, 4096, 65_536, len(data) - 1, len(data)} {
			a, b := data[:cut], data[cut:]
			if got, want := crcCombine(sum(a), sum(b), int64(len(b)), poly, 8*alg.size), sum(data); got != want {
				t.Errorf("%s, cut at %d: combined %x, want %x", name, cut, got, want)
			}
		}
	}
}

func TestRequestedChecksum(t *testing.T) {
	for _, tt := range []struct {
		alg, typ string
		want     string // "alg TYPE", "" for none, "error"
	}{
		{"", "", ""},
		{"", "COMPOSITE", "error"},
		{"CRC32", "", "crc32 COMPOSITE"},
		{"crc32c", "FULL_OBJECT", "crc32c FULL_OBJECT"},
		{"SHA256", "", "sha256 COMPOSITE"},
		{"SHA1", "FULL_OBJECT", "error"},
		{"CRC64NVME", "", "crc64nvme FULL_OBJECT"},
		{"CRC64NVME", "COMPOSITE", "error"},
		{"MD5", "", "error"},
		{"CRC32", "PARTIAL", "error"},
	} {
		h := http.Header{}
		if tt.alg != "" {
			h.Set("X-Amz-Checksum-Algorithm", tt.alg)
		}
		if tt.typ != "" {
			h.Set("X-Amz-Checksum-Type", tt.typ)
		}
		cs, err := requestedChecksum(h)
		got := ""
		switch {
		case err != nil:
			got = "error"
		case cs.alg != nil:
			got = cs.alg.name + " " + cs.typeName()
			if back := recordedChecksum(got); back != cs {
				t.Errorf("%s %s: recorded as %q, read back as %+v", tt.alg, tt.typ, got, back)
			}
		}
		if got != tt.want {
			t.Errorf("%s %s: %q (%v), want %q", tt.alg, tt.typ, got, err, tt.want)
		}
	}
}

// FuzzParseCompleteRequest: any body decodes to ascending part numbers in
// 1..10000, or to an S3 error, never a panic.
func FuzzParseCompleteRequest(f *testing.F) {
	f.Add([]byte(`<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><PartNumber>1</PartNumber>` +
		`<ETag>"0123"</ETag><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part><Part><PartNumber>3</PartNumber></Part></CompleteMultipartUpload>`))
	f.Add([]byte(`<CompleteMultipartUpload><Part><PartNumber>2</PartNumber></Part><Part><PartNumber>2</PartNumber></Part></CompleteMultipartUpload>`))
	f.Add([]byte(`<CompleteMultipartUpload></CompleteMultipartUpload>`))
	f.Add([]byte(`<Delete/>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		parts, err := parseCompleteRequest(b)
		var e *s3Error
		if err != nil {
			if !errors.As(err, &e) {
				t.Fatalf("%v: not an S3 error", err)
			}
			return
		}
		prev := 0
		for _, p := range parts {
			if p.PartNumber <= prev || p.PartNumber > maxParts {
				t.Fatalf("parts %+v", parts)
			}
			prev = p.PartNumber
		}
		if len(parts) == 0 {
			t.Fatal("no parts and no error")
		}
	})
}
