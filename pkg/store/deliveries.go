package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Delivery statuses recorded in deliveries.status.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryDead      = "dead"
)

// maxDeliveryError bounds deliveries.last_error: a reason, not a log.
const maxDeliveryError = 500

// ErrDeliveryClaimLost means a delivery's outcome was not recorded because
// the claim it came from is no longer the current one: its lease lapsed and
// another attempt was claimed, or the row is no longer pending.
var ErrDeliveryClaimLost = errors.New("store: delivery claim lost")

// DeliveryClaim asks ClaimDeliveries for up to Limit due rows of one
// destination, each held for Lease.
type DeliveryClaim struct {
	Destination string
	Limit       int
	// Lease is how long the claimed rows stay invisible to other claims.
	// It must outlast the attempt and the recording of its outcome: when
	// it passes, the row is claimed (and sent) again.
	Lease time.Duration
}

// Delivery is a claimed queue row with the alert event it carries.
type Delivery struct {
	ID          int64
	Destination string
	Kind        string
	// Attempt is this attempt's number, from 1; MarkDelivered and
	// FailDelivery record an outcome only while it is still the row's.
	Attempt   int
	CreatedAt time.Time

	// The event (events row).
	EventID     uuid.UUID
	Type        string
	OccurredAt  time.Time
	RecordedAt  time.Time
	PatientID   string
	PatientKey  string
	EncounterID string // "" when the event has none
	Payload     []byte // JSON object

	// The alert (alerts row): its current rule, score, severity and level.
	// Zero (uuid.Nil, "" and 0) for a feed.* event, which belongs to no
	// alert (deliveries.alert_id is NULL).
	AlertID  uuid.UUID
	Rule     string
	Score    string
	Severity string
	Level    int
}

// ClaimDeliveries claims the due pending rows of each destination asked
// for, oldest due first, up to each Limit, and returns them with their
// event and alert. One statement (its own short transaction) locks them
// with SKIP LOCKED, counts the attempt and pushes next_attempt_at forward
// by the lease: concurrent claims, from this process or another, never get
// the same row, and a row whose claimer died is claimed again once the
// lease has passed. Destinations not asked for are left alone.
func (s *Store) ClaimDeliveries(ctx context.Context, want []DeliveryClaim) ([]Delivery, error) {
	var (
		dests  []string
		limits []int32
		leases []time.Duration
	)
	for _, w := range want {
		if w.Limit <= 0 {
			continue
		}
		dests = append(dests, w.Destination)
		limits = append(limits, int32(w.Limit))
		leases = append(leases, w.Lease)
	}
	if len(dests) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `
		WITH want AS (
			SELECT * FROM unnest($1::text[], $2::integer[], $3::interval[]) AS w(destination, n, lease)),
		picked AS (
			SELECT p.id, p.event_id, p.alert_id, w.lease
			FROM want w
			CROSS JOIN LATERAL (
				SELECT d.id, d.event_id, d.alert_id FROM deliveries d
				WHERE d.status = 'pending' AND d.destination = w.destination AND d.next_attempt_at <= now()
				ORDER BY d.next_attempt_at, d.id
				LIMIT w.n
				FOR UPDATE SKIP LOCKED) p)
		UPDATE deliveries d
		SET attempts = d.attempts + 1, next_attempt_at = now() + p.lease, last_attempt_at = now()
		FROM picked p JOIN events e ON e.id = p.event_id LEFT JOIN alerts a ON a.id = p.alert_id
		WHERE d.id = p.id
		RETURNING d.id, d.destination, d.kind, d.attempts, d.created_at,
			e.id, e.type, e.occurred_at, e.recorded_at,
			coalesce(e.patient_id, a.patient_id, ''), coalesce(e.patient_key, a.patient_key, ''), coalesce(e.encounter_id, ''), e.payload,
			coalesce(a.id, '00000000-0000-0000-0000-000000000000'), coalesce(a.rule, ''), coalesce(a.score, ''),
			coalesce(a.severity, ''), coalesce(a.level, 0)`,
		dests, limits, leases)
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	defer rows.Close()
	var ds []Delivery
	for rows.Next() {
		var d Delivery
		if err := rows.Scan(&d.ID, &d.Destination, &d.Kind, &d.Attempt, &d.CreatedAt,
			&d.EventID, &d.Type, &d.OccurredAt, &d.RecordedAt,
			&d.PatientID, &d.PatientKey, &d.EncounterID, &d.Payload,
			&d.AlertID, &d.Rule, &d.Score, &d.Severity, &d.Level); err != nil {
			return nil, fmt.Errorf("scan claimed delivery: %w", err)
		}
		ds = append(ds, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	return ds, nil
}

// MarkDelivered records that attempt of delivery id succeeded. It returns
// ErrDeliveryClaimLost, and changes nothing, unless the row is still
// pending at that attempt.
func (s *Store) MarkDelivered(ctx context.Context, id int64, attempt int) error {
	tag, err := s.pool.Exec(ctx, `
		UPDATE deliveries SET status = 'delivered', delivered_at = now()
		WHERE id = $1 AND attempts = $2 AND status = 'pending'`, id, attempt)
	if err != nil {
		return fmt.Errorf("mark delivery %d delivered: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrDeliveryClaimLost
	}
	return nil
}

// FailDelivery records that attempt of delivery id failed for reason. Once
// attempt reaches maxAttempts the row becomes dead; otherwise it is tried
// again after retryIn. Like MarkDelivered it is fenced by the attempt and
// returns ErrDeliveryClaimLost when the claim is no longer current.
func (s *Store) FailDelivery(ctx context.Context, id int64, attempt int, reason string, retryIn time.Duration, maxAttempts int) (dead bool, err error) {
	var status string
	err = s.pool.QueryRow(ctx, `
		UPDATE deliveries SET
			status = CASE WHEN attempts >= $4 THEN 'dead' ELSE 'pending' END,
			next_attempt_at = CASE WHEN attempts >= $4 THEN next_attempt_at ELSE now() + $5::interval END,
			last_error = $3
		WHERE id = $1 AND attempts = $2 AND status = 'pending'
		RETURNING status`, id, attempt, deliveryError(reason), maxAttempts, retryIn).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, ErrDeliveryClaimLost
	}
	if err != nil {
		return false, fmt.Errorf("record failed delivery %d: %w", id, err)
	}
	return status == DeliveryDead, nil
}

// HoldDeliveries explains why pending rows are not being sent: every
// pending row whose destination is not in sendable gets last_error
// reasons[destination], or unknownReason when reasons has none. Rows are
// neither claimed nor dropped, and their attempts are not counted; they
// are sent once their destination is configured again. It returns, per
// destination, how many rows it newly marked (rows already carrying the
// reason are not rewritten).
func (s *Store) HoldDeliveries(ctx context.Context, sendable []string, reasons map[string]string, unknownReason string) (map[string]int64, error) {
	if sendable == nil {
		sendable = []string{}
	}
	var names, texts []string
	for n, r := range reasons {
		names = append(names, n)
		texts = append(texts, deliveryError(r))
	}
	rows, err := s.pool.Query(ctx, `
		WITH r AS (SELECT * FROM unnest($2::text[], $3::text[]) AS r(destination, reason)),
		held AS (
			SELECT d.id, coalesce(r.reason, $4) AS reason
			FROM deliveries d LEFT JOIN r ON r.destination = d.destination
			WHERE d.status = 'pending' AND d.destination <> ALL($1::text[])
			  AND d.last_error IS DISTINCT FROM coalesce(r.reason, $4)
			FOR UPDATE OF d SKIP LOCKED)
		UPDATE deliveries d SET last_error = held.reason
		FROM held WHERE d.id = held.id
		RETURNING d.destination`, sendable, names, texts, deliveryError(unknownReason))
	if err != nil {
		return nil, fmt.Errorf("hold deliveries: %w", err)
	}
	defer rows.Close()
	held := map[string]int64{}
	for rows.Next() {
		var dest string
		if err := rows.Scan(&dest); err != nil {
			return nil, fmt.Errorf("scan held delivery: %w", err)
		}
		held[dest]++
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("hold deliveries: %w", err)
	}
	return held, nil
}

// DestinationStats is one destination's queue figures.
type DestinationStats struct {
	Pending       int64         // rows waiting, being sent or retrying
	OldestPending time.Duration // age of the oldest pending row, 0 when none
	Dead          int64         // rows given up on
}

// DeliveryStats reads the delivery queue figures exported as metrics, by
// destination. Destinations with neither pending nor dead rows are absent.
func (s *Store) DeliveryStats(ctx context.Context) (map[string]DestinationStats, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT destination, sum(pending)::bigint, max(oldest)::float8, sum(dead)::bigint FROM (
			SELECT destination, count(*) AS pending, extract(epoch FROM now() - min(created_at)) AS oldest, 0 AS dead
			FROM deliveries WHERE status = 'pending' GROUP BY destination
			UNION ALL
			SELECT destination, 0, 0, count(*) FROM deliveries WHERE status = 'dead' GROUP BY destination) q
		GROUP BY destination`)
	if err != nil {
		return nil, fmt.Errorf("delivery stats: %w", err)
	}
	defer rows.Close()
	stats := map[string]DestinationStats{}
	for rows.Next() {
		var (
			dest   string
			st     DestinationStats
			oldest float64
		)
		if err := rows.Scan(&dest, &st.Pending, &oldest, &st.Dead); err != nil {
			return nil, fmt.Errorf("scan delivery stats: %w", err)
		}
		st.OldestPending = time.Duration(max(oldest, 0) * float64(time.Second))
		stats[dest] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("delivery stats: %w", err)
	}
	return stats, nil
}

// DeliveryStatus is a delivery as the console and API show it.
type DeliveryStatus struct {
	ID            int64
	EventID       uuid.UUID
	AlertID       uuid.UUID
	Destination   string
	Kind          string
	Status        string // DeliveryPending, DeliveryDelivered or DeliveryDead
	Attempts      int
	NextAttemptAt time.Time
	LastAttemptAt *time.Time
	LastError     string
	CreatedAt     time.Time
	DeliveredAt   *time.Time
}

// AlertDeliveries returns the deliveries of an alert's events, in the order
// they were queued.
func (s *Store) AlertDeliveries(ctx context.Context, alertID uuid.UUID) ([]DeliveryStatus, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT id, event_id, alert_id, destination, kind, status, attempts, next_attempt_at, last_attempt_at,
			coalesce(last_error, ''), created_at, delivered_at
		FROM deliveries WHERE alert_id = $1 ORDER BY id`, alertID)
	if err != nil {
		return nil, fmt.Errorf("read alert deliveries: %w", err)
	}
	defer rows.Close()
	var ds []DeliveryStatus
	for rows.Next() {
		var d DeliveryStatus
		if err := rows.Scan(&d.ID, &d.EventID, &d.AlertID, &d.Destination, &d.Kind, &d.Status, &d.Attempts,
			&d.NextAttemptAt, &d.LastAttemptAt, &d.LastError, &d.CreatedAt, &d.DeliveredAt); err != nil {
			return nil, fmt.Errorf("scan delivery: %w", err)
		}
		ds = append(ds, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read alert deliveries: %w", err)
	}
	return ds, nil
}

// deliveryError makes a reason storable and keeps it short.
func deliveryError(s string) string {
	s = clean(s)
	if len(s) > maxDeliveryError {
		// Cut at a rune boundary.
		cut := maxDeliveryError
		for cut > 0 && s[cut]&0xC0 == 0x80 {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
