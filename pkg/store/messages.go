package store

import (
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Status is what the listener did with a message.
type Status string

// Message statuses; they match the CHECK constraint on messages.status.
const (
	StatusAccepted Status = "accepted" // stored and queued for the router
	StatusRejected Status = "rejected" // answered with a reject or error, kept for inspection
	StatusIgnored  Status = "ignored"  // an inbound acknowledgement: stored, never answered or routed
)

// Header holds the MSH fields stored in their own columns.
type Header struct {
	SendingApplication   string
	SendingFacility      string
	ReceivingApplication string
	ReceivingFacility    string
	MessageType          string
	TriggerEvent         string
	MessageStructure     string
	ControlID            string
	ProcessingID         string
	Version              string
	CharacterSet         string
}

// Message is one received message to store.
type Message struct {
	ID         uuid.UUID
	ReceivedAt time.Time
	Listener   string
	RemoteAddr string
	Raw        []byte
	Header     Header
	Status     Status
	// AckCode and Ack are the acknowledgement we will send once the
	// transaction commits; empty when none is due.
	AckCode string
	Ack     []byte
	// ErrorCode is an HL7 table 0357 code, zero when there was no problem.
	ErrorCode     int
	ErrorLocation string
	Error         string
	// Outbox is set for accepted messages: the router's work item.
	Outbox *OutboxEntry

	sum [32]byte
}

// OutboxEntry is what the router needs to keep per-patient order.
type OutboxEntry struct {
	PartitionKey int32
	PatientKey   string // empty when the message names no patient
}

// Batch is a received HL7 batch file; its messages are stored with it.
type Batch struct {
	ID         uuid.UUID
	ReceivedAt time.Time
	Listener   string
	RemoteAddr string
	Raw        []byte
	HeaderType string // FHS or BHS
	ControlID  string
	Messages   []*Message
}

// Unit is what one MLLP frame produced: a single message, or a batch with
// its messages. A unit is stored all or nothing.
type Unit struct {
	Message *Message // set for a single message
	Batch   *Batch   // set for a batch
}

func (u Unit) messages() []*Message {
	if u.Batch != nil {
		return u.Batch.Messages
	}
	if u.Message != nil {
		return []*Message{u.Message}
	}
	return nil
}

// Outcome tells the caller what happened to one message of a unit.
type Outcome struct {
	// Duplicate is true when the same sender already sent the same control
	// ID with the same bytes within the window; nothing new was stored and
	// the caller must answer with OriginalAck (nil when none was sent).
	Duplicate   bool
	Original    uuid.UUID
	OriginalAck []byte
	// ControlIDReused is true when the control ID was seen with different
	// bytes; the message was stored and flagged.
	ControlIDReused bool
}

type dedupKey struct{ app, fac, cid string }

func keyOf(m *Message) (dedupKey, bool) {
	h := m.Header
	if h.ControlID == "" {
		return dedupKey{}, false
	}
	return dedupKey{clean(h.SendingApplication), clean(h.SendingFacility), clean(h.ControlID)}, true
}

func (k dedupKey) lockID() int64 {
	h := fnv.New64a()
	for _, s := range []string{k.app, k.fac, k.cid} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return int64(h.Sum64())
}

// Save stores units in one transaction and returns one outcome per message,
// unit by unit. When it returns nil the transaction has committed: only then
// may the caller acknowledge. dedupWindow zero disables de-duplication.
//
// Save is idempotent for the same units: a retry after an ambiguous failure
// (the connection dropped during COMMIT) neither duplicates rows nor
// mistakes the first attempt's rows for duplicates.
func (s *Store) Save(ctx context.Context, units []Unit, dedupWindow time.Duration) ([][]Outcome, error) {
	outcomes := make([][]Outcome, len(units))
	var all []*Message
	for i, u := range units {
		ms := u.messages()
		outcomes[i] = make([]Outcome, len(ms))
		for _, m := range ms {
			if m.sum == [32]byte{} {
				m.sum = sha256.Sum256(m.Raw)
			}
			all = append(all, m)
		}
	}

	// The transaction is driven by hand over one connection so that it
	// costs two round trips (BEGIN + locks + look-ups, then inserts +
	// COMMIT) instead of four; the ACK latency of every sender is made of
	// these round trips.
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire connection: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			// Never hand a connection that may be inside a transaction
			// back to the pool: closing it rolls the transaction back.
			conn.Conn().Close(context.WithoutCancel(ctx))
		}
		conn.Release()
	}()

	prior, err := lookupDuplicates(ctx, conn.Conn(), all, dedupWindow)
	if err != nil {
		return nil, err
	}

	// Decide message by message, in arrival order, so that a re-send inside
	// the same group is recognised as a duplicate of the earlier one.
	type seenMsg struct {
		m   *Message
		sum [32]byte
	}
	seen := map[dedupKey][]seenMsg{}
	dupCounts := map[uuid.UUID]int{}
	stored := map[*Message]bool{}
	for i, u := range units {
		for j, m := range u.messages() {
			key, ok := keyOf(m)
			if !ok || dedupWindow <= 0 {
				stored[m] = true
				continue
			}
			var o Outcome
			for _, p := range seen[key] {
				if p.sum == m.sum {
					o = Outcome{Duplicate: true, Original: p.m.ID, OriginalAck: p.m.Ack}
					break
				}
				o.ControlIDReused = true
			}
			if !o.Duplicate {
				if p, ok := find(prior[key], m.sum); ok {
					o = Outcome{Duplicate: true, Original: p.id, OriginalAck: p.ack}
				} else if len(prior[key]) > 0 {
					o.ControlIDReused = true
				}
			}
			outcomes[i][j] = o
			if o.Duplicate {
				dupCounts[o.Original]++
				continue
			}
			stored[m] = true
			seen[key] = append(seen[key], seenMsg{m, m.sum})
		}
	}

	b := &pgx.Batch{}
	for i, u := range units {
		if u.Batch != nil {
			bt := u.Batch
			sum := sha256.Sum256(bt.Raw)
			b.Queue(`INSERT INTO batches (id, received_at, listener, remote_addr, raw, raw_sha256, header_type, control_id, message_count)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING`,
				bt.ID, bt.ReceivedAt, clean(bt.Listener), clean(bt.RemoteAddr), bt.Raw, sum[:], bt.HeaderType, clean(bt.ControlID), len(bt.Messages))
		}
		for j, m := range u.messages() {
			if !stored[m] {
				continue
			}
			var batchID *uuid.UUID
			var batchIndex *int
			if u.Batch != nil {
				batchID, batchIndex = &u.Batch.ID, &j
			}
			queueInsertMessage(b, m, batchID, batchIndex, outcomes[i][j].ControlIDReused, dupCounts[m.ID])
			delete(dupCounts, m.ID)
		}
	}
	now := time.Now()
	for id, n := range dupCounts {
		b.Queue(`UPDATE messages SET duplicate_count = duplicate_count + $2, last_duplicate_at = $3 WHERE id = $1`, id, n, now)
	}
	if err := commitBatch(ctx, conn.Conn(), b); err != nil {
		return nil, err
	}
	committed = true
	return outcomes, nil
}

func queueInsertMessage(b *pgx.Batch, m *Message, batchID *uuid.UUID, batchIndex *int, reused bool, dups int) {
	h := m.Header
	var ackCode, errLoc, errText *string
	var errCode *int
	if m.AckCode != "" {
		ackCode = &m.AckCode
	}
	if m.ErrorCode != 0 || m.Error != "" {
		c, l, t := m.ErrorCode, clean(m.ErrorLocation), clean(m.Error)
		errCode, errLoc, errText = &c, &l, &t
	}
	var lastDup *time.Time
	if dups > 0 {
		lastDup = &m.ReceivedAt
	}
	var patient *string
	var partition *int32
	if m.Outbox != nil {
		partition = &m.Outbox.PartitionKey
		if m.Outbox.PatientKey != "" {
			p := clean(m.Outbox.PatientKey)
			patient = &p
		}
	}
	b.Queue(`INSERT INTO messages (id, received_at, listener, remote_addr, batch_id, batch_index, raw, raw_sha256,
			sending_application, sending_facility, receiving_application, receiving_facility,
			message_type, trigger_event, message_structure, control_id, processing_id, version, character_set,
			status, ack_code, ack, error_code, error_location, error, control_id_reused, duplicate_count, last_duplicate_at,
			patient_key, partition_key)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30)
		ON CONFLICT (id) DO NOTHING`,
		m.ID, m.ReceivedAt, clean(m.Listener), clean(m.RemoteAddr), batchID, batchIndex, m.Raw, m.sum[:],
		clean(h.SendingApplication), clean(h.SendingFacility), clean(h.ReceivingApplication), clean(h.ReceivingFacility),
		clean(h.MessageType), clean(h.TriggerEvent), clean(h.MessageStructure), clean(h.ControlID), clean(h.ProcessingID), clean(h.Version), clean(h.CharacterSet),
		string(m.Status), ackCode, m.Ack, errCode, errLoc, errText, reused, dups, lastDup,
		patient, partition)
	if m.Outbox != nil {
		b.Queue(`INSERT INTO outbox (message_id, partition_key, patient_key) VALUES ($1, $2, $3) ON CONFLICT (message_id) DO NOTHING`,
			m.ID, m.Outbox.PartitionKey, patient)
	}
}

// priorMessage is one message already stored under a de-duplication key.
type priorMessage struct {
	id  uuid.UUID
	sum []byte
	ack []byte
}

// find returns the earliest stored message with exactly these bytes.
func find(prior []priorMessage, sum [32]byte) (priorMessage, bool) {
	for _, p := range prior {
		if string(p.sum) == string(sum[:]) {
			return p, true
		}
	}
	return priorMessage{}, false
}

// commitBatch runs b followed by COMMIT in one round trip. Every statement
// is checked: in a pipeline a failed statement makes the server skip the
// rest, and COMMIT of an aborted transaction reports ROLLBACK rather than
// an error.
func commitBatch(ctx context.Context, conn *pgx.Conn, b *pgx.Batch) error {
	n := b.Len()
	b.Queue("COMMIT")
	br := conn.SendBatch(ctx, b)
	for i := range n {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return fmt.Errorf("insert (statement %d of %d): %w", i+1, n, err)
		}
	}
	tag, err := br.Exec()
	if err != nil {
		br.Close()
		return fmt.Errorf("commit: %w", err)
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if tag.String() != "COMMIT" {
		return fmt.Errorf("commit: transaction was rolled back (%s)", tag)
	}
	return nil
}

// lookupDuplicates opens the transaction and finds, for each distinct
// de-duplication key in msgs, the messages already stored within the
// window. It first takes a transaction advisory lock per key, in key
// order, so that two listeners receiving the same re-send at once cannot
// both store it (and cannot deadlock).
//
// One small query per key, rather than one query over arrays, because the
// planner plans the simple form several times faster, and planning was
// most of the cost.
// duplicatesSQL finds earlier copies of one sender's control ID within the
// de-duplication window ($4), leaving out the group's own messages ($5).
const duplicatesSQL = `SELECT id, raw_sha256, ack FROM messages
	WHERE sending_application = $1 AND sending_facility = $2 AND control_id = $3 AND received_at >= $4
	  AND id <> ALL ($5::uuid[])
	ORDER BY received_at`

// pgx prepares every statement, and after five executions PostgreSQL may
// switch a prepared statement to a generic plan and keep it until the
// table is next analysed. A listener that starts on a new or purged (and
// vacuumed) messages table would then look up duplicates with the
// sequential scan planned for an empty table, slower with every message
// stored until autovacuum analyses it again. The lookup is therefore
// planned at each execution, for the table as it is; only the lookup: the
// inserts that follow keep their cached plans (planning them all cost a
// quarter of the listener's throughput in make bench, the lookup alone
// about a tenth at one connection). Ruling out sequential scans instead
// is not enough: a generic plan made on the empty table then picks an
// arbitrary index (the API's facility index, scanning a whole day).
const (
	customPlans = `SET LOCAL plan_cache_mode = force_custom_plan`
	cachedPlans = `SET LOCAL plan_cache_mode = auto`
)

func lookupDuplicates(ctx context.Context, conn *pgx.Conn, msgs []*Message, window time.Duration) (map[dedupKey][]priorMessage, error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(customPlans)
	var keys []dedupKey
	if window > 0 {
		seen := map[dedupKey]bool{}
		for _, m := range msgs {
			if k, ok := keyOf(m); ok && !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	slices.SortFunc(keys, func(a, b dedupKey) int { return cmp.Compare(a.lockID(), b.lockID()) })
	for i, k := range keys {
		if i > 0 && k.lockID() == keys[i-1].lockID() {
			continue // a hash collision: one lock covers both
		}
		b.Queue("SELECT pg_advisory_xact_lock($1)", k.lockID())
	}
	// [16]byte, not uuid.UUID: pgx encodes the plain array directly, the
	// named type through a slow fallback, once per key of the group.
	ids := make([][16]byte, len(msgs))
	oldest := time.Now()
	for i, m := range msgs {
		ids[i] = m.ID
		if m.ReceivedAt.Before(oldest) {
			oldest = m.ReceivedAt
		}
	}
	since := oldest.Add(-window)
	for _, k := range keys {
		// The group's own ids are excluded: after an ambiguous commit, a
		// retry must not take its own earlier insert for a duplicate.
		b.Queue(duplicatesSQL, k.app, k.fac, k.cid, since, ids)
	}
	b.Queue(cachedPlans)
	br := conn.SendBatch(ctx, b)
	defer br.Close()
	for range b.Len() - len(keys) - 1 {
		if _, err := br.Exec(); err != nil {
			return nil, fmt.Errorf("begin and lock de-duplication keys: %w", err)
		}
	}
	prior := map[dedupKey][]priorMessage{}
	for _, k := range keys {
		rows, err := br.Query()
		if err != nil {
			return nil, fmt.Errorf("look up duplicates: %w", err)
		}
		for rows.Next() {
			var p priorMessage
			if err := rows.Scan(&p.id, &p.sum, &p.ack); err != nil {
				rows.Close()
				return nil, fmt.Errorf("scan duplicate: %w", err)
			}
			prior[k] = append(prior[k], p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("look up duplicates: %w", err)
		}
	}
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("restore cached plans: %w", err)
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("look up duplicates: %w", err)
	}
	return prior, nil
}

// clean makes s storable in a text column: PostgreSQL text cannot hold NUL
// and must be valid UTF-8, but a hostile or broken peer can send either.
func clean(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
