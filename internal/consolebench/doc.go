// Package consolebench is make bench-console (run as hl7load
// consolebench): it times the HTTP API's and the web console's main views
// on a database holding a million stored messages, against baselines
// measured in the same run.
//
// It finds PostgreSQL as make run does (internal/pgenv), recreates the
// database aorta_consolebench, migrates it with "router migrate", then:
//
//  1. seeds it (Seed) by COPY in 5,000-message transactions from a few
//     connections: messages whose raw text is internal/loadgen's mix with
//     16 senders written into MSH-3/MSH-4 (and one feed gone idle), about
//     3% rejected with AR/AE, some duplicates; their message_routing rows,
//     about two events each, dead letters, alerts, and the per-patient
//     state (patients, observations, scores) the events leave; then
//     VACUUM ANALYZE. Every row goes through the schema's constraints and
//     foreign keys; columns added by later migrations keep their defaults;
//  2. creates an admin and a viewer token with "router token create" and
//     starts bin/router with its API on a free loopback port, waiting for
//     its ops aggregation to catch up with the seed;
//  3. times each view (warm-up, then requests one after another, then from
//     several clients at once) until the last byte, and a trivial
//     authenticated endpoint and SELECT 1 as baselines;
//  4. makes each API view's store calls itself, through a pool whose tracer
//     records the statements, and EXPLAIN ANALYZEs each read, reporting
//     sequential scans of tables of 100,000 rows or more.
//
// Report holds the figures; WriteMarkdown prints them and Run writes them
// as JSON. Figures are for comparing within a run: the machine is shared.
package consolebench
