package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/aortahealth/aorta/pkg/router"
	"github.com/aortahealth/aorta/pkg/store"
)

// userHeader names the clinician acting through the API. It is trusted as
// given until API tokens arrive (issue #5); keep the admin address on
// loopback or behind an authenticating proxy until then.
const userHeader = "X-Aorta-User"

// maxBody bounds API request bodies.
const maxBody = 64 << 10

// clinicalAPI mounts the endpoints clinicians use: the SpO2 scale of a
// patient and alert acknowledgement. Both are audited.
func clinicalAPI(r chi.Router, st *store.Store, rt *router.Router) {
	r.Put("/api/v1/patients/{patient_id}/spo2-scale", func(w http.ResponseWriter, req *http.Request) {
		actor, ok := requireActor(w, req)
		if !ok {
			return
		}
		ref, err := url.PathUnescape(chi.URLParam(req, "patient_id"))
		if err != nil || ref == "" {
			apiError(w, http.StatusBadRequest, "patient_id: give authority/id (URL-encoded) or an unambiguous ID")
			return
		}
		var body struct {
			Scale int `json:"scale"`
		}
		if err := decodeBody(req, &body); err != nil || (body.Scale != 1 && body.Scale != 2) {
			apiError(w, http.StatusBadRequest, `body must be {"scale": 1} or {"scale": 2}`)
			return
		}
		key, err := st.SetSpO2ScaleByClinician(req.Context(), ref, body.Scale, actor, time.Now())
		switch {
		case errors.Is(err, store.ErrNotFound):
			apiError(w, http.StatusNotFound, "no such patient")
		case errors.Is(err, store.ErrAmbiguous):
			apiError(w, http.StatusConflict, err.Error())
		case err != nil:
			apiError(w, http.StatusServiceUnavailable, "could not record the scale; try again")
		default:
			writeJSON(w, http.StatusOK, map[string]any{"patient_key": key, "spo2_scale": body.Scale, "set_by": actor,
				"note": "applies from the patient's next NEWS2 score"})
		}
	})
	r.Post("/api/v1/alerts/{id}/ack", func(w http.ResponseWriter, req *http.Request) {
		actor, ok := requireActor(w, req)
		if !ok {
			return
		}
		id, err := uuid.Parse(chi.URLParam(req, "id"))
		if err != nil {
			apiError(w, http.StatusBadRequest, "id: not an alert ID")
			return
		}
		a, already, err := rt.Acknowledge(req.Context(), id, actor, time.Now())
		switch {
		case errors.Is(err, store.ErrNotFound):
			apiError(w, http.StatusNotFound, "no such alert")
		case err != nil:
			apiError(w, http.StatusServiceUnavailable, "could not record the acknowledgement; try again")
		default:
			writeJSON(w, http.StatusOK, map[string]any{
				"alert_id": a.ID, "status": a.Status, "severity": a.Severity, "acknowledged_by": a.AcknowledgedBy,
				"acknowledged_at": a.AcknowledgedAt, "already_acknowledged": already,
			})
		}
	})
}

func requireActor(w http.ResponseWriter, req *http.Request) (string, bool) {
	actor := req.Header.Get(userHeader)
	if actor == "" || len(actor) > 200 {
		apiError(w, http.StatusUnauthorized, "say who you are in the "+userHeader+" header")
		return "", false
	}
	return actor, true
}

func decodeBody(req *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(req.Body, maxBody))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func apiError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
