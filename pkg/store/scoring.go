package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// Tx is the transaction a batch is applied in, as offered to the router's
// score and alert handlers: what they read sees the batch's own state
// changes, and what they write commits with them.
type Tx struct {
	tx    pgx.Tx
	links map[string]string
	// events are the transaction's events, inserted together at its end
	// (insertEvents), in the order they were produced.
	events []EventRow
}

// deferEvent adds e to the events inserted at the end. For a correction
// or retraction it also queues on b the read of the event it replaces (the
// observation's current version, as the statements queued before have
// left it) into the payload's replaces key.
func (t *Tx) deferEvent(b *pgx.Batch, e *EventRow, key string) {
	i := len(t.events)
	t.events = append(t.events, *e)
	rk := replacesKey(e, key)
	if b == nil || rk == nil {
		return
	}
	b.Queue(`SELECT event_id FROM observations WHERE patient_key = $1 AND observation_key = $2`, key, *rk).QueryRow(func(row pgx.Row) error {
		var replaced uuid.UUID
		switch err := row.Scan(&replaced); {
		case errors.Is(err, pgx.ErrNoRows):
			return nil // an original never seen: replaces stays null
		case err != nil:
			return fmt.Errorf("read the observation a correction replaces: %w", err)
		}
		payload, err := SetReplaces(t.events[i].Payload, replaced)
		if err != nil {
			return err
		}
		t.events[i].Payload = payload
		return nil
	})
}

// insertEventsSQL inserts events in the order of the arrays, so that their
// seq follows it.
const insertEventsSQL = `INSERT INTO events (id, type, occurred_at, message_id, patient_id, patient_key, encounter_id, source, route, schema_version, payload)
	SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::uuid[], $5::text[], $6::text[], $7::text[],
		$8::text[], $9::text[], $10::int4[], $11::jsonb[])
	ON CONFLICT (id) DO NOTHING`

// insertEvents writes the transaction's events, last: it takes the lock
// that orders events by commit (eventSeqLock) only now, so that routers
// applying other lanes wait for it only while this transaction inserts
// its events and commits, not while it writes state and computes scores.
// Every row lock the transaction needs was taken before, and the lock's
// holder takes none after it, so waiting for it cannot deadlock.
func (t *Tx) insertEvents(ctx context.Context) error {
	if len(t.events) == 0 {
		return nil
	}
	n := len(t.events)
	text := func(s string) pgtype.Text {
		if s == "" {
			return pgtype.Text{}
		}
		return pgtype.Text{String: clean(s), Valid: true}
	}
	var (
		id, messageID                      = make(pgtype.FlatArray[[16]byte], n), make(pgtype.FlatArray[[16]byte], n)
		typ, source, route                 = make(pgtype.FlatArray[string], n), make(pgtype.FlatArray[string], n), make(pgtype.FlatArray[string], n)
		occurredAt                         = make(pgtype.FlatArray[time.Time], n)
		patientID, patientKey, encounterID = make(pgtype.FlatArray[pgtype.Text], n), make(pgtype.FlatArray[pgtype.Text], n), make(pgtype.FlatArray[pgtype.Text], n)
		schemaVersion                      = make(pgtype.FlatArray[int32], n)
		payload                            = make(pgtype.FlatArray[[]byte], n)
	)
	for i, e := range t.events {
		id[i], messageID[i], typ[i], occurredAt[i] = e.ID, e.MessageID, e.Type, e.OccurredAt
		patientID[i], patientKey[i], encounterID[i] = text(e.PatientID), text(e.PatientKey), text(e.EncounterID)
		source[i], route[i], schemaVersion[i], payload[i] = clean(e.Source), e.Route, int32(e.SchemaVersion), e.Payload
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, eventSeqLock)
	b.Queue(insertEventsSQL, id, typ, occurredAt, messageID, patientID, patientKey, encounterID, source, route, schemaVersion, payload)
	if err := t.tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("write events: %w", err)
	}
	t.events = nil
	return nil
}

// StateKey is the key a patient's state is kept under, after merges.
func (t *Tx) StateKey(patientKey string) string { return stateKey(patientKey, t.links) }

// Value is one parameter's latest valid value.
type Value struct {
	Parameter  string
	Numeric    string // exact decimal, "" when not numeric
	Text       string // coded value
	Status     string
	ObservedAt time.Time
	EventID    uuid.UUID
}

// Patient is what scoring and alerting need to know about a patient.
type Patient struct {
	PatientID   string
	BirthDate   time.Time // zero when unknown
	SpO2Scale   int
	Location    string
	EncounterID string
}

// SetSpO2Scale records a patient's NEWS2 SpO2 scale and who set it.
func (t *Tx) SetSpO2Scale(ctx context.Context, patientKey, patientID string, scale int, by string, at time.Time) error {
	return setSpO2Scale(ctx, t.tx, t.StateKey(patientKey), patientID, scale, by, at)
}

func setSpO2Scale(ctx context.Context, q pgx.Tx, key, patientID string, scale int, by string, at time.Time) error {
	_, err := q.Exec(ctx, `INSERT INTO patients AS p (patient_key, patient_id, spo2_scale, spo2_scale_set_by, spo2_scale_set_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (patient_key) DO UPDATE SET spo2_scale = EXCLUDED.spo2_scale, spo2_scale_set_by = EXCLUDED.spo2_scale_set_by,
			spo2_scale_set_at = EXCLUDED.spo2_scale_set_at, updated_at = now()
		WHERE p.spo2_scale_set_at IS NULL OR p.spo2_scale_set_at <= EXCLUDED.spo2_scale_set_at`,
		key, clean(patientID), scale, clean(by), at)
	if err != nil {
		return fmt.Errorf("set SpO2 scale: %w", err)
	}
	return nil
}

// Score is a patient's score of one kind at a clinical time.
type Score struct {
	Score    string
	At       time.Time
	Total    int
	Risk     string
	Complete bool
	EventID  uuid.UUID
}

const saveScoreSQL = `INSERT INTO scores AS s (patient_key, score, calculated_at, total, risk, complete, event_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (patient_key, score) DO UPDATE SET calculated_at = EXCLUDED.calculated_at, total = EXCLUDED.total,
			risk = EXCLUDED.risk, complete = EXCLUDED.complete, event_id = EXCLUDED.event_id, updated_at = now()
		WHERE s.calculated_at <= EXCLUDED.calculated_at`

const insertEventSQL = `INSERT INTO events (id, type, occurred_at, message_id, patient_id, patient_key, encounter_id, source, route, schema_version, payload)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING`

// Alert is an alert's state (the alerts table).
type Alert struct {
	ID             uuid.UUID
	PatientKey     string
	PatientID      string
	Rule           string
	Score          string
	Severity       string
	Level          int
	Status         string // open or resolved
	RaisedAt       time.Time
	UpdatedAt      time.Time
	LastNotifiedAt time.Time
	ScoreEventID   uuid.UUID
	ScoreAt        time.Time
	MessageID      uuid.UUID
	AcknowledgedBy string
	AcknowledgedAt time.Time
	ResolvedAt     time.Time
}

const alertColumns = `id, patient_key, patient_id, rule, score, severity, level, status, raised_at, updated_at, last_notified_at,
	score_event_id, score_at, message_id, coalesce(acknowledged_by, ''), acknowledged_at, resolved_at`

func scanAlert(row pgx.Row) (*Alert, error) {
	var a Alert
	var ackAt, resolvedAt *time.Time
	err := row.Scan(&a.ID, &a.PatientKey, &a.PatientID, &a.Rule, &a.Score, &a.Severity, &a.Level, &a.Status, &a.RaisedAt, &a.UpdatedAt,
		&a.LastNotifiedAt, &a.ScoreEventID, &a.ScoreAt, &a.MessageID, &a.AcknowledgedBy, &ackAt, &resolvedAt)
	if err != nil {
		return nil, err
	}
	if ackAt != nil {
		a.AcknowledgedAt = *ackAt
	}
	if resolvedAt != nil {
		a.ResolvedAt = *resolvedAt
	}
	return &a, nil
}

// OpenAlert returns the patient's open alert for a rule, locked for this
// transaction, or nil when there is none.
func (t *Tx) OpenAlert(ctx context.Context, patientKey, rule string) (*Alert, error) {
	a, err := scanAlert(t.tx.QueryRow(ctx, `SELECT `+alertColumns+` FROM alerts
		WHERE patient_key = $1 AND rule = $2 AND status = 'open' FOR UPDATE`, t.StateKey(patientKey), rule))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read open alert: %w", err)
	}
	return a, nil
}

const saveAlertSQL = `INSERT INTO alerts (id, patient_key, patient_id, rule, score, severity, level, status, raised_at, updated_at,
			last_notified_at, score_event_id, score_at, message_id, acknowledged_by, acknowledged_at, resolved_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
		ON CONFLICT (id) DO UPDATE SET severity = EXCLUDED.severity, level = EXCLUDED.level, status = EXCLUDED.status,
			updated_at = EXCLUDED.updated_at, last_notified_at = EXCLUDED.last_notified_at, score_event_id = EXCLUDED.score_event_id,
			score_at = EXCLUDED.score_at, message_id = EXCLUDED.message_id, acknowledged_by = EXCLUDED.acknowledged_by,
			acknowledged_at = EXCLUDED.acknowledged_at, resolved_at = EXCLUDED.resolved_at`

func saveAlert(ctx context.Context, q pgx.Tx, a *Alert) error {
	if _, err := q.Exec(ctx, saveAlertSQL, alertArgs(a)...); err != nil {
		return fmt.Errorf("save alert: %w", err)
	}
	return nil
}

// alertArgs are saveAlertSQL's arguments for an alert.
func alertArgs(a *Alert) []any {
	var ackBy *string
	var ackAt, resolvedAt *time.Time
	if a.AcknowledgedBy != "" {
		ackBy, ackAt = &a.AcknowledgedBy, &a.AcknowledgedAt
	}
	if !a.ResolvedAt.IsZero() {
		resolvedAt = &a.ResolvedAt
	}
	return []any{[16]byte(a.ID), a.PatientKey, clean(a.PatientID), a.Rule, a.Score, a.Severity, a.Level, a.Status, a.RaisedAt, a.UpdatedAt,
		a.LastNotifiedAt, [16]byte(a.ScoreEventID), a.ScoreAt, [16]byte(a.MessageID), ackBy, ackAt, resolvedAt}
}

const queueDeliverySQL = `INSERT INTO deliveries (event_id, alert_id, destination, kind) VALUES ($1, $2, $3, $4)
		ON CONFLICT (event_id, destination) DO NOTHING`

const notifySQL = `SELECT pg_notify($1, $2)`

// ErrNotFound is returned when the patient or alert named does not exist.
var ErrNotFound = errors.New("store: not found")

// ErrAmbiguous is returned when a bare patient ID names patients of
// several assigning authorities.
var ErrAmbiguous = errors.New("store: patient ID is ambiguous; give authority/id")

// audit records who did what, in the caller's transaction. The address
// the request came from (WithAuditClient), when there is one, is added
// to the details as "client": an access log must say where from.
func audit(ctx context.Context, q pgx.Tx, actor, action, target string, details []byte) error {
	if details == nil {
		details = []byte("{}")
	}
	var client pgtype.Text
	if c, ok := ctx.Value(auditClientKey{}).(string); ok && c != "" {
		client = pgtype.Text{String: clean(c), Valid: true}
	}
	_, err := q.Exec(ctx, `INSERT INTO audit_log (actor, action, target, details)
		VALUES ($1, $2, $3, CASE WHEN $5::text IS NULL THEN $4::jsonb ELSE $4::jsonb || jsonb_build_object('client', $5::text) END)`,
		clean(actor), action, clean(target), details, client)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

type auditClientKey struct{}

// WithAuditClient returns ctx carrying the address a request came from
// (the client's, past any trusted proxy), which every audit row written
// with it records in its details as "client".
func WithAuditClient(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, auditClientKey{}, addr)
}

// resolvePatient finds a patient by key ("authority/id") or, failing that,
// by a bare ID when only one authority uses it; merged-away keys lead to
// the survivor.
func resolvePatient(ctx context.Context, q pgx.Tx, ref string) (key, id string, err error) {
	rows, err := q.Query(ctx, `
		SELECT coalesce(l.surviving_key, p.patient_key), p.patient_id FROM patients p
		LEFT JOIN patient_links l ON l.prior_key = p.patient_key
		WHERE p.patient_key = $1
		UNION
		SELECT coalesce(l.surviving_key, p.patient_key), p.patient_id FROM patients p
		LEFT JOIN patient_links l ON l.prior_key = p.patient_key
		WHERE p.patient_id = $1 AND NOT EXISTS (SELECT 1 FROM patients WHERE patient_key = $1)`, ref)
	if err != nil {
		return "", "", fmt.Errorf("find patient: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		if err := rows.Scan(&key, &id); err != nil {
			return "", "", fmt.Errorf("find patient: %w", err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return "", "", fmt.Errorf("find patient: %w", err)
	}
	switch n {
	case 0:
		return "", "", ErrNotFound
	case 1:
		return key, id, nil
	}
	return "", "", ErrAmbiguous
}

// SetSpO2ScaleByClinician records a clinician's choice of NEWS2 SpO2 scale
// for a patient (named by "authority/id" or an unambiguous ID) and audits
// it. It returns the patient key.
func (s *Store) SetSpO2ScaleByClinician(ctx context.Context, patientRef string, scale int, actor string, at time.Time) (string, error) {
	var key string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		k, id, err := resolvePatient(ctx, tx, patientRef)
		if err != nil {
			return err
		}
		key = k
		if err := setSpO2Scale(ctx, tx, k, id, scale, actor, at); err != nil {
			return err
		}
		return audit(ctx, tx, actor, "patient.spo2_scale", k, fmt.Appendf(nil, `{"scale": %d}`, scale))
	})
	return key, err
}

// AcknowledgeAlert records that actor acknowledged an alert: the alert row
// and the audit row, and whatever then writes in the same transaction (the
// alert.acknowledged event and its deliveries). An alert acknowledged
// already is returned unchanged with already set, and then is not called.
func (s *Store) AcknowledgeAlert(ctx context.Context, id uuid.UUID, actor string, at time.Time, then func(context.Context, *Tx, *Alert) error) (a *Alert, already bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		a, err = scanAlert(tx.QueryRow(ctx, `SELECT `+alertColumns+` FROM alerts WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("read alert: %w", err)
		}
		if a.AcknowledgedBy != "" {
			already = true
			return nil
		}
		a.AcknowledgedBy, a.AcknowledgedAt, a.UpdatedAt = actor, at, at
		if err := saveAlert(ctx, tx, a); err != nil {
			return err
		}
		t := &Tx{tx: tx}
		if err := then(ctx, t, a); err != nil {
			return err
		}
		if err := audit(ctx, tx, actor, "alert.acknowledge", id.String(), nil); err != nil {
			return err
		}
		// Its event takes its seq in commit order, as the router's do,
		// with the lock taken last as they take it.
		return t.insertEvents(ctx)
	})
	return a, already, err
}

// Pipeline queues statements of a Tx and sends them to the server
// together, in one round trip (a pgx batch); what they read is written
// into the destinations given when queued, once Run returns. Statements
// run in the order queued, each seeing what the earlier ones wrote.
// Scoring reads what a batch's scores need in two pipelines and writes
// everything they produce in a third, instead of some fifteen statements
// one after the other per score target.
type Pipeline struct {
	t *Tx
	b pgx.Batch
}

// Pipeline returns an empty pipeline of the transaction.
func (t *Tx) Pipeline() *Pipeline { return &Pipeline{t: t} }

// Len is the number of statements queued.
func (p *Pipeline) Len() int { return p.b.Len() }

// Run sends the queued statements and fills their destinations; the
// pipeline is then empty. The first error ends it (and the transaction).
func (p *Pipeline) Run(ctx context.Context) error {
	if p.b.Len() == 0 {
		return nil
	}
	b := p.b
	p.b = pgx.Batch{}
	return p.t.tx.SendBatch(ctx, &b).Close()
}

const latestValuesSQL = `
		SELECT v.parameter, coalesce(v.value_numeric::text, ''), coalesce(v.value_text, ''), v.status, v.observed_at, v.event_id
		FROM unnest($2::text[], $3::interval[]) AS p(name, window_)
		CROSS JOIN LATERAL (
			SELECT parameter, value_numeric, value_text, status, observed_at, event_id FROM observations
			WHERE patient_key = $1 AND parameter = p.name
			  AND observed_at <= $4 AND observed_at > $4 - p.window_
			  AND status = ANY($5) AND status NOT IN ('D', 'W')
			  AND (value_numeric IS NOT NULL OR value_text IS NOT NULL)
			ORDER BY observed_at DESC LIMIT 1) v`

func scanValues(rows pgx.Rows) ([]Value, error) {
	var vs []Value
	for rows.Next() {
		var v Value
		if err := rows.Scan(&v.Parameter, &v.Numeric, &v.Text, &v.Status, &v.ObservedAt, &v.EventID); err != nil {
			return nil, fmt.Errorf("scan value: %w", err)
		}
		vs = append(vs, v)
	}
	return vs, rows.Err()
}

// LatestValues queues a read, into *dst, of each parameter in freshness:
// the value observed most recently at or before at, no older than the
// parameter's freshness window (a value exactly that old no longer
// counts), with one of the given statuses (never D or W: a retracted
// value is no value).
func (p *Pipeline) LatestValues(patientKey string, at time.Time, freshness map[string]time.Duration, statuses []string, dst *[]Value) {
	params := make([]string, 0, len(freshness))
	windows := make([]time.Duration, 0, len(freshness))
	for prm, w := range freshness {
		params, windows = append(params, prm), append(windows, w)
	}
	p.b.Queue(latestValuesSQL, p.t.StateKey(patientKey), params, windows, at, statuses).Query(func(rows pgx.Rows) error {
		vs, err := scanValues(rows)
		if err != nil {
			return fmt.Errorf("read latest values: %w", err)
		}
		*dst = vs
		return nil
	})
}

// LatestObservedAt queues, for each of params the patient has a valid
// observation of, the clinical time of the newest, into dst: the time a
// patient's current picture is computed at is the latest of its
// parameters'. Observations last written by the messages in exclude (a
// batch's messages after the one being scored, which arrived after it)
// are left out.
func (p *Pipeline) LatestObservedAt(patientKey string, params, statuses []string, exclude []uuid.UUID, dst map[string]time.Time) {
	// [16]byte: pgx encodes uuid.UUID elements through their
	// driver.Valuer, a string formatted and parsed again.
	ids := make([][16]byte, len(exclude)) // never nil: <> ALL(NULL) would exclude everything
	for i, id := range exclude {
		ids[i] = id
	}
	p.b.Queue(`SELECT parameter, max(observed_at) FROM observations
		WHERE patient_key = $1 AND parameter = ANY($2) AND status = ANY($3) AND status NOT IN ('D', 'W')
		  AND message_id <> ALL($4::uuid[])
		GROUP BY parameter`,
		p.t.StateKey(patientKey), params, statuses, ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var prm string
			var at time.Time
			if err := rows.Scan(&prm, &at); err != nil {
				return fmt.Errorf("read latest observation times: %w", err)
			}
			dst[prm] = at
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read latest observation times: %w", err)
		}
		return nil
	})
}

const patientSQL = `SELECT patient_id, birth_date, spo2_scale, location, encounter_id FROM patients WHERE patient_key = $1`

func scanPatient(row pgx.Row) (Patient, error) {
	p := Patient{SpO2Scale: 1}
	var birth *time.Time
	var loc, enc *string
	err := row.Scan(&p.PatientID, &birth, &p.SpO2Scale, &loc, &enc)
	if errors.Is(err, pgx.ErrNoRows) {
		return Patient{SpO2Scale: 1}, nil
	}
	if err != nil {
		return Patient{SpO2Scale: 1}, fmt.Errorf("read patient: %w", err)
	}
	if birth != nil {
		p.BirthDate = *birth
	}
	if loc != nil {
		p.Location = *loc
	}
	if enc != nil {
		p.EncounterID = *enc
	}
	return p, nil
}

// Patient queues a read of a patient's facts into *dst; an unknown
// patient has scale 1 and nothing else.
func (p *Pipeline) Patient(patientKey string, dst *Patient) {
	p.b.Queue(patientSQL, p.t.StateKey(patientKey)).QueryRow(func(row pgx.Row) error {
		var err error
		*dst, err = scanPatient(row)
		return err
	})
}

// CurrentScores queues a read of the clinical time of each of the
// patient's current scores (table scores), by score, into dst: SaveScore
// makes a score current when none is or when it is not older than the
// current one.
func (p *Pipeline) CurrentScores(patientKey string, dst map[string]time.Time) {
	p.b.Queue(`SELECT score, calculated_at FROM scores WHERE patient_key = $1`, p.t.StateKey(patientKey)).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var name string
			var at time.Time
			if err := rows.Scan(&name, &at); err != nil {
				return fmt.Errorf("read current scores: %w", err)
			}
			dst[name] = at
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read current scores: %w", err)
		}
		return nil
	})
}

// OpenAlerts queues a read of the patient's open alerts, locked for this
// transaction, by rule, into dst.
func (p *Pipeline) OpenAlerts(patientKey string, dst map[string]*Alert) {
	p.b.Queue(`SELECT `+alertColumns+` FROM alerts
		WHERE patient_key = $1 AND status = 'open' ORDER BY id FOR UPDATE`, p.t.StateKey(patientKey)).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			a, err := scanAlert(rows)
			if err != nil {
				return fmt.Errorf("read open alerts: %w", err)
			}
			dst[a.Rule] = a
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read open alerts: %w", err)
		}
		return nil
	})
}

// InsertEvents adds events produced inside the transaction (scores,
// alerts) to those it inserts at its end (Tx.insertEvents); an event
// already written (a replay) is left as it is.
func (p *Pipeline) InsertEvents(rows []EventRow) {
	p.t.events = append(p.t.events, rows...)
}

// ErrScoreNotCurrent is returned by a pipeline's SaveScore when the score
// saved did not become current as the caller expected, or did when it
// did not expect so.
var ErrScoreNotCurrent = errors.New("store: score currency differs from expected")

// SaveScore queues recording a computed score as the patient's current one
// unless a score at a later clinical time is already current. The caller
// says whether it will be current (it knows the patient's current scores,
// CurrentScores), and Run fails with ErrScoreNotCurrent if the server
// disagrees.
func (p *Pipeline) SaveScore(patientKey string, s Score, current bool) {
	p.b.Queue(saveScoreSQL, p.t.StateKey(patientKey), s.Score, s.At, s.Total, nullable(s.Risk), s.Complete, [16]byte(s.EventID)).Exec(func(tag pgconn.CommandTag) error {
		if (tag.RowsAffected() == 1) != current {
			return fmt.Errorf("save score %s at %s: %w", s.Score, s.At.UTC().Format(time.RFC3339Nano), ErrScoreNotCurrent)
		}
		return nil
	})
}

// SaveAlert queues inserting or updating an alert.
func (p *Pipeline) SaveAlert(a *Alert) {
	p.b.Queue(saveAlertSQL, alertArgs(a)...)
}

// QueueDelivery queues an alert event for a webhook or log destination; a
// delivery queued already (a replay) is not queued twice.
func (p *Pipeline) QueueDelivery(eventID, alertID uuid.UUID, destination, kind string) {
	p.b.Queue(queueDeliverySQL, eventID, alertID, destination, kind)
}

// Notify queues a PostgreSQL notification, sent when the transaction
// commits and not at all if it rolls back.
func (p *Pipeline) Notify(channel, payload string) {
	p.b.Queue(notifySQL, channel, payload)
}
