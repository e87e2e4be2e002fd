package s3

import (
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
	devS3Line  = regexp.MustCompile(`s3 gateway listening on (127\.0\.0\.1:\d+)`)
	devKeyLine = regexp.MustCompile(`AWS_ACCESS_KEY_ID=(\S+) AWS_SECRET_ACCESS_KEY=(\S+)`)
)

// startDev runs `clipstore dev` on data and returns the gateway it printed,
// with the dev credentials it printed.
func startDev(t *testing.T, data string) (*e2e.Process, *gateway) {
	t.Helper()
	p := e2e.Start(t, "dev", "--data", data, "--listen", "127.0.0.1:0", "--s3", "127.0.0.1:0", "--log-level", "warn")
	var addr, id, secret string
	await.True(t, 30*time.Second, "clipstore dev to print its S3 endpoint and credentials", func() bool {
		log := p.Log.String()
		a, k := devS3Line.FindStringSubmatch(log), devKeyLine.FindStringSubmatch(log)
		if a == nil || k == nil {
			return false
		}
		addr, id, secret = a[1], k[1], k[2]
		return true
	})
	g := &gateway{endpoint: "http://" + addr, keyID: id, secret: secret, home: filepath.Join(t.TempDir(), "home")}
	if err := os.MkdirAll(g.home, 0o700); err != nil {
		t.Fatal(err)
	}
	return p, g
}

// TestDevS3: `clipstore dev` starts an S3 gateway and prints its fixed dev
// credentials, which work; after a restart on the same data directory the
// objects are there. A non-loopback gateway without credentials in the
// environment is refused.
func TestDevS3(t *testing.T) {
	data := t.TempDir()
	p, g := startDev(t, data)
	if g.keyID != "CLIPSTOREDEVKEY" || g.secret != "clipstore-dev-secret-key" {
		t.Fatalf("clipstore dev printed %s / %s; the README documents its fixed dev credentials", g.keyID, g.secret)
	}
	clip := e2e.ClipBytes(7, 200_000)
	path := filepath.Join(t.TempDir(), "clip.mp4")
	if err := os.WriteFile(path, clip, 0o600); err != nil {
		t.Fatal(err)
	}
	g.aws(t, "s3", "mb", "s3://dev")
	g.aws(t, "s3", "cp", path, "s3://dev/car1/front.mp4")
	if err := p.Stop(); err != nil {
		t.Fatalf("SIGTERM clipstore dev: %v\n%s", err, p.Log.String())
	}
	_, g2 := startDev(t, data)
	if g2.keyID != g.keyID || g2.secret != g.secret {
		t.Fatalf("the restarted dev cluster printed other credentials: %s, was %s", g2.keyID, g.keyID)
	}
	if got := g2.aws(t, "s3", "cp", "s3://dev/car1/front.mp4", "-"); string(got) != string(clip) {
		t.Fatalf("after the restart: %d bytes, not the %d stored", len(got), len(clip))
	}
	if out := string(g2.aws(t, "s3", "ls", "s3://dev/car1/")); !strings.Contains(out, "front.mp4") {
		t.Fatalf("s3 ls after the restart:\n%s", out)
	}
	cmd := exec.Command(e2e.Binary(), "dev", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--s3", "0.0.0.0:0")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "not a loopback address") {
		t.Fatalf("clipstore dev --s3 0.0.0.0:0 with the dev credentials: %v\n%s", err, out)
	}
}
