package store

// Retention's window statements, for EXPLAIN tests.
var (
	RetentionMessagesSQL = retentionMessagesSQL
	RetentionEventsSQL   = retentionEventsSQL
	RetentionAuditSQL    = retentionAuditSQL
	RetentionBatchesSQL  = retentionBatchesGoneSQL
)
