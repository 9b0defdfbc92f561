// Package benchrun is make bench (run as hl7load bench): it measures the
// engine end to end on this machine, in one run, against PostgreSQL's own
// limits measured in the same run.
//
// It finds PostgreSQL as make run does (internal/pgenv), recreates the
// database aorta_bench and migrates it, then:
//
//  1. writes the listener's rows (messages + outbox, of the load's own
//     mix) the fastest plain way, COPY in batches from several
//     connections with synchronous_commit on: the ceiling; and one
//     INSERT + COMMIT per message from one connection: the commit rate;
//  2. starts bin/mllp-listener and holds IdleConns silent connections,
//     reading its RSS from /proc;
//  3. drives it with internal/loadgen at each level of connections,
//     reading its CPU time (and its PostgreSQL backends') from /proc;
//  4. empties the outbox, starts bin/router, offers a fixed rate, watches
//     the outbox and reads ACK->event and ACK->alert from the events.
//
// Report holds the figures; WriteMarkdown prints them for the README and
// Run writes them as JSON. Every phase uses a run ID of its own, so the
// listener never takes one phase's messages for re-sends of another's.
package benchrun
