package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/clipstore/clipstore/internal/tlsconf"
	"github.com/spf13/cobra"
)

// The CA's files in a certs directory.
const (
	caCertFile = "ca.crt"
	caKeyFile  = "ca.key"
)

func newCertsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Make the CA and the certificates of the cluster's TLS",
		Long: `Make a CA (init), then a certificate for every meta member, storage node and S3
gateway (node) and for the CLI and applications (client), all in one directory:
ca.crt, ca.key, and NAME.crt and NAME.key. Give each process its certificate,
its key and ca.crt (--tls-cert, --tls-key, --tls-ca); keep ca.key off the
cluster's machines. Keys are ECDSA P-256, written readable by their owner only.

To rotate a certificate, make a new one with --force over the old files:
processes re-read their files at the next connection (or on SIGHUP). To
rotate the CA, put both CAs in every process's CA bundle, then replace the
certificates, then drop the old CA from the bundles.`,
	}
	cmd.AddCommand(newCertsInitCommand(), newCertsNodeCommand(), newCertsClientCommand())
	return cmd
}

// certsOptions are the flags every certs subcommand has.
type certsOptions struct {
	dir      string
	validity time.Duration
	force    bool
}

func (o *certsOptions) AddFlags(cmd *cobra.Command, defaultValidity time.Duration) {
	cmd.Flags().StringVar(&o.dir, "dir", "", "directory of the CA and the certificates (required)")
	cmd.MarkFlagRequired("dir")
	cmd.Flags().DurationVar(&o.validity, "validity", 0,
		fmt.Sprintf("how long the certificate is valid, e.g. 8760h for a year (0: %d years)", defaultValidity/(365*24*time.Hour)))
	cmd.Flags().BoolVar(&o.force, "force", false, "overwrite existing files")
}

// write writes a certificate and its key as DIR/name.crt and DIR/name.key
// and prints their paths.
func (o *certsOptions) write(cmd *cobra.Command, name string, certPEM, keyPEM []byte) error {
	certPath, keyPath := filepath.Join(o.dir, name+".crt"), filepath.Join(o.dir, name+".key")
	if err := tlsconf.WriteFiles(certPath, certPEM, keyPath, keyPEM, o.force); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w (--force overwrites)", err)
		}
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), certPath)
	fmt.Fprintln(cmd.OutOrStdout(), keyPath)
	return nil
}

// readCA reads DIR/ca.crt and DIR/ca.key.
func (o *certsOptions) readCA() (certPEM, keyPEM []byte, err error) {
	if certPEM, err = os.ReadFile(filepath.Join(o.dir, caCertFile)); err == nil {
		keyPEM, err = os.ReadFile(filepath.Join(o.dir, caKeyFile))
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("no CA in %s: %v (make one with: clipstore admin certs init --dir %s)", o.dir, err, o.dir)
	}
	return certPEM, keyPEM, err
}

// certName takes one argument, the NAME of the files to write.
func certName(_ *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("want one NAME, the name of the files to write (DIR/NAME.crt, DIR/NAME.key); got %d arguments", len(args))
	}
	return checkCertName(args[0])
}

// checkCertName refuses a NAME that is not a plain file name, or that
// would write over the CA.
func checkCertName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) || name == "ca" {
		return fmt.Errorf("certificate name %q: want a plain file name other than ca, such as the node's id", name)
	}
	return nil
}

func newCertsInitCommand() *cobra.Command {
	o := &certsOptions{}
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Make the cluster's CA: DIR/ca.crt and DIR/ca.key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := os.MkdirAll(o.dir, 0o700); err != nil {
				return err
			}
			certPEM, keyPEM, err := tlsconf.NewCA("clipstore CA", o.validity)
			if err != nil {
				return err
			}
			return o.write(cmd, "ca", certPEM, keyPEM)
		},
	}
	o.AddFlags(cmd, tlsconf.DefaultCAValidity)
	return cmd
}

type certsNodeOptions struct {
	certsOptions
	roles, hosts []string
}

// nodeRoles are the roles of a cluster member's certificate.
var nodeRoles = []string{tlsconf.RoleMeta, tlsconf.RoleStorage, tlsconf.RoleGateway}

func newCertsNodeCommand() *cobra.Command {
	o := &certsNodeOptions{}
	cmd := &cobra.Command{
		Use:   "node NAME",
		Short: "Make a cluster member's certificate: DIR/NAME.crt and DIR/NAME.key",
		Long: `Make the certificate of a meta member, storage node or S3 gateway, signed by
DIR/ca.crt and DIR/ca.key: valid for the --host names and addresses the
member is dialled by, carrying its --role. It is also the member's client
certificate for the calls it makes to the others.`,
		Args: certName,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			for _, r := range o.roles {
				if !slices.Contains(nodeRoles, r) {
					return fmt.Errorf("--role %q: want meta, storage or gateway (for the CLI and applications: clipstore admin certs client)", r)
				}
			}
			if len(o.hosts) == 0 {
				return errors.New("a node certificate needs --host: the IP addresses and DNS names the node is dialled by")
			}
			return o.issue(cmd, name, o.roles, o.hosts)
		},
	}
	o.AddFlags(cmd, tlsconf.DefaultLeafValidity)
	cmd.Flags().StringSliceVar(&o.roles, "role", nil, "the member's role: meta, storage or gateway (repeat for a process with several)")
	cmd.Flags().StringSliceVar(&o.hosts, "host", nil, "an IP address or DNS name the member is dialled by (repeat for each)")
	cmd.MarkFlagRequired("role")
	return cmd
}

func newCertsClientCommand() *cobra.Command {
	o := &certsOptions{}
	cmd := &cobra.Command{
		Use:   "client NAME",
		Short: "Make a client certificate for the CLI or an application: DIR/NAME.crt and DIR/NAME.key",
		Args:  certName,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.issue(cmd, args[0], []string{tlsconf.RoleClient}, nil)
		},
	}
	o.AddFlags(cmd, tlsconf.DefaultLeafValidity)
	return cmd
}

// issue makes DIR/name.crt and DIR/name.key, signed by the CA in DIR.
func (o *certsOptions) issue(cmd *cobra.Command, name string, roles, hosts []string) error {
	caCert, caKey, err := o.readCA()
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := tlsconf.NewLeaf(caCert, caKey,
		tlsconf.LeafOptions{CommonName: name, Roles: roles, Hosts: hosts, Validity: o.validity})
	if err != nil {
		return err
	}
	return o.write(cmd, name, certPEM, keyPEM)
}
