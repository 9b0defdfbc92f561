// Package migrations holds Aorta's numbered SQL schema migrations, embedded
// in every binary so that `mllp-listener migrate` (and start-up) can apply
// them without any file on disk. pkg/store applies them.
package migrations

import "embed"

// FS holds the migration files, named NNNNN_description.sql.
//
//go:embed *.sql
var FS embed.FS
