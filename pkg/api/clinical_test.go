package api_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/aortahealth/aorta/pkg/api"
	"github.com/aortahealth/aorta/pkg/store"
)

type alertItem struct {
	ID             uuid.UUID `json:"id"`
	PatientKey     string    `json:"patient_key"`
	Rule           string    `json:"rule"`
	Severity       string    `json:"severity"`
	Status         string    `json:"status"`
	AcknowledgedBy *string   `json:"acknowledged_by"`
}

func TestAlerts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// A resolved alert of another patient, raised earlier.
	f.query(`INSERT INTO alerts (id, patient_key, patient_id, rule, score, severity, level, status, raised_at, updated_at, last_notified_at,
			score_event_id, score_at, message_id, resolved_at)
		SELECT gen_random_uuid(), 'HOSP/P2', 'P2', 'news2', 'news2', 'urgent', 1, 'resolved', raised_at - interval '1 hour', updated_at,
			last_notified_at, score_event_id, score_at, message_id, now()
		FROM alerts WHERE id = $1 RETURNING 1`, []any{f.alert}, new(int))
	tests := []struct {
		query string
		want  []string // rule/patient/status, newest first
	}{
		{"", []string{"news2 HOSP/P1 open", "sepsis-screen HOSP/P1 open", "news2 HOSP/P2 resolved"}},
		{"status=open", []string{"news2 HOSP/P1 open", "sepsis-screen HOSP/P1 open"}},
		{"status=resolved", []string{"news2 HOSP/P2 resolved"}},
		{"rule=news2", []string{"news2 HOSP/P1 open", "news2 HOSP/P2 resolved"}},
		{"severity=urgent", []string{"news2 HOSP/P2 resolved"}},
		{"patient=P2", []string{"news2 HOSP/P2 resolved"}},
		{"patient=HOSP%2FP1&rule=sepsis-screen", []string{"sepsis-screen HOSP/P1 open"}},
		{"patient=NOBODY", nil},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			var got list[alertItem]
			f.call(api.RoleViewer, http.MethodGet, "/api/v1/alerts?"+tt.query, "", http.StatusOK, &got)
			var s []string
			for _, a := range got.Items {
				s = append(s, a.Rule+" "+a.PatientKey+" "+a.Status)
			}
			// The two open alerts were raised by the same score at the
			// same time: order between them is by ID.
			if len(s) == 3 || (len(s) == 2 && strings.HasSuffix(s[1], "open")) {
				slices.Sort(s[:2])
				slices.Sort(tt.want[:2])
			}
			if !slices.Equal(s, tt.want) {
				t.Errorf("got %v, want %v", s, tt.want)
			}
		})
	}
	// Pages of one visit all three.
	seen, path := 0, "/api/v1/alerts?limit=1"
	for {
		var p list[alertItem]
		f.call(api.RoleViewer, http.MethodGet, path, "", http.StatusOK, &p)
		seen += len(p.Items)
		if p.NextCursor == nil {
			break
		}
		path = "/api/v1/alerts?limit=1&cursor=" + *p.NextCursor
	}
	if seen != 3 {
		t.Errorf("pages of one visited %d alerts, want 3", seen)
	}
	f.call(api.RoleViewer, http.MethodGet, "/api/v1/alerts?status=closed", "", http.StatusBadRequest, nil)
}

func TestAcknowledgeAlert(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	path := "/api/v1/alerts/" + f.alert.String() + "/ack"
	var got struct {
		AlertID        uuid.UUID `json:"alert_id"`
		Status         string    `json:"status"`
		AcknowledgedBy string    `json:"acknowledged_by"`
		Already        bool      `json:"already_acknowledged"`
	}
	f.call(api.RoleClinician, http.MethodPost, path, "", http.StatusOK, &got)
	if got.AlertID != f.alert || got.AcknowledgedBy != "clinician-token" || got.Already || got.Status != "open" {
		t.Errorf("ack: %+v, want acknowledged by the token's name, still open", got)
	}
	f.call(api.RoleAdmin, http.MethodPost, path, "", http.StatusOK, &got)
	if !got.Already || got.AcknowledgedBy != "clinician-token" {
		t.Errorf("second ack: %+v, want already acknowledged by clinician-token", got)
	}
	if n := f.count(`SELECT count(*) FROM audit_log WHERE action = 'alert.acknowledge' AND actor = 'clinician-token' AND target = $1`, f.alert.String()); n != 1 {
		t.Errorf("%d audit rows, want 1 (the second acknowledgement changes nothing)", n)
	}
	if n := f.count(`SELECT count(*) FROM events WHERE type = 'alert.acknowledged' AND payload->>'acknowledged_by' = 'clinician-token'`); n != 1 {
		t.Errorf("%d alert.acknowledged events, want 1", n)
	}
	f.call(api.RoleClinician, http.MethodPost, "/api/v1/alerts/"+uuid.NewString()+"/ack", "", http.StatusNotFound, nil)
	f.call(api.RoleClinician, http.MethodPost, "/api/v1/alerts/not-an-id/ack", "", http.StatusBadRequest, nil)
}

func TestPatientScores(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var p struct {
		store.PatientState
		OpenAlerts []alertItem `json:"open_alerts"`
	}
	for _, ref := range []string{"HOSP%2FP1", "P1"} {
		f.call(api.RoleViewer, http.MethodGet, "/api/v1/patients/"+ref+"/scores", "", http.StatusOK, &p)
		var scores []string
		for _, s := range p.Scores {
			scores = append(scores, fmt.Sprintf("%s %d %v", s.Score, s.Total, s.Complete))
			if len(s.Payload) < 10 {
				t.Errorf("score %s payload %s, want the score.calculated payload", s.Score, s.Payload)
			}
		}
		if p.PatientKey != "HOSP/P1" || p.SpO2Scale != 1 || len(p.Scores) != 3 || len(p.OpenAlerts) != 2 || p.Status == nil || *p.Status != "admitted" {
			t.Errorf("%s: %+v, scores %v; want HOSP/P1 admitted, scale 1, news2 qsofa sirs, two open alerts", ref, p.PatientState, scores)
		}
	}
	f.call(api.RoleViewer, http.MethodGet, "/api/v1/patients/HOSP%2FNOBODY/scores", "", http.StatusNotFound, nil)
	// The same ID under two authorities is ambiguous.
	f.query(`INSERT INTO patients (patient_key, patient_id) VALUES ('OTHER/P1', 'P1') RETURNING 1`, nil, new(int))
	f.call(api.RoleViewer, http.MethodGet, "/api/v1/patients/P1/scores", "", http.StatusConflict, nil)
}

func TestSpO2Scale(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	path := "/api/v1/patients/HOSP%2FP1/spo2-scale"
	for _, body := range []string{`{"scale": 3}`, `{"scale": "2"}`, `{}`, ``, `{"scale": 2, "by": "x"}`} {
		f.call(api.RoleClinician, http.MethodPut, path, body, http.StatusBadRequest, nil)
	}
	f.call(api.RoleClinician, http.MethodPut, "/api/v1/patients/HOSP%2FNOBODY/spo2-scale", `{"scale": 2}`, http.StatusNotFound, nil)
	var got struct {
		PatientKey string `json:"patient_key"`
		Scale      int    `json:"spo2_scale"`
		SetBy      string `json:"set_by"`
	}
	f.call(api.RoleClinician, http.MethodPut, path, `{"scale": 2}`, http.StatusOK, &got)
	if got.PatientKey != "HOSP/P1" || got.Scale != 2 || got.SetBy != "clinician-token" {
		t.Errorf("set scale: %+v, want HOSP/P1 scale 2 set by clinician-token", got)
	}
	var by string
	var scale int
	f.query(`SELECT spo2_scale, spo2_scale_set_by FROM patients WHERE patient_key = 'HOSP/P1'`, nil, &scale, &by)
	if scale != 2 || by != "clinician-token" {
		t.Errorf("patients row: scale %d set by %q", scale, by)
	}
	if n := f.count(`SELECT count(*) FROM audit_log WHERE action = 'patient.spo2_scale' AND actor = 'clinician-token' AND target = 'HOSP/P1' AND details->>'scale' = '2'`); n != 1 {
		t.Errorf("%d audit rows, want 1 (refused requests are not audited)", n)
	}
}
