package store

import "github.com/jackc/pgx/v5"

// TxFor wraps a transaction, so that tests can read the per-patient state
// the way scoring does, outside Apply.
func TxFor(tx pgx.Tx) *Tx { return &Tx{tx: tx} }

// MessageSearchSQL exposes the message search query for EXPLAIN tests.
var MessageSearchSQL = messageSearchSQL
