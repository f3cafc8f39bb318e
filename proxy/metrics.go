package proxy

import (
	"strconv"
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
	inFlight  prometheus.Gauge
	duration  prometheus.Histogram
	// codes holds status labels, so the request path does not format them.
	codes [600]string
}

func newMetrics(pool []*Backend) *metrics {
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
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "posterctl_lb_in_flight_requests",
			Help: "Requests being served now.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "posterctl_lb_request_duration_seconds",
			Help:    "Time from request to the end of the response, retries included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
	}
	for i := range m.codes {
		m.codes[i] = strconv.Itoa(i)
	}
	m.reg.MustRegister(m.requests, m.retries, m.ejections, m.inFlight, m.duration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, b := range pool {
		b := b
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "posterctl_lb_backend_up",
			Help:        "1 when the backend is in rotation, else 0.",
			ConstLabels: prometheus.Labels{"backend": b.addr},
		}, func() float64 {
			if b.Available() {
				return 1
			}
			return 0
		}))
		m.ejections.WithLabelValues(b.addr)
	}
	return m
}

func (m *metrics) observe(backend string, status int, d time.Duration) {
	code := "other"
	if status >= 0 && status < len(m.codes) {
		code = m.codes[status]
	}
	m.requests.WithLabelValues(backend, code).Inc()
	m.duration.Observe(d.Seconds())
}
