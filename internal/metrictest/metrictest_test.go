package metrictest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestValue(t *testing.T) {
	reg := prometheus.NewRegistry()
	reads := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reads_total"}, []string{"transport", "node"})
	idle := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "idle_total"}, []string{"transport"})
	up := prometheus.NewGauge(prometheus.GaugeOpts{Name: "up"})
	reg.MustRegister(reads, idle, up)
	reads.WithLabelValues("raw", "a").Add(2)
	reads.WithLabelValues("raw", "b").Add(3)
	reads.WithLabelValues("grpc", "a").Add(7)
	up.Set(1)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"reads_total", nil, 12},
		{"reads_total", []string{"transport", "raw"}, 5},
		{"reads_total", []string{"transport", "raw", "node", "b"}, 3},
		{"reads_total", []string{"transport", "tls"}, 0},
		{"reads_total", []string{"zone", "a"}, 0},
		{"idle_total", []string{"transport", "raw"}, 0}, // a vector with no series
		{"up", nil, 1},
		{"missing", nil, 0},
	} {
		if got := Value(t, reg, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s %q: %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}
