package server

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// lossCause says which of the node's checks found a shard lost or corrupt.
type lossCause int

const (
	lostByScrub     lossCause = iota // a scrub pass found its file gone
	lostByInventory                  // the inventory's file audit, or garbage collection, found it gone
	lostByRead                       // a read (a client's, a repair's, fsck's) found it gone
	lossCauses
)

var lossCauseNames = [lossCauses]string{"scrub", "inventory", "read"}

// LossCounts counts shards, by the check that found them.
type LossCounts struct {
	Scrub, Inventory, Read uint64
}

// losses counts the shards the node found lost, and those it found
// corrupt, and exports the counts.
type losses struct {
	lost, corrupt             [lossCauses]atomic.Uint64
	lostMetric, corruptMetric *prometheus.CounterVec
	// counted holds the corrupt shards already counted, so that one found
	// again (by the next pass, until it is replaced and collected) counts
	// once. Shard ids are never reused: a stale entry only costs memory,
	// and the set starts afresh past maxCountedCorrupt.
	mu      sync.Mutex
	counted map[ShardID]struct{}
}

// maxCountedCorrupt bounds the set of corrupt shards counted.
const maxCountedCorrupt = 100_000

// fresh drops the ids already counted corrupt from ids, and remembers the
// rest.
func (l *losses) fresh(ids []ShardID) []ShardID {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counted == nil || len(l.counted) > maxCountedCorrupt {
		l.counted = map[ShardID]struct{}{}
	}
	var out []ShardID
	for _, id := range ids {
		if _, ok := l.counted[id]; !ok {
			l.counted[id] = struct{}{}
			out = append(out, id)
		}
	}
	return out
}

func newLosses(reg prometheus.Registerer) *losses {
	l := &losses{
		lostMetric: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "clipstore", Subsystem: "storage", Name: "lost_shards_total",
			Help: "Shards whose files were found gone behind the node's back (not deleted by it), by the check " +
				"that found them: scrub, inventory or read. Each is reported missing to meta and repaired.",
		}, []string{"found_by"}),
		corruptMetric: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "clipstore", Subsystem: "storage", Name: "corrupt_shards_found_total",
			Help: "Shards found corrupt (a piece failing its checksum, an unreadable sector, a file whose size " +
				"changed), once each, by the check that found it first: scrub, inventory or read. " +
				"Each is reported to meta and repaired.",
		}, []string{"found_by"}),
	}
	for _, name := range lossCauseNames { // every series exists from the start
		l.lostMetric.WithLabelValues(name)
		l.corruptMetric.WithLabelValues(name)
	}
	if reg != nil {
		reg.MustRegister(l.lostMetric, l.corruptMetric)
	}
	return l
}

func counts(c *[lossCauses]atomic.Uint64) LossCounts {
	return LossCounts{Scrub: c[lostByScrub].Load(), Inventory: c[lostByInventory].Load(), Read: c[lostByRead].Load()}
}

// LossCounts reports the shards the node found lost since it started.
func (n *Node) LossCounts() LossCounts { return counts(&n.losses.lost) }

// CorruptCounts reports the shards the node found corrupt since it started.
func (n *Node) CorruptCounts() LossCounts { return counts(&n.losses.corrupt) }

// shardsLost counts shards found lost and reports them missing to meta, which
// has them rebuilt (a stand-alone node only counts them).
func (n *Node) shardsLost(ids []ShardID, by lossCause) {
	if len(ids) == 0 {
		return
	}
	n.losses.lost[by].Add(uint64(len(ids)))
	n.losses.lostMetric.WithLabelValues(lossCauseNames[by]).Add(float64(len(ids)))
	n.log.Warn("shard files lost behind the node's back; reporting them missing", "found_by", lossCauseNames[by],
		"shards", len(ids), "first", ids[0])
	if n.hb != nil {
		n.hb.reportMissing(ids)
	}
}

// shardsCorrupt counts shards found corrupt (once each, by the check that
// found it first) and reports them to meta, which
// has them rebuilt (a stand-alone node only counts them).
func (n *Node) shardsCorrupt(ids []ShardID, by lossCause) {
	if len(ids) == 0 {
		return
	}
	fresh := n.losses.fresh(ids)
	n.losses.corrupt[by].Add(uint64(len(fresh)))
	n.losses.corruptMetric.WithLabelValues(lossCauseNames[by]).Add(float64(len(fresh)))
	if n.hb != nil {
		n.hb.reportCorrupt(ids)
	}
}

// noteDamage reports what a read of shard id met: a file lost, or a
// corrupt header or piece.
func (n *Node) noteDamage(id ShardID, err error) {
	var corrupt *CorruptPieceError
	switch {
	case errors.Is(err, ErrShardLost):
		n.shardsLost([]ShardID{id}, lostByRead)
	case errors.Is(err, ErrCorrupt) || errors.As(err, &corrupt):
		n.shardsCorrupt([]ShardID{id}, lostByRead)
	}
}
