// Package loadgen drives an MLLP listener the way a hospital's senders do,
// for cmd/hl7load and make bench: a number of connections, each sending
// one message and waiting for its ACK before the next, with a realistic
// mix of messages for many distinct patients, and reports the throughput
// and ACK latency.
//
// The mix (Generator) is internal/hl7sim's simulated ward at scale: ADT
// admissions and updates, laboratory reports with several orders, IHE
// PCD-01 monitor results with 10 to 20 MDC-coded OBX and nursing vital
// signs. The messages are rendered once per variant with hl7sim's
// builders and then filled in per message (patient, control ID, time), so
// that building them costs the sender far less than storing them costs
// the listener: on a small machine the generator shares the CPU with the
// listener and PostgreSQL. Control IDs begin with the run's ID, so a run
// never collides with an earlier one in the listener's de-duplication.
//
// Run sends them (Config); RouterLatency then reads, for each message,
// when the router wrote its events and alerts, from the database; Backlog
// watches the outbox. Summary holds the percentiles of a set of
// latencies.
package loadgen
