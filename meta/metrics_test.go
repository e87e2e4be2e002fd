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
