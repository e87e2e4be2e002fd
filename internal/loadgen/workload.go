package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"
)

// workload is what the workers of one Workload do.
type workload interface {
	// prepare stores what the operations need; it is not measured.
	prepare(ctx context.Context, b *bench) error
	// op runs operation n in worker w and records it.
	op(ctx context.Context, w *worker, n int64)
}

// putWorkload puts every clip under a new key.
type putWorkload struct{}

func (*putWorkload) prepare(context.Context, *bench) error { return nil }

func (*putWorkload) op(ctx context.Context, w *worker, n int64) {
	w.put(ctx, n)
}

// put runs operation n as a put of a new clip and returns the clip if it
// was stored.
func (w *worker) put(ctx context.Context, n int64) (clip, bool) {
	c := clip{key: fmt.Sprintf("%sput/%09d", w.b.cfg.Prefix, n), size: w.b.size(n)}
	w.reader.Reset(c.key, c.size)
	start := time.Now()
	err := w.b.put(ctx, w.reader, c)
	w.record(OpPut, c.size, c.key, start, outcome{bytes: c.size}, err)
	return c, err == nil
}

// getWorkload reads prepared clips picked at random: whole, or a random
// range of each.
type getWorkload struct {
	clips [][]clip // by size index
}

func (g *getWorkload) prepare(ctx context.Context, b *bench) (err error) {
	g.clips, err = b.prepareClips(ctx)
	return err
}

func (g *getWorkload) op(ctx context.Context, w *worker, n int64) {
	clips := g.clips[n%int64(len(g.clips))]
	c := clips[w.rng.IntN(len(clips))]
	if w.b.cfg.Range > 0 {
		w.getRange(ctx, c)
		return
	}
	w.get(ctx, c)
}

// get reads clip c whole through the verifier.
func (w *worker) get(ctx context.Context, c clip) {
	w.verifier.Reset(c.key, c.size)
	start := time.Now()
	size, err := w.b.store.Get(ctx, w.b.cfg.Bucket, c.key, w.verifier)
	if err == nil {
		err = w.verifier.Err()
	}
	if err == nil && size != c.size {
		err = fmt.Errorf("%w: the record says %d bytes, %d were written", ErrContent, size, c.size)
	}
	w.record(OpGet, c.size, c.key, start, outcome{bytes: c.size, verified: w.verifier.Verified()}, err)
}

// getRange reads a random range of Config.Range bytes of clip c (all of
// it if it is shorter) with Store.ReadAt, and checks it.
func (w *worker) getRange(ctx context.Context, c clip) {
	p := w.buf[:min(int64(len(w.buf)), c.size)]
	off := w.rng.Int64N(c.size - int64(len(p)) + 1)
	start := time.Now()
	n, err := w.readAt(ctx, c, p, off)
	if err == nil {
		if i := w.b.check.Mismatch(c.key, off, p); i >= 0 {
			err = fmt.Errorf("%w: byte %d of %d differs", ErrContent, off+int64(i), c.size)
		}
	}
	w.record(OpGet, c.size, c.key, start, outcome{bytes: int64(n), verified: int64(n)}, err)
}

// readAt reads len(p) bytes of clip c at off into p.
func (w *worker) readAt(ctx context.Context, c clip, p []byte, off int64) (int, error) {
	n, size, err := w.b.store.ReadAt(ctx, w.b.cfg.Bucket, c.key, p, off)
	short := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	switch {
	case err != nil && !short:
	case size != c.size:
		err = fmt.Errorf("%w: the record says %d bytes, %d were written", ErrContent, size, c.size)
	case n != len(p):
		err = fmt.Errorf("%w: %d of %d bytes read at %d", ErrContent, n, len(p), off)
	default:
		err = nil // io.EOF with every byte read
	}
	if err != nil {
		return 0, fmt.Errorf("read [%d, +%d): %w", off, len(p), err)
	}
	return n, nil
}

// mixedWorkload runs, as warp's mixed benchmark does, 45% gets, 30% stats,
// 15% puts of new clips and 10% deletes of the run's clips. Gets and stats
// pick among the clips alive; a clip being read is never deleted.
type mixedWorkload struct {
	live liveSet
}

// The share of each operation in the mixed workload, in percent.
const (
	mixedGet    = 45
	mixedStat   = 30
	mixedPut    = 15
	mixedDelete = 10
)

func (m *mixedWorkload) prepare(ctx context.Context, b *bench) error {
	clips, err := b.prepareClips(ctx)
	for _, cs := range clips {
		for _, c := range cs {
			m.live.add(c)
		}
	}
	return err
}

func (m *mixedWorkload) op(ctx context.Context, w *worker, n int64) {
	switch r := w.rng.IntN(mixedGet + mixedStat + mixedPut + mixedDelete); {
	case r < mixedGet:
		if c := m.live.lease(w.rng); c != nil {
			defer m.live.release(c)
			w.get(ctx, c.clip)
			return
		}
	case r < mixedGet+mixedStat:
		if c := m.live.lease(w.rng); c != nil {
			defer m.live.release(c)
			w.stat(ctx, c.clip)
			return
		}
	case r >= mixedGet+mixedStat+mixedPut:
		if c := m.live.take(w.rng); c != nil {
			w.delete(ctx, c.clip)
			return
		}
	}
	// A put, or an operation that found no clip to work on.
	if c, ok := w.put(ctx, n); ok {
		m.live.add(c)
	}
}

// stat reads clip c's record and checks its size.
func (w *worker) stat(ctx context.Context, c clip) {
	start := time.Now()
	size, err := w.b.store.Stat(ctx, w.b.cfg.Bucket, c.key)
	if err == nil && size != c.size {
		err = fmt.Errorf("the record says %d bytes, %d were written", size, c.size)
	}
	w.record(OpStat, c.size, c.key, start, outcome{}, err)
}

// delete deletes clip c.
func (w *worker) delete(ctx context.Context, c clip) {
	start := time.Now()
	err := w.b.store.Delete(ctx, w.b.cfg.Bucket, c.key)
	if err == nil {
		w.b.keys.remove(c.key)
	}
	w.record(OpDelete, c.size, c.key, start, outcome{}, err)
}

// liveSet holds the clips of a mixed run that exist, with how many
// operations are reading each.
type liveSet struct {
	mu struct {
		sync.Mutex
		clips []*liveClip
	}
}

type liveClip struct {
	clip
	readers int
}

// takeTries is how many clips take looks at before giving up.
const takeTries = 8

func (s *liveSet) add(c clip) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.clips = append(s.mu.clips, &liveClip{clip: c})
}

// lease picks a clip at random and holds it against deletion until
// release; nil if there is none.
func (s *liveSet) lease(rng *rand.Rand) *liveClip {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.mu.clips) == 0 {
		return nil
	}
	c := s.mu.clips[rng.IntN(len(s.mu.clips))]
	c.readers++
	return c
}

func (s *liveSet) release(c *liveClip) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.readers--
}

// take removes a clip picked at random that no one is reading; nil if it
// finds none.
func (s *liveSet) take(rng *rand.Rand) *liveClip {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range takeTries {
		if len(s.mu.clips) == 0 {
			return nil
		}
		i := rng.IntN(len(s.mu.clips))
		if c := s.mu.clips[i]; c.readers == 0 {
			last := len(s.mu.clips) - 1
			s.mu.clips[i] = s.mu.clips[last]
			s.mu.clips = s.mu.clips[:last]
			return c
		}
	}
	return nil
}

// listWorkload lists the prefix of the prepared clips, whole, again and
// again; a listing without every prepared clip is a failure.
type listWorkload struct {
	want map[string]int64 // prepared clips: key -> size
}

func (l *listWorkload) prepare(ctx context.Context, b *bench) error {
	clips, err := b.prepareClips(ctx)
	l.want = map[string]int64{}
	for _, cs := range clips {
		for _, c := range cs {
			l.want[c.key] = c.size
		}
	}
	return err
}

func (l *listWorkload) op(ctx context.Context, w *worker, _ int64) {
	prefix := w.b.cfg.Prefix
	start := time.Now()
	var entries, found int64
	var err error
	for e, lerr := range w.b.store.List(ctx, w.b.cfg.Bucket, prefix) {
		if lerr != nil {
			err = lerr
			break
		}
		entries++
		if size, ok := l.want[e.Key]; ok {
			found++
			if e.Size != size {
				err = fmt.Errorf("%s is listed with %d bytes, %d were written", e.Key, e.Size, size)
				break
			}
		}
	}
	if err == nil && found < int64(len(l.want)) {
		err = fmt.Errorf("listing has %d of the %d clips stored", found, len(l.want))
	}
	w.record(OpList, 0, w.b.cfg.Bucket+"/"+prefix, start, outcome{entries: entries}, err)
}
