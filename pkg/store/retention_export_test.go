package store

// Retention's window statements, for EXPLAIN tests.
var (
	RetentionMessagesSQL     = retentionMessagesSQL
	RetentionMessagesDrySQL  = retentionMessagesDrySQL
	RetentionEventsSQL       = retentionEventsSQL
	RetentionEventsDrySQL    = retentionEventsDrySQL
	RetentionAuditSQL        = retentionAuditSQL
	RetentionBatchesSQL      = retentionBatchesGoneSQL
	RetentionAlertsSQL       = retentionAlertsSQL
	RetentionDeleteAlertsSQL = retentionDeleteAlertsSQL
)
