package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/store"
)

// A listener started on an empty, vacuumed messages table must not keep
// looking up duplicates with the sequential scan planned for it once the
// table has grown: pgx prepares statements, and a generic plan made while
// the table was empty would stay until the next ANALYZE. The real lookup
// runs on an empty table well past the five executions after which
// PostgreSQL may cache a generic plan: it must never have made one, and
// planned for its parameters on 20,000 rows it must use the index.
func TestDuplicateLookupStaysIndexedAsTheTableGrows(t *testing.T) {
	t.Parallel()
	_, url := pgtest.NewStore(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url) // pgx's default: statements prepared and cached
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	exec := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", strings.SplitN(sql, "\n", 2)[0], err)
		}
	}
	exec(`VACUUM ANALYZE messages`)
	lookup := func(i int) {
		t.Helper()
		m := &store.Message{ID: uuid.Must(uuid.NewV7()), ReceivedAt: time.Now(),
			Header: store.Header{SendingApplication: "LAB", SendingFacility: "HOSP", ControlID: fmt.Sprint("L", i)}}
		if err := store.LookupDuplicates(ctx, conn, []*store.Message{m}, 24*time.Hour); err != nil {
			t.Fatalf("lookup %d: %v", i, err)
		}
		exec(`ROLLBACK`)
	}
	for i := range 10 {
		lookup(i)
	}
	exec(`INSERT INTO messages (id, received_at, listener, remote_addr, raw, raw_sha256, status,
			sending_application, sending_facility, control_id)
		SELECT gen_random_uuid(), now() - n * interval '1 second', 'test', '127.0.0.1:1', 'MSH|', '\x00', 'accepted',
			'LAB', 'HOSP', 'C' || n
		FROM generate_series(1, 20000) AS n`)
	lookup(10)

	var generic, custom int64
	if err := conn.QueryRow(ctx, `SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1`,
		store.DuplicatesSQL).Scan(&generic, &custom); err != nil {
		t.Fatalf("the lookup's prepared statement: %v", err)
	}
	if generic != 0 || custom != 11 {
		t.Errorf("lookup planned %d times generically, %d times for its parameters; want never generically, 11 for its parameters", generic, custom)
	}

	// What planning for its parameters gives on the grown table.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SET LOCAL plan_cache_mode = force_custom_plan`); err != nil {
		t.Fatal(err)
	}
	explain := `EXPLAIN ` + strings.NewReplacer("$1", "'{LAB,LAB}'", "$2", "'{HOSP,HOSP}'", "$3", "'{C100,C200}'", "$4", "now() - interval '1 day'", "$5", "'{}'").Replace(store.DuplicatesSQL)
	rows, err := tx.Query(ctx, explain)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if text := strings.Join(plan, "\n"); strings.Contains(text, "Seq Scan on messages") || !strings.Contains(text, "messages_dedup_idx") {
		t.Errorf("de-duplication lookup on 20,000 rows:\n%s\nwant messages_dedup_idx, no sequential scan", text)
	}
}

// On a table autovacuum has not analysed yet (a new installation's first
// minute, or a benchmark's fresh database), the planner has no statistics
// to tell that a control ID picks out one message: an index that leads
// with the sender too must not look as good to it as messages_dedup_idx,
// or every lookup reads all of the sender's messages in the window and
// the listener slows with every message stored. Checked on a never
// analysed table holding one sender's 5,000 messages.
func TestDuplicateLookupUsesItsIndexBeforeAnyAnalyze(t *testing.T) {
	t.Parallel()
	_, url := pgtest.NewStore(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `INSERT INTO messages (id, received_at, listener, remote_addr, raw, raw_sha256, status,
			sending_application, sending_facility, control_id)
		SELECT gen_random_uuid(), now() - n * interval '1 second', 'test', '127.0.0.1:1', 'MSH|', '\x00', 'accepted',
			'LAB', 'HOSP', 'C' || n
		FROM generate_series(1, 5000) AS n`); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SET LOCAL plan_cache_mode = force_custom_plan`); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2, 64, 128} { // a group's distinct keys
		apps, facs, cids := make([]string, n), make([]string, n), make([]string, n)
		for i := range n {
			apps[i], facs[i], cids[i] = "LAB", "HOSP", fmt.Sprint("C", 100+i)
		}
		rows, err := tx.Query(ctx, `EXPLAIN `+store.DuplicatesSQL, apps, facs, cids, time.Now().Add(-24*time.Hour), [][16]byte{})
		if err != nil {
			t.Fatal(err)
		}
		plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if text := strings.Join(plan, "\n"); !strings.Contains(text, "messages_dedup_idx") || strings.Contains(text, "Seq Scan") {
			t.Errorf("de-duplication lookup of %d keys on a never analysed table:\n%s\nwant messages_dedup_idx", n, text)
		}
	}
}
