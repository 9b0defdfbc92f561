// Package ingest is the listener's core: it turns each MLLP frame into
// stored rows and an acknowledgement, and acknowledges only what has
// committed.
//
// For every frame the Ingester parses the header, decides accept or reject
// (a reject is still stored, with its reason, and never routed), builds the
// ACK the sender asked for (original or enhanced mode), hands the rows to a
// group committer that shares one transaction among concurrent messages,
// and returns the ACK only once that transaction has committed. A storage
// failure never yields a positive ACK: after a short retry budget the
// connection is closed (the sender resends) or, when configured, answered
// with AR/CR and ERR code 207. The committers remember whether their last
// attempt failed on the database (CommitFailure), and CheckCommits makes
// that a readiness check, so that a load balancer sends senders elsewhere.
//
// A batch file (FHS/BHS ... BTS/FTS) in one frame is stored as a batch row
// holding the exact frame plus one message row per member, and answered
// with one batch acknowledgement holding each member's ACK.
package ingest
