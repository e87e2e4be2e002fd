package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/tlsconf"
)

// runCLI runs the clipstore command line in process and returns what it
// printed and its error.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCommand()
	var out, errOut bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func mustRun(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("clipstore %s: %v", strings.Join(args, " "), err)
	}
	return strings.Split(strings.TrimSuffix(out, "\n"), "\n")
}

// handshakeAs connects client to server over loopback with TLS and returns
// the roles each saw in the other's verified certificate.
func handshakeAs(t *testing.T, server, client *tlsconf.Loader) (serverSaw, clientSaw []string, err error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server.ServerConfig(true))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		roles []string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			done <- result{err: err}
			return
		}
		_, err = tc.Write([]byte{1})
		done <- result{tlsconf.Roles(tc.ConnectionState().VerifiedChains[0][0]), err}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), client.ClientConfig("127.0.0.1"))
	if err == nil {
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = io.ReadFull(c, make([]byte, 1))
		clientSaw = tlsconf.Roles(c.ConnectionState().PeerCertificates[0])
	}
	if err != nil {
		ln.Close()
	}
	r := <-done
	return r.roles, clientSaw, errors.Join(err, r.err)
}

func load(t *testing.T, dir, name string) *tlsconf.Loader {
	t.Helper()
	l, err := tlsconf.New(tlsconf.Files{Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key"),
		CA: filepath.Join(dir, "ca.crt")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestCertsCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	if got, want := mustRun(t, "admin", "certs", "init", "--dir", dir),
		[]string{filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")}; !slices.Equal(got, want) {
		t.Errorf("init printed %q, want %q", got, want)
	}
	for _, n := range []struct{ name, role string }{{"m0", "meta"}, {"s0", "storage"}} {
		got := mustRun(t, "admin", "certs", "node", n.name, "--role", n.role, "--host", "127.0.0.1", "--host", "s0.fleet.example", "--dir", dir)
		if want := []string{filepath.Join(dir, n.name+".crt"), filepath.Join(dir, n.name+".key")}; !slices.Equal(got, want) {
			t.Errorf("node printed %q, want %q", got, want)
		}
	}
	mustRun(t, "admin", "certs", "client", "app", "--dir", dir)
	for _, name := range []string{"ca.key", "s0.key", "app.key"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", name, fi.Mode().Perm(), err)
		}
	}

	meta, storage, app := load(t, dir, "m0"), load(t, dir, "s0"), load(t, dir, "app")
	serverSaw, clientSaw, err := handshakeAs(t, storage, app)
	if err != nil {
		t.Fatalf("client to storage node: %v", err)
	}
	if !slices.Equal(serverSaw, []string{tlsconf.RoleClient}) || !slices.Equal(clientSaw, []string{tlsconf.RoleStorage}) {
		t.Errorf("client to storage node: the node saw roles %v, the client %v", serverSaw, clientSaw)
	}
	serverSaw, clientSaw, err = handshakeAs(t, storage, meta)
	if err != nil {
		t.Fatalf("meta member to storage node: %v", err)
	}
	if !slices.Equal(serverSaw, []string{tlsconf.RoleMeta}) || !slices.Equal(clientSaw, []string{tlsconf.RoleStorage}) {
		t.Errorf("meta member to storage node: the node saw roles %v, the member %v", serverSaw, clientSaw)
	}
	if _, _, err := handshakeAs(t, app, storage); err == nil {
		t.Error("a client certificate, which names no host, served a TLS connection")
	}
}

func TestCertsRefused(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "admin", "certs", "init", "--dir", dir)
	mustRun(t, "admin", "certs", "node", "s0", "--role", "storage", "--host", "127.0.0.1", "--dir", dir)
	empty := t.TempDir()
	cases := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"unknown role", []string{"node", "s1", "--role", "admin", "--host", "10.0.0.1"}, `--role "admin": want meta, storage or gateway`},
		{"client role for a node", []string{"node", "s1", "--role", "client", "--host", "10.0.0.1"}, "clipstore admin certs client"},
		{"no --host", []string{"node", "s1", "--role", "storage"}, "needs --host"},
		{"host with a port", []string{"node", "s1", "--role", "storage", "--host", "10.0.0.1:7500"}, "without ports"},
		{"no --role", []string{"node", "s1", "--host", "10.0.0.1"}, `"role" not set`},
		{"a node named ca", []string{"node", "ca", "--role", "meta", "--host", "10.0.0.1", "--force"}, "other than ca"},
		{"a path for a name", []string{"client", "../app"}, "plain file name"},
		{"no name", []string{"client"}, "want one NAME"},
		{"CA again", []string{"init"}, "ca.crt: file already exists (--force overwrites)"},
		{"node again", []string{"node", "s0", "--role", "storage", "--host", "127.0.0.1"}, "s0.crt: file already exists (--force overwrites)"},
		{"no CA", []string{"client", "app", "--dir", empty}, "(make one with: clipstore admin certs init --dir " + empty + ")"},
		{"negative validity", []string{"client", "app", "--validity", "-1h"}, "negative"},
	}
	before := dirState(t, dir)
	for _, c := range cases {
		args := append([]string{"admin", "certs"}, c.args...)
		if !slices.Contains(c.args, "--dir") {
			args = append(args, "--dir", dir)
		}
		out, err := runCLI(t, args...)
		if err == nil || !strings.Contains(err.Error(), c.wantErr) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line about %q", c.name, err, c.wantErr)
		}
		if out != "" {
			t.Errorf("%s: printed %q", c.name, out)
		}
	}
	if after := dirState(t, dir); after != before {
		t.Errorf("refused commands changed the directory:\n%s\nnow:\n%s", before, after)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("a refused command wrote into the empty directory: %v", entries)
	}

	mustRun(t, "admin", "certs", "node", "s0", "--role", "storage", "--host", "127.0.0.1", "--dir", dir, "--force")
	if after := dirState(t, dir); after == before {
		t.Error("--force did not replace s0's certificate")
	}
}

// dirState is the names and contents of dir's files.
func dirState(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(e.Name() + "\n" + string(data))
	}
	return b.String()
}

// TestCertsValidity: --validity sets the certificate's lifetime.
func TestCertsValidity(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "admin", "certs", "init", "--dir", dir)
	mustRun(t, "admin", "certs", "client", "app", "--dir", dir, "--validity", "24h")
	l := load(t, dir, "app")
	cfg := l.ClientConfig("127.0.0.1")
	cert, err := cfg.GetClientCertificate(&tls.CertificateRequestInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if life := time.Until(cert.Leaf.NotAfter); life > 24*time.Hour || life < 23*time.Hour {
		t.Errorf("client certificate valid for %s more, want 24h", life)
	}
}
