package tls

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/test/e2e"
)

// keyFourAdded finds the log line of the fourth capability key.
var keyFourAdded = regexp.MustCompile(`"msg":"capability key added"[^\n]*"id":4,`)

// TestCertificateRotationUnderLoad rotates a running TLS cluster to a new
// CA as operators do it, while 4 clients put and read back clips: add the
// new CA to every bundle, swap every certificate for one of the new CA,
// then drop the old CA, each step by rewriting the files and sending
// SIGHUP. No operation fails; after each step a fresh CLI (new
// connections, the current files) works; at the end a certificate of the
// old CA is refused, and a restarted storage node rejoins. Meanwhile
// every call is signed and every shard stream carries a capability,
// whose keys rotate every 6 s until the first key has been dropped.
func TestCertificateRotationUnderLoad(t *testing.T) {
	c := e2e.StartCluster(t, e2e.ClusterOptions{StorageNodes: 6, TLS: true, RequireAuth: true,
		MetaArgs: []string{"--node-down-after", "2s", "--key-rotation", "6s", "--capability-ttl", "4s", "--max-upload-duration", "4s"}})
	if _, errOut, code := c.CLI("mb", "rotation"); code != 0 {
		t.Fatalf("mb: %s", errOut)
	}
	cl := c.Client() // its certificate files are re-read as they change, like every process's

	var ops, failures atomic.Int64
	var firstErr atomic.Value
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				key := fmt.Sprintf("w%d/%d", w, i%20)
				data := e2e.ClipBytes(uint64(w*1000+i), 100_000+i%7*1000)
				err := func() error {
					octx, cancel := context.WithTimeout(ctx, 30*time.Second)
					defer cancel()
					if _, err := cl.Put(octx, "rotation", key, bytes.NewReader(data), nil); err != nil {
						return fmt.Errorf("put %s: %w", key, err)
					}
					var got bytes.Buffer
					if _, err := cl.Get(octx, "rotation", key, &got, nil); err != nil {
						return fmt.Errorf("get %s: %w", key, err)
					}
					if !bytes.Equal(got.Bytes(), data) {
						return fmt.Errorf("get %s: %d bytes differ from the %d put", key, got.Len(), len(data))
					}
					return nil
				}()
				switch {
				case err == nil:
					ops.Add(1)
				case ctx.Err() == nil:
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	t.Cleanup(func() { stop(); wg.Wait() })

	dir, next := c.TLS.Dir, e2e.MakeTLSCerts(t, filepath.Join(t.TempDir(), "next"))
	oldClient := e2e.CopyTLSCerts(t, c.TLS, filepath.Join(t.TempDir(), "old"))
	read := func(path string) []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	oldCA, newCA := read(filepath.Join(dir, "ca.crt")), read(filepath.Join(next.Dir, "ca.crt"))
	step := func(name string, write func()) {
		t.Helper()
		before := ops.Load()
		write()
		for _, p := range c.Processes() {
			syscall.Kill(p.Pid(), syscall.SIGHUP)
		}
		time.Sleep(1500 * time.Millisecond) // past the loaders' once-a-second check too
		if _, errOut, code := c.CLI("ls", "rotation", "--timeout", "20s"); code != 0 {
			t.Fatalf("%s: a fresh CLI: %s", name, errOut)
		}
		await := time.Now().Add(20 * time.Second)
		for ops.Load() < before+8 && time.Now().Before(await) {
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("%s: %d operations so far, %d failed", name, ops.Load(), failures.Load())
	}
	step("both CAs in every bundle", func() { writeFile(t, filepath.Join(dir, "ca.crt"), append(append([]byte{}, oldCA...), newCA...)) })
	step("every certificate of the new CA", func() {
		for _, role := range []string{"meta", "storage", "gateway", "client"} {
			for _, ext := range []string{".key", ".crt"} {
				writeFile(t, filepath.Join(dir, role+ext), read(filepath.Join(next.Dir, role+ext)))
			}
		}
	})
	step("the old CA dropped", func() { writeFile(t, filepath.Join(dir, "ca.crt"), newCA) })

	// A client of the old CA is refused now.
	if _, errOut, code := e2e.CLI(t, oldClient.Env("client"), "ls", "rotation", "--meta", c.MetaAddrs(), "--timeout", "5s"); code == 0 {
		t.Errorf("a client certificate of the old CA was accepted: %s", errOut)
	}
	// A storage node restarted now rejoins with the new files.
	s := c.Storage[0]
	s.Proc.Kill()
	c.StartStorage(s)
	c.WaitNodesUp(6)
	// The load goes on until the capability keyring has dropped its first
	// key (key 4 added).
	await.True(t, 40*time.Second, "capability key 4 added", func() bool {
		for _, m := range c.Metas {
			if keyFourAdded.MatchString(m.Proc.Log.String()) {
				return true
			}
		}
		return false
	})
	time.Sleep(2 * time.Second)
	stop()
	wg.Wait()
	if n := failures.Load(); n > 0 || ops.Load() < 30 {
		t.Fatalf("%d operations, %d failed during the rotation; the first: %v", ops.Load(), n, firstErr.Load())
	}
}

// writeFile replaces path's content at once (a temporary file renamed over
// it), as a certificate deployment does.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
