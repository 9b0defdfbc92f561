// Package integration holds Aorta's end-to-end tests: the real
// mllp-listener binary, real TCP on 127.0.0.1 and a real PostgreSQL
// database per test. It has no code of its own.
//
// The promise the tests prove is the listener's: a message it acknowledged
// is never lost, and a message it could not store is never acknowledged.
// They do so under load, with hostile peers, through database outages
// (a cut or partitioned network, terminated sessions, a stopped and a
// crashed server, a database that refuses writes), kill -9 and a graceful
// shutdown, and against a standard third-party MLLP client. Each fault
// test logs what it did and what it verified: messages sent, ACKed,
// stored, events written.
//
//	harness_test.go  TestMain (builds the binary once), starting, killing and
//	                 restarting listeners, MLLP and database helpers
//	stream_test.go   senders that re-send until ACKed, and the checks of the promise
//	proxy_test.go    a TCP proxy that cuts or partitions the database network
//	accept_test.go   load, duplicates, malformed messages, charsets, batches, 1 MiB
//	peers_test.go    garbage, oversize, stalled, slow-loris and endless frames,
//	                 framing and frames cut short, connection limit, 2,000
//	                 idle connections
//	outage_test.go   database outages, kill -9, graceful shutdown
//	faults_test.go   the listener and the router killed in turn under load; a
//	                 database that refuses writes (read-only, disk full)
//	corpus_test.go   the shared third-party corpus over TCP
//	interop_test.go  Debian's mllp_send
//	admin_test.go    /healthz, /readyz, /metrics, the start-up log line
//	readiness_test.go  /readyz while the database refuses writes (read-only,
//	                   disk full) and after
//
// and the router's, which run the real router binary next to the listener
// (routes of their own in testdata/router) and check the events, routing
// outcomes and per-patient state it writes:
//
//	router_harness_test.go  starting, killing and diagnosing routers; reading
//	                        events and state; exactly-once and order checks
//	router_test.go          every message family, event by event
//	router_state_test.go    late, out-of-order, corrected, retracted, merged
//	router_ops_test.go      dead letters and retries, replay, reload, admin
//	router_faults_test.go   kill -9, two routers, database outages, silently
//	                        dead connections, backlog fairness, latency
//	scoring_test.go         NEWS2/qSOFA/SIRS from nursing and monitor sets with
//	                        the shipped routes.yaml: complete, incomplete,
//	                        late, corrected, SpO2 scale 2, under 16
//	alerts_test.go          alert rules and restraint, acknowledgement, NOTIFY,
//	                        webhooks that fail, recover or die, ACK-to-alert latency
//	roles_test.go           docs/roles.sql: listener and router as least-privilege
//	                        users, and what the listener's user is refused
//
// Every test starts its own listener process on its own database
// (internal/pgtest). Tests that disturb the database or the process (the
// outage, kill and shutdown tests) do not run in parallel; the others do.
// When the tests run with -race the listener is built with it too, and a
// race it reports fails the test.
//
// Requirements, each a loud failure when missing: PostgreSQL (see
// internal/pgtest), the shared HL7 corpus (AORTA_CORPUS_DIR, see
// internal/testcorpus), and Debian's python3-hl7 for mllp_send.
package integration
