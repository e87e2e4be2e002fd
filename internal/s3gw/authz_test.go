package s3gw

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/clipstore/clipstore/client"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// testAuthorization: every operation is checked against the grants of
// the key that signed it (testGrants): read, write and admin per bucket,
// a copy needs read on its source, ListBuckets shows only the buckets a
// key has a grant on, and a refusal is AccessDenied (403) that changes
// nothing.
func testAuthorization(t *testing.T, tg *testGateway) {
	ctx := t.Context()
	root := tg.sdk(true)
	mkBucket(t, root, "authz")
	mkBucket(t, root, "authz-other")
	put(t, root, "authz", "k", []byte("authorized"))
	put(t, root, "authz-other", "k", []byte("other"))
	as := func(key string) *s3.Client { return newSDKAs(key, tg.srv.URL, true, tg.httpClient()) }
	b, k := aws.String("authz"), aws.String("k")

	type op struct {
		name string
		do   func(c *s3.Client) error
	}
	ops := map[string]op{
		"get": {"GetObject", func(c *s3.Client) error {
			_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: k})
			return err
		}},
		"head": {"HeadObject", func(c *s3.Client) error {
			_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: k})
			return err
		}},
		"list": {"ListObjectsV2", func(c *s3.Client) error {
			_, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: b})
			return err
		}},
		"hb":  {"HeadBucket", func(c *s3.Client) error { _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: b}); return err }},
		"put": {"PutObject", func(c *s3.Client) error { return putErr(c, "authz", "w", "written") }},
		"delete": {"DeleteObject", func(c *s3.Client) error {
			_, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: aws.String("gone")})
			return err
		}},
		"mpu": {"CreateMultipartUpload", func(c *s3.Client) error {
			up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("mpu")})
			if err == nil {
				_, err = c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: b, Key: aws.String("mpu"), UploadId: up.UploadId})
			}
			return err
		}},
		"copy-in": {"CopyObject", func(c *s3.Client) error {
			_, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("copied"), CopySource: aws.String("authz-other/k")})
			return err
		}},
		"mb": {"CreateBucket", func(c *s3.Client) error {
			_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("authz-new")})
			return err
		}},
		"rb": {"DeleteBucket", func(c *s3.Client) error {
			_, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("authz-new")})
			return err
		}},
	}
	for _, tc := range []struct {
		key     string
		allowed []string // in this order; the rest of ops must be refused
	}{
		{"READERKEY", []string{"get", "head", "list", "hb"}},
		{"WRITERKEY", []string{"hb", "put", "delete", "mpu"}}, // not copy-in: no read on authz-other
		{"NOTHINGKEY", nil},
		{"ADMINKEY", []string{"get", "head", "list", "hb", "mb", "rb"}},
	} {
		t.Run(tc.key, func(t *testing.T) {
			c := as(tc.key)
			for _, name := range slices.Sorted(func(yield func(string) bool) {
				for n := range ops {
					if !yield(n) {
						return
					}
				}
			}) {
				err := ops[name].do(c)
				if slices.Contains(tc.allowed, name) {
					if err != nil {
						t.Errorf("%s (%s): %v, want it allowed", name, ops[name].name, err)
					}
					continue
				}
				// HEAD answers carry no body: the status says it.
				code := "AccessDenied"
				if name == "head" || name == "hb" {
					code = ""
				}
				wantErr(t, tc.key+" "+name, err, code, http.StatusForbidden)
			}
		})
	}
	// A copy needs write on its destination and read on its source: with
	// both it goes through.
	if _, err := as("COPYWRITEKEY").CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("authz-new"), Key: k,
		CopySource: aws.String("authz/k")}); statusOf(err) != http.StatusForbidden {
		t.Errorf("a copy from a bucket the key cannot read: %v, want AccessDenied", err)
	}
	mkBucket(t, root, "authz-new")
	if _, err := as("ADMINKEY").CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("authz-new"), Key: k,
		CopySource: aws.String("authz/k")}); err != nil {
		t.Errorf("a copy with read on the source and admin on the destination: %v", err)
	}
	// Nothing refused became visible.
	for _, key := range []string{"copied"} {
		if _, err := root.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String(key)}); statusOf(err) != http.StatusNotFound {
			t.Errorf("%s after the refused writes: %v, want 404", key, err)
		}
	}
	// ListBuckets lists what a key has a grant on.
	for key, want := range map[string][]string{
		"READERKEY":  {"authz"},
		"ADMINKEY":   {"authz", "authz-new"},
		"NOTHINGKEY": nil,
	} {
		out, err := as(key).ListBuckets(ctx, &s3.ListBucketsInput{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, bk := range out.Buckets {
			got = append(got, aws.ToString(bk.Name))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s lists %v, want %v", key, got, want)
		}
	}
	if n := testutil.ToFloat64(tg.gw.metrics.denied); n < 10 {
		t.Errorf("%v refusals counted", n)
	}
	// The refusal says what was refused.
	resp := rawRequestAs(t, tg, "WRITERKEY", http.MethodGet, "/authz/k", nil, nil)
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "<Code>AccessDenied</Code>") ||
		!strings.Contains(body, "WRITERKEY has no read access to bucket") {
		t.Errorf("a refused get: %d %s", resp.StatusCode, body)
	}
}

// testFastETags: a bucket with fast ETags answers the clip id as the
// ETag ("<hex>-1"; "-N" for multipart, random "-1" ETags for parts) without
// hashing, If-Match works with it, an overwrite changes it, and a
// Content-MD5 sent is still checked.
func testFastETags(t *testing.T, tg *testGateway) {
	ctx := t.Context()
	c := tg.sdk(true)
	if err := tg.client.CreateBucketWith(ctx, "fast-etags", client.BucketOptions{ETagMode: client.ETagModeFast}); err != nil {
		t.Fatal(err)
	}
	bkt := aws.String("fast-etags")
	fastRe := regexp.MustCompile(`^"[0-9a-f]{32}-1"$`)
	data := []byte("a clip with a fast etag")
	out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: bkt, Key: aws.String("k"), Body: bytes.NewReader(data)})
	if err != nil {
		t.Fatal(err)
	}
	etag := aws.ToString(out.ETag)
	info, err := tg.client.Stat(ctx, "fast-etags", "k")
	if err != nil {
		t.Fatal(err)
	}
	if !fastRe.MatchString(etag) || etag != `"`+info.ClipID+`-1"` {
		t.Fatalf("put's ETag %s; want the clip id %s-1", etag, info.ClipID)
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: bkt, Key: aws.String("k"), IfMatch: aws.String(etag)})
	if err != nil || aws.ToString(head.ETag) != etag {
		t.Fatalf("head If-Match the fast ETag: %v, %v", head, err)
	}
	out2, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: bkt, Key: aws.String("k"), Body: bytes.NewReader(data)})
	if err != nil || aws.ToString(out2.ETag) == etag || !fastRe.MatchString(aws.ToString(out2.ETag)) {
		t.Fatalf("overwrite with the same bytes: ETag %s (was %s), %v; want a new one", aws.ToString(out2.ETag), etag, err)
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: bkt, Key: aws.String("k"), IfMatch: aws.String(etag)})
	wantErr(t, "get If-Match the overwritten ETag", err, "PreconditionFailed", http.StatusPreconditionFailed)

	sum := md5.Sum([]byte("other bytes"))
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: bkt, Key: aws.String("k"), Body: bytes.NewReader(data),
		ContentMD5: aws.String(base64.StdEncoding.EncodeToString(sum[:]))})
	wantErr(t, "a wrong Content-MD5 with fast ETags", err, "BadDigest", http.StatusBadRequest)

	// Multipart: parts get random "-1" ETags, the object "<clip id>-N".
	part := bytes.Repeat([]byte("p"), minPartSize)
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: bkt, Key: aws.String("mp")})
	if err != nil {
		t.Fatal(err)
	}
	var done []types.CompletedPart
	for i := range int32(2) {
		p, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: bkt, Key: aws.String("mp"), UploadId: up.UploadId,
			PartNumber: aws.Int32(i + 1), Body: bytes.NewReader(part)})
		if err != nil {
			t.Fatal(err)
		}
		if !fastRe.MatchString(aws.ToString(p.ETag)) {
			t.Fatalf("part %d's ETag %s, want a fast one", i+1, aws.ToString(p.ETag))
		}
		done = append(done, types.CompletedPart{PartNumber: aws.Int32(i + 1), ETag: p.ETag})
	}
	cmp, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: bkt, Key: aws.String("mp"),
		UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: done}})
	if err != nil {
		t.Fatal(err)
	}
	mp, err := tg.client.Stat(ctx, "fast-etags", "mp")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`"%s-2"`, mp.ClipID); aws.ToString(cmp.ETag) != want {
		t.Fatalf("completed ETag %s, want %s", aws.ToString(cmp.ETag), want)
	}
	if got := get(t, c, "fast-etags", "mp"); !bytes.Equal(got, append(append([]byte{}, part...), part...)) {
		t.Fatal("the multipart object reads back wrong")
	}

	// A copy into the bucket gets its own clip id's ETag.
	cp, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: bkt, Key: aws.String("copy"), CopySource: aws.String("fast-etags/k")})
	if err != nil {
		t.Fatal(err)
	}
	ci, err := tg.client.Stat(ctx, "fast-etags", "copy")
	if err != nil || aws.ToString(cp.CopyObjectResult.ETag) != `"`+ci.ClipID+`-1"` {
		t.Fatalf("copy's ETag %s, clip %s, %v", aws.ToString(cp.CopyObjectResult.ETag), ci.ClipID, err)
	}

	// The cluster's default stays md5: another bucket's ETag is the MD5.
	mkBucket(t, c, "md5-etags")
	o, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("md5-etags"), Key: aws.String("k"), Body: bytes.NewReader(data)})
	if want := md5.Sum(data); err != nil || aws.ToString(o.ETag) != fmt.Sprintf(`"%x"`, want) {
		t.Fatalf("md5 bucket's ETag %s, %v", aws.ToString(o.ETag), err)
	}
}

// putErr puts data and returns the error.
func putErr(c *s3.Client, bucket, key, data string) error {
	_, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Body: strings.NewReader(data)})
	return err
}
