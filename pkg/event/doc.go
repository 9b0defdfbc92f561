// Package event turns a stored, parsed HL7 message into Aorta's clinical
// events (patient.*, observation.*): the public vocabulary of the events
// table that downstream applications, scoring and alerting consume.
//
// Mapping is a pure function of the message and the route's options: it
// reads nothing else, so a replay of the same message through the same
// routes produces the same events with the same deterministic IDs.
package event
