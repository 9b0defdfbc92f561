// Package event turns a stored, parsed HL7 message into Aorta's clinical
// events (patient.*, observation.*): the public vocabulary of the events
// table that downstream applications, scoring and alerting consume.
// docs/events.md is the contract: columns, types, payloads, time rules.
//
// Mapping is a pure function of the message and the route's options: it
// reads nothing else (no clock, no I/O), so a replay of the same message
// through the same routes produces the same events with the same
// deterministic IDs (NewID of the message, the route and the event's
// position in the message).
//
// # Mappings
//
// A route lists the mappings it applies (Mappings):
//
//   - "adt": ADT A01-A05, A08, A11-A13 and A31 become one patient.* event;
//     A40 one patient.merged per PID/MRG pair. Another trigger, or a
//     message that is not ADT, is an *InvalidError: the route matched it,
//     so an analyst must see it rather than have it vanish.
//   - "observations": every OBX under an OBR (ORU^R01 and the like)
//     becomes observation.recorded (OBX-11 F, R; P when Options.Preliminary),
//     observation.corrected (C) or observation.retracted (D, W). X rows and
//     rows without a value produce nothing; other statuses produce a
//     Warning. Codes are matched to clinical parameters (LOINC on LN, MDC
//     on the number in OBX-3.1, never on display text) and values are
//     normalised with pkg/clinical; unmapped codes still produce events,
//     with the value typed by OBX-2.
//
// # Failures
//
// A message the route cannot map returns an error wrapping *InvalidError
// (no patient identifier, unknown trigger, unreadable clinical time, or a
// value a parameter cannot normalise under on_invalid: dead_letter) and no
// events; the router dead-letters it. Under on_invalid: skip the offending
// OBX becomes a Warning instead. Reasons name fields and parameters, never
// values, so they can be logged.
package event
