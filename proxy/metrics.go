package proxy

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics live in a registry of their own: the global default registry is
// package-level state, and two balancers in one test process would collide.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	retries   prometheus.Counter
	ejections *prometheus.CounterVec
	duration  prometheus.Histogram
	// inFlight is read by a GaugeFunc at scrape time: an atomic add per
	// request instead of a gauge's compare-and-swap loop on a float.
	inFlight atomic.Int64
	// none caches the requests counters of answers no backend gave (see
	// codeCounters); each backend's cache lives on the Backend.
	none codeCounters
	// codes holds status labels, so the request path does not format them.
	codes [600]string
	// unserved counts answers no backend was tried for (503: none
	// available); the dashboard shows them beside the backends' own counts.
	unserved atomic.Uint64
}

// backendCollector reports per-backend gauges for whatever the set is at
// scrape time, so a set change needs no registration.
type backendCollector struct {
	backends func() []*Backend
	up       *prometheus.Desc
	inFlight *prometheus.Desc
}

func (c backendCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.inFlight
}

func (c backendCollector) Collect(ch chan<- prometheus.Metric) {
	for _, b := range c.backends() {
		up := 0.0
		if b.Available() {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, b.addr)
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(b.inFlight.Load()), b.addr)
	}
}

// newMetrics registers the balancer's metrics; backends is called at each
// scrape for the backends to report.
func newMetrics(backends func() []*Backend) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "posterctl_lb_requests_total",
			Help: "Requests answered, by the backend that answered (none when no backend did) and status code.",
		}, []string{"backend", "code"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "posterctl_lb_retries_total",
			Help: "Attempts after the first, sent to another backend.",
		}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "posterctl_lb_ejections_total",
			Help: "Times a backend was taken out of rotation by a failed request.",
		}, []string{"backend"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "posterctl_lb_request_duration_seconds",
			Help:    "Time from request to the end of the response, retries included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
	}
	for i := range m.codes {
		m.codes[i] = strconv.Itoa(i)
	}
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "posterctl_lb_in_flight_requests",
		Help: "Requests being served now.",
	}, func() float64 { return float64(m.inFlight.Load()) })
	m.reg.MustRegister(m.requests, m.retries, m.ejections, inFlight, m.duration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(backendCollector{
		backends: backends,
		up: prometheus.NewDesc("posterctl_lb_backend_up",
			"1 when the backend is in rotation (healthy and not draining), else 0.", []string{"backend"}, nil),
		inFlight: prometheus.NewDesc("posterctl_lb_backend_in_flight_requests",
			"Requests the backend is serving now.", []string{"backend"}, nil),
	})
	for _, b := range backends() {
		m.ejections.WithLabelValues(b.addr)
	}
	return m
}

// observe counts one answered request; b is the backend of its last attempt,
// nil when none was tried. The backend's own counters feed the dashboard.
func (m *metrics) observe(b *Backend, backend string, status int, d time.Duration) {
	cc := &m.none
	if b != nil {
		cc = &b.codes
	}
	cc.counter(m, backend, status).Inc()
	m.duration.Observe(d.Seconds())
	if b != nil {
		b.stats.observe(status, d)
	} else {
		m.unserved.Add(1)
	}
}

// codeCounters are one backend's request counters by status code, created on
// first use (so the exposition lists only codes seen, as WithLabelValues
// would) and then found with one atomic load.
type codeCounters struct {
	byCode [600]atomic.Pointer[prometheus.Counter]
	other  atomic.Pointer[prometheus.Counter]
}

func (c *codeCounters) counter(m *metrics, backend string, status int) prometheus.Counter {
	slot, code := &c.other, "other"
	if status >= 0 && status < len(c.byCode) {
		slot, code = &c.byCode[status], m.codes[status]
	}
	if p := slot.Load(); p != nil {
		return *p
	}
	// Racing first uses get the same child from the vector; either store
	// is fine.
	ctr := m.requests.WithLabelValues(backend, code)
	slot.Store(&ctr)
	return ctr
}
