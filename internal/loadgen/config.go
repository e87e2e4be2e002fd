package loadgen

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Workload names what the workers do.
type Workload string

// Workloads.
const (
	// WorkloadPut puts clips under new keys.
	WorkloadPut Workload = "put"
	// WorkloadGet reads (whole, or random ranges of) prepared clips.
	WorkloadGet Workload = "get"
	// WorkloadMixed gets 45%, stats 30%, puts 15% and deletes 10%.
	WorkloadMixed Workload = "mixed"
	// WorkloadList lists the prefix of the prepared clips.
	WorkloadList Workload = "list"
)

// ParseWorkload reads a workload name.
func ParseWorkload(s string) (Workload, error) {
	switch w := Workload(s); w {
	case WorkloadPut, WorkloadGet, WorkloadMixed, WorkloadList:
		return w, nil
	}
	return "", fmt.Errorf("unknown workload %q: want put, get, mixed or list", s)
}

// Defaults of Config's zero fields.
const (
	DefaultBucket      = "clipstore-bench"
	DefaultConcurrency = 8
	DefaultDuration    = 30 * time.Second
	DefaultListObjects = 1000
)

// DefaultSize is the clip size without Sizes.
const DefaultSize = 8 << 20

// Config shapes a run. Only Workload is required.
type Config struct {
	Workload Workload
	// Bucket holds the run's clips; it is created (with the cluster's
	// default profile) if it does not exist. Default "clipstore-bench".
	Bucket string
	// Prefix starts every key of the run; default "bench/<8 random
	// hex>/", so that concurrent runs do not collide.
	Prefix string
	// Sizes are the clip sizes; operation n uses Sizes[n % len(Sizes)].
	// Default 8 MiB.
	Sizes []int64
	// Concurrency is the number of workers (default 8).
	Concurrency int
	// Duration stops the workers from starting operations after this
	// long; operations in flight then complete and count. Count instead
	// stops them after this many operations in total. At most one of the
	// two may be set; without either, Duration is 30 s.
	Duration time.Duration
	Count    int64
	// Objects is how many clips of each size get, mixed and list prepare
	// before the measurement (default 4 per worker for get and mixed,
	// 1000 for list).
	Objects int
	// Range makes get read random byte ranges of this length with
	// Store.ReadAt instead of whole clips (0: whole clips).
	Range int64
	// Seed seeds the clip content and the workers' random choices.
	Seed uint64
	// Keep leaves the run's clips in place instead of deleting them.
	Keep bool
	// Progress, if set, is called about four times a second while clips
	// are prepared, measured and deleted, from a goroutine Run owns.
	Progress func(Progress)

	// verifySeed, if set, makes reads check the content of another seed
	// than the one written: tests use it to see damage reported.
	verifySeed *uint64
}

// Progress is a live view of a run.
type Progress struct {
	Phase   string        // "prepare", "measure" or "clean"
	Elapsed time.Duration // since the phase began
	Ops     int64         // operations completed, failed ones included (clean: clips deleted)
	Bytes   int64         // bytes moved by the successful ones
	Errors  int64
}

// Validate reports the first unusable field.
func (c *Config) Validate() error {
	if _, err := ParseWorkload(string(c.Workload)); err != nil {
		return fmt.Errorf("loadgen config: Workload: %w", err)
	}
	switch {
	case c.Concurrency < 0:
		return fmt.Errorf("loadgen config: Concurrency: %d is negative", c.Concurrency)
	case c.Duration < 0:
		return fmt.Errorf("loadgen config: Duration: %v is negative", c.Duration)
	case c.Count < 0:
		return fmt.Errorf("loadgen config: Count: %d is negative", c.Count)
	case c.Duration > 0 && c.Count > 0:
		return errors.New("loadgen config: Duration and Count: set at most one")
	case c.Objects < 0:
		return fmt.Errorf("loadgen config: Objects: %d is negative", c.Objects)
	case c.Range < 0:
		return fmt.Errorf("loadgen config: Range: %d is negative", c.Range)
	case c.Range > 0 && c.Workload != WorkloadGet:
		return fmt.Errorf("loadgen config: Range: only the get workload reads ranges, not %s", c.Workload)
	}
	for _, s := range c.Sizes {
		if s < 0 {
			return fmt.Errorf("loadgen config: Sizes: %d is negative", s)
		}
	}
	return nil
}

// withDefaults validates c and fills in its zero fields.
func (c Config) withDefaults() (Config, error) {
	if err := c.Validate(); err != nil {
		return c, err
	}
	if c.Bucket == "" {
		c.Bucket = DefaultBucket
	}
	if c.Prefix == "" {
		var b [4]byte
		rand.Read(b[:]) // never fails (crypto/rand docs)
		c.Prefix = "bench/" + hex.EncodeToString(b[:]) + "/"
	}
	if len(c.Sizes) == 0 {
		c.Sizes = []int64{DefaultSize}
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Duration == 0 && c.Count == 0 {
		c.Duration = DefaultDuration
	}
	if c.Objects == 0 {
		c.Objects = max(4*c.Concurrency, 1)
		if c.Workload == WorkloadList {
			c.Objects = DefaultListObjects
		}
	}
	return c, nil
}
