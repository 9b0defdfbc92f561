-- Ingest: raw messages exactly as received, and the outbox the router consumes.
-- Retention: ids are UUIDv7 (time-ordered) and received_at is indexed, so old
-- rows can be deleted in id-ordered batches that autovacuum keeps up with.

-- +goose Up

CREATE TABLE batches (
    id            uuid        PRIMARY KEY,
    received_at   timestamptz NOT NULL,
    listener      text        NOT NULL,
    remote_addr   text        NOT NULL,
    raw           bytea       NOT NULL,
    raw_sha256    bytea       NOT NULL,
    header_type   text        NOT NULL CHECK (header_type IN ('FHS', 'BHS')),
    control_id    text        NOT NULL DEFAULT '',
    message_count integer     NOT NULL
);

COMMENT ON TABLE batches IS 'One row per received HL7 batch file (FHS/BHS ... BTS/FTS) that arrived in one MLLP frame; each contained message has its own row in messages.';
COMMENT ON COLUMN batches.id IS 'Time-ordered UUIDv7 assigned on receipt.';
COMMENT ON COLUMN batches.received_at IS 'When the listener received the frame.';
COMMENT ON COLUMN batches.listener IS 'Name of the listener instance that received it (--name).';
COMMENT ON COLUMN batches.remote_addr IS 'Peer address (ip:port) of the sending connection.';
COMMENT ON COLUMN batches.raw IS 'Exactly the bytes between the MLLP start byte (0x0B) and the end bytes (0x1C 0x0D), unmodified.';
COMMENT ON COLUMN batches.raw_sha256 IS 'SHA-256 of raw.';
COMMENT ON COLUMN batches.header_type IS 'First header segment of the batch: FHS (file) or BHS (batch).';
COMMENT ON COLUMN batches.control_id IS 'FHS-11 or BHS-11 control ID, empty when absent.';
COMMENT ON COLUMN batches.message_count IS 'Number of messages found in the batch.';

CREATE TABLE messages (
    id                    uuid        PRIMARY KEY,
    received_at           timestamptz NOT NULL,
    listener              text        NOT NULL,
    remote_addr           text        NOT NULL,
    batch_id              uuid        REFERENCES batches (id),
    batch_index           integer,
    raw                   bytea       NOT NULL,
    raw_sha256            bytea       NOT NULL,
    sending_application   text        NOT NULL DEFAULT '',
    sending_facility      text        NOT NULL DEFAULT '',
    receiving_application text        NOT NULL DEFAULT '',
    receiving_facility    text        NOT NULL DEFAULT '',
    message_type          text        NOT NULL DEFAULT '',
    trigger_event         text        NOT NULL DEFAULT '',
    message_structure     text        NOT NULL DEFAULT '',
    control_id            text        NOT NULL DEFAULT '',
    processing_id         text        NOT NULL DEFAULT '',
    version               text        NOT NULL DEFAULT '',
    character_set         text        NOT NULL DEFAULT '',
    patient_key           text,
    partition_key         integer     CHECK (partition_key >= 0),
    status                text        NOT NULL CHECK (status IN ('accepted', 'rejected', 'ignored')),
    ack_code              text        CHECK (ack_code IN ('AA', 'AE', 'AR', 'CA', 'CE', 'CR')),
    ack                   bytea,
    error_code            integer,
    error_location        text,
    error                 text,
    control_id_reused     boolean     NOT NULL DEFAULT false,
    duplicate_count       integer     NOT NULL DEFAULT 0,
    last_duplicate_at     timestamptz,
    CHECK ((batch_id IS NULL) = (batch_index IS NULL))
);

COMMENT ON TABLE messages IS 'One row per received HL7 v2 message, stored before it is acknowledged. Duplicates (same sender, control ID and bytes within the de-duplication window) are not stored again; they increment duplicate_count on the original.';
COMMENT ON COLUMN messages.id IS 'Time-ordered UUIDv7 assigned on receipt; the first 20 hex digits are the MSH-10 of the ACK we sent.';
COMMENT ON COLUMN messages.received_at IS 'When the listener received the message (arrival time, not clinical time).';
COMMENT ON COLUMN messages.listener IS 'Name of the listener instance that received it (--name).';
COMMENT ON COLUMN messages.remote_addr IS 'Peer address (ip:port) of the sending connection.';
COMMENT ON COLUMN messages.batch_id IS 'The batch file this message arrived in, NULL for a message sent on its own.';
COMMENT ON COLUMN messages.batch_index IS 'Zero-based position of the message in its batch, NULL outside a batch.';
COMMENT ON COLUMN messages.raw IS 'Exactly the bytes received: for a single message the bytes between the MLLP start byte (0x0B) and the end bytes (0x1C 0x0D); for a batch member its exact slice of batches.raw. Never modified; whatever the encoding or validity.';
COMMENT ON COLUMN messages.raw_sha256 IS 'SHA-256 of raw, used for duplicate detection.';
COMMENT ON COLUMN messages.sending_application IS 'MSH-3 namespace ID (or universal ID when the namespace is empty), decoded.';
COMMENT ON COLUMN messages.sending_facility IS 'MSH-4 namespace ID (or universal ID), decoded.';
COMMENT ON COLUMN messages.receiving_application IS 'MSH-5 namespace ID (or universal ID), decoded.';
COMMENT ON COLUMN messages.receiving_facility IS 'MSH-6 namespace ID (or universal ID), decoded.';
COMMENT ON COLUMN messages.message_type IS 'MSH-9.1 message code, e.g. ADT or ORU.';
COMMENT ON COLUMN messages.trigger_event IS 'MSH-9.2 trigger event, e.g. A01 or R01.';
COMMENT ON COLUMN messages.message_structure IS 'MSH-9.3 message structure, e.g. ADT_A01.';
COMMENT ON COLUMN messages.control_id IS 'MSH-10 message control ID assigned by the sender.';
COMMENT ON COLUMN messages.processing_id IS 'MSH-11.1 processing ID: P (production), D (debugging) or T (training).';
COMMENT ON COLUMN messages.version IS 'MSH-12.1 HL7 version, e.g. 2.5.1.';
COMMENT ON COLUMN messages.character_set IS 'First repetition of MSH-18, empty when absent.';
COMMENT ON COLUMN messages.patient_key IS 'Patient the message is about, "authority/id" from the first PID-3 repetition (see outbox.patient_key); NULL when it names none or was rejected.';
COMMENT ON COLUMN messages.partition_key IS 'The outbox partition key of an accepted message, kept so that a replay queues it in the same lane.';
COMMENT ON COLUMN messages.status IS 'accepted: stored and queued in outbox for the router; rejected: answered AR/AE/CR/CE and kept for inspection, not routed; ignored: an inbound acknowledgement (never acknowledged, not routed).';
COMMENT ON COLUMN messages.ack_code IS 'MSA-1 of the acknowledgement we sent, NULL when none was sent (enhanced mode NE, or an inbound ACK).';
COMMENT ON COLUMN messages.ack IS 'The acknowledgement message we sent, byte for byte; re-sent as is to a duplicate.';
COMMENT ON COLUMN messages.error_code IS 'HL7 table 0357 error code of the first problem found (e.g. 101 required field missing), NULL when accepted.';
COMMENT ON COLUMN messages.error_location IS 'HL7 location of the first problem, e.g. MSH-10.';
COMMENT ON COLUMN messages.error IS 'Why the message was rejected, in words. Never contains field values.';
COMMENT ON COLUMN messages.control_id_reused IS 'True when another message from the same sender with the same control ID but different bytes was already stored within the de-duplication window.';
COMMENT ON COLUMN messages.duplicate_count IS 'How many byte-identical re-sends of this message were received and answered with the stored ACK.';
COMMENT ON COLUMN messages.last_duplicate_at IS 'When the last duplicate re-send arrived.';

CREATE INDEX messages_dedup_idx ON messages (sending_application, sending_facility, control_id, received_at);
CREATE INDEX messages_received_at_idx ON messages (received_at);
CREATE INDEX messages_patient_idx ON messages (patient_key, received_at) WHERE patient_key IS NOT NULL;
CREATE INDEX messages_batch_idx ON messages (batch_id) WHERE batch_id IS NOT NULL;

CREATE TABLE outbox (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id    uuid        NOT NULL UNIQUE REFERENCES messages (id),
    partition_key integer     NOT NULL CHECK (partition_key >= 0),
    patient_key   text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE outbox IS 'Work queue for the router: one row per accepted message, written in the same transaction as the message.';
COMMENT ON COLUMN outbox.id IS 'Arrival order within the listener''s commits; the router applies one partition''s rows in id order.';
COMMENT ON COLUMN outbox.message_id IS 'The message to route.';
COMMENT ON COLUMN outbox.partition_key IS 'Non-negative 31-bit FNV-1a hash of patient_key (of the message id when there is no patient), see pkg/patient; routers own partitions as partition_key modulo their partition count, which keeps one patient''s messages in order.';
COMMENT ON COLUMN outbox.patient_key IS 'Patient the partition was derived from: the primary identifier (first non-empty PID-3 repetition) qualified by its assigning authority (MSH-4 when absent), as "authority/id". NULL when the message names no patient.';
COMMENT ON COLUMN outbox.created_at IS 'When the row was committed (close to messages.received_at).';

CREATE INDEX outbox_partition_idx ON outbox (partition_key, id);

-- Routers LISTEN on aorta_outbox; PostgreSQL folds identical notifications of
-- one transaction into one, so a group commit wakes them once.
-- +goose StatementBegin
CREATE FUNCTION aorta_notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('aorta_outbox', '');
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION aorta_notify_outbox();

-- +goose Down

DROP TABLE outbox;
DROP FUNCTION aorta_notify_outbox();
DROP TABLE messages;
DROP TABLE batches;
