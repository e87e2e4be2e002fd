package server

import (
	"errors"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// lossCause says which of the node's checks found a shard lost.
type lossCause int

const (
	lostByScrub     lossCause = iota // a scrub pass found its file gone
	lostByInventory                  // the inventory's file audit, or garbage collection, found it gone
	lostByRead                       // a read (a client's, a repair's, fsck's) found it gone
	lossCauses
)

var lossCauseNames = [lossCauses]string{"scrub", "inventory", "read"}

// LossCounts counts the shards the node found lost since it started, by
// the check that found them.
type LossCounts struct {
	Scrub, Inventory, Read uint64
}

// losses counts the shards the node found lost, and exports the counts.
type losses struct {
	counts [lossCauses]atomic.Uint64
	metric *prometheus.CounterVec
}

func newLosses(reg prometheus.Registerer) *losses {
	l := &losses{metric: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "clipstore", Subsystem: "storage", Name: "lost_shards_total",
		Help: "Shards whose files were found gone behind the node's back (not deleted by it), by the check " +
			"that found them: scrub, inventory or read. Each is reported missing to meta and repaired.",
	}, []string{"found_by"})}
	for _, name := range lossCauseNames {
		l.metric.WithLabelValues(name) // every series exists from the start
	}
	if reg != nil {
		reg.MustRegister(l.metric)
	}
	return l
}

// LossCounts reports the shards the node found lost since it started.
func (n *Node) LossCounts() LossCounts {
	c := &n.losses.counts
	return LossCounts{Scrub: c[lostByScrub].Load(), Inventory: c[lostByInventory].Load(), Read: c[lostByRead].Load()}
}

// shardsLost counts shards found lost and reports them missing to meta, which
// has them rebuilt (a stand-alone node only counts them).
func (n *Node) shardsLost(ids []ShardID, by lossCause) {
	if len(ids) == 0 {
		return
	}
	n.losses.counts[by].Add(uint64(len(ids)))
	n.losses.metric.WithLabelValues(lossCauseNames[by]).Add(float64(len(ids)))
	n.log.Warn("shard files lost behind the node's back; reporting them missing", "found_by", lossCauseNames[by],
		"shards", len(ids), "first", ids[0])
	if n.hb != nil {
		n.hb.reportMissing(ids)
	}
}

// noteDamage reports what a read of shard id met: a file lost, or a
// corrupt header or piece.
func (n *Node) noteDamage(id ShardID, err error) {
	var corrupt *CorruptPieceError
	switch {
	case errors.Is(err, ErrShardLost):
		n.shardsLost([]ShardID{id}, lostByRead)
	case (errors.Is(err, ErrCorrupt) || errors.As(err, &corrupt)) && n.hb != nil:
		n.hb.reportCorrupt([]ShardID{id})
	}
}
