package s3

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// loaderScript reproduces with boto3 the requests that data loaders send
// (as their sources show them), against $S3_ENDPOINT, and prints one JSON
// document of what it saw:
//   - s3fs reads a large object in ranges (its block size; 4 MiB here) with
//     If-Match set to the ETag it listed, so that an object overwritten
//     under it fails the read (412) rather than mixing two versions;
//   - s3torchconnector (the CRT client) writes with multipart uploads of
//     8 MiB parts, each with a CRC32C, path style, and reads with ranged
//     GETs, sequential and random;
//   - MosaicML streaming lists a remote prefix with list_objects_v2,
//     paginated, and downloads each shard whole with get_object.
const loaderScript = `
import json, os, hashlib, base64
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

MiB = 1 << 20
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], config=Config(signature_version="s3v4",
    s3={"addressing_style": "path"}, retries={"max_attempts": 0}, read_timeout=20))
out = {}

def data(seed, n):
    return hashlib.shake_256(seed.encode()).digest(n)

def status(r):
    return r["ResponseMetadata"]["HTTPStatusCode"]

def error(call):
    try:
        call()
        return "no error"
    except ClientError as e:
        return "%s %d" % (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])

s3.create_bucket(Bucket="loaders")

# s3fs: info (HEAD) for the size and ETag, then block reads with If-Match.
big = data("s3fs", 12 * MiB)
s3.put_object(Bucket="loaders", Key="s3fs/episode.bin", Body=big)
head = s3.head_object(Bucket="loaders", Key="s3fs/episode.bin")
etag, size = head["ETag"], head["ContentLength"]
got, ranges = b"", []
for start in range(0, size, 4 * MiB):
    end = min(start + 4 * MiB, size) - 1
    r = s3.get_object(Bucket="loaders", Key="s3fs/episode.bin", Range="bytes=%d-%d" % (start, end), IfMatch=etag)
    ranges.append([status(r), r["ContentRange"], r["ETag"] == etag])
    got += r["Body"].read()
out["s3fs_etag_is_md5"] = etag == '"%s"' % hashlib.md5(big).hexdigest()
out["s3fs_ranges"] = ranges
out["s3fs_bytes_ok"] = got == big
# A block read after the object was overwritten: If-Match of the ETag the
# file was opened with fails, and the new ETag reads the new bytes.
new = data("s3fs v2", 12 * MiB)
s3.put_object(Bucket="loaders", Key="s3fs/episode.bin", Body=new)
out["s3fs_stale"] = error(lambda: s3.get_object(Bucket="loaders", Key="s3fs/episode.bin", Range="bytes=%d-%d" % (4 * MiB, 8 * MiB - 1),
    IfMatch=etag))
out["s3fs_stale_head"] = error(lambda: s3.head_object(Bucket="loaders", Key="s3fs/episode.bin", IfMatch=etag))
new_etag = s3.head_object(Bucket="loaders", Key="s3fs/episode.bin")["ETag"]
r = s3.get_object(Bucket="loaders", Key="s3fs/episode.bin", Range="bytes=%d-%d" % (4 * MiB, 8 * MiB - 1), IfMatch=new_etag)
out["s3fs_new_ok"] = [status(r), r["Body"].read() == new[4 * MiB:8 * MiB]]

# s3torchconnector: a checkpoint written in 8 MiB parts with CRC32C.
ckpt = data("s3torchconnector", 20 * MiB + 12345)
u = s3.create_multipart_upload(Bucket="loaders", Key="ckpt/epoch-3.pt", ChecksumAlgorithm="CRC32C")
parts, part_md5s, part_crcs = [], [], []
for i, off in enumerate(range(0, len(ckpt), 8 * MiB)):
    chunk = ckpt[off:off + 8 * MiB]
    r = s3.upload_part(Bucket="loaders", Key="ckpt/epoch-3.pt", UploadId=u["UploadId"], PartNumber=i + 1, Body=chunk,
        ChecksumAlgorithm="CRC32C")
    parts.append({"PartNumber": i + 1, "ETag": r["ETag"], "ChecksumCRC32C": r["ChecksumCRC32C"]})
    part_md5s.append(hashlib.md5(chunk).hexdigest())
    part_crcs.append(r["ChecksumCRC32C"])
    out.setdefault("torch_part_etags_ok", True)
    out["torch_part_etags_ok"] &= r["ETag"] == '"%s"' % part_md5s[-1]
r = s3.complete_multipart_upload(Bucket="loaders", Key="ckpt/epoch-3.pt", UploadId=u["UploadId"],
    MultipartUpload={"Parts": parts})
out["torch_complete"] = {"status": status(r), "etag": r["ETag"], "crc32c": r.get("ChecksumCRC32C", "")}
out["torch_part_md5s"] = part_md5s
out["torch_part_crcs"] = part_crcs
md5s = b"".join(bytes.fromhex(m) for m in part_md5s)
out["torch_want_etag"] = '"%s-%d"' % (hashlib.md5(md5s).hexdigest(), len(part_md5s))
# Reads: the size from HEAD, then ranged GETs, sequential in 2.5 MiB and
# random (a tensor's bytes across a part boundary, the tail).
size = s3.head_object(Bucket="loaders", Key="ckpt/epoch-3.pt")["ContentLength"]
seq, statuses = b"", set()
step = 5 * MiB // 2
for start in range(0, size, step):
    r = s3.get_object(Bucket="loaders", Key="ckpt/epoch-3.pt", Range="bytes=%d-%d" % (start, min(start + step, size) - 1))
    statuses.add(status(r))
    seq += r["Body"].read()
out["torch_seq_ok"] = [seq == ckpt, sorted(statuses)]
random_ok = []
for start, n in [(8 * MiB - 100, 200), (16 * MiB - 1, 2), (0, 1), (size - 4096, 4096), (12 * MiB + 7, MiB)]:
    r = s3.get_object(Bucket="loaders", Key="ckpt/epoch-3.pt", Range="bytes=%d-%d" % (start, start + n - 1))
    random_ok.append(status(r) == 206 and r["Body"].read() == ckpt[start:start + n])
out["torch_random_ok"] = random_ok

# MosaicML streaming: index.json and shards under a prefix, listed in
# pages of 7, each shard downloaded whole.
shards = {}
for i in range(23):
    shards["mds/train/shard.%05d.mds" % i] = data("shard %d" % i, 40000 + 997 * i)
index = json.dumps({"version": 2, "shards": sorted(shards)}).encode()
s3.put_object(Bucket="loaders", Key="mds/train/index.json", Body=index)
for key, body in shards.items():
    s3.put_object(Bucket="loaders", Key=key, Body=body)
s3.put_object(Bucket="loaders", Key="mds/val/index.json", Body=b"{}")
pages = s3.get_paginator("list_objects_v2").paginate(Bucket="loaders", Prefix="mds/train/", PaginationConfig={"PageSize": 7})
listed, page_sizes = [], []
for page in pages:
    page_sizes.append(page["KeyCount"])
    listed += [[o["Key"], o["Size"], o["ETag"]] for o in page.get("Contents", [])]
out["mds_page_sizes"] = page_sizes
out["mds_listed_ok"] = [k for k, _, _ in listed] == sorted(list(shards) + ["mds/train/index.json"])
out["mds_sizes_ok"] = all(s == len(shards.get(k, index)) and e == '"%s"' % hashlib.md5(shards.get(k, index)).hexdigest()
    for k, s, e in listed)
r = s3.get_object(Bucket="loaders", Key="mds/train/index.json")
out["mds_index_ok"] = json.loads(r["Body"].read())["shards"] == sorted(shards)
whole = []
for key in json.loads(index)["shards"]:
    r = s3.get_object(Bucket="loaders", Key=key)
    whole.append(status(r) == 200 and "ContentRange" not in r and r["Body"].read() == shards[key])
out["mds_whole_ok"] = whole
out["mds_missing"] = error(lambda: s3.get_object(Bucket="loaders", Key="mds/train/shard.99999.mds"))
print(json.dumps(out))
`

// TestLoaderPatterns runs loaderScript against one gateway, then reads the
// checkpoint's record with clipstore stat: its parts as uploaded.
func TestLoaderPatterns(t *testing.T) {
	g := startGateway(t)
	var got struct {
		S3fsETagIsMD5 bool     `json:"s3fs_etag_is_md5"`
		S3fsRanges    [][3]any `json:"s3fs_ranges"`
		S3fsBytesOK   bool     `json:"s3fs_bytes_ok"`
		S3fsStale     string   `json:"s3fs_stale"`
		S3fsStaleHead string   `json:"s3fs_stale_head"`
		S3fsNewOK     [2]any   `json:"s3fs_new_ok"`
		TorchPartsOK  bool     `json:"torch_part_etags_ok"`
		TorchComplete struct {
			Status int    `json:"status"`
			ETag   string `json:"etag"`
			CRC32C string `json:"crc32c"`
		} `json:"torch_complete"`
		TorchPartMD5s []string `json:"torch_part_md5s"`
		TorchPartCRCs []string `json:"torch_part_crcs"`
		TorchWantETag string   `json:"torch_want_etag"`
		TorchSeqOK    [2]any   `json:"torch_seq_ok"`
		TorchRandomOK []bool   `json:"torch_random_ok"`
		MDSPageSizes  []int    `json:"mds_page_sizes"`
		MDSListedOK   bool     `json:"mds_listed_ok"`
		MDSSizesOK    bool     `json:"mds_sizes_ok"`
		MDSIndexOK    bool     `json:"mds_index_ok"`
		MDSWholeOK    []bool   `json:"mds_whole_ok"`
		MDSMissing    string   `json:"mds_missing"`
	}
	out := g.run(t, []byte(loaderScript), "/usr/bin/python3", "-")
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("loader script output: %v: %s", err, out)
	}
	t.Logf("loaders: %s", out)

	const mib = 1 << 20
	wantRanges := fmt.Sprint([][3]any{{206.0, fmt.Sprintf("bytes 0-%d/%d", 4*mib-1, 12*mib), true},
		{206.0, fmt.Sprintf("bytes %d-%d/%d", 4*mib, 8*mib-1, 12*mib), true},
		{206.0, fmt.Sprintf("bytes %d-%d/%d", 8*mib, 12*mib-1, 12*mib), true}})
	switch {
	case !got.S3fsETagIsMD5 || fmt.Sprint(got.S3fsRanges) != wantRanges || !got.S3fsBytesOK:
		t.Errorf("s3fs block reads with If-Match: ETag is the MD5 %v, ranges %v (want %v), bytes ok %v", got.S3fsETagIsMD5,
			got.S3fsRanges, wantRanges, got.S3fsBytesOK)
	case got.S3fsStale != "PreconditionFailed 412" || got.S3fsStaleHead != "412 412":
		t.Errorf("s3fs read with the ETag of an overwritten object: GET %q, HEAD %q; want PreconditionFailed 412",
			got.S3fsStale, got.S3fsStaleHead)
	case fmt.Sprint(got.S3fsNewOK) != "[206 true]":
		t.Errorf("s3fs read with the new ETag: %v", got.S3fsNewOK)
	}

	switch {
	case !got.TorchPartsOK || len(got.TorchPartMD5s) != 3:
		t.Errorf("s3torchconnector parts: ETags the MD5s %v, %d parts", got.TorchPartsOK, len(got.TorchPartMD5s))
	case got.TorchComplete.Status != 200 || got.TorchComplete.ETag != got.TorchWantETag || suffix(got.TorchComplete.CRC32C) != "-3":
		t.Errorf("s3torchconnector complete: %v, want 200, ETag %s, a composite CRC32C", got.TorchComplete, got.TorchWantETag)
	case fmt.Sprint(got.TorchSeqOK) != "[true [206]]" || fmt.Sprint(got.TorchRandomOK) != "[true true true true true]":
		t.Errorf("s3torchconnector ranged reads: sequential %v, random %v", got.TorchSeqOK, got.TorchRandomOK)
	}

	switch {
	case fmt.Sprint(got.MDSPageSizes) != "[7 7 7 3]" || !got.MDSListedOK || !got.MDSSizesOK:
		t.Errorf("streaming listing: pages %v, keys ok %v, sizes and ETags ok %v", got.MDSPageSizes, got.MDSListedOK, got.MDSSizesOK)
	case !got.MDSIndexOK || len(got.MDSWholeOK) != 23 || slices.Contains(got.MDSWholeOK, false):
		t.Errorf("streaming downloads: index ok %v, shards %v", got.MDSIndexOK, got.MDSWholeOK)
	case got.MDSMissing != "NoSuchKey 404":
		t.Errorf("streaming get of a missing shard: %q", got.MDSMissing)
	}

	checkStatParts(t, g, got.TorchWantETag, got.TorchPartMD5s, got.TorchPartCRCs)
}

// suffix is the "-N" of a composite checksum, "" if none.
func suffix(s string) string {
	if i := strings.LastIndexByte(s, '-'); i >= 0 {
		return s[i:]
	}
	return ""
}

// checkStatParts reads the checkpoint with clipstore stat --json and as
// text: its ETag and checksum as the completion answered, and its parts at
// 0, 8 and 16 MiB, with the MD5s and CRC32Cs of their upload.
func checkStatParts(t *testing.T, g *gateway, etag string, md5s, crcs []string) {
	t.Helper()
	out, errOut, code := g.c.CLI("stat", "loaders/ckpt/epoch-3.pt", "--json")
	if code != 0 {
		t.Fatalf("stat --json: %s", errOut)
	}
	var rec struct {
		Size      int64             `json:"size"`
		ETag      string            `json:"etag"`
		Checksums map[string]string `json:"checksums"`
		Parts     []struct {
			Number    int               `json:"number"`
			Offset    int64             `json:"offset"`
			Size      int64             `json:"size"`
			ETag      string            `json:"etag"`
			Checksums map[string]string `json:"checksums"`
		} `json:"parts"`
	}
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("stat --json: %v: %s", err, out)
	}
	const mib = 1 << 20
	if `"`+rec.ETag+`"` != etag || suffix(rec.Checksums["crc32c"]) != "-3" || len(rec.Parts) != 3 {
		t.Fatalf("stat --json: %s; want the ETag %s, a composite CRC32C, 3 parts", out, etag)
	}
	for i, p := range rec.Parts {
		want := min(8*mib, 20*mib+12345-int64(i)*8*mib)
		if p.Number != i+1 || p.Offset != int64(i)*8*mib || p.Size != want || p.ETag != md5s[i] || p.Checksums["crc32c"] != crcs[i] {
			t.Errorf("stat --json part %d: %+v; want offset %d, size %d, ETag %s, CRC32C %s", i+1, p, int64(i)*8*mib, want, md5s[i], crcs[i])
		}
	}
	text, errOut, code := g.c.CLI("stat", "loaders/ckpt/epoch-3.pt")
	if code != 0 {
		t.Fatalf("stat: %s", errOut)
	}
	for _, want := range []string{"etag        " + rec.ETag + "\n", "parts       3\n",
		fmt.Sprintf("part 2      offset %d, size %d (8.0 MiB), etag %s, crc32c %s\n", 8*mib, 8*mib, md5s[1], crcs[1])} {
		if !strings.Contains(text, want) {
			t.Errorf("stat lacks %q:\n%s", want, text)
		}
	}
}
