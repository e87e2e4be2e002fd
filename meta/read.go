package meta

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// readBatcher confirms linearizable reads, one confirmation per batch of
// concurrent reads, with Raft's read index (§6.4 of Ongaro's thesis):
//
//   - The first batch of a leadership runs a Barrier: an entry the leader
//     commits in its own term, which brings its commit index up to date
//     (a new leader's may lag until it commits an entry of its term), and
//     raft returns from it only once the FSM applied everything before it.
//   - Later batches take the commit index, confirm leadership with
//     VerifyLeader (a heartbeat round to a quorum, no log write, no fsync),
//     and wait until the FSM has applied every entry up to that index that
//     reaches it. Raft's no-op and barrier entries never reach the FSM, so
//     the wait is for the last command or configuration entry at or below
//     the index, found in the log: waiting for the FSM's applied index to
//     reach the commit index itself could hang on an idle cluster.
//
// VerifyLeader counts any follower answer that arrives after it is called,
// including the answer to a heartbeat sent a moment before, so it proves
// leadership as of up to one round trip before the read began, not after.
// That is enough: a follower that answered a heartbeat refuses to vote for
// anyone else until its heartbeat timeout has passed without one, so no
// other leader can have committed anything the read would miss as long as
// an answer takes less than the heartbeat timeout (1 s by default) to
// arrive. etcd's ReadIndex tags its heartbeats to do without that bound;
// raft does not let us tag ours.
type readBatcher struct {
	raft    *raft.Raft
	timeout time.Duration
	// applied waits until the FSM has applied every entry up to index that
	// reaches it, or deadline passes.
	applied func(index uint64, deadline time.Time) error

	term uint64 // the term whose leadership a Barrier confirmed; read by run only

	mu      sync.Mutex
	waiting []chan error
	running bool
	closed  bool
	wg      sync.WaitGroup
}

func newReadBatcher(r *raft.Raft, timeout time.Duration, applied func(uint64, time.Time) error) *readBatcher {
	return &readBatcher{raft: r, timeout: timeout, applied: applied}
}

// wait blocks until a barrier that started after the call completes.
func (b *readBatcher) wait(ctx context.Context) error {
	ch := make(chan error, 1)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrShutdown
	}
	b.waiting = append(b.waiting, ch)
	if !b.running {
		b.running = true
		b.wg.Add(1)
		go b.run()
	}
	b.mu.Unlock()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run issues barriers until no reads wait.
func (b *readBatcher) run() {
	defer b.wg.Done()
	for {
		b.mu.Lock()
		batch := b.waiting
		b.waiting = nil
		if len(batch) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		err := b.confirm()
		for _, ch := range batch {
			ch <- err
		}
	}
}

// confirm proves, after every waiting read started, that this member leads
// and its FSM holds every write acknowledged so far.
func (b *readBatcher) confirm() error {
	term := b.raft.CurrentTerm()
	if term != b.term {
		if err := b.raft.Barrier(b.timeout).Error(); err != nil {
			return readError("read barrier", err)
		}
		b.term = term
		return nil
	}
	index := b.raft.CommitIndex()
	if err := b.raft.VerifyLeader().Error(); err != nil {
		return readError("verify leadership", err)
	}
	return b.applied(index, time.Now().Add(b.timeout))
}

func readError(what string, err error) error {
	if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrUnavailable, what, err)
}

func (b *readBatcher) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.wg.Wait()
}

// waitApplied waits until the FSM has applied every entry up to index that
// reaches it (commands and configuration changes), or deadline passes.
func (n *Node) waitApplied(index uint64, deadline time.Time) error {
	need, err := n.lastFSMEntry(index)
	if err != nil {
		return fmt.Errorf("%w: read index: %v", ErrUnavailable, err)
	}
	return n.fsm.waitApplied(need, deadline)
}

// lastFSMEntry returns the index of the last entry at or below index that
// reaches the FSM and that it has not applied yet, 0 if there is none. It
// reads the log backwards from index; the entries above the FSM's applied
// index are all in the log (compaction keeps what follows the snapshot,
// which the FSM holds).
func (n *Node) lastFSMEntry(index uint64) (uint64, error) {
	applied := n.fsm.appliedIndex()
	var l raft.Log
	for i := index; i > applied; i-- {
		if err := n.stores.logs.GetLog(i, &l); err != nil {
			return 0, fmt.Errorf("log entry %d: %w", i, err)
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return i, nil
		}
	}
	return 0, nil
}
