package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNewCA(t *testing.T) {
	certPEM, keyPEM, err := NewCA("clipstore CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	ca := parseCert(t, certPEM)
	if !ca.IsCA || !ca.MaxPathLenZero || ca.KeyUsage&x509.KeyUsageCertSign == 0 || ca.Subject.CommonName != "clipstore CA" {
		t.Errorf("CA: IsCA %v, MaxPathLenZero %v, key usage %b, CN %q", ca.IsCA, ca.MaxPathLenZero, ca.KeyUsage, ca.Subject.CommonName)
	}
	if life := time.Until(ca.NotAfter); life < DefaultCAValidity-time.Minute || life > DefaultCAValidity {
		t.Errorf("CA valid for %s more, want %s", life, DefaultCAValidity)
	}
	if err := ca.CheckSignatureFrom(ca); err != nil {
		t.Errorf("CA not self-signed: %v", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := key.(*ecdsa.PrivateKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("CA key is a %T, want ECDSA P-256", key)
	}
}

func TestNewLeaf(t *testing.T) {
	ca := newTestCA(t, "CA")
	before := time.Now()
	certPEM, _, err := NewLeaf(ca.cert, ca.key, LeafOptions{CommonName: "s0", Roles: []string{RoleStorage},
		Hosts: []string{"10.0.0.7", "s0.fleet.example", "::1"}, Validity: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c := parseCert(t, certPEM)
	if c.Subject.CommonName != "s0" || c.IsCA {
		t.Errorf("CN %q, IsCA %v", c.Subject.CommonName, c.IsCA)
	}
	if got := Roles(c); !slices.Equal(got, []string{RoleStorage}) {
		t.Errorf("roles %v", got)
	}
	if !slices.Equal(c.DNSNames, []string{"s0.fleet.example"}) ||
		!slices.EqualFunc(c.IPAddresses, []net.IP{net.ParseIP("10.0.0.7"), net.ParseIP("::1")}, net.IP.Equal) {
		t.Errorf("DNS names %v, IP addresses %v", c.DNSNames, c.IPAddresses)
	}
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
		t.Errorf("extended key usage %v, want server and client auth", c.ExtKeyUsage)
	}
	if c.SerialNumber.BitLen() < 100 || c.SerialNumber.BitLen() > 129 {
		t.Errorf("serial of %d bits, want a random 128", c.SerialNumber.BitLen())
	}
	if skew := before.Sub(c.NotBefore); skew < time.Minute || skew > 10*time.Minute {
		t.Errorf("NotBefore %s before now, want a few minutes", skew)
	}
	if life := c.NotAfter.Sub(before); life < 48*time.Hour-time.Minute || life > 48*time.Hour+time.Minute {
		t.Errorf("valid for %s, want 48h", life)
	}
	if err := c.CheckSignatureFrom(parseCert(t, ca.cert)); err != nil {
		t.Errorf("not signed by the CA: %v", err)
	}

	// A leaf ends with its CA at the latest.
	shortCert, shortKey, err := NewCA("short CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err = NewLeaf(shortCert, shortKey, LeafOptions{CommonName: "app", Roles: []string{RoleClient}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := parseCert(t, certPEM).NotAfter, parseCert(t, shortCert).NotAfter; !got.Equal(want) {
		t.Errorf("leaf of a CA ending %s ends %s", want, got)
	}
}

func TestNewLeafErrors(t *testing.T) {
	ca, other := newTestCA(t, "CA"), newTestCA(t, "other")
	leaf := ca.leaf(t, "s0", nil)
	ok := LeafOptions{CommonName: "s0", Roles: []string{RoleMeta}, Hosts: []string{"m0.example"}}
	cases := []struct {
		name          string
		caCert, caKey []byte
		change        func(*LeafOptions)
		wantErr       string
	}{
		{"unknown role", ca.cert, ca.key, func(o *LeafOptions) { o.Roles = []string{"admin"} }, `unknown role "admin"`},
		{"host with a port", ca.cert, ca.key, func(o *LeafOptions) { o.Hosts = []string{"10.0.0.1:7400"} }, "without ports"},
		{"empty host", ca.cert, ca.key, func(o *LeafOptions) { o.Hosts = []string{""} }, "neither"},
		{"no common name", ca.cert, ca.key, func(o *LeafOptions) { o.CommonName = "" }, "common name"},
		{"negative validity", ca.cert, ca.key, func(o *LeafOptions) { o.Validity = -time.Hour }, "negative"},
		{"key of another CA", ca.cert, other.key, func(*LeafOptions) {}, "not the key of CA"},
		{"not a CA", leaf.cert, leaf.key, func(*LeafOptions) {}, "is not a CA"},
		{"CA certificate not PEM", []byte("garbage"), ca.key, func(*LeafOptions) {}, "no PEM"},
		{"CA key not PEM", ca.cert, []byte("garbage"), func(*LeafOptions) {}, "no PEM"},
	}
	for _, c := range cases {
		o := ok
		c.change(&o)
		_, _, err := NewLeaf(c.caCert, c.caKey, o)
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: %v, want an error about %q", c.name, err, c.wantErr)
		}
	}
}

func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "s0.crt"), filepath.Join(dir, "s0.key")
	if err := WriteFiles(certPath, []byte("cert 1"), keyPath, []byte("key 1"), false); err != nil {
		t.Fatal(err)
	}
	check := func(path, want string, mode os.FileMode) {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", path, b, err, want)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, %v; want %v", path, fi.Mode().Perm(), err, mode)
		}
	}
	check(certPath, "cert 1", 0o644)
	check(keyPath, "key 1", 0o600)

	err := WriteFiles(certPath, []byte("cert 2"), keyPath, []byte("key 2"), false)
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "s0.crt") {
		t.Errorf("overwriting without overwrite: %v, want fs.ErrExist naming s0.crt", err)
	}
	check(certPath, "cert 1", 0o644)

	// Only the key exists: the certificate is not written either.
	newCert := filepath.Join(dir, "s1.crt")
	if err := WriteFiles(newCert, []byte("cert"), keyPath, []byte("key"), false); !errors.Is(err, fs.ErrExist) {
		t.Errorf("over an existing key: %v, want fs.ErrExist", err)
	}
	if _, err := os.Stat(newCert); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the certificate of a refused pair was written: %v", err)
	}

	if err := WriteFiles(certPath, []byte("cert 2"), keyPath, []byte("key 2"), true); err != nil {
		t.Fatal(err)
	}
	check(certPath, "cert 2", 0o644)
	check(keyPath, "key 2", 0o600)

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"s0.crt", "s0.key"}) {
		t.Errorf("directory holds %v, want s0.crt and s0.key alone", names)
	}

	if err := WriteFiles(filepath.Join(dir, "missing", "a.crt"), nil, filepath.Join(dir, "missing", "a.key"), nil, false); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}
