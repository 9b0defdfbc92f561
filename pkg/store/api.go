package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// This file holds the reads and the audited actions of the HTTP API
// (pkg/api). Every list is read through an index (migrations/00004_api.sql)
// and paged by keyset, never by OFFSET; raw bodies are read only by
// MessageBody, which audits the read in the same transaction.

// ErrNotRoutable is returned when a message that was rejected or ignored
// at the door is asked to be reprocessed: only accepted messages are
// routed.
var ErrNotRoutable = errors.New("store: message was not accepted, so it is never routed")

// ErrAlreadyResolved is returned when a dead letter was reprocessed or
// discarded already.
var ErrAlreadyResolved = errors.New("store: dead letter already resolved")

// conds builds a WHERE clause from the filters that are set. Placeholders
// are written $? and numbered as they are added; only constants chosen by
// this package are ever written into the SQL text itself.
type conds struct {
	where []string
	args  []any
}

func (c *conds) add(sql string, args ...any) {
	for _, a := range args {
		c.args = append(c.args, a)
		sql = strings.Replace(sql, "$?", "$"+strconv.Itoa(len(c.args)), 1)
	}
	c.where = append(c.where, sql)
}

// arg adds a value and returns its placeholder, for ORDER BY ... LIMIT.
func (c *conds) arg(a any) string {
	c.args = append(c.args, a)
	return "$" + strconv.Itoa(len(c.args))
}

func (c *conds) sql() string {
	if len(c.where) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(c.where, " AND ")
}

// patientKeys resolves a patient reference for a search: the reference
// itself (a key, "authority/id") and the key of every patient whose
// identifier it is. Searches then use the patient_key indexes.
func (s *Store) patientKeys(ctx context.Context, ref string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT $1::text UNION SELECT patient_key FROM patients WHERE patient_id = $1`, ref)
	if err != nil {
		return nil, fmt.Errorf("resolve patient: %w", err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("resolve patient: %w", err)
	}
	return keys, nil
}

// Message outcomes: where a stored message ended up. The first three are
// message_routing.status; pending is accepted and not yet routed; rejected
// and ignored are messages.status (never routed); duplicate selects the
// messages that were re-sent byte for byte (duplicate_count > 0).
const (
	OutcomePending   = "pending"
	OutcomeRejected  = "rejected"
	OutcomeIgnored   = "ignored"
	OutcomeDuplicate = "duplicate"
)

// messageStatusSQL maps each status filter to its condition. Constants,
// not parameters, so that the planner can match the partial indexes.
var messageStatusSQL = map[string]string{
	Routed:           `r.status = 'routed'`,
	Unrouted:         `r.status = 'unrouted'`,
	DeadLettered:     `r.status = 'dead_lettered'`,
	OutcomePending:   `m.status = 'accepted' AND r.message_id IS NULL`,
	OutcomeRejected:  `m.status <> 'accepted' AND m.status = 'rejected'`,
	OutcomeIgnored:   `m.status <> 'accepted' AND m.status = 'ignored'`,
	OutcomeDuplicate: `m.duplicate_count > 0`,
}

// exceptionStatuses are the status filters that select a routing outcome
// other than routed: a few messages in a hundred or a thousand, usually.
// Walking the messages newest first and probing message_routing for each
// would read every message received since the page's last match (38,000
// for the first page of dead letters in make bench-console, more the
// rarer they are), so these searches read message_routing_exception_idx
// (status, received_at, message_id; migration 00012) instead: the
// matching rows only, already in the list's order, each message then
// read by key.
var exceptionStatuses = map[string]bool{Unrouted: true, DeadLettered: true}

// MessageStatuses are the values MessageFilter.Status accepts.
var MessageStatuses = []string{Routed, Unrouted, DeadLettered, OutcomePending, OutcomeRejected, OutcomeIgnored, OutcomeDuplicate}

// MessageFilter selects messages for MessageSearch. Zero fields do not
// filter. Results come newest first.
type MessageFilter struct {
	Since, Until       time.Time // received_at in [Since, Until)
	SendingApplication string    // MSH-3
	SendingFacility    string    // MSH-4
	MessageType        string    // MSH-9.1
	TriggerEvent       string    // MSH-9.2
	ControlID          string    // MSH-10
	AckCode            string    // MSA-1 of the ACK sent
	Status             string    // one of MessageStatuses
	Patient            string    // "authority/id" or a patient identifier
	After              *MessageCursor
	Limit              int
}

// MessageCursor is a keyset position: the list continues with the
// messages received before it.
type MessageCursor struct {
	ReceivedAt time.Time
	ID         uuid.UUID
}

// MessageSummary is a stored message without its body.
type MessageSummary struct {
	ID                   uuid.UUID  `json:"id"`
	ReceivedAt           time.Time  `json:"received_at"`
	Listener             string     `json:"listener"`
	RemoteAddr           string     `json:"remote_addr"`
	BatchID              *uuid.UUID `json:"batch_id"`
	BatchIndex           *int       `json:"batch_index"`
	SendingApplication   string     `json:"sending_application"`
	SendingFacility      string     `json:"sending_facility"`
	ReceivingApplication string     `json:"receiving_application"`
	ReceivingFacility    string     `json:"receiving_facility"`
	MessageType          string     `json:"message_type"`
	TriggerEvent         string     `json:"trigger_event"`
	MessageStructure     string     `json:"message_structure"`
	ControlID            string     `json:"control_id"`
	ProcessingID         string     `json:"processing_id"`
	Version              string     `json:"version"`
	CharacterSet         string     `json:"character_set"`
	PatientKey           *string    `json:"patient_key"`
	Status               string     `json:"status"`  // accepted, rejected or ignored
	Outcome              string     `json:"outcome"` // routed, unrouted, dead_lettered, pending, rejected or ignored
	AckCode              *string    `json:"ack_code"`
	ErrorCode            *int       `json:"error_code"`
	ErrorLocation        *string    `json:"error_location"`
	Error                *string    `json:"error"`
	ControlIDReused      bool       `json:"control_id_reused"`
	DuplicateCount       int        `json:"duplicate_count"`
	LastDuplicateAt      *time.Time `json:"last_duplicate_at"`
}

const messageColumns = `m.id, m.received_at, m.listener, m.remote_addr, m.batch_id, m.batch_index,
	m.sending_application, m.sending_facility, m.receiving_application, m.receiving_facility,
	m.message_type, m.trigger_event, m.message_structure, m.control_id, m.processing_id, m.version, m.character_set,
	m.patient_key, m.status,
	CASE WHEN m.status <> 'accepted' THEN m.status ELSE coalesce(r.status, 'pending') END,
	m.ack_code, m.error_code, m.error_location, m.error, m.control_id_reused, m.duplicate_count, m.last_duplicate_at`

func scanMessage(row pgx.Row, extra ...any) (MessageSummary, error) {
	var m MessageSummary
	dest := []any{&m.ID, &m.ReceivedAt, &m.Listener, &m.RemoteAddr, &m.BatchID, &m.BatchIndex,
		&m.SendingApplication, &m.SendingFacility, &m.ReceivingApplication, &m.ReceivingFacility,
		&m.MessageType, &m.TriggerEvent, &m.MessageStructure, &m.ControlID, &m.ProcessingID, &m.Version, &m.CharacterSet,
		&m.PatientKey, &m.Status, &m.Outcome,
		&m.AckCode, &m.ErrorCode, &m.ErrorLocation, &m.Error, &m.ControlIDReused, &m.DuplicateCount, &m.LastDuplicateAt}
	err := row.Scan(append(dest, extra...)...)
	return m, err
}

// messageSearchSQL builds the search query for f (the patient already
// resolved to keys); tests EXPLAIN it.
func messageSearchSQL(f MessageFilter, patientKeys []string) (string, []any, error) {
	var c conds
	// The list's order, its time range and its keyset are stated on the
	// table that drives the search: messages, or for an exception status
	// the routing rows' copy of the message's received_at (always equal:
	// the router copies it, and a message's received_at never changes),
	// so that they are conditions on message_routing_exception_idx.
	from := ` FROM messages m LEFT JOIN message_routing r ON r.message_id = m.id`
	at, id := `m.received_at`, `m.id`
	if exceptionStatuses[f.Status] {
		from = ` FROM message_routing r JOIN messages m ON m.id = r.message_id`
		at, id = `r.received_at`, `r.message_id`
	}
	if !f.Since.IsZero() {
		c.add(at+` >= $?`, f.Since)
	}
	if !f.Until.IsZero() {
		c.add(at+` < $?`, f.Until)
	}
	if f.SendingApplication != "" {
		c.add(`m.sending_application = $?`, f.SendingApplication)
		// messages_sender_idx's predicate (migration 00008), stated so that
		// a generic plan may use the index too.
		c.add(`m.sending_application <> ''`)
	}
	if f.SendingFacility != "" {
		c.add(`m.sending_facility = $?`, f.SendingFacility)
		c.add(`m.sending_facility <> ''`) // messages_facility_idx's predicate (migration 00010)
	}
	if f.MessageType != "" {
		c.add(`m.message_type = $?`, f.MessageType)
	}
	if f.TriggerEvent != "" {
		c.add(`m.trigger_event = $?`, f.TriggerEvent)
	}
	if f.ControlID != "" {
		c.add(`m.control_id = $?`, f.ControlID)
	}
	if f.AckCode != "" {
		c.add(`m.ack_code = $?`, f.AckCode)
	}
	if f.Status != "" {
		cond, ok := messageStatusSQL[f.Status]
		if !ok {
			return "", nil, fmt.Errorf("unknown message status %q", f.Status)
		}
		c.add(cond)
	}
	if f.Patient != "" {
		c.add(`m.patient_key = ANY($?)`, patientKeys)
	}
	if f.After != nil {
		c.add(`(`+at+`, `+id+`) < ($?, $?)`, f.After.ReceivedAt, f.After.ID)
	}
	limit := c.arg(f.Limit)
	return `SELECT ` + messageColumns + from + c.sql() + ` ORDER BY ` + at + ` DESC, ` + id + ` DESC LIMIT ` + limit, c.args, nil
}

// MessageSearch lists the messages matching f, newest first, at most
// f.Limit of them.
func (s *Store) MessageSearch(ctx context.Context, f MessageFilter) ([]MessageSummary, error) {
	var keys []string
	if f.Patient != "" {
		var err error
		if keys, err = s.patientKeys(ctx, f.Patient); err != nil {
			return nil, err
		}
	}
	q, args, err := messageSearchSQL(f, keys)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("search messages: %w", err)
	}
	defer rows.Close()
	out := []MessageSummary{}
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("search messages: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search messages: %w", err)
	}
	return out, nil
}

// Routing is what the router did with a message (message_routing).
type Routing struct {
	Status   string          `json:"status"`
	Routes   []string        `json:"routes"`
	Events   int             `json:"events"`
	Warnings json.RawMessage `json:"warnings"`
	Attempts int             `json:"attempts"`
	RoutedAt time.Time       `json:"routed_at"`
	Error    *string         `json:"error"`
}

// MessageDetail is a stored message without its body: metadata, the ACK
// sent, the routing outcome, its dead letters and the events it produced.
type MessageDetail struct {
	MessageSummary
	ACK         *string      `json:"ack"`
	Queued      bool         `json:"queued"` // waiting in the outbox (new, retrying or replayed)
	Routing     *Routing     `json:"routing"`
	DeadLetters []DeadLetter `json:"dead_letters"`
	Events      []Event      `json:"events"`
}

// Message reads a message's metadata, routing outcome, dead letters and
// events; never its body.
func (s *Store) Message(ctx context.Context, id uuid.UUID) (*MessageDetail, error) {
	var d MessageDetail
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		var ack []byte
		var rt struct {
			status   *string
			routes   []string
			events   *int
			warnings []byte
			attempts *int
			at       *time.Time
			err      *string
		}
		m, err := scanMessage(tx.QueryRow(ctx, `SELECT `+messageColumns+`, m.ack, EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = m.id),
				r.status, r.routes, r.events, r.warnings, r.attempts, r.routed_at, r.error
			FROM messages m LEFT JOIN message_routing r ON r.message_id = m.id WHERE m.id = $1`, id),
			&ack, &d.Queued, &rt.status, &rt.routes, &rt.events, &rt.warnings, &rt.attempts, &rt.at, &rt.err)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("read message: %w", err)
		}
		d.MessageSummary = m
		if ack != nil {
			a := strings.ToValidUTF8(string(ack), "\uFFFD")
			d.ACK = &a
		}
		if rt.status != nil {
			d.Routing = &Routing{Status: *rt.status, Routes: rt.routes, Events: *rt.events, Warnings: rt.warnings,
				Attempts: *rt.attempts, RoutedAt: *rt.at, Error: rt.err}
		}
		if d.DeadLetters, err = deadLetters(ctx, tx, DeadLetterFilter{Status: "all", MessageID: id, Limit: maxDetailRows}); err != nil {
			return err
		}
		d.Events, err = events(ctx, tx, EventFilter{MessageID: id, Limit: maxDetailRows})
		return err
	})
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// maxDetailRows bounds the events and dead letters one message detail
// lists; a message yields a few dozen events at most.
const maxDetailRows = 1000

// MessageBody returns the exact bytes of a message and records in the
// audit log, in the same transaction, that actor read them: nobody reads
// a body without it being audited.
func (s *Store) MessageBody(ctx context.Context, id uuid.UUID, actor string) ([]byte, error) {
	var raw []byte
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT raw FROM messages WHERE id = $1`, id).Scan(&raw)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("read message body: %w", err)
		}
		return audit(ctx, tx, actor, "message.view_raw", id.String(), nil)
	})
	if err != nil {
		return nil, err
	}
	return raw, nil
}

// replayInsert queues the accepted messages matching a ReplayFilter's
// arguments ($1..$7) in the outbox again, in arrival order; a message
// still waiting there is not queued twice.
const replayInsert = `
	INSERT INTO outbox (message_id, partition_key, patient_key, replay)
	SELECT id, partition_key, patient_key, true FROM messages
	WHERE status = 'accepted' AND partition_key IS NOT NULL
	  AND ($1::timestamptz IS NULL OR received_at >= $1)
	  AND ($2::timestamptz IS NULL OR received_at < $2)
	  AND ($3 = '' OR message_type = $3)
	  AND ($4 = '' OR trigger_event = $4)
	  AND ($5 = '' OR sending_application = $5)
	  AND ($6 = '' OR sending_facility = $6)
	  AND ($7::uuid[] IS NULL OR id = ANY($7))
	ORDER BY received_at, id
	ON CONFLICT (message_id) DO NOTHING`

func (f ReplayFilter) args() []any {
	var since, until *time.Time
	if !f.Since.IsZero() {
		since = &f.Since
	}
	if !f.Until.IsZero() {
		until = &f.Until
	}
	var ids []uuid.UUID
	if len(f.IDs) > 0 {
		ids = f.IDs
	}
	return []any{since, until, f.MessageType, f.TriggerEvent, f.SendingApplication, f.SendingFacility, ids}
}

// reprocess queues the messages of f again, marks their open dead letters
// reprocessed by actor, and audits it, in tx.
func reprocess(ctx context.Context, tx pgx.Tx, f ReplayFilter, actor, target string, details map[string]any) (int64, error) {
	var n int64
	err := tx.QueryRow(ctx, `
		WITH q AS (`+replayInsert+` RETURNING message_id),
		d AS (
			UPDATE dead_letters SET resolved_at = now(), resolution = 'reprocessed', resolved_by = $8
			WHERE resolved_at IS NULL AND message_id IN (SELECT message_id FROM q))
		SELECT count(*) FROM q`, append(f.args(), clean(actor))...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("reprocess: %w", err)
	}
	details["queued"] = n
	b, err := json.Marshal(details)
	if err != nil {
		return 0, fmt.Errorf("reprocess: %w", err)
	}
	return n, audit(ctx, tx, actor, "message.reprocess", target, b)
}

// ReprocessMessage queues one message to be routed again through the
// current routes, marks its open dead letters reprocessed and audits it.
// queued is false when the message was already waiting in the outbox.
// ErrNotFound: no such message; ErrNotRoutable: it was not accepted.
func (s *Store) ReprocessMessage(ctx context.Context, id uuid.UUID, actor string) (queued bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var status string
		var partition *int
		err := tx.QueryRow(ctx, `SELECT status, partition_key FROM messages WHERE id = $1`, id).Scan(&status, &partition)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("reprocess: %w", err)
		}
		if status != "accepted" || partition == nil {
			return ErrNotRoutable
		}
		n, err := reprocess(ctx, tx, ReplayFilter{IDs: []uuid.UUID{id}}, actor, id.String(), map[string]any{})
		queued = n == 1
		return err
	})
	return queued, err
}

// Reprocess queues the accepted messages matching f to be routed again
// (as Replay), marks their open dead letters reprocessed, and audits it
// with the filter and the count. At least one filter must be set.
func (s *Store) Reprocess(ctx context.Context, f ReplayFilter, actor string) (int64, error) {
	if f.empty() {
		return 0, fmt.Errorf("reprocess: give a time range, type, sender or message IDs")
	}
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		details := map[string]any{"filter": map[string]any{
			"since": f.Since, "until": f.Until, "type": f.MessageType, "trigger": f.TriggerEvent,
			"sender": f.SendingApplication, "facility": f.SendingFacility, "ids": len(f.IDs)}}
		var err error
		n, err = reprocess(ctx, tx, f, actor, "messages", details)
		return err
	})
	return n, err
}

// Event is one row of the events table (docs/events.md).
type Event struct {
	Seq           int64           `json:"seq"`
	ID            uuid.UUID       `json:"id"`
	Type          string          `json:"type"`
	OccurredAt    time.Time       `json:"occurred_at"`
	RecordedAt    time.Time       `json:"recorded_at"`
	MessageID     uuid.UUID       `json:"message_id"`
	PatientID     *string         `json:"patient_id"`
	PatientKey    *string         `json:"patient_key"`
	EncounterID   *string         `json:"encounter_id"`
	Source        string          `json:"source"`
	Route         string          `json:"route"`
	SchemaVersion int             `json:"schema_version"`
	Payload       json.RawMessage `json:"payload"`
}

// EventFilter selects events for Events. Zero fields do not filter.
// Results come in seq order, after After.
type EventFilter struct {
	// Type is an event type, or a family of them written with a final
	// ".*" ("alert.*": alert.raised, alert.resolved ...).
	Type        string
	Patient     string // "authority/id" or a patient identifier
	EncounterID string
	MessageID   uuid.UUID
	Since       time.Time // occurred_at (clinical time) in [Since, Until)
	Until       time.Time
	After       int64 // seq
	Limit       int
}

// Events lists the events matching f in seq order.
func (s *Store) Events(ctx context.Context, f EventFilter) ([]Event, error) {
	if f.Patient != "" {
		keys, err := s.patientKeys(ctx, f.Patient)
		if err != nil {
			return nil, err
		}
		return eventsFor(ctx, s.pool, f, keys)
	}
	return eventsFor(ctx, s.pool, f, nil)
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func events(ctx context.Context, q querier, f EventFilter) ([]Event, error) {
	return eventsFor(ctx, q, f, nil)
}

func eventsFor(ctx context.Context, q querier, f EventFilter, patientKeys []string) ([]Event, error) {
	c := eventConds(f, patientKeys)
	limit := c.arg(f.Limit)
	rows, err := q.Query(ctx, `SELECT `+eventColumns+` FROM events`+c.sql()+` ORDER BY seq LIMIT `+limit, c.args...)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return scanEvents(rows)
}

const eventColumns = `seq, id, type, occurred_at, recorded_at, message_id, patient_id, patient_key, encounter_id,
		source, route, schema_version, payload`

func scanEvents(rows pgx.Rows) ([]Event, error) {
	defer rows.Close()
	out := []Event{}
	for rows.Next() {
		var e Event
		if err := rows.Scan(&e.Seq, &e.ID, &e.Type, &e.OccurredAt, &e.RecordedAt, &e.MessageID, &e.PatientID, &e.PatientKey,
			&e.EncounterID, &e.Source, &e.Route, &e.SchemaVersion, &e.Payload); err != nil {
			return nil, fmt.Errorf("read events: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}

// eventConds is the WHERE clause of an event filter, the patient already
// resolved to keys.
func eventConds(f EventFilter, patientKeys []string) *conds {
	c := &conds{}
	if family, ok := strings.CutSuffix(f.Type, "*"); ok && strings.HasSuffix(family, ".") {
		c.add(`starts_with(type, $?)`, family)
	} else if f.Type != "" {
		c.add(`type = $?`, f.Type)
	}
	if f.Patient != "" {
		c.add(`patient_key = ANY($?)`, patientKeys)
	}
	if f.EncounterID != "" {
		c.add(`encounter_id = $?`, f.EncounterID)
	}
	if f.MessageID != uuid.Nil {
		c.add(`message_id = $?`, f.MessageID)
	}
	if !f.Since.IsZero() {
		c.add(`occurred_at >= $?`, f.Since)
	}
	if !f.Until.IsZero() {
		c.add(`occurred_at < $?`, f.Until)
	}
	if f.After > 0 {
		c.add(`seq > $?`, f.After)
	}
	return c
}

// PatientKeys resolves a patient reference ("authority/id" or a bare
// identifier) to the keys an EventFilter's PatientKeys takes, once for a
// stream that polls many times.
func (s *Store) PatientKeys(ctx context.Context, ref string) ([]string, error) {
	return s.patientKeys(ctx, ref)
}

// EventHead is the greatest seq in the events table (0 when empty): where
// a tail that wants only new events starts.
func (s *Store) EventHead(ctx context.Context) (int64, error) {
	var head int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM events`).Scan(&head); err != nil {
		return 0, fmt.Errorf("read event head: %w", err)
	}
	return head, nil
}

// TailEvents reads the next events of a tail: those matching f with a seq
// above f.After, in seq order, at most f.Limit, and head, the greatest seq
// in the table, in one snapshot. f.Patient is resolved with PatientKeys
// unless patientKeys are given. Because seq follows commit order, a tail
// that got fewer than f.Limit events may continue after head: no row can
// commit later with a smaller seq. A filtered tail therefore never scans
// the same rows twice, however rarely its filter matches.
func (s *Store) TailEvents(ctx context.Context, f EventFilter, patientKeys []string) (events []Event, head int64, err error) {
	if f.Patient != "" && patientKeys == nil {
		if patientKeys, err = s.patientKeys(ctx, f.Patient); err != nil {
			return nil, 0, err
		}
	}
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		var err error
		if events, err = eventsFor(ctx, tx, f, patientKeys); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM events`).Scan(&head); err != nil {
			return fmt.Errorf("read event head: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return events, head, nil
}

// AlertFilter selects alerts for Alerts. Zero fields do not filter.
// Results come newest (raised_at) first.
type AlertFilter struct {
	Status   string // open or resolved
	Rule     string
	Severity string
	Patient  string // "authority/id" or a patient identifier
	After    *AlertCursor
	Limit    int
}

// AlertCursor is a keyset position in an alert list: the list continues
// with the alerts raised before it.
type AlertCursor struct {
	RaisedAt time.Time
	ID       uuid.UUID
}

// Alerts lists the alerts matching f, newest first.
func (s *Store) Alerts(ctx context.Context, f AlertFilter) ([]Alert, error) {
	var c conds
	if f.Status != "" {
		c.add(`status = $?`, f.Status)
	}
	if f.Rule != "" {
		c.add(`rule = $?`, f.Rule)
	}
	if f.Severity != "" {
		c.add(`severity = $?`, f.Severity)
	}
	if f.Patient != "" {
		keys, err := s.patientKeys(ctx, f.Patient)
		if err != nil {
			return nil, err
		}
		c.add(`patient_key = ANY($?)`, keys)
	}
	if f.After != nil {
		c.add(`(raised_at, id) < ($?, $?)`, f.After.RaisedAt, f.After.ID)
	}
	limit := c.arg(f.Limit)
	return s.readAlerts(ctx, `SELECT `+alertColumns+` FROM alerts`+c.sql()+` ORDER BY raised_at DESC, id DESC LIMIT `+limit, c.args...)
}

func (s *Store) readAlerts(ctx context.Context, sql string, args ...any) ([]Alert, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read alerts: %w", err)
	}
	defer rows.Close()
	out := []Alert{}
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, fmt.Errorf("read alerts: %w", err)
		}
		out = append(out, *a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read alerts: %w", err)
	}
	return out, nil
}

// CurrentScore is a patient's current score of one kind, with the payload
// of its score.calculated event (components and inputs).
type CurrentScore struct {
	Score        string          `json:"score"`
	CalculatedAt time.Time       `json:"calculated_at"`
	Total        int             `json:"total"`
	Risk         *string         `json:"risk"`
	Complete     bool            `json:"complete"`
	EventID      uuid.UUID       `json:"event_id"`
	Payload      json.RawMessage `json:"payload"`
}

// PatientState is a patient's administrative state, current scores and
// open alerts.
type PatientState struct {
	PatientKey     string         `json:"patient_key"`
	PatientID      string         `json:"patient_id"`
	Status         *string        `json:"status"`
	Location       *string        `json:"location"`
	EncounterID    *string        `json:"encounter_id"`
	SpO2Scale      int            `json:"spo2_scale"`
	SpO2ScaleSetBy *string        `json:"spo2_scale_set_by"`
	SpO2ScaleSetAt *time.Time     `json:"spo2_scale_set_at"`
	Scores         []CurrentScore `json:"scores"`
	OpenAlerts     []Alert        `json:"-"`
}

// PatientScores reads a patient's (named by "authority/id" or an
// unambiguous identifier; a merged-away patient leads to the survivor)
// current scores and open alerts. ErrNotFound, ErrAmbiguous as
// SetSpO2ScaleByClinician.
func (s *Store) PatientScores(ctx context.Context, ref string) (*PatientState, error) {
	var p PatientState
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		key, _, err := resolvePatient(ctx, tx, ref)
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `SELECT patient_key, patient_id, status, location, encounter_id, spo2_scale, spo2_scale_set_by, spo2_scale_set_at
			FROM patients WHERE patient_key = $1`, key).
			Scan(&p.PatientKey, &p.PatientID, &p.Status, &p.Location, &p.EncounterID, &p.SpO2Scale, &p.SpO2ScaleSetBy, &p.SpO2ScaleSetAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("read patient: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT s.score, s.calculated_at, s.total, s.risk, s.complete, s.event_id, coalesce(e.payload, '{}')
			FROM scores s LEFT JOIN events e ON e.id = s.event_id WHERE s.patient_key = $1 ORDER BY s.score`, key)
		if err != nil {
			return fmt.Errorf("read scores: %w", err)
		}
		p.Scores, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (CurrentScore, error) {
			var c CurrentScore
			err := r.Scan(&c.Score, &c.CalculatedAt, &c.Total, &c.Risk, &c.Complete, &c.EventID, &c.Payload)
			return c, err
		})
		if err != nil {
			return fmt.Errorf("read scores: %w", err)
		}
		if p.Scores == nil {
			p.Scores = []CurrentScore{}
		}
		rows, err = tx.Query(ctx, `SELECT `+alertColumns+` FROM alerts WHERE patient_key = $1 AND status = 'open' ORDER BY raised_at DESC, id DESC`, key)
		if err != nil {
			return fmt.Errorf("read alerts: %w", err)
		}
		p.OpenAlerts, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Alert, error) {
			a, err := scanAlert(r)
			if err != nil {
				return Alert{}, err
			}
			return *a, nil
		})
		if err != nil {
			return fmt.Errorf("read alerts: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// DeadLetter is a dead letter with the header of its message.
type DeadLetter struct {
	ID                 int64      `json:"id"`
	MessageID          uuid.UUID  `json:"message_id"`
	PatientKey         *string    `json:"patient_key"`
	Route              *string    `json:"route"`
	Error              string     `json:"error"`
	Attempts           int        `json:"attempts"`
	CreatedAt          time.Time  `json:"created_at"`
	ResolvedAt         *time.Time `json:"resolved_at"`
	Resolution         *string    `json:"resolution"`
	ResolvedBy         *string    `json:"resolved_by"`
	ReceivedAt         time.Time  `json:"received_at"`
	SendingApplication string     `json:"sending_application"`
	SendingFacility    string     `json:"sending_facility"`
	MessageType        string     `json:"message_type"`
	TriggerEvent       string     `json:"trigger_event"`
	ControlID          string     `json:"control_id"`
}

// Dead-letter list states and resolutions.
const (
	DeadLetterOpen      = "open"
	DeadLetterResolved  = "resolved"
	DeadLetterAll       = "all"
	ResolveReprocessed  = "reprocessed"
	ResolveDiscarded    = "discarded"
	deadLetterColumnSQL = `d.id, d.message_id, d.patient_key, d.route, d.error, d.attempts, d.created_at, d.resolved_at,
		d.resolution, d.resolved_by, m.received_at, m.sending_application, m.sending_facility, m.message_type, m.trigger_event, m.control_id`
)

// DeadLetterFilter selects dead letters, newest first.
type DeadLetterFilter struct {
	Status    string // DeadLetterOpen (the default), DeadLetterResolved or DeadLetterAll
	Route     string
	MessageID uuid.UUID
	After     int64 // the list continues with ids below this one
	Limit     int
}

// DeadLetters lists the dead letters matching f, newest first.
func (s *Store) DeadLetters(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, error) {
	return deadLetters(ctx, s.pool, f)
}

func deadLetters(ctx context.Context, q querier, f DeadLetterFilter) ([]DeadLetter, error) {
	var c conds
	switch f.Status {
	case DeadLetterOpen, "":
		c.add(`d.resolved_at IS NULL`)
	case DeadLetterResolved:
		c.add(`d.resolved_at IS NOT NULL`)
	case DeadLetterAll:
	default:
		return nil, fmt.Errorf("unknown dead-letter status %q", f.Status)
	}
	if f.Route != "" {
		c.add(`d.route = $?`, f.Route)
	}
	if f.MessageID != uuid.Nil {
		c.add(`d.message_id = $?`, f.MessageID)
	}
	if f.After > 0 {
		c.add(`d.id < $?`, f.After)
	}
	limit := c.arg(f.Limit)
	rows, err := q.Query(ctx, `SELECT `+deadLetterColumnSQL+` FROM dead_letters d JOIN messages m ON m.id = d.message_id`+
		c.sql()+` ORDER BY d.id DESC LIMIT `+limit, c.args...)
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanDeadLetter)
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	if out == nil {
		out = []DeadLetter{}
	}
	return out, nil
}

func scanDeadLetter(r pgx.CollectableRow) (DeadLetter, error) {
	var d DeadLetter
	err := r.Scan(&d.ID, &d.MessageID, &d.PatientKey, &d.Route, &d.Error, &d.Attempts, &d.CreatedAt, &d.ResolvedAt,
		&d.Resolution, &d.ResolvedBy, &d.ReceivedAt, &d.SendingApplication, &d.SendingFacility, &d.MessageType, &d.TriggerEvent, &d.ControlID)
	return d, err
}

// ResolveDeadLetter resolves an open dead letter as ResolveReprocessed
// (its message is queued again through the current routes, the router's
// replay path) or ResolveDiscarded (left as it is), records actor, and
// audits it with reason (optional). ErrNotFound: no such dead letter;
// ErrAlreadyResolved.
func (s *Store) ResolveDeadLetter(ctx context.Context, id int64, resolution, reason, actor string) (DeadLetter, error) {
	var d DeadLetter
	if resolution != ResolveReprocessed && resolution != ResolveDiscarded {
		return d, fmt.Errorf("unknown resolution %q", resolution)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+deadLetterColumnSQL+` FROM dead_letters d JOIN messages m ON m.id = d.message_id
			WHERE d.id = $1 FOR UPDATE OF d`, id)
		if err != nil {
			return fmt.Errorf("resolve dead letter: %w", err)
		}
		d, err = pgx.CollectExactlyOneRow(rows, scanDeadLetter)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("resolve dead letter: %w", err)
		}
		if d.ResolvedAt != nil {
			return ErrAlreadyResolved
		}
		details := map[string]any{"resolution": resolution, "message_id": d.MessageID}
		if reason != "" {
			details["reason"] = clean(reason)
		}
		if resolution == ResolveReprocessed {
			// Marks this dead letter (and any other open one of the
			// message) reprocessed, and audits the reprocessing.
			if _, err := reprocess(ctx, tx, ReplayFilter{IDs: []uuid.UUID{d.MessageID}}, actor, d.MessageID.String(), map[string]any{"dead_letter": id}); err != nil {
				return err
			}
		}
		rows, err = tx.Query(ctx, `UPDATE dead_letters d SET resolved_at = coalesce(d.resolved_at, now()),
				resolution = coalesce(d.resolution, $2), resolved_by = coalesce(d.resolved_by, $3)
			FROM messages m WHERE m.id = d.message_id AND d.id = $1 RETURNING `+deadLetterColumnSQL, id, resolution, clean(actor))
		if err != nil {
			return fmt.Errorf("resolve dead letter: %w", err)
		}
		if d, err = pgx.CollectExactlyOneRow(rows, scanDeadLetter); err != nil {
			return fmt.Errorf("resolve dead letter: %w", err)
		}
		b, _ := json.Marshal(details)
		return audit(ctx, tx, actor, "dead_letter."+resolution, strconv.FormatInt(id, 10), b)
	})
	return d, err
}

// Ops summary windows: what OpsSummary counts messages over. Each starts
// at the beginning of the minute it falls in (the buckets' resolution)
// and has no end.
const (
	opsDay    = 24 * time.Hour
	opsHour   = time.Hour
	opsRecent = 5 * time.Minute // the rate per minute is over this
)

// OpsSummary is the state of the pipeline at a moment, for operators:
// the backlog, the open dead letters, per sender and per route the
// messages of the last hour and day, and the watched feeds.
type OpsSummary struct {
	At          time.Time     `json:"at"`
	Outbox      OutboxState   `json:"outbox"`
	DeadLetters DeadLetterSum `json:"dead_letters"`
	Senders     []SenderStats `json:"senders"`
	Routes      []RouteStats  `json:"routes"`
	Feeds       []FeedStatus  `json:"feeds"` // routes.yaml feeds, by name
}

// OutboxState is the router's backlog.
type OutboxState struct {
	Depth            int64      `json:"depth"`              // rows waiting (new, retrying or replayed)
	OldestAt         *time.Time `json:"oldest_at"`          // when the oldest waiting row was queued; null when empty
	OldestAgeSeconds *float64   `json:"oldest_age_seconds"` // at minus oldest_at; null when empty
}

// DeadLetterSum counts dead letters.
type DeadLetterSum struct {
	Open int64 `json:"open"` // neither reprocessed nor discarded
}

// SenderStats is one sender's (MSH-3 and MSH-4) traffic over the last
// day. Every sender ever counted is listed, those silent for longer than
// a day too (with zero counts): they are the ones to look at.
type SenderStats struct {
	Sender             string    `json:"sender"` // MSH-3^MSH-4
	SendingApplication string    `json:"sending_application"`
	SendingFacility    string    `json:"sending_facility"`
	MessagesLastHour   int64     `json:"messages_1h"`
	MessagesLastDay    int64     `json:"messages_24h"`
	RatePerMinute      float64   `json:"rate_per_minute_5m"` // messages of the last 5 minutes / 5
	LastMessageAt      time.Time `json:"last_message_at"`
	RejectedLastDay    int64     `json:"rejected_24h"` // answered with a reject at the door
}

// RouteStats counts the routed messages received in the last hour and day
// that a route matched.
type RouteStats struct {
	Route            string `json:"route"`
	MessagesLastHour int64  `json:"messages_1h"`
	MessagesLastDay  int64  `json:"messages_24h"`
}

// Ops summary statements; tests EXPLAIN them. Counts are the aggregator's
// buckets (opsstats.go) up to its watermarks plus the messages after them,
// counted here through messages_received_id_idx: a few hundred bucket rows
// per sender and route, and the few seconds of messages the aggregator has
// not reached, whatever the size of messages.
//
// Windows: $1 the day's start, $2 the first whole hour in the day (the day
// is minute buckets before it and hour buckets from it), $3 the hour's
// start, $4 the 5 minutes' start (senders only); then the watermark.
const (
	// Counting the outbox reads it whole: its size is the backlog.
	opsOutboxSQL      = `SELECT count(*), min(created_at) FROM outbox`
	opsDeadLettersSQL = `SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL`
	opsSendersSQL     = `WITH counted AS (
			SELECT sending_application AS a, sending_facility AS f,
				sum(messages) FILTER (WHERE width = 'minute' AND bucket >= $3) AS h,
				sum(messages) FILTER (WHERE width = 'minute' AND bucket >= $4) AS r,
				sum(messages) FILTER (WHERE width = 'hour' OR bucket < $2) AS d,
				sum(rejected) FILTER (WHERE width = 'hour' OR bucket < $2) AS rj
			FROM ops_sender_counts
			WHERE (width = 'minute' AND (bucket >= $3 OR (bucket >= $1 AND bucket < $2))) OR (width = 'hour' AND bucket >= $2)
			GROUP BY 1, 2),
		tail AS (
			SELECT sending_application AS a, sending_facility AS f,
				count(*) FILTER (WHERE received_at >= $3) AS h, count(*) FILTER (WHERE received_at >= $4) AS r,
				count(*) AS d, count(*) FILTER (WHERE status = 'rejected') AS rj, max(received_at) AS last
			FROM messages WHERE (received_at, id) > ($5, $6) AND received_at >= $1
			GROUP BY 1, 2)
		SELECT coalesce(o.sending_application, t.a), coalesce(o.sending_facility, t.f),
			coalesce(c.h, 0) + coalesce(t.h, 0), coalesce(c.d, 0) + coalesce(t.d, 0), coalesce(c.r, 0) + coalesce(t.r, 0),
			greatest(o.last_message_at, t.last), coalesce(c.rj, 0) + coalesce(t.rj, 0)
		FROM ops_senders o
		FULL JOIN tail t ON t.a = o.sending_application AND t.f = o.sending_facility
		LEFT JOIN counted c ON c.a = coalesce(o.sending_application, t.a) AND c.f = coalesce(o.sending_facility, t.f)
		ORDER BY 1, 2`
	// Routes after the routes watermark are counted from their routing
	// rows, joined by key; message_routing.routed_at has no index, and each
	// one there would slow the router.
	opsRoutesSQL = `WITH counted AS (
			SELECT route,
				sum(messages) FILTER (WHERE width = 'minute' AND bucket >= $3) AS h,
				sum(messages) FILTER (WHERE width = 'hour' OR bucket < $2) AS d
			FROM ops_route_counts
			WHERE (width = 'minute' AND (bucket >= $3 OR (bucket >= $1 AND bucket < $2))) OR (width = 'hour' AND bucket >= $2)
			GROUP BY 1),
		tail AS (
			SELECT route, count(*) FILTER (WHERE m.received_at >= $3) AS h, count(*) AS d
			FROM messages m JOIN message_routing r ON r.message_id = m.id CROSS JOIN LATERAL unnest(r.routes) AS route
			WHERE (m.received_at, m.id) > ($4, $5) AND m.received_at >= $1 AND r.status = 'routed'
			GROUP BY 1)
		SELECT coalesce(c.route, t.route), coalesce(c.h, 0) + coalesce(t.h, 0), coalesce(c.d, 0) + coalesce(t.d, 0)
		FROM counted c FULL JOIN tail t ON t.route = c.route
		WHERE coalesce(c.d, 0) + coalesce(t.d, 0) > 0
		ORDER BY 1`
)

// opsWindows are the window starts of a summary taken at now.
type opsWindows struct {
	day, dayHour, hour, recent time.Time
}

func windowsAt(now time.Time) opsWindows {
	w := opsWindows{
		day:    now.Add(-opsDay).Truncate(time.Minute),
		hour:   now.Add(-opsHour).Truncate(time.Minute),
		recent: now.Add(-opsRecent).Truncate(time.Minute),
	}
	w.dayHour = w.day.Truncate(time.Hour)
	if w.dayHour.Before(w.day) {
		w.dayHour = w.dayHour.Add(time.Hour)
	}
	return w
}

// OpsSummary reads the pipeline's state as of now, in one snapshot. The
// windows (the last 5 minutes, hour and day, from the start of their first
// minute) start before now and have no end, so a message stamped a little
// after now by a listener whose clock runs ahead still counts.
func (s *Store) OpsSummary(ctx context.Context, now time.Time) (*OpsSummary, error) {
	o := &OpsSummary{At: now, Senders: []SenderStats{}, Routes: []RouteStats{}, Feeds: []FeedStatus{}}
	win := windowsAt(now)
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		// The summary reads the small count tables whole and joins them
		// by hash, which the sessions' enable_seqscan=off (see Open) would
		// price out; its reads of messages go through the (received_at,
		// id) index either way (TestOpsSummaryUsesIndexes).
		if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = on`); err != nil {
			return fmt.Errorf("ops summary: %w", err)
		}
		if err := tx.QueryRow(ctx, opsOutboxSQL).Scan(&o.Outbox.Depth, &o.Outbox.OldestAt); err != nil {
			return fmt.Errorf("ops summary: outbox: %w", err)
		}
		if o.Outbox.OldestAt != nil {
			age := max(0, now.Sub(*o.Outbox.OldestAt).Seconds())
			o.Outbox.OldestAgeSeconds = &age
		}
		if err := tx.QueryRow(ctx, opsDeadLettersSQL).Scan(&o.DeadLetters.Open); err != nil {
			return fmt.Errorf("ops summary: dead letters: %w", err)
		}
		senders, routes, ok, err := readWatermarks(ctx, tx)
		if err != nil {
			return fmt.Errorf("ops summary: %w", err)
		}
		if !ok {
			// No aggregation yet: everything of the day is after the mark.
			senders, routes = watermark{at: win.day}, watermark{at: win.day}
		}
		recentMinutes := now.Sub(win.recent).Minutes()
		rows, err := tx.Query(ctx, opsSendersSQL, win.day, win.dayHour, win.hour, win.recent, senders.at, senders.id)
		if err != nil {
			return fmt.Errorf("ops summary: senders: %w", err)
		}
		o.Senders, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (SenderStats, error) {
			var st SenderStats
			var recentN int64
			err := r.Scan(&st.SendingApplication, &st.SendingFacility, &st.MessagesLastHour, &st.MessagesLastDay, &recentN,
				&st.LastMessageAt, &st.RejectedLastDay)
			st.Sender = st.SendingApplication + "^" + st.SendingFacility
			if recentMinutes > 0 {
				st.RatePerMinute = float64(recentN) / recentMinutes
			}
			return st, err
		})
		if err != nil {
			return fmt.Errorf("ops summary: senders: %w", err)
		}
		rows, err = tx.Query(ctx, opsRoutesSQL, win.day, win.dayHour, win.hour, routes.at, routes.id)
		if err != nil {
			return fmt.Errorf("ops summary: routes: %w", err)
		}
		o.Routes, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (RouteStats, error) {
			var rs RouteStats
			err := r.Scan(&rs.Route, &rs.MessagesLastHour, &rs.MessagesLastDay)
			return rs, err
		})
		if err != nil {
			return fmt.Errorf("ops summary: routes: %w", err)
		}
		if o.Feeds, err = feedStatuses(ctx, tx, now, o.Senders); err != nil {
			return fmt.Errorf("ops summary: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if o.Senders == nil {
		o.Senders = []SenderStats{}
	}
	if o.Routes == nil {
		o.Routes = []RouteStats{}
	}
	if o.Feeds == nil {
		o.Feeds = []FeedStatus{}
	}
	return o, nil
}
