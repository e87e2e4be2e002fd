package tlsconf

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Default validities of generated certificates. A leaf never outlives its
// CA: NewLeaf ends it with the CA if the CA ends first.
const (
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultLeafValidity = 2 * 365 * 24 * time.Hour
)

// backdate is how far in the past generated certificates start, so that a
// peer whose clock is a little behind accepts them at once.
const backdate = 5 * time.Minute

// LeafOptions describe a certificate NewLeaf makes.
type LeafOptions struct {
	CommonName string
	Roles      []string // role URIs to carry (Role constants)
	// Hosts are the DNS names and IP addresses a server certificate is
	// valid for; IP addresses go to the IP SANs.
	Hosts    []string
	Validity time.Duration // 0: DefaultLeafValidity
}

// NewCA makes a self-signed CA certificate and its key (ECDSA P-256), PEM
// encoded, valid for validity (0: DefaultCAValidity). It signs leaves only
// (path length 0).
func NewCA(commonName string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if commonName == "" {
		return nil, nil, errors.New("tlsconf: CA without a common name")
	}
	if validity < 0 {
		return nil, nil, fmt.Errorf("tlsconf: CA validity %s is negative", validity)
	}
	if validity == 0 {
		validity = DefaultCAValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconf: make CA: %w", err)
	}
	return encode(der, key)
}

// NewLeaf makes a certificate and its key (ECDSA P-256), PEM encoded,
// signed by the CA of caCertPEM and caKeyPEM. It is good for both server
// and client authentication: members serve and call each other.
func NewLeaf(caCertPEM, caKeyPEM []byte, o LeafOptions) (certPEM, keyPEM []byte, err error) {
	ca, caKey, err := parseCA(caCertPEM, caKeyPEM)
	if err != nil {
		return nil, nil, err
	}
	tmpl, err := o.template()
	if err != nil {
		return nil, nil, err
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	if !tmpl.NotAfter.After(time.Now()) {
		return nil, nil, fmt.Errorf("tlsconf: the CA %q expired on %s", ca.Subject.CommonName, ca.NotAfter.UTC().Format(time.RFC3339))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconf: make certificate %q: %w", o.CommonName, err)
	}
	return encode(der, key)
}

// template is the certificate o describes, without its CA's limits.
func (o LeafOptions) template() (*x509.Certificate, error) {
	if o.CommonName == "" {
		return nil, errors.New("tlsconf: certificate without a common name")
	}
	if o.Validity < 0 {
		return nil, fmt.Errorf("tlsconf: certificate validity %s is negative", o.Validity)
	}
	if o.Validity == 0 {
		o.Validity = DefaultLeafValidity
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: o.CommonName},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(o.Validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, r := range o.Roles {
		if !knownRole(r) {
			return nil, fmt.Errorf("tlsconf: unknown role %q (want %s, %s, %s or %s)", r, RoleMeta, RoleStorage, RoleGateway, RoleClient)
		}
		tmpl.URIs = append(tmpl.URIs, RoleURI(r))
	}
	for _, h := range o.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			continue
		}
		if h == "" || strings.ContainsAny(h, ":/ \t") {
			return nil, fmt.Errorf("tlsconf: host %q is neither an IP address nor a DNS name (give hosts without ports)", h)
		}
		tmpl.DNSNames = append(tmpl.DNSNames, h)
	}
	return tmpl, nil
}

// parseCA parses a CA's certificate and key and checks that they belong
// together.
func parseCA(certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, errors.New("tlsconf: CA certificate: no PEM CERTIFICATE block")
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconf: CA certificate: %w", err)
	}
	if !ca.IsCA {
		return nil, nil, fmt.Errorf("tlsconf: certificate %q is not a CA", ca.Subject.CommonName)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconf: CA key: %w", err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(ca.PublicKey) {
		return nil, nil, fmt.Errorf("tlsconf: the CA key is not the key of CA %q", ca.Subject.CommonName)
	}
	return ca, key, nil
}

// parseKey parses a PEM private key: PKCS #8, SEC 1 (EC) or PKCS #1 (RSA).
func parseKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("a %T cannot sign", key)
	}
	return s, nil
}

// newSerial is a random 128-bit serial number, as RFC 5280 asks of CAs
// (unpredictable, at most 20 octets, positive).
func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	return n.Add(n, big.NewInt(1)), nil // never 0
}

// encode is the PEM of a certificate and of its key (PKCS #8).
func encode(der []byte, key *ecdsa.PrivateKey) (certPEM, keyPEM []byte, err error) {
	k, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k}), nil
}

// WriteFiles writes a certificate and its key, each atomically (a
// temporary file, synced, renamed over the name, the directory synced):
// a reader, such as a Loader, sees the old file or the new one, never
// part of one. The key is readable by its owner only (0600), the
// certificate by all (0644).
//
// Unless overwrite it writes neither if either exists (an error matching
// fs.ErrExist), and never replaces a file created meanwhile.
func WriteFiles(certPath string, certPEM []byte, keyPath string, keyPEM []byte, overwrite bool) error {
	if !overwrite {
		for _, p := range []string{certPath, keyPath} {
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("%s: %w", p, fs.ErrExist)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	if err := writeFile(certPath, certPEM, 0o644, overwrite); err != nil {
		return err
	}
	if err := writeFile(keyPath, keyPEM, 0o600, overwrite); err != nil {
		if !overwrite {
			os.Remove(certPath) // ours: it did not exist
		}
		return err
	}
	return nil
}

// writeFile writes data to path atomically with mode. Without overwrite
// it links the temporary file to path, which fails if path exists,
// instead of renaming over it.
func writeFile(path string, data []byte, mode os.FileMode, overwrite bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a rename or a link, there is nothing to remove, or a second name
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if overwrite {
		err = os.Rename(tmp, path)
	} else {
		err = os.Link(tmp, path)
	}
	if err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes the names in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
