-- Router: per-patient lanes and leases, clinical events, per-patient state,
-- routing outcomes and dead letters.

-- +goose Up

-- The outbox is split into 64 lanes by patient; a router owns a lane through
-- a lease and applies its rows in id order. 64 is fixed here because the
-- lane is a stored column: changing it is a migration, never a setting.
ALTER TABLE outbox
    ADD COLUMN lane         smallint    GENERATED ALWAYS AS ((partition_key % 64)::smallint) STORED,
    ADD COLUMN attempts     integer     NOT NULL DEFAULT 0,
    ADD COLUMN available_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN last_error   text,
    ADD COLUMN replay       boolean     NOT NULL DEFAULT false;

COMMENT ON COLUMN outbox.lane IS 'partition_key modulo 64: the unit of work a router leases (router_lanes). All of one patient''s rows share a lane.';
COMMENT ON COLUMN outbox.attempts IS 'How many times processing failed; after the router''s limit the row moves to dead_letters.';
COMMENT ON COLUMN outbox.available_at IS 'Not processed before this time: retry backoff after a failure.';
COMMENT ON COLUMN outbox.last_error IS 'Why the last attempt failed (no patient data).';
COMMENT ON COLUMN outbox.replay IS 'True for rows queued by "router replay" rather than by the listener (a message already waiting is not queued twice).';

DROP INDEX outbox_partition_idx;
CREATE INDEX outbox_lane_idx ON outbox (lane, id);
CREATE INDEX outbox_patient_idx ON outbox (patient_key, id) WHERE patient_key IS NOT NULL;

CREATE TABLE router_lanes (
    lane             smallint    PRIMARY KEY CHECK (lane >= 0 AND lane < 64),
    owner            text,
    fence            bigint      NOT NULL DEFAULT 0,
    lease_expires_at timestamptz
);
INSERT INTO router_lanes (lane) SELECT generate_series(0, 63);

COMMENT ON TABLE router_lanes IS 'Leases on the outbox lanes: one router applies a lane at a time, which keeps each patient''s messages in order across router processes.';
COMMENT ON COLUMN router_lanes.owner IS 'Router instance holding the lease (routers.id), NULL when free.';
COMMENT ON COLUMN router_lanes.fence IS 'Incremented at every acquisition; a router commits work only while owner, fence and an unexpired lease all still match.';
COMMENT ON COLUMN router_lanes.lease_expires_at IS 'The lease lapses at this time unless renewed; another router may then take the lane.';

CREATE TABLE routers (
    id           text        PRIMARY KEY,
    hostname     text        NOT NULL,
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL
);

COMMENT ON TABLE routers IS 'Running router processes; lanes are shared fairly among those with a recent heartbeat.';

CREATE TABLE events (
    seq            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id             uuid        NOT NULL UNIQUE,
    type           text        NOT NULL,
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    message_id     uuid        NOT NULL REFERENCES messages (id),
    patient_id     text,
    patient_key    text,
    encounter_id   text,
    source         text        NOT NULL,
    route          text        NOT NULL,
    schema_version integer     NOT NULL,
    payload        jsonb       NOT NULL
);

COMMENT ON TABLE events IS 'Clinical events produced by the router: the public contract downstream applications read (docs/events.md). Rows are never updated or deleted by the engine.';
COMMENT ON COLUMN events.seq IS 'Increasing in commit order (writers serialise the insert and commit), so a consumer can tail with WHERE seq > $last ORDER BY seq and never miss a row that commits later.';
COMMENT ON COLUMN events.id IS 'Deterministic from the source message, the route and the event''s position: a replay or a retry never duplicates an event.';
COMMENT ON COLUMN events.type IS 'Event type, e.g. patient.admitted or observation.recorded (docs/events.md lists the vocabulary).';
COMMENT ON COLUMN events.occurred_at IS 'Clinical time: when it happened (EVN-6/EVN-2 for ADT; OBX-14, the enclosing device OBX-14, OBR-7 for observations; MSH-7 last), not when it arrived.';
COMMENT ON COLUMN events.recorded_at IS 'When Aorta wrote the event.';
COMMENT ON COLUMN events.message_id IS 'The stored raw message it came from (messages.id): lineage.';
COMMENT ON COLUMN events.patient_id IS 'Primary patient identifier: the first PID-3 repetition''s ID; the assigning authority is in the payload.';
COMMENT ON COLUMN events.patient_key IS 'The patient identifier qualified by its assigning authority, "authority/id" (the sending facility when no authority is given): unique across issuers.';
COMMENT ON COLUMN events.encounter_id IS 'PV1-19 visit number when present.';
COMMENT ON COLUMN events.source IS 'Sending application and facility of the source message, "APP^FACILITY".';
COMMENT ON COLUMN events.route IS 'The routes.yaml route that produced the event.';
COMMENT ON COLUMN events.schema_version IS 'Version of the payload schema of this event type.';
COMMENT ON COLUMN events.payload IS 'Type-specific body (docs/events.md).';

CREATE INDEX events_patient_idx ON events (patient_key, occurred_at);
CREATE INDEX events_type_idx ON events (type, seq);
CREATE INDEX events_message_idx ON events (message_id);
CREATE INDEX events_encounter_idx ON events (encounter_id) WHERE encounter_id IS NOT NULL;

CREATE TABLE message_routing (
    message_id uuid        PRIMARY KEY REFERENCES messages (id),
    status     text        NOT NULL CHECK (status IN ('routed', 'unrouted', 'dead_lettered')),
    routes     text[]      NOT NULL DEFAULT '{}',
    events     integer     NOT NULL DEFAULT 0,
    warnings   jsonb       NOT NULL DEFAULT '[]',
    attempts   integer     NOT NULL DEFAULT 1,
    routed_at  timestamptz NOT NULL,
    error      text
);

COMMENT ON TABLE message_routing IS 'What the router did with each accepted message; replays overwrite it.';
COMMENT ON COLUMN message_routing.status IS 'routed: at least one route matched and its events were written; unrouted: no route matched (not an error); dead_lettered: see dead_letters.';
COMMENT ON COLUMN message_routing.routes IS 'Names of the routes that matched, in order.';
COMMENT ON COLUMN message_routing.events IS 'Number of events written.';
COMMENT ON COLUMN message_routing.warnings IS 'Problems that did not stop the message, e.g. an OBX skipped under on_invalid: skip: [{"location": "OBX[3]-5", "reason": "..."}].';
COMMENT ON COLUMN message_routing.attempts IS 'Processing attempts it took.';
COMMENT ON COLUMN message_routing.routed_at IS 'When processing finished.';
COMMENT ON COLUMN message_routing.error IS 'The dead-letter reason, when dead-lettered.';

CREATE TABLE dead_letters (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id  uuid        NOT NULL REFERENCES messages (id),
    patient_key text,
    route       text,
    error       text        NOT NULL,
    attempts    integer     NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    resolution  text        CHECK (resolution IN ('reprocessed', 'discarded'))
);

COMMENT ON TABLE dead_letters IS 'Messages the router could not process: invalid for their route, or failing after every retry. The rest of the stream keeps moving.';
COMMENT ON COLUMN dead_letters.route IS 'The route being applied when it failed, NULL when it failed before a route was chosen.';
COMMENT ON COLUMN dead_letters.error IS 'Readable reason, with the HL7 location where known; never patient data.';
COMMENT ON COLUMN dead_letters.attempts IS 'Processing attempts made.';
COMMENT ON COLUMN dead_letters.resolved_at IS 'When an analyst reprocessed or discarded it; NULL while open.';

CREATE INDEX dead_letters_open_idx ON dead_letters (created_at) WHERE resolved_at IS NULL;
CREATE INDEX dead_letters_message_idx ON dead_letters (message_id);

CREATE TABLE observations (
    patient_key     text        NOT NULL,
    observation_key text        NOT NULL,
    event_id        uuid        NOT NULL,
    message_id      uuid        NOT NULL REFERENCES messages (id),
    parameter       text,
    code_system     text        NOT NULL,
    code            text        NOT NULL,
    value_numeric   numeric,
    value_text      text,
    unit            text,
    status          text        NOT NULL,
    observed_at     timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (patient_key, observation_key)
);

COMMENT ON TABLE observations IS 'Per-patient state: the current version of every observation. A correction replaces the value it corrects, a retraction marks it retracted, a late observation is stored at its own clinical time and never overwrites a newer one; the latest value of a parameter at time T is the row with the greatest observed_at <= T.';
COMMENT ON COLUMN observations.patient_key IS 'Patient ("authority/id"), after following merges (patient_links).';
COMMENT ON COLUMN observations.observation_key IS 'Identity of the observation across corrections and retractions (order, code, sub-ID).';
COMMENT ON COLUMN observations.event_id IS 'The event that set the current version.';
COMMENT ON COLUMN observations.parameter IS 'Clinical parameter name from routes.yaml (heart_rate, spo2, ...), NULL when the code is not mapped.';
COMMENT ON COLUMN observations.value_numeric IS 'Exact decimal value in the parameter''s canonical unit, for numeric values.';
COMMENT ON COLUMN observations.value_text IS 'Coded or textual value (ACVPU letter, code, text).';
COMMENT ON COLUMN observations.unit IS 'Canonical unit (UCUM) of value_numeric.';
COMMENT ON COLUMN observations.status IS 'OBX-11 of the current version: F, R, P, C, or D/W when retracted.';
COMMENT ON COLUMN observations.observed_at IS 'Clinical time of the observation.';

CREATE INDEX observations_parameter_idx ON observations (patient_key, parameter, observed_at DESC);

CREATE TABLE patients (
    patient_key         text        PRIMARY KEY,
    patient_id          text        NOT NULL,
    encounter_id        text,
    status              text,
    location            text,
    last_event_type     text,
    last_event_at       timestamptz,
    last_event_id       uuid,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE patients IS 'Per-patient administrative state from ADT events, applied in clinical time: an older event arriving late never overwrites a newer one.';
COMMENT ON COLUMN patients.status IS 'admitted, registered, preadmitted, discharged or admission_cancelled, from the latest ADT event that changes it; merged once the patient was merged into another (patient_links).';
COMMENT ON COLUMN patients.location IS 'Assigned location (PV1-3) as point of care^room^bed.';
COMMENT ON COLUMN patients.last_event_at IS 'Clinical time of the ADT event the state reflects.';

CREATE TABLE patient_links (
    prior_key     text        PRIMARY KEY,
    surviving_key text        NOT NULL,
    event_id      uuid        NOT NULL,
    merged_at     timestamptz NOT NULL
);

COMMENT ON TABLE patient_links IS 'Merges (A40): the prior patient''s state moved to the surviving patient; later messages naming the prior identifier update the survivor''s state.';

-- +goose Down

DROP TABLE patient_links;
DROP TABLE patients;
DROP TABLE observations;
DROP TABLE dead_letters;
DROP TABLE message_routing;
DROP TABLE events;
DROP TABLE routers;
DROP TABLE router_lanes;
DROP INDEX outbox_patient_idx;
DROP INDEX outbox_lane_idx;
CREATE INDEX outbox_partition_idx ON outbox (partition_key, id);
ALTER TABLE outbox DROP COLUMN replay, DROP COLUMN last_error, DROP COLUMN available_at,
    DROP COLUMN attempts, DROP COLUMN lane;
