package meta

import (
	"testing"
	"time"
)

// TestRepairRateWindow: the rate is the last minute's bytes over the
// minute, or over the leadership while it is younger (at least a second);
// a second's bytes leave the window a minute later; reset forgets all.
func TestRepairRateWindow(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	p := newRepairProgress()
	p.reset(t0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	steps := []struct {
		record  uint64 // bytes repaired at the step's time, if any
		at      time.Duration
		rate    float64
		shards  uint64
		queued  uint64
		eta     float64 // -1: unknown
		comment string
	}{
		{at: 0, rate: 0, queued: 100, eta: -1, comment: "nothing yet: the ETA is unknown"},
		{at: 0, rate: 0, queued: 0, eta: 0, comment: "nothing queued: done"},
		{record: 600, at: 500 * time.Millisecond, rate: 600, shards: 1, queued: 600, eta: 1, comment: "half a second in: over one second"},
		{record: 600, at: 10 * time.Second, rate: 120, shards: 2, queued: 1200, eta: 10, comment: "over the 10 s of leadership"},
		{at: 30 * time.Second, rate: 40, shards: 2, queued: 40, eta: 1, comment: "over 30 s"},
		{at: 60*time.Second + 400*time.Millisecond, rate: 10, shards: 2, queued: 10, eta: 1, comment: "the first second left the window"},
		{at: 70*time.Second + 500*time.Millisecond, rate: 0, shards: 2, queued: 10, eta: -1, comment: "both left: unknown again"},
	}
	for _, s := range steps {
		if s.record > 0 {
			p.record(at(s.at), s.record)
		}
		f := p.figures(at(s.at))
		if f.bytesPerSec != s.rate || f.shards != s.shards || !f.since.Equal(t0) {
			t.Errorf("%s: rate %v, %d shards since %v; want %v, %d since %v", s.comment, f.bytesPerSec, f.shards, f.since, s.rate, s.shards, t0)
		}
		eta := f.eta(s.queued)
		switch {
		case s.eta < 0 && eta != nil:
			t.Errorf("%s: ETA %v, want unknown", s.comment, *eta)
		case s.eta >= 0 && (eta == nil || *eta != s.eta):
			t.Errorf("%s: ETA %v, want %v", s.comment, eta, s.eta)
		}
	}
	p.reset(at(time.Hour))
	p.record(at(time.Hour+time.Second), 5)
	if f := p.figures(at(time.Hour + 2*time.Second)); f.shards != 1 || f.bytes != 5 || f.bytesPerSec != 2.5 {
		t.Errorf("after a reset: %+v, want 1 shard, 5 bytes at 2.5 B/s", f)
	}
}
