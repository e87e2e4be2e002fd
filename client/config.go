package client

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/clipstore/clipstore/internal/rawshard"
	"github.com/clipstore/clipstore/internal/tlsconf"
)

// Config configures a Client. Only Meta is required.
type Config struct {
	// Meta lists meta member addresses (host:port). Any member answers any
	// call; the client moves to the next one when a member is unavailable.
	Meta []string
	// TLS, if set, is the client's TLS identity, presented to meta members
	// and storage nodes, whose certificates it verifies. Nil: plain text.
	TLS *tlsconf.Loader
	// BlocksInFlight bounds the blocks a Put or a read keeps in memory at
	// once, whatever the clip's size (default 4).
	BlocksInFlight int
	// NoRawReads and NoRawWrites read and write shards over gRPC only.
	// By default a plain-text client reads and writes them over raw
	// connections (internal/rawshard) with the nodes that serve them: the
	// same checks for less CPU.
	NoRawReads, NoRawWrites bool
	// RequestTimeout bounds how long a storage node stream may stay silent
	// before it counts as slow: a read falls back to other shards, a write
	// counts the shard as failed (default 30s).
	RequestTimeout time.Duration
	// MetaTimeout bounds each attempt of a meta call: a member that does
	// not answer within it (a stopped process, a stalled disk) is passed
	// over for the next, and a write retried there carries the same request
	// id (default 3s).
	MetaTimeout time.Duration
	// MaxRetries is how many times a meta call is retried on Unavailable
	// or a leader change, with exponential backoff and jitter (default 16,
	// about 20 s of retrying: enough for a leader election).
	MaxRetries int
	// Logger receives the client's logs; nil discards them.
	Logger *slog.Logger
	// Reporter names this client in shard reports to meta (default
	// "client").
	Reporter string
	// ClusterSecret is the secret shared by the meta members and the S3
	// gateways: SigningKey presents it. Other clients leave it empty.
	ClusterSecret []byte
	// AccessKey and SecretKey, if set, sign every meta call (see
	// internal/callauth): meta authorizes the call with the key's grants,
	// and a cluster with --require-auth takes no unsigned call. The secret
	// never leaves the client.
	AccessKey, SecretKey string
	// Now is the clock signatures carry (default time.Now).
	Now func() time.Time
}

// Defaults of Config's zero fields.
const (
	DefaultBlocksInFlight = 4
	DefaultRequestTimeout = 30 * time.Second
	DefaultMetaTimeout    = 3 * time.Second
	DefaultMaxRetries     = 16 // with the backoff, about 20 s: a leader election and its warm-up
)

// withDefaults fills in the zero fields.
// rawUse is what the client does over raw connections: nothing with TLS.
func (c *Config) rawUse() byte {
	var use byte
	if c.TLS == nil && !c.NoRawReads {
		use |= rawshard.ServesReads
	}
	if c.TLS == nil && !c.NoRawWrites {
		use |= rawshard.ServesWrites
	}
	return use
}

func (c Config) withDefaults() Config {
	if c.BlocksInFlight == 0 {
		c.BlocksInFlight = DefaultBlocksInFlight
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MetaTimeout == 0 {
		c.MetaTimeout = DefaultMetaTimeout
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Reporter == "" {
		c.Reporter = "client"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports the first unusable field.
func (c *Config) Validate() error {
	switch {
	case len(c.Meta) == 0:
		return errors.New("client config: Meta: at least one meta address is required")
	case c.BlocksInFlight < 0 || c.BlocksInFlight > 1024:
		return fmt.Errorf("client config: BlocksInFlight: %d is outside 1..1024", c.BlocksInFlight)
	case c.RequestTimeout < 0:
		return fmt.Errorf("client config: RequestTimeout: %v is negative", c.RequestTimeout)
	case c.MetaTimeout < 0:
		return fmt.Errorf("client config: MetaTimeout: %v is negative", c.MetaTimeout)
	case c.MaxRetries < 0:
		return fmt.Errorf("client config: MaxRetries: %d is negative", c.MaxRetries)
	case (c.AccessKey == "") != (c.SecretKey == ""):
		return errors.New("client config: an access key needs its secret, and a secret its access key")
	}
	for _, a := range c.Meta {
		if a == "" {
			return errors.New("client config: Meta: empty address")
		}
	}
	return nil
}
