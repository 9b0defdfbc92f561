package consolebench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// SeedResult is what a seed wrote and how long it took.
type SeedResult struct {
	Messages     int64   `json:"messages"`
	Events       int64   `json:"events"`
	Routing      int64   `json:"message_routing"`
	DeadLetters  int64   `json:"dead_letters"`
	OpenDead     int64   `json:"dead_letters_open"`
	Alerts       int64   `json:"alerts"`
	OpenAlerts   int64   `json:"alerts_open"`
	Patients     int64   `json:"patients"`
	Observations int64   `json:"observations"`
	Scores       int64   `json:"scores"`
	Rows         int64   `json:"rows"`
	CopySeconds  float64 `json:"copy_seconds"`    // the batches, commits included
	TotalSeconds float64 `json:"total_seconds"`   // with the state tables and VACUUM ANALYZE
	RowsPerSec   float64 `json:"rows_per_second"` // Rows / TotalSeconds
	MessagesPerS float64 `json:"messages_per_second"`
	DatabaseSize string  `json:"database_size"`
}

// batchSize is messages per transaction: large enough that COPY's
// per-statement cost vanishes, small enough that a worker's rows stay a
// few megabytes.
const batchSize = 5000

// Columns written by COPY. Other columns (added by later migrations) keep
// their defaults, so a seed still fits a schema that has grown.
var (
	messageCols = []string{"id", "received_at", "listener", "remote_addr", "raw", "raw_sha256",
		"sending_application", "sending_facility", "receiving_application", "receiving_facility",
		"message_type", "trigger_event", "message_structure", "control_id", "processing_id", "version",
		"patient_key", "partition_key", "status", "ack_code", "ack", "error_code", "error_location", "error",
		"control_id_reused", "duplicate_count", "last_duplicate_at"}
	// received_at as the router writes it (migration 00012): left out, a
	// trigger would fill it in row by row.
	routingCols = []string{"message_id", "status", "routes", "events", "attempts", "routed_at", "error", "received_at"}
	eventCols   = []string{"id", "type", "occurred_at", "recorded_at", "message_id", "patient_id", "patient_key",
		"encounter_id", "source", "route", "schema_version", "payload"}
	deadCols = []string{"message_id", "patient_key", "route", "error", "attempts", "created_at", "resolved_at",
		"resolution", "resolved_by"}
)

// state is the per-patient state the router keeps, gathered while the
// batches are made: the latest of each, whoever made it.
type state struct {
	mu       sync.Mutex
	adt      map[int]*adtState
	obs      map[obsKey]*obsState
	scores   map[int]*scoreState
	alerts   []alertRow
	messages int64
	events   int64
	routing  int64
	dead     int64
}

type adtState struct {
	m       *message // header fields only are read
	eventID uuid.UUID
	at      time.Time
	typ     string
}

type obsKey struct {
	patient   int
	parameter string
}

type obsState struct {
	patientKey string
	obs        observation
	eventID    uuid.UUID
	messageID  uuid.UUID
	at         time.Time
}

type scoreState struct {
	patientKey string
	eventID    uuid.UUID
	at         time.Time
	s          scoreSeed
}

type alertRow struct {
	a          alertSeed
	patientKey string
	patientID  string
	messageID  uuid.UUID
}

// merge folds one batch's state into s: the newest of each wins.
func (s *state) merge(b *state) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range b.adt {
		if cur, ok := s.adt[k]; !ok || v.at.After(cur.at) {
			s.adt[k] = v
		}
	}
	for k, v := range b.obs {
		if cur, ok := s.obs[k]; !ok || v.at.After(cur.at) {
			s.obs[k] = v
		}
	}
	for k, v := range b.scores {
		if cur, ok := s.scores[k]; !ok || v.at.After(cur.at) {
			s.scores[k] = v
		}
	}
	s.alerts = append(s.alerts, b.alerts...)
	s.messages += b.messages
	s.events += b.events
	s.routing += b.routing
	s.dead += b.dead
}

func newState() *state {
	return &state{adt: map[int]*adtState{}, obs: map[obsKey]*obsState{}, scores: map[int]*scoreState{}}
}

// Seed writes plan into the migrated, empty database at url with COPY in
// batches from workers connections, then the per-patient state, then
// VACUUM ANALYZE. progress gets a line now and then.
func Seed(ctx context.Context, url string, plan Plan, workers int, progress io.Writer) (*SeedResult, error) {
	plan.defaults()
	g, err := newGenerator(plan)
	if err != nil {
		return nil, err
	}
	workers = max(workers, 1)
	began := time.Now()
	st := newState()
	batches := (plan.Messages + batchSize - 1) / batchSize
	next := make(chan int)
	errc := make(chan error, workers)
	var done sync.WaitGroup
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range workers {
		done.Add(1)
		go func() {
			defer done.Done()
			errc <- seedWorker(wctx, url, g, next, st)
		}()
	}
	// Batches are handed out in time order, so the tables grow roughly
	// in received_at order, as in production.
	lastReport := time.Now()
feed:
	for b := range batches {
		select {
		case next <- b:
		case <-wctx.Done():
			break feed
		}
		if time.Since(lastReport) > 10*time.Second {
			lastReport = time.Now()
			st.mu.Lock()
			n := st.messages
			st.mu.Unlock()
			fmt.Fprintf(progress, "consolebench: seeded %d of %d messages (%.0f/s)\n", n, plan.Messages, float64(n)/time.Since(began).Seconds())
		}
	}
	close(next)
	done.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		if err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res := &SeedResult{Messages: st.messages, Events: st.events, Routing: st.routing, DeadLetters: st.dead}
	res.CopySeconds = time.Since(began).Seconds()
	fmt.Fprintf(progress, "consolebench: %d messages, %d events in %.0f s; writing per-patient state\n", st.messages, st.events, res.CopySeconds)

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("seed: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := writeState(ctx, conn, plan, st, res); err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "consolebench: VACUUM ANALYZE\n")
	if _, err := conn.Exec(ctx, "VACUUM (ANALYZE)"); err != nil {
		return nil, fmt.Errorf("seed: vacuum analyze: %w", err)
	}
	if err := conn.QueryRow(ctx, `SELECT pg_size_pretty(pg_database_size(current_database())),
			(SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL)`).Scan(&res.DatabaseSize, &res.OpenDead); err != nil {
		return nil, fmt.Errorf("seed: size: %w", err)
	}
	res.Rows = res.Messages + res.Events + res.Routing + res.DeadLetters + res.Alerts + res.Patients + res.Observations + res.Scores
	res.TotalSeconds = time.Since(began).Seconds()
	res.RowsPerSec = float64(res.Rows) / res.TotalSeconds
	res.MessagesPerS = float64(res.Messages) / res.TotalSeconds
	return res, nil
}

// seedWorker writes the batches it is handed, each in one transaction.
func seedWorker(ctx context.Context, url string, g *generator, next <-chan int, st *state) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	// A seed is thrown away if the machine fails: no need to wait for
	// each commit's flush.
	cfg.RuntimeParams["synchronous_commit"] = "off"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("seed: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for b := range next {
		if err := seedBatch(ctx, conn, g, b, st); err != nil {
			return fmt.Errorf("seed: batch %d: %w", b, err)
		}
	}
	return nil
}

// seedBatch writes messages [b*batchSize, ...) and their routing, events
// and dead letters in one transaction, parents first: the foreign keys
// are checked as in production.
func seedBatch(ctx context.Context, conn *pgx.Conn, g *generator, b int, st *state) error {
	from, to := b*batchSize, min((b+1)*batchSize, g.plan.Messages)
	local := newState()
	var msgs, routing, events, dead [][]any
	for i := from; i < to; i++ {
		m := g.message(i)
		var pkey *string
		var part *int32
		if m.Status == "accepted" {
			k, p := m.PatientKey, partitionOf(m.PatientKey)
			pkey, part = &k, &p
		}
		msgs = append(msgs, []any{m.ID, m.ReceivedAt, listenerOf(i), m.Sender.Remote, m.Raw, m.SHA256,
			m.Sender.App, m.Sender.Facility, "AORTA", "AORTA",
			m.Type, m.Trigger, m.Structure, m.ControlID, "P", m.Version,
			pkey, part, m.Status, m.AckCode, m.ACK, nullInt(m.ErrorCode), nullString(m.ErrorLocation), nullString(m.Error),
			m.Reused, m.DuplicateCount, nullTime(m.LastDuplicateAt)})
		if m.Status != "accepted" {
			continue
		}
		var errText *string
		if m.DeadLetter != nil {
			errText = &m.DeadLetter.Error
		}
		routes := m.Routes
		if routes == nil {
			routes = []string{}
		}
		routing = append(routing, []any{m.ID, m.Routing, routes, len(m.Events), 1, m.RoutedAt, errText, m.ReceivedAt})
		source := m.Sender.App + "^" + m.Sender.Facility
		for _, e := range m.Events {
			events = append(events, []any{e.ID, e.Type, e.OccurredAt, m.RoutedAt, m.ID, m.PatientID, m.PatientKey,
				m.Encounter, source, e.Route, 1, string(e.Payload)})
			local.note(m, e)
		}
		if d := m.DeadLetter; d != nil {
			dead = append(dead, []any{m.ID, m.PatientKey, d.Route, d.Error, d.Attempts, m.RoutedAt,
				nullTime(d.ResolvedAt), nullString(d.Resolution), nullString(d.ResolvedBy)})
		}
		if m.Alert != nil {
			local.alerts = append(local.alerts, alertRow{a: *m.Alert, patientKey: m.PatientKey, patientID: m.PatientID, messageID: m.ID})
		}
	}
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, c := range []struct {
			table string
			cols  []string
			rows  [][]any
		}{{"messages", messageCols, msgs}, {"message_routing", routingCols, routing}, {"events", eventCols, events}, {"dead_letters", deadCols, dead}} {
			if len(c.rows) == 0 {
				continue
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows)); err != nil {
				return fmt.Errorf("copy %s: %w", c.table, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	local.messages, local.events, local.routing, local.dead = int64(len(msgs)), int64(len(events)), int64(len(routing)), int64(len(dead))
	st.merge(local)
	return nil
}

// note keeps what event e of m changes in the per-patient state.
func (s *state) note(m *message, e event) {
	switch {
	case e.Obs != nil:
		k := obsKey{m.Patient, e.Obs.Parameter}
		if cur, ok := s.obs[k]; !ok || e.OccurredAt.After(cur.at) {
			s.obs[k] = &obsState{patientKey: m.PatientKey, obs: *e.Obs, eventID: e.ID, messageID: m.ID, at: e.OccurredAt}
		}
	case e.Score != nil:
		if cur, ok := s.scores[m.Patient]; !ok || e.OccurredAt.After(cur.at) {
			s.scores[m.Patient] = &scoreState{patientKey: m.PatientKey, eventID: e.ID, at: e.OccurredAt, s: *e.Score}
		}
	case m.Type == "ADT":
		if cur, ok := s.adt[m.Patient]; !ok || e.OccurredAt.After(cur.at) {
			s.adt[m.Patient] = &adtState{m: m, eventID: e.ID, at: e.OccurredAt, typ: e.Type}
		}
	}
}

// listenerOf spreads the messages over two listener instances.
func listenerOf(i int) string { return []string{"aorta-mllp-1", "aorta-mllp-2"}[i%2] }

// writeState writes the tables the router keeps per patient (patients,
// observations, scores) and the alerts, as the seeded events left them.
func writeState(ctx context.Context, conn *pgx.Conn, plan Plan, st *state, res *SeedResult) error {
	var patients, obs, scores, alerts [][]any
	for p, a := range st.adt {
		status := map[string]string{"patient.admitted": "admitted", "patient.transferred": "admitted",
			"patient.discharged": "discharged", "patient.updated": "admitted"}[a.typ]
		birth := time.Date(1940, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, (p*7919)%(50*365))
		patients = append(patients, []any{a.m.PatientKey, a.m.PatientID, a.m.Encounter, status, a.m.Location,
			a.typ, a.at, a.eventID, birth})
	}
	for _, o := range st.obs {
		v, err := strconv.ParseFloat(o.obs.Value, 64)
		if err != nil {
			return fmt.Errorf("seed: observation value %q: %w", o.obs.Value, err)
		}
		obs = append(obs, []any{o.patientKey, o.obs.Key, o.eventID, o.messageID, o.obs.Parameter, o.obs.System, o.obs.Code,
			v, o.obs.Unit, "F", o.at})
	}
	for _, s := range st.scores {
		scores = append(scores, []any{s.patientKey, "news2", s.at, s.s.Total, s.s.Risk, true, s.eventID})
	}
	// One open alert per patient and rule at most (alerts_one_open_idx):
	// the newest of each, if raised in the last two days; the others
	// resolved. Half of the open ones acknowledged.
	slices.SortFunc(st.alerts, func(a, b alertRow) int { return a.a.RaisedAt.Compare(b.a.RaisedAt) })
	newest := map[string]int{}
	for i, a := range st.alerts {
		newest[a.patientKey+"|"+a.a.Severity] = i
	}
	for i, a := range st.alerts {
		rule := "news2-" + a.a.Severity
		status, resolved := "open", &a.a.RaisedAt
		var ackBy *string
		var ackAt *time.Time
		if newest[a.patientKey+"|"+a.a.Severity] == i && plan.End.Sub(a.a.RaisedAt) < 48*time.Hour {
			resolved = nil
			if i%2 == 0 {
				by, at := "dr.okafor", a.a.RaisedAt.Add(4*time.Minute)
				ackBy, ackAt = &by, &at
			}
		} else {
			status = "resolved"
			t := a.a.RaisedAt.Add(time.Duration(20+i%200) * time.Minute)
			resolved = &t
		}
		updated := a.a.RaisedAt
		if resolved != nil {
			updated = *resolved
		}
		alerts = append(alerts, []any{a.a.ID, a.patientKey, a.patientID, rule, "news2", a.a.Severity, a.a.Level, status,
			a.a.RaisedAt, updated, a.a.RaisedAt, a.a.ScoreID, a.a.RaisedAt, a.messageID, ackBy, ackAt, resolved})
	}
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, c := range []struct {
			table string
			cols  []string
			rows  [][]any
		}{
			{"patients", []string{"patient_key", "patient_id", "encounter_id", "status", "location", "last_event_type",
				"last_event_at", "last_event_id", "birth_date"}, patients},
			{"observations", []string{"patient_key", "observation_key", "event_id", "message_id", "parameter", "code_system",
				"code", "value_numeric", "unit", "status", "observed_at"}, obs},
			{"scores", []string{"patient_key", "score", "calculated_at", "total", "risk", "complete", "event_id"}, scores},
			{"alerts", []string{"id", "patient_key", "patient_id", "rule", "score", "severity", "level", "status",
				"raised_at", "updated_at", "last_notified_at", "score_event_id", "score_at", "message_id",
				"acknowledged_by", "acknowledged_at", "resolved_at"}, alerts},
		} {
			if len(c.rows) == 0 {
				continue
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows)); err != nil {
				return fmt.Errorf("copy %s: %w", c.table, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("seed: per-patient state: %w", err)
	}
	res.Patients, res.Observations, res.Scores, res.Alerts = int64(len(patients)), int64(len(obs)), int64(len(scores)), int64(len(alerts))
	for _, a := range alerts {
		if a[7] == "open" {
			res.OpenAlerts++
		}
	}
	return nil
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nullInt(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
