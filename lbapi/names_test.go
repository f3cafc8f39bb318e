package lbapi

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestBackendRefJSON(t *testing.T) {
	t.Run("BothFormsRead", func(t *testing.T) {
		var in SetBackends
		body := `{"backends":["127.0.0.1:1","backend-2=127.0.0.1:2",{"address":"127.0.0.1:3","name":"backend-3"},{"address":"127.0.0.1:4"}]}`
		if err := json.Unmarshal([]byte(body), &in); err != nil {
			t.Fatal(err)
		}
		want := []BackendRef{{"127.0.0.1:1", ""}, {"127.0.0.1:2", "backend-2"}, {"127.0.0.1:3", "backend-3"}, {"127.0.0.1:4", ""}}
		if len(in.Backends) != len(want) {
			t.Fatalf("got %+v", in.Backends)
		}
		for i := range want {
			if in.Backends[i] != want[i] {
				t.Fatalf("entry %d = %+v, want %+v", i, in.Backends[i], want[i])
			}
		}
	})
	t.Run("UnnamedWritesTheOldForm", func(t *testing.T) {
		b, err := json.Marshal(SetBackends{Backends: []BackendRef{{Address: "127.0.0.1:1"}, {Address: "127.0.0.1:2", Name: "backend-2"}}})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(b), `{"backends":["127.0.0.1:1",{"address":"127.0.0.1:2","name":"backend-2"}]}`; got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	})
	t.Run("Refused", func(t *testing.T) {
		for _, body := range []string{
			`{"backends":[{"address":"127.0.0.1:1","nmae":"x"}]}`,
			`{"backends":[3001]}`,
			`{"backends":[null]}`,
			`{"backends":["127.0.0.1:1",{"address":`,
		} {
			var in SetBackends
			if err := json.Unmarshal([]byte(body), &in); err == nil {
				t.Errorf("%s: accepted as %+v", body, in)
			}
		}
	})
}

func TestSplitBackendRef(t *testing.T) {
	for in, want := range map[string]BackendRef{
		"127.0.0.1:1":                   {Address: "127.0.0.1:1"},
		"backend-1=127.0.0.1:1":         {Address: "127.0.0.1:1", Name: "backend-1"},
		"web=http://[::1]:80":           {Address: "http://[::1]:80", Name: "web"},
		"http://127.0.0.1:1":            {Address: "http://127.0.0.1:1"},
		"backend-1=127.0.0.1:1=garbage": {Address: "127.0.0.1:1=garbage", Name: "backend-1"},
	} {
		got := SplitBackendRef(in)
		if got != want {
			t.Errorf("%q: got %+v, want %+v", in, got, want)
		}
		if want.Name != "" && !strings.Contains(in, got.String()) {
			t.Errorf("%q: String() = %q", in, got.String())
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"backend-1", "a", "db.eu_west-2", strings.Repeat("x", MaxNameLen)} {
		if err := CheckName(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "back end", "a=b", "<b>", "127.0.0.1:3001", "é", strings.Repeat("x", MaxNameLen+1)} {
		if err := CheckName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
