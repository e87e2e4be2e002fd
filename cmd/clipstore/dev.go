package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/erasure"
	"github.com/clipstore/clipstore/internal/bytesize"
	"github.com/clipstore/clipstore/internal/devcluster"
	"github.com/clipstore/clipstore/internal/s3gw"
	"github.com/clipstore/clipstore/meta"
	metapb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/clipstore/clipstore/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
)

type devOptions struct {
	serverFlags
	cfg       devcluster.Config
	ec        string
	blockSize string
	meta      meta.Config   // knobs only
	storage   server.Config // knobs only
	s3        string        // the S3 gateway's address, or "off"
	tls       bool
	// The root key: from the environment, else the fixed dev credentials.
	rootKey, rootSecret string
}

func (o *devOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.cfg.Dir, "data", "clipstore-data", "directory for every node's data, kept across restarts")
	f.StringVar(&o.cfg.MetaAddr, "listen", "127.0.0.1:7400", "meta gRPC address (the one clients use)")
	f.IntVar(&o.cfg.MetaNodes, "meta-nodes", 1, "meta members (Raft voters)")
	f.IntVar(&o.cfg.StorageNodes, "storage-nodes", 6, "storage nodes")
	f.StringVar(&o.ec, "ec", "4+2", "default erasure code K+M of new buckets")
	f.StringVar(&o.blockSize, "block-size", "1MiB", "default block size of new buckets")
	f.StringVar(&o.s3, "s3", "127.0.0.1:9000", `the S3 gateway's listen address ("off": no gateway)`)
	f.BoolVar(&o.tls, "tls", false, "TLS on every link, with a CA and certificates made under --data/tls (the S3 gateway serves HTTPS)")
	o.serverFlags.AddFlags(cmd, "warn")
	o.meta = meta.DefaultConfig()
	f.DurationVar(&o.meta.NodeDownAfter, "node-down-after", o.meta.NodeDownAfter, "mark a storage node down after this long without a heartbeat")
	f.DurationVar(&o.meta.RepairAfter, "repair-after", o.meta.RepairAfter, "rebuild a down node's shards elsewhere after this long")
	f.DurationVar(&o.meta.GCGrace, "gc-grace", o.meta.GCGrace, "keep an unreferenced shard this long past its commit deadline")
	o.storage = server.DefaultConfig()
	addMaintenanceFlags(cmd, &o.storage)
}

func newDevCommand() *cobra.Command {
	o := &devOptions{}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a whole cluster in this process, for a laptop",
		Long: `Run the real meta and storage code in one process: by default one meta member
on 127.0.0.1:7400 and six storage nodes on free loopback ports, RS 4+2, with
their data in ./clipstore-data (kept across restarts). Ctrl-C stops it cleanly.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	o.AddFlags(cmd)
	return cmd
}

func (o *devOptions) run(cmd *cobra.Command) error {
	log, err := o.logger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	profile, err := parseProfile(o.ec, o.blockSize)
	if err != nil {
		return err
	}
	reg := newRegistry()
	o.cfg.Profile, o.cfg.Logger, o.cfg.Registerer = profile, log, reg
	if err := os.MkdirAll(o.cfg.Dir, 0o755); err != nil {
		return err
	}
	secretFile := filepath.Join(o.cfg.Dir, "cluster-secret")
	if err := writeClusterSecret(secretFile); err != nil {
		return err
	}
	secret, err := readClusterSecret(secretFile)
	if err != nil {
		return err
	}
	secretsKeyFile := filepath.Join(o.cfg.Dir, "secrets-key")
	if err := writeClusterSecret(secretsKeyFile); err != nil {
		return err
	}
	secretsKey, err := readSecretsKey(secretsKeyFile)
	if err != nil {
		return err
	}
	if err := o.pickRootKey(); err != nil {
		return err
	}
	if o.tls {
		if o.cfg.TLS, err = devTLS(filepath.Join(o.cfg.Dir, "tls"), log); err != nil {
			return err
		}
	}
	o.cfg.ConfigureMeta = func(c *meta.Config) {
		c.NodeDownAfter, c.RepairAfter, c.GCGrace = o.meta.NodeDownAfter, o.meta.RepairAfter, o.meta.GCGrace
		c.ClusterSecret, c.SecretsKey = secret, secretsKey
		c.RootAccessKey, c.RootSecretKey = o.rootKey, o.rootSecret
		c.RequireAuth = o.tls
	}
	o.cfg.ConfigureStorage = func(c *server.Config) {
		c.ScrubInterval, c.ScrubRate, c.GCInterval = o.storage.ScrubInterval, o.storage.ScrubRate, o.storage.GCInterval
		c.BufferedWrites, c.NoRawReads, c.NoRawWrites = o.storage.BufferedWrites, o.storage.NoRawReads, o.storage.NoRawWrites
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	stopHTTP, err := o.serveHTTP(reg, log, errc)
	if err != nil {
		return err
	}
	defer stopHTTP()
	c, err := devcluster.Start(ctx, o.cfg)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "clipstore dev cluster: %d meta, %d storage nodes, RS %d+%d, data in %s\n",
		o.cfg.MetaNodes, o.cfg.StorageNodes, profile.DataShards, profile.ParityShards, o.cfg.Dir)
	fmt.Fprintf(out, "meta listening on %s\n", c.MetaAddrs()[0])
	if o.tls {
		dir, err := filepath.Abs(filepath.Join(o.cfg.Dir, "tls"))
		if err != nil {
			return errors.Join(err, c.Shutdown(context.Background()))
		}
		fmt.Fprintf(out, "TLS on every link, signed calls only; for the CLI:\n  export %s=%s %s=%s %s=%s\n  export %s=%s %s=%s\n",
			envTLSCert, filepath.Join(dir, "client.crt"), envTLSKey, filepath.Join(dir, "client.key"), envTLSCA, filepath.Join(dir, "ca.crt"),
			envAccessKey, o.rootKey, envSecretKey, o.rootSecret)
	}
	if o.s3 != "off" {
		stopS3, err := o.startS3(ctx, out, c.MetaAddrs(), secret, reg, log, errc)
		if err != nil {
			return errors.Join(err, c.Shutdown(context.Background()))
		}
		defer stopS3()
	}
	fmt.Fprint(out, `
Try, in another terminal:
  clipstore mb videos
  clipstore put videos/car1/front.mp4 ./some-clip.mp4
  clipstore ls videos
  clipstore get videos/car1/front.mp4 --range 0-1023 out.bin
  clipstore stat videos/car1/front.mp4
  clipstore cluster status
Ctrl-C stops the cluster.
`)
	select {
	case <-ctx.Done():
	case err = <-errc:
		log.Error("stopping", "err", err)
	}
	fmt.Fprintln(out, "stopping the dev cluster")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return errors.Join(err, c.Shutdown(sctx))
}

// pickRootKey takes the root key from the environment, or the fixed dev
// credentials, which serve only a gateway on loopback (and, with --tls,
// sign the CLI's calls).
func (o *devOptions) pickRootKey() error {
	o.rootKey, o.rootSecret = rootKeyFromEnv()
	if o.rootKey != "" || (o.s3 == "off" && !o.tls) {
		return nil
	}
	if o.s3 == "off" {
		o.rootKey, o.rootSecret = devAccessKey, devSecretKey
		return nil
	}
	host, _, err := net.SplitHostPort(o.s3)
	if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
		return fmt.Errorf("--s3 %s is not a loopback address: set %s and %s (the fixed dev credentials serve loopback only)",
			o.s3, envRootAccessKey, envRootSecretKey)
	}
	o.rootKey, o.rootSecret = devAccessKey, devSecretKey
	return nil
}

// startS3 runs the dev cluster's S3 gateway on o.s3 and prints how to use
// it with the root key.
func (o *devOptions) startS3(ctx context.Context, out io.Writer, metaAddrs []string, secret []byte, reg *prometheus.Registry,
	log *slog.Logger, errc chan<- error) (func(), error) {
	c, err := client.New(ctx, client.Config{Meta: metaAddrs, ClusterSecret: secret, TLS: o.cfg.TLS, Logger: log.With("component", "s3"), Reporter: "s3"})
	if err != nil {
		return nil, err
	}
	keys := s3gw.NewKeyCache(s3gw.ClientKeys(c), s3gw.DefaultKeyTTL, nil)
	gw, err := s3gw.New(s3gw.Config{Client: c, Keys: keys.Key, Logger: log.With("component", "s3")})
	if err != nil {
		c.Close()
		return nil, err
	}
	reg.MustRegister(gw.Collectors()...)
	lis, err := net.Listen("tcp", o.s3)
	if err != nil {
		gw.Close()
		c.Close()
		return nil, fmt.Errorf("s3 gateway: listen on %s (--s3 off runs none): %w", o.s3, err)
	}
	scheme := "http"
	if o.cfg.TLS != nil {
		lis, scheme = tls.NewListener(lis, o.cfg.TLS.ServerConfig(false)), "https"
	}
	srv := &http.Server{Handler: gw, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("s3 gateway: %w", err)
		}
	}()
	endpoint := scheme + "://" + lis.Addr().String()
	fmt.Fprintf(out, "s3 gateway listening on %s (region %s), credentials:\n  export AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_DEFAULT_REGION=%s\n  aws --endpoint-url %s s3 ls\n",
		lis.Addr(), s3gw.DefaultRegion, o.rootKey, o.rootSecret, s3gw.DefaultRegion, endpoint)
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		gw.Close()
		c.Close()
	}, nil
}

// parseProfile reads "K+M" and a block size such as 1MiB, 256KiB or 65536.
func parseProfile(ec, blockSize string) (*metapb.ECProfile, error) {
	k, m, ok := strings.Cut(ec, "+")
	kn, kerr := strconv.Atoi(k)
	mn, merr := strconv.Atoi(m)
	if !ok || kerr != nil || merr != nil || kn < 1 || mn < 0 || kn+mn > erasure.MaxShards {
		return nil, fmt.Errorf("--ec %q: want K+M with K >= 1, M >= 0, K+M <= %d (e.g. 4+2)", ec, erasure.MaxShards)
	}
	bs, err := bytesize.Parse(blockSize)
	if err != nil || bs < 1 || bs > 16<<20 {
		return nil, fmt.Errorf("--block-size %q: want a size from 1 byte to 16MiB (e.g. 1MiB)", blockSize)
	}
	return &metapb.ECProfile{DataShards: uint32(kn), ParityShards: uint32(mn), BlockSize: uint32(bs)}, nil
}
