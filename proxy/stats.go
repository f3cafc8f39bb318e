package proxy

import (
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/posterctl/posterctl/lbapi"
)

// Latency is kept per backend in a fixed histogram of atomic counters: one
// add per response, no lock, no allocation. Percentiles for a second are read
// from the difference of two snapshots, so the request path never computes
// anything. Buckets are log-linear, four per power of two of microseconds,
// which bounds the error of a percentile to about 12%: plenty for a
// dashboard.
const (
	latSub     = 4 // buckets per power of two
	latSubBits = 2
	latBuckets = 40 * latSub // up to 2^39 µs, about six days
)

// latBucket maps a latency in microseconds to its bucket.
func latBucket(us int64) int {
	if us < latSub {
		if us < 0 {
			return 0
		}
		return int(us)
	}
	e := bits.Len64(uint64(us)) - 1 // 2^e <= us < 2^(e+1), e >= latSubBits
	sub := int(uint64(us)>>(e-latSubBits)) & (latSub - 1)
	i := (e-latSubBits+1)*latSub + sub
	if i >= latBuckets {
		return latBuckets - 1
	}
	return i
}

// latBucketMid is a representative latency, in microseconds, of bucket i.
func latBucketMid(i int) float64 {
	if i < latSub {
		return float64(i)
	}
	e := i/latSub - 1 + latSubBits
	sub := i % latSub
	lo := float64(uint64(latSub+sub) << (e - latSubBits))
	width := float64(uint64(1) << (e - latSubBits))
	return lo + width/2
}

// backendStats are the request path's counters for one backend, beside the
// ones Backend already had (requests, failures, in-flight).
type backendStats struct {
	responses atomic.Uint64 // requests answered, by the backend or for it
	errors    atomic.Uint64 // of which with a 5xx status
	lat       [latBuckets]atomic.Uint64
}

func (s *backendStats) observe(status int, d time.Duration) {
	s.responses.Add(1)
	if status >= 500 {
		s.errors.Add(1)
	}
	s.lat[latBucket(d.Microseconds())].Add(1)
}

// statsSnapshot is a backend's cumulative counters at one instant.
type statsSnapshot struct {
	at        time.Time
	requests  uint64
	responses uint64
	errors    uint64
	lat       [latBuckets]uint64
}

func (b *Backend) snapshot(at time.Time) statsSnapshot {
	s := statsSnapshot{
		at:        at,
		requests:  b.requests.Load(),
		responses: b.stats.responses.Load(),
		errors:    b.stats.errors.Load(),
	}
	for i := range s.lat {
		s.lat[i] = b.stats.lat[i].Load()
	}
	return s
}

// statsDelta is what happened between two snapshots; deltas of several
// backends add up to the balancer's total.
type statsDelta struct {
	requests  uint64
	responses uint64
	errors    uint64
	lat       [latBuckets]uint64
}

func (d *statsDelta) between(prev, cur *statsSnapshot) {
	d.requests = cur.requests - prev.requests
	d.responses = cur.responses - prev.responses
	d.errors = cur.errors - prev.errors
	for i := range d.lat {
		d.lat[i] = cur.lat[i] - prev.lat[i]
	}
}

func (d *statsDelta) add(o *statsDelta) {
	d.requests += o.requests
	d.responses += o.responses
	d.errors += o.errors
	for i := range d.lat {
		d.lat[i] += o.lat[i]
	}
}

// sample turns a delta over secs seconds into rates.
func (d *statsDelta) sample(at time.Time, secs float64, inFlight int64) lbapi.Sample {
	s := lbapi.Sample{Time: at.UnixMilli(), InFlight: inFlight}
	if secs <= 0 {
		return s
	}
	s.RPS = float64(d.requests) / secs
	if d.responses == 0 {
		return s
	}
	s.ErrorRate = float64(d.errors) / float64(d.responses)
	var total uint64
	for _, n := range d.lat {
		total += n
	}
	if total == 0 {
		return s
	}
	p50, p99 := percentile(&d.lat, total, 0.50), percentile(&d.lat, total, 0.99)
	s.P50, s.P99 = &p50, &p99
	return s
}

// percentile reads quantile q (0..1) of a histogram, in milliseconds.
func percentile(h *[latBuckets]uint64, total uint64, q float64) float64 {
	rank := uint64(q*float64(total-1)) + 1
	var seen uint64
	for i, n := range h {
		seen += n
		if seen >= rank {
			return latBucketMid(i) / 1000
		}
	}
	return latBucketMid(latBuckets-1) / 1000
}

// series is the recent history of one backend, one sample per second.
type series struct {
	last    statsSnapshot
	samples []lbapi.Sample // oldest first, at most keep
}

func (r *series) add(s lbapi.Sample, keep int) {
	if len(r.samples) == keep {
		copy(r.samples, r.samples[1:])
		r.samples = r.samples[:keep-1]
	}
	r.samples = append(r.samples, s)
}
