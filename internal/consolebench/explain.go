package consolebench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/pkg/store"
)

// The plan check: the tool opens a store of its own with a tracer, makes
// each API view's store calls (the handler's, with the same filters),
// and EXPLAIN ANALYZEs every SELECT they sent, with their arguments, on
// the seeded tables. A sequential scan of a big table there is what makes
// a view slow as the tables grow, whatever the time measured today.

// bigTable is the row count from which a sequential scan counts: the
// seeded dead letters and alerts are small tables on purpose.
const bigTable = 100_000

// statement is one SQL statement and its arguments, as sent.
type statement struct {
	SQL  string
	Args []any
}

// capture records the statements a store sends (pgx.QueryTracer).
type capture struct {
	mu    sync.Mutex
	stmts []statement
}

func (c *capture) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.mu.Lock()
	c.stmts = append(c.stmts, statement{SQL: d.SQL, Args: d.Args})
	c.mu.Unlock()
	return ctx
}

func (c *capture) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *capture) take() []statement {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stmts
	c.stmts = nil
	return s
}

// PlanCheck is the plan of one statement a view sends.
type PlanCheck struct {
	Statement string   `json:"statement"` // its first 100 characters, whitespace folded
	SeqScans  []string `json:"seq_scans"` // big tables it reads whole
	Indexes   []string `json:"indexes"`   // indexes it reads
	ExecMS    float64  `json:"exec_ms"`   // EXPLAIN ANALYZE's execution time
	Plan      string   `json:"plan,omitempty"`
}

var spaces = regexp.MustCompile(`\s+`)

// checkPlans runs v's store calls on st (whose tracer is c) and explains
// what they sent on conn. big lists the tables counted as big.
func checkPlans(ctx context.Context, st *store.Store, c *capture, conn *pgx.Conn, v view, big map[string]bool) ([]PlanCheck, error) {
	c.take()
	if err := v.Store(ctx, st); err != nil {
		return nil, fmt.Errorf("%s: store call: %w", v.Name, err)
	}
	var out []PlanCheck
	for _, s := range c.take() {
		sql := strings.TrimSpace(s.SQL)
		if !isRead(sql) {
			continue
		}
		raw, err := explain(ctx, conn, "EXPLAIN (ANALYZE, FORMAT JSON) "+sql, s.Args)
		if err != nil {
			return nil, fmt.Errorf("%s: explain: %w", v.Name, err)
		}
		pc, err := readPlan(raw, big)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v.Name, err)
		}
		short := spaces.ReplaceAllString(sql, " ")
		if len(short) > 100 {
			short = short[:100] + "…"
		}
		pc.Statement = short
		if len(pc.SeqScans) > 0 {
			pc.Plan = text(ctx, conn, sql, s.Args)
		}
		out = append(out, pc)
	}
	return out, nil
}

// writes finds the statements that change rows, which are not explained.
var writes = regexp.MustCompile(`(?i)\b(INSERT|UPDATE|DELETE|MERGE|TRUNCATE)\b|FOR (UPDATE|SHARE)`)

// isRead reports whether sql only reads (SELECT, or WITH ... SELECT
// without a data-modifying part): EXPLAIN ANALYZE runs the statement.
func isRead(sql string) bool {
	u := strings.ToUpper(sql)
	return (strings.HasPrefix(u, "SELECT") || strings.HasPrefix(u, "WITH")) && !writes.MatchString(sql)
}

// explain runs an EXPLAIN ANALYZE in a read-only transaction that is
// rolled back: should a statement write after all, nothing is kept.
func explain(ctx context.Context, conn *pgx.Conn, sql string, args []any) ([]byte, error) {
	var raw []byte
	err := pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, sql, args...).Scan(&raw); err != nil {
			return err
		}
		return errRollback
	})
	if errors.Is(err, errRollback) {
		err = nil
	}
	return raw, err
}

var errRollback = errors.New("rollback")

// text is the statement's plan as EXPLAIN ANALYZE prints it, for the
// report of a view that scans; "" when it cannot be had.
func text(ctx context.Context, conn *pgx.Conn, sql string, args []any) string {
	var lines []string
	err := pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+sql, args...)
		if err != nil {
			return err
		}
		lines, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		return ""
	}
	return strings.Join(lines, "\n")
}

// planNode is the part of EXPLAIN's JSON the check reads.
type planNode struct {
	NodeType  string     `json:"Node Type"`
	Relation  string     `json:"Relation Name"`
	IndexName string     `json:"Index Name"`
	Plans     []planNode `json:"Plans"`
}

// readPlan finds the sequential scans of big tables and the indexes in
// an EXPLAIN (FORMAT JSON) answer.
func readPlan(raw []byte, big map[string]bool) (PlanCheck, error) {
	var doc []struct {
		Plan          planNode `json:"Plan"`
		ExecutionTime float64  `json:"Execution Time"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || len(doc) == 0 {
		return PlanCheck{}, fmt.Errorf("read plan: %v (%d plans)", err, len(doc))
	}
	pc := PlanCheck{SeqScans: []string{}, Indexes: []string{}, ExecMS: doc[0].ExecutionTime}
	var walk func(n planNode)
	walk = func(n planNode) {
		if n.NodeType == "Seq Scan" && big[n.Relation] && !slices.Contains(pc.SeqScans, n.Relation) {
			pc.SeqScans = append(pc.SeqScans, n.Relation)
		}
		if n.IndexName != "" && !slices.Contains(pc.Indexes, n.IndexName) {
			pc.Indexes = append(pc.Indexes, n.IndexName)
		}
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(doc[0].Plan)
	return pc, nil
}

// bigTables lists the tables of the database with at least bigTable rows
// by the planner's statistics.
func bigTables(ctx context.Context, conn *pgx.Conn) (map[string]bool, error) {
	rows, err := conn.Query(ctx, `SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace AND reltuples >= $1`, bigTable)
	if err != nil {
		return nil, fmt.Errorf("big tables: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("big tables: %w", err)
	}
	out := map[string]bool{}
	for _, n := range names {
		out[n] = true
	}
	return out, nil
}

func parseUUID(s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return id, fmt.Errorf("message id %q: %w", s, err)
	}
	return id, nil
}
