package router

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/aortahealth/aorta/pkg/event"
	"github.com/aortahealth/aorta/pkg/route"
	"github.com/aortahealth/aorta/pkg/score"
	"github.com/aortahealth/aorta/pkg/store"
)

// Alert event types (docs/events.md).
const (
	AlertRaised       = "alert.raised"
	AlertEscalated    = "alert.escalated"
	AlertRenotified   = "alert.renotified"
	AlertResolved     = "alert.resolved"
	AlertAcknowledged = "alert.acknowledged"
)

// alert applies a patient's new current score to every alert rule on that
// score, with restraint: one open alert per patient and rule; notify on
// raising, on escalation, and again only after the rule's renotify_after;
// resolve only on a complete score below the rule, since an incomplete
// score (a lower bound) cannot show that the patient improved. An open
// alert keeps the most severe level it reached: a score that wavers
// between two levels (7, 5, 7, 5) escalates once, not at every rise, and
// the team that answered the emergency is not told it is merely urgent
// while the patient is still unwell.
func alert(ctx context.Context, st *scoringState, ps *patientState, sc *batchScoring, t scoreTarget, scoreEv store.EventRow, res score.Result) error {
	facts := ps.facts
	f := route.ScoreFacts{Total: res.Total, Risk: res.Risk, SingleParameter3: res.SingleParameter3}
	now := time.Now()
	for _, rule := range sc.routes.AlertsFor(res.Score) {
		level, holds := rule.LevelFor(f)
		open, err := st.openAlert(ctx, ps, t.patientKey, rule.Name)
		if err != nil {
			return err
		}
		var typ, previous string
		a := open
		switch {
		case holds && open == nil:
			typ = AlertRaised
			a = &store.Alert{
				ID:         event.NewID(scoreEv.ID, rule.Name, "alert"),
				PatientKey: st.tx.StateKey(t.patientKey), PatientID: t.patientID, Rule: rule.Name, Score: res.Score,
				Status: "open", RaisedAt: now,
			}
		case holds && level.Rank > open.Level:
			typ, previous = AlertEscalated, open.Severity
		case holds:
			// Unchanged or lower: follow the score without a word, unless
			// the rule asks to remind after a while.
			if rule.RenotifyAfter > 0 && now.Sub(open.LastNotifiedAt) >= rule.RenotifyAfter {
				typ = AlertRenotified
			}
		case open != nil && res.Complete:
			typ = AlertResolved
		default:
			continue // no alert, or an incomplete score that proves nothing
		}
		if holds && (open == nil || level.Rank > open.Level) {
			a.Severity, a.Level = level.Severity, level.Rank
		}
		a.ScoreEventID, a.ScoreAt, a.MessageID, a.UpdatedAt = scoreEv.ID, scoreEv.OccurredAt, t.messageID, now
		if typ == AlertResolved {
			a.Status, a.ResolvedAt = "resolved", now
		}
		if typ != "" {
			a.LastNotifiedAt = now
		}
		st.savedAlert(ps, a, typ == AlertRaised)
		if typ == "" {
			continue
		}
		ev := alertEvent(a, typ, previous, t, scoreEv, res, facts, now)
		st.w.InsertEvents([]store.EventRow{ev})
		sc.queued = deliver(st.w, rule, a, ev) || sc.queued
		sc.alerts = append(sc.alerts, alertOutcome{rule: rule.Name, typ: typ, receivedAt: t.receivedAt})
	}
	return nil
}

// deliver queues an alert event for each of the rule's destinations in
// the alert's own transaction: NOTIFY goes out at commit; webhooks and the
// log are sent by the delivery worker from the durable queue, and queued
// says the worker has work once the transaction commits.
func deliver(w *store.Pipeline, rule *route.AlertRule, a *store.Alert, ev store.EventRow) (queued bool) {
	for _, d := range rule.Destinations {
		switch d.Kind {
		case route.KindNotify:
			note, _ := json.Marshal(map[string]any{
				"event_id": ev.ID, "alert_id": a.ID, "type": ev.Type, "rule": a.Rule,
				"severity": a.Severity, "patient_key": a.PatientKey,
			})
			w.Notify(d.Channel, string(note))
		default:
			w.QueueDelivery(ev.ID, a.ID, d.Name, d.Kind)
			queued = true
		}
	}
	return queued
}

// Acknowledge records a clinician's acknowledgement of an alert and sends
// the alert.acknowledged event to the rule's destinations, so that a
// paging system can stop paging. The alert stays open until the score
// falls. A rule no longer in the routes still gets its event, with nowhere
// to deliver it.
func (r *Router) Acknowledge(ctx context.Context, id uuid.UUID, actor string, at time.Time) (a *store.Alert, already bool, err error) {
	routes := r.routes.Load()
	var queued bool
	a, already, err = r.store.AcknowledgeAlert(ctx, id, actor, at, func(ctx context.Context, tx *store.Tx, a *store.Alert) error {
		ev := AcknowledgementEvent(a, actor, at)
		w := tx.Pipeline()
		w.InsertEvents([]store.EventRow{ev})
		if rule := routes.AlertRule(a.Rule); rule != nil {
			queued = deliver(w, rule, a, ev)
		}
		return w.Run(ctx)
	})
	if err == nil && queued && r.cfg.OnDeliveries != nil {
		r.cfg.OnDeliveries()
	}
	return a, already, err
}

// alertEvent is what a rapid-response nurse needs: who and where, the
// score and level, each component with its value and time, and the
// recommended response.
func alertEvent(a *store.Alert, typ, previous string, t scoreTarget, scoreEv store.EventRow, res score.Result, facts store.Patient, now time.Time) store.EventRow {
	components := map[string]any{}
	for n, c := range res.Components {
		components[n] = map[string]any{
			"value": c.Value, "points": c.Points, "observed_at": c.ObservedAt.UTC().Format(time.RFC3339Nano), "event_id": c.EventID,
		}
	}
	missing := res.Missing
	if missing == nil {
		missing = []string{}
	}
	payload := map[string]any{
		"alert_id": a.ID, "rule": a.Rule, "score": a.Score, "severity": a.Severity, "level": a.Level, "status": a.Status,
		"previous_severity": nullIfEmpty(previous),
		"patient":           map[string]any{"id": t.patientID, "key": a.PatientKey},
		"encounter_id":      nullIfEmpty(firstNonEmpty(t.encounterID, facts.EncounterID)),
		"location":          nullIfEmpty(facts.Location),
		"total":             res.Total, "risk": res.Risk, "complete": res.Complete, "missing": missing,
		"components": components, "response": res.Response,
		"score_event_id": scoreEv.ID, "score_at": scoreEv.OccurredAt.UTC().Format(time.RFC3339Nano),
		"raised_at": a.RaisedAt.UTC().Format(time.RFC3339Nano),
	}
	body, _ := json.Marshal(payload)
	return store.EventRow{
		ID:         event.NewID(scoreEv.ID, a.Rule, typ),
		Type:       typ,
		OccurredAt: now, MessageID: t.messageID,
		PatientID: t.patientID, PatientKey: t.patientKey, EncounterID: firstNonEmpty(t.encounterID, facts.EncounterID),
		Source: t.source, Route: t.route, SchemaVersion: 1, Payload: body,
	}
}

// AcknowledgementEvent is the alert.acknowledged event for an alert.
func AcknowledgementEvent(a *store.Alert, actor string, at time.Time) store.EventRow {
	body, _ := json.Marshal(map[string]any{
		"alert_id": a.ID, "rule": a.Rule, "score": a.Score, "severity": a.Severity, "status": a.Status,
		"acknowledged_by": actor, "acknowledged_at": at.UTC().Format(time.RFC3339Nano),
		"patient": map[string]any{"id": a.PatientID, "key": a.PatientKey}, "score_event_id": a.ScoreEventID,
	})
	return store.EventRow{
		ID:         uuid.NewSHA1(a.ID, []byte("acknowledged")),
		Type:       AlertAcknowledged,
		OccurredAt: at, MessageID: a.MessageID, PatientID: a.PatientID, PatientKey: a.PatientKey,
		Source: "aorta", Route: "alert/" + a.Rule, SchemaVersion: 1, Payload: body,
	}
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
