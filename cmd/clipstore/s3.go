package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/s3gw"
	"github.com/spf13/cobra"
)

type s3Options struct {
	serverFlags
	tls        tlsFlags
	listen     string
	meta       []string
	region     string
	domain     string
	secretFile string
	keyTTL     time.Duration
	auditLog   string
	// Bounds on one client's request: its header's size and how long it
	// may take to send it, how long a connection may stay idle.
	maxHeaderBytes          int
	readHeaderTimeout, idle time.Duration
}

func (o *s3Options) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	o.serverFlags.AddFlags(cmd, "info")
	o.tls.addFlags(f, true)
	f.StringVar(&o.auditLog, "audit-log", "", "append the audit log (refused requests, one JSON object a line) to this file (default: the process log)")
	f.Var(sizeFlag(&o.maxHeaderBytes), "max-header-size", "largest request line and headers accepted (larger: 431), e.g. 64KiB")
	f.DurationVar(&o.readHeaderTimeout, "read-header-timeout", 30*time.Second, "time a client has to send a request's headers")
	f.DurationVar(&o.idle, "idle-timeout", 2*time.Minute, "close a keep-alive connection idle this long")
	f.StringVar(&o.listen, "listen", "127.0.0.1:9000", "HTTP listen address of the S3 API")
	f.StringSliceVar(&o.meta, "meta", nil, "meta members (comma-separated)")
	f.StringVar(&o.region, "region", s3gw.DefaultRegion, "the region requests are signed for")
	f.StringVar(&o.domain, "domain", "", "serve virtual-host-style requests to <bucket>.DOMAIN (empty: path style only)")
	f.StringVar(&o.secretFile, "cluster-secret-file", "", "file holding the cluster secret the meta members were given, to get signing keys (required without TLS; with TLS the gateway's certificate proves its role)")
	f.DurationVar(&o.keyTTL, "key-cache-ttl", s3gw.DefaultKeyTTL, "keep a signing key this long: how long a deleted access key may go on working here")
}

func newS3Command() *cobra.Command {
	o := &s3Options{maxHeaderBytes: 64 << 10}
	cmd := &cobra.Command{
		Use:   "s3",
		Short: "Run an S3 gateway",
		Long: `Run a stateless S3 gateway: it serves the S3 REST API over HTTP, authenticating
requests with AWS Signature Version 4 against the access keys meta keeps, and
streams object data between its clients and the storage nodes. Run any number
behind a load balancer. It stops on SIGINT or SIGTERM, letting the requests in
flight finish (for at most 30 s).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	o.AddFlags(cmd)
	cmd.MarkFlagRequired("meta")
	return cmd
}

func (o *s3Options) run(cmd *cobra.Command) error {
	log, err := o.logger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	// With TLS the gateway's certificate (its gateway role) is what meta
	// hands signing keys to; without, the cluster secret.
	tlsID, err := o.tls.load(log, o.listen)
	if err != nil {
		return err
	}
	var secret []byte
	switch {
	case o.secretFile != "":
		if secret, err = readClusterSecret(o.secretFile); err != nil {
			return err
		}
	case tlsID == nil:
		return errors.New("without TLS, the gateway needs --cluster-secret-file to get signing keys from meta")
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	reloadOnSIGHUP(ctx, tlsID, log)
	c, err := client.New(ctx, client.Config{Meta: o.meta, ClusterSecret: secret, TLS: tlsID, Logger: log.With("component", "client"),
		Reporter: "s3"})
	if err != nil {
		return err
	}
	defer c.Close()
	keys := s3gw.NewKeyCache(s3gw.ClientKeys(c), o.keyTTL, nil)
	audit := log.With("audit", true)
	if o.auditLog != "" {
		f, err := openAuditLog(o.auditLog)
		if err != nil {
			return err
		}
		defer f.Close()
		audit = slog.New(slog.NewJSONHandler(f, nil))
	}
	gw, err := s3gw.New(s3gw.Config{Client: c, Keys: keys.Key, Region: o.region, Domain: o.domain, Logger: log, Audit: audit})
	if err != nil {
		return err
	}
	defer gw.Close() // after the server's shutdown: no request is served then
	reg := newRegistry()
	reg.MustRegister(gw.Collectors()...)
	lis, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.listen, err)
	}
	if tlsID != nil {
		// S3 clients present no certificate: HTTPS, with SigV4 as their
		// credential.
		lis = tls.NewListener(lis, tlsID.ServerConfig(false))
	}
	srv := &http.Server{Handler: gw, ReadHeaderTimeout: o.readHeaderTimeout, IdleTimeout: o.idle, MaxHeaderBytes: o.maxHeaderBytes,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 2)
	go func() {
		if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("s3 server: %w", err)
		}
	}()
	stopHTTP, err := o.serveHTTP(reg, log, errc)
	if err != nil {
		srv.Close()
		return err
	}
	defer stopHTTP()
	// The ready line: scripts and tests wait for it.
	fmt.Fprintf(cmd.OutOrStdout(), "s3 gateway (region %s) listening on %s\n", o.region, lis.Addr())
	select {
	case err = <-errc:
	case <-ctx.Done():
		log.Info("shutting down")
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		srv.Close()
		err = errors.Join(err, serr)
	}
	return err
}
