package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the node's Prometheus metrics. They always exist; they are
// exported only when the config names a Registerer.
type metrics struct {
	writes       *prometheus.CounterVec
	writeSeconds prometheus.Histogram
	bytesWritten prometheus.Counter
	bytesRead    prometheus.Counter
	corrupt      prometheus.Counter
	shardReads   *prometheus.CounterVec
	shardWrites  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, s *Store) *metrics {
	m := &metrics{
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "clipstore", Subsystem: "storage", Name: "shard_writes_total",
			Help: "Shard writes by result: ok, existed (identical retry) or failed.",
		}, []string{"result"}),
		writeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "clipstore", Subsystem: "storage", Name: "shard_write_seconds",
			Help:    "Time from the header of a shard write to its durable commit.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		bytesWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "clipstore", Subsystem: "storage", Name: "written_bytes_total",
			Help: "Bytes of committed shard files, headers and trailers included.",
		}),
		bytesRead: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "clipstore", Subsystem: "storage", Name: "read_bytes_total",
			Help: "Bytes of verified pieces and trailers read.",
		}),
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "clipstore", Subsystem: "storage", Name: "corrupt_pieces_total",
			Help: "Pieces, trailers or headers that failed verification on read.",
		}),
		shardReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "clipstore", Subsystem: "storage", Name: "shard_reads_total",
			Help: "ReadShard requests by transport: grpc, or raw (plain TCP without gRPC framing).",
		}, []string{"transport"}),
		shardWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "clipstore", Subsystem: "storage", Name: "shard_write_requests_total",
			Help: "WriteShard requests by transport: grpc, or raw (plain TCP without gRPC framing).",
		}, []string{"transport"}),
	}
	if reg == nil {
		return m
	}
	shards := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "clipstore", Subsystem: "storage", Name: "shards",
		Help: "Shard files stored on the node.",
	}, func() float64 { return float64(s.shardCount()) })
	reg.MustRegister(m.writes, m.writeSeconds, m.bytesWritten, m.bytesRead, m.corrupt, m.shardReads, m.shardWrites, shards)
	return m
}

func (m *metrics) observeWrite(start time.Time, n int64, existed bool) {
	result := "ok"
	if existed {
		result = "existed"
	}
	m.writes.WithLabelValues(result).Inc()
	m.writeSeconds.Observe(time.Since(start).Seconds())
	m.bytesWritten.Add(float64(n))
}

func (m *metrics) writeFailed()  { m.writes.WithLabelValues("failed").Inc() }
func (m *metrics) corruptPiece() { m.corrupt.Inc() }
func (m *metrics) read(n int)    { m.bytesRead.Add(float64(n)) }

func (m *metrics) shardRead(transport string)  { m.shardReads.WithLabelValues(transport).Inc() }
func (m *metrics) shardWrite(transport string) { m.shardWrites.WithLabelValues(transport).Inc() }

func (s *Store) shardCount() int64 {
	var n int64
	for _, d := range s.disks {
		n += d.shards.Load()
	}
	return n
}

// shardBytes is the size on disk of the node's shard files.
func (s *Store) shardBytes() int64 {
	var n int64
	for _, d := range s.disks {
		n += d.shardBytes.Load()
	}
	return n
}
