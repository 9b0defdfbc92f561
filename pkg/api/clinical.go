package api

import (
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/aortahealth/aorta/pkg/store"
)

// alertJSON is an alert as the API shows it.
type alertJSON struct {
	ID             uuid.UUID  `json:"id"`
	PatientKey     string     `json:"patient_key"`
	PatientID      string     `json:"patient_id"`
	Rule           string     `json:"rule"`
	Score          string     `json:"score"`
	Severity       string     `json:"severity"`
	Level          int        `json:"level"`
	Status         string     `json:"status"`
	RaisedAt       time.Time  `json:"raised_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	LastNotifiedAt time.Time  `json:"last_notified_at"`
	ScoreEventID   uuid.UUID  `json:"score_event_id"`
	ScoreAt        time.Time  `json:"score_at"`
	MessageID      uuid.UUID  `json:"message_id"`
	AcknowledgedBy *string    `json:"acknowledged_by"`
	AcknowledgedAt *time.Time `json:"acknowledged_at"`
	ResolvedAt     *time.Time `json:"resolved_at"`
}

func toAlertJSON(a store.Alert) alertJSON {
	j := alertJSON{ID: a.ID, PatientKey: a.PatientKey, PatientID: a.PatientID, Rule: a.Rule, Score: a.Score,
		Severity: a.Severity, Level: a.Level, Status: a.Status, RaisedAt: a.RaisedAt, UpdatedAt: a.UpdatedAt,
		LastNotifiedAt: a.LastNotifiedAt, ScoreEventID: a.ScoreEventID, ScoreAt: a.ScoreAt, MessageID: a.MessageID}
	if a.AcknowledgedBy != "" {
		j.AcknowledgedBy, j.AcknowledgedAt = &a.AcknowledgedBy, &a.AcknowledgedAt
	}
	if !a.ResolvedAt.IsZero() {
		j.ResolvedAt = &a.ResolvedAt
	}
	return j
}

func toAlertsJSON(as []store.Alert) []alertJSON {
	out := make([]alertJSON, 0, len(as))
	for _, a := range as {
		out = append(out, toAlertJSON(a))
	}
	return out
}

// listAlerts lists alerts, newest raised first.
func (a *API) listAlerts(w http.ResponseWriter, r *http.Request) {
	q, err := params(r, "status", "rule", "patient", "severity", "limit", "cursor")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	f := store.AlertFilter{Status: q.Get("status"), Rule: q.Get("rule"), Severity: q.Get("severity"), Patient: q.Get("patient")}
	if f.Status != "" && f.Status != "open" && f.Status != "resolved" {
		a.fail(w, r, badRequestf("status: give open or resolved"))
		return
	}
	if f.Limit, err = pageLimit(q); err != nil {
		a.fail(w, r, err)
		return
	}
	c, err := decodeCursor(q.Get("cursor"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if c != nil {
		f.After = &store.AlertCursor{RaisedAt: c.T, ID: c.ID}
	}
	f.Limit++ // one more tells whether another page follows
	alerts, err := a.store.Alerts(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	alerts, next := nextPage(alerts, f.Limit, func(a store.Alert) string {
		return encodeCursor(timeCursor{T: a.RaisedAt, ID: a.ID})
	})
	writeJSON(w, http.StatusOK, page{Items: toAlertsJSON(alerts), NextCursor: next})
}

// ackAlert records the token holder's acknowledgement of an alert.
func (a *API) ackAlert(w http.ResponseWriter, r *http.Request) {
	id, ok := a.idOnly(w, r)
	if !ok {
		return
	}
	actor := principalOf(r.Context()).name
	al, already, err := a.router.Acknowledge(r.Context(), id, actor, a.now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"alert_id": al.ID, "status": al.Status, "severity": al.Severity, "acknowledged_by": al.AcknowledgedBy,
		"acknowledged_at": al.AcknowledgedAt, "already_acknowledged": already,
	})
}

// patientScores shows a patient's current scores and open alerts.
func (a *API) patientScores(w http.ResponseWriter, r *http.Request) {
	if _, err := params(r); err != nil {
		a.fail(w, r, err)
		return
	}
	ref, err := patientParam(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	p, err := a.store.PatientScores(r.Context(), ref)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		*store.PatientState
		OpenAlerts []alertJSON `json:"open_alerts"`
	}{p, toAlertsJSON(p.OpenAlerts)})
}

// setSpO2Scale records a clinician's choice of NEWS2 SpO2 scale.
func (a *API) setSpO2Scale(w http.ResponseWriter, r *http.Request) {
	if _, err := params(r); err != nil {
		a.fail(w, r, err)
		return
	}
	ref, err := patientParam(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var body struct {
		Scale int `json:"scale"`
	}
	if err := decodeJSON(r, &body, false); err != nil {
		a.fail(w, r, err)
		return
	}
	if body.Scale != 1 && body.Scale != 2 {
		a.fail(w, r, badRequestf(`body must be {"scale": 1} or {"scale": 2}`))
		return
	}
	actor := principalOf(r.Context()).name
	key, err := a.store.SetSpO2ScaleByClinician(r.Context(), ref, body.Scale, actor, a.now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"patient_key": key, "spo2_scale": body.Scale, "set_by": actor,
		"note": "applies from the patient's next NEWS2 score"})
}
