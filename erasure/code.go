package erasure

import (
	"sync"

	"github.com/klauspost/reedsolomon"
)

const (
	// DefaultBlockSize is the block size of a Code made without
	// WithBlockSize: 1 MiB.
	DefaultBlockSize = 1 << 20

	// MaxShards is the largest k+m a Code accepts.
	MaxShards = 64

	// MaxBlockSize is the largest block size a Code accepts: 1 GiB.
	MaxBlockSize = 1 << 30

	defaultBlockCache = 8
)

// Code is one erasure-coding profile: k data and m parity pieces per block of
// a fixed block size. It is safe for concurrent use; its Encoders and
// decoders share a small cache of block buffers.
type Code struct {
	k, m      int
	blockSize int
	pieceSize int    // PieceSize(blockSize, k)
	shiftP    uint32 // CRC32C operator appending pieceSize bytes
	rs        reedsolomon.Encoder

	mu struct {
		sync.Mutex
		free []*Block
	}
	maxFree int
	spill   sync.Pool // blocks released while free is full
}

type config struct {
	blockSize  int
	blockCache int
}

// Option configures a Code.
type Option func(*config)

// WithBlockSize sets the block size in bytes (default DefaultBlockSize).
// It must be in [1, MaxBlockSize].
func WithBlockSize(n int) Option { return func(c *config) { c.blockSize = n } }

// WithBlockCache sets how many released block buffers the Code keeps for
// reuse (default 8). An Encoder allocates nothing per block as long as the
// caller holds at most this many blocks at once. Blocks released beyond
// that (several clips encoded at once) go to a sync.Pool, which keeps them
// until the garbage collector finds them unused. 0 disables both.
func WithBlockCache(n int) Option { return func(c *config) { c.blockCache = n } }

// New returns a Code with k data and m parity pieces per block. It needs
// k >= 1, m >= 0 and k+m <= MaxShards; invalid values return an error
// wrapping ErrInvalidParams.
func New(k, m int, opts ...Option) (*Code, error) {
	cfg := config{blockSize: DefaultBlockSize, blockCache: defaultBlockCache}
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(k, m); err != nil {
		return nil, err
	}
	rs, err := reedsolomon.New(k, m)
	if err != nil {
		return nil, invalid("reedsolomon: %v", err)
	}
	ps := PieceSize(cfg.blockSize, k)
	return &Code{
		k: k, m: m,
		blockSize: cfg.blockSize,
		pieceSize: ps,
		shiftP:    crcShift(int64(ps)),
		rs:        rs,
		maxFree:   cfg.blockCache,
	}, nil
}

func (c config) validate(k, m int) error {
	switch {
	case k < 1:
		return invalid("data shards k=%d, want at least 1", k)
	case m < 0:
		return invalid("parity shards m=%d, want at least 0", m)
	case k+m > MaxShards:
		return invalid("k+m=%d shards, want at most %d", k+m, MaxShards)
	case c.blockSize < 1 || c.blockSize > MaxBlockSize:
		return invalid("block size %d, want 1 to %d", c.blockSize, MaxBlockSize)
	case c.blockCache < 0:
		return invalid("block cache %d, want at least 0", c.blockCache)
	}
	return nil
}

// DataShards returns k.
func (c *Code) DataShards() int { return c.k }

// ParityShards returns m.
func (c *Code) ParityShards() int { return c.m }

// Shards returns k+m, the number of shard streams of a clip.
func (c *Code) Shards() int { return c.k + c.m }

// BlockSize returns the block size in bytes.
func (c *Code) BlockSize() int { return c.blockSize }

// getBlock returns a cached block buffer or a new one.
func (c *Code) getBlock() *Block {
	c.mu.Lock()
	var b *Block
	if n := len(c.mu.free); n > 0 {
		b = c.mu.free[n-1]
		c.mu.free = c.mu.free[:n-1]
	}
	c.mu.Unlock()
	if b == nil {
		b, _ = c.spill.Get().(*Block)
	}
	if b == nil {
		b = newBlock(c.Shards(), c.pieceSize)
	}
	b.owner = c
	return b
}

func (c *Code) putBlock(b *Block) {
	c.mu.Lock()
	if len(c.mu.free) < c.maxFree {
		c.mu.free = append(c.mu.free, b)
		b = nil
	}
	c.mu.Unlock()
	if b != nil && c.maxFree > 0 {
		c.spill.Put(b)
	}
}
