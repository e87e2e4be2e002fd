package server

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/clipstore/clipstore/internal/rawshard"
	"github.com/clipstore/clipstore/internal/tlsconf"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a storage node. Build it from DefaultConfig and set
// what differs; flags bind onto its fields.
type Config struct {
	// NodeID is the node's stable identity, reported by NodeInfo.
	NodeID string
	// TLS, if set, is the node's TLS identity: its server requires
	// certificates of the CA bundle from every caller, and its calls to
	// meta and to other nodes present it. Nil: plain text.
	TLS *tlsconf.Loader
	// DataDirs are the node's disks, one data directory each.
	DataDirs []string
	// Meta lists meta members to register and heartbeat with; empty: the
	// node runs stand-alone (tests, tools).
	Meta []string
	// Advertise is the address clients reach this node at, as registered
	// with meta; Zone is its failure domain.
	Advertise, Zone string
	// HeartbeatInterval is the first interval between heartbeats; meta's
	// answers set it afterwards.
	HeartbeatInterval time.Duration
	// MetaTimeout bounds each attempt of a call to a meta member: a member
	// that does not answer within it is passed over for the next.
	MetaTimeout time.Duration
	// MaxPieceSize bounds a piece (block size / k); the gRPC message limit is
	// derived from it. Writes whose header implies larger pieces are refused.
	MaxPieceSize int
	// MaxStreams bounds the streams one connection may have open at once,
	// IdleTimeout how long a connection may stay idle before the node
	// closes it (0: no bound, forever).
	MaxStreams  uint32
	IdleTimeout time.Duration
	// ListPageSize is the default and ListPageSizeMax the largest page of
	// ListShards.
	ListPageSize, ListPageSizeMax int
	// WriteIdleTimeout ends a write whose client sent nothing for this long.
	WriteIdleTimeout time.Duration
	// RepairConcurrency is how many repairs meta handed out in heartbeat
	// responses the node runs at once (see Node.Repair).
	RepairConcurrency int
	// Capacity, when set, is the node's capacity as it reports it to meta,
	// in place of its filesystems' size: its free space is then Capacity
	// less the shard bytes it holds (and never more than the filesystems
	// have free). Nodes that share one filesystem (a test, one machine)
	// need it to be told apart.
	Capacity int64
	// ScrubInterval is the pause between two scrub passes (each re-reads
	// and verifies every shard); 0 disables the background scrubber. It
	// runs only with Meta, where it reports what it finds.
	ScrubInterval time.Duration
	// ScrubRate bounds the bytes per second a scrub pass reads; 0 means
	// unthrottled.
	ScrubRate int64
	// ScrubStartDelay bounds the delay before the first pass after start-up:
	// a random time between half of and all of min(ScrubInterval,
	// ScrubStartDelay), so that a restarted node does not start reading its
	// disks at once.
	ScrubStartDelay time.Duration
	// GCInterval is the pause between garbage collection runs (shards no
	// record references, past their commit deadline by meta's GC grace);
	// 0 disables them. They run only with Meta.
	GCInterval time.Duration

	// NoRawReads and NoRawWrites turn off raw shard reads and writes
	// (raw.go) on a plain-text node: those are then gRPC only, and with
	// NoRawReads its repairs read their sources over gRPC too. TLS nodes
	// never use them.
	NoRawReads, NoRawWrites bool
	// BufferedWrites writes shard files through the page cache instead of
	// with O_DIRECT (which a filesystem that refuses it gets anyway).
	BufferedWrites bool

	// OpenFS opens a data directory; nil means OpenOSFS. Tests wrap it to
	// inject faults.
	OpenFS func(dir string) (FS, error)
	// Logger receives the node's logs; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the node's metrics; nil means none are exported.
	Registerer prometheus.Registerer
}

// DefaultConfig returns a config with the defaults filled in; DataDirs and
// NodeID are left for the caller.
func DefaultConfig() Config {
	return Config{
		MaxPieceSize:      16 << 20,
		ListPageSize:      1000,
		ListPageSizeMax:   10000,
		WriteIdleTimeout:  time.Minute,
		MaxStreams:        1000,
		IdleTimeout:       30 * time.Minute,
		HeartbeatInterval: time.Second,
		MetaTimeout:       10 * time.Second,
		RepairConcurrency: 2,
		ScrubInterval:     24 * time.Hour,
		ScrubRate:         50 << 20,
		ScrubStartDelay:   time.Minute,
		GCInterval:        10 * time.Minute,
	}
}

// ConfigError names the first unusable field of a Config.
type ConfigError struct {
	Field   string // e.g. "RepairConcurrency"
	Problem string
}

func (e *ConfigError) Error() string { return "server config: " + e.Field + ": " + e.Problem }

func configError(field, format string, args ...any) error {
	return &ConfigError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// Validate reports the first field that is unusable, as a *ConfigError.
func (c *Config) Validate() error {
	switch {
	case len(c.DataDirs) == 0:
		return configError("DataDirs", "at least one data directory is required")
	case c.MaxPieceSize < 1 || c.MaxPieceSize > 256<<20:
		return configError("MaxPieceSize", "%d is outside 1..256 MiB", c.MaxPieceSize)
	case len(c.Meta) > 0 && c.NodeID == "":
		return configError("NodeID", "required to register with Meta")
	case len(c.Meta) > 0 && c.Advertise == "":
		return configError("Advertise", "required to register with Meta")
	case len(c.Meta) > 0 && c.HeartbeatInterval <= 0:
		return configError("HeartbeatInterval", "%v must be positive", c.HeartbeatInterval)
	case len(c.Meta) > 0 && c.MetaTimeout <= 0:
		return configError("MetaTimeout", "%v must be positive", c.MetaTimeout)
	case len(c.Meta) > 0 && c.RepairConcurrency < 1:
		return configError("RepairConcurrency", "%d must be at least 1", c.RepairConcurrency)
	case c.ScrubInterval < 0:
		return configError("ScrubInterval", "%v must not be negative", c.ScrubInterval)
	case c.Capacity < 0:
		return configError("Capacity", "%d is negative", c.Capacity)
	case c.ScrubRate < 0:
		return configError("ScrubRate", "%d must not be negative", c.ScrubRate)
	case c.ScrubStartDelay < 0:
		return configError("ScrubStartDelay", "%v must not be negative", c.ScrubStartDelay)
	case c.GCInterval < 0:
		return configError("GCInterval", "%v must not be negative", c.GCInterval)
	case c.WriteIdleTimeout <= 0:
		return configError("WriteIdleTimeout", "%v must be positive", c.WriteIdleTimeout)
	case c.ListPageSize < 1 || c.ListPageSizeMax < c.ListPageSize:
		return configError("ListPageSize", "%d with ListPageSizeMax %d: need 1 <= size <= max", c.ListPageSize, c.ListPageSizeMax)
	}
	seen := map[string]bool{}
	for _, d := range c.DataDirs {
		if d == "" {
			return configError("DataDirs", "empty directory name")
		}
		if seen[d] {
			return configError("DataDirs", "%q listed twice", d)
		}
		seen[d] = true
	}
	return nil
}

// maxMessageSize is the largest gRPC message the node sends or accepts: a
// whole piece, its trailer and framing.
func (c *Config) maxMessageSize() int { return c.MaxPieceSize + 64<<10 }

// rawServes is what the node serves on raw connections (raw.go): nothing
// with TLS.
func (c *Config) rawServes() byte {
	var serves byte
	if c.TLS == nil && !c.NoRawReads {
		serves |= rawshard.ServesReads
	}
	if c.TLS == nil && !c.NoRawWrites {
		serves |= rawshard.ServesWrites
	}
	return serves
}
