package tlsconf

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testCA is a CA made by NewCA.
type testCA struct{ cert, key []byte }

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	c, k, err := NewCA(name, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{c, k}
}

// pair is a certificate and its key, PEM.
type pair struct{ cert, key []byte }

func (ca *testCA) leaf(t *testing.T, cn string, roles []string, hosts ...string) pair {
	t.Helper()
	c, k, err := NewLeaf(ca.cert, ca.key, LeafOptions{CommonName: cn, Roles: roles, Hosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	return pair{c, k}
}

func (p pair) x509(t *testing.T) *x509.Certificate { return parseCert(t, p.cert) }

func parseCert(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// identityFiles are the files of an identity named name in dir.
func identityFiles(dir, name string) Files {
	return Files{Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key"), CA: filepath.Join(dir, name+"-ca.crt")}
}

// install writes p and the bundle of cas to f's files, replacing them as
// a rotation does.
func install(t *testing.T, f Files, p pair, cas ...*testCA) {
	t.Helper()
	if err := WriteFiles(f.Cert, p.cert, f.Key, p.key, true); err != nil {
		t.Fatal(err)
	}
	installCA(t, f, cas...)
}

func installCA(t *testing.T, f Files, cas ...*testCA) {
	t.Helper()
	var bundle []byte
	for _, ca := range cas {
		bundle = append(bundle, ca.cert...)
	}
	if err := writeFile(f.CA, bundle, 0o644, true); err != nil {
		t.Fatal(err)
	}
}

// newLoader installs p and cas as name in dir and loads them.
func newLoader(t *testing.T, dir, name string, p pair, cas ...*testCA) (*Loader, Files) {
	t.Helper()
	f := identityFiles(dir, name)
	install(t, f, p, cas...)
	l, err := New(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l, f
}

// handshake makes a TLS connection over loopback between server and
// client and exchanges a byte, so that a certificate the server refuses
// after the client's side of a TLS 1.3 handshake is done fails it too. It
// returns what each end saw.
func handshake(t *testing.T, server, client *tls.Config) (srv, cli tls.ConnectionState, err error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type result struct {
		st  tls.ConnectionState
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		s := tls.Server(c, server)
		err = s.HandshakeContext(ctx)
		if err == nil {
			_, err = s.Write([]byte{1})
		}
		done <- result{s.ConnectionState(), err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(c, client)
	cerr := tc.HandshakeContext(ctx)
	if cerr == nil {
		_, cerr = io.ReadFull(tc, make([]byte, 1))
	}
	if cerr != nil {
		c.Close() // unblocks a server waiting for the client's certificate
	}
	r := <-done
	if cerr != nil || r.err != nil {
		return r.st, tc.ConnectionState(), errors.Join(cerr, r.err)
	}
	return r.st, tc.ConnectionState(), nil
}

// logBuffer is a log destination safe for handshakes' goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// corrupt overwrites path in place (the same file, a new size and time),
// as a copy that has not finished would leave it.
func corrupt(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
