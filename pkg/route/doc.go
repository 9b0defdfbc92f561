// Package route reads routes.yaml, the file in which interface analysts
// say which HL7 messages the router processes and how, and the route test
// files that check it; and it matches messages against the routes.
//
// The file is decoded strictly, in the manner of Redpanda Connect: an
// unknown key, a value of the wrong type, an unknown event mapping or
// handler, a field path that cannot be read or a code claimed twice stops
// start-up. Every problem is reported, not only the first, sorted by
// position, each with its file, line, column and reason:
//
//	routes.yaml:12:7: unknown key "mach" in route (did you mean "match"?)
//	routes.yaml:30:20: condition "MSH-4 =~ ^ST_(.*$": bad regular expression: missing closing ): `^ST_(.*$`
//	routes.yaml:31:18: code LN 8867-4 already maps to parameter "heart_rate" (routes.yaml:7:26): one observation must feed one parameter
//
// Load and Parse return one problem as an *Error and several as Errors;
// errors.As finds an *Error either way. testdata/example.yaml is a
// complete, commented routes file and testdata/example.test.yaml a route
// test file; the reference below describes every key.
//
// # Using a Config
//
// Load (or Parse) returns a *Config once the whole file is valid. The
// event mappings and handlers a route names are checked against a
// Registry the caller passes in, so this package never imports them.
// The scores an alert rule reads are checked against Registry.Scores;
// since a route computes a score by naming it in its handlers, the caller
// registers the score names as handlers too.
// Config.Match returns the routes that apply to a message, in order; it
// reads only the message and is safe for concurrent use. Each Route
// carries what its event mappings need: OnInvalid, Preliminary, its
// Timezone and its parameter Table. Conditions are
// compiled at load (locations parsed, regular expressions compiled, lists
// turned into sets), so matching costs a few field reads per route.
// Route.Mismatch says why a route did not match, for test output.
//
// Config.Scoring says which values scores are computed from
// (Scoring.FreshnessOf, Scoring.UsesStatus), Config.AlertsFor the alert
// rules that read a score, and AlertRule.LevelFor the level a score
// reaches under a rule. Webhook keys are read from the environment or
// files when the file is loaded, so that a missing key stops start-up;
// LoadWith with ParseOptions.SkipSecrets lints a file on a machine that
// has no keys (router check in CI). A key is held as a Secret, which
// prints as [redacted] in fmt, JSON and slog.
//
// # Values and YAML
//
// Values are read as the text written: version: 2.50 is "2.50" (not the
// number 2.5), 0777 is "0777", and codes such as 8867-4 or 150456 are text
// whether or not they look like numbers. Booleans are true and false only
// (yes and no are text). Anchors (&name), aliases (*name) and merge keys
// (<<: *name) may be used to share parts; other YAML tags than !!str may
// not. Quote a value that starts with one of { [ % & * ! | > ' " @ ` or
// that holds ": " or " #".
//
// # The routes file
//
// The top level of routes.yaml holds:
//
//   - version (required): the schema version of the file; must be 1.
//     Example: version: 1
//   - timezone (default UTC): the IANA time zone of HL7 times written
//     without an offset (MSH-7, EVN-2, OBX-14, ...), which HL7 defines as
//     the sender's local time. A zone name, not an offset, so that daylight
//     saving time applies; "Local" is refused because it would depend on
//     the host. Example: timezone: Europe/London
//   - parameters (default none): the clinical parameters observations are
//     mapped to, by name (lower-case letters, digits and _). See below.
//   - routes (required): the routes, evaluated in order. See below.
//   - scoring (default: the defaults of each key below): which values
//     NEWS2, qSOFA and SIRS are computed from. See Scoring. Example:
//     scoring: {statuses: [F, C, R, P]}
//   - destinations (default none): where alerts are delivered, by name.
//     See Destinations. Example: destinations: {log: {log: true}}
//   - alerts (default none): the alert rules. See Alerts. Example:
//     alerts: [{name: sepsis, score: qsofa, levels: [{severity:
//     sepsis-screen, when: total >= 2}], destinations: log}]
//   - feeds (default none): the senders watched for silence. See Feeds.
//     Example: feeds: [{name: lab, sending_application: LAB, silence:
//     15m, notify: log}]
//
// # Parameters
//
// A parameter names one clinical quantity (heart_rate, spo2, temperature,
// consciousness, ...), lists the observation codes that carry it and says
// how its values are normalised. One code feeds one parameter: a code
// listed under two parameters is an error that names both places.
//
//   - description (default ""): text for people. Example: description:
//     Heart rate or pulse
//   - type (default numeric): numeric, for values converted to one
//     canonical unit, or coded, for values that are one of a set of
//     answers. Example: type: coded
//   - unit (required for numeric; not allowed for coded): the canonical
//     UCUM unit values are converted to. Example: unit: /min
//   - codes (required): the codes that carry the parameter, by coding
//     system as written in OBX-3.3, matched against OBX-3.1. LN (LOINC)
//     codes have their check digit verified. MDC (IEEE 11073) codes are the
//     numbers sent in OBX-3.1, never the reference-ID text, which vendors
//     spell differently. Names such as LOINC or SNOMED are refused with
//     the system code to write instead (LN, SCT). Codes may be written as
//     YAML numbers or text. Example: codes: {LN: [8867-4], MDC: [147842]}
//   - units (numeric only; default: the canonical unit alone): the units
//     accepted in OBX-6.1 (UCUM text or MDC unit codes), each with its
//     conversion into the canonical unit. An observation in a unit not
//     listed is invalid (see on_invalid): a wrong unit is never scored.
//     The canonical unit is always accepted as same; "" accepts an
//     observation without a unit. A unit sent in another letter case
//     (MMOL/L) is accepted as the one listed, so two spellings that differ
//     only in case must convert alike. Example: units: {"[degF]": fahrenheit}
//   - answers (required for coded; not allowed for numeric): each
//     canonical value with the OBX-5.1 values accepted for it, such as a
//     SNOMED CT code and a plain letter. An accepted value may belong to
//     one answer only. Example: answers: {A: [248234008, A], V: [255373000, V]}
//
// A conversion is one of:
//
//   - same: no conversion.
//   - fahrenheit: degrees Fahrenheit to Celsius, (F-32)*5/9 rounded
//     half-up to 0.1, as NEWS2 requires.
//   - a mapping with factor and offset: canonical = value*factor + offset,
//     in exact decimals. Choose the canonical unit so that factors are
//     exact: for creatinine, umol/L with mg/dL: {factor: 88.4}.
//
// The conversion mapping holds:
//
//   - factor (default 1): the multiplier; a plain decimal, not 0.
//     Example: factor: 88.4
//   - offset (default 0): added after multiplying. Example: offset: -273.15
//
// # Routes
//
// Each message is matched against the routes in order. The first route
// that matches applies, and evaluation stops there unless that route says
// continue: true, in which case the following routes are evaluated too. A
// message no route matches is unrouted. A route after one that matches
// every message and does not continue could never be evaluated, and is an
// error. Each route holds:
//
//   - name (required): unique in the file; lower-case letters, digits, _
//     and -, at most 64. Events record it and metrics use it as a label.
//     Example: name: adt
//   - description (default ""): text for people. Example: description:
//     Admissions, transfers and discharges
//   - match (required): which messages the route applies to; see Match.
//     Example: match: {message_type: ADT, trigger_event: A01}
//   - events (default none): the event mappings applied to the message,
//     in order, each one a name the router knows (such as adt or
//     observations); an unknown name is an error. A route with no events
//     and no handlers stops evaluation and does nothing, which is how
//     messages are deliberately ignored. Example: events: [adt]
//   - handlers (default none): the handlers (scoring, alerting) that run on
//     the route's events; an unknown name is an error. Naming a score
//     (news2, qsofa, sirs) computes it for the patients whose observations
//     the route maps. Example: handlers: [news2, qsofa]
//   - parameters (default: every parameter): limits the observation
//     mapping to these parameters; each must be declared under parameters.
//     Example: parameters: [wbc, lactate]
//   - on_invalid (default dead_letter): what happens when an observation
//     cannot be mapped (OBX-5 not a number for a numeric parameter, a unit
//     not listed, an answer not listed): dead_letter sets the whole message
//     aside for an analyst; skip drops that observation with a warning and
//     maps the rest. Example: on_invalid: skip
//   - preliminary (default false): map preliminary results (OBX-11 = P)
//     as well; F, C and R results are always mapped, X, D and W never
//     scored. Example: preliminary: true
//   - continue (default false): after this route matches, evaluate the
//     following routes too. Example: continue: true
//   - timezone (default: the file's timezone): the zone of HL7 times
//     without an offset for messages on this route. Example: timezone: UTC
//
// # Match
//
// A match is either the word all, which matches every message, or a
// mapping of criteria that must all hold; an empty match is an error. Each
// header criterion takes one value or a list of values, any of which may
// be the value of the field:
//
//   - message_type (default: any): MSH-9.1, three upper-case letters or
//     digits. Example: message_type: ADT
//   - trigger_event (default: any): MSH-9.2. Example: trigger_event: [A01, A02, A03]
//   - sending_application (default: any): MSH-3, its namespace ID (or its
//     universal ID when there is none). Example: sending_application: EPIC
//   - sending_facility (default: any): MSH-4, likewise. Example:
//     sending_facility: ST_THOMAS
//   - receiving_application (default: any): MSH-5, likewise. Example:
//     receiving_application: AORTA
//   - receiving_facility (default: any): MSH-6, likewise. Example:
//     receiving_facility: ST_THOMAS
//   - version (default: any): MSH-12.1, compared as written: 2.5 does not
//     match 2.5.1, and 2.50 does not match 2.5. Example: version: [2.3, 2.5.1]
//   - processing_id (default: any): MSH-11.1: P (production), T (training)
//     or D (debugging). Example: processing_id: P
//   - where (default: none): conditions on any field, one or a list, all
//     of which must hold; see Conditions. Example: where: [PID-8 == F]
//
// # Conditions
//
// A condition is a field path, an operator and, for most operators, a
// value, written on one line:
//
//	PID-8 == F                         the value is F
//	PV1-2 != E                         the value is not E
//	MSH-4 =~ ^ST_                      the value matches a regular expression
//	MSH-4.1 !~ ^TEST_                  the value does not match it
//	OBX-3.1 in [8867-4, 9279-1]        the value is one of a list
//	PV1-2 not in [E, O]                the value is none of a list
//	PID-3 exists                       the value is not empty
//	ZPI-1 empty                        the value is empty
//
// Field paths are written as in HL7 specifications: SEG-field, then
// optionally [repetition], .component and .subcomponent (PID-5.1,
// PID-3[2].1, PID-5.1.1), with an optional [n] after the segment name for
// its n-th occurrence (OBX[2]-5). PID-3[*].1 looks at component 1 of every
// repetition of PID-3. Without a repetition, a component is read from the
// first repetition. A path without a component reads the whole field; a
// field with components is then compared with its separators as sent
// (123^^^HOSP^MR), so name the component to compare one part.
//
// A segment written without [n] may occur many times (OBX, NTE, ...). The
// positive operators (==, =~, in, exists) hold when any occurrence
// satisfies them; the negative ones (!=, !~, not in, empty) hold when no
// occurrence satisfies the positive form: "OBX-11 != X" means no OBX has
// X. So == and != on an absent segment are false and true respectively.
// PID-3[*] works the same way over repetitions.
//
// Values compare with the text as decoded from the message (escape
// sequences such as \F\ and \S\ decoded), exactly, case included. A value
// is the rest of the condition, spaces inside it included. Quote it, in
// double or single quotes, to keep leading or trailing spaces, to compare
// with an empty value, or in a list, where it holds a comma or a bracket.
// In double quotes, a backslash escapes a double quote or a backslash and
// is kept before anything else, so regular expressions read as written;
// in single quotes, a single quote is written twice:
//
//	PID-5.1 == DE LA CRUZ              the same as "DE LA CRUZ"
//	NTE-3 == " indented"               with its leading space
//	PID-8 == ""                        empty
//	PID-5.1 in [A, "B, C", 'O''NEIL']  A, or B, C, or O'NEIL
//	MSH-7 =~ "\d{14}"                  the regular expression \d{14}
//
// Regular expressions are RE2 (https://github.com/google/re2/wiki/Syntax)
// and match anywhere in the value unless anchored with ^ and $. In YAML,
// a condition holding ": " or " #" must be quoted as a whole:
//
//	where: ['NTE-3 == "note: see below"']
//
// # Scoring
//
// A score is computed from the latest valid value of each parameter it
// reads as of the score's clinical time: only values no older than the
// parameter's freshness window, and only results whose OBX-11 status the
// scores may use. A parameter without such a value makes the score
// incomplete, never zero. The scoring mapping holds:
//
//   - freshness (default: vitals 1h, labs 24h): the oldest a value may
//     be, before the score's clinical time, to count; see below. Example:
//     freshness: {vitals: 2h}
//   - statuses (default F, C, R): the OBX-11 statuses of results a score
//     may use, one or a list. F (final) and C (corrected) must be listed;
//     R (results not yet verified, which bedside devices send) and P
//     (preliminary) are a local choice. A preliminary result is scored only
//     if its route maps it too (preliminary: true). D (deleted), W (wrong)
//     and X (not obtained; device grouping rows) are never scored and are
//     refused. Example: statuses: [F, C, R, P]
//   - qsofa (default: gcs_threshold 15): qSOFA's settings; see below.
//     Example: qsofa: {gcs_threshold: 14}
//   - spo2_scale (default: none): a coded parameter whose canonical
//     answers are exactly 1 and 2: an observation of it sets the
//     patient's NEWS2 SpO2 scale, as a site charts a clinician's decision
//     (the scale is also set through the HTTP API, and is 1 until set). It
//     is no reading that ages, so it has no freshness. Example:
//     spo2_scale: spo2_scale
//
// The freshness mapping holds durations written with a unit (90s, 30m,
// 4h, 1h30m; days as hours: 48h), each from 1m to 168h:
//
//   - vitals (default 1h): the window of every parameter but the labs.
//     Example: vitals: 1h
//   - labs (default 24h): the window of wbc, bands, lactate, creatinine
//     and paco2. Example: labs: 24h
//   - parameters (default none): windows of single parameters, each a
//     parameter declared under parameters. Example: parameters: {gcs: 4h}
//
// The qsofa mapping holds:
//
//   - gcs_threshold (default 15): altered mentation is a GCS below this,
//     from 4 to 15 (GCS runs from 3 to 15, so 3 would never count).
//     Example: gcs_threshold: 14
//
// # Destinations
//
// Each destination is named by its key (lower-case letters, digits, _
// and -) and has exactly one of webhook, notify and log. A destination no
// alert rule names is an error. A destination holds:
//
//   - webhook (one of webhook, notify, log): a JSON POST signed with
//     HMAC-SHA256; see below. Example: webhook: {url:
//     "https://rrt.example.org/hooks/aorta", secret_env: AORTA_RRT_KEY}
//   - notify (one of webhook, notify, log): a PostgreSQL NOTIFY channel
//     for in-database consumers: lower-case letters, digits and _,
//     starting with a letter or _, at most 63. Example: notify:
//     aorta_alerts
//   - log (one of webhook, notify, log): true, for the router's
//     structured log. Example: log: true
//   - max_attempts (default 10; not for log): attempts at one delivery,
//     from 1 to 100; after the last failure the delivery is dead and
//     waits for an operator. Example: max_attempts: 8
//   - backoff (default 1s; not for log): the delay before the first
//     retry, from 100ms to 1h, doubled with jitter before each next one.
//     Example: backoff: 2s
//   - max_backoff (default 10m; not for log): the longest delay between
//     attempts, from 1s to 24h and not shorter than backoff. Example:
//     max_backoff: 30m
//
// The webhook mapping holds the URL and where its key is. The key is
// never written in routes.yaml, which is kept in version control and
// printed in logs: a key such as secret is refused. It is read when the
// file is loaded, and a key that is missing, empty or shorter than 16
// bytes is an error at the key's line (unless the loader skips secrets,
// for linting):
//
//   - url (required): an absolute http or https URL, without user
//     information (user:password@) or fragment. Example: url:
//     https://rrt.example.org/hooks/aorta
//   - secret_env (one of secret_env, secret_file): the environment
//     variable holding the HMAC-SHA256 key; upper-case letters, digits and
//     _. Example: secret_env: AORTA_RRT_WEBHOOK_SECRET
//   - secret_file (one of secret_env, secret_file): the file holding the
//     key, relative to the routes file unless absolute; line ends at its
//     end are dropped. Example: secret_file: /run/secrets/rrt-webhook
//   - timeout (default 10s): the longest one POST may take, from 1s to
//     5m. Example: timeout: 5s
//
// # Alerts
//
// An alert rule raises alerts from one score. A patient has at most one
// open alert per rule. The rule's levels are listed most severe first, and
// an alert's level is the first that holds for the patient's latest
// score; the alert escalates when a more severe level holds and resolves
// itself when no level holds. Destinations are notified when an alert
// opens and when it escalates, and while it stays unchanged only after
// renotify_after. A rule holds:
//
//   - name (required): unique among the rules; lower-case letters,
//     digits, _ and -, at most 64. Example: name: news2-escalation
//   - score (required): the score the rule reads, one the router computes
//     (news2, qsofa, sirs) and that a route names in its handlers.
//     Example: score: news2
//   - levels (required): one or more levels, most severe first; see below.
//     A level that can never hold, that holds for every score (an alert no
//     patient could leave), or that is never reached because a level above
//     it holds whenever it does is an error. Example: levels: [{severity:
//     urgent, when: total >= 5}]
//   - renotify_after (default 0, never): how long after the last
//     notification an unchanged open alert is notified again; 0 or from
//     1m to 168h. Escalations always notify. Example: renotify_after: 1h
//   - destinations (required): the destinations notified, one or a list.
//     Example: destinations: [rapid-response, log]
//
// A level holds:
//
//   - severity (required): the level's name, unique in the rule;
//     lower-case letters, digits, _ and -. Its rank follows its place: the
//     first of n levels ranks n, the last 1. Example: severity: emergency
//   - when (required): the condition for the level, on one line; see
//     below. Example: when: total >= 5
//
// A condition reads the rule's own score, with these terms:
//
//	total >= 5                  the total, compared with >=, >, <=, < or ==
//	single_parameter_3          a single NEWS2 parameter scored 3 (news2 only)
//	risk == medium              the risk level is medium
//	risk in [medium, high]      the risk level is one of these
//
// The risk levels are low, low-medium, medium and high for news2;
// positive and negative for qsofa; met and not-met for sirs. Terms are
// joined by and and or, and binds tighter than or, without parentheses:
// "single_parameter_3 and total < 5 or total >= 7" means
// (single_parameter_3 and total < 5) or total >= 7. Inside { } or [ ],
// quote a condition that holds [ ] or a comma:
//
//	levels:
//	  - {severity: emergency, when: total >= 7}
//	  - {severity: urgent, when: "risk in [medium, high]"}
//	  - severity: low-medium
//	    when: single_parameter_3
//
// # Feeds
//
// A feed is a sender the router watches: it is idle when no message at
// all (accepted, rejected or an inbound ACK: the sender is alive) has
// arrived from it for longer than its silence window. Going idle writes a
// feed.idle event and notifies the feed's destinations; the first message
// after that writes feed.resumed and notifies them again. The ops summary
// (GET /api/v1/ops/summary) lists every feed with its last message time,
// and aorta_feed_idle{feed} is 1 while a feed is idle. A feed holds:
//
//   - name (required): unique among the feeds; lower-case letters,
//     digits, _ and -, at most 64. Example: name: lab-results
//   - sending_application (required): the sender's MSH-3, as stored
//     (messages.sending_application). Example: sending_application: LAB
//   - sending_facility (default: any facility): the sender's MSH-4, as
//     stored. Example: sending_facility: HOSP
//   - silence (required): how long the feed may be silent before it is
//     idle, from 5s to 168h. Example: silence: 15m
//   - active (default: always): the hours the feed is expected to send
//     in; only time inside them counts towards its silence, so that a
//     clinic's feed quiet at night and at weekends is not reported idle
//     every evening. The hours must hold at least the silence each week.
//     Example: active: {days: [mon, tue, wed, thu, fri], from: "07:00",
//     to: "19:00"}. It holds:
//   - days (default every day): mon, tue, wed, thu, fri, sat, sun; a
//     window belongs to the day it opens on.
//   - from (required): when the window opens, HH:MM, 00:00 to 23:59.
//     Example: from: "07:00"
//   - to (required): when it closes, HH:MM, up to 24:00; at or before
//     from, it closes the next day (a night window, from: "22:00", to:
//     "06:00"). Wall-clock times: a window keeps its hours across a
//     daylight-saving change.
//   - timezone (default: the file's timezone): the IANA zone of the
//     hours. Example: timezone: Europe/London
//   - notify (default none): the destinations told when the feed goes
//     idle and when it resumes, one or a list; with none the feed is only
//     surfaced (API, metrics, events). Example: notify: [oncall, log]
//
// A feed that has never sent anything is idle once its window has passed
// since a router first watched it; its feed.idle event waits for its
// first message (an event names the message it is about), but the API and
// the metric show it at once.
//
// # Route tests
//
// A route test file (by convention routes.test.yaml, beside routes.yaml)
// lists messages and what processing each must produce. `router test`
// runs it: this package decodes it strictly with LoadTests, checks the
// route names with TestFile.Validate, and compares events with
// SubsetMatch. The top level holds:
//
//   - routes (required): the routes file under test, relative to the test
//     file. Example: routes: routes.yaml
//   - tests (required): the tests, each with:
//
// A test holds:
//
//   - name (required): unique in the file. Example: name: admission
//     creates patient.admitted
//   - messages (required): one or more messages, processed in order, so a
//     later one may correct an earlier one. Each is a literal block (|)
//     whose lines become CR-terminated segments (blank lines dropped), or
//     a mapping with file, a message file relative to the test file, used
//     byte for byte. Every message must be readable HL7.
//     Example: messages: [{file: messages/a01.hl7}]
//   - expect (required): one expectation per message, in order.
//
// The message mapping holds:
//
//   - file (required): the message file. Example: file: messages/a01.hl7
//
// An expectation holds:
//
//   - route (required): the routes that must match, in order: one name, a
//     list, or [] for an unrouted message. Example: route: [lab, lab-audit]
//   - dead_letter (default false): true when the message must be
//     dead-lettered, or a part of the expected reason; false when it must
//     not be. Example: dead_letter: unit
//   - warnings (default: not checked): how many warnings processing must
//     give. Example: warnings: 0
//   - events (default: not checked): the events processing must produce,
//     one for one and in order; [] for none. Example: events: []
//
// An expected event holds any of the following keys; only those written
// are compared:
//
//   - type (required): the event type. Example: type: patient.admitted
//   - occurred_at (default: not checked): the clinical time, RFC 3339 with
//     an offset, compared as an instant. Example: occurred_at:
//     2026-11-26T11:55:00Z
//   - patient_id (default: not checked): the patient identifier. Example:
//     patient_id: "123"
//   - patient_key (default: not checked): authority/identifier. Example:
//     patient_key: HOSP/123
//   - encounter_id (default: not checked): the visit number (PV1-19).
//     Example: encounter_id: V123
//   - source (default: not checked): APP^FACILITY of the sender. Example:
//     source: EPIC^ST_THOMAS
//   - route (default: not checked): the route that produced the event.
//     Example: route: adt
//   - payload (default: not checked): a part of the event's payload: the
//     keys given must be present with matching values, others are
//     ignored; lists must match item for item; numbers compare as numbers.
//     Example: payload: {visit: {location: {point_of_care: ICU}}}
package route
