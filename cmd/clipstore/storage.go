package main

import (
	"context"
	"fmt"
	"net"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/clipstore/clipstore/internal/bytesize"
	"github.com/clipstore/clipstore/server"
	"github.com/spf13/cobra"
)

type storageOptions struct {
	serverFlags
	tls    tlsFlags
	cfg    server.Config
	listen string
}

func (o *storageOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	o.serverFlags.AddFlags(cmd, "info")
	o.tls.addFlags(f, true)
	f.StringVar(&o.listen, "listen", "127.0.0.1:7500", "gRPC listen address")
	f.StringVar(&o.cfg.NodeID, "id", "", "stable node identity (default: the listen address)")
	f.StringSliceVar(&o.cfg.DataDirs, "data", nil, "data directory, one per disk (repeat or comma-separate)")
	f.StringSliceVar(&o.cfg.Meta, "meta", nil, "meta members to register and heartbeat with (comma-separated); empty: stand-alone")
	f.StringVar(&o.cfg.Zone, "zone", "", "failure domain (rack, site) for shard placement")
	f.StringVar(&o.cfg.Advertise, "advertise", "", "address clients reach this node at (default: the listen address)")
	f.Var(sizeFlag(&o.cfg.Capacity), "capacity", "capacity to report to meta instead of the filesystems' size, e.g. 2TiB (nodes sharing a filesystem need it)")
	f.IntVar(&o.cfg.MaxPieceSize, "max-piece-size", o.cfg.MaxPieceSize, "largest piece (block size / k) accepted, in bytes")
	f.Uint32Var(&o.cfg.MaxStreams, "max-streams", o.cfg.MaxStreams, "streams one connection may have open at once (0: no bound)")
	f.DurationVar(&o.cfg.IdleTimeout, "idle-timeout", o.cfg.IdleTimeout, "close a connection idle this long (0: never)")
	addMaintenanceFlags(cmd, &o.cfg)
}

func newStorageCommand() *cobra.Command {
	o := &storageOptions{cfg: server.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "storage",
		Short: "Run a storage node",
		Long: `Run a storage node: it keeps erasure-coded shards on its data directories and
serves them over gRPC until SIGINT or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	o.AddFlags(cmd)
	cmd.MarkFlagRequired("data")
	return cmd
}

func (o *storageOptions) run(cmd *cobra.Command) error {
	log, err := o.logger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	if o.cfg.TLS, err = o.tls.load(log, o.listen); err != nil {
		return err
	}
	lis, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.listen, err)
	}
	if o.cfg.NodeID == "" {
		o.cfg.NodeID = lis.Addr().String()
	}
	if o.cfg.Advertise == "" {
		o.cfg.Advertise = lis.Addr().String()
	}
	reg := newRegistry()
	o.cfg.Logger, o.cfg.Registerer = log, reg
	node, err := server.New(o.cfg)
	if err != nil {
		lis.Close()
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	reloadOnSIGHUP(ctx, o.cfg.TLS, log)
	errc := make(chan error, 2)
	go func() { errc <- node.Serve(lis) }()
	stopHTTP, err := o.serveHTTP(reg, log, errc)
	if err != nil {
		node.Shutdown(context.Background())
		return err
	}
	defer stopHTTP()
	// The ready line: scripts and tests wait for it.
	fmt.Fprintf(cmd.OutOrStdout(), "storage node %s listening on %s\n", o.cfg.NodeID, lis.Addr())
	select {
	case err = <-errc:
	case <-ctx.Done():
		log.Info("shutting down")
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if serr := node.Shutdown(sctx); err == nil {
		err = serr
	}
	return err
}

// addMaintenanceFlags binds a storage node's background work knobs
// (scrubbing, garbage collection) and how it writes and serves shard
// files; clipstore dev shares them.
func addMaintenanceFlags(cmd *cobra.Command, cfg *server.Config) {
	f := cmd.Flags()
	f.DurationVar(&cfg.ScrubInterval, "scrub-interval", cfg.ScrubInterval, "pause between scrub passes over every shard (0: no scrubbing)")
	f.Var(rateFlag(&cfg.ScrubRate), "scrub-rate", "bytes per second a scrub pass reads, e.g. 50MiB (0: no bound)")
	f.DurationVar(&cfg.GCInterval, "gc-interval", cfg.GCInterval, "pause between garbage collection runs (0: none)")
	f.BoolVar(&cfg.BufferedWrites, "buffered-writes", cfg.BufferedWrites, "write shard files through the page cache instead of with O_DIRECT")
	f.Var(invertedBool{&cfg.NoRawReads}, "raw-reads", "also serve shard reads, and read repair sources, on plain-text connections without gRPC framing (false: gRPC only)")
	f.Lookup("raw-reads").NoOptDefVal = "true"
	f.Var(invertedBool{&cfg.NoRawWrites}, "raw-writes", "also take shard writes on plain-text connections without gRPC framing (false: gRPC only)")
	f.Lookup("raw-writes").NoOptDefVal = "true"
}

// invertedBool is a boolean flag that sets the opposite of its value: a
// --raw-reads flag over a NoRawReads field.
type invertedBool struct{ v *bool }

func (b invertedBool) String() string {
	if b.v == nil {
		return "true"
	}
	return strconv.FormatBool(!*b.v)
}

func (b invertedBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*b.v = !v
	return nil
}

func (invertedBool) Type() string { return "bool" }

// byteFlag is a flag holding a size as bytesize.Parse reads it (e.g.
// 2TiB); a rate, in bytes per second, may end in "/s" (e.g. 50MiB/s).
type byteFlag[T int | int64 | uint64] struct {
	v    *T
	rate bool
}

func sizeFlag[T int | int64 | uint64](v *T) *byteFlag[T] { return &byteFlag[T]{v: v} }
func rateFlag[T int | int64 | uint64](v *T) *byteFlag[T] { return &byteFlag[T]{v: v, rate: true} }

func (b *byteFlag[T]) String() string {
	if b.v == nil || (!b.rate && *b.v == 0) {
		return ""
	}
	return bytesize.Human(int64(*b.v))
}

func (b *byteFlag[T]) Set(s string) error {
	want := "a size such as 2TiB"
	if b.rate {
		want, s = "bytes per second such as 50MiB", strings.TrimSuffix(s, "/s")
	}
	n, err := bytesize.Parse(s)
	if err != nil || n < 0 {
		return fmt.Errorf("want %s", want)
	}
	*b.v = T(n)
	return nil
}

func (b *byteFlag[T]) Type() string {
	if b.rate {
		return "bytes/s"
	}
	return "bytes"
}
