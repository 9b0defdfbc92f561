package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// FeedStatus is one configured feed (routes.yaml feeds) as the ops
// summary reports it: when its sender last sent anything, and whether it
// is idle, that is silent for longer than its window. A feed that never
// sent anything has no last message and is idle once its window has
// passed since the router first watched it.
type FeedStatus struct {
	Name               string     `json:"name"`
	Sender             string     `json:"sender"`              // MSH-3^MSH-4, MSH-3^* when any facility
	SendingApplication string     `json:"sending_application"` // MSH-3
	SendingFacility    string     `json:"sending_facility"`    // MSH-4, "" for any facility
	Silence            string     `json:"silence"`             // the window, e.g. 15m0s
	SilenceSeconds     float64    `json:"silence_seconds"`
	LastMessageAt      *time.Time `json:"last_message_at"` // any status, rejected included; null when never
	AgeSeconds         *float64   `json:"age_seconds"`     // at minus last_message_at; null when never
	Idle               bool       `json:"idle"`            // silent for longer than the window (as last checked)
	IdleSince          *time.Time `json:"idle_since"`      // when it became idle; null unless idle
}

// feedsLock is the transaction advisory lock a feed check holds, so that
// one router at a time decides transitions and each is recorded once.
const feedsLock = 7262735

// FeedConfig is a feed as routes.yaml configures it.
type FeedConfig struct {
	Name               string
	SendingApplication string
	SendingFacility    string // "" for any facility
	Silence            time.Duration
}

// Sender is MSH-3^MSH-4, or MSH-3^* for any facility.
func (f FeedConfig) Sender() string {
	if f.SendingFacility == "" {
		return f.SendingApplication + "^*"
	}
	return f.SendingApplication + "^" + f.SendingFacility
}

// FeedState is a feed's recorded state and its sender's latest message,
// as a check sees them.
type FeedState struct {
	FeedConfig
	Idle         bool
	WatchedSince time.Time
	IdleSince    time.Time // zero unless idle
	// The latest message from the sender (any status); zero and uuid.Nil
	// when none was ever counted.
	LastMessageAt time.Time
	LastMessageID uuid.UUID
	LastSender    string // MSH-3^MSH-4 of that message
}

// FeedChange is a transition decided by a check: the feed's new state,
// the event recording it (nil for none) and whom to tell.
type FeedChange struct {
	Name       string
	Idle       bool
	IdleSince  time.Time // when idle
	Event      *EventRow
	Deliveries []FeedDelivery
}

// FeedDelivery is one destination of a feed event: a row in deliveries
// for webhooks and logs, a NOTIFY on Channel with Note for notify ones.
type FeedDelivery struct {
	Destination string
	Kind        string // webhook, log or notify
	Channel     string // notify only
	Note        string // notify only: the NOTIFY payload
}

const (
	feedStatusSQL = `SELECT name, sending_application, sending_facility, silence, state = 'idle', watched_since, idle_since
		FROM feed_status ORDER BY name`

	// feedSendersSQL is every sender's latest message: the aggregator's,
	// or a later one after its watermark ($1, $2), bounded below by $3 so
	// that a stalled aggregator never makes this a scan of messages.
	feedSendersSQL = `SELECT DISTINCT ON (a, f) a, f, at, id FROM (
			SELECT sending_application AS a, sending_facility AS f, last_message_at AS at, last_message_id AS id FROM ops_senders
			UNION ALL
			SELECT sending_application, sending_facility, max(received_at), NULL FROM messages
			WHERE (received_at, id) > ($1, $2) AND received_at >= $3
			GROUP BY 1, 2) s
		ORDER BY a, f, at DESC, id NULLS LAST`
	// feedLastIDSQL finds the id of a sender's message at a time (ties by
	// id), through messages_sender_idx (whose predicate it states).
	feedLastIDSQL = `SELECT id FROM messages WHERE sending_facility = $2 AND received_at = $3 AND sending_application = $1
		AND sending_application <> '' ORDER BY id DESC LIMIT 1`
)

// senderLast is a sender's latest message.
type senderLast struct {
	app, facility string
	at            time.Time
	id            *uuid.UUID
}

// CheckFeeds brings feed_status in line with feeds (the configured ones;
// a feed whose sender changed starts afresh), then, under an advisory
// lock, shows decide every feed's state and sender's latest message and
// records the transitions it returns, with their events, deliveries and
// notifications, in one transaction. Only one router at a time decides:
// when another holds the lock, CheckFeeds only reads the states, calls
// nothing, and returns ran false. The states returned are after the
// changes.
func (s *Store) CheckFeeds(ctx context.Context, now time.Time, feeds []FeedConfig, decide func([]FeedState) []FeedChange) (states []FeedState, ran bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		states, ran = nil, false
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, feedsLock).Scan(&ran); err != nil {
			return fmt.Errorf("check feeds: lock: %w", err)
		}
		if ran {
			if err := syncFeeds(ctx, tx, now, feeds); err != nil {
				return err
			}
		}
		var err error
		if states, err = readFeeds(ctx, tx, now); err != nil {
			return err
		}
		if !ran || len(states) == 0 {
			return nil
		}
		changes := decide(states)
		if err := recordFeeds(ctx, tx, states, changes); err != nil {
			return err
		}
		byName := map[string]FeedChange{}
		for _, c := range changes {
			byName[c.Name] = c
		}
		for i := range states {
			if c, ok := byName[states[i].Name]; ok {
				states[i].Idle, states[i].IdleSince = c.Idle, time.Time{}
				if c.Idle {
					states[i].IdleSince = c.IdleSince
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return states, ran, nil
}

// syncFeeds makes feed_status hold exactly the configured feeds.
func syncFeeds(ctx context.Context, tx pgx.Tx, now time.Time, feeds []FeedConfig) error {
	names := make([]string, len(feeds))
	apps := make([]string, len(feeds))
	facs := make([]string, len(feeds))
	silences := make([]time.Duration, len(feeds))
	for i, f := range feeds {
		names[i], apps[i], facs[i], silences[i] = f.Name, f.SendingApplication, f.SendingFacility, f.Silence
	}
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM feed_status f WHERE NOT EXISTS (
			SELECT 1 FROM unnest($1::text[], $2::text[], $3::text[]) AS c(name, a, fac)
			WHERE c.name = f.name AND c.a = f.sending_application AND c.fac = f.sending_facility)`, names, apps, facs)
	b.Queue(`INSERT INTO feed_status (name, sending_application, sending_facility, silence, watched_since)
		SELECT name, a, fac, silence, $5 FROM unnest($1::text[], $2::text[], $3::text[], $4::interval[]) AS c(name, a, fac, silence)
		ON CONFLICT (name) DO UPDATE SET silence = EXCLUDED.silence`, names, apps, facs, silences, now)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("check feeds: sync configuration: %w", err)
	}
	return nil
}

// readFeeds reads the feeds and their senders' latest messages.
func readFeeds(ctx context.Context, tx pgx.Tx, now time.Time) ([]FeedState, error) {
	rows, err := tx.Query(ctx, feedStatusSQL)
	if err != nil {
		return nil, fmt.Errorf("check feeds: %w", err)
	}
	states, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (FeedState, error) {
		var f FeedState
		var idleSince *time.Time
		err := r.Scan(&f.Name, &f.SendingApplication, &f.SendingFacility, &f.Silence, &f.Idle, &f.WatchedSince, &idleSince)
		if idleSince != nil {
			f.IdleSince = *idleSince
		}
		return f, err
	})
	if err != nil {
		return nil, fmt.Errorf("check feeds: %w", err)
	}
	if len(states) == 0 {
		return states, nil
	}
	lasts, err := senderLasts(ctx, tx, now)
	if err != nil {
		return nil, fmt.Errorf("check feeds: %w", err)
	}
	for i := range states {
		f := &states[i]
		var best *senderLast
		for j := range lasts {
			l := &lasts[j]
			if l.app == f.SendingApplication && (f.SendingFacility == "" || l.facility == f.SendingFacility) &&
				(best == nil || l.at.After(best.at)) {
				best = l
			}
		}
		if best == nil {
			continue
		}
		f.LastMessageAt, f.LastSender = best.at, best.app+"^"+best.facility
		if best.id != nil {
			f.LastMessageID = *best.id
			continue
		}
		// Found after the watermark: one index probe for its id.
		if err := tx.QueryRow(ctx, feedLastIDSQL, best.app, best.facility, best.at).Scan(&f.LastMessageID); err != nil {
			return nil, fmt.Errorf("check feeds: last message of %s: %w", f.Name, err)
		}
	}
	return states, nil
}

// senderLasts is every known sender's latest message.
func senderLasts(ctx context.Context, tx pgx.Tx, now time.Time) ([]senderLast, error) {
	w, _, ok, err := readWatermarks(ctx, tx)
	if err != nil {
		return nil, err
	}
	floor := now.Add(-opsBackfill)
	if !ok {
		w = watermark{at: floor}
	}
	rows, err := tx.Query(ctx, feedSendersSQL, w.at, w.id, floor)
	if err != nil {
		return nil, fmt.Errorf("senders' last messages: %w", err)
	}
	lasts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (senderLast, error) {
		var l senderLast
		err := r.Scan(&l.app, &l.facility, &l.at, &l.id)
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("senders' last messages: %w", err)
	}
	return lasts, nil
}

// recordFeeds writes the last message times and the transitions. An
// event whose message retention has deleted meanwhile (a feed silent for
// longer than messages are kept) is dropped, with its deliveries: the
// state still changes, and the API and metrics still show it.
func recordFeeds(ctx context.Context, tx pgx.Tx, states []FeedState, changes []FeedChange) error {
	var ids []uuid.UUID
	for _, c := range changes {
		if c.Event != nil {
			ids = append(ids, c.Event.MessageID)
		}
	}
	if len(ids) > 0 {
		rows, err := tx.Query(ctx, `SELECT id FROM messages WHERE id = ANY($1)`, ids)
		if err != nil {
			return fmt.Errorf("check feeds: event messages: %w", err)
		}
		found, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil {
			return fmt.Errorf("check feeds: event messages: %w", err)
		}
		for i := range changes {
			if e := changes[i].Event; e != nil && !slices.Contains(found, e.MessageID) {
				changes[i].Event, changes[i].Deliveries = nil, nil
			}
		}
	}
	b := &pgx.Batch{}
	for _, f := range states {
		var last *time.Time
		if !f.LastMessageAt.IsZero() {
			last = &f.LastMessageAt
		}
		b.Queue(`UPDATE feed_status SET last_message_at = $2 WHERE name = $1`, f.Name, last)
	}
	events := false
	for _, c := range changes {
		var idleSince *time.Time
		state := "active"
		if c.Idle {
			state, idleSince = "idle", &c.IdleSince
		}
		b.Queue(`UPDATE feed_status SET state = $2, idle_since = $3, changed_at = now() WHERE name = $1`, c.Name, state, idleSince)
		events = events || c.Event != nil
	}
	if events {
		// Events follow commit order by seq (see eventSeqLock); taken last,
		// it is held only for the inserts and the commit.
		b.Queue(`SELECT pg_advisory_xact_lock($1)`, eventSeqLock)
	}
	for _, c := range changes {
		if c.Event == nil {
			continue
		}
		e := c.Event
		b.Queue(insertEventSQL, e.ID, e.Type, e.OccurredAt, e.MessageID, nullable(e.PatientID), nullable(e.PatientKey),
			nullable(e.EncounterID), clean(e.Source), e.Route, e.SchemaVersion, e.Payload)
		for _, d := range c.Deliveries {
			if d.Channel != "" {
				b.Queue(notifySQL, d.Channel, d.Note)
				continue
			}
			// No alert: deliveries.alert_id is NULL for feed events.
			b.Queue(queueDeliverySQL, e.ID, nil, d.Destination, d.Kind)
		}
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("check feeds: record: %w", err)
	}
	return nil
}

// feedStatuses is the feeds part of the ops summary: the recorded state,
// with the last message time from the senders the summary just read.
func feedStatuses(ctx context.Context, tx pgx.Tx, now time.Time, senders []SenderStats) ([]FeedStatus, error) {
	rows, err := tx.Query(ctx, feedStatusSQL)
	if err != nil {
		return nil, fmt.Errorf("feeds: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (FeedStatus, error) {
		var f FeedStatus
		var silence time.Duration
		var watched time.Time
		err := r.Scan(&f.Name, &f.SendingApplication, &f.SendingFacility, &silence, &f.Idle, &watched, &f.IdleSince)
		f.Sender = FeedConfig{SendingApplication: f.SendingApplication, SendingFacility: f.SendingFacility}.Sender()
		f.Silence, f.SilenceSeconds = silence.String(), silence.Seconds()
		return f, err
	})
	if err != nil {
		return nil, fmt.Errorf("feeds: %w", err)
	}
	for i := range out {
		f := &out[i]
		for _, s := range senders {
			if s.SendingApplication == f.SendingApplication && (f.SendingFacility == "" || s.SendingFacility == f.SendingFacility) &&
				(f.LastMessageAt == nil || s.LastMessageAt.After(*f.LastMessageAt)) {
				at := s.LastMessageAt
				f.LastMessageAt = &at
			}
		}
		if f.LastMessageAt != nil {
			age := max(0, now.Sub(*f.LastMessageAt).Seconds())
			f.AgeSeconds = &age
		}
	}
	return out, nil
}
