package lbapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fakeLB serves the admin API over a set held in memory.
func fakeLB(t *testing.T) (*Client, *[]AdminBackend) {
	t.Helper()
	set := &[]AdminBackend{{Address: "127.0.0.1:1", State: StateDown}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathAdminBackends, func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(AdminBackends{Backends: *set})
	})
	mux.HandleFunc("PUT "+PathAdminBackends, func(w http.ResponseWriter, r *http.Request) {
		var in SetBackends
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || len(in.Backends) == 0 {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(Error{Error: "want backends"})
			return
		}
		*set = nil
		for _, a := range in.Backends {
			*set = append(*set, AdminBackend{Address: a.Address, Name: a.Name, State: StateHealthy})
		}
		_ = json.NewEncoder(w).Encode(AdminBackends{Backends: *set})
	})
	mux.HandleFunc("POST "+PathAdminBackends+"/{addr}/drain", func(w http.ResponseWriter, r *http.Request) {
		for i := range *set {
			if (*set)[i].Address == r.PathValue("addr") {
				(*set)[i].State = StateDraining
				_ = json.NewEncoder(w).Encode((*set)[i])
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(Error{Error: "no backend " + r.PathValue("addr")})
	})
	mux.HandleFunc("GET "+PathHealth, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(Health{Status: StatusDown, PID: 7})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c := NewClient(srv.URL, 5*time.Second)
	t.Cleanup(c.Close)
	return c, set
}

func TestClient(t *testing.T) {
	ctx := context.Background()
	c, _ := fakeLB(t)

	t.Run("SetListDrain", func(t *testing.T) {
		if err := c.Set(ctx, []string{"backend-1=127.0.0.1:2", "127.0.0.1:3"}); err != nil {
			t.Fatal(err)
		}
		if err := c.Drain(ctx, "127.0.0.1:3"); err != nil {
			t.Fatal(err)
		}
		l, err := c.List(ctx)
		if err != nil || len(l) != 2 || l[0].State != StateHealthy || l[1].State != StateDraining {
			t.Fatalf("list = %+v, %v", l, err)
		}
		if l[0].Name != "backend-1" || l[0].Address != "127.0.0.1:2" || l[1].Name != "" {
			t.Fatalf("names not passed on: %+v", l)
		}
	})
	t.Run("ErrorCarriesMessage", func(t *testing.T) {
		err := c.Drain(ctx, "127.0.0.1:9")
		if err == nil || !strings.Contains(err.Error(), "no backend 127.0.0.1:9") {
			t.Fatalf("err = %v", err)
		}
		if err := c.Set(ctx, nil); err == nil || !strings.Contains(err.Error(), "want backends") {
			t.Fatalf("empty set: err = %v", err)
		}
	})
	t.Run("HealthDecodes503", func(t *testing.T) {
		h, code, err := c.Health(ctx)
		if err != nil || code != http.StatusServiceUnavailable || h.Status != StatusDown || h.PID != 7 {
			t.Fatalf("health = %+v, %d, %v", h, code, err)
		}
	})
	t.Run("AwaitEndsWithContext", func(t *testing.T) {
		actx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		last, err := c.Await(actx, "127.0.0.1:3", Healthy)
		if err == nil || last == nil || last.State != StateDraining {
			t.Fatalf("await = %+v, %v", last, err)
		}
		if _, err := c.Await(ctx, "127.0.0.1:2", Healthy); err != nil {
			t.Fatal(err)
		}
	})
}
