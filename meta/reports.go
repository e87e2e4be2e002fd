package meta

import (
	"context"
	"sync"

	pb "github.com/clipstore/clipstore/proto/metapb"
)

// maxReportIDs bounds the shard ids one NodeReports entry carries; the
// rest go in the next.
const maxReportIDs = 20_000

// reportQueue holds what storage nodes reported in heartbeats until the
// leader proposes it: a heartbeat is answered at once, and the reports of
// every node go into Raft together, in one entry, asynchronously. A node
// re-sends a report with the same number until an answer acknowledges it
// (HeartbeatResponse.report_seq_applied), so a report lost with a leader,
// or whose entry failed, is proposed again; Apply takes each number once.
type reportQueue struct {
	wake chan struct{} // something was queued

	mu       sync.Mutex
	pending  map[string]*pb.NodeReport // by node: waiting to be proposed
	proposed map[string]*pb.NodeReport // by node: in an entry not yet answered
}

func newReportQueue() *reportQueue {
	return &reportQueue{wake: make(chan struct{}, 1), pending: map[string]*pb.NodeReport{},
		proposed: map[string]*pb.NodeReport{}}
}

// add queues r, unless the same report is queued or being proposed.
func (q *reportQueue) add(r *pb.NodeReport) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if covers(q.pending[r.NodeId], r) || covers(q.proposed[r.NodeId], r) {
		return
	}
	q.pending[r.NodeId] = r
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// covers reports whether queued report q makes r redundant: the same
// numbered report (a node re-sends a report unchanged until it is
// acknowledged), or an unnumbered one that asks no more.
func covers(q, r *pb.NodeReport) bool {
	if q == nil || (!q.Up && r.Up) {
		return false
	}
	if r.Seq != 0 {
		return q.Seq == r.Seq
	}
	return len(r.CorruptShardIds)+len(r.MissingShardIds)+len(r.DeletedShardIds) == 0
}

// take moves pending reports, up to maxReportIDs shard ids, to proposed and
// returns them.
func (q *reportQueue) take() []*pb.NodeReport {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*pb.NodeReport
	ids := 0
	for node, r := range q.pending {
		n := len(r.CorruptShardIds) + len(r.MissingShardIds) + len(r.DeletedShardIds)
		if len(out) > 0 && ids+n > maxReportIDs {
			break
		}
		ids += n
		out = append(out, r)
		q.proposed[node] = r
		delete(q.pending, node)
	}
	return out
}

// done forgets proposed reports once their entry was answered, committed
// or not: a report that did not commit comes again with the node's next
// heartbeat.
func (q *reportQueue) done(rs []*pb.NodeReport) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, r := range rs {
		if q.proposed[r.NodeId] == r {
			delete(q.proposed, r.NodeId)
		}
	}
}

// reset forgets everything: called when leadership is won.
func (q *reportQueue) reset() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending = map[string]*pb.NodeReport{}
	q.proposed = map[string]*pb.NodeReport{}
}

// proposeReports proposes the queued reports, an entry at a time, while
// this member lives; only the leader's proposals succeed, and reports
// queued by a member that lost its leadership fail and come again.
func (n *Node) proposeReports() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.reports.wake:
		}
		for rs := n.reports.take(); len(rs) > 0; rs = n.reports.take() {
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ApplyTimeout)
			_, err := n.propose(ctx, &pb.Command{Op: &pb.Command_NodeReports{NodeReports: &pb.NodeReportsCommand{Reports: rs}}})
			cancel()
			n.reports.done(rs)
			if err != nil {
				if n.ctx.Err() == nil {
					n.log.Warn("propose storage node reports; the nodes will send them again", "reports", len(rs), "err", err)
				}
				break
			}
			for _, r := range rs {
				n.logReport(r)
			}
		}
	}
}

func (n *Node) logReport(r *pb.NodeReport) {
	if len(r.CorruptShardIds) > 0 || len(r.MissingShardIds) > 0 {
		n.log.Warn("storage node reports shards", "node", r.NodeId, "corrupt", len(r.CorruptShardIds),
			"missing", len(r.MissingShardIds), "report", r.Seq)
	}
}
