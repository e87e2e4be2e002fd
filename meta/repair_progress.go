package meta

import (
	"sync"
	"time"

	pb "github.com/clipstore/clipstore/proto/metapb"
)

// rateWindow is how far back the repair rate looks, in one-second buckets.
const rateWindow = 60

// repairProgress counts the repairs that finished under this leader. Like
// liveness it lives only in the leader's memory and starts afresh at every
// won election: a repair counts when the conditional update of a task this
// leader planned commits.
//
// The rate is a sliding window: the bytes rebuilt in the last minute, kept
// in one-second buckets, over the minute (or over the leadership, when it
// is younger). Unlike an exponentially weighted average it reads plainly
// ("what the last minute did"), falls to zero a minute after repair stops,
// and a burst leaves it exactly a minute later.
type repairProgress struct {
	mu struct {
		sync.Mutex
		since         time.Time // when this leadership began
		shards, bytes uint64
		window        [rateWindow]rateBucket
	}
}

// rateBucket holds the bytes rebuilt in one second; a bucket whose second
// has left the window is stale and counts nothing.
type rateBucket struct {
	sec   int64 // Unix second
	bytes uint64
}

// repairFigures is a snapshot of repairProgress.
type repairFigures struct {
	since         time.Time
	shards, bytes uint64
	bytesPerSec   float64
}

func newRepairProgress() *repairProgress { return &repairProgress{} }

// reset forgets every figure: called when leadership is won.
func (p *repairProgress) reset(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.since, p.mu.shards, p.mu.bytes = now, 0, 0
	p.mu.window = [rateWindow]rateBucket{}
}

// record counts one repair that rebuilt n bytes.
func (p *repairProgress) record(now time.Time, n uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.shards++
	p.mu.bytes += n
	sec := now.Unix()
	b := &p.mu.window[modSec(sec)]
	if b.sec != sec {
		*b = rateBucket{sec: sec}
	}
	b.bytes += n
}

func (p *repairProgress) figures(now time.Time) repairFigures {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := repairFigures{since: p.mu.since, shards: p.mu.shards, bytes: p.mu.bytes}
	var sum uint64
	sec := now.Unix()
	for _, b := range p.mu.window {
		if age := sec - b.sec; age >= 0 && age < rateWindow {
			sum += b.bytes
		}
	}
	// Over the window, or the leadership if it is younger, but at least a
	// second: a repair that lands just after an election is no spike.
	span := min(rateWindow*time.Second, now.Sub(p.mu.since))
	f.bytesPerSec = float64(sum) / max(span, time.Second).Seconds()
	return f
}

func modSec(sec int64) int {
	i := int(sec % rateWindow)
	if i < 0 {
		i += rateWindow
	}
	return i
}

// fill sets the response's repair figures and the ETA of its queue, which
// is unknown (unset) when there is a queue and no recent repair.
func (f repairFigures) fill(resp *pb.ClusterStatusResponse) {
	if !f.since.IsZero() {
		resp.RepairStatsSinceUnixNano = f.since.UnixNano()
	}
	resp.RepairedShards, resp.RepairedBytes = f.shards, f.bytes
	resp.RepairBytesPerSec = f.bytesPerSec
	resp.RepairEtaSeconds = f.eta(resp.RepairQueueBytes)
}

// eta is the time left to rebuild queued bytes at the current rate; nil
// when unknown (bytes queued, rate 0).
func (f repairFigures) eta(queued uint64) *float64 {
	var eta float64
	switch {
	case queued == 0:
	case f.bytesPerSec > 0:
		eta = float64(queued) / f.bytesPerSec
	default:
		return nil
	}
	return &eta
}

// repairLanded counts a finished repair or move task. The caller holds
// repairs.mu and removes the task, so a task counts once, whichever notices
// first: the leader's UpdateShard handler or the planner retiring it.
func (n *Node) repairLanded(t *repairTask, length uint64, now time.Time) {
	if t.move {
		n.moves.record(now, length)
		n.metrics.movedShards.Inc()
		n.metrics.movedBytes.Add(float64(length))
		return
	}
	n.progress.record(now, length)
	n.metrics.repairedShards.Inc()
	n.metrics.repairedBytes.Add(float64(length))
}
