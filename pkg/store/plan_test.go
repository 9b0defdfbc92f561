package store_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/store"
)

// The listener's de-duplication lookups run with generic plans, made once
// per connection whatever the table held then: on a new installation that
// is an empty table, on a benchmark's fresh database one autovacuum has
// not analysed yet. Whatever the table's state when the plan is made, it
// must probe messages by sender and control ID (messages_dedup_idx, or
// messages_control_id_idx, as good): a plan that reads the window through
// an index on received_at, or a sender's history through the API's sender
// index, would slow the listener with every message stored. (A sequential
// scan is ruled out for every Aorta session: see store.Open.)
func TestDuplicateLookupPlans(t *testing.T) {
	t.Parallel()
	st, _ := pgtest.NewStore(t)
	ctx := context.Background()
	pc, err := st.Pool().Acquire(ctx) // with the session settings of every Aorta connection
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Release()
	conn := pc.Conn()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", strings.SplitN(sql, "\n", 2)[0], err)
		}
	}
	// One sender, many control IDs: the sender's indexes look as good as
	// the probe to a planner that reads only its first columns.
	fill := func(n int) {
		exec(`INSERT INTO messages (id, received_at, listener, remote_addr, raw, raw_sha256, status,
				sending_application, sending_facility, control_id)
			SELECT gen_random_uuid(), now() - n * interval '1 second', 'test', '127.0.0.1:1', 'MSH|', '\x00', 'accepted',
				'LAB', 'HOSP', 'C' || n
			FROM generate_series(1, $1::int) AS n`, n)
	}
	statements := []struct {
		name, types, sql, args string
	}{
		{"group lookup", "text[], text[], text[], timestamptz, uuid[]", store.DuplicatesSQL,
			`'{LAB,LAB}', '{HOSP,HOSP}', '{C100,C200}', now() - interval '1 day', '{}'`},
		{"lone message", "uuid, timestamptz, text, text, uuid, int4, bytea, bytea, text, text, text, text, text, text, text, text, " +
			"text, text, text, text, text, bytea, int4, text, text, int4, timestamptz, text, int4, timestamptz", store.SaveOneSQL,
			`gen_random_uuid(), now(), 'l', 'r', NULL, NULL, 'x', '\x00', 'LAB', 'HOSP', '', '', 'ORU', 'R01', '', 'C100', 'P', '2.5', '',
			'accepted', 'AA', '\x00', NULL, NULL, NULL, 0, NULL, 'pk', 3, now() - interval '1 day'`},
	}
	// The scans of messages in a plan, other than by primary key (the
	// lone message's duplicate count).
	scan := regexp.MustCompile(`(Seq Scan|Index Scan|Index Only Scan|Bitmap Index Scan)( using (\w+))? on messages\b`)
	check := func(state string) {
		t.Helper()
		for _, st := range statements {
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, sql := range []string{
				`SET LOCAL plan_cache_mode = force_generic_plan`,
				fmt.Sprintf(`PREPARE plan_test (%s) AS %s`, st.types, st.sql),
			} {
				if _, err := tx.Exec(ctx, sql); err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
			}
			rows, err := tx.Query(ctx, `EXPLAIN (COSTS OFF) EXECUTE plan_test (`+st.args+`)`, pgx.QueryExecModeSimpleProtocol)
			if err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			tx.Rollback(ctx)
			exec(`DEALLOCATE plan_test`)
			text := strings.Join(plan, "\n")
			probes := 0
			for _, m := range scan.FindAllStringSubmatch(text, -1) {
				switch m[3] {
				case "messages_dedup_idx", "messages_control_id_idx":
					probes++
				case "messages_pkey":
				default:
					t.Errorf("%s, generic plan on %s: %s on messages\n%s", st.name, state, strings.TrimSpace(m[0]), text)
				}
			}
			if probes != 1 {
				t.Errorf("%s, generic plan on %s: %d probes by sender and control ID, want 1\n%s", st.name, state, probes, text)
			}
		}
	}
	check("an empty table")
	exec(`VACUUM messages`)
	check("an empty vacuumed table")
	fill(5000)
	check("5,000 rows never analysed")
	fill(20000)
	exec(`ANALYZE messages`)
	check("25,000 rows analysed")
}

// The plans above are the ones the listener uses: its lookups never
// plan for their parameters, however often they run.
func TestListenerLookupsUseGenericPlans(t *testing.T) {
	t.Parallel()
	_, url := pgtest.NewStore(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url) // pgx's default: statements prepared and cached
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for i := range 10 {
		m := &store.Message{ID: uuid.Must(uuid.NewV7()), ReceivedAt: time.Now(),
			Header: store.Header{SendingApplication: "LAB", SendingFacility: "HOSP", ControlID: fmt.Sprint("L", i)}}
		if err := store.LookupDuplicates(ctx, conn, []*store.Message{m}, 24*time.Hour); err != nil {
			t.Fatalf("lookup %d: %v", i, err)
		}
		if _, err := conn.Exec(ctx, `ROLLBACK`); err != nil {
			t.Fatal(err)
		}
	}
	var generic, custom int64
	if err := conn.QueryRow(ctx, `SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1`,
		store.DuplicatesSQL).Scan(&generic, &custom); err != nil {
		t.Fatalf("the group lookup's prepared statement: %v", err)
	}
	if generic != 10 || custom != 0 {
		t.Errorf("group lookup planned %d times generically, %d times for its parameters; want 10 and 0", generic, custom)
	}

	// A lone message goes through Save on the store's one-connection pool.
	one, err := store.Open(ctx, url, store.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	for i := range 10 {
		m := &store.Message{ID: uuid.Must(uuid.NewV7()), ReceivedAt: time.Now(), Listener: "test", Raw: []byte("MSH|" + fmt.Sprint(i)),
			Status: store.StatusAccepted, Outbox: &store.OutboxEntry{PartitionKey: 1},
			Header: store.Header{SendingApplication: "LAB", SendingFacility: "HOSP", ControlID: fmt.Sprint("S", i)}}
		if _, err := one.Save(ctx, []store.Unit{{Message: m}}, 24*time.Hour); err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
	}
	if err := one.Pool().QueryRow(ctx, `SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1`,
		store.SaveOneSQL).Scan(&generic, &custom); err != nil {
		t.Fatalf("the lone message's prepared statement: %v", err)
	}
	if generic != 10 || custom != 0 {
		t.Errorf("lone message's statement planned %d times generically, %d times for its parameters; want 10 and 0", generic, custom)
	}
}
