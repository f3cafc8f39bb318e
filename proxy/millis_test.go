package proxy

import (
	"encoding/json"
	"testing"
	"time"
)

func TestAppendMillis(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0.000"},
		{999 * time.Nanosecond, "0.000"},
		{1500 * time.Microsecond, "1.500"},
		{999 * time.Microsecond, "0.999"},
		{9999*time.Microsecond + 999*time.Nanosecond, "9.999"},
		{10 * time.Millisecond, "10.000"},
		{12*time.Millisecond + 34*time.Microsecond, "12.034"},
		{90 * time.Second, "90000.000"},
		{-time.Second, "0.000"},
	} {
		got := appendMillis(nil, c.d)
		if string(got) != c.want {
			t.Errorf("appendMillis(%v) = %s, want %s", c.d, got, c.want)
		}
		var f float64
		if err := json.Unmarshal(got, &f); err != nil {
			t.Errorf("appendMillis(%v) = %s: not a JSON number: %v", c.d, got, err)
		}
	}
}
