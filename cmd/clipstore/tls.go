package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/clipstore/clipstore/internal/tlsconf"
	"github.com/spf13/pflag"
)

// The environment variables of the TLS flags, for clients and servers.
const (
	envTLSCert = "CLIPSTORE_TLS_CERT"
	envTLSKey  = "CLIPSTORE_TLS_KEY"
	envTLSCA   = "CLIPSTORE_TLS_CA"
)

// tlsFlags are a process's TLS identity: --tls-cert, --tls-key and
// --tls-ca (or CLIPSTORE_TLS_*), and, for servers, --insecure.
type tlsFlags struct {
	cert, key, ca string
	insecure      bool
	server        bool
}

func (o *tlsFlags) addFlags(fs *pflag.FlagSet, server bool) {
	o.server = server
	fs.StringVar(&o.cert, "tls-cert", "", "PEM certificate (and chain) to present (default $"+envTLSCert+")")
	fs.StringVar(&o.key, "tls-key", "", "PEM key of --tls-cert (default $"+envTLSKey+")")
	fs.StringVar(&o.ca, "tls-ca", "", "PEM CA bundle that peers' certificates must chain to (default $"+envTLSCA+")")
	if server {
		fs.BoolVar(&o.insecure, "insecure", false, "serve plain text on an address other than loopback (no --tls-* flags)")
	}
}

// load returns the identity the flags (else the environment) name, nil
// for plain text. A server without TLS may listen on loopback addresses
// only, unless --insecure.
func (o *tlsFlags) load(log *slog.Logger, listen ...string) (*tlsconf.Loader, error) {
	f := tlsconf.Files{Cert: o.cert, Key: o.key, CA: o.ca}
	if f == (tlsconf.Files{}) {
		f = tlsconf.Files{Cert: os.Getenv(envTLSCert), Key: os.Getenv(envTLSKey), CA: os.Getenv(envTLSCA)}
	}
	switch {
	case f == (tlsconf.Files{}):
		if o.server && !o.insecure {
			for _, addr := range listen {
				if !isLoopback(addr) {
					return nil, fmt.Errorf("%s is not a loopback address: serving it needs --tls-cert, --tls-key and --tls-ca (or --insecure for plain text)", addr)
				}
			}
		}
		return nil, nil
	case f.Cert == "" || f.Key == "" || f.CA == "":
		return nil, errors.New("TLS needs --tls-cert, --tls-key and --tls-ca together")
	case o.insecure:
		return nil, errors.New("--insecure is plain text: it excludes the --tls-* flags")
	}
	return tlsconf.New(f, log)
}

// isLoopback reports whether addr (host:port) listens on loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// reloadOnSIGHUP re-reads l's files on every SIGHUP until ctx ends (they
// are also re-read when they change, at the next handshake).
func reloadOnSIGHUP(ctx context.Context, l *tlsconf.Loader, log *slog.Logger) {
	if l == nil {
		return
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				if l.Reload() == nil { // a failure is logged by Reload
					log.Info("TLS files reloaded")
				}
			}
		}
	}()
}

// devTLS makes (once) the dev cluster's CA and certificates in dir:
// ca.crt, node.crt for every node in the process (the meta, storage and
// gateway roles, naming 127.0.0.1 and localhost) and client.crt for the
// CLI, and returns the nodes' identity.
func devTLS(dir string, log *slog.Logger) (*tlsconf.Loader, error) {
	caCert, caKey := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if _, err := os.Stat(caCert); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		certPEM, keyPEM, err := tlsconf.NewCA("clipstore dev CA", 0)
		if err != nil {
			return nil, err
		}
		if err := tlsconf.WriteFiles(caCert, certPEM, caKey, keyPEM, false); err != nil {
			return nil, err
		}
		for name, o := range map[string]tlsconf.LeafOptions{
			"node":   {CommonName: "clipstore dev node", Roles: []string{tlsconf.RoleMeta, tlsconf.RoleStorage, tlsconf.RoleGateway}, Hosts: []string{"127.0.0.1", "localhost"}},
			"client": {CommonName: "clipstore dev client", Roles: []string{tlsconf.RoleClient}},
		} {
			leaf, key, err := tlsconf.NewLeaf(certPEM, keyPEM, o)
			if err != nil {
				return nil, err
			}
			if err := tlsconf.WriteFiles(filepath.Join(dir, name+".crt"), leaf, filepath.Join(dir, name+".key"), key, false); err != nil {
				return nil, err
			}
		}
	}
	return tlsconf.New(tlsconf.Files{Cert: filepath.Join(dir, "node.crt"), Key: filepath.Join(dir, "node.key"), CA: caCert}, log)
}

// openAuditLog opens an audit log file for appending (mode 0600): each
// record is one write of one line.
func openAuditLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return f, nil
}
