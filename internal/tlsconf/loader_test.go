package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHandshake(t *testing.T) {
	dir := t.TempDir()
	ca, other := newTestCA(t, "test CA"), newTestCA(t, "other CA")
	member := ca.leaf(t, "s0", []string{RoleStorage}, "127.0.0.1", "localhost")
	srv, _ := newLoader(t, dir, "server", member, ca)
	cli, _ := newLoader(t, dir, "client", ca.leaf(t, "app", []string{RoleClient}), ca)
	strangerClient, _ := newLoader(t, dir, "stranger", other.leaf(t, "app", []string{RoleClient}), ca)
	strangerServer, _ := newLoader(t, dir, "impostor", other.leaf(t, "s0", []string{RoleStorage}, "127.0.0.1"), ca)
	misnamed, _ := newLoader(t, dir, "misnamed", ca.leaf(t, "s1", []string{RoleStorage}, "127.0.0.2", "s1.example"), ca)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.cert)
	noCert := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}
	tls12Client := cli.ClientConfig("127.0.0.1")
	tls12Client.MinVersion, tls12Client.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	keyPair, err := tls.X509KeyPair(member.cert, member.key)
	if err != nil {
		t.Fatal(err)
	}
	tls12Server := &tls.Config{Certificates: []tls.Certificate{keyPair}, MaxVersion: tls.VersionTLS12}
	sniOnly := cli.ClientConfig("")
	sniOnly.ServerName = "localhost" // as gRPC does on its copy of the config

	cases := []struct {
		name      string
		server    *tls.Config
		client    *tls.Config
		wantErr   string // "" for success
		wantRoles []string
	}{
		{"certificates of the CA", srv.ServerConfig(true), cli.ClientConfig("127.0.0.1"), "", []string{RoleClient}},
		{"by DNS name", srv.ServerConfig(true), cli.ClientConfig("localhost"), "", []string{RoleClient}},
		{"name from SNI", srv.ServerConfig(true), sniOnly, "", []string{RoleClient}},
		{"member as client", srv.ServerConfig(true), srv.ClientConfig("127.0.0.1"), "", []string{RoleStorage}},
		{"client certificate of another CA", srv.ServerConfig(true), strangerClient.ClientConfig("127.0.0.1"), "certificate", nil},
		{"client certificate of another CA, not required", srv.ServerConfig(false), strangerClient.ClientConfig("127.0.0.1"), "certificate", nil},
		{"no client certificate, required", srv.ServerConfig(true), noCert, "certificate", nil},
		{"no client certificate, not required", srv.ServerConfig(false), noCert, "", nil},
		{"server certificate of another CA", strangerServer.ServerConfig(true), cli.ClientConfig("127.0.0.1"), "unknown authority", nil},
		{"server certificate for other hosts", misnamed.ServerConfig(true), cli.ClientConfig("127.0.0.1"), "not 127.0.0.1", nil},
		{"server certificate for other names", srv.ServerConfig(true), cli.ClientConfig("s1.example"), "not s1.example", nil},
		{"no server name, by IP address", srv.ServerConfig(true), cli.ClientConfig(""), "no server name", nil},
		{"TLS 1.2 client", srv.ServerConfig(false), tls12Client, "version", nil},
		{"TLS 1.2 server", tls12Server, cli.ClientConfig("127.0.0.1"), "version", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, cst, err := handshake(t, c.server, c.client)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("handshake error %v, want one about %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if st.Version != tls.VersionTLS13 {
				t.Errorf("version %x, want TLS 1.3", st.Version)
			}
			if got := cst.PeerCertificates[0].SerialNumber; got.Cmp(member.x509(t).SerialNumber) != 0 {
				t.Errorf("server presented serial %x, want %x", got, member.x509(t).SerialNumber)
			}
			var peer *x509.Certificate
			if len(st.VerifiedChains) > 0 {
				peer = st.VerifiedChains[0][0]
			}
			if got := Roles(peer); !slices.Equal(got, c.wantRoles) {
				t.Errorf("client's verified roles %v, want %v", got, c.wantRoles)
			}
		})
	}
}

// serverSerial is the serial of the certificate srv presents to cli.
func serverSerial(t *testing.T, srv, cli *Loader) (string, error) {
	t.Helper()
	_, cst, err := handshake(t, srv.ServerConfig(true), cli.ClientConfig("127.0.0.1"))
	if err != nil {
		return "", err
	}
	return cst.PeerCertificates[0].SerialNumber.Text(16), nil
}

func serial(t *testing.T, p pair) string { return p.x509(t).SerialNumber.Text(16) }

// TestRotation replaces a whole cluster's CA, in the order an operator
// does, under the same Loaders: both CAs in every bundle, new
// certificates, then the new CA alone. Every handshake sees the files
// installed before it.
func TestRotation(t *testing.T) {
	dir := t.TempDir()
	ca1, ca2 := newTestCA(t, "CA 1"), newTestCA(t, "CA 2")
	srv1, cli1 := ca1.leaf(t, "s0", []string{RoleStorage}, "127.0.0.1"), ca1.leaf(t, "app", []string{RoleClient})
	srv, srvFiles := newLoader(t, dir, "server", srv1, ca1)
	cli, cliFiles := newLoader(t, dir, "client", cli1, ca1)
	srv.checkEvery, cli.checkEvery = 0, 0 // every handshake looks at the files
	old, _ := newLoader(t, dir, "old", ca1.leaf(t, "old", []string{RoleClient}), ca1)

	if got, err := serverSerial(t, srv, cli); err != nil || got != serial(t, srv1) {
		t.Fatalf("before the rotation: server serial %s, %v; want %s", got, err, serial(t, srv1))
	}

	// Both CAs trusted, then the server's certificate of the new CA.
	installCA(t, cliFiles, ca1, ca2)
	srv2 := ca2.leaf(t, "s0", []string{RoleStorage}, "127.0.0.1")
	install(t, srvFiles, srv2, ca1, ca2)
	if got, err := serverSerial(t, srv, cli); err != nil || got != serial(t, srv2) {
		t.Fatalf("new server certificate: server serial %s, %v; want %s", got, err, serial(t, srv2))
	}

	// The client's certificate of the new CA, and the old CA dropped.
	cli2 := ca2.leaf(t, "app", []string{RoleClient})
	install(t, cliFiles, cli2, ca2)
	installCA(t, srvFiles, ca2)
	st, _, err := handshake(t, srv.ServerConfig(true), cli.ClientConfig("127.0.0.1"))
	if err != nil {
		t.Fatalf("new CA only: %v", err)
	}
	if got := st.PeerCertificates[0].SerialNumber.Text(16); got != serial(t, cli2) {
		t.Errorf("server saw client serial %s, want the new %s", got, serial(t, cli2))
	}
	if _, _, err := handshake(t, srv.ServerConfig(true), old.ClientConfig("127.0.0.1")); err == nil {
		t.Error("a client certificate of the dropped CA was accepted")
	}
	if _, err := serverSerial(t, old, cli); err == nil {
		t.Error("a server certificate of the dropped CA was accepted")
	}
}

// TestReloadOnDemand: between looks at the files, only Reload (SIGHUP)
// applies a change.
func TestReloadOnDemand(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "CA")
	first, second := ca.leaf(t, "s0", nil, "127.0.0.1"), ca.leaf(t, "s0", nil, "127.0.0.1")
	srv, files := newLoader(t, dir, "server", first, ca)
	srv.checkEvery = time.Hour
	cli, _ := newLoader(t, dir, "client", ca.leaf(t, "app", nil), ca)

	install(t, files, second, ca)
	if got, err := serverSerial(t, srv, cli); err != nil || got != serial(t, first) {
		t.Fatalf("before the next look: serial %s, %v; want the first, %s", got, err, serial(t, first))
	}
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	if got, err := serverSerial(t, srv, cli); err != nil || got != serial(t, second) {
		t.Fatalf("after Reload: serial %s, %v; want the second, %s", got, err, serial(t, second))
	}
}

// TestBadFilesKeepIdentity: a file that does not make an identity keeps
// the one in force, logged once per change, until the files are right.
func TestBadFilesKeepIdentity(t *testing.T) {
	ca, other := newTestCA(t, "CA"), newTestCA(t, "other")
	good := ca.leaf(t, "s0", nil, "127.0.0.1")
	next := ca.leaf(t, "s0", nil, "127.0.0.1")
	cases := []struct {
		name    string
		break_  func(t *testing.T, f Files)
		wantErr string
	}{
		{"half-written certificate", func(t *testing.T, f Files) { corrupt(t, f.Cert, next.cert[:len(next.cert)/2]) }, "failed to find"},
		{"key of another certificate", func(t *testing.T, f Files) { corrupt(t, f.Cert, next.cert) }, "does not match"},
		{"half-written key", func(t *testing.T, f Files) { corrupt(t, f.Key, next.key[:40]) }, "failed to find"},
		{"half-written CA bundle", func(t *testing.T, f Files) {
			corrupt(t, f.CA, append(append([]byte{}, ca.cert...), other.cert[:100]...))
		}, "not a whole PEM block"},
		{"empty CA bundle", func(t *testing.T, f Files) { corrupt(t, f.CA, nil) }, "no PEM certificate"},
		{"missing key", func(t *testing.T, f Files) { os.Remove(f.Key) }, "no such file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			var logs logBuffer
			f := identityFiles(dir, "server")
			install(t, f, good, ca)
			srv, err := New(f, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			srv.checkEvery = 0
			cli, _ := newLoader(t, dir, "client", ca.leaf(t, "app", nil), ca)

			c.break_(t, f)
			for range 2 {
				if got, err := serverSerial(t, srv, cli); err != nil || got != serial(t, good) {
					t.Fatalf("with a bad file: serial %s, %v; want the one in force, %s", got, err, serial(t, good))
				}
			}
			if n := strings.Count(logs.String(), "not reloaded"); n != 1 || !strings.Contains(logs.String(), c.wantErr) {
				t.Errorf("logged %d failures, want 1 about %q:\n%s", n, c.wantErr, logs.String())
			}
			if err := srv.Reload(); err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("Reload: %v, want an error about %q", err, c.wantErr)
			}

			install(t, f, next, ca)
			if got, err := serverSerial(t, srv, cli); err != nil || got != serial(t, next) {
				t.Fatalf("with the files right again: serial %s, %v; want %s", got, err, serial(t, next))
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	ca, other := newTestCA(t, "CA"), newTestCA(t, "other")
	p := ca.leaf(t, "s0", nil, "127.0.0.1")
	cases := []struct {
		name    string
		change  func(t *testing.T, f *Files)
		wantErr string
	}{
		{"no CA file named", func(t *testing.T, f *Files) { f.CA = "" }, "Files.CA is empty"},
		{"missing certificate", func(t *testing.T, f *Files) { f.Cert += ".missing" }, "no such file"},
		{"key of another certificate", func(t *testing.T, f *Files) {
			corrupt(t, f.Key, ca.leaf(t, "s1", nil).key)
		}, "does not match"},
		{"a key for a CA bundle", func(t *testing.T, f *Files) { f.CA = f.Key }, "PRIVATE KEY"},
		{"CA bundle with garbage after", func(t *testing.T, f *Files) {
			corrupt(t, f.CA, append(append([]byte{}, ca.cert...), "-----BEGIN CERT"...))
		}, "after 1 certificates"},
		{"CA bundle with a bad certificate", func(t *testing.T, f *Files) {
			corrupt(t, f.CA, append(append([]byte{}, ca.cert...), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"...))
		}, "certificate 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := identityFiles(t.TempDir(), "server")
			install(t, f, p, ca, other)
			c.change(t, &f)
			_, err := New(f, nil)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("New: %v, want an error about %q", err, c.wantErr)
			}
		})
	}
}

// TestUnchainedWarning: a certificate its own bundle does not verify is
// loaded, with a warning.
func TestUnchainedWarning(t *testing.T) {
	ca, other := newTestCA(t, "CA"), newTestCA(t, "other")
	f := identityFiles(t.TempDir(), "server")
	install(t, f, other.leaf(t, "s0", nil), ca)
	var logs logBuffer
	if _, err := New(f, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "does not verify against the CA bundle") {
		t.Errorf("no warning:\n%s", logs.String())
	}
}

func TestErrNoServerName(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "CA")
	srv, _ := newLoader(t, dir, "server", ca.leaf(t, "s0", nil, "127.0.0.1"), ca)
	cli, _ := newLoader(t, dir, "client", ca.leaf(t, "app", nil), ca)
	_, _, err := handshake(t, srv.ServerConfig(true), cli.ClientConfig(""))
	if !errors.Is(err, ErrNoServerName) {
		t.Fatalf("handshake by IP address without a name: %v, want ErrNoServerName", err)
	}
}

// TestStampsSeeReplacement: a file renamed over another with the same
// size and time (a copy that kept them, a coarse clock) is a change.
func TestStampsSeeReplacement(t *testing.T) {
	dir := t.TempDir()
	f := identityFiles(dir, "server")
	for _, p := range []string{f.Cert, f.Key, f.CA} {
		if err := os.WriteFile(p, []byte("one"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	before := stat(f)
	if !before.same(stat(f)) {
		t.Fatal("unchanged files differ")
	}
	fi, err := os.Stat(f.Key)
	if err != nil {
		t.Fatal(err)
	}
	tmp := f.Key + ".new"
	if err := os.WriteFile(tmp, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, f.Key); err != nil {
		t.Fatal(err)
	}
	if before.same(stat(f)) {
		t.Error("a key replaced by one of the same size and time is not seen")
	}
	if err := os.Remove(f.CA); err != nil {
		t.Fatal(err)
	}
	if st := stat(f); st.same(before) || !st.same(stat(f)) {
		t.Error("a removed file is not seen, or is seen twice")
	}
}
