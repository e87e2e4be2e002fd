package meta

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/clipstore/clipstore/internal/tlsconf"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// Config configures a meta member. Build it from DefaultConfig.
type Config struct {
	// ID is the member's Raft server id; stable across restarts.
	ID string
	// DataDir holds the FSM database, the Raft log and the snapshots.
	DataDir string
	// RaftBind is the TCP address the Raft transport listens on (ignored
	// when Transport is set). Port 0 picks a free port.
	RaftBind string
	// Transport replaces the TCP transport (tests inject raft's
	// InmemTransport to partition members).
	Transport raft.Transport
	// TLS, if set, is the member's TLS identity: its gRPC server, its
	// calls to other members and its Raft transport use it (TLS 1.3,
	// certificates of the CA bundle on both ends, the meta role between
	// members). Nil: plain text.
	TLS *tlsconf.Loader
	// GRPCAddress is where other members and clients reach this member's
	// MetaService; recorded in the FSM so that followers can forward.
	GRPCAddress string
	// Bootstrap makes this member found a new single-member cluster if it
	// has no Raft state yet. Others join through JoinMember (Node.Join).
	Bootstrap bool
	// DialOptions are used for this member's gRPC connections to other
	// members (forwarding to the leader, Join): credentials, chiefly. Empty:
	// plain text.
	DialOptions []grpc.DialOption

	// DefaultProfile is used for buckets created without one.
	DefaultProfile *pb.ECProfile
	// MaxUploadDuration is the time a client has between BeginPut and
	// CommitPut (the commit deadline).
	MaxUploadDuration time.Duration
	// RequestTTL is how long a request id's outcome is remembered. Every
	// member must use the same value.
	RequestTTL time.Duration
	// HeartbeatInterval is how often storage nodes should heartbeat;
	// NodeDownAfter without one marks a node down.
	HeartbeatInterval, NodeDownAfter time.Duration
	// RepairAfter is how long a node may stay down before its shards are
	// rebuilt elsewhere (a node back before then is simply up again).
	RepairAfter time.Duration
	// MoveDeleteDelay is how long after a move (a drain's, which replaces a
	// healthy shard) the old shard's deletion waits, so that reads holding
	// the old record finish (0: at once).
	MoveDeleteDelay time.Duration
	// MassDownHold is the longest the mass-down guard holds repair back
	// when more storage nodes go silent at once than it allows
	// (max(m+1, 30% of the active nodes)); 0 means RepairAfter. Every
	// member must use the same value.
	MassDownHold time.Duration
	// ClusterSecret, shared by the meta members and the S3 gateways, is
	// what a gateway presents to get SigV4 signing keys (SigningKey); with
	// none, no signing key is handed out.
	ClusterSecret []byte
	// RootAccessKey and RootSecretKey, if set, are a key pair from the
	// configuration rather than Raft (CLIPSTORE_ROOT_ACCESS_KEY and
	// CLIPSTORE_ROOT_SECRET_KEY): it works from the first start, before any
	// key is made, and cannot be deleted. Every member must have the same.
	RootAccessKey, RootSecretKey string
	// RequireAuth refuses every user call that is not signed with an
	// access key (or asserted by an S3 gateway on a key's behalf): see
	// auth.go. It needs TLS, without which storage nodes serve anyone.
	// Signed calls are checked against the key's grants either way.
	RequireAuth bool
	// CapabilityTTL is how long a read or inventory token is good for
	// (default 1h); a write token lasts until its commit deadline.
	CapabilityTTL time.Duration
	// KeyRotation is how often the leader adds a capability key (default
	// 24h).
	KeyRotation time.Duration
	// SecretsKey, the content of the meta members' secrets key file, seals
	// access keys' secrets in Raft and the state (AES-256-GCM under its
	// SHA-256): without one, no access key can be created. Every member
	// must have the same; at least 32 bytes.
	SecretsKey []byte
	// UploadExpiry is how long a multipart upload may stay open: the
	// leader aborts it after that (its parts are deleted).
	UploadExpiry time.Duration
	// Audit receives the audit log: a record per admin action and per
	// refused call (see audit.go). Nil: the member's Logger, with
	// audit=true.
	Audit *slog.Logger
	// MaxCaptureDuration bounds a clip's capture interval (end - start):
	// Find looks for clips overlapping a range among those starting at
	// most this long before it. Every member must use the same.
	MaxCaptureDuration time.Duration
	// MaxUploadsPerKey bounds the multipart uploads in progress for one
	// key (0: no bound): a client that creates uploads and never finishes
	// them cannot fill meta.
	MaxUploadsPerKey int
	// Limits of the gRPC server: the largest request (bytes), the streams
	// one connection may have open at once, how long a connection may stay
	// idle before the member closes it (0: forever).
	MaxRequestBytes int
	MaxStreams      uint32
	IdleTimeout     time.Duration
	// RepairConcurrency bounds the repairs running cluster-wide (0 pauses
	// repair: nothing is planned) and RepairPerNode those one node runs; RepairTaskTimeout is when an
	// unfinished repair is planned again.
	RepairConcurrency, RepairPerNode int
	RepairTaskTimeout                time.Duration
	// RepairBytesPerSec bounds the shard bytes the leader plans for repair
	// per second, cluster-wide (0: no bound). RepairConcurrency and this
	// are the defaults; `clipstore admin repair` changes them at run time.
	RepairBytesPerSec uint64
	// MoveConcurrency and MoveBytesPerSec are the same bounds for moves (a
	// drain's), planned after every repair; `clipstore admin moves` changes
	// them at run time. 0 concurrency pauses moves.
	MoveConcurrency int
	MoveBytesPerSec uint64
	// MovesPerSource bounds the moves copying from one node at once (a
	// drained node is the source of all of its moves), as RepairPerNode
	// bounds the tasks writing to one.
	MovesPerSource int
	// AutoRebalance starts a rebalance when a storage node joins or a
	// node's capacity changes; RebalanceThreshold is the band around the
	// mean fill it aims for (a used fraction: 0.05 is 5 points), and
	// RebalanceMaxInFlight caps the shard bytes its moves hold in motion.
	AutoRebalance        bool
	RebalanceThreshold   float64
	RebalanceMaxInFlight uint64
	// GCGrace is how long past its commit deadline an unreferenced shard is
	// kept before a storage node may delete it.
	GCGrace time.Duration
	// MinFreeBytes: nodes with less free space get no new shards.
	MinFreeBytes uint64
	// GetClipPageParts is the most parts of a record a GetClip answer
	// carries when the request pages them (PartSelector); 0 means 1000.
	GetClipPageParts int
	// StateBatchInterval and StateBatchLimit bound how long and how many
	// applied entries wait before the state file commits them (etcd's
	// --backend-batch-interval and --backend-batch-limit): answers do not
	// wait for that commit, since the entries are durable in the Raft log,
	// which a restarted member replays. Reads and snapshots commit first.
	// A negative interval commits every Raft batch at once.
	StateBatchInterval time.Duration
	StateBatchLimit    int
	// ApplyTimeout bounds the wait for a Raft proposal to be accepted into
	// the log and, with the request's own deadline, the wait for its
	// outcome.
	ApplyTimeout time.Duration

	// Raft timing and log retention. TrailingLogs covers minutes of
	// follower downtime at full write rate so that a restarted follower
	// catches up from the log; SnapshotThreshold keeps snapshots of a
	// large database rare.
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout, CommitTimeout time.Duration
	SnapshotInterval                                                     time.Duration
	SnapshotThreshold, TrailingLogs                                      uint64

	// Now is the clock (tests inject skew); nil means time.Now.
	Now func() time.Time
	// Logger and Registerer are per member; nil means slog.Default() and no
	// metrics.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// DefaultConfig returns the defaults; ID, DataDir and the addresses are the
// caller's.
func DefaultConfig() Config {
	return Config{
		DefaultProfile:       &pb.ECProfile{DataShards: 4, ParityShards: 2, BlockSize: 1 << 20},
		MaxUploadDuration:    time.Hour,
		UploadExpiry:         7 * 24 * time.Hour,
		MaxUploadsPerKey:     1000,
		MaxCaptureDuration:   24 * time.Hour,
		CapabilityTTL:        time.Hour,
		KeyRotation:          24 * time.Hour,
		MaxRequestBytes:      16 << 20,
		MaxStreams:           1000,
		IdleTimeout:          30 * time.Minute,
		RequestTTL:           2 * time.Hour,
		HeartbeatInterval:    time.Second,
		NodeDownAfter:        10 * time.Second,
		MinFreeBytes:         1 << 30,
		RepairAfter:          10 * time.Minute,
		GCGrace:              time.Hour,
		RepairConcurrency:    16,
		RepairPerNode:        2,
		RepairTaskTimeout:    10 * time.Minute,
		MoveDeleteDelay:      2 * time.Minute,
		RepairBytesPerSec:    200 << 20,
		MoveConcurrency:      8,
		MovesPerSource:       4,
		AutoRebalance:        true,
		RebalanceThreshold:   defaultThreshold,
		RebalanceMaxInFlight: 8 << 30,
		MoveBytesPerSec:      100 << 20,
		ApplyTimeout:         10 * time.Second,
		StateBatchInterval:   defaultCommitInterval,
		StateBatchLimit:      defaultCommitEntries,
		HeartbeatTimeout:     time.Second,
		ElectionTimeout:      time.Second,
		LeaderLeaseTimeout:   500 * time.Millisecond,
		CommitTimeout:        50 * time.Millisecond,
		SnapshotInterval:     2 * time.Minute,
		SnapshotThreshold:    200_000,
		TrailingLogs:         500_000,
	}
}

// Validate names the first unusable field.
func (c *Config) Validate() error {
	switch {
	case validateNodeID(c.ID) != nil:
		return fmt.Errorf("meta config: ID %q: 1-128 bytes without NUL required", c.ID)
	case c.DataDir == "":
		return errors.New("meta config: DataDir is required")
	case c.Transport == nil && c.RaftBind == "":
		return errors.New("meta config: RaftBind or Transport is required")
	case c.GRPCAddress == "":
		return errors.New("meta config: GRPCAddress is required")
	case c.DefaultProfile == nil || ValidateProfile(c.DefaultProfile) != nil:
		return fmt.Errorf("meta config: DefaultProfile %v is not a usable EC profile", c.DefaultProfile)
	case c.MaxUploadDuration <= 0:
		return errors.New("meta config: MaxUploadDuration must be positive")
	case (c.RootAccessKey == "") != (c.RootSecretKey == ""):
		return errors.New("meta config: a root key needs both its access key and its secret")
	case c.RootAccessKey != "" && (len(c.RootAccessKey) < 3 || len(c.RootAccessKey) > 128 || len(c.RootSecretKey) < 8):
		return errors.New("meta config: a root access key has 3 to 128 characters and a secret at least 8")
	case c.RequireAuth && (c.CapabilityTTL <= 0 || c.KeyRotation <= 0):
		return errors.New("meta config: CapabilityTTL and KeyRotation must be positive")
	case c.RequireAuth && 2*c.KeyRotation-2*c.NodeDownAfter < max(c.CapabilityTTL, c.MaxUploadDuration):
		// A key signs from 2×NodeDownAfter after the next one's creation
		// and is dropped when the third one after it is made: the tokens
		// it signed last must outlive neither.
		return fmt.Errorf("meta config: KeyRotation %v is too short: a key must outlast the tokens it signed "+
			"(2×KeyRotation − 2×NodeDownAfter ≥ max(CapabilityTTL %v, MaxUploadDuration %v))", c.KeyRotation, c.CapabilityTTL, c.MaxUploadDuration)
	case c.RequireAuth && c.TLS == nil:
		return errors.New("meta config: RequireAuth needs TLS: without it the links are plain text and storage nodes serve anyone")
	case len(c.SecretsKey) > 0 && len(c.SecretsKey) < 32:
		return fmt.Errorf("meta config: a secrets key has at least 32 bytes, this one %d", len(c.SecretsKey))
	case c.MaxUploadsPerKey < 0 || c.MaxRequestBytes < 0 || c.IdleTimeout < 0:
		return errors.New("meta config: MaxUploadsPerKey, MaxRequestBytes and IdleTimeout must not be negative")
	case c.UploadExpiry <= 0:
		return errors.New("meta config: UploadExpiry must be positive")
	case c.RequestTTL < c.MaxUploadDuration:
		return fmt.Errorf("meta config: RequestTTL %v must cover MaxUploadDuration %v", c.RequestTTL, c.MaxUploadDuration)
	case c.HeartbeatInterval <= 0 || c.NodeDownAfter < 2*c.HeartbeatInterval:
		return fmt.Errorf("meta config: NodeDownAfter %v must be at least two HeartbeatIntervals (%v)", c.NodeDownAfter, c.HeartbeatInterval)
	case c.RepairAfter < 0 || c.RepairConcurrency < 0 || c.RepairPerNode < 1 || c.RepairTaskTimeout <= 0:
		return fmt.Errorf("meta config: repair settings (after %v, concurrency %d, per node %d, timeout %v) out of range",
			c.RepairAfter, c.RepairConcurrency, c.RepairPerNode, c.RepairTaskTimeout)
	case math.IsNaN(c.RebalanceThreshold) || c.RebalanceThreshold <= 0 || c.RebalanceThreshold > 1:
		return fmt.Errorf("meta config: RebalanceThreshold %v outside (0, 1]", c.RebalanceThreshold)
	case c.MoveConcurrency < 0:
		return errors.New("meta config: MoveConcurrency must not be negative")
	case c.MovesPerSource < 1:
		return errors.New("meta config: MovesPerSource must be at least 1")
	case c.MoveDeleteDelay < 0:
		return errors.New("meta config: MoveDeleteDelay must not be negative")
	case c.MassDownHold < 0:
		return errors.New("meta config: MassDownHold must not be negative")
	case c.GCGrace < 0:
		return errors.New("meta config: GCGrace must not be negative")
	case c.StateBatchLimit < 1:
		return errors.New("meta config: StateBatchLimit must be at least 1")
	case c.ApplyTimeout <= 0:
		return errors.New("meta config: ApplyTimeout must be positive")
	case c.GetClipPageParts < 0:
		return errors.New("meta config: GetClipPageParts must not be negative")
	}
	return nil
}

// massDownHold is MassDownHold, or RepairAfter when it is 0.
func (c *Config) massDownHold() time.Duration {
	if c.MassDownHold > 0 {
		return c.MassDownHold
	}
	return c.RepairAfter
}

// metaTimeout is how long a storage node gives each attempt of a call to
// meta before it tries another member: a quarter of NodeDownAfter (between
// 250 ms and 10 s), so that a member that hangs costs a node's heartbeat a
// fraction of the time after which the node would be marked down.
func (c *Config) metaTimeout() time.Duration {
	return min(max(c.NodeDownAfter/4, 250*time.Millisecond), 10*time.Second)
}

func (c *Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}
