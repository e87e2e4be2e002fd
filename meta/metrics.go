package meta

import (
	"time"

	pb "github.com/clipstore/clipstore/proto/metapb"
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
	// Repairs whose update committed while this member led.
	repairedShards, repairedBytes prometheus.Counter
	movedShards, movedBytes       prometheus.Counter
	// Storage nodes this member marked down as leader.
	markedDown prometheus.Counter
	// The mass-down guard as this member saw it last as leader.
	holdActive, holdRemaining, holdNodes prometheus.Gauge
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
		repairedShards: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "clipstore", Subsystem: "meta", Name: "repaired_shards_total",
			Help: "Lost shards rebuilt: repair tasks this member planned as leader whose update committed.",
		}),
		repairedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "clipstore", Subsystem: "meta", Name: "repaired_bytes_total",
			Help: "Piece bytes of the shards counted by clipstore_meta_repaired_shards_total.",
		}),
		movedShards: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "clipstore", Subsystem: "meta", Name: "moved_shards_total",
			Help: "Shards moved (drains and rebalancing): move tasks this member planned as leader whose update committed.",
		}),
		movedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "clipstore", Subsystem: "meta", Name: "moved_bytes_total",
			Help: "Piece bytes of the shards counted by clipstore_meta_moved_shards_total.",
		}),
		markedDown: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "clipstore", Subsystem: "meta", Name: "nodes_marked_down_total",
			Help: "Storage nodes this member marked down as leader (no heartbeat for --node-down-after).",
		}),
		holdActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "clipstore", Subsystem: "meta", Name: "repair_hold",
			Help: "1 while the mass-down guard holds back the repair of down nodes (too many went silent at once). Leader only.",
		}),
		holdRemaining: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "clipstore", Subsystem: "meta", Name: "repair_hold_remaining_seconds",
			Help: "Time until the mass-down hold expires; 0 without one. Leader only.",
		}),
		holdNodes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "clipstore", Subsystem: "meta", Name: "repair_hold_nodes",
			Help: "Storage nodes whose silence started the mass-down hold; 0 without one. Leader only.",
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
	reg.MustRegister(m.proposals, m.proposalSec, m.readSec, m.batchSize, leader, applied,
		m.repairedShards, m.repairedBytes, m.movedShards, m.movedBytes, newRepairCollector(n), m.markedDown, m.holdActive, m.holdRemaining, m.holdNodes, newLifecycleCollector(n))
	return m
}

// repairCollector exports the leader's view of repair: the queue (read from
// the FSM at each scrape, at the cost of a ClusterStatus), the rate and the
// ETA. Only the leader exports them; the ETA is left out while unknown (a
// queue and no repair in the last minute).
type repairCollector struct {
	n                                  *Node
	queueShards, queueBytes, rate, eta *prometheus.Desc
}

func newRepairCollector(n *Node) *repairCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName("clipstore", "meta", name), help, nil, nil)
	}
	return &repairCollector{n: n,
		queueShards: desc("repair_queue_shards", "Shard entries to rebuild (missing, corrupt, or on a node down for longer than the repair grace), in flight included. Leader only."),
		queueBytes:  desc("repair_queue_bytes", "Piece bytes of the shard entries to rebuild. Leader only."),
		rate:        desc("repair_bytes_per_second", "Bytes of shards rebuilt per second over the last minute. Leader only."),
		eta:         desc("repair_eta_seconds", "Time to rebuild the repair queue at the current rate; absent while unknown. Leader only."),
	}
}

func (c *repairCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.queueShards
	ch <- c.queueBytes
	ch <- c.rate
	ch <- c.eta
}

func (c *repairCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	if n.raft == nil || n.raft.State() != raft.Leader {
		return
	}
	now := n.cfg.now()
	shards, bytes, err := n.repairQueue(now)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.queueShards, err)
		return
	}
	f := n.progress.figures(now)
	ch <- prometheus.MustNewConstMetric(c.queueShards, prometheus.GaugeValue, float64(shards))
	ch <- prometheus.MustNewConstMetric(c.queueBytes, prometheus.GaugeValue, float64(bytes))
	ch <- prometheus.MustNewConstMetric(c.rate, prometheus.GaugeValue, f.bytesPerSec)
	if eta := f.eta(bytes); eta != nil {
		ch <- prometheus.MustNewConstMetric(c.eta, prometheus.GaugeValue, *eta)
	}
}

func (m *metrics) proposed(start time.Time, result string) {
	m.proposals.WithLabelValues(result).Inc()
	if result == "ok" || result == "rejected" {
		m.proposalSec.Observe(time.Since(start).Seconds())
	}
}

// repairHold publishes the mass-down hold in force (nil: none).
func (m *metrics) repairHold(h *pb.SetRepairHoldCommand, hold time.Duration) {
	if h == nil {
		m.holdActive.Set(0)
		m.holdRemaining.Set(0)
		m.holdNodes.Set(0)
		return
	}
	m.holdActive.Set(1)
	m.holdRemaining.Set(max(0, time.Until(time.Unix(0, h.SinceUnixNano).Add(hold)).Seconds()))
	m.holdNodes.Set(float64(h.Nodes))
}
