package router

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/aortahealth/aorta/pkg/event"
	"github.com/aortahealth/aorta/pkg/route"
	"github.com/aortahealth/aorta/pkg/score"
	"github.com/aortahealth/aorta/pkg/store"
)

// Score event types. score.calculated carries a score and its inputs;
// score.skipped says why a score was not computed (a patient under 16).
const (
	ScoreCalculated = "score.calculated"
	ScoreSkipped    = "score.skipped"
)

// batchScoring is one batch's scoring work, and what it did. What it did
// is counted in metrics, and the delivery worker woken, only once the
// batch has committed: an attempt that rolls back is retried and must not
// count twice, nor wake the worker for rows that do not exist.
type batchScoring struct {
	routes  *route.Config
	targets []scoreTarget

	// Outcomes of the latest attempt of the transaction.
	scores []scoreOutcome
	alerts []alertOutcome
	queued bool // deliveries were queued
}

type scoreOutcome struct {
	score    string
	complete bool
}

type alertOutcome struct {
	rule, typ string
	// receivedAt is when the listener stored the message behind the
	// alert; zero for a replayed message, whose latency means nothing.
	receivedAt time.Time
}

// newBatchScoring returns nil when nothing in the batch needs scoring.
func newBatchScoring(routes *route.Config, batch []store.Processed) *batchScoring {
	targets := scoreTargets(routes, batch)
	if len(targets) == 0 {
		return nil
	}
	return &batchScoring{routes: routes, targets: targets}
}

// work is what the batch's transaction runs once its state is written.
func (sc *batchScoring) work(r *Router) func(context.Context, *store.Tx) error {
	if sc == nil {
		return nil
	}
	return func(ctx context.Context, tx *store.Tx) error {
		sc.scores, sc.alerts, sc.queued = sc.scores[:0], sc.alerts[:0], false
		return r.scoreBatch(ctx, tx, sc)
	}
}

// committed records the outcomes of the attempt that committed.
func (sc *batchScoring) committed(r *Router) {
	if sc == nil {
		return
	}
	if sc.queued && r.cfg.OnDeliveries != nil {
		r.cfg.OnDeliveries()
	}
	m := r.cfg.Metrics
	for _, o := range sc.scores {
		m.scored(o.score, o.complete)
	}
	now := time.Now()
	for _, o := range sc.alerts {
		m.alerted(o.rule, o.typ, o.receivedAt, now)
	}
}

// scoreTarget is a patient whose observations, written by a route with
// score handlers, need scoring at their clinical time.
type scoreTarget struct {
	patientKey  string
	patientID   string
	encounterID string
	source      string
	route       string
	messageID   uuid.UUID
	handlers    []string
	at          time.Time
	// receivedAt is when the message was stored; zero for a replay.
	receivedAt time.Time
	// later are the batch's messages after this one. Their observations
	// are already in the transaction's state, but they arrived after this
	// message, so they do not make its observations late (scoreOne): a
	// set is scored the same whether the next one is in its batch or not.
	later []uuid.UUID
	// spo2Scale is set when the message charts the patient's SpO2 scale
	// (the parameter routes.yaml names in scoring.spo2_scale).
	spo2Scale int
	scaleAt   time.Time
	scaleBy   string
}

// scoreTargets finds what a batch must score: for every observation event
// of a route with handlers, its patient at its clinical time, once.
func scoreTargets(routes *route.Config, batch []store.Processed) []scoreTarget {
	var targets []scoreTarget
	seen := map[string]int{}
	ids := make([]uuid.UUID, len(batch))
	for i, p := range batch {
		ids[i] = p.Work.MessageID
	}
	for bi, p := range batch {
		if p.Status != store.Routed {
			continue
		}
		for _, e := range p.Events {
			o := e.Observation
			if o == nil || e.PatientKey == "" {
				continue
			}
			rt := routes.Route(e.Route)
			if rt == nil || len(rt.Handlers) == 0 {
				continue
			}
			key := fmt.Sprint(p.Work.MessageID, e.Route, e.PatientKey, o.ObservedAt.UnixNano())
			i, ok := seen[key]
			if !ok {
				i = len(targets)
				seen[key] = i
				t := scoreTarget{
					patientKey: e.PatientKey, patientID: e.PatientID, encounterID: e.EncounterID, source: e.Source,
					route: e.Route, messageID: p.Work.MessageID, handlers: rt.Handlers, at: o.ObservedAt,
					later: ids[bi+1:],
				}
				if !p.Work.Replay {
					t.receivedAt = p.Work.ReceivedAt
				}
				targets = append(targets, t)
			}
			if sp := routes.Scoring.SpO2ScaleParameter; sp != "" && o.Parameter == sp && e.Type != event.ObservationRetracted {
				if n, err := decimal.NewFromString(o.Text); err == nil && (n.Equal(decimal.NewFromInt(1)) || n.Equal(decimal.NewFromInt(2))) {
					targets[i].spo2Scale, targets[i].scaleAt = int(n.IntPart()), o.ObservedAt
					targets[i].scaleBy = "observation " + e.ID.String()
				}
			}
		}
	}
	return targets
}

// scoreBatch computes the scores a batch's observations call for, inside
// the batch's transaction, and hands each new current score to alerting.
func (r *Router) scoreBatch(ctx context.Context, tx *store.Tx, sc *batchScoring) error {
	for _, t := range sc.targets {
		if t.spo2Scale != 0 {
			if err := tx.SetSpO2Scale(ctx, t.patientKey, t.patientID, t.spo2Scale, t.scaleBy, t.scaleAt); err != nil {
				return err
			}
		}
	}
	for _, t := range sc.targets {
		facts, err := tx.Patient(ctx, t.patientKey)
		if err != nil {
			return err
		}
		for _, name := range t.handlers {
			if err := r.scoreOne(ctx, tx, sc, t, name, facts); err != nil {
				return fmt.Errorf("score %s: %w", name, err)
			}
		}
	}
	return nil
}

func (r *Router) scoreOne(ctx context.Context, tx *store.Tx, sc *batchScoring, t scoreTarget, name string, facts store.Patient) error {
	routes := sc.routes
	params := score.Parameters(name)
	statuses := routes.Scoring.Statuses
	times := []time.Time{t.at}
	// A late, corrected or retracted observation changes the score at its
	// own time, and also the current picture if it still falls within it.
	if latest, ok, err := tx.LatestObservedAt(ctx, t.patientKey, params, statuses, t.later); err != nil {
		return err
	} else if ok && latest.After(t.at) {
		times = append(times, latest)
	}
	for i, at := range times {
		p := score.Patient{SpO2Scale: facts.SpO2Scale, Age: ageAt(facts.BirthDate, at)}
		if ok, reason := score.Applicable(p); !ok {
			if i > 0 {
				return nil
			}
			return tx.InsertEvents(ctx, []store.EventRow{r.scoreEvent(t, name, at, ScoreSkipped, map[string]any{
				"score": name, "as_of": at.UTC().Format(time.RFC3339Nano), "reason": reason,
			})})
		}
		freshness := make(map[string]time.Duration, len(params))
		for _, prm := range params {
			freshness[prm] = routes.Scoring.FreshnessOf(prm)
		}
		stored, err := tx.LatestValues(ctx, t.patientKey, at, freshness, statuses)
		if err != nil {
			return err
		}
		vals := make(map[string]score.Value, len(stored))
		for _, v := range stored {
			sv := score.Value{Parameter: v.Parameter, Coded: v.Text, ObservedAt: v.ObservedAt, EventID: v.EventID}
			if v.Numeric != "" {
				if sv.Numeric, err = decimal.NewFromString(v.Numeric); err != nil {
					return fmt.Errorf("stored value of %s: %w", v.Parameter, err)
				}
			}
			vals[v.Parameter] = sv
		}
		var res score.Result
		switch name {
		case score.NameNEWS2:
			res = score.NEWS2(p, vals)
		case score.NameQSOFA:
			res = score.QSOFA(p, vals, score.Options{GCSThreshold: routes.Scoring.GCSThreshold})
		case score.NameSIRS:
			res = score.SIRS(p, vals)
		default:
			return fmt.Errorf("unknown score %q", name)
		}
		ev := r.scoreEvent(t, name, at, ScoreCalculated, scorePayload(res, at, i > 0))
		if err := tx.InsertEvents(ctx, []store.EventRow{ev}); err != nil {
			return err
		}
		current, err := tx.SaveScore(ctx, t.patientKey, store.Score{
			Score: name, At: at, Total: res.Total, Risk: res.Risk, Complete: res.Complete, EventID: ev.ID,
		})
		if err != nil {
			return err
		}
		if current {
			sc.scores = append(sc.scores, scoreOutcome{name, res.Complete})
			if err := alert(ctx, tx, sc, t, ev, res, facts); err != nil {
				return err
			}
		}
	}
	return nil
}

// scoreEvent builds a score event with an ID deterministic from the
// message, route, score and clinical time, so a replay adds nothing.
func (r *Router) scoreEvent(t scoreTarget, name string, at time.Time, typ string, payload map[string]any) store.EventRow {
	body, _ := json.Marshal(payload)
	return store.EventRow{
		ID:         event.NewID(t.messageID, t.route, "score/"+name+"/"+at.UTC().Format(time.RFC3339Nano)),
		Type:       typ,
		OccurredAt: at, MessageID: t.messageID,
		PatientID: t.patientID, PatientKey: t.patientKey, EncounterID: t.encounterID,
		Source: t.source, Route: t.route, SchemaVersion: 1, Payload: body,
	}
}

// scorePayload is the public body of score.calculated (docs/events.md).
func scorePayload(res score.Result, at time.Time, currentPicture bool) map[string]any {
	components := map[string]any{}
	names := make([]string, 0, len(res.Components))
	for n := range res.Components {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := res.Components[n]
		components[n] = map[string]any{
			"value": c.Value, "points": c.Points, "parameter": c.Parameter, "criterion": nullIfEmpty(c.Criterion),
			"observed_at": c.ObservedAt.UTC().Format(time.RFC3339Nano), "event_id": c.EventID,
		}
	}
	inputs := res.Inputs
	if inputs == nil {
		inputs = []uuid.UUID{}
	}
	missing := res.Missing
	if missing == nil {
		missing = []string{}
	}
	p := map[string]any{
		"score": res.Score, "as_of": at.UTC().Format(time.RFC3339Nano), "total": res.Total,
		"risk": res.Risk, "response": res.Response, "complete": res.Complete, "missing": missing,
		"components": components, "inputs": inputs, "current_picture": currentPicture,
	}
	if res.Score == score.NameNEWS2 {
		p["spo2_scale"] = res.Scale
		p["single_parameter_3"] = res.SingleParameter3
		p["on_oxygen"] = res.OnOxygen
	}
	return p
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// ageAt is the age in whole years at a time, nil when the birth date is
// unknown.
func ageAt(birth, at time.Time) *int {
	if birth.IsZero() {
		return nil
	}
	at = at.UTC()
	age := at.Year() - birth.Year()
	if at.Month() < birth.Month() || (at.Month() == birth.Month() && at.Day() < birth.Day()) {
		age--
	}
	return &age
}
