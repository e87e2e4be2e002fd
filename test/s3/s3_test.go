package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clipstore/clipstore/test/e2e"
)

// gateway is a cluster with an access key and one `clipstore s3` process.
type gateway struct {
	c        *e2e.Cluster
	endpoint string
	keyID    string
	secret   string
	home     string // HOME of the tools: their config, nothing of the machine's
}

// startGateway runs 3 meta members sharing a cluster secret, 6 storage
// nodes, an access key and a gateway.
func startGateway(t *testing.T) *gateway {
	t.Helper()
	dir := t.TempDir()
	secretFile, metaArgs := secretFiles(t, dir)
	c := e2e.StartCluster(t, e2e.ClusterOptions{StorageNodes: 6, MetaArgs: metaArgs})
	key := createKey(t, c, "s3 tests", "*:admin")
	p := e2e.Start(t, "s3", "--listen", "127.0.0.1:0", "--meta", c.MetaAddrs(), "--cluster-secret-file", secretFile,
		"--log-level", "debug")
	g := &gateway{c: c, endpoint: "http://" + p.Addr, keyID: key.ID, secret: key.Secret, home: filepath.Join(dir, "home")}
	if err := os.MkdirAll(filepath.Join(g.home, ".aws"), 0o700); err != nil {
		t.Fatal(err)
	}
	config := "[default]\nregion = us-east-1\ns3 =\n  addressing_style = path\n"
	if err := os.WriteFile(filepath.Join(g.home, ".aws", "config"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return g
}

// secretFiles writes a cluster secret file and a secrets key file into
// dir, and returns the first and the meta members' flags for both.
func secretFiles(t *testing.T, dir string) (clusterSecret string, metaArgs []string) {
	t.Helper()
	clusterSecret, secretsKey := filepath.Join(dir, "cluster-secret"), filepath.Join(dir, "secrets-key")
	if err := os.WriteFile(clusterSecret, []byte("a-cluster-secret-for-the-s3-tests\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secretsKey, []byte("a-secrets-key-for-the-s3-tests-of-32-bytes-or-more\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return clusterSecret, []string{"--cluster-secret-file", clusterSecret, "--secrets-key-file", secretsKey}
}

// accessKey is a key made by clipstore admin keys create.
type accessKey struct {
	ID     string `json:"access_key_id"`
	Secret string `json:"secret_access_key"`
}

// createKey makes an access key with the grants allow (BUCKET:ACCESS).
func createKey(t *testing.T, c *e2e.Cluster, name string, allow ...string) accessKey {
	t.Helper()
	args := []string{"admin", "keys", "create", name, "--json"}
	for _, a := range allow {
		args = append(args, "--allow", a)
	}
	out, errOut, code := c.CLI(args...)
	if code != 0 {
		t.Fatalf("keys create: %s", errOut)
	}
	var key accessKey
	if err := json.Unmarshal([]byte(out), &key); err != nil {
		t.Fatalf("keys create --json: %v: %s", err, out)
	}
	return key
}

// env is the tools' environment: the key, the region, a HOME of their own.
func (g *gateway) env() []string {
	return []string{"HOME=" + g.home, "PATH=/usr/bin:/bin", "AWS_ACCESS_KEY_ID=" + g.keyID,
		"AWS_SECRET_ACCESS_KEY=" + g.secret, "AWS_DEFAULT_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_PAGER=", "S3_ENDPOINT=" + g.endpoint}
}

// run runs a tool (bounded) with stdin and returns its stdout; a non-zero
// exit fails the test with its stderr.
func (g *gateway) run(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	out, errOut, err := g.try(stdin, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, errOut)
	}
	return out
}

func (g *gateway) try(stdin []byte, name string, args ...string) ([]byte, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = g.env()
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.Bytes(), errOut.String(), err
}

// aws runs Debian's aws-cli against the gateway.
func (g *gateway) aws(t *testing.T, args ...string) []byte {
	t.Helper()
	return g.run(t, nil, "/usr/bin/aws", append([]string{"--endpoint-url", g.endpoint}, args...)...)
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// TestAWSCLI drives the gateway with aws-cli: buckets, uploads and
// downloads byte-identical (one of them multipart), listings, ranged gets,
// metadata, deletes.
func TestAWSCLI(t *testing.T) {
	g := startGateway(t)
	dir := t.TempDir()
	g.aws(t, "s3", "mb", "s3://fleet")
	if out := string(g.aws(t, "s3", "ls")); !strings.Contains(out, "fleet") {
		t.Fatalf("s3 ls lists no bucket fleet:\n%s", out)
	}
	files := map[string][]byte{
		"cam/front/0001.mp4": e2e.ClipBytes(1, 3<<20+17),
		"cam/front/0002.mp4": e2e.ClipBytes(2, 100_000),
		"cam/rear/0001.mp4":  e2e.ClipBytes(3, 1),
		"empty.bin":          {},
	}
	for key, data := range files {
		path := filepath.Join(dir, strings.ReplaceAll(key, "/", "_"))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		g.aws(t, "s3", "cp", path, "s3://fleet/"+key, "--content-type", "video/mp4", "--metadata", "vehicle=v17,camera=front")
	}
	for key, data := range files {
		got := g.aws(t, "s3", "cp", "s3://fleet/"+key, "-")
		if !bytes.Equal(got, data) {
			t.Fatalf("s3 cp of %s back: %d bytes, not the %d stored", key, len(got), len(data))
		}
	}
	var head struct {
		ContentLength int64
		ETag          string
		ContentType   string
		Metadata      map[string]string
	}
	if err := json.Unmarshal(g.aws(t, "s3api", "head-object", "--bucket", "fleet", "--key", "cam/front/0001.mp4"), &head); err != nil {
		t.Fatal(err)
	}
	data := files["cam/front/0001.mp4"]
	if head.ContentLength != int64(len(data)) || head.ETag != `"`+md5hex(data)+`"` || head.ContentType != "video/mp4" ||
		head.Metadata["vehicle"] != "v17" || head.Metadata["camera"] != "front" {
		t.Fatalf("head-object: %+v; want %d bytes, ETag the MD5 %s, video/mp4, the metadata", head, len(data), md5hex(data))
	}
	testAWSCLIMultipart(t, g, dir)
	testKeyPolicies(t, g)
	testHeaderLimit(t, g)
	out := filepath.Join(dir, "range")
	g.aws(t, "s3api", "get-object", "--bucket", "fleet", "--key", "cam/front/0001.mp4", "--range", "bytes=1048570-1048600", out)
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data[1048570:1048601]) {
		t.Fatalf("ranged get: %d bytes, not bytes 1048570-1048600", len(got))
	}
	listing := string(g.aws(t, "s3", "ls", "s3://fleet/cam/"))
	if !strings.Contains(listing, "PRE front/") || !strings.Contains(listing, "PRE rear/") {
		t.Fatalf("s3 ls with a delimiter:\n%s", listing)
	}
	all := string(g.aws(t, "s3", "ls", "--recursive", "s3://fleet"))
	for key := range files {
		if !strings.Contains(all, key) {
			t.Fatalf("s3 ls --recursive lacks %s:\n%s", key, all)
		}
	}
	g.aws(t, "s3", "rm", "s3://fleet/cam/rear/0001.mp4")
	if _, errOut, err := g.try(nil, "/usr/bin/aws", "--endpoint-url", g.endpoint, "s3api", "head-object", "--bucket", "fleet",
		"--key", "cam/rear/0001.mp4"); err == nil || !strings.Contains(errOut, "404") {
		t.Fatalf("head of a deleted key: %v: %s", err, errOut)
	}
	if _, errOut, err := g.try(nil, "/usr/bin/aws", "--endpoint-url", g.endpoint, "s3", "rb", "s3://fleet"); err == nil ||
		!strings.Contains(errOut, "BucketNotEmpty") {
		t.Fatalf("rb of a bucket with objects: %v: %s", err, errOut)
	}
	g.aws(t, "s3", "rm", "--recursive", "s3://fleet")
	g.aws(t, "s3", "rb", "s3://fleet")
}

// testKeyPolicies: a key made with --allow fleet:read lists and gets in
// fleet and nothing else: its put is AccessDenied and leaves nothing; a
// key whose grant is on another bucket sees no fleet at all.
func testKeyPolicies(t *testing.T, g *gateway) {
	reader := g.as(createKey(t, g.c, "reader", "fleet:read"))
	if out := string(reader.aws(t, "s3", "ls", "s3://fleet/cam/front/")); !strings.Contains(out, "0001.mp4") {
		t.Fatalf("a reader's ls:\n%s", out)
	}
	reader.aws(t, "s3", "cp", "s3://fleet/cam/front/0002.mp4", "-")
	_, errOut, err := reader.try([]byte("nope"), "/usr/bin/aws", "--endpoint-url", g.endpoint, "s3", "cp", "-", "s3://fleet/denied")
	if err == nil || !strings.Contains(errOut, "AccessDenied") {
		t.Fatalf("a reader's put: %v: %s", err, errOut)
	}
	if _, errOut, err := g.try(nil, "/usr/bin/aws", "--endpoint-url", g.endpoint, "s3api", "head-object", "--bucket", "fleet",
		"--key", "denied"); err == nil || !strings.Contains(errOut, "404") {
		t.Fatalf("the refused put left an object: %v: %s", err, errOut)
	}
	other := g.as(createKey(t, g.c, "other", "elsewhere:admin"))
	if out := string(other.aws(t, "s3", "ls")); strings.Contains(out, "fleet") {
		t.Fatalf("a key without a grant on fleet lists it:\n%s", out)
	}
	if _, errOut, err := other.try(nil, "/usr/bin/aws", "--endpoint-url", g.endpoint, "s3", "ls", "s3://fleet/"); err == nil ||
		!strings.Contains(errOut, "AccessDenied") {
		t.Fatalf("a key without a grant on fleet lists its objects: %v: %s", err, errOut)
	}
}

// testHeaderLimit: a request whose headers exceed the gateway's
// --max-header-size (64 KiB) is answered 431 before anything else, and the
// gateway goes on serving.
func testHeaderLimit(t *testing.T, g *gateway) {
	req, err := http.NewRequest(http.MethodGet, g.endpoint+"/fleet/cam/front/0001.mp4", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Meta-Padding", strings.Repeat("x", 100<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a request with 100 KiB of headers: %d, want 431", resp.StatusCode)
	}
	g.aws(t, "s3", "ls", "s3://fleet/")
}

// as is the gateway's tools signing with key instead.
func (g *gateway) as(key accessKey) *gateway {
	c := *g
	c.keyID, c.secret = key.ID, key.Secret
	return &c
}

// testAWSCLIMultipart copies a 20 MiB file up and back with aws s3 cp,
// which uploads it in parts of 8 MiB (its default above 8 MiB) and reads it
// back in ranges.
func testAWSCLIMultipart(t *testing.T, g *gateway, dir string) {
	t.Helper()
	data := e2e.ClipBytes(4, 20<<20)
	up, back := filepath.Join(dir, "big.mp4"), filepath.Join(dir, "big.back")
	if err := os.WriteFile(up, data, 0o600); err != nil {
		t.Fatal(err)
	}
	g.aws(t, "s3", "cp", up, "s3://fleet/big.mp4")
	g.aws(t, "s3", "cp", "s3://fleet/big.mp4", back)
	if got, err := os.ReadFile(back); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("s3 cp of a multipart upload back: %d bytes (%v), not the %d stored", len(got), err, len(data))
	}
	var head struct {
		ContentLength int64
		ETag          string
	}
	if err := json.Unmarshal(g.aws(t, "s3api", "head-object", "--bucket", "fleet", "--key", "big.mp4"), &head); err != nil {
		t.Fatal(err)
	}
	if want := `"` + multipartETag(data, 8<<20) + `"`; head.ContentLength != int64(len(data)) || head.ETag != want ||
		!strings.HasSuffix(head.ETag, `-3"`) {
		t.Fatalf("head-object of a multipart upload: %+v; want the ETag %s", head, want)
	}
}

// multipartETag is S3's ETag of data uploaded in parts of partSize: the
// MD5 of the parts' MD5s, with "-N".
func multipartETag(data []byte, partSize int) string {
	var sums []byte
	n := 0
	for off := 0; off < len(data); off += partSize {
		s := md5.Sum(data[off:min(off+partSize, len(data))])
		sums, n = append(sums, s[:]...), n+1
	}
	return fmt.Sprintf("%s-%d", md5hex(sums), n)
}

// boto3Script exercises boto3 against $S3_ENDPOINT and prints one JSON
// document of what it saw.
const boto3Script = `
import json, os, hashlib, tempfile, urllib.request
import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
    retries={"max_attempts": 0}, read_timeout=20))  # a stalled request fails, not retried
out = {}
s3.create_bucket(Bucket="train")
body = bytes(range(256)) * 4096 + b"tail"
r = s3.put_object(Bucket="train", Key="ep/0/clip.mp4", Body=body, ContentType="video/mp4", Metadata={"rig": "r2"})
out["put_etag"] = r["ETag"]
out["md5"] = hashlib.md5(body).hexdigest()
g = s3.get_object(Bucket="train", Key="ep/0/clip.mp4")
out["get_ok"] = g["Body"].read() == body
out["get_meta"] = g["Metadata"]
out["get_type"] = g["ContentType"]
g = s3.get_object(Bucket="train", Key="ep/0/clip.mp4", Range="bytes=-4")
out["suffix"] = g["Body"].read().decode()
for i in range(5):
    s3.put_object(Bucket="train", Key="ep/%d/x" % i, Body=b"x" * i)
pages = s3.get_paginator("list_objects_v2").paginate(Bucket="train", Prefix="ep/", Delimiter="/", PaginationConfig={"PageSize": 2})
out["prefixes"] = [p["Prefix"] for page in pages for p in page.get("CommonPrefixes", [])]
url = s3.generate_presigned_url("get_object", Params={"Bucket": "train", "Key": "ep/0/clip.mp4"}, ExpiresIn=300)
out["presigned_ok"] = urllib.request.urlopen(url).read() == body
try:
    s3.head_object(Bucket="train", Key="nope")
except ClientError as e:
    out["missing"] = e.response["Error"]["Code"]
try:
    s3.put_object(Bucket="train", Key="ep/0/clip.mp4", Body=b"no", IfNoneMatch="*")
    out["if_none_match"] = "accepted"
except ClientError as e:
    out["if_none_match"] = e.response["Error"]["Code"]
except Exception as e:
    out["if_none_match"] = "unsupported by this boto3: " + type(e).__name__
# Multipart: upload_file in parts of 5 MiB, an upload left open, listed, aborted.
big = bytes(range(256)) * (12 << 12)
with tempfile.TemporaryDirectory() as d:
    src, dst = os.path.join(d, "big"), os.path.join(d, "back")
    with open(src, "wb") as f:
        f.write(big)
    cfg = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
    s3.upload_file(src, "train", "mp/big.bin", Config=cfg)
    s3.download_file("train", "mp/big.bin", dst, Config=cfg)
    with open(dst, "rb") as f:
        out["mp_roundtrip"] = f.read() == big
out["mp_etag"] = s3.head_object(Bucket="train", Key="mp/big.bin")["ETag"]
md5s = b"".join(hashlib.md5(big[i:i + (5 << 20)]).digest() for i in range(0, len(big), 5 << 20))
out["mp_want_etag"] = '"%s-3"' % hashlib.md5(md5s).hexdigest()
u = s3.create_multipart_upload(Bucket="train", Key="mp/open")
s3.upload_part(Bucket="train", Key="mp/open", UploadId=u["UploadId"], PartNumber=1, Body=b"part")
out["mp_listed"] = [[x["Key"], x["UploadId"] == u["UploadId"]]
                    for x in s3.list_multipart_uploads(Bucket="train", Prefix="mp/").get("Uploads", [])]
s3.abort_multipart_upload(Bucket="train", Key="mp/open", UploadId=u["UploadId"])
out["mp_after_abort"] = len(s3.list_multipart_uploads(Bucket="train", Prefix="mp/").get("Uploads", []))
d = s3.delete_objects(Bucket="train", Delete={"Objects": [{"Key": "ep/%d/x" % i} for i in range(5)]})
out["deleted"] = sorted(x["Key"] for x in d.get("Deleted", []))
print(json.dumps(out))
`

// TestBoto3 drives the gateway with Debian's boto3: put and get with
// metadata, a suffix range, a paginated delimiter listing, a presigned GET,
// a 404, DeleteObjects, upload_file in parts, an upload listed and aborted.
func TestBoto3(t *testing.T) {
	g := startGateway(t)
	var got struct {
		PutETag     string            `json:"put_etag"`
		MD5         string            `json:"md5"`
		GetOK       bool              `json:"get_ok"`
		GetMeta     map[string]string `json:"get_meta"`
		GetType     string            `json:"get_type"`
		Suffix      string            `json:"suffix"`
		Prefixes    []string          `json:"prefixes"`
		PresignedOK bool              `json:"presigned_ok"`
		Missing     string            `json:"missing"`
		IfNoneMatch string            `json:"if_none_match"`
		Deleted     []string          `json:"deleted"`
		MPRoundTrip bool              `json:"mp_roundtrip"`
		MPETag      string            `json:"mp_etag"`
		MPWantETag  string            `json:"mp_want_etag"`
		MPListed    [][2]any          `json:"mp_listed"`
		MPAfter     int               `json:"mp_after_abort"`
	}
	out := g.run(t, []byte(boto3Script), "/usr/bin/python3", "-")
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("boto3 script output: %v: %s", err, out)
	}
	want := []string{"ep/0/", "ep/1/", "ep/2/", "ep/3/", "ep/4/"}
	switch {
	case got.PutETag != `"`+got.MD5+`"`:
		t.Errorf("put ETag %s, want the MD5 %q", got.PutETag, got.MD5)
	case !got.GetOK || got.GetMeta["rig"] != "r2" || got.GetType != "video/mp4":
		t.Errorf("get: bytes ok %v, metadata %v, type %q", got.GetOK, got.GetMeta, got.GetType)
	case got.Suffix != "tail":
		t.Errorf("suffix range: %q", got.Suffix)
	case fmt.Sprint(got.Prefixes) != fmt.Sprint(want):
		t.Errorf("paginated delimiter listing: %v, want %v", got.Prefixes, want)
	case !got.PresignedOK:
		t.Errorf("presigned GET did not return the object")
	case got.Missing != "404":
		t.Errorf("head of a missing key: %q, want 404", got.Missing)
	case got.IfNoneMatch == "accepted":
		t.Errorf("a put with If-None-Match: * over an existing key was accepted")
	case len(got.Deleted) != 5:
		t.Errorf("delete_objects deleted %v", got.Deleted)
	case !got.MPRoundTrip || got.MPETag != got.MPWantETag:
		t.Errorf("upload_file in parts: round trip %v, ETag %s, want %s", got.MPRoundTrip, got.MPETag, got.MPWantETag)
	case fmt.Sprint(got.MPListed) != "[[mp/open true]]" || got.MPAfter != 0:
		t.Errorf("list_multipart_uploads: %v, then %d after the abort", got.MPListed, got.MPAfter)
	}
	t.Logf("boto3: %+v", got)
}
