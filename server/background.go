package server

import (
	"context"
	"sync"
)

// background owns the node's long-running goroutines (the heartbeater, the
// repair workers, the scrubber, the garbage collector) and the synchronous
// runs of the same work (Node.ScrubNow, Node.CollectGarbage, Node.Repair):
// stop cancels all of them and waits for them.
type background struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu struct {
		sync.Mutex
		stopped bool
	}
}

func newBackground() *background {
	b := &background{}
	// Its lifetime is the node's: Shutdown cancels it.
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b
}

// start runs f on a goroutine of its own, unless stopped.
func (b *background) start(f func(ctx context.Context)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mu.stopped {
		return
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		f(b.ctx)
	}()
}

// runNow runs f on the calling goroutine with a context that also ends at
// stop; after stop it returns ErrClosed.
func (b *background) runNow(ctx context.Context, f func(ctx context.Context) error) error {
	b.mu.Lock()
	if b.mu.stopped {
		b.mu.Unlock()
		return ErrClosed
	}
	b.wg.Add(1)
	b.mu.Unlock()
	defer b.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(b.ctx, cancel)
	defer stop()
	return f(ctx)
}

// stop cancels the goroutines and the runs in progress and waits for them.
func (b *background) stop() {
	b.mu.Lock()
	b.mu.stopped = true
	b.mu.Unlock()
	b.cancel()
	b.wg.Wait()
}
