package router

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
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
//
// Scoring writes nothing it reads back but the patient's current scores
// and open alerts, which it reads once per patient and then keeps itself;
// so it reads everything else first, in two pipelined round trips (the
// patients, the times of their latest observations, their current scores
// and open alerts; then the values at each time to score), computes, and
// sends what it writes in a third, in the order it was computed. Each
// saved score is checked to have become current, or not, as expected.
func (r *Router) scoreBatch(ctx context.Context, tx *store.Tx, sc *batchScoring) error {
	for _, t := range sc.targets {
		if t.spo2Scale != 0 {
			if err := tx.SetSpO2Scale(ctx, t.patientKey, t.patientID, t.spo2Scale, t.scaleBy, t.scaleAt); err != nil {
				return err
			}
		}
	}
	routes := sc.routes
	statuses := routes.Scoring.Statuses
	st := &scoringState{
		tx: tx, w: tx.Pipeline(),
		patients: map[string]*patientState{}, values: map[string]*[]store.Value{},
	}

	// Round trip 1: the patients and their latest observation times.
	reads := tx.Pipeline()
	type plan struct {
		p      *patientState
		params []string // every handler's parameters
		latest map[string]time.Time
	}
	plans := make([]plan, len(sc.targets))
	for i, t := range sc.targets {
		key := tx.StateKey(t.patientKey)
		ps := st.patients[key]
		if ps == nil {
			ps = &patientState{scores: map[string]time.Time{}, open: map[string]*store.Alert{}, stale: map[string]bool{}}
			st.patients[key] = ps
			reads.Patient(t.patientKey, &ps.facts)
			reads.CurrentScores(t.patientKey, ps.scores)
			reads.OpenAlerts(t.patientKey, ps.open)
		}
		plans[i] = plan{p: ps, params: unionParameters(t.handlers), latest: map[string]time.Time{}}
		reads.LatestObservedAt(t.patientKey, plans[i].params, statuses, t.later, plans[i].latest)
	}
	if err := reads.Run(ctx); err != nil {
		return fmt.Errorf("score: %w", err)
	}

	// Round trip 2: the values at each time a score is computed at.
	for i, t := range sc.targets {
		pl := plans[i]
		for _, at := range scoreTimes(t, pl.latest) {
			if ok, _ := score.Applicable(score.Patient{SpO2Scale: pl.p.facts.SpO2Scale, Age: ageAt(pl.p.facts.BirthDate, at)}); !ok {
				continue
			}
			k := valuesKey(tx.StateKey(t.patientKey), at, pl.params)
			if st.values[k] != nil {
				continue
			}
			dst := new([]store.Value)
			st.values[k] = dst
			freshness := make(map[string]time.Duration, len(pl.params))
			for _, prm := range pl.params {
				freshness[prm] = routes.Scoring.FreshnessOf(prm)
			}
			reads.LatestValues(t.patientKey, at, freshness, statuses, dst)
		}
	}
	if err := reads.Run(ctx); err != nil {
		return fmt.Errorf("score: %w", err)
	}

	// Compute; round trip 3 (and more only when an alert raised in this
	// batch is met again): the writes.
	for i, t := range sc.targets {
		pl := plans[i]
		for _, name := range t.handlers {
			if err := r.scoreOne(ctx, st, sc, t, name, pl.p, pl.params, pl.latest); err != nil {
				return fmt.Errorf("score %s: %w", name, err)
			}
		}
	}
	if err := st.w.Run(ctx); err != nil {
		return fmt.Errorf("score: %w", err)
	}
	return nil
}

// scoringState is what scoring knows of a batch's patients while it
// computes, and the writes it has queued.
type scoringState struct {
	tx       *store.Tx
	w        *store.Pipeline // writes, sent at the end
	patients map[string]*patientState
	// values read, by valuesKey
	values map[string]*[]store.Value
}

// patientState is a patient's facts, and the current scores and open
// alerts as the writes queued so far leave them.
type patientState struct {
	facts  store.Patient
	scores map[string]time.Time // current score's clinical time, by score
	open   map[string]*store.Alert
	// stale marks rules whose open alert must be read again: one raised
	// here may have replaced a row of the same ID (a replay), whose
	// columns the upsert keeps.
	stale map[string]bool
}

// openAlert is the patient's open alert for a rule, as Tx.OpenAlert would
// read it now.
func (st *scoringState) openAlert(ctx context.Context, ps *patientState, patientKey, rule string) (*store.Alert, error) {
	if ps.stale[rule] {
		if err := st.w.Run(ctx); err != nil {
			return nil, err
		}
		a, err := st.tx.OpenAlert(ctx, patientKey, rule)
		if err != nil {
			return nil, err
		}
		delete(ps.stale, rule)
		if a == nil {
			delete(ps.open, rule)
		} else {
			ps.open[rule] = a
		}
	}
	return ps.open[rule], nil
}

// savedAlert queues an alert's row and keeps it as the patient's open
// alert as the database will hold it.
func (st *scoringState) savedAlert(ps *patientState, a *store.Alert, raised bool) {
	st.w.SaveAlert(a)
	switch {
	case raised:
		ps.stale[a.Rule] = true
	case a.Status != "open":
		delete(ps.open, a.Rule)
	default:
		// The row read, with the columns saved: times as stored, to the
		// microsecond.
		c := *a
		c.UpdatedAt, c.LastNotifiedAt, c.ScoreAt = storedTime(c.UpdatedAt), storedTime(c.LastNotifiedAt), storedTime(c.ScoreAt)
		ps.open[a.Rule] = &c
	}
}

// storedTime is t as a timestamptz column keeps it (pgx sends whole
// microseconds).
func storedTime(t time.Time) time.Time { return t.Truncate(time.Microsecond) }

// unionParameters are the parameters any of the scores reads, sorted.
func unionParameters(scores []string) []string {
	var ps []string
	for _, name := range scores {
		for _, p := range score.Parameters(name) {
			if !slices.Contains(ps, p) {
				ps = append(ps, p)
			}
		}
	}
	sort.Strings(ps)
	return ps
}

func valuesKey(stateKey string, at time.Time, params []string) string {
	return stateKey + "\x00" + strconv.FormatInt(at.UnixNano(), 10) + "\x00" + strings.Join(params, ",")
}

// latestOf is the newest of params' latest observation times.
func latestOf(latest map[string]time.Time, params []string) (at time.Time, ok bool) {
	for _, p := range params {
		if t, found := latest[p]; found && (!ok || t.After(at)) {
			at, ok = t, true
		}
	}
	return at, ok
}

// scoreTimes are every time any handler of t may be computed at.
func scoreTimes(t scoreTarget, latest map[string]time.Time) []time.Time {
	times := []time.Time{t.at}
	for _, name := range t.handlers {
		if at, ok := latestOf(latest, score.Parameters(name)); ok && at.After(t.at) && !slices.ContainsFunc(times, at.Equal) {
			times = append(times, at)
		}
	}
	return times
}

func (r *Router) scoreOne(ctx context.Context, st *scoringState, sc *batchScoring, t scoreTarget, name string, ps *patientState, union []string, latest map[string]time.Time) error {
	routes := sc.routes
	params := score.Parameters(name)
	facts := ps.facts
	times := []time.Time{t.at}
	// A late, corrected or retracted observation changes the score at its
	// own time, and also the current picture if it still falls within it.
	if at, ok := latestOf(latest, params); ok && at.After(t.at) {
		times = append(times, at)
	}
	for i, at := range times {
		p := score.Patient{SpO2Scale: facts.SpO2Scale, Age: ageAt(facts.BirthDate, at)}
		if ok, reason := score.Applicable(p); !ok {
			if i > 0 {
				return nil
			}
			st.w.InsertEvents([]store.EventRow{r.scoreEvent(t, name, at, ScoreSkipped, map[string]any{
				"score": name, "as_of": at.UTC().Format(time.RFC3339Nano), "reason": reason,
			})})
			return nil
		}
		stored := st.values[valuesKey(st.tx.StateKey(t.patientKey), at, union)]
		if stored == nil {
			return fmt.Errorf("no values read at %s", at) // scoreBatch reads them all
		}
		vals := make(map[string]score.Value, len(params))
		for _, v := range *stored {
			if !slices.Contains(params, v.Parameter) {
				continue
			}
			sv := score.Value{Parameter: v.Parameter, Coded: v.Text, ObservedAt: v.ObservedAt, EventID: v.EventID}
			if v.Numeric != "" {
				var err error
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
		st.w.InsertEvents([]store.EventRow{ev})
		// SaveScore makes it current unless a later one is.
		prev, had := ps.scores[name]
		current := !had || !prev.After(storedTime(at))
		if current {
			ps.scores[name] = storedTime(at)
		}
		st.w.SaveScore(t.patientKey, store.Score{
			Score: name, At: at, Total: res.Total, Risk: res.Risk, Complete: res.Complete, EventID: ev.ID,
		}, current)
		if current {
			sc.scores = append(sc.scores, scoreOutcome{name, res.Complete})
			if err := alert(ctx, st, ps, sc, t, ev, res); err != nil {
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
