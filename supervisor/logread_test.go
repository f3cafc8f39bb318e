package supervisor

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeLog(t *testing.T, dir, name, content string, appendTo bool) {
	t.Helper()
	flag := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if appendTo {
		flag = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(filepath.Join(dir, name+".log"), flag, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
}

func texts(lines []LogLine) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.Name + ":" + l.Text + "\n")
	}
	return b.String()
}

func TestLogTail(t *testing.T) {
	dir := t.TempDir()
	line := func(sec, msg string) string {
		return `{"time":"2026-01-01T00:00:` + sec + `Z","message":"` + msg + `"}` + "\n"
	}
	writeLog(t, dir, "backend-1", line("01", "b1 first")+line("03", "b1 second")+"panic: no time\n", false)
	writeLog(t, dir, "lb", line("02", "lb first")+line("04", "lb second")+`{"time":"2026-01-01T00:00:05Z","message":"half`, false)
	writeLog(t, dir, "supervisor", line("00", "sup"), false)

	tl, err := OpenLogTail(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tl.Last(100)
	if err != nil {
		t.Fatal(err)
	}
	want := "backend-1:" + strings.TrimSpace(line("01", "b1 first")) + "\n" +
		"lb:" + strings.TrimSpace(line("02", "lb first")) + "\n" +
		"backend-1:" + strings.TrimSpace(line("03", "b1 second")) + "\n" +
		"backend-1:panic: no time\n" + // keeps the time of the line before it
		"lb:" + strings.TrimSpace(line("04", "lb second")) + "\n"
	if texts(got) != want {
		t.Fatalf("merged:\n%s\nwant (in time order, no supervisor, no half line):\n%s", texts(got), want)
	}
	if got, _ := tl.Last(2); len(got) != 2 || got[1].Text != strings.TrimSpace(line("04", "lb second")) {
		t.Fatalf("Last(2) = %s", texts(got))
	}

	// Poll: the half line once ended, a new child's log, a truncated log.
	writeLog(t, dir, "lb", ` ends"}`+"\n", true)
	writeLog(t, dir, "backend-2", line("06", "b2 new"), false)
	got, err = tl.Poll()
	if err != nil {
		t.Fatal(err)
	}
	if s := texts(got); !strings.Contains(s, `lb:{"time":"2026-01-01T00:00:05Z","message":"half ends"}`) || !strings.Contains(s, "backend-2:") || len(got) != 2 {
		t.Fatalf("poll:\n%s", s)
	}
	if got, _ := tl.Poll(); len(got) != 0 {
		t.Fatalf("second poll repeats: %s", texts(got))
	}
	writeLog(t, dir, "backend-1", line("07", "after rotation"), false)
	if got, _ := tl.Poll(); len(got) != 1 || !strings.Contains(got[0].Text, "after rotation") {
		t.Fatalf("after truncation: %s", texts(got))
	}

	t.Run("OneName", func(t *testing.T) {
		tl, err := OpenLogTail(dir, "supervisor")
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := tl.Last(10); len(got) != 1 || got[0].Name != "supervisor" {
			t.Fatalf("supervisor log: %s", texts(got))
		}
	})
	t.Run("UnknownName", func(t *testing.T) {
		_, err := OpenLogTail(dir, "backend-9")
		if err == nil || !strings.Contains(err.Error(), "known: backend-1, backend-2, lb, supervisor") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("NoDir", func(t *testing.T) {
		_, err := OpenLogTail(filepath.Join(dir, "none"), "")
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("LongLog", func(t *testing.T) {
		d := t.TempDir()
		var b strings.Builder
		for i := range 20000 {
			b.WriteString(strings.Repeat("x", i%50) + "\n")
		}
		writeLog(t, d, "big", b.String(), false)
		tl, _ := OpenLogTail(d, "big")
		got, err := tl.Last(3)
		if err != nil || len(got) != 3 || got[2].Text != strings.Repeat("x", 19999%50) {
			t.Fatalf("last 3 of a long log: %v %q", err, texts(got))
		}
	})
}
