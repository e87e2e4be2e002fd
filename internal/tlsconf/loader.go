package tlsconf

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Files names the PEM files of a TLS identity: a certificate (chain), its
// key, and the CA bundle that peers' certificates must chain to.
type Files struct{ Cert, Key, CA string }

// checkInterval is how often a handshake may stat the files for changes:
// a busy server handshakes far more often than certificates rotate.
const checkInterval = time.Second

// Loader holds a TLS identity loaded from Files and re-reads the files when
// they change: at a handshake, at most once a second, it stats them and
// reloads if any changed (modification time, size, or a file replaced by a
// rename), and on Reload. A reload that fails keeps the previous identity
// and logs the error; New fails instead. It is safe for concurrent use.
type Loader struct {
	files      Files
	log        *slog.Logger
	checkEvery time.Duration // tests shorten it

	id      atomic.Pointer[identity]
	epoch   time.Time    // with a monotonic reading, immune to clock steps
	checked atomic.Int64 // time since epoch of the last look at the files

	// load serialises loads (a handshake's and Reload's); seen is what the
	// last load, good or bad, found on disk, so that a bad file is
	// reported once, not at every check until it is fixed.
	load struct {
		sync.Mutex
		seen stamps
	}
}

// identity is one load of the files.
type identity struct {
	cert *tls.Certificate // Leaf set
	pool *x509.CertPool
}

// New loads the identity f names, or says what is wrong with its files.
// A nil log discards.
func New(f Files, log *slog.Logger) (*Loader, error) {
	for _, p := range []struct{ name, path string }{{"Cert", f.Cert}, {"Key", f.Key}, {"CA", f.CA}} {
		if p.path == "" {
			return nil, fmt.Errorf("tlsconf: Files.%s is empty", p.name)
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Loader{files: f, log: log, checkEvery: checkInterval, epoch: time.Now()}
	st := stat(f)
	id, err := readIdentity(f)
	if err != nil {
		return nil, err
	}
	l.warnUnchained(id)
	l.id.Store(id)
	l.load.seen = st
	return l, nil
}

// Reload re-reads the files now, whether or not they changed. If they do
// not make an identity it keeps the one in force, logs the error and
// returns it.
func (l *Loader) Reload() error {
	l.load.Lock()
	defer l.load.Unlock()
	return l.reloadLocked(stat(l.files))
}

// current is the identity for a handshake, after reloading the files if
// they changed since the last look (at most one look per checkEvery).
func (l *Loader) current() *identity {
	if l.due() {
		l.load.Lock()
		if st := stat(l.files); !st.same(l.load.seen) {
			l.reloadLocked(st) // logged; the handshake goes on with the identity in force
		}
		l.load.Unlock()
	}
	return l.id.Load()
}

// due reports whether it is time to look at the files again, claiming the
// look: of handshakes at the same moment, one stats the files.
func (l *Loader) due() bool {
	now, last := int64(time.Since(l.epoch)), l.checked.Load()
	return now-last >= int64(l.checkEvery) && l.checked.CompareAndSwap(last, now)
}

// reloadLocked loads the files, which were st (stat before the read, so
// that a change during the read is seen at the next look).
func (l *Loader) reloadLocked(st stamps) error {
	l.load.seen = st
	id, err := readIdentity(l.files)
	if err != nil {
		l.log.Error("TLS files not reloaded; keeping the certificate in force", "err", err,
			"serial", l.id.Load().cert.Leaf.SerialNumber.Text(16))
		return err
	}
	l.warnUnchained(id)
	l.id.Store(id)
	leaf := id.cert.Leaf
	l.log.Info("TLS files reloaded", "cert", l.files.Cert, "subject", leaf.Subject.String(),
		"serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter, "roles", Roles(leaf))
	return nil
}

// warnUnchained logs a certificate that does not chain to its own CA
// bundle: peers that share the bundle will refuse it. Not an error, since
// a process may present a certificate of another CA than the one it
// checks its peers with, and the files of a rotation change one by one.
func (l *Loader) warnUnchained(id *identity) {
	leaf := id.cert.Leaf
	inter := x509.NewCertPool()
	for _, der := range id.cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: id.pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		l.log.Warn("TLS certificate does not verify against the CA bundle; peers with the same bundle will refuse it",
			"cert", l.files.Cert, "ca", l.files.CA, "err", err)
	}
}

// readIdentity reads and checks the files of f.
func readIdentity(f Files) (*identity, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s with key %s: %w", f.Cert, f.Key, err)
	}
	if cert.Leaf == nil { // x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("TLS certificate %s: %w", f.Cert, err)
		}
	}
	pool, err := readCABundle(f.CA)
	if err != nil {
		return nil, err
	}
	return &identity{cert: &cert, pool: pool}, nil
}

// readCABundle reads a PEM bundle of CA certificates. Unlike
// CertPool.AppendCertsFromPEM, which skips what it cannot parse, it fails
// on anything but whole certificates: a bundle cut short while being
// written would otherwise lose a CA without a word.
func readCABundle(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("TLS CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if len(bytes.TrimSpace(rest)) > 0 {
				return nil, fmt.Errorf("TLS CA bundle %s: after %d certificates, data that is not a whole PEM block (a file being written?)", path, n)
			}
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("TLS CA bundle %s: PEM block %d is a %q, want CERTIFICATE", path, n+1, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("TLS CA bundle %s: certificate %d: %w", path, n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("TLS CA bundle %s: no PEM certificate in it", path)
	}
	return pool, nil
}

// stamps are what stat says of the three files.
type stamps [3]stamp

type stamp struct {
	fi  os.FileInfo // nil if stat failed
	err string
}

func stat(f Files) stamps {
	var st stamps
	for i, p := range []string{f.Cert, f.Key, f.CA} {
		fi, err := os.Stat(p)
		st[i] = stamp{fi: fi}
		if err != nil {
			st[i].err = err.Error()
		}
	}
	return st
}

// same reports whether no file changed between s and o: same size and
// modification time, and not replaced by another file (a rename, as
// WriteFiles does, may keep both).
func (s stamps) same(o stamps) bool {
	for i := range s {
		a, b := s[i], o[i]
		if a.fi == nil || b.fi == nil {
			if a.fi != b.fi || a.err != b.err {
				return false
			}
			continue
		}
		if a.fi.Size() != b.fi.Size() || !a.fi.ModTime().Equal(b.fi.ModTime()) || !os.SameFile(a.fi, b.fi) {
			return false
		}
	}
	return true
}

// ServerConfig is a TLS 1.3 server config whose certificate and client CA
// pool are the Loader's current ones, chosen per handshake
// (GetConfigForClient). It requires and verifies client certificates when
// requireClientCert (cluster-internal servers), else verifies them if
// given.
//
// Handshakes use the config GetConfigForClient returns, so fields set on
// the returned one do not reach them (except session ticket keys). In
// particular it negotiates no ALPN protocol: gRPC adds its own to the
// per-handshake config; net/http serves HTTP/1.1 over it.
func (l *Loader) ServerConfig(requireClientCert bool) *tls.Config {
	auth := tls.VerifyClientCertIfGiven
	if requireClientCert {
		auth = tls.RequireAndVerifyClientCert
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			id := l.current()
			return &tls.Config{
				MinVersion:   tls.VersionTLS13,
				Certificates: []tls.Certificate{*id.cert},
				ClientCAs:    id.pool,
				ClientAuth:   auth,
			}, nil
		},
	}
}

// ClientConfig is a TLS 1.3 client config presenting the Loader's current
// certificate and verifying the server's against the current CA pool and
// serverName: an IP address or a DNS name, the dial address's host.
//
// Its verification is not crypto/tls's (InsecureSkipVerify is set) but the
// same, done in VerifyConnection against the pool in force at the
// handshake, so that a rotated CA bundle applies to configs already made
// and to the copies gRPC makes of them: the chain to the pool, the
// server-auth key usage, the name.
//
// With an empty serverName it verifies the name the handshake sent as SNI
// and refuses a server dialled by IP address, whose name it cannot know;
// gRPC clients use ClientCredentials instead.
func (l *Loader) ClientConfig(serverName string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		ServerName:         serverName,
		InsecureSkipVerify: true, // VerifyConnection verifies; see above
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return l.current().cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			return l.verifyServer(cs, serverName)
		},
	}
}

// ErrNoServerName is the error of a handshake by a ClientConfig("") with
// a server dialled by IP address: there is no name to verify its
// certificate against.
var ErrNoServerName = errors.New("tlsconf: no server name to verify the server's certificate against (dialled by IP address; use ClientCredentials, or ClientConfig with the host)")

// verifyServer is crypto/tls's verification of a server's certificate,
// against the current pool.
func (l *Loader) verifyServer(cs tls.ConnectionState, serverName string) error {
	name := serverName
	if name == "" {
		name = cs.ServerName
	}
	if name == "" {
		return ErrNoServerName
	}
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tlsconf: the server sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots:         l.current().pool,
		Intermediates: inter,
		DNSName:       strings.TrimSuffix(name, "."),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("server certificate for %s: %w", name, err)
	}
	return nil
}
