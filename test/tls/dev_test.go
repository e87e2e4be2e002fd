package tls

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/test/e2e"
)

var (
	devMetaLine = regexp.MustCompile(`meta listening on (127\.0\.0\.1:\d+)`)
	devS3Line   = regexp.MustCompile(`s3 gateway listening on (127\.0\.0\.1:\d+)`)
	devEnvLine  = regexp.MustCompile(`export (CLIPSTORE_TLS_CERT=\S+) (CLIPSTORE_TLS_KEY=\S+) (CLIPSTORE_TLS_CA=\S+)\s+export (CLIPSTORE_ACCESS_KEY=\S+) (CLIPSTORE_SECRET_KEY=\S+)`)
)

// TestDevTLS: `clipstore dev --tls` makes a CA and certificates under its
// data directory, serves every link with TLS (the S3 gateway with HTTPS)
// and takes only signed calls; it prints the CLI's environment
// (certificates and a key), with which the CLI works, and without which,
// or without its key, it is refused; a restart keeps the certificates.
func TestDevTLS(t *testing.T) {
	data := t.TempDir()
	start := func() (p *e2e.Process, metaAddr, s3Addr string, env []string) {
		t.Helper()
		p = e2e.Start(t, "dev", "--tls", "--data", data, "--listen", "127.0.0.1:0", "--s3", "127.0.0.1:0", "--log-level", "warn")
		await.True(t, 30*time.Second, "clipstore dev --tls to print its addresses and the CLI's environment", func() bool {
			log := p.Log.String()
			m, s, e := devMetaLine.FindStringSubmatch(log), devS3Line.FindStringSubmatch(log), devEnvLine.FindStringSubmatch(log)
			if m == nil || s == nil || e == nil {
				return false
			}
			metaAddr, s3Addr, env = m[1], s[1], e[1:]
			return true
		})
		return p, metaAddr, s3Addr, env
	}
	dev, metaAddr, s3Addr, env := start()
	file := filepath.Join(t.TempDir(), "clip.mp4")
	clip := e2e.ClipBytes(3, 300_000)
	if err := os.WriteFile(file, clip, 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(env []string, args ...string) (string, string, int) {
		return e2e.CLI(t, env, append(args, "--meta", metaAddr, "--timeout", "10s")...)
	}
	for _, args := range [][]string{{"mb", "videos"}, {"put", "videos/car1/front.mp4", file}} {
		if _, errOut, code := cli(env, args...); code != 0 {
			t.Fatalf("%v over TLS: %s", args, errOut)
		}
	}
	if _, errOut, code := cli(nil, "ls", "videos"); code == 0 {
		t.Fatalf("a CLI without the certificates listed the bucket: %s", errOut)
	}
	if _, errOut, code := cli(env[:3], "ls", "videos"); code == 0 || !strings.Contains(errOut, "signed with an access key") {
		t.Fatalf("a CLI with the certificates but no key: exit %d, %s; want refused", code, errOut)
	}
	caFile := strings.TrimPrefix(env[2], "CLIPSTORE_TLS_CA=")
	ca, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	aws := exec.Command("/usr/bin/aws", "--endpoint-url", "https://"+s3Addr, "--ca-bundle", caFile, "s3", "cp", "s3://videos/car1/front.mp4", "-")
	aws.Env = []string{"HOME=" + t.TempDir(), "PATH=/usr/bin:/bin", "AWS_ACCESS_KEY_ID=CLIPSTOREDEVKEY",
		"AWS_SECRET_ACCESS_KEY=clipstore-dev-secret-key", "AWS_DEFAULT_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true"}
	var out, errb bytes.Buffer
	aws.Stdout, aws.Stderr = &out, &errb
	if err := aws.Run(); err != nil || !bytes.Equal(out.Bytes(), clip) {
		t.Fatalf("aws s3 cp over HTTPS: %v, %d bytes: %s", err, out.Len(), errb.String())
	}

	// A restart on the same data keeps the CA: the old environment works.
	if err := dev.Stop(); err != nil {
		t.Fatalf("SIGTERM clipstore dev: %v", err)
	}
	_, metaAddr, _, env2 := start()
	if again, _ := os.ReadFile(caFile); !bytes.Equal(again, ca) || env2[2] != env[2] {
		t.Fatal("the restarted dev cluster made another CA")
	}
	got := filepath.Join(t.TempDir(), "back")
	if _, errOut, code := cli(env, "get", "videos/car1/front.mp4", got); code != 0 {
		t.Fatalf("get after the restart: %s", errOut)
	}
	if b, _ := os.ReadFile(got); !bytes.Equal(b, clip) {
		t.Fatal("the clip reads back wrong after the restart")
	}
}
