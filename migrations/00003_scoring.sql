-- Scoring and alerting: patient facts scores need, alerts with their
-- restraint state, the durable delivery queue, and the audit log.

-- +goose Up

ALTER TABLE patients
    ADD COLUMN birth_date date,
    ADD COLUMN spo2_scale smallint NOT NULL DEFAULT 1 CHECK (spo2_scale IN (1, 2)),
    ADD COLUMN spo2_scale_set_by text,
    ADD COLUMN spo2_scale_set_at timestamptz;

COMMENT ON COLUMN patients.birth_date IS 'PID-7 date of birth from the latest message that gave one; adult scores are not computed under 16.';
COMMENT ON COLUMN patients.spo2_scale IS 'NEWS2 SpO2 scale: 1 (default) or 2, a clinician''s decision for this patient (hypercapnic respiratory failure), set through the API or a charted observation, never inferred.';
COMMENT ON COLUMN patients.spo2_scale_set_by IS 'Who set the scale: a user name from the API, or "observation <event id>".';
COMMENT ON COLUMN patients.spo2_scale_set_at IS 'When the scale was set.';

CREATE TABLE scores (
    patient_key   text        NOT NULL,
    score         text        NOT NULL,
    calculated_at timestamptz NOT NULL,
    total         integer     NOT NULL,
    risk          text,
    complete      boolean     NOT NULL,
    event_id      uuid        NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (patient_key, score)
);

COMMENT ON TABLE scores IS 'Each patient''s current score of each kind: the score.calculated event at the latest clinical time. A score recomputed at an earlier time (a late observation) does not replace it.';
COMMENT ON COLUMN scores.calculated_at IS 'Clinical time the score is computed as of.';
COMMENT ON COLUMN scores.total IS 'Total points; a lower bound when complete is false.';
COMMENT ON COLUMN scores.event_id IS 'The score.calculated event (its payload has the components and inputs).';

CREATE TABLE alerts (
    id                uuid        PRIMARY KEY,
    patient_key       text        NOT NULL,
    patient_id        text        NOT NULL,
    rule              text        NOT NULL,
    score             text        NOT NULL,
    severity          text        NOT NULL,
    level             integer     NOT NULL,
    status            text        NOT NULL CHECK (status IN ('open', 'resolved')),
    raised_at         timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    last_notified_at  timestamptz NOT NULL,
    score_event_id    uuid        NOT NULL,
    score_at          timestamptz NOT NULL,
    message_id        uuid        NOT NULL REFERENCES messages (id),
    acknowledged_by   text,
    acknowledged_at   timestamptz,
    resolved_at       timestamptz
);

COMMENT ON TABLE alerts IS 'One row per alert: opened when a score meets a rule, escalated in place, resolved when a complete score falls below the rule. At most one open alert per patient and rule.';
COMMENT ON COLUMN alerts.id IS 'Alert ID, deterministic from the score event that raised it. It names the alert across all its notifications (raised, escalated, renotified, resolved, acknowledged); each notification is one event, and receivers de-duplicate deliveries by that event''s id.';
COMMENT ON COLUMN alerts.rule IS 'The routes.yaml alert rule.';
COMMENT ON COLUMN alerts.score IS 'news2, qsofa or sirs.';
COMMENT ON COLUMN alerts.severity IS 'Severity of the most severe level the alert has reached while open, as named in the rule (e.g. urgent, emergency); it never falls while the alert is open, so a wavering score escalates once.';
COMMENT ON COLUMN alerts.level IS 'Rank of that level within the rule: higher is more severe; only a score above it escalates.';
COMMENT ON COLUMN alerts.last_notified_at IS 'When destinations were last notified; re-notification waits for an escalation or the rule''s renotify_after.';
COMMENT ON COLUMN alerts.score_event_id IS 'The score.calculated event behind the current level (lineage: score -> observations -> raw messages).';
COMMENT ON COLUMN alerts.score_at IS 'Clinical time of that score.';
COMMENT ON COLUMN alerts.message_id IS 'The message whose observations produced that score.';
COMMENT ON COLUMN alerts.acknowledged_by IS 'Clinician who acknowledged it through the API (audited in audit_log).';

CREATE UNIQUE INDEX alerts_one_open_idx ON alerts (patient_key, rule) WHERE status = 'open';
CREATE INDEX alerts_status_idx ON alerts (status, raised_at);

CREATE TABLE deliveries (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        uuid        NOT NULL REFERENCES events (id) DEFERRABLE INITIALLY DEFERRED,
    alert_id        uuid        NOT NULL REFERENCES alerts (id),
    destination     text        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('webhook', 'log')),
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    UNIQUE (event_id, destination)
);

COMMENT ON TABLE deliveries IS 'Durable queue of alert notifications, written in the same transaction as the alert event; a worker (pkg/delivery) sends each, retries with backoff and marks it delivered or dead. Delivery is at least once: a crash between sending and recording the outcome sends it again, so receivers de-duplicate by event_id (X-Aorta-Event). NOTIFY destinations are sent by the transaction itself and need no row.';
COMMENT ON COLUMN deliveries.id IS 'Delivery ID, sent as delivery_id in the webhook body and as X-Aorta-Delivery; unique per event and destination.';
COMMENT ON COLUMN deliveries.event_id IS 'The alert.* event being delivered; the webhook body carries its columns and payload. Checked at commit, so the transaction may queue the delivery before inserting the event.';
COMMENT ON COLUMN deliveries.alert_id IS 'The alert the event belongs to: one alert may have several events (raised, escalated, resolved), each delivered once per destination.';
COMMENT ON COLUMN deliveries.destination IS 'routes.yaml destination name. A name the running configuration does not know (or whose configuration is invalid) is never sent nor dropped: the row stays pending with last_error saying why, and counts in the pending metrics until the destination is configured again.';
COMMENT ON COLUMN deliveries.kind IS 'webhook (signed JSON POST) or log (the structured log), as configured when queued; the worker sends with the destination''s current configuration.';
COMMENT ON COLUMN deliveries.status IS 'pending (waiting, being sent or retrying), delivered (a 2xx answer, or the log line written), or dead after the destination''s max_attempts failed attempts.';
COMMENT ON COLUMN deliveries.attempts IS 'Attempts started, counting the one in progress. A worker claims a row by incrementing it and records the outcome only if it still matches (fencing), so a worker whose claim lapsed cannot overwrite a newer attempt.';
COMMENT ON COLUMN deliveries.next_attempt_at IS 'Not tried before this time: exponential backoff with full jitter after a failure (at least the receiver''s Retry-After, within the destination''s max_backoff). While a row is being sent it holds the claim''s lease: if the worker dies, the row is sent again once the lease has passed.';
COMMENT ON COLUMN deliveries.last_attempt_at IS 'When the latest attempt was claimed; NULL before the first.';
COMMENT ON COLUMN deliveries.last_error IS 'Why the latest failed attempt failed (HTTP status or network error, no response body), or why the row is held (unknown destination). Kept after a later success as history.';
COMMENT ON COLUMN deliveries.created_at IS 'When the row was queued (the alert transaction); the pending-age metric counts from it.';
COMMENT ON COLUMN deliveries.delivered_at IS 'When the delivery succeeded; NULL unless delivered.';

-- Claims read the due rows of one destination at a time, oldest first.
CREATE INDEX deliveries_pending_idx ON deliveries (destination, next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX deliveries_dead_idx ON deliveries (destination) WHERE status = 'dead';
CREATE INDEX deliveries_alert_idx ON deliveries (alert_id);

CREATE TABLE audit_log (
    id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text        NOT NULL,
    action  text        NOT NULL,
    target  text        NOT NULL,
    details jsonb       NOT NULL DEFAULT '{}'
);

COMMENT ON TABLE audit_log IS 'Who did what and when through the API: acknowledging alerts, setting SpO2 scales, and (later) viewing raw messages or reprocessing.';
COMMENT ON COLUMN audit_log.actor IS 'The authenticated user or token name.';
COMMENT ON COLUMN audit_log.action IS 'e.g. alert.acknowledge, patient.spo2_scale.';
COMMENT ON COLUMN audit_log.target IS 'What was acted on: an alert ID, a patient key.';

CREATE INDEX audit_log_at_idx ON audit_log (at);

-- +goose Down

DROP TABLE audit_log;
DROP TABLE deliveries;
DROP TABLE alerts;
DROP TABLE scores;
ALTER TABLE patients DROP COLUMN spo2_scale_set_at, DROP COLUMN spo2_scale_set_by,
    DROP COLUMN spo2_scale, DROP COLUMN birth_date;
