// Package store holds every SQL statement Aorta runs (pgx/v5): the embedded
// migrations, and the messages, batches and outbox written by the listener.
//
// The one rule everything here serves: when Save returns nil, the raw bytes
// of every message and their outbox rows are committed durably
// (synchronous_commit is forced on), and only then may a caller acknowledge.
package store
