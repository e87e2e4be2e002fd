package e2e

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/clipstore/clipstore/internal/tlsconf"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// TLSCerts are a CA and certificates for every role, made by `clipstore
// admin certs` in Dir: ca.crt, and <role>.crt and <role>.key for meta,
// storage, gateway and client (the server ones name 127.0.0.1).
type TLSCerts struct{ Dir string }

// MakeTLSCerts makes the CA and the certificates in dir with the CLI.
func MakeTLSCerts(t testing.TB, dir string) *TLSCerts {
	t.Helper()
	run := func(args ...string) {
		t.Helper()
		if _, errOut, code := CLI(t, nil, append([]string{"admin", "certs"}, append(args, "--dir", dir)...)...); code != 0 {
			t.Fatalf("clipstore admin certs %v: %s", args, errOut)
		}
	}
	run("init")
	for _, role := range []string{"meta", "storage", "gateway"} {
		run("node", role, "--role", role, "--host", "127.0.0.1", "--host", "localhost")
	}
	run("client", "client")
	return &TLSCerts{Dir: dir}
}

// Files are the files of role's identity.
func (c *TLSCerts) Files(role string) tlsconf.Files {
	return tlsconf.Files{Cert: filepath.Join(c.Dir, role+".crt"), Key: filepath.Join(c.Dir, role+".key"), CA: filepath.Join(c.Dir, "ca.crt")}
}

// Flags are the TLS flags of a process with role's identity; none if c
// is nil.
func (c *TLSCerts) Flags(role string) []string {
	if c == nil {
		return nil
	}
	f := c.Files(role)
	return []string{"--tls-cert", f.Cert, "--tls-key", f.Key, "--tls-ca", f.CA}
}

// Env is the CLI's environment for role's identity; none if c is nil.
func (c *TLSCerts) Env(role string) []string {
	if c == nil {
		return nil
	}
	f := c.Files(role)
	return []string{"CLIPSTORE_TLS_CERT=" + f.Cert, "CLIPSTORE_TLS_KEY=" + f.Key, "CLIPSTORE_TLS_CA=" + f.CA}
}

// Loader loads role's identity; nil if c is nil (plain text).
func (c *TLSCerts) Loader(t testing.TB, role string) *tlsconf.Loader {
	t.Helper()
	if c == nil {
		return nil
	}
	l, err := tlsconf.New(c.Files(role), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Credentials are gRPC transport credentials with role's identity, or
// plain text if c is nil.
func (c *TLSCerts) Credentials(t testing.TB, role string) credentials.TransportCredentials {
	t.Helper()
	if c == nil {
		return insecure.NewCredentials()
	}
	return c.Loader(t, role).ClientCredentials()
}

// CopyTLSCerts copies the CA bundle and every certificate and key of c
// into dir (to keep a set that is about to be replaced).
func CopyTLSCerts(t testing.TB, c *TLSCerts, dir string) *TLSCerts {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	names, err := filepath.Glob(filepath.Join(c.Dir, "*.*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(name)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return &TLSCerts{Dir: dir}
}
