// Package delivery sends alert notifications from the durable deliveries
// queue (migration 00003) to their destinations: signed webhooks and the
// structured log. The scoring transaction queues one row per alert event
// and destination, so an alert that committed is never lost; a Worker,
// running inside the router process, claims due rows, sends them, and
// records each outcome. PostgreSQL NOTIFY destinations need no worker: the
// scoring transaction notifies on commit.
//
// # Guarantees
//
// Delivery is at least once. A row is marked delivered only after the
// receiver answered 2xx (or the log line was written); a crash between the
// two sends it again once its claim's lease has passed. Receivers
// therefore de-duplicate, by event_id (also in X-Aorta-Event): each alert
// event is one notification. alert_id groups the events of one alert
// (raised, escalated, resolved...), so de-duplicating by alert_id alone is
// right only for a receiver that wants the first notification of each
// alert. delivery_id is unique per event and destination.
//
// No row is sent by two workers at once, in this process or another: a
// claim locks due rows with SKIP LOCKED and pushes them a lease into the
// future (the destination's timeout plus Options.LeaseMargin), and every
// attempt ends, by its own deadline, before the lease does. Outcomes are
// recorded only while the claim is still current (the attempt count
// matches), so a late answer never overwrites a newer attempt.
//
// Deliveries are not ordered, not even one alert's: sends to a destination
// run concurrently and retries overtake. Order by occurred_at.
//
// A slow or dead destination delays nobody else: each destination has its
// own bounded number of sends in flight (Options.Concurrency), rows are
// claimed only when a send can start at once, and scoring only inserts
// rows. A destination the configuration no longer names (or names with an
// invalid configuration) is neither sent nor dropped: its rows stay
// pending with last_error "unknown destination" (or the reason), count in
// the pending metrics, and go out when the destination is configured again.
//
// # Retries and dead letters
//
// Every answer but 2xx is a failure to retry, 4xx included: a clinical
// alert is not dropped because a receiver was misconfigured for a while.
// Redirects are not followed (a signed alert goes only where configured).
// After attempt n fails, the row waits a random delay in [0, c] with
// c = backoff·2^(n-1), at most max_backoff ("full jitter"); after a 429 or
// 503 with Retry-After (seconds or an HTTP date) it waits at least that,
// up to max_backoff. When attempt max_attempts fails the row is dead:
// status dead, last_error saying why, counted by aorta_deliveries_dead.
//
// # Webhook requests
//
// A POST of Content-Type application/json, with User-Agent aorta/1 and
//
//	X-Aorta-Delivery:  the delivery ID
//	X-Aorta-Event:     the event ID (the de-duplication key)
//	X-Aorta-Timestamp: Unix seconds when this attempt was signed
//	X-Aorta-Signature: sha256=<lower-case hex HMAC-SHA256(secret, "<timestamp>.<body>")>
//
// The timestamp is inside the MAC, so a captured request cannot be
// replayed later: receivers check the signature and the timestamp's skew
// with Verify. The body (Body) is stable; keys may be added, never removed
// or retyped:
//
//	{
//	  "delivery_id": 42,                                        // deliveries.id
//	  "event_id": "5c0e...",                                    // events.id
//	  "type": "alert.raised",                                   // events.type: alert.*
//	  "alert_id": "9b1f...",                                    // alerts.id
//	  "occurred_at": "2025-03-01T10:15:00Z",                    // clinical time (RFC 3339)
//	  "recorded_at": "2025-03-01T10:15:02.123456Z",             // when Aorta wrote the event
//	  "patient_id": "123456",                                   // primary identifier (PHI)
//	  "patient_key": "HOSP/123456",                             // identifier qualified by its authority (PHI)
//	  "encounter_id": "V789",                                   // PV1-19, or null
//	  "payload": {...}                                          // events.payload, the alert event's body
//	}
//
// The body identifies the patient: it is clinical data meant for
// clinicians' systems. Use https URLs.
//
// A routes.yaml feed (docs/router.md) sends its feed.idle and feed.resumed
// events through the same queue, in the same body: those belong to no
// alert and no patient, so alert_id is the nil UUID
// (00000000-0000-0000-0000-000000000000) and patient_id and patient_key
// are empty; the payload names the feed and its sender. A log destination
// writes them as a line with message "feed": destination, delivery_id,
// event_id, type, feed, sender, silence, last_message_at, idle_since.
//
// # Log destinations
//
// A log destination writes one line at info level, message "alert", with
// destination, delivery_id, event_id, alert_id, type, rule, score,
// severity, alert_level and, when the event payload has a numeric "total",
// score_total; severity and alert_level come from the payload (its "severity" and "level") when it has them,
// else from the alert as it is when sent. The log is no place for PHI:
// the line carries no patient_id, patient_key, encounter_id, location or
// observation value — patient_key is an identifier too — and readers find
// the patient from the alert ID through the authenticated API. A log that
// hides info lines would swallow the alert, so with such a log the
// delivery fails (and is retried, and eventually dead) instead.
//
// # Metrics
//
//	aorta_deliveries_total{destination,result}       attempts by result: delivered, failed (will retry), dead
//	aorta_delivery_seconds{destination}              duration of each attempt
//	aorta_deliveries_pending{destination}            rows waiting, being sent or held (read at scrape time)
//	aorta_deliveries_oldest_pending_age_seconds{destination}  age of the oldest of them
//	aorta_deliveries_dead{destination}               rows given up on
package delivery
