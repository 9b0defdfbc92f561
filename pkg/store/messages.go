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
	"github.com/jackc/pgx/v5/pgtype"
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
	if len(units) == 1 && units[0].Batch == nil && units[0].Message != nil {
		o, err := s.saveOne(ctx, units[0].Message, dedupWindow)
		if err != nil {
			return nil, err
		}
		outcomes[0][0] = o
		return outcomes, nil
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
	rows := newMessageRows(len(stored))
	for i, u := range units {
		if u.Batch != nil {
			bt := u.Batch
			sum := sha256.Sum256(bt.Raw)
			b.Queue(`INSERT INTO batches (id, received_at, listener, remote_addr, raw, raw_sha256, header_type, control_id, message_count)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING`,
				[16]byte(bt.ID), bt.ReceivedAt, clean(bt.Listener), clean(bt.RemoteAddr), bt.Raw, sum[:], bt.HeaderType, clean(bt.ControlID), len(bt.Messages))
		}
		for j, m := range u.messages() {
			if !stored[m] {
				continue
			}
			batchID, batchIndex := pgtype.UUID{}, pgtype.Int4{}
			if u.Batch != nil {
				batchID, batchIndex = pgtype.UUID{Bytes: u.Batch.ID, Valid: true}, pgtype.Int4{Int32: int32(j), Valid: true}
			}
			rows.add(m, batchID, batchIndex, outcomes[i][j].ControlIDReused, dupCounts[m.ID])
			delete(dupCounts, m.ID)
		}
	}
	rows.queue(b)
	if len(dupCounts) > 0 {
		ids := make([][16]byte, 0, len(dupCounts))
		counts := make([]int32, 0, len(dupCounts))
		for id, n := range dupCounts {
			ids, counts = append(ids, id), append(counts, int32(n))
		}
		b.Queue(`UPDATE messages m SET duplicate_count = m.duplicate_count + d.n, last_duplicate_at = $3
			FROM unnest($1::uuid[], $2::int4[]) AS d(id, n) WHERE m.id = d.id`, ids, counts, time.Now())
	}
	if err := commitBatch(ctx, conn.Conn(), b); err != nil {
		return nil, err
	}
	committed = true
	return outcomes, nil
}

// messageRows holds a group's new messages column by column (FlatArray:
// pgx encodes it without reflection, a plain slice of most element types
// through reflect, at a tenth of the listener's CPU): the group is
// inserted by one statement per table over arrays (INSERT ... SELECT FROM
// unnest), not by one statement per row. Each statement costs PostgreSQL
// an executor start that opens every index of the table, evaluates each
// partial index's predicate set-up and fires the outbox notification
// trigger; per row, that was most of the listener's database time.
type messageRows struct {
	id                                     pgtype.FlatArray[[16]byte]
	receivedAt                             pgtype.FlatArray[time.Time]
	listener, remoteAddr                   pgtype.FlatArray[string]
	batchID                                pgtype.FlatArray[pgtype.UUID]
	batchIndex                             pgtype.FlatArray[pgtype.Int4]
	raw, sum                               pgtype.FlatArray[[]byte]
	sendApp, sendFac, recvApp, recvFac     pgtype.FlatArray[string]
	msgType, trigger, structure, controlID pgtype.FlatArray[string]
	processingID, version, charset, status pgtype.FlatArray[string]
	ackCode                                pgtype.FlatArray[pgtype.Text]
	ack                                    pgtype.FlatArray[[]byte]
	errCode                                pgtype.FlatArray[pgtype.Int4]
	errLocation, errText                   pgtype.FlatArray[pgtype.Text]
	reused                                 pgtype.FlatArray[bool]
	dups                                   pgtype.FlatArray[int32]
	lastDup                                pgtype.FlatArray[pgtype.Timestamptz]
	patient                                pgtype.FlatArray[pgtype.Text]
	partition                              pgtype.FlatArray[pgtype.Int4]
	outboxID                               pgtype.FlatArray[[16]byte]
	outboxPartition                        pgtype.FlatArray[int32]
	outboxPatient                          pgtype.FlatArray[pgtype.Text]
}

// newMessageRows makes room for n rows, so that appending never copies.
func newMessageRows(n int) *messageRows {
	return &messageRows{
		id: make([][16]byte, 0, n), receivedAt: make([]time.Time, 0, n),
		listener: make([]string, 0, n), remoteAddr: make([]string, 0, n),
		batchID: make([]pgtype.UUID, 0, n), batchIndex: make([]pgtype.Int4, 0, n),
		raw: make([][]byte, 0, n), sum: make([][]byte, 0, n),
		sendApp: make([]string, 0, n), sendFac: make([]string, 0, n), recvApp: make([]string, 0, n), recvFac: make([]string, 0, n),
		msgType: make([]string, 0, n), trigger: make([]string, 0, n), structure: make([]string, 0, n), controlID: make([]string, 0, n),
		processingID: make([]string, 0, n), version: make([]string, 0, n), charset: make([]string, 0, n), status: make([]string, 0, n),
		ackCode: make([]pgtype.Text, 0, n), ack: make([][]byte, 0, n), errCode: make([]pgtype.Int4, 0, n),
		errLocation: make([]pgtype.Text, 0, n), errText: make([]pgtype.Text, 0, n),
		reused: make([]bool, 0, n), dups: make([]int32, 0, n), lastDup: make([]pgtype.Timestamptz, 0, n),
		patient: make([]pgtype.Text, 0, n), partition: make([]pgtype.Int4, 0, n),
		outboxID: make([][16]byte, 0, n), outboxPartition: make([]int32, 0, n), outboxPatient: make([]pgtype.Text, 0, n),
	}
}

func (r *messageRows) add(m *Message, batchID pgtype.UUID, batchIndex pgtype.Int4, reused bool, dups int) {
	h := m.Header
	var ackCode, errLoc, errText pgtype.Text
	var errCode pgtype.Int4
	if m.AckCode != "" {
		ackCode = pgtype.Text{String: m.AckCode, Valid: true}
	}
	if m.ErrorCode != 0 || m.Error != "" {
		errCode = pgtype.Int4{Int32: int32(m.ErrorCode), Valid: true}
		errLoc = pgtype.Text{String: clean(m.ErrorLocation), Valid: true}
		errText = pgtype.Text{String: clean(m.Error), Valid: true}
	}
	var lastDup pgtype.Timestamptz
	if dups > 0 {
		lastDup = pgtype.Timestamptz{Time: m.ReceivedAt, Valid: true}
	}
	var patient pgtype.Text
	var partition pgtype.Int4
	if m.Outbox != nil {
		partition = pgtype.Int4{Int32: m.Outbox.PartitionKey, Valid: true}
		if m.Outbox.PatientKey != "" {
			patient = pgtype.Text{String: clean(m.Outbox.PatientKey), Valid: true}
		}
	}
	r.id = append(r.id, m.ID)
	r.receivedAt = append(r.receivedAt, m.ReceivedAt)
	r.listener = append(r.listener, clean(m.Listener))
	r.remoteAddr = append(r.remoteAddr, clean(m.RemoteAddr))
	r.batchID = append(r.batchID, batchID)
	r.batchIndex = append(r.batchIndex, batchIndex)
	r.raw = append(r.raw, m.Raw)
	r.sum = append(r.sum, m.sum[:])
	r.sendApp = append(r.sendApp, clean(h.SendingApplication))
	r.sendFac = append(r.sendFac, clean(h.SendingFacility))
	r.recvApp = append(r.recvApp, clean(h.ReceivingApplication))
	r.recvFac = append(r.recvFac, clean(h.ReceivingFacility))
	r.msgType = append(r.msgType, clean(h.MessageType))
	r.trigger = append(r.trigger, clean(h.TriggerEvent))
	r.structure = append(r.structure, clean(h.MessageStructure))
	r.controlID = append(r.controlID, clean(h.ControlID))
	r.processingID = append(r.processingID, clean(h.ProcessingID))
	r.version = append(r.version, clean(h.Version))
	r.charset = append(r.charset, clean(h.CharacterSet))
	r.status = append(r.status, string(m.Status))
	r.ackCode = append(r.ackCode, ackCode)
	r.ack = append(r.ack, m.Ack)
	r.errCode = append(r.errCode, errCode)
	r.errLocation = append(r.errLocation, errLoc)
	r.errText = append(r.errText, errText)
	r.reused = append(r.reused, reused)
	r.dups = append(r.dups, int32(dups))
	r.lastDup = append(r.lastDup, lastDup)
	r.patient = append(r.patient, patient)
	r.partition = append(r.partition, partition)
	if m.Outbox != nil {
		r.outboxID = append(r.outboxID, m.ID)
		r.outboxPartition = append(r.outboxPartition, m.Outbox.PartitionKey)
		r.outboxPatient = append(r.outboxPatient, patient)
	}
}

// insertMessagesSQL and insertOutboxSQL insert a group. ON CONFLICT makes
// a retry after an ambiguous commit (the connection lost during COMMIT)
// harmless. unnest keeps the arrays' order, so outbox ids follow arrival
// order, which is the order the router applies a patient's messages in.
const (
	insertMessagesSQL = `INSERT INTO messages (id, received_at, listener, remote_addr, batch_id, batch_index, raw, raw_sha256,
			sending_application, sending_facility, receiving_application, receiving_facility,
			message_type, trigger_event, message_structure, control_id, processing_id, version, character_set,
			status, ack_code, ack, error_code, error_location, error, control_id_reused, duplicate_count, last_duplicate_at,
			patient_key, partition_key)
		SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::uuid[], $6::int4[], $7::bytea[], $8::bytea[],
			$9::text[], $10::text[], $11::text[], $12::text[],
			$13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::text[],
			$20::text[], $21::text[], $22::bytea[], $23::int4[], $24::text[], $25::text[], $26::bool[], $27::int4[], $28::timestamptz[],
			$29::text[], $30::int4[])
		ON CONFLICT (id) DO NOTHING`
	insertOutboxSQL = `INSERT INTO outbox (message_id, partition_key, patient_key)
		SELECT * FROM unnest($1::uuid[], $2::int4[], $3::text[])
		ON CONFLICT (message_id) DO NOTHING`

	// The same for a group of one message.
	insertMessageSQL = `INSERT INTO messages (id, received_at, listener, remote_addr, batch_id, batch_index, raw, raw_sha256,
			sending_application, sending_facility, receiving_application, receiving_facility,
			message_type, trigger_event, message_structure, control_id, processing_id, version, character_set,
			status, ack_code, ack, error_code, error_location, error, control_id_reused, duplicate_count, last_duplicate_at,
			patient_key, partition_key)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
			$21, $22, $23, $24, $25, $26, $27, $28, $29, $30)
		ON CONFLICT (id) DO NOTHING`
	insertOneOutboxSQL = `INSERT INTO outbox (message_id, partition_key, patient_key) VALUES ($1, $2, $3)
		ON CONFLICT (message_id) DO NOTHING`
)

func (r *messageRows) queue(b *pgx.Batch) {
	switch len(r.id) {
	case 0:
		return
	case 1:
		// A group of one, what a single sender always makes: unpacking
		// thirty one-element arrays cost more than the row.
		b.Queue(insertMessageSQL, r.id[0], r.receivedAt[0], r.listener[0], r.remoteAddr[0], r.batchID[0], r.batchIndex[0], r.raw[0], r.sum[0],
			r.sendApp[0], r.sendFac[0], r.recvApp[0], r.recvFac[0],
			r.msgType[0], r.trigger[0], r.structure[0], r.controlID[0], r.processingID[0], r.version[0], r.charset[0],
			r.status[0], r.ackCode[0], r.ack[0], r.errCode[0], r.errLocation[0], r.errText[0], r.reused[0], r.dups[0], r.lastDup[0],
			r.patient[0], r.partition[0])
		if len(r.outboxID) > 0 {
			b.Queue(insertOneOutboxSQL, r.outboxID[0], r.outboxPartition[0], r.outboxPatient[0])
		}
		return
	}
	b.Queue(insertMessagesSQL, r.id, r.receivedAt, r.listener, r.remoteAddr, r.batchID, r.batchIndex, r.raw, r.sum,
		r.sendApp, r.sendFac, r.recvApp, r.recvFac,
		r.msgType, r.trigger, r.structure, r.controlID, r.processingID, r.version, r.charset,
		r.status, r.ackCode, r.ack, r.errCode, r.errLocation, r.errText, r.reused, r.dups, r.lastDup,
		r.patient, r.partition)
	if len(r.outboxID) > 0 {
		b.Queue(insertOutboxSQL, r.outboxID, r.outboxPartition, r.outboxPatient)
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

// lockKeysSQL takes the group's advisory locks in the order given: the
// function scan returns the array in order, and the caller sorts it.
const lockKeysSQL = `SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::int8[]) AS k`

// duplicatesSQL finds earlier copies of each key's sender and control ID
// within the de-duplication window ($4), leaving out the group's own
// messages ($5). Each row names its key by its 1-based position in the
// arrays; rows come key by key, oldest first.
//
// It runs with a generic plan (genericPlans), made once per connection,
// and is written so that the only plan open to it is a probe per key by
// sender and control ID, whatever the table's statistics (a new or purged
// table is planned as empty until autovacuum analyses it):
//   - the LIMIT keeps the planner from flattening the subquery into a
//     join, which on a table not analysed yet hashes the keys and reads
//     all of messages;
//   - no index on received_at can be picked to read a whole day: the
//     window is a filter no index can serve ("IS TRUE"), and the order
//     (oldest first) an expression no index provides ("+ interval '0 s'";
//     with the sender and control ID fixed, plain received_at is the
//     order of messages_received_id_idx, whose full scan then looks free
//     on an empty table);
//   - the API's sender and facility indexes are partial, and a generic
//     plan cannot prove their predicates.
//
// That leaves messages_dedup_idx and messages_control_id_idx, each a probe
// of the few rows under one control ID (no sender re-sends a control ID a
// thousand times within a day). Planning the lookup for each group's
// values instead cost a tenth of the database's time per message, and
// with the values in hand the planner can prove those partial indexes'
// predicates and choose them.
const duplicatesSQL = `SELECT k.i, m.id, m.raw_sha256, m.ack
	FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS k (app, fac, cid, i)
	CROSS JOIN LATERAL (
		SELECT id, raw_sha256, ack, received_at FROM messages
		WHERE sending_application = k.app AND sending_facility = k.fac AND control_id = k.cid
		  AND (received_at >= $4) IS TRUE AND id <> ALL ($5::uuid[])
		ORDER BY received_at + interval '0 s' LIMIT 1000
	) AS m
	ORDER BY k.i, m.received_at`

// genericPlans makes the statements after it in the transaction planned
// once per connection, for any parameters: see duplicatesSQL and
// saveOneSQL, which are written for it, and TestDuplicateLookupPlans,
// which holds them to it. The inserts have no plan to choose.
const genericPlans = `SET LOCAL plan_cache_mode = force_generic_plan`

// lookupDuplicates opens the transaction and finds, for each distinct
// de-duplication key in msgs, the messages already stored within the
// window. It first takes a transaction advisory lock per key, in key
// order, so that two listeners receiving the same re-send at once cannot
// both store it (and cannot deadlock).
//
// The group is looked up by one statement over arrays of keys, planned
// once per group: a statement per key cost a planning and an executor
// start per message, most of the commit's database time.
func lookupDuplicates(ctx context.Context, conn *pgx.Conn, msgs []*Message, window time.Duration) (map[dedupKey][]priorMessage, error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
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
	if len(keys) == 0 {
		if err := conn.SendBatch(ctx, b).Close(); err != nil {
			return nil, fmt.Errorf("begin: %w", err)
		}
		return nil, nil
	}
	slices.SortFunc(keys, func(a, b dedupKey) int { return cmp.Compare(a.lockID(), b.lockID()) })
	locks := make([]int64, 0, len(keys))
	apps, facs, cids := make([]string, len(keys)), make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		if id := k.lockID(); i == 0 || id != locks[len(locks)-1] { // a hash collision: one lock covers both
			locks = append(locks, id)
		}
		apps[i], facs[i], cids[i] = k.app, k.fac, k.cid
	}
	b.Queue(lockKeysSQL, locks)
	// [16]byte, not uuid.UUID: pgx encodes the plain array directly, the
	// named type through a slow fallback.
	ids := make([][16]byte, len(msgs))
	oldest := time.Now()
	for i, m := range msgs {
		ids[i] = m.ID
		if m.ReceivedAt.Before(oldest) {
			oldest = m.ReceivedAt
		}
	}
	b.Queue(genericPlans)
	// The group's own ids are excluded: after an ambiguous commit, a retry
	// must not take its own earlier insert for a duplicate.
	b.Queue(duplicatesSQL, apps, facs, cids, oldest.Add(-window), ids)
	br := conn.SendBatch(ctx, b)
	defer br.Close()
	for range 3 {
		if _, err := br.Exec(); err != nil {
			return nil, fmt.Errorf("begin and lock de-duplication keys: %w", err)
		}
	}
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("look up duplicates: %w", err)
	}
	prior := map[dedupKey][]priorMessage{}
	for rows.Next() {
		var i int64
		var p priorMessage
		if err := rows.Scan(&i, &p.id, &p.sum, &p.ack); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan duplicate: %w", err)
		}
		if i < 1 || int(i) > len(keys) {
			rows.Close()
			return nil, fmt.Errorf("look up duplicates: key ordinal %d out of range", i)
		}
		prior[keys[i-1]] = append(prior[keys[i-1]], p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up duplicates: %w", err)
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
