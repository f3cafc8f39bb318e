package proxy

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/posterctl/posterctl/lbapi"
)

func TestLatencyBuckets(t *testing.T) {
	prev := -1
	for us := int64(-5); us < 1<<22; us += 1 + us/64 {
		i := latBucket(us)
		if i < prev {
			t.Fatalf("bucket of %d µs is %d, below the %d of a smaller latency", us, i, prev)
		}
		prev = i
		if us > 0 {
			if mid := latBucketMid(i); math.Abs(mid-float64(us))/float64(us) > 0.13 {
				t.Fatalf("%d µs lands in bucket %d whose middle is %.0f µs: over 13%% off", us, i, mid)
			}
		}
	}
	if latBucket(math.MaxInt64) != latBuckets-1 {
		t.Fatal("huge latency not in the last bucket")
	}
}

func TestSampleRates(t *testing.T) {
	b := NewBackend("127.0.0.1:1", 0)
	t0 := time.Unix(1000, 0)
	s0 := b.snapshot(t0)
	// 98 fast answers and 2 slow failures over two seconds.
	for range 98 {
		b.requests.Add(1)
		b.stats.observe(200, 2*time.Millisecond)
	}
	for range 2 {
		b.requests.Add(1)
		b.stats.observe(502, 400*time.Millisecond)
	}
	s1 := b.snapshot(t0.Add(2 * time.Second))
	var d statsDelta
	d.between(&s0, &s1)
	got := d.sample(s1.at, 2, 3)
	if got.RPS != 50 || got.ErrorRate != 0.02 || got.InFlight != 3 || got.Time != s1.at.UnixMilli() {
		t.Fatalf("sample %+v", got)
	}
	if got.P50 == nil || math.Abs(*got.P50-2) > 0.25 {
		t.Fatalf("p50 %v ms, want about 2", got.P50)
	}
	if got.P99 == nil || math.Abs(*got.P99-400) > 50 {
		t.Fatalf("p99 %v ms, want about 400", got.P99)
	}
	var empty statsDelta
	if s := empty.sample(s1.at, 1, 0); s.P50 != nil || s.RPS != 0 || s.ErrorRate != 0 {
		t.Fatalf("quiet second %+v", s)
	}
}

func TestSeriesKeepsTheLastMinute(t *testing.T) {
	var r series
	for i := range historyLen + 5 {
		r.add(lbapi.Sample{Time: int64(i)}, historyLen)
	}
	if len(r.samples) != historyLen || r.samples[0].Time != 5 || r.samples[historyLen-1].Time != historyLen+4 {
		t.Fatalf("%d samples from %d to %d", len(r.samples), r.samples[0].Time, r.samples[len(r.samples)-1].Time)
	}
}

func TestEventLogRing(t *testing.T) {
	l := newEventLog(3)
	b := NewBackend("127.0.0.1:1", 0)
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		if k == "d" {
			b.setName("backend-1")
		}
		l.add(b, k, "")
	}
	got := l.recent()
	if len(got) != 3 || got[0].Kind != "e" || got[1].Kind != "d" || got[2].Kind != "c" || got[0].Seq != 5 {
		t.Fatalf("recent %+v, want e d c, newest first", got)
	}
	// Each event keeps the name the backend had then.
	if got[0].Name != "backend-1" || got[2].Name != "127.0.0.1:1" || got[2].Backend != "127.0.0.1:1" {
		t.Fatalf("recent %+v: names not as they were", got)
	}
}

func TestDrainState(t *testing.T) {
	b := NewBackend("a:1", 0)
	if !b.SetDraining(true) || b.Available() || b.State() != lbapi.StateDraining || b.SetDraining(true) {
		t.Fatal("drain")
	}
	// Health checks move health, never the drain.
	b.RecordProbe(nil, time.Now(), 2, 2)
	if b.Available() || b.State() != lbapi.StateDraining {
		t.Fatal("a passing probe undid the drain")
	}
	b.Eject(errTest)
	if !b.SetDraining(false) || b.Available() || b.State() != lbapi.StateDown {
		t.Fatal("enable of a down backend put it in rotation")
	}
	b.RecordProbe(nil, time.Now(), 2, 2)
	if b.RecordProbe(nil, time.Now(), 2, 2) != WentUp || !b.Available() || b.State() != lbapi.StateHealthy {
		t.Fatal("enabled backend did not come back on its probes")
	}
	j := newJoiningBackend("a:2", 1)
	if j.Available() || j.State() != lbapi.StateDown {
		t.Fatal("a backend added at run time takes traffic before its health check")
	}
}

var errTest = errors.New("refused")
