package meta

import (
	pb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
)

// lifecycleCollector exports, on the leader, the storage nodes' admin
// states, what each draining node has left to move, and the rebalance: read
// at each scrape.
type lifecycleCollector struct {
	n                                 *Node
	adminState, toMove                *prometheus.Desc
	rebRunning, rebInFlight, rebMoved *prometheus.Desc
	rebSpread                         *prometheus.Desc
	moveQueue, moveRate, moveETA      *prometheus.Desc
}

func newLifecycleCollector(n *Node) *lifecycleCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName("clipstore", "meta", name), help, labels, nil)
	}
	return &lifecycleCollector{n: n,
		adminState:  desc("node_admin_state", "1 for a storage node's admin state (active, draining, maintenance, decommissioned). Leader only.", "storage_node", "state"),
		toMove:      desc("node_shards_to_move", "Shards still on a draining storage node. Leader only.", "storage_node"),
		rebRunning:  desc("rebalance_running", "1 while a rebalance runs. Leader only."),
		rebInFlight: desc("rebalance_moves_in_flight", "A rebalance's moves handed out and not landed yet. Leader only."),
		rebMoved:    desc("rebalance_moved_bytes", "Shard bytes the rebalance moved under this leader. Leader only."),
		rebSpread:   desc("rebalance_spread", "Largest distance of a node's used fraction from the mean, as of the last plan. Leader only."),
		moveQueue:   desc("move_queue_bytes", "Shard bytes still to move: on draining nodes, and in the running rebalance's plan. Leader only."),
		moveRate:    desc("move_bytes_per_second", "Bytes of shards moved per second over the last minute. Leader only."),
		moveETA:     desc("move_eta_seconds", "Time to move the move queue at the current rate; absent while unknown. Leader only."),
	}
}

func (c *lifecycleCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.adminState, c.toMove, c.rebRunning, c.rebInFlight, c.rebMoved, c.rebSpread, c.moveQueue, c.moveRate, c.moveETA} {
		ch <- d
	}
}

func (c *lifecycleCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	if n.raft == nil || n.raft.State() != raft.Leader {
		return
	}
	var running bool
	var queue uint64
	n.fsm.view(func(tx *bolt.Tx) error {
		running = rebalanceState(tx).Running
		var err error
		if queue, err = n.moveQueue(tx); err != nil {
			ch <- prometheus.NewInvalidMetric(c.moveQueue, err)
		}
		a := &applier{tx: tx}
		return tx.Bucket(bktNodes).ForEach(func(k, v []byte) error {
			node := &pb.StorageNode{}
			if decodeMsg(k, v, node) != nil {
				return nil
			}
			ch <- prometheus.MustNewConstMetric(c.adminState, prometheus.GaugeValue, 1, node.NodeId, adminStateName(node.AdminState))
			if node.AdminState == pb.AdminState_ADMIN_STATE_DRAINING {
				ch <- prometheus.MustNewConstMetric(c.toMove, prometheus.GaugeValue, float64(a.placedShards(node.NodeId)), node.NodeId)
			}
			return nil
		})
	})
	ch <- prometheus.MustNewConstMetric(c.rebRunning, prometheus.GaugeValue, b2f(running))
	ch <- prometheus.MustNewConstMetric(c.rebInFlight, prometheus.GaugeValue, float64(n.rebalanceInFlight()))
	r := n.rebalancer
	r.mu.Lock()
	moved, spread := r.moved, 0.0
	if r.summary != nil {
		spread = r.summary.SpreadBefore
	}
	r.mu.Unlock()
	if running {
		queue += n.rebalanceLeft()
	}
	f := n.moves.figures(n.cfg.now())
	ch <- prometheus.MustNewConstMetric(c.moveQueue, prometheus.GaugeValue, float64(queue))
	ch <- prometheus.MustNewConstMetric(c.moveRate, prometheus.GaugeValue, f.bytesPerSec)
	if eta := f.eta(queue); eta != nil {
		ch <- prometheus.MustNewConstMetric(c.moveETA, prometheus.GaugeValue, *eta)
	}
	ch <- prometheus.MustNewConstMetric(c.rebMoved, prometheus.GaugeValue, float64(moved))
	ch <- prometheus.MustNewConstMetric(c.rebSpread, prometheus.GaugeValue, spread)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
