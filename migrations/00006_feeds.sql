-- Operations: idle-feed detection (routes.yaml feeds) and the counts
-- behind the ops summary, kept per minute and per hour by one router at a
-- time so that the summary reads a few hundred rows whatever the size of
-- messages. No index is added to messages: the aggregator reads new
-- messages through messages_received_id_idx (received_at, id).

-- +goose Up

CREATE TABLE ops_watermarks (
    name        text        PRIMARY KEY CHECK (name IN ('senders', 'routes')),
    received_at timestamptz NOT NULL,
    id          uuid        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE ops_watermarks IS 'How far the ops aggregator has counted messages, in (received_at, id) order: every message at or before the mark is in ops_senders and the bucket tables, none after it. The ops summary counts the messages after the mark directly.';
COMMENT ON COLUMN ops_watermarks.name IS 'senders: sender counts and last message times; routes: route counts, which wait until the messages before the mark have left the outbox (been routed).';
COMMENT ON COLUMN ops_watermarks.received_at IS 'received_at of the last message counted. It trails now by the aggregator''s settle time, so that a message stored in a transaction that commits late is still counted.';
COMMENT ON COLUMN ops_watermarks.id IS 'id of the last message counted (ties on received_at are broken by id).';
COMMENT ON COLUMN ops_watermarks.updated_at IS 'When the mark last moved.';

CREATE TABLE ops_senders (
    sending_application text        NOT NULL,
    sending_facility    text        NOT NULL,
    last_message_at     timestamptz NOT NULL,
    last_message_id     uuid        NOT NULL,
    PRIMARY KEY (sending_application, sending_facility)
);

COMMENT ON TABLE ops_senders IS 'Every sender (MSH-3, MSH-4) ever counted, with its last message up to the senders watermark: the ops summary lists them all, silent ones included, and idle-feed detection reads last message times here instead of searching messages.';
COMMENT ON COLUMN ops_senders.sending_application IS 'MSH-3 as stored in messages.sending_application.';
COMMENT ON COLUMN ops_senders.sending_facility IS 'MSH-4 as stored in messages.sending_facility.';
COMMENT ON COLUMN ops_senders.last_message_at IS 'received_at of the sender''s latest counted message, of any status (rejected and ignored included: the sender is alive). Kept when retention deletes the message.';
COMMENT ON COLUMN ops_senders.last_message_id IS 'That message (messages.id); it may have been deleted by retention since.';

CREATE TABLE ops_sender_counts (
    width               text        NOT NULL CHECK (width IN ('minute', 'hour')),
    bucket              timestamptz NOT NULL,
    sending_application text        NOT NULL,
    sending_facility    text        NOT NULL,
    messages            integer     NOT NULL CHECK (messages >= 0),
    rejected            integer     NOT NULL CHECK (rejected >= 0),
    PRIMARY KEY (width, bucket, sending_application, sending_facility)
);

COMMENT ON TABLE ops_sender_counts IS 'Messages received per sender per minute (kept 26 hours) and per hour (kept 3 days): the ops summary adds up to 24 hour buckets and 120 minute buckets per sender. Counted once each by the aggregator as its watermark passes them.';
COMMENT ON COLUMN ops_sender_counts.width IS 'minute or hour: the length of the bucket.';
COMMENT ON COLUMN ops_sender_counts.bucket IS 'Start of the bucket (UTC minute or hour) the messages'' received_at fall in.';
COMMENT ON COLUMN ops_sender_counts.messages IS 'Messages stored in the bucket, of any status.';
COMMENT ON COLUMN ops_sender_counts.rejected IS 'Of those, the ones answered with a reject (status rejected).';

CREATE TABLE ops_route_counts (
    width    text        NOT NULL CHECK (width IN ('minute', 'hour')),
    bucket   timestamptz NOT NULL,
    route    text        NOT NULL,
    messages integer     NOT NULL CHECK (messages >= 0),
    PRIMARY KEY (width, bucket, route)
);

COMMENT ON TABLE ops_route_counts IS 'Routed messages per route per minute (kept 26 hours) and per hour (kept 3 days), by the messages'' received_at, counted once as the routes watermark passes them. A message later replayed through other routes keeps its first count.';
COMMENT ON COLUMN ops_route_counts.width IS 'minute or hour: the length of the bucket.';
COMMENT ON COLUMN ops_route_counts.bucket IS 'Start of the bucket (UTC minute or hour) the messages'' received_at fall in.';
COMMENT ON COLUMN ops_route_counts.route IS 'The routes.yaml route that matched (message_routing.routes, status routed).';
COMMENT ON COLUMN ops_route_counts.messages IS 'Messages the route matched.';

CREATE TABLE feed_status (
    name                text        PRIMARY KEY,
    sending_application text        NOT NULL,
    sending_facility    text        NOT NULL,
    silence             interval    NOT NULL CHECK (silence > interval '0'),
    state               text        NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'idle')),
    watched_since       timestamptz NOT NULL,
    last_message_at     timestamptz,
    idle_since          timestamptz,
    changed_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'idle') = (idle_since IS NOT NULL))
);

COMMENT ON TABLE feed_status IS 'The feeds routes.yaml watches for silence and whether each is idle. Routers check them under an advisory lock and change state in the same transaction as the feed.idle or feed.resumed event, so one event is written per change however many routers run.';
COMMENT ON COLUMN feed_status.name IS 'The routes.yaml feed name.';
COMMENT ON COLUMN feed_status.sending_application IS 'MSH-3 of the watched sender.';
COMMENT ON COLUMN feed_status.sending_facility IS 'MSH-4 of the watched sender; empty for any facility.';
COMMENT ON COLUMN feed_status.silence IS 'How long the feed may be silent before it is idle.';
COMMENT ON COLUMN feed_status.state IS 'active (a message within the window, or watched for less than the window) or idle.';
COMMENT ON COLUMN feed_status.watched_since IS 'When a router first watched the feed with this sender; a feed that never sent anything is idle once the window has passed since then.';
COMMENT ON COLUMN feed_status.last_message_at IS 'Latest message from the sender when last checked; NULL when none was ever seen.';
COMMENT ON COLUMN feed_status.idle_since IS 'When the feed was found idle (its last message plus the window); NULL unless idle.';
COMMENT ON COLUMN feed_status.changed_at IS 'When the state last changed.';

-- Feed events are notifications about a sender, not about an alert.
ALTER TABLE deliveries ALTER COLUMN alert_id DROP NOT NULL;
COMMENT ON COLUMN deliveries.alert_id IS 'The alert the event belongs to: one alert may have several events (raised, escalated, resolved), each delivered once per destination. NULL for a feed.idle or feed.resumed event, which belongs to no alert.';

-- +goose Down

DELETE FROM deliveries WHERE alert_id IS NULL;
ALTER TABLE deliveries ALTER COLUMN alert_id SET NOT NULL;
DROP TABLE feed_status;
DROP TABLE ops_route_counts;
DROP TABLE ops_sender_counts;
DROP TABLE ops_senders;
DROP TABLE ops_watermarks;
