package site

import (
	"net/http"
	"runtime/debug"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics is the site's Prometheus registry: its own, not the global one,
// so two sites in one process (tests) never share counters. Request
// counters come from the Observe seam; everything else is read from the
// site's state at scrape time, so it can never drift from it.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(s *Site) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chancery_http_requests_total", Help: "HTTP requests served, by route pattern and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "chancery_http_request_seconds", Help: "HTTP request latency, by route pattern.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}, []string{"route"}),
	}
	m.reg.MustRegister(m.requests, m.latency, stateCollector{s}, prometheus.NewGoCollector())
	for _, t := range s.tenants {
		if t.pg != nil {
			t.pg.register(m.reg)
		}
	}
	b := ReadBuild()
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chancery_build_info", Help: "Always 1: the running binary's module version, VCS revision and Go version.",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.Revision, "go": b.Go}}, func() float64 { return 1 }))
	return m
}

// Build is what the running binary knows of its own build: what
// "chancery version" prints and chancery_build_info carries, so that an
// operator can tell which code a site runs.
type Build struct {
	Version  string `json:"version"`            // module version, "(devel)" for a build from a checkout
	Revision string `json:"revision,omitempty"` // VCS revision, if built from a checkout with VCS stamping
	Time     string `json:"time,omitempty"`     // the revision's commit time
	Modified bool   `json:"modified,omitempty"` // the checkout had uncommitted changes
	Go       string `json:"go"`                 // the Go toolchain that built it
}

// ReadBuild reads the binary's build information (runtime/debug).
func ReadBuild() Build {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return Build{Version: "unknown", Go: "unknown"}
	}
	b := Build{Version: info.Main.Version, Go: info.GoVersion}
	if b.Version == "" {
		b.Version = "(devel)"
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

func (m *metrics) handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *metrics) observe(ri RequestInfo) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(ri.Route, strconv.Itoa(ri.Status)).Inc()
	m.latency.WithLabelValues(ri.Route).Observe(ri.Latency.Seconds())
}

var (
	descLedgerEntries = prometheus.NewDesc("chancery_ledger_entries", "Entries in the guest's ledger as this site holds it.", []string{"guest"}, nil)
	descEpoch         = prometheus.NewDesc("chancery_ledger_epoch", "Highest epoch in the guest's ledger at this site.", []string{"guest"}, nil)
	descRPOEntries    = prometheus.NewDesc("chancery_replication_rpo_entries", "Entries the writer holds that the site's latest receipt does not cover.", []string{"guest", "site"}, nil)
	descRPOSeconds    = prometheus.NewDesc("chancery_replication_rpo_seconds", "Age of the oldest write the site's latest receipt does not cover (0 when current).", []string{"guest", "site"}, nil)
	descReceiptSize   = prometheus.NewDesc("chancery_replication_receipt_size", "Ledger size covered by the site's latest receipt.", []string{"guest", "site"}, nil)
	descConnected     = prometheus.NewDesc("chancery_replication_connected", "1 if the last exchange with the site succeeded.", []string{"guest", "site"}, nil)
	descSentBytes     = prometheus.NewDesc("chancery_replication_sent_bytes_total", "Bytes of batches and packs shipped to the site.", []string{"guest", "site"}, nil)
	descUsed          = prometheus.NewDesc("chancery_guest_used_bytes", "Bytes the guest holds at this site (ledger and blobs).", []string{"guest"}, nil)
	descQuota         = prometheus.NewDesc("chancery_guest_quota_bytes", "The guest's quota at this site from its charter (0: none).", []string{"guest"}, nil)
	descSinceBatch    = prometheus.NewDesc("chancery_guest_seconds_since_last_batch", "Seconds since the site last accepted a batch for the guest (-1: none since start).", []string{"guest"}, nil)
	descBatches       = prometheus.NewDesc("chancery_guest_batches_total", "Batches accepted for the guest since start.", []string{"guest"}, nil)
	descRefused       = prometheus.NewDesc("chancery_guest_refused_total", "Batches and packs refused for the guest since start (failed checks).", []string{"guest"}, nil)
	descSuspended     = prometheus.NewDesc("chancery_guest_suspended", "1 if the host's suspension of the guest is in effect.", []string{"guest"}, nil)
	descLedgerDamaged = prometheus.NewDesc("chancery_ledger_damaged", "1 if the guest's stored right edge of the ledger does not match its tree (the site repairs it from another site; chancery repair restores it by hand).", []string{"guest"}, nil)
	descLedgerRepairs = prometheus.NewDesc("chancery_ledger_repairs_total", "Damaged right edges of the guest's stored ledger this site repaired from another site since it started.", []string{"guest"}, nil)
	descScrubProblems = prometheus.NewDesc("chancery_blob_scrub_problems", "Problems the guest's last scheduled blob scrub found (-1: it failed to run).", []string{"guest"}, nil)
	descScrubTime     = prometheus.NewDesc("chancery_blob_scrub_last_timestamp_seconds", "When the guest's last scheduled blob scrub started.", []string{"guest"}, nil)
)

// stateCollector reads the site's state at scrape time.
type stateCollector struct{ s *Site }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	now := s.opts.Now()
	for _, id := range s.order {
		t := s.tenants[id]
		st := t.Receiver().Stats()
		gauge(descLedgerEntries, float64(t.Ledger().MirrorSize()), id)
		gauge(descEpoch, float64(t.Ledger().Epoch()), id)
		gauge(descUsed, float64(t.Receiver().Used()), id)
		gauge(descQuota, float64(t.Quota()), id)
		since := -1.0
		if at := t.LastBatch(); !at.IsZero() {
			since = now.Sub(at).Seconds()
		}
		gauge(descSinceBatch, since, id)
		counter(descBatches, float64(st.Batches), id)
		counter(descRefused, float64(st.Refused), id)
		susp := 0.0
		if t.Suspended(now) != nil {
			susp = 1
		}
		gauge(descSuspended, susp, id)
		damaged := 0.0
		if ledgerDamage(t) != nil {
			damaged = 1
		}
		gauge(descLedgerDamaged, damaged, id)
		counter(descLedgerRepairs, float64(t.LedgerRepairs()), id)
		if r, ok := s.scrubs.get(id); ok {
			bad := -1.0
			if r.Err == nil {
				bad = float64(r.Report.Bad)
			}
			gauge(descScrubProblems, bad, id)
			gauge(descScrubTime, float64(r.At.Unix()), id)
		}
		// The writer's view of every other site: whichever site writes
		// now, home or embassy, exports its recovery points.
		if repl := t.Replicator(); repl != nil {
			for _, lag := range repl.Tracker().Lags() {
				gauge(descRPOEntries, float64(lag.Entries), id, lag.Site)
				gauge(descRPOSeconds, lag.Seconds, id, lag.Site)
				gauge(descReceiptSize, float64(lag.Size), id, lag.Site)
				conn := 0.0
				if lag.Connected {
					conn = 1
				}
				gauge(descConnected, conn, id, lag.Site)
				counter(descSentBytes, float64(lag.BytesSent), id, lag.Site)
			}
		}
	}
}
