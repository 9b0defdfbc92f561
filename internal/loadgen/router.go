package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/hl7sim"
)

// RouterResult is how long after their ACK the router turned a run's
// messages into events.
type RouterResult struct {
	// Note says why there are no figures (no router running, say);
	// empty when there are.
	Note string `json:"note,omitempty"`
	// Messages is how many of the run's messages were looked up; Stored
	// how many the database has; Routed how many have at least one event;
	// Pending how many were still in the outbox when the wait ran out.
	Messages int `json:"messages"`
	Stored   int `json:"stored"`
	Routed   int `json:"routed"`
	Pending  int `json:"pending"`
	// Event is, per routed message, from its ACK to the recorded_at of
	// its first event; Alert, per alert event (raised, escalated ...),
	// from the ACK of the message whose observations caused it to the
	// alert's recorded_at.
	//
	// recorded_at is now() of the router's transaction, which PostgreSQL
	// fixes when the transaction starts: the event became visible at its
	// commit, a little later. Both clocks are this machine's when the
	// database is local.
	Event Summary `json:"ack_to_event"`
	Alert Summary `json:"ack_to_alert"`
	// Waited is how long it took the router to finish the run's messages
	// after the call (0 when they were done already).
	Waited time.Duration `json:"waited_ns"`
}

// routerFresh is how recent a router's heartbeat must be for it to count
// as running.
const routerFresh = time.Minute

// RouterLatency waits up to wait for the router to take the records'
// messages out of the outbox, then reads the recorded_at of their events
// from the database at dbURL: control ID -> messages.id ->
// events.message_id. Without a running router (no recent heartbeat in
// routers) it returns a result with a Note and no figures.
func RouterLatency(ctx context.Context, dbURL string, records []Record, wait time.Duration) (*RouterResult, error) {
	res := &RouterResult{Messages: len(records)}
	if len(records) == 0 {
		res.Note = "no acknowledged messages"
		return res, nil
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("connect to the database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var routers int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM routers WHERE heartbeat_at > now() - make_interval(secs => $1)`,
		routerFresh.Seconds()).Scan(&routers); err != nil {
		return nil, fmt.Errorf("look for a running router: %w", err)
	}
	if routers == 0 {
		res.Note = "no router running (no heartbeat in the routers table for " + routerFresh.String() + ")"
		return res, nil
	}

	ids := make([]string, len(records))
	ackAt := make(map[string]time.Time, len(records))
	for i, r := range records {
		ids[i] = r.ControlID
		ackAt[r.ControlID] = r.AckAt
	}
	// The run's messages, by the index on (sending application, facility,
	// control ID).
	const runMessages = `SELECT id FROM messages
		WHERE sending_application = $1 AND sending_facility = $2 AND control_id = ANY($3)`
	args := []any{hl7sim.Application, hl7sim.Facility, ids}
	began := time.Now()
	for {
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE message_id IN (`+runMessages+`)`, args...).Scan(&res.Pending); err != nil {
			return nil, fmt.Errorf("count the run's messages in the outbox: %w", err)
		}
		if res.Pending == 0 || time.Since(began) >= wait {
			break
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
	res.Waited = time.Since(began)

	rows, err := conn.Query(ctx, `SELECT m.control_id, min(e.recorded_at),
			coalesce(array_agg(e.recorded_at) FILTER (WHERE e.type LIKE 'alert.%'), '{}')
		FROM messages m LEFT JOIN events e ON e.message_id = m.id
		WHERE m.sending_application = $1 AND m.sending_facility = $2 AND m.control_id = ANY($3)
		GROUP BY m.id, m.control_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("read the run's events: %w", err)
	}
	var events, alerts []time.Duration
	for rows.Next() {
		var cid string
		var first *time.Time
		var alertAt []time.Time
		if err := rows.Scan(&cid, &first, &alertAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read the run's events: %w", err)
		}
		res.Stored++
		ack, ok := ackAt[cid]
		if !ok || first == nil {
			continue
		}
		res.Routed++
		events = append(events, first.Sub(ack))
		for _, a := range alertAt {
			alerts = append(alerts, a.Sub(ack))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the run's events: %w", err)
	}
	res.Event, res.Alert = Summarize(events), Summarize(alerts)
	return res, nil
}

// WriteText writes the result for a person.
func (r *RouterResult) WriteText(w io.Writer) {
	if r.Note != "" {
		fmt.Fprintf(w, "  router       %s\n", r.Note)
		return
	}
	fmt.Fprintf(w, "  ACK->event   %s\n", r.Event)
	fmt.Fprintf(w, "  ACK->alert   %s\n", r.Alert)
	fmt.Fprintf(w, "  routed       %d of %d messages have events", r.Routed, r.Messages)
	if r.Pending > 0 {
		fmt.Fprintf(w, "; %d still in the outbox after %v", r.Pending, r.Waited.Round(time.Millisecond))
	}
	fmt.Fprintln(w)
}

// BacklogSample is the outbox's length at a moment.
type BacklogSample struct {
	At   time.Time `json:"at"`
	Rows int       `json:"rows"`
}

// Backlog is a series of outbox lengths.
type Backlog []BacklogSample

// WatchBacklog counts the outbox's rows every interval until ctx ends and
// returns the samples. A failed count ends the watch with the error and
// the samples so far.
func WatchBacklog(ctx context.Context, dbURL string, every time.Duration) (Backlog, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("connect to watch the outbox: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var b Backlog
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
			if ctx.Err() != nil {
				return b, nil
			}
			return b, fmt.Errorf("count the outbox: %w", err)
		}
		b = append(b, BacklogSample{At: time.Now(), Rows: n})
		select {
		case <-ctx.Done():
			return b, nil
		case <-tick.C:
		}
	}
}

// Max is the longest outbox seen; 0 without samples.
func (b Backlog) Max() int {
	m := 0
	for _, s := range b {
		m = max(m, s.Rows)
	}
	return m
}

// Growth is the least-squares slope of the samples, in rows per second:
// about 0 when the router keeps up, positive when the backlog grows.
func (b Backlog) Growth() (float64, error) {
	if len(b) < 3 {
		return 0, errors.New("fewer than three samples")
	}
	t0 := b[0].At
	var n, sx, sy, sxx, sxy float64
	for _, s := range b {
		x, y := s.At.Sub(t0).Seconds(), float64(s.Rows)
		n++
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0, errors.New("the samples share one time")
	}
	return (n*sxy - sx*sy) / d, nil
}
