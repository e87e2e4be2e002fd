package meta

import (
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are a member's Prometheus metrics; exported only when the config
// names a Registerer.
type metrics struct {
	proposals   *prometheus.CounterVec
	proposalSec prometheus.Histogram
	readSec     prometheus.Histogram
	batchSize   prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, n *Node) *metrics {
	m := &metrics{
		proposals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "clipstore", Subsystem: "meta", Name: "proposals_total",
			Help: "Raft proposals by result: ok, rejected (the command failed validation), not_leader, unknown (outcome unknown).",
		}, []string{"result"}),
		proposalSec: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "clipstore", Subsystem: "meta", Name: "proposal_seconds",
			Help: "Time from proposal to applied on the leader.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		readSec: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "clipstore", Subsystem: "meta", Name: "linearizable_read_wait_seconds",
			Help: "Time a linearizable read waits for its read barrier.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "clipstore", Subsystem: "meta", Name: "apply_batch_entries",
			Help: "Raft entries applied per FSM transaction.", Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
	}
	if reg == nil {
		return m
	}
	leader := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "clipstore", Subsystem: "meta", Name: "is_leader", Help: "1 if this member leads the Raft group.",
	}, func() float64 {
		if n.raft != nil && n.raft.State() == raft.Leader {
			return 1
		}
		return 0
	})
	applied := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "clipstore", Subsystem: "meta", Name: "applied_index", Help: "Raft index of the last entry applied to the FSM.",
	}, func() float64 { return float64(n.fsm.appliedIndex()) })
	reg.MustRegister(m.proposals, m.proposalSec, m.readSec, m.batchSize, leader, applied)
	return m
}

func (m *metrics) proposed(start time.Time, result string) {
	m.proposals.WithLabelValues(result).Inc()
	if result == "ok" || result == "rejected" {
		m.proposalSec.Observe(time.Since(start).Seconds())
	}
}
