package s3gw

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are a gateway's Prometheus metrics, labelled by operation (the
// S3 operation name, NotImplemented or MethodNotAllowed: a fixed set).
type metrics struct {
	requests *prometheus.CounterVec   // operation, code (the HTTP status)
	received *prometheus.CounterVec   // operation: decoded request body bytes
	sent     *prometheus.CounterVec   // operation: response body bytes
	seconds  *prometheus.HistogramVec // operation
	inFlight prometheus.Gauge
	denied   prometheus.Counter // requests refused by the key's grants
}

func newMetrics() *metrics {
	const ns, sub = "clipstore", "s3"
	return &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "requests_total",
			Help: "S3 requests answered, by operation and HTTP status code."}, []string{"operation", "code"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "received_bytes_total",
			Help: "Request body bytes received (decoded object bytes), by operation."}, []string{"operation"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "sent_bytes_total",
			Help: "Response body bytes sent, by operation."}, []string{"operation"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its answer, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 17)}, []string{"operation"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "requests_in_flight",
			Help: "S3 requests being served."}),
		denied: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "access_denied_total",
			Help: "Authenticated requests refused because the access key's grants do not allow them."}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.received, m.sent, m.seconds, m.inFlight, m.denied}
}

func (m *metrics) observe(op string, status int, in, out int64, d time.Duration) {
	m.requests.WithLabelValues(op, strconv.Itoa(status)).Inc()
	if in > 0 {
		m.received.WithLabelValues(op).Add(float64(in))
	}
	if out > 0 {
		m.sent.WithLabelValues(op).Add(float64(out))
	}
	m.seconds.WithLabelValues(op).Observe(d.Seconds())
}
