package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Work is one outbox row ready for the router, with its message.
type Work struct {
	OutboxID   int64
	MessageID  uuid.UUID
	Lane       int16
	PatientKey string // empty when the message names no patient
	Attempts   int
	Replay     bool
	ReceivedAt time.Time
	Raw        []byte
}

// ReadyWork returns the rows that may be processed now from at most
// maxLanes of the given lanes, up to perLane rows each: the lanes whose
// oldest ready row is oldest come first, so no lane starves behind a
// busier one, while each lane still yields a whole batch for one
// transaction. Rows come in lane order of that age, each lane's in id
// order. A row waits while an earlier row of the same patient is in retry
// backoff: one patient's messages are applied in arrival order, and a
// failing message holds back only its own patient.
func (s *Store) ReadyWork(ctx context.Context, lanes []int16, maxLanes, perLane int) ([]Work, error) {
	if len(lanes) == 0 || maxLanes <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `
		WITH oldest AS (
			SELECT l.lane, f.id AS first_id
			FROM unnest($1::smallint[]) AS l(lane)
			CROSS JOIN LATERAL (
				SELECT o.id FROM outbox o WHERE o.lane = l.lane AND o.available_at <= now()
				ORDER BY o.id LIMIT 1) f
			ORDER BY f.id
			LIMIT $2)
		SELECT w.id, w.message_id, w.lane, w.patient_key, w.attempts, w.replay, w.received_at, w.raw
		FROM oldest l
		CROSS JOIN LATERAL (
			SELECT o.id, o.message_id, o.lane, coalesce(o.patient_key, '') AS patient_key, o.attempts, o.replay, m.received_at, m.raw
			FROM outbox o JOIN messages m ON m.id = o.message_id
			WHERE o.lane = l.lane AND o.available_at <= now()
			  AND NOT EXISTS (
				SELECT 1 FROM outbox e
				WHERE e.patient_key = o.patient_key AND e.id < o.id AND e.available_at > now())
			ORDER BY o.id
			LIMIT $3) w
		ORDER BY l.first_id, w.id`, lanes, maxLanes, perLane)
	if err != nil {
		return nil, fmt.Errorf("read ready outbox rows: %w", err)
	}
	defer rows.Close()
	var ws []Work
	for rows.Next() {
		var w Work
		if err := rows.Scan(&w.OutboxID, &w.MessageID, &w.Lane, &w.PatientKey, &w.Attempts, &w.Replay, &w.ReceivedAt, &w.Raw); err != nil {
			return nil, fmt.Errorf("scan outbox row: %w", err)
		}
		ws = append(ws, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read ready outbox rows: %w", err)
	}
	return ws, nil
}

// Routing statuses recorded in message_routing.
const (
	Routed       = "routed"
	Unrouted     = "unrouted"
	DeadLettered = "dead_lettered"
)

// Outcome of processing one outbox row, to be applied atomically.
type Processed struct {
	Work     Work
	Status   string // Routed, Unrouted or DeadLettered
	Routes   []string
	Events   []EventRow
	Warnings []Warning
	Facts    []PatientFacts
	// Error and ErrorRoute explain a dead letter.
	Error      string
	ErrorRoute string
}

// Warning is a problem that did not stop a message.
type Warning struct {
	Location string `json:"location"`
	Reason   string `json:"reason"`
}

// EventRow is one event to insert, with the per-patient state it changes.
type EventRow struct {
	ID            uuid.UUID
	Type          string
	OccurredAt    time.Time
	MessageID     uuid.UUID
	PatientID     string
	PatientKey    string
	EncounterID   string
	Source        string
	Route         string
	SchemaVersion int
	Payload       []byte

	Observation *ObservationRow // observation.* events
	Patient     *PatientRow     // ADT events
	Merge       *MergeRow       // patient.merged
}

// Observation state changes.
const (
	ObservationRecord  = "record"  // a new observation; never overwrites one already known
	ObservationCorrect = "correct" // replaces the value it corrects
	ObservationRetract = "retract" // marks it retracted (D or W)
)

// ObservationRow is the per-patient state an observation event sets.
type ObservationRow struct {
	Change     string // ObservationRecord, ObservationCorrect or ObservationRetract
	Key        string
	Parameter  string
	CodeSystem string
	Code       string
	Numeric    string // exact decimal in the canonical unit, "" when not numeric
	Text       string
	Unit       string
	Status     string
	ObservedAt time.Time
}

// PatientRow is the administrative state an ADT event sets; empty fields
// leave the stored value unchanged.
type PatientRow struct {
	Status   string
	Location string
}

// MergeRow moves a prior patient's state to the surviving patient.
type MergeRow struct {
	PriorKey     string
	SurvivingKey string
}

// ErrLeaseLost means the lane's lease expired or moved to another router
// before the work committed; nothing was written.
var ErrLeaseLost = errors.New("store: lane lease lost")

// MergeWaitError means a merge cannot be applied yet because messages for
// the prior patient that arrived before it are still queued; apply the
// rows before OutboxID and retry the merge shortly.
type MergeWaitError struct{ OutboxID int64 }

func (e *MergeWaitError) Error() string {
	return fmt.Sprintf("store: merge in outbox row %d waits for earlier messages of the prior patient", e.OutboxID)
}

// eventSeqLock serialises event inserts up to commit, so that events.seq
// follows commit order and consumers tailing by seq never skip a row.
// Transactions take it last, just before inserting their events
// (Tx.insertEvents), to hold it as briefly as they can.
const eventSeqLock = 7262732

// Apply writes the events, state changes, routing outcomes and dead letters
// of a batch of one lane's rows, and deletes the rows from the outbox, in
// one transaction, only while the lease still holds. A crash at any point
// leaves either all of it or none.
//
// then, when not nil, runs in the same transaction once the batch's state
// is written: the router computes scores and alerts there, so that they
// commit (or not) with the observations behind them.
func (s *Store) Apply(ctx context.Context, owner string, lease Lease, batch []Processed, lanes func(patientKey string) int16, then func(ctx context.Context, tx *Tx) error) error {
	if len(batch) == 0 {
		return nil
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var ok bool
		err := tx.QueryRow(ctx, `
			SELECT true FROM router_lanes
			WHERE lane = $1 AND owner = $2 AND fence = $3 AND lease_expires_at > now()
			FOR SHARE`, lease.Lane, owner, lease.Fence).Scan(&ok)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrLeaseLost
		}
		if err != nil {
			return fmt.Errorf("check lease: %w", err)
		}
		ids := make([]int64, len(batch))
		for i, p := range batch {
			ids[i] = p.Work.OutboxID
		}
		var claimed int
		if err := tx.QueryRow(ctx, `
			WITH c AS (SELECT id FROM outbox WHERE id = ANY($1) FOR UPDATE SKIP LOCKED)
			SELECT count(*) FROM c`, ids).Scan(&claimed); err != nil {
			return fmt.Errorf("claim outbox rows: %w", err)
		}
		if claimed != len(ids) {
			// Someone else holds or finished some of them: applying the rest
			// could reorder a patient's messages.
			return ErrLeaseLost
		}
		if err := s.holdMergedPatients(ctx, tx, lease, batch, lanes); err != nil {
			return err
		}
		links, err := resolveLinks(ctx, tx, batch)
		if err != nil {
			return err
		}
		t := &Tx{tx: tx, links: links}
		b := &pgx.Batch{}
		now := time.Now()
		run := newEventRun()
		for _, p := range batch {
			for _, f := range p.Facts {
				queueFacts(run.after, f, links)
			}
			for i := range p.Events {
				e := &p.Events[i]
				key := stateKey(e.PatientKey, links)
				if replacesKey(e, key) != nil || e.Merge != nil {
					// A correction names the version of the observation
					// it replaces, and a merge moves the prior patient's
					// observations: both as the statements before them
					// have left them.
					run.flush(b)
					t.deferEvent(b, e, key)
					queueEventState(b, e, key, links)
					continue
				}
				t.deferEvent(nil, e, key)
				run.add(e, key, links)
			}
			queueOutcome(run.after, p, now)
		}
		run.flush(b)
		b.Queue(`DELETE FROM outbox WHERE id = ANY($1)`, ids)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("write state: %w", err)
		}
		if then != nil {
			if err := then(ctx, t); err != nil {
				return err
			}
		}
		return t.insertEvents(ctx)
	})
}

// PatientFacts are facts about a patient a message states besides its
// events, kept for scoring.
type PatientFacts struct {
	PatientKey string
	PatientID  string
	BirthDate  time.Time // PID-7; zero when not given
	// Location is PV1-3 as point_of_care^room^bed^facility, "" when not
	// given. It only fills a patient's location that no ADT message set:
	// ADT is authoritative, and results systems often send a location
	// they cached when the order was placed.
	Location string
}

func queueFacts(b *pgx.Batch, f PatientFacts, links map[string]string) {
	if f.PatientKey == "" {
		return
	}
	var birth *time.Time
	if !f.BirthDate.IsZero() {
		birth = &f.BirthDate
	}
	// Every patient a message names gets a row, so that a clinician can
	// set its SpO2 scale even when no ADT feed introduced it.
	b.Queue(`INSERT INTO patients AS p (patient_key, patient_id, birth_date, location) VALUES ($1, $2, $3, $4)
		ON CONFLICT (patient_key) DO UPDATE SET
			birth_date = coalesce(EXCLUDED.birth_date, p.birth_date),
			location = coalesce(p.location, EXCLUDED.location), updated_at = now()
		WHERE (EXCLUDED.birth_date IS NOT NULL AND p.birth_date IS DISTINCT FROM EXCLUDED.birth_date)
			OR (p.location IS NULL AND EXCLUDED.location IS NOT NULL)`,
		stateKey(f.PatientKey, links), clean(f.PatientID), birth, nullable(f.Location))
}

// holdMergedPatients makes a merge wait for the prior patient's earlier
// messages, and locks the prior patient's lane so that its router cannot
// apply anything for that patient while the merge moves its state.
func (s *Store) holdMergedPatients(ctx context.Context, tx pgx.Tx, lease Lease, batch []Processed, lanes func(string) int16) error {
	for _, p := range batch {
		for _, e := range p.Events {
			if e.Merge == nil || e.Merge.PriorKey == "" {
				continue
			}
			if other := lanes(e.Merge.PriorKey); other != lease.Lane {
				if _, err := tx.Exec(ctx, `SELECT 1 FROM router_lanes WHERE lane = $1 FOR UPDATE`, other); err != nil {
					return fmt.Errorf("lock prior patient's lane: %w", err)
				}
			}
			var waiting bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM outbox WHERE patient_key = $1 AND id < $2)`,
				e.Merge.PriorKey, p.Work.OutboxID).Scan(&waiting); err != nil {
				return fmt.Errorf("check prior patient's queue: %w", err)
			}
			if waiting {
				return &MergeWaitError{OutboxID: p.Work.OutboxID}
			}
		}
	}
	return nil
}

// resolveLinks maps every patient key in the batch that was merged away to
// the surviving key, following chains of merges.
func resolveLinks(ctx context.Context, tx pgx.Tx, batch []Processed) (map[string]string, error) {
	var keys []string
	seen := map[string]bool{}
	for _, p := range batch {
		for _, e := range p.Events {
			if e.PatientKey != "" && !seen[e.PatientKey] {
				seen[e.PatientKey] = true
				keys = append(keys, e.PatientKey)
			}
		}
	}
	links := map[string]string{}
	if len(keys) == 0 {
		return links, nil
	}
	rows, err := tx.Query(ctx, `SELECT prior_key, surviving_key FROM patient_links WHERE prior_key = ANY($1)`, keys)
	if err != nil {
		return nil, fmt.Errorf("read patient links: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var prior, surviving string
		if err := rows.Scan(&prior, &surviving); err != nil {
			return nil, fmt.Errorf("scan patient link: %w", err)
		}
		links[prior] = surviving
	}
	return links, rows.Err()
}

func stateKey(key string, links map[string]string) string {
	if s, ok := links[key]; ok {
		return s
	}
	return key
}

// SetReplaces sets payload.replaces of a correction or retraction to the
// event it replaces.
func SetReplaces(payload []byte, replaced uuid.UUID) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, fmt.Errorf("correction payload: %w", err)
	}
	m["replaces"] = json.RawMessage(`"` + replaced.String() + `"`)
	out, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("correction payload: %w", err)
	}
	return out, nil
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	c := clean(s)
	return &c
}

// replacesKey is the observation a correction or retraction replaces: the
// event it replaces is its current version, read after the state changes
// of the batch's earlier events and before the correction's own. Nil for
// every other event.
func replacesKey(e *EventRow, key string) *string {
	if o := e.Observation; o != nil && key != "" && (o.Change == ObservationCorrect || o.Change == ObservationRetract) {
		return &o.Key
	}
	return nil
}

// queueEventState queues the per-patient state changes of an event, whose
// own row is inserted at the end of the transaction (Tx.insertEvents).
//
// Ids are passed as [16]byte rather than uuid.UUID, and numeric values as
// text cast by the statement: pgx encodes uuid.UUID through its
// driver.Valuer (formatting and re-parsing the string), and tries a
// string for numeric in binary first, failing with a formatted error
// before falling back to text; for a router writing thousands of
// observations a second, the two were a fifth of its CPU.
func queueEventState(b *pgx.Batch, e *EventRow, key string, links map[string]string) {
	if key == "" {
		return
	}
	if o := e.Observation; o != nil {
		var num *string
		if o.Numeric != "" {
			num = &o.Numeric
		}
		args := []any{key, o.Key, [16]byte(e.ID), [16]byte(e.MessageID), nullable(o.Parameter), clean(o.CodeSystem), clean(o.Code), num, nullable(o.Text), nullable(o.Unit), o.Status, o.ObservedAt}
		const cols = `(patient_key, observation_key, event_id, message_id, parameter, code_system, code, value_numeric, value_text, unit, status, observed_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::numeric, $9, $10, $11, $12)`
		switch o.Change {
		case ObservationRecord:
			// The first version stands and a later change must say C, D or W;
			// a correction or retraction that arrived first is kept too. The
			// one exception: a result recorded as preliminary (P) is
			// superseded when the final (or device) result is recorded.
			b.Queue(`INSERT INTO observations `+cols+`
				ON CONFLICT (patient_key, observation_key) DO UPDATE SET
					event_id = EXCLUDED.event_id, message_id = EXCLUDED.message_id, parameter = EXCLUDED.parameter,
					value_numeric = EXCLUDED.value_numeric, value_text = EXCLUDED.value_text, unit = EXCLUDED.unit,
					status = EXCLUDED.status, observed_at = EXCLUDED.observed_at, updated_at = now()
				WHERE observations.status = 'P' AND EXCLUDED.status <> 'P'`, args...)
		case ObservationCorrect:
			b.Queue(`INSERT INTO observations `+cols+`
				ON CONFLICT (patient_key, observation_key) DO UPDATE SET
					event_id = EXCLUDED.event_id, message_id = EXCLUDED.message_id, parameter = EXCLUDED.parameter,
					value_numeric = EXCLUDED.value_numeric, value_text = EXCLUDED.value_text, unit = EXCLUDED.unit,
					status = EXCLUDED.status, observed_at = EXCLUDED.observed_at, updated_at = now()
				WHERE observations.status NOT IN ('D', 'W')`, args...)
		case ObservationRetract:
			// Kept as a marker even when the original is unknown, so that an
			// original arriving late cannot bring a retracted value back.
			b.Queue(`INSERT INTO observations `+cols+`
				ON CONFLICT (patient_key, observation_key) DO UPDATE SET
					event_id = EXCLUDED.event_id, message_id = EXCLUDED.message_id,
					status = EXCLUDED.status, updated_at = now()`, args...)
		}
	}
	if p := e.Patient; p != nil {
		// Applied in clinical time: an older ADT event that arrives late
		// does not overwrite the state a newer one set.
		b.Queue(`INSERT INTO patients AS p (patient_key, patient_id, encounter_id, status, location, last_event_type, last_event_at, last_event_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (patient_key) DO UPDATE SET
				-- A message naming a merged-away identifier updates the
				-- survivor's state but not the survivor's own identifier.
				patient_id = CASE WHEN $9 THEN p.patient_id ELSE EXCLUDED.patient_id END,
				encounter_id = coalesce(EXCLUDED.encounter_id, p.encounter_id),
				status = coalesce(EXCLUDED.status, p.status),
				location = coalesce(EXCLUDED.location, p.location),
				last_event_type = EXCLUDED.last_event_type, last_event_at = EXCLUDED.last_event_at,
				last_event_id = EXCLUDED.last_event_id, updated_at = now()
			WHERE p.last_event_at IS NULL OR p.last_event_at <= EXCLUDED.last_event_at`,
			key, clean(e.PatientID), nullable(e.EncounterID), nullable(p.Status), nullable(p.Location), e.Type, e.OccurredAt, [16]byte(e.ID),
			key != e.PatientKey)
	}
	if m := e.Merge; m != nil && m.PriorKey != "" && m.PriorKey != key {
		prior := clean(m.PriorKey)
		// Later events of this batch naming the prior patient already
		// belong to the survivor.
		for k, v := range links {
			if v == prior {
				links[k] = key
			}
		}
		links[prior] = key
		b.Queue(`INSERT INTO patient_links (prior_key, surviving_key, event_id, merged_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (prior_key) DO UPDATE SET surviving_key = EXCLUDED.surviving_key, event_id = EXCLUDED.event_id, merged_at = EXCLUDED.merged_at`,
			prior, key, [16]byte(e.ID), e.OccurredAt)
		// Earlier merges into the prior patient now lead to the survivor.
		b.Queue(`UPDATE patient_links SET surviving_key = $2 WHERE surviving_key = $1`, prior, key)
		// The survivor's own version of an observation wins over the prior's.
		b.Queue(`INSERT INTO observations (patient_key, observation_key, event_id, message_id, parameter, code_system, code,
				value_numeric, value_text, unit, status, observed_at, updated_at)
			SELECT $2, observation_key, event_id, message_id, parameter, code_system, code, value_numeric, value_text, unit, status, observed_at, now()
			FROM observations WHERE patient_key = $1
			ON CONFLICT (patient_key, observation_key) DO NOTHING`, prior, key)
		b.Queue(`DELETE FROM observations WHERE patient_key = $1`, prior)
		b.Queue(`UPDATE patients SET status = 'merged', updated_at = now() WHERE patient_key = $1`, prior)
	}
}

// eventRun gathers a run of consecutive events that replace and merge
// nothing, to record their observations by one statement over arrays
// rather than one each (a monitor result's 10 to 20 observations were as
// many statements). It holds the statements that must follow them (their
// other state changes, the messages' facts and outcomes) in their
// original order; none of them reads observations, so the observations'
// statement may come last. A correction, a retraction or a merge ends the
// run: its statements read or move what the statements before it left.
type eventRun struct {
	obs   observationRows
	after *pgx.Batch
}

func newEventRun() *eventRun {
	return &eventRun{after: &pgx.Batch{}, obs: observationRows{seen: map[[2]string]bool{}}}
}

// observationRows are recorded observations (ObservationRecord) to upsert
// by one statement. One statement cannot update a row it inserted itself
// ("ON CONFLICT DO UPDATE command cannot affect row a second time"), so a
// second version of an observation in the same run starts a new
// statement.
type observationRows struct {
	patientKey, key, codeSystem, code, status pgtype.FlatArray[string]
	eventID, messageID                        pgtype.FlatArray[[16]byte]
	parameter, numeric, text, unit            pgtype.FlatArray[pgtype.Text]
	observedAt                                pgtype.FlatArray[time.Time]
	seen                                      map[[2]string]bool
}

const recordObservationsSQL = `INSERT INTO observations (patient_key, observation_key, event_id, message_id, parameter, code_system, code,
		value_numeric, value_text, unit, status, observed_at)
	SELECT patient_key, observation_key, event_id, message_id, parameter, code_system, code,
		value_numeric::numeric, value_text, unit, status, observed_at
	FROM unnest($1::text[], $2::text[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[],
		$8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[])
		AS o (patient_key, observation_key, event_id, message_id, parameter, code_system, code,
			value_numeric, value_text, unit, status, observed_at)
	ON CONFLICT (patient_key, observation_key) DO UPDATE SET
		event_id = EXCLUDED.event_id, message_id = EXCLUDED.message_id, parameter = EXCLUDED.parameter,
		value_numeric = EXCLUDED.value_numeric, value_text = EXCLUDED.value_text, unit = EXCLUDED.unit,
		status = EXCLUDED.status, observed_at = EXCLUDED.observed_at, updated_at = now()
	WHERE observations.status = 'P' AND EXCLUDED.status <> 'P'`

// add records o for key, queueing the rows gathered so far into b first
// when o is a second version of one of them.
func (r *observationRows) add(b *pgx.Batch, key string, e *EventRow, o *ObservationRow) {
	k := [2]string{key, o.Key}
	if r.seen[k] {
		r.queue(b)
	}
	r.seen[k] = true
	opt := func(s string) pgtype.Text {
		if s == "" {
			return pgtype.Text{}
		}
		return pgtype.Text{String: clean(s), Valid: true}
	}
	r.patientKey = append(r.patientKey, key)
	r.key = append(r.key, o.Key)
	r.eventID = append(r.eventID, e.ID)
	r.messageID = append(r.messageID, e.MessageID)
	r.parameter = append(r.parameter, opt(o.Parameter))
	r.codeSystem = append(r.codeSystem, clean(o.CodeSystem))
	r.code = append(r.code, clean(o.Code))
	r.numeric = append(r.numeric, pgtype.Text{String: o.Numeric, Valid: o.Numeric != ""})
	r.text = append(r.text, opt(o.Text))
	r.unit = append(r.unit, opt(o.Unit))
	r.status = append(r.status, o.Status)
	r.observedAt = append(r.observedAt, o.ObservedAt)
}

// queue queues the gathered rows into b and starts afresh.
func (r *observationRows) queue(b *pgx.Batch) {
	if len(r.key) > 0 {
		b.Queue(recordObservationsSQL, r.patientKey, r.key, r.eventID, r.messageID, r.parameter, r.codeSystem, r.code,
			r.numeric, r.text, r.unit, r.status, r.observedAt)
	}
	*r = observationRows{seen: map[[2]string]bool{}}
}

func (r *eventRun) add(e *EventRow, key string, links map[string]string) {
	if o := e.Observation; o != nil && key != "" && o.Change == ObservationRecord {
		r.obs.add(r.after, key, e, o)
		rest := *e
		rest.Observation = nil
		e = &rest
	}
	queueEventState(r.after, e, key, links)
}

// flush queues the statements of the run and starts an empty one.
func (r *eventRun) flush(b *pgx.Batch) {
	for _, q := range r.after.QueuedQueries {
		b.Queue(q.SQL, q.Arguments...)
	}
	r.obs.queue(b)
	*r = *newEventRun()
}

func queueOutcome(b *pgx.Batch, p Processed, now time.Time) {
	warnings, _ := json.Marshal(p.Warnings)
	if p.Warnings == nil {
		warnings = []byte("[]")
	}
	routes := p.Routes
	if routes == nil {
		routes = []string{}
	}
	// received_at is copied from the message itself, not from p.Work, so
	// that the copy the exception searches are ordered by (migration
	// 00012) cannot differ from it whoever built the Work. A replay
	// leaves it as it is: a message's received_at never changes.
	b.Queue(`INSERT INTO message_routing (message_id, status, routes, events, warnings, attempts, routed_at, error, received_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, (SELECT m.received_at FROM messages m WHERE m.id = $1))
		ON CONFLICT (message_id) DO UPDATE SET status = EXCLUDED.status, routes = EXCLUDED.routes, events = EXCLUDED.events,
			warnings = EXCLUDED.warnings, attempts = EXCLUDED.attempts, routed_at = EXCLUDED.routed_at, error = EXCLUDED.error`,
		[16]byte(p.Work.MessageID), p.Status, routes, len(p.Events), warnings, p.Work.Attempts+1, now, nullable(p.Error))
	if p.Status == DeadLettered {
		b.Queue(`INSERT INTO dead_letters (message_id, patient_key, route, error, attempts) VALUES ($1, $2, $3, $4, $5)`,
			[16]byte(p.Work.MessageID), nullable(p.Work.PatientKey), nullable(p.ErrorRoute), clean(p.Error), p.Work.Attempts+1)
	}
}

// Fail records a failed attempt: the row waits backoff before the next one,
// or, once attempts reach maxAttempts, becomes a dead letter so that the
// patient's later messages can proceed.
func (s *Store) Fail(ctx context.Context, w Work, reason, route string, backoff time.Duration, maxAttempts int) (deadLettered bool, err error) {
	if w.Attempts+1 < maxAttempts {
		_, err := s.pool.Exec(ctx, `UPDATE outbox SET attempts = attempts + 1, available_at = now() + $2::interval, last_error = $3 WHERE id = $1`,
			w.OutboxID, backoff, clean(reason))
		if err != nil {
			return false, fmt.Errorf("record failed attempt: %w", err)
		}
		return false, nil
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		queueOutcome(b, Processed{Work: w, Status: DeadLettered, Error: reason, ErrorRoute: route}, time.Now())
		b.Queue(`DELETE FROM outbox WHERE id = $1`, w.OutboxID)
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return false, fmt.Errorf("dead-letter message: %w", err)
	}
	return true, nil
}

// Defer delays a row without counting an attempt (a merge waiting for the
// prior patient's earlier messages).
func (s *Store) Defer(ctx context.Context, outboxID int64, d time.Duration) error {
	if _, err := s.pool.Exec(ctx, `UPDATE outbox SET available_at = now() + $2::interval WHERE id = $1`, outboxID, d); err != nil {
		return fmt.Errorf("defer outbox row: %w", err)
	}
	return nil
}
