package meta

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// readBatcher turns linearizable reads into Raft barriers, one barrier per
// batch of concurrent reads. A barrier is an entry the leader must commit
// in its current term, so it proves leadership at a point after every
// waiting read started, and raft returns from it only once the FSM has
// applied everything before it. Raft's own no-op and barrier entries never
// reach the FSM, so waiting on the FSM's applied index alone could hang on
// an idle cluster; a barrier cannot.
type readBatcher struct {
	raft    *raft.Raft
	timeout time.Duration

	mu      sync.Mutex
	waiting []chan error
	running bool
	closed  bool
	wg      sync.WaitGroup
}

func newReadBatcher(r *raft.Raft, timeout time.Duration) *readBatcher {
	return &readBatcher{raft: r, timeout: timeout}
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
		err := b.raft.Barrier(b.timeout).Error()
		if err != nil {
			if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
				err = fmt.Errorf("%w: %v", ErrNotLeader, err)
			} else {
				err = fmt.Errorf("%w: read barrier: %v", ErrUnavailable, err)
			}
		}
		for _, ch := range batch {
			ch <- err
		}
	}
}

func (b *readBatcher) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.wg.Wait()
}
