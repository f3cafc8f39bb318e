package main

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1048576": 1 << 20, "50MiB": 50 << 20, "50mib": 50 << 20, "512KiB": 512 << 10, "2GiB": 2 << 30,
		"5MB": 5e6, "5M": 5 << 20, "7K": 7 << 10, "100B": 100, " 3 MiB ": 3 << 20,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1MiB", "MiB", "1.5MiB", "12XB", "99999999999999999999"} {
		if _, err := parseSize(in); err == nil || !strings.Contains(err.Error(), "invalid size") {
			t.Errorf("parseSize(%q): %v, want an error", in, err)
		}
	}
}

func TestUpLogFlags(t *testing.T) {
	cfg, err := parseUp(t, "--log-max-size", "2MiB", "--log-max-files", "3")
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.logRotation(); r.MaxBytes != 2<<20 || r.MaxFiles != 3 {
		t.Fatalf("rotation %+v", r)
	}
	for _, args := range [][]string{{"--log-max-size", "lots"}, {"--log-max-files", "0"}} {
		if _, err := parseUp(t, args...); err == nil {
			t.Errorf("up %v: no error", args)
		}
	}
}
