// Package retention deletes old raw messages, events, audit rows and
// finished alerts on the operator's schedule: a Policy (ages set by router flags, never by
// routes.yaml), and a Runner that makes one pass at a time across the
// cluster (an advisory lock), in short batched transactions walking
// time-ordered indexes, so that autovacuum keeps up and no lock is held
// for long.
//
// What a pass may delete and what it keeps, and why, is written at the top
// of pkg/store/retention.go, which holds the SQL. In short: a resolved
// alert that last changed longer ago than the audit retention goes with
// its deliveries, unless one is still pending; an open alert, acknowledged
// or not, always stays. A message goes with its events, observations,
// routing outcome, resolved dead letters and emptied batch; a message
// still queued, dead-lettered and open, behind an alert that stays, behind
// a delivered or current-score event, or holding an observation a new one
// could still be scored with, stays. Alerts go first in a pass, so that
// what they kept goes in the same pass.
//
// A dry run reads the same windows in read-only snapshots and reports what
// the pass would delete, table by table.
package retention
