package web

import (
	"context"
	"net/http"

	"github.com/posterctl/posterctl/app"
)

// storeHealth is the answer of /healthz:
//
//	200 {"status":"ok","backend":B,"store_id":ID}
//	200 {"status":"degraded","backend":B,"store_id":ID,"reason":R}
//	    (the disk is full: writes get 507, reads go on, so stay in rotation)
//	503 {"status":"unavailable","backend":B,"error":R[,"store_id":ID]}
//	    (the store does not answer, its file was deleted or replaced, or its
//	    store id is not ExpectStoreID)
func (s *Server) storeHealth(ctx context.Context) (int, map[string]string) {
	down := func(id string, err error) (int, map[string]string) {
		s.Log.Warn().Err(err).Msg("health check failed")
		// An EUNAVAILABLE message says why (the database server cannot be
		// reached, the file was deleted, ...) in words meant for clients,
		// so an operator reading the LB's /health sees the cause; anything
		// else stays generic, as internal errors do everywhere.
		msg := "store unavailable"
		if app.ErrorCode(err) == app.EUNAVAILABLE {
			msg = app.ErrorMessage(err)
		}
		body := map[string]string{"status": "unavailable", "backend": s.Name, "error": msg}
		if id != "" {
			body["store_id"] = id
		}
		return http.StatusServiceUnavailable, body
	}
	if err := s.Store.Ping(ctx); err != nil {
		return down("", err)
	}
	var degraded string
	if hr, ok := s.Store.(app.HealthReporter); ok {
		var err error
		if degraded, err = hr.StoreHealth(ctx); err != nil {
			id, _ := s.Store.StoreID(ctx)
			return down(id, err)
		}
	}
	id, err := s.Store.StoreID(ctx)
	if err != nil {
		return down("", err)
	}
	if s.ExpectStoreID != "" && id != s.ExpectStoreID {
		return down(id, app.Errorf(app.EUNAVAILABLE,
			"this backend's store has store id %s, not the cluster's %s: it opened another data set", id, s.ExpectStoreID))
	}
	if degraded != "" {
		return http.StatusOK, map[string]string{"status": "degraded", "backend": s.Name, "store_id": id, "reason": degraded}
	}
	return http.StatusOK, map[string]string{"status": "ok", "backend": s.Name, "store_id": id}
}
