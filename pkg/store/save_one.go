package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// saveOneSQL stores one message unless it is a re-send, deciding on the
// server what Save decides in Go for a group: the message is a duplicate
// when the sender's control ID was stored with the same bytes within the
// window ($30; the message's own id left out, so that a retry after an
// ambiguous commit does not find itself), and control_id_reused when it
// was stored with other bytes. A duplicate is counted on the earliest
// copy; anything else is inserted, with its outbox row when it has a
// partition ($29). The one row returned names the copy, if any.
//
// Doing it in one statement lets the whole transaction (BEGIN, the key's
// lock, this, COMMIT) go in one round trip instead of two: a lone sender
// waits for every one of them, so they are much of its ACK latency beside
// the WAL flush. The lookup is duplicatesSQL's for one key, written the
// same way for a generic plan (see there).
const saveOneSQL = `WITH prior AS (
		SELECT id, raw_sha256, ack, received_at FROM messages
		WHERE sending_application = $9 AND sending_facility = $10 AND control_id = $16
		  AND (received_at >= $30) IS TRUE AND id <> $1
		ORDER BY received_at + interval '0 s' LIMIT 1000
	), dup AS (
		SELECT id, ack FROM prior WHERE raw_sha256 = $8 ORDER BY received_at LIMIT 1
	), counted AS (
		UPDATE messages m SET duplicate_count = m.duplicate_count + 1, last_duplicate_at = $2
		FROM dup WHERE m.id = dup.id
	), stored AS (
		INSERT INTO messages (id, received_at, listener, remote_addr, batch_id, batch_index, raw, raw_sha256,
			sending_application, sending_facility, receiving_application, receiving_facility,
			message_type, trigger_event, message_structure, control_id, processing_id, version, character_set,
			status, ack_code, ack, error_code, error_location, error, control_id_reused, duplicate_count, last_duplicate_at,
			patient_key, partition_key)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
			$21, $22, $23, $24, $25, EXISTS (SELECT FROM prior), $26, $27, $28, $29
		WHERE NOT EXISTS (SELECT FROM dup)
		ON CONFLICT (id) DO NOTHING
		RETURNING id
	), queued AS (
		INSERT INTO outbox (message_id, partition_key, patient_key)
		SELECT id, $29, $28 FROM stored WHERE $29::int4 IS NOT NULL
		ON CONFLICT (message_id) DO NOTHING
	)
	SELECT dup.id, dup.ack, EXISTS (SELECT FROM prior) FROM (VALUES (1)) AS one LEFT JOIN dup ON true`

// saveOne is Save for a unit of one message, what a lone sender always
// makes, in one round trip.
func (s *Store) saveOne(ctx context.Context, m *Message, dedupWindow time.Duration) (Outcome, error) {
	key, keyed := keyOf(m)
	keyed = keyed && dedupWindow > 0

	r := newMessageRows(1)
	r.add(m, pgtype.UUID{}, pgtype.Int4{}, false, 0)
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	if !keyed {
		r.queue(b)
		return Outcome{}, s.commit(ctx, func(conn *pgx.Conn) error { return commitBatch(ctx, conn, b) })
	}
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, key.lockID())
	b.Queue(genericPlans)
	b.Queue(saveOneSQL, r.id[0], r.receivedAt[0], r.listener[0], r.remoteAddr[0], r.batchID[0], r.batchIndex[0], r.raw[0], r.sum[0],
		r.sendApp[0], r.sendFac[0], r.recvApp[0], r.recvFac[0],
		r.msgType[0], r.trigger[0], r.structure[0], r.controlID[0], r.processingID[0], r.version[0], r.charset[0],
		r.status[0], r.ackCode[0], r.ack[0], r.errCode[0], r.errLocation[0], r.errText[0], r.dups[0], r.lastDup[0],
		r.patient[0], r.partition[0], m.ReceivedAt.Add(-dedupWindow))
	b.Queue("COMMIT")

	var o Outcome
	err := s.commit(ctx, func(conn *pgx.Conn) error {
		br := conn.SendBatch(ctx, b)
		defer br.Close()
		for range 3 {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("begin and lock de-duplication key: %w", err)
			}
		}
		var dupID pgtype.UUID
		var ack []byte
		if err := br.QueryRow().Scan(&dupID, &ack, &o.ControlIDReused); err != nil {
			return fmt.Errorf("store message: %w", err)
		}
		if dupID.Valid {
			o = Outcome{Duplicate: true, Original: dupID.Bytes, OriginalAck: ack}
		}
		tag, err := br.Exec()
		if err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		if err := br.Close(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		if tag.String() != "COMMIT" {
			return fmt.Errorf("commit: transaction was rolled back (%s)", tag)
		}
		return nil
	})
	if err != nil {
		return Outcome{}, err
	}
	return o, nil
}

// commit runs a transaction that f drives by hand, ending with COMMIT, on
// a connection of its own. A connection f returns an error on is closed,
// never handed back to the pool: it may still be inside the transaction,
// and closing it rolls the transaction back.
func (s *Store) commit(ctx context.Context, f func(*pgx.Conn) error) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	if err := f(conn.Conn()); err != nil {
		conn.Conn().Close(context.WithoutCancel(ctx))
		return err
	}
	return nil
}
