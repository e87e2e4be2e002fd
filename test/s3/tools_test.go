package s3

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/clipstore/clipstore/test/e2e"
)

// step is one case of a test whose cases build on each other.
type step struct {
	name string
	run  func(t *testing.T)
}

// runSteps runs steps in order, one subtest each, and stops at the first
// that fails: the later ones need what it should have left.
func runSteps(t *testing.T, steps ...step) {
	t.Helper()
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			return
		}
	}
}

// writeTree writes files (slash-separated keys) under dir.
func writeTree(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for key, data := range files {
		path := filepath.Join(dir, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// readTree reads every file under dir, by slash-separated path.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)], err = os.ReadFile(path)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// headETag is the object's ETag as aws-cli's head-object reports it.
func (g *gateway) headETag(t *testing.T, bucket, key string) string {
	t.Helper()
	var head struct{ ETag string }
	if err := json.Unmarshal(g.aws(t, "s3api", "head-object", "--bucket", bucket, "--key", key), &head); err != nil {
		t.Fatal(err)
	}
	return head.ETag
}

// rcloneRun is TestRclone's state: the gateway, rclone's config, and the
// tree it copies up.
type rcloneRun struct {
	g      *gateway
	config string
	src    string
	files  map[string][]byte
}

// TestRclone's remote, the bucket it copies the tree to, and the part size
// it uploads the big file in.
const (
	rcloneRemote   = "clipstore"
	rcloneBucket   = "rclone-tree"
	rcloneTree     = rcloneRemote + ":" + rcloneBucket
	rclonePartSize = 5 << 20
)

// TestRclone drives the gateway with Debian's rclone: mkdir, a copy of a
// tree up (its 20 MiB file in 5 MiB parts), check (sizes and MD5s: the
// ETag of the single-part objects, the md5chksum metadata rclone stores on
// the multipart one), lsjson, cat of ranges, a copy back down, delete and
// purge.
func TestRclone(t *testing.T) {
	g := startGateway(t)
	r := &rcloneRun{g: g, config: filepath.Join(g.home, ".config", "rclone", "rclone.conf"), src: t.TempDir(), files: map[string][]byte{
		"big.mp4":            e2e.ClipBytes(11, 20<<20+12345),
		"cam/front/0001.mp4": e2e.ClipBytes(12, 1<<20+3),
		"cam/rear/0001.mp4":  e2e.ClipBytes(13, 100_000),
		"notes.txt":          []byte("front camera fogged from 0001 on\n"),
		"empty.bin":          {},
	}}
	writeTree(t, r.src, r.files)
	config := fmt.Sprintf("[%s]\ntype = s3\nprovider = Other\nenv_auth = false\nendpoint = %s\n"+
		"access_key_id = %s\nsecret_access_key = %s\nregion = us-east-1\nforce_path_style = true\n",
		rcloneRemote, g.endpoint, g.keyID, g.secret)
	writeTree(t, filepath.Dir(r.config), map[string][]byte{"rclone.conf": []byte(config)})
	runSteps(t,
		step{"mkdir", r.mkdir},
		step{"copy up", r.copyUp},
		step{"check", r.check},
		step{"lsjson", r.lsjson},
		step{"cat ranges", r.cat},
		step{"copy back", r.copyBack},
		step{"delete and purge", r.deleteAndPurge},
		step{"fast etags", r.fastETags},
	)
}

// rclone runs rclone, without retries: a request the gateway fails fails
// the command.
func (r *rcloneRun) rclone(t *testing.T, args ...string) []byte {
	t.Helper()
	return r.g.run(t, nil, "/usr/bin/rclone", r.args(args)...)
}

// try runs rclone as rclone does and returns its log (stderr).
func (r *rcloneRun) try(args ...string) (string, error) {
	_, errOut, err := r.g.try(nil, "/usr/bin/rclone", r.args(args)...)
	return errOut, err
}

func (r *rcloneRun) args(args []string) []string {
	return append([]string{"--config", r.config, "--retries", "1", "--low-level-retries", "1"}, args...)
}

func (r *rcloneRun) mkdir(t *testing.T) {
	r.rclone(t, "mkdir", rcloneTree)
	if out := r.rclone(t, "lsjson", rcloneRemote+":"); !bytes.Contains(out, []byte(`"Path":"`+rcloneBucket+`"`)) {
		t.Fatalf("lsjson of the buckets lacks %s after mkdir:\n%s", rcloneBucket, out)
	}
}

// copyUp copies the tree up; the big file goes in parts, as its ETag shows.
func (r *rcloneRun) copyUp(t *testing.T) {
	r.rclone(t, "copy", r.src, rcloneTree, "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M")
	big := r.files["big.mp4"]
	if got, want := r.g.headETag(t, rcloneBucket, "big.mp4"), `"`+multipartETag(big, rclonePartSize)+`"`; got != want {
		t.Fatalf("ETag of the big file: %s, want %s (5 parts of 5 MiB)", got, want)
	}
}

// check runs rclone check on the tree, then on a copy with a byte changed
// in two files (one multipart, one not), which it must find.
func (r *rcloneRun) check(t *testing.T) {
	errOut, err := r.try("check", r.src, rcloneTree)
	matching := fmt.Sprintf("%d matching files", len(r.files))
	if err != nil || !strings.Contains(errOut, "0 differences found") || !strings.Contains(errOut, matching) ||
		strings.Contains(errOut, "could not be checked") {
		t.Fatalf("rclone check: %v\n%s", err, errOut)
	}
	altered := t.TempDir()
	changed := map[string][]byte{"big.mp4": nil, "cam/rear/0001.mp4": nil}
	for key := range changed {
		data := bytes.Clone(r.files[key])
		data[len(data)/2] ^= 1
		changed[key] = data
	}
	writeTree(t, altered, changed)
	errOut, err = r.try("check", "--one-way", altered, rcloneTree)
	if err == nil || !strings.Contains(errOut, "2 differences found") || strings.Count(errOut, "md5 differ") != 2 {
		t.Fatalf("rclone check of two files with a byte changed: %v\n%s", err, errOut)
	}
}

// lsjson lists the tree with sizes and MD5s.
func (r *rcloneRun) lsjson(t *testing.T) {
	var list []struct {
		Path   string
		Size   int64
		Hashes map[string]string
	}
	if err := json.Unmarshal(r.rclone(t, "lsjson", "-R", "--files-only", "--hash", rcloneTree), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != len(r.files) {
		t.Errorf("lsjson lists %d files, want %d: %+v", len(list), len(r.files), list)
	}
	for _, f := range list {
		data, ok := r.files[f.Path]
		if !ok || f.Size != int64(len(data)) || f.Hashes["md5"] != md5hex(data) {
			t.Errorf("lsjson: %s of %d bytes, MD5 %s; want %d bytes, MD5 %s", f.Path, f.Size, f.Hashes["md5"], len(data), md5hex(data))
		}
	}
}

// cat reads ranges: across the big file's first part boundary, and one
// running past the end of a file.
func (r *rcloneRun) cat(t *testing.T) {
	big, rear := r.files["big.mp4"], r.files["cam/rear/0001.mp4"]
	cases := []struct {
		key           string
		offset, count int
		want          []byte
	}{
		{"big.mp4", rclonePartSize - 10, 20, big[rclonePartSize-10 : rclonePartSize+10]},
		{"big.mp4", len(big) - 1000, 1000, big[len(big)-1000:]},
		{"cam/rear/0001.mp4", len(rear) - 10, 100, rear[len(rear)-10:]},
	}
	for _, c := range cases {
		got := r.rclone(t, "cat", "--offset", fmt.Sprint(c.offset), "--count", fmt.Sprint(c.count), rcloneTree+"/"+c.key)
		if !bytes.Equal(got, c.want) {
			t.Errorf("cat --offset %d --count %d %s: %d bytes, not the %d stored there", c.offset, c.count, c.key, len(got), len(c.want))
		}
	}
}

func (r *rcloneRun) copyBack(t *testing.T) {
	back := t.TempDir()
	r.rclone(t, "copy", rcloneTree, back)
	got := readTree(t, back)
	if len(got) != len(r.files) {
		t.Errorf("copy back: %d files, want %d", len(got), len(r.files))
	}
	for key, data := range r.files {
		if !bytes.Equal(got[key], data) {
			t.Errorf("copy back: %s is %d bytes, not the %d stored", key, len(got[key]), len(data))
		}
	}
}

// deleteAndPurge deletes cam/ with rclone delete, then the bucket with
// rclone purge.
// fastETags copies the tree into a bucket with fast ETags: rclone must
// not take them for MD5s (it fails a transfer whose MD5-shaped ETag
// differs), and the tree comes back byte for byte (check --download reads
// every file).
func (r *rcloneRun) fastETags(t *testing.T) {
	const bucket = "rclone-fast"
	mkFastBucket(t, r.g, bucket)
	tree := rcloneRemote + ":" + bucket + "/tree"
	r.rclone(t, "copy", r.src, tree, "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M")
	if etag := r.g.headETag(t, bucket, "tree/big.mp4"); !fastETagRe.MatchString(etag) || !strings.HasSuffix(etag, `-5"`) {
		t.Errorf("ETag of the big file in a fast bucket: %s", etag)
	}
	if errOut, err := r.try("check", "--download", r.src, tree); err != nil || !strings.Contains(errOut, "0 differences found") {
		t.Fatalf("rclone check --download of a fast bucket: %v\n%s", err, errOut)
	}
	r.rclone(t, "purge", rcloneRemote+":"+bucket)
}

func (r *rcloneRun) deleteAndPurge(t *testing.T) {
	r.rclone(t, "delete", rcloneTree+"/cam")
	if out := string(r.rclone(t, "lsf", "-R", "--files-only", rcloneTree)); out != "big.mp4\nempty.bin\nnotes.txt\n" {
		t.Fatalf("after rclone delete of cam/: lsf lists\n%s", out)
	}
	r.rclone(t, "purge", rcloneTree)
	if out := r.rclone(t, "lsjson", rcloneRemote+":"); bytes.Contains(out, []byte(rcloneBucket)) {
		t.Fatalf("rclone purge left the bucket:\n%s", out)
	}
}

// The bucket and keys of TestS3cmd, and the part size it puts the big
// file in.
const (
	s3cmdBucket   = "s3cmd-clips"
	s3cmdBigKey   = "trip/front.mp4"
	s3cmdSmallKey = "readme.txt"
	s3cmdPartMB   = 5
)

// s3cmdURI is the s3:// URI of key in TestS3cmd's bucket.
func s3cmdURI(key string) string { return "s3://" + s3cmdBucket + "/" + key }

// s3cmdRun is TestS3cmd's state: the gateway and the files it puts.
type s3cmdRun struct {
	g          *gateway
	dir        string // big.mp4 and small.txt
	big, small []byte
}

// TestS3cmd drives the gateway with Debian's s3cmd (signature v4, path
// style): mb, put (a 12 MiB file in 5 MiB parts and a small one), ls, la,
// info, get byte-identical, del, rb.
func TestS3cmd(t *testing.T) {
	g := startGateway(t)
	r := &s3cmdRun{g: g, dir: t.TempDir(), big: e2e.ClipBytes(21, 12<<20), small: e2e.ClipBytes(22, 3000)}
	writeTree(t, r.dir, map[string][]byte{"big.mp4": r.big, "small.txt": r.small})
	// No bucket_location: where s3cmd knows no bucket's region (mb, ls of
	// the buckets) it signs for its default "US", and re-signs for the
	// <Region> that S3 names in its AuthorizationHeaderMalformed answer.
	host := strings.TrimPrefix(g.endpoint, "http://")
	config := fmt.Sprintf("[default]\naccess_key = %s\nsecret_key = %s\nhost_base = %s\nhost_bucket = %s\n"+
		"use_https = False\nsignature_v2 = False\nprogress_meter = False\n", g.keyID, g.secret, host, host)
	writeTree(t, g.home, map[string][]byte{".s3cfg": []byte(config)})
	runSteps(t,
		step{"mb", r.mb},
		step{"put", r.put},
		step{"ls and la", r.ls},
		step{"info", r.info},
		step{"get", r.get},
		step{"del and rb", r.delAndRB},
		step{"fast etags", r.fastETags},
	)
}

// s3cmd runs s3cmd with the config in its HOME. s3cmd retries a failed
// request after a wait, and warns of an MD5 that does not match: a
// warning fails the test.
func (r *s3cmdRun) s3cmd(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := r.try(args...)
	if err != nil || strings.Contains(errOut, "WARNING") {
		t.Fatalf("s3cmd %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

func (r *s3cmdRun) try(args ...string) (string, string, error) {
	out, errOut, err := r.g.try(nil, "/usr/bin/s3cmd", append([]string{"-c", filepath.Join(r.g.home, ".s3cfg")}, args...)...)
	return string(out), errOut, err
}

func (r *s3cmdRun) mb(t *testing.T) {
	r.s3cmd(t, "mb", s3cmdURI(""))
	if out := r.s3cmd(t, "ls"); !strings.Contains(out, "s3://"+s3cmdBucket) {
		t.Fatalf("s3cmd ls lacks the bucket after mb:\n%s", out)
	}
}

// put puts the big file in parts (its ETag shows three) and the small one
// whole (its ETag is its MD5).
func (r *s3cmdRun) put(t *testing.T) {
	r.s3cmd(t, "put", fmt.Sprintf("--multipart-chunk-size-mb=%d", s3cmdPartMB), filepath.Join(r.dir, "big.mp4"), s3cmdURI(s3cmdBigKey))
	r.s3cmd(t, "put", filepath.Join(r.dir, "small.txt"), s3cmdURI(s3cmdSmallKey))
	if got, want := r.g.headETag(t, s3cmdBucket, s3cmdBigKey), `"`+multipartETag(r.big, s3cmdPartMB<<20)+`"`; got != want {
		t.Errorf("ETag of the file put in parts: %s, want %s", got, want)
	}
	if got, want := r.g.headETag(t, s3cmdBucket, s3cmdSmallKey), `"`+md5hex(r.small)+`"`; got != want {
		t.Errorf("ETag of the small file: %s, want its MD5 %s", got, want)
	}
}

// ls lists the bucket with a delimiter, recursively with MD5s (s3cmd
// takes a multipart object's from the metadata it stored), and every
// bucket's objects (la).
func (r *s3cmdRun) ls(t *testing.T) {
	out := r.s3cmd(t, "ls", s3cmdURI(""))
	if !strings.Contains(out, "DIR  "+s3cmdURI("trip/")) || !strings.Contains(out, s3cmdURI(s3cmdSmallKey)) {
		t.Errorf("s3cmd ls of the bucket:\n%s", out)
	}
	out = r.s3cmd(t, "ls", "--recursive", "--list-md5", s3cmdURI(""))
	for key, data := range map[string][]byte{s3cmdBigKey: r.big, s3cmdSmallKey: r.small} {
		want := fmt.Sprintf("%d  %s", len(data), md5hex(data))
		if !strings.Contains(lineOf(out, s3cmdURI(key)), want) {
			t.Errorf("s3cmd ls --recursive --list-md5: no %s with %q:\n%s", key, want, out)
		}
	}
	out = r.s3cmd(t, "la")
	if !strings.Contains(out, s3cmdURI("trip/")) || !strings.Contains(out, s3cmdURI(s3cmdSmallKey)) {
		t.Errorf("s3cmd la:\n%s", out)
	}
}

// lineOf is the first line of out that ends with suffix.
func lineOf(out, suffix string) string {
	for line := range strings.Lines(out) {
		if strings.HasSuffix(strings.TrimRight(line, "\n"), suffix) {
			return line
		}
	}
	return ""
}

// info reads an object's size and MD5, and the bucket's information (the
// sub-resources the gateway does not implement, s3cmd reports as none).
func (r *s3cmdRun) info(t *testing.T) {
	out := r.s3cmd(t, "info", s3cmdURI(s3cmdBigKey))
	if !strings.Contains(out, fmt.Sprintf("File size: %d", len(r.big))) || !strings.Contains(out, "MD5 sum:   "+md5hex(r.big)) {
		t.Errorf("s3cmd info of the big file:\n%s", out)
	}
	if out := r.s3cmd(t, "info", s3cmdURI("")); !strings.Contains(out, s3cmdURI("")+" (bucket)") {
		t.Errorf("s3cmd info of the bucket:\n%s", out)
	}
}

func (r *s3cmdRun) get(t *testing.T) {
	back := filepath.Join(t.TempDir(), "big.back")
	r.s3cmd(t, "get", s3cmdURI(s3cmdBigKey), back)
	if got, err := os.ReadFile(back); err != nil || !bytes.Equal(got, r.big) {
		t.Errorf("s3cmd get of the file put in parts: %d bytes (%v), not the %d stored", len(got), err, len(r.big))
	}
	if got := r.s3cmd(t, "get", s3cmdURI(s3cmdSmallKey), "-"); got != string(r.small) {
		t.Errorf("s3cmd get of the small file to stdout: %d bytes, not the %d stored", len(got), len(r.small))
	}
}

// delAndRB: rb of the bucket with objects fails; del of both, then rb.
// fastETags puts both files into a bucket with fast ETags (clipstore mb
// --etag-mode fast): s3cmd must not take the ETags for MD5s (it warns and
// uploads again when an MD5-shaped ETag differs), and gets them back.
func (r *s3cmdRun) fastETags(t *testing.T) {
	const bucket = "s3cmd-fast"
	mkFastBucket(t, r.g, bucket)
	uri := func(key string) string { return "s3://" + bucket + "/" + key }
	r.s3cmd(t, "put", fmt.Sprintf("--multipart-chunk-size-mb=%d", s3cmdPartMB), filepath.Join(r.dir, "big.mp4"), uri(s3cmdBigKey))
	r.s3cmd(t, "put", filepath.Join(r.dir, "small.txt"), uri(s3cmdSmallKey))
	for key, suffix := range map[string]string{s3cmdBigKey: "-3", s3cmdSmallKey: "-1"} {
		if etag := r.g.headETag(t, bucket, key); !fastETagRe.MatchString(etag) || !strings.HasSuffix(etag, suffix+`"`) {
			t.Errorf("ETag of %s in a fast bucket: %s, want a clip id with %s", key, etag, suffix)
		}
	}
	back := t.TempDir()
	for key, data := range map[string][]byte{s3cmdBigKey: r.big, s3cmdSmallKey: r.small} {
		path := filepath.Join(back, strings.ReplaceAll(key, "/", "_"))
		r.s3cmd(t, "get", uri(key), path)
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("s3cmd get of %s from a fast bucket: %d bytes, %v", key, len(got), err)
		}
	}
	r.s3cmd(t, "del", uri(s3cmdBigKey), uri(s3cmdSmallKey))
	r.s3cmd(t, "rb", uri(""))
}

// fastETagRe matches a fast ETag: a clip id and a part count.
var fastETagRe = regexp.MustCompile(`^"[0-9a-f]{32}-[0-9]+"$`)

// mkFastBucket makes a bucket with fast ETags with the clipstore CLI.
func mkFastBucket(t *testing.T, g *gateway, bucket string) {
	t.Helper()
	if _, errOut, code := g.c.CLI("mb", bucket, "--etag-mode", "fast"); code != 0 {
		t.Fatalf("clipstore mb --etag-mode fast: %s", errOut)
	}
}

func (r *s3cmdRun) delAndRB(t *testing.T) {
	if _, errOut, err := r.try("rb", s3cmdURI("")); err == nil || !strings.Contains(errOut, "BucketNotEmpty") {
		t.Fatalf("s3cmd rb of a bucket with objects: %v\n%s", err, errOut)
	}
	r.s3cmd(t, "del", s3cmdURI(s3cmdBigKey), s3cmdURI(s3cmdSmallKey))
	if out := r.s3cmd(t, "ls", "--recursive", s3cmdURI("")); out != "" {
		t.Fatalf("s3cmd ls after del:\n%s", out)
	}
	r.s3cmd(t, "rb", s3cmdURI(""))
	if out := r.s3cmd(t, "ls"); strings.Contains(out, "s3://"+s3cmdBucket) {
		t.Fatalf("s3cmd ls after rb:\n%s", out)
	}
}
