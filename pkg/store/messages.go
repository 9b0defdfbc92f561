package store

import (
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

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	prior, err := lookupDuplicates(ctx, tx, all, dedupWindow)
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
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("insert messages: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
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
	b.Queue(`INSERT INTO messages (id, received_at, listener, remote_addr, batch_id, batch_index, raw, raw_sha256,
			sending_application, sending_facility, receiving_application, receiving_facility,
			message_type, trigger_event, message_structure, control_id, processing_id, version, character_set,
			status, ack_code, ack, error_code, error_location, error, control_id_reused, duplicate_count, last_duplicate_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)
		ON CONFLICT (id) DO NOTHING`,
		m.ID, m.ReceivedAt, clean(m.Listener), clean(m.RemoteAddr), batchID, batchIndex, m.Raw, m.sum[:],
		clean(h.SendingApplication), clean(h.SendingFacility), clean(h.ReceivingApplication), clean(h.ReceivingFacility),
		clean(h.MessageType), clean(h.TriggerEvent), clean(h.MessageStructure), clean(h.ControlID), clean(h.ProcessingID), clean(h.Version), clean(h.CharacterSet),
		string(m.Status), ackCode, m.Ack, errCode, errLoc, errText, reused, dups, lastDup)
	if m.Outbox != nil {
		var patient *string
		if m.Outbox.PatientKey != "" {
			p := clean(m.Outbox.PatientKey)
			patient = &p
		}
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

// lookupDuplicates finds, for each distinct de-duplication key in msgs, the
// messages already stored within the window. It first takes a transaction
// advisory lock per key, in key order, so that two listeners receiving the
// same re-send at once cannot both store it.
func lookupDuplicates(ctx context.Context, tx pgx.Tx, msgs []*Message, window time.Duration) (map[dedupKey][]priorMessage, error) {
	if window <= 0 {
		return nil, nil
	}
	keys := map[dedupKey]bool{}
	var oldest time.Time
	ids := make([]uuid.UUID, 0, len(msgs))
	for _, m := range msgs {
		ids = append(ids, m.ID)
		if k, ok := keyOf(m); ok {
			keys[k] = true
			if oldest.IsZero() || m.ReceivedAt.Before(oldest) {
				oldest = m.ReceivedAt
			}
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	var apps, facs, cids []string
	lockIDs := make([]int64, 0, len(keys))
	for k := range keys {
		apps, facs, cids = append(apps, k.app), append(facs, k.fac), append(cids, k.cid)
		lockIDs = append(lockIDs, k.lockID())
	}
	slices.Sort(lockIDs)
	lockIDs = slices.Compact(lockIDs)

	b := &pgx.Batch{}
	b.Queue(`SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k ORDER BY k`, lockIDs)
	// The first attempt's rows are excluded by id: after an ambiguous commit
	// a retry must not take its own earlier insert for a duplicate.
	b.Queue(`SELECT k.app, k.fac, k.cid, m.id, m.raw_sha256, m.ack
		FROM unnest($1::text[], $2::text[], $3::text[]) AS k(app, fac, cid)
		JOIN messages m ON m.sending_application = k.app AND m.sending_facility = k.fac
			AND m.control_id = k.cid AND m.received_at >= $4
		WHERE m.id <> ALL ($5::uuid[])
		ORDER BY m.received_at`, apps, facs, cids, oldest.Add(-window), ids)
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("lock de-duplication keys: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("look up duplicates: %w", err)
	}
	prior := map[dedupKey][]priorMessage{}
	for rows.Next() {
		var k dedupKey
		var p priorMessage
		if err := rows.Scan(&k.app, &k.fac, &k.cid, &p.id, &p.sum, &p.ack); err != nil {
			return nil, fmt.Errorf("scan duplicate: %w", err)
		}
		prior[k] = append(prior[k], p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up duplicates: %w", err)
	}
	return prior, br.Close()
}

// clean makes s storable in a text column: PostgreSQL text cannot hold NUL
// and must be valid UTF-8, but a hostile or broken peer can send either.
func clean(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// PartitionKey hashes a patient key to the non-negative 31-bit partition
// key stored in the outbox. It is part of the outbox contract: whoever
// needs a patient's partition (a merge touches two) must use this function.
func PartitionKey(s string) int32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return int32(h.Sum32() & 0x7fffffff)
}
