package benchrun

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/loadgen"
	"github.com/aortahealth/aorta/pkg/hl7"
	"github.com/aortahealth/aorta/pkg/patient"
)

// Probe is PostgreSQL's own rate for the rows the listener writes.
type Probe struct {
	Method string  `json:"method"`
	Conns  int     `json:"conns"`
	Batch  int     `json:"batch"` // rows per commit
	Rows   int     `json:"rows"`
	Rate   float64 `json:"rows_per_second"`
	// BackendCPU is the CPU seconds of the probe's PostgreSQL backends
	// per 1,000 rows (0 when the server's processes cannot be read).
	BackendCPU float64 `json:"postgres_backends_cpu_s_per_1k,omitempty"`
}

// row is what the listener stores for one accepted message: its messages
// row (with the ACK it sent) and its outbox row.
type row struct {
	raw, sum, ack []byte
	h             hl7.Header
	patientKey    string
	partition     int32
}

// probeRows are rows of the bench's own mix, made before any timing so
// that only PostgreSQL is measured.
func probeRows(g *loadgen.Generator, n int) ([]row, error) {
	rows := make([]row, n)
	now := time.Now()
	for i := range rows {
		m := g.Message(uint64(i), now)
		h, err := hl7.ParseHeader(m.Raw)
		if err != nil {
			return nil, fmt.Errorf("probe row %d: %w", i, err)
		}
		ack, err := hl7.BuildACK(h, hl7.ACK{Code: hl7.AA, ControlID: "0190F3A1B2C3D4E5F6A7", Time: now})
		if err != nil {
			return nil, fmt.Errorf("probe row %d: %w", i, err)
		}
		msg, err := hl7.Parse(m.Raw)
		if err != nil {
			return nil, fmt.Errorf("probe row %d: %w", i, err)
		}
		key := ""
		if id, ok := patient.Primary(msg); ok {
			key = id.Key(h.SendingFacility.String())
		}
		sum := sha256.Sum256(m.Raw)
		rows[i] = row{raw: m.Raw, sum: sum[:], ack: ack, h: h, patientKey: key, partition: patient.Partition(key)}
	}
	return rows, nil
}

// messageColumns are the messages columns the listener writes for an
// accepted message; the others keep their defaults.
var messageColumns = []string{"id", "received_at", "listener", "remote_addr", "raw", "raw_sha256",
	"sending_application", "sending_facility", "receiving_application", "receiving_facility",
	"message_type", "trigger_event", "message_structure", "control_id", "processing_id", "version",
	"status", "ack_code", "ack", "patient_key", "partition_key"}

func (r *row) values(id uuid.UUID, now time.Time) []any {
	h := &r.h
	return []any{id, now, "aorta-bench-probe", "127.0.0.1:40000", r.raw, r.sum,
		h.SendingApplication.String(), h.SendingFacility.String(), h.ReceivingApplication.String(), h.ReceivingFacility.String(),
		h.MessageType, h.TriggerEvent, h.MessageStructure, h.ControlID, h.ProcessingID, h.Version,
		"accepted", "AA", r.ack, r.patientKey, r.partition}
}

// connect opens a session with synchronous_commit on, as the listener's.
func connect(ctx context.Context, dbURL string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["synchronous_commit"] = "on"
	cfg.RuntimeParams["application_name"] = "aorta-bench-probe"
	return pgx.ConnectConfig(ctx, cfg)
}

// copyProbe writes rows for d from conns connections, each committing
// batch messages and their outbox rows at a time with COPY: the fastest
// plain way to store them durably, the ceiling a listener could reach.
func copyProbe(ctx context.Context, dbURL string, rows []row, conns, batch int, d time.Duration) (Probe, error) {
	p := Probe{Method: "COPY", Conns: conns, Batch: batch}
	written := make([]int, conns)
	errs := make([]error, conns)
	cs := make([]*pgx.Conn, conns)
	for i := range cs {
		c, err := connect(ctx, dbURL)
		if err != nil {
			return p, fmt.Errorf("ceiling probe: %w", err)
		}
		defer c.Close(context.WithoutCancel(ctx))
		cs[i] = c
	}
	cpu0 := sessionsCPU(ctx, cs)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := range conns {
		wg.Go(func() {
			c := cs[w]
			next := w * batch
			for time.Now().Before(deadline) && ctx.Err() == nil {
				now := time.Now()
				msgs := make([][]any, batch)
				outbox := make([][]any, batch)
				for i := range batch {
					r := &rows[(next+i)%len(rows)]
					id := uuid.Must(uuid.NewV7())
					msgs[i] = r.values(id, now)
					outbox[i] = []any{id, r.partition, r.patientKey}
				}
				next += conns * batch
				err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
					if _, err := tx.CopyFrom(ctx, pgx.Identifier{"messages"}, messageColumns, pgx.CopyFromRows(msgs)); err != nil {
						return err
					}
					_, err := tx.CopyFrom(ctx, pgx.Identifier{"outbox"}, []string{"message_id", "partition_key", "patient_key"}, pgx.CopyFromRows(outbox))
					return err
				})
				if err != nil {
					errs[w] = err
					return
				}
				written[w] += batch
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return p, fmt.Errorf("ceiling probe: %w", err)
	}
	for _, n := range written {
		p.Rows += n
	}
	p.Rate = float64(p.Rows) / elapsed.Seconds()
	p.BackendCPU = perThousand(sessionsCPU(ctx, cs)-cpu0, p.Rows)
	return p, nil
}

// commitProbe stores rows for d from one connection, one transaction per
// message (INSERT message, INSERT outbox, COMMIT): what one durable commit
// per message costs, the limit of a listener without group commit.
func commitProbe(ctx context.Context, dbURL string, rows []row, d time.Duration) (Probe, error) {
	p := Probe{Method: "INSERT+COMMIT", Conns: 1, Batch: 1}
	c, err := connect(ctx, dbURL)
	if err != nil {
		return p, fmt.Errorf("commit probe: %w", err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	cpu0 := sessionsCPU(ctx, []*pgx.Conn{c})
	insert := "INSERT INTO messages (" + join(messageColumns) + ") VALUES (" + placeholders(len(messageColumns)) + ")"
	start := time.Now()
	for i := 0; time.Since(start) < d && ctx.Err() == nil; i++ {
		r := &rows[i%len(rows)]
		id := uuid.Must(uuid.NewV7())
		err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, insert, r.values(id, time.Now())...); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO outbox (message_id, partition_key, patient_key) VALUES ($1, $2, $3)`, id, r.partition, r.patientKey)
			return err
		})
		if err != nil {
			return p, fmt.Errorf("commit probe: %w", err)
		}
		p.Rows++
	}
	p.Rate = float64(p.Rows) / time.Since(start).Seconds()
	p.BackendCPU = perThousand(sessionsCPU(ctx, []*pgx.Conn{c})-cpu0, p.Rows)
	return p, nil
}

// sessionsCPU is the CPU time the sessions' backends have used; 0 when
// it cannot be read (a server on another machine).
func sessionsCPU(ctx context.Context, cs []*pgx.Conn) time.Duration {
	var total time.Duration
	for _, c := range cs {
		t, err := procCPU(int(c.PgConn().PID()))
		if err != nil {
			return 0
		}
		total += t
	}
	return total
}

// perThousand is d in seconds per 1,000 of n; 0 when either is 0.
func perThousand(d time.Duration, n int) float64 {
	if d <= 0 || n == 0 {
		return 0
	}
	return d.Seconds() / float64(n) * 1000
}

func join(cols []string) string {
	s := ""
	for i, c := range cols {
		if i > 0 {
			s += ", "
		}
		s += c
	}
	return s
}

func placeholders(n int) string {
	s := ""
	for i := 1; i <= n; i++ {
		if i > 1 {
			s += ", "
		}
		s += fmt.Sprintf("$%d", i)
	}
	return s
}
