package meta_test

import (
	"testing"

	"github.com/clipstore/clipstore/meta"
	"github.com/clipstore/clipstore/meta/metatest"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/prometheus/client_golang/prometheus"
)

func TestMetricsCountProposals(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := metatest.New(t, 1, metatest.Options{Configure: func(cfg *meta.Config) { cfg.Registerer = reg }})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}) // rejected: exists
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			for _, l := range m.GetLabel() {
				name += "/" + l.GetValue()
			}
			got[name] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	if got["clipstore_meta_proposals_total/rejected"] != 1 || got["clipstore_meta_proposals_total/ok"] < 1 || got["clipstore_meta_is_leader"] != 1 {
		t.Fatalf("metrics %v", got)
	}
}

// TestLifecycleMetrics: the leader exports each node's admin state and what
// a draining node has left to move.
func TestLifecycleMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := metatest.New(t, 1, metatest.Options{Configure: func(cfg *meta.Config) { cfg.Registerer = reg; cfg.MoveConcurrency = 0 }})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	heartbeatingNodes(t, cl, 7)
	rec := put(t, cl, "bk1", "clip", 1000, nil).Clip
	drained := rec.Parts[0].Shards[0].NodeId
	if _, err := cl.SetNodeAdminState(t.Context(), &pb.SetNodeAdminStateRequest{NodeId: drained, State: pb.AdminState_ADMIN_STATE_DRAINING}); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			for _, l := range m.GetLabel() {
				name += "/" + l.GetValue()
			}
			got[name] = m.GetGauge().GetValue()
		}
	}
	// Labels in name order: state, storage_node.
	if got["clipstore_meta_node_admin_state/draining/"+drained] != 1 || got["clipstore_meta_node_shards_to_move/"+drained] != 1 ||
		got["clipstore_meta_node_admin_state/active/s6"]+got["clipstore_meta_node_admin_state/active/s5"] < 1 {
		t.Fatalf("metrics %v", got)
	}
	if _, ok := got["clipstore_meta_rebalance_running"]; !ok {
		t.Fatalf("no rebalance metrics: %v", got)
	}
}
