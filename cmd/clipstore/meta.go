package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os/signal"
	"syscall"
	"time"

	"github.com/clipstore/clipstore/meta"
	"github.com/spf13/cobra"
)

type metaOptions struct {
	serverFlags
	tls            tlsFlags
	cfg            meta.Config
	listen         string
	join           string
	secretFile     string
	secretsKeyFile string
	rootKeyFile    string
	auditLog       string
}

func (o *metaOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.cfg.ID, "id", "", "member id, stable across restarts (required)")
	f.StringVar(&o.cfg.DataDir, "data", "", "directory for the member's state, Raft log and snapshots (required)")
	f.StringVar(&o.listen, "listen", "127.0.0.1:7400", "gRPC listen address of the MetaService")
	f.StringVar(&o.cfg.RaftBind, "raft", "127.0.0.1:7401", "Raft listen address")
	f.BoolVar(&o.cfg.Bootstrap, "bootstrap", false, "found a new cluster with this member if it has no state yet")
	f.StringVar(&o.join, "join", "", "gRPC address of a member of an existing cluster to join through")
	f.StringVar(&o.rootKeyFile, "root-key-file", "", "file holding the root key, its access key id and its secret separated by white space (instead of "+envRootAccessKey+" and "+envRootSecretKey+"; the same on every member)")
	f.StringVar(&o.secretsKeyFile, "secrets-key-file", "", "file holding the key that seals access keys' secrets at rest (at least 32 bytes; the same on every member; without one no access key can be created)")
	f.StringVar(&o.secretFile, "cluster-secret-file", "", "file holding the secret shared with the S3 gateways, who present it to get signing keys (empty: none are handed out)")
	o.serverFlags.AddFlags(cmd, "info")
	o.tls.addFlags(f, true)
	f.BoolVar(&o.cfg.RequireAuth, "require-auth", false, "take only calls signed with an access key (or asserted by an S3 gateway's certificate): needs TLS; "+
		"the root key (--root-key-file) is the first cluster admin")
	f.DurationVar(&o.cfg.CapabilityTTL, "capability-ttl", o.cfg.CapabilityTTL, "with --require-auth: how long a read token storage nodes take is good for")
	f.DurationVar(&o.cfg.KeyRotation, "key-rotation", o.cfg.KeyRotation, "with --require-auth: how often a new key signs capability tokens")
	f.StringVar(&o.auditLog, "audit-log", "", "append the audit log (admin actions and refused calls, one JSON object a line) to this file (default: the process log)")
	f.DurationVar(&o.cfg.MaxUploadDuration, "max-upload-duration", o.cfg.MaxUploadDuration, "time a client has between BeginPut and CommitPut")
	f.DurationVar(&o.cfg.UploadExpiry, "upload-expiry", o.cfg.UploadExpiry, "abort a multipart upload left open this long, deleting its parts")
	f.IntVar(&o.cfg.MaxUploadsPerKey, "max-uploads-per-key", o.cfg.MaxUploadsPerKey, "multipart uploads one key may have in progress (0: no bound)")
	f.Var(sizeFlag(&o.cfg.MaxRequestBytes), "max-request-size", "largest gRPC request accepted, e.g. 16MiB")
	f.Uint32Var(&o.cfg.MaxStreams, "max-streams", o.cfg.MaxStreams, "streams one connection may have open at once (0: no bound)")
	f.DurationVar(&o.cfg.IdleTimeout, "idle-timeout", o.cfg.IdleTimeout, "close a connection idle this long (0: never)")
	f.DurationVar(&o.cfg.NodeDownAfter, "node-down-after", o.cfg.NodeDownAfter, "mark a storage node down after this long without a heartbeat")
	f.DurationVar(&o.cfg.GCGrace, "gc-grace", o.cfg.GCGrace, "keep an unreferenced shard this long past its commit deadline")
	f.DurationVar(&o.cfg.RepairAfter, "repair-after", o.cfg.RepairAfter, "rebuild a down node's shards elsewhere after it has been down this long")
	f.IntVar(&o.cfg.RepairConcurrency, "repair-concurrency", o.cfg.RepairConcurrency,
		"repairs running at once, cluster-wide, until clipstore admin repair changes it (0 pauses repair)")
	f.Var(rateFlag(&o.cfg.RepairBytesPerSec), "repair-rate", "shard bytes repaired per second, cluster-wide, until clipstore admin repair changes it (0: no bound)")
	f.IntVar(&o.cfg.MoveConcurrency, "move-concurrency", o.cfg.MoveConcurrency,
		"moves (drains) running at once, cluster-wide, until clipstore admin moves changes it (0 pauses moves)")
	f.Var(rateFlag(&o.cfg.MoveBytesPerSec), "move-rate", "shard bytes moved per second, cluster-wide, until clipstore admin moves changes it (0: no bound)")
	f.IntVar(&o.cfg.MovesPerSource, "moves-per-source", o.cfg.MovesPerSource, "moves copying from one storage node at once, at most")
	f.IntVar(&o.cfg.RepairPerNode, "repairs-per-node", o.cfg.RepairPerNode, "repairs and moves writing to one storage node at once, at most")
	f.Var(sizeFlag(&o.cfg.MinFreeBytes), "min-free", "storage nodes with less free space get no new shards")
	f.BoolVar(&o.cfg.AutoRebalance, "auto-rebalance", o.cfg.AutoRebalance, "start a rebalance by itself when a storage node joins or changes capacity")
	f.Float64Var(&o.cfg.RebalanceThreshold, "rebalance-threshold", o.cfg.RebalanceThreshold,
		"a rebalance brings every node's fill within this share of capacity of the mean (0.05: 5 points)")
	f.Var(sizeFlag(&o.cfg.RebalanceMaxInFlight), "rebalance-max-in-flight", "shard bytes a rebalance's moves hold in motion at once, at most")
	f.DurationVar(&o.cfg.MoveDeleteDelay, "move-delete-delay", o.cfg.MoveDeleteDelay,
		"after a shard is moved off a node (drain), wait this long before deleting the old copy, so that reads in flight finish")
	f.DurationVar(&o.cfg.MassDownHold, "mass-down-hold", o.cfg.MassDownHold,
		"when more storage nodes go silent at once than max(m+1, 30% of them), hold their repair back this long (0: --repair-after) unless they return")
	f.DurationVar(&o.cfg.StateBatchInterval, "state-batch-interval", o.cfg.StateBatchInterval,
		"longest time applied Raft entries wait before the state file commits them (they are durable in the Raft log already)")
	f.IntVar(&o.cfg.StateBatchLimit, "state-batch-limit", o.cfg.StateBatchLimit, "most applied Raft entries waiting for a state file commit")
}

func newMetaCommand() *cobra.Command {
	o := &metaOptions{cfg: meta.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "meta",
		Short: "Run a metadata (Raft) member",
		Long: `Run a member of the meta Raft group. Start the first member with --bootstrap,
the others with --join pointing at any running member. A restarted member
rejoins with its data; it needs neither flag again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	o.AddFlags(cmd)
	cmd.MarkFlagRequired("id")
	cmd.MarkFlagRequired("data")
	return cmd
}

func (o *metaOptions) run(cmd *cobra.Command) error {
	log, err := o.logger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	if o.cfg.Bootstrap && o.join != "" {
		return errors.New("--bootstrap and --join exclude each other")
	}
	if o.secretFile != "" {
		if o.cfg.ClusterSecret, err = readClusterSecret(o.secretFile); err != nil {
			return err
		}
	}
	if o.secretsKeyFile != "" {
		if o.cfg.SecretsKey, err = readSecretsKey(o.secretsKeyFile); err != nil {
			return err
		}
	}
	if o.cfg.TLS, err = o.tls.load(log, o.listen, o.cfg.RaftBind); err != nil {
		return err
	}
	if o.auditLog != "" {
		f, err := openAuditLog(o.auditLog)
		if err != nil {
			return err
		}
		defer f.Close()
		o.cfg.Audit = slog.New(slog.NewJSONHandler(f, nil))
	}
	o.cfg.RootAccessKey, o.cfg.RootSecretKey = rootKeyFromEnv()
	if o.rootKeyFile != "" {
		if o.cfg.RootAccessKey != "" {
			return fmt.Errorf("the root key comes from --root-key-file or from %s and %s, not both", envRootAccessKey, envRootSecretKey)
		}
		if o.cfg.RootAccessKey, o.cfg.RootSecretKey, err = readRootKeyFile(o.rootKeyFile); err != nil {
			return err
		}
	}
	lis, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.listen, err)
	}
	reg := newRegistry()
	o.cfg.GRPCAddress, o.cfg.Logger, o.cfg.Registerer = lis.Addr().String(), log, reg
	node, err := meta.New(o.cfg)
	if err != nil {
		lis.Close()
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	reloadOnSIGHUP(ctx, o.cfg.TLS, log)
	errc := make(chan error, 3)
	go func() { errc <- node.Serve(lis) }()
	stopHTTP, err := o.serveHTTP(reg, log, errc)
	if err == nil {
		defer stopHTTP()
		err = o.joinCluster(ctx, node)
	}
	if err == nil {
		fmt.Fprintf(cmd.OutOrStdout(), "meta member %s (raft %s) listening on %s\n", o.cfg.ID, node.RaftAddress(), lis.Addr())
		select {
		case err = <-errc:
		case <-ctx.Done():
			log.Info("shutting down")
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return errors.Join(err, node.Shutdown(sctx))
}

// joinCluster joins through --join, if given, retrying for up to a minute
// while the cluster has no leader.
func (o *metaOptions) joinCluster(ctx context.Context, node *meta.Node) error {
	if o.join == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return node.Join(ctx, o.join)
}
