// Package metacall is the one way clipstore processes call the meta group:
// the client library for its records and the storage node for heartbeats,
// inventory, garbage collection and repair commits.
//
// Any member answers any call (followers forward writes and linearizable
// reads to the leader), but a call sent to the leader saves a hop, and a
// member that hangs (a stalled disk, a long pause, a frozen VM) answers
// nothing at all. So a Caller sends each call to the member it believes
// leads, learned from answers: every meta answer names the leader in its
// header (LeaderHeader), and a NOT_LEADER error carries the leader the
// member knows of. Every attempt has its own deadline; an attempt that
// fails with a retryable error or times out moves on to the next member at
// once, pausing (with jitter) only between attempts that got an answer, so
// that a frozen member costs one attempt deadline, not a call's whole
// budget. A write retried this way carries the same request id, and meta
// answers a retry with the first outcome.
package metacall

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clipstore/clipstore/internal/conns"
	"github.com/clipstore/clipstore/internal/rpcerr"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// LeaderHeader is the response header in which a meta member names the
// gRPC address of the leader it knows of (absent when it knows none).
const LeaderHeader = "clipstore-leader"

// Config configures a Caller.
type Config struct {
	// Members are the meta members' gRPC addresses.
	Members []string
	// Conns is the owner's connection cache; the Caller does not close it.
	Conns *conns.Cache
	// AttemptTimeout bounds each attempt (SetAttemptTimeout changes it).
	AttemptTimeout time.Duration
	// Attempts bounds the attempts of one call (at least 1).
	Attempts int
	// Backoff is the pause before attempt n+1 after attempt n got a
	// retryable answer; nil: Backoff.
	Backoff func(attempt int) time.Duration
	// Observe, if set, hears of every attempt: the member asked, how long
	// it took and its error (nil on success), for metrics.
	Observe func(member string, took time.Duration, err error)
}

// Backoff is the default pause between attempts: 25 ms doubling up to
// 2 s, with full jitter over its upper half. Sixteen retries span about
// 20 s, enough for a leader election and its warm-up.
func Backoff(attempt int) time.Duration {
	d := 25 * time.Millisecond << min(attempt, 7)
	d = min(d, 2*time.Second)
	return d/2 + rand.N(d/2+1)
}

// Caller calls the meta group. It is safe for concurrent use.
type Caller struct {
	cfg Config
	*state
}

// state is what a Caller learns; the Callers WithAttempts makes share it.
type state struct {
	timeout atomic.Int64 // per attempt, in nanoseconds

	mu struct {
		sync.Mutex
		leader string // the address believed to lead; "" unknown
		next   int    // the member to try when no leader is known
	}
}

// New returns a Caller for cfg.
func New(cfg Config) (*Caller, error) {
	switch {
	case len(cfg.Members) == 0:
		return nil, errors.New("metacall: no meta member address")
	case cfg.Conns == nil:
		return nil, errors.New("metacall: no connection cache")
	case cfg.AttemptTimeout <= 0 || cfg.Attempts < 1:
		return nil, fmt.Errorf("metacall: attempt timeout %v and attempts %d must be positive", cfg.AttemptTimeout, cfg.Attempts)
	}
	if cfg.Backoff == nil {
		cfg.Backoff = Backoff
	}
	c := &Caller{cfg: cfg, state: &state{}}
	c.timeout.Store(int64(cfg.AttemptTimeout))
	return c, nil
}

// WithAttempts returns a Caller that makes at most n attempts per call and
// shares everything else with c: what it learns of the leader, the attempt
// deadline.
func (c *Caller) WithAttempts(n int) *Caller {
	cfg := c.cfg
	cfg.Attempts = max(n, 1)
	return &Caller{cfg: cfg, state: c.state}
}

// WithObserver returns a Caller that reports its attempts to observe and
// shares everything else with c.
func (c *Caller) WithObserver(observe func(member string, took time.Duration, err error)) *Caller {
	cfg := c.cfg
	cfg.Observe = observe
	return &Caller{cfg: cfg, state: c.state}
}

// Members returns how many members the Caller knows.
func (c *Caller) Members() int { return len(c.cfg.Members) }

// SetAttemptTimeout changes the deadline of each attempt from now on.
func (c *Caller) SetAttemptTimeout(d time.Duration) {
	if d > 0 {
		c.timeout.Store(int64(d))
	}
}

// AttemptTimeout is the deadline of each attempt.
func (c *Caller) AttemptTimeout() time.Duration { return time.Duration(c.timeout.Load()) }

// Leader returns the address of the member believed to lead, "" if none.
func (c *Caller) Leader() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.leader
}

// Call makes one call, with the attempts and deadlines the Caller is
// configured for. It returns the first answer that is not retryable (an
// error the caller acts on, with its gRPC status), the last error when the
// attempts run out, or ctx's error.
func Call[Resp any](ctx context.Context, c *Caller,
	call func(context.Context, pb.MetaServiceClient) (Resp, error)) (Resp, error) {
	var zero Resp
	var err error
	var tried []string // this round's members
	for attempt := 0; attempt < c.cfg.Attempts; attempt++ {
		addr := c.pick(tried)
		if slices.Contains(tried, addr) {
			tried = tried[:0] // every member had its turn: a new round
		}
		tried = append(tried, addr)
		var resp Resp
		var answered bool
		resp, answered, err = try(ctx, c, addr, call)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return zero, fmt.Errorf("%w (last answer: %v)", ctx.Err(), err)
		}
		if !Retryable(err) {
			return zero, err
		}
		redirected := c.failed(addr, err)
		// A member that did not answer is passed over at once, unless every
		// member had its turn; one that answered "not now" is asked again
		// after a pause, unless it named another leader.
		roundDone := len(tried) >= len(c.cfg.Members)
		if ((answered && !redirected) || roundDone) && attempt+1 < c.cfg.Attempts {
			if serr := sleep(ctx, c.cfg.Backoff(attempt)); serr != nil {
				return zero, fmt.Errorf("%w (last answer: %v)", serr, err)
			}
		}
	}
	return zero, err
}

// try makes one attempt on addr under the attempt deadline. answered is
// false when the member did not answer in time or could not be reached.
func try[Resp any](ctx context.Context, c *Caller, addr string,
	call func(context.Context, pb.MetaServiceClient) (Resp, error)) (resp Resp, answered bool, err error) {
	cc, err := c.cfg.Conns.Get(addr)
	if err != nil {
		return resp, false, status.Error(codes.Unavailable, err.Error())
	}
	actx, cancel := context.WithTimeout(ctx, c.AttemptTimeout())
	defer cancel()
	hc := &headerConn{cc: cc}
	start := time.Now()
	resp, err = call(actx, pb.NewMetaServiceClient(hc))
	if c.cfg.Observe != nil {
		c.cfg.Observe(addr, time.Since(start), err)
	}
	if err == nil {
		c.answered(addr, hc.hdr)
		return resp, true, nil
	}
	code := status.Code(err)
	answered = code != codes.DeadlineExceeded && !(code == codes.Unavailable && rpcerr.Info(err) == nil)
	return resp, answered, err
}

// headerConn keeps the header of the unary call made through it.
type headerConn struct {
	cc  grpc.ClientConnInterface
	hdr metadata.MD
}

func (h *headerConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return h.cc.Invoke(ctx, method, args, reply, append(opts, grpc.Header(&h.hdr))...)
}

func (h *headerConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return h.cc.NewStream(ctx, desc, method, opts...)
}

// Retryable reports whether a call that failed with err may be tried again
// (on another member): the member had no leader, was shutting down, or did
// not answer in time. A write whose outcome is unknown is retryable too: it
// carries its request id.
func Retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted:
		return true
	}
	return false
}

// pick returns the member to try next: the leader, unless this round tried
// it already, else the next configured member not tried this round.
func (c *Caller) pick(tried []string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.leader != "" && !slices.Contains(tried, c.mu.leader) {
		return c.mu.leader
	}
	for range c.cfg.Members {
		addr := c.cfg.Members[c.mu.next%len(c.cfg.Members)]
		if !slices.Contains(tried, addr) {
			return addr
		}
		c.mu.next++
	}
	return c.cfg.Members[c.mu.next%len(c.cfg.Members)]
}

// answered learns the leader from a successful answer: the one its header
// names, else the member that answered (any member answers; the next call
// goes there first).
func (c *Caller) answered(addr string, hdr metadata.MD) {
	leader := addr
	if v := hdr.Get(LeaderHeader); len(v) > 0 && v[0] != "" {
		leader = v[0]
	}
	c.mu.Lock()
	c.mu.leader = leader
	c.mu.Unlock()
}

// failed forgets addr as the leader and moves past it, or follows the
// leader hint of a NOT_LEADER answer. It reports whether it followed one.
func (c *Caller) failed(addr string, err error) (redirected bool) {
	hint := ""
	if info := rpcerr.Info(err); info != nil && rpcerr.Reason(info.Reason) == rpcerr.NotLeader {
		hint = info.Metadata[rpcerr.LeaderAddress]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if hint != "" && hint != addr {
		c.mu.leader = hint
		return true
	}
	if c.mu.leader == addr {
		c.mu.leader = ""
	}
	if c.cfg.Members[c.mu.next%len(c.cfg.Members)] == addr {
		c.mu.next++
	}
	return false
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
