package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/store"
)

// A listener started on an empty, vacuumed messages table must not keep
// looking up duplicates with the sequential scan planned for it once the
// table has grown: pgx prepares statements, and a generic plan made while
// the table was empty would stay until the next ANALYZE.
func TestDuplicateLookupStaysIndexedAsTheTableGrows(t *testing.T) {
	t.Parallel()
	_, url := pgtest.NewStore(t)
	ctx := context.Background()
	st, err := store.Open(ctx, url, store.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	conn, err := st.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	exec := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", strings.SplitN(sql, "\n", 2)[0], err)
		}
	}
	exec(`VACUUM ANALYZE messages`)
	exec(`PREPARE dup(text, text, text, timestamptz, uuid[]) AS ` + store.DuplicatesSQL)
	const run = `EXECUTE dup('LAB', 'HOSP', 'C1', now() - interval '1 day', '{}')`
	for range 8 { // past the five custom plans after which a generic one may stick
		exec(run)
	}
	exec(`INSERT INTO messages (id, received_at, listener, remote_addr, raw, raw_sha256, status,
			sending_application, sending_facility, control_id)
		SELECT gen_random_uuid(), now() - n * interval '1 second', 'test', '127.0.0.1:1', 'MSH|', '\x00', 'accepted',
			'LAB', 'HOSP', 'C' || n
		FROM generate_series(1, 20000) AS n`)
	rows, err := conn.Query(ctx, `EXPLAIN `+run)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	text := strings.Join(plan, "\n")
	if strings.Contains(text, "Seq Scan on messages") || !strings.Contains(text, "messages_dedup_idx") {
		t.Errorf("de-duplication lookup on 20,000 unanalysed rows after preparing on an empty table:\n%s\nwant messages_dedup_idx, no sequential scan", text)
	}
}
