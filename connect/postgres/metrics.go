package postgres

import (
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/prometheus/client_golang/prometheus"
)

var timeZero time.Time

// Metrics are a connector's Prometheus series. A nil *Metrics records
// nothing.
type Metrics struct {
	Rows      *prometheus.CounterVec // by phase: snapshot, stream
	Txns      prometheus.Counter
	Reconnect prometheus.Counter
	Applied   prometheus.Gauge // the position in the ledger, as a number
	Confirmed prometheus.Gauge // the position confirmed to PostgreSQL
	Lag       prometheus.Histogram
}

// NewMetrics makes a connector's series, labelled with its slot, and
// registers them with reg (if not nil).
func NewMetrics(reg prometheus.Registerer, slot string) *Metrics {
	l := prometheus.Labels{"slot": slot}
	m := &Metrics{
		Rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chancery_postgres_rows_total",
			Help: "Rows written to the ledger by the PostgreSQL connector, by phase.", ConstLabels: l}, []string{"phase"}),
		Txns: prometheus.NewCounter(prometheus.CounterOpts{Name: "chancery_postgres_transactions_total",
			Help: "Source transactions applied whole.", ConstLabels: l}),
		Reconnect: prometheus.NewCounter(prometheus.CounterOpts{Name: "chancery_postgres_reconnects_total",
			Help: "Connections to PostgreSQL lost and retried.", ConstLabels: l}),
		Applied: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chancery_postgres_applied_lsn",
			Help: "End LSN of the last source transaction durable in the ledger.", ConstLabels: l}),
		Confirmed: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chancery_postgres_confirmed_lsn",
			Help: "LSN confirmed to PostgreSQL as durable.", ConstLabels: l}),
		Lag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "chancery_postgres_commit_to_durable_seconds",
			Help: "From a source transaction's commit to its ledger batch being durable.", ConstLabels: l,
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}),
	}
	if reg != nil {
		reg.MustRegister(m.Rows, m.Txns, m.Reconnect, m.Applied, m.Confirmed, m.Lag)
	}
	return m
}

func (m *Metrics) reconnect() {
	if m != nil {
		m.Reconnect.Inc()
	}
}

func (m *Metrics) txns(n int) {
	if m != nil {
		m.Txns.Add(float64(n))
	}
}

func (m *Metrics) snapshotRows(n int) {
	if m != nil {
		m.Rows.WithLabelValues("snapshot").Add(float64(n))
	}
}

func (m *Metrics) applied(end pglogrepl.LSN, rows int) {
	if m != nil {
		m.Applied.Set(float64(end))
		m.Rows.WithLabelValues("stream").Add(float64(rows))
	}
}

func (m *Metrics) confirmed(lsn pglogrepl.LSN) {
	if m != nil {
		m.Confirmed.Set(float64(lsn))
	}
}

func (m *Metrics) durable(commit time.Time) {
	if m != nil {
		m.Lag.Observe(time.Since(commit).Seconds())
	}
}
