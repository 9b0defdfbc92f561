package store_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/loadgen"
	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/patient"
	"github.com/aortahealth/aorta/pkg/store"
)

// BenchmarkSave measures the listener's commit path alone, Store.Save of
// one group of the realistic mix (internal/loadgen) per transaction, for
// several group sizes: what each group costs PostgreSQL, without the MLLP
// and parsing costs around it, or the noise of many senders.
//
// The baseline, measured in the same run on the same database, is the
// same rows written by the fastest plain means: COPY into messages and
// outbox, one transaction per group. x_copy is Save's rate over it. The
// database's CPU per message (read from /proc for the one server process
// serving the benchmark, so a local server only) is the figure that
// profiles change; it does not depend on what else the machine runs.
func BenchmarkSave(b *testing.B) {
	gen, err := loadgen.NewGenerator(loadgen.GeneratorOptions{RunID: "BENCH"})
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{1, 16, 64, 128} {
		b.Run(fmt.Sprintf("group=%d", size), func(b *testing.B) {
			ctx := context.Background()
			url := pgtest.NewDatabase(b)
			st, err := store.Open(ctx, url, store.Options{MaxConns: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			var next uint64
			group := func() []store.Unit {
				units := make([]store.Unit, size)
				for i := range units {
					units[i] = store.Unit{Message: benchMessage(gen, next)}
					next++
				}
				return units
			}
			groups := max(b.N/size, 20)

			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close(ctx)
			copyRate, copyCPU := measure(b, ctx, conn, groups, size, func() error { return copyGroup(ctx, conn, group()) })

			var pid int32
			if err := st.Pool().QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			start, cpu0, self0 := time.Now(), backendCPU(pid), selfCPU()
			for range groups {
				if _, err := st.Save(ctx, group(), 24*time.Hour); err != nil {
					b.Fatal(err)
				}
			}
			elapsed, cpu, self := time.Since(start), backendCPU(pid)-cpu0, selfCPU()-self0
			b.StopTimer()
			n := float64(groups * size)
			rate := n / elapsed.Seconds()
			b.ReportMetric(rate, "msgs/s")
			b.ReportMetric(copyRate, "copy_msgs/s")
			b.ReportMetric(rate/copyRate, "x_copy")
			b.ReportMetric(cpu.Seconds()*1e6/n, "pg_cpu_us/msg")
			b.ReportMetric(copyCPU, "copy_pg_cpu_us/msg")
			b.ReportMetric(self.Seconds()*1e6/n, "go_cpu_us/msg")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// measure runs op, which writes one group of size messages, groups
// times, and returns messages/s and the server's CPU microseconds per
// message.
func measure(b *testing.B, ctx context.Context, conn *pgx.Conn, groups, size int, op func() error) (float64, float64) {
	var pid int32
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		b.Fatal(err)
	}
	start, cpu0 := time.Now(), backendCPU(pid)
	for range groups {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	n := groups * size
	elapsed, cpu := time.Since(start), backendCPU(pid)-cpu0
	return float64(n) / elapsed.Seconds(), cpu.Seconds() * 1e6 / float64(n)
}

func benchMessage(gen *loadgen.Generator, i uint64) *store.Message {
	lm := gen.Message(i, time.Now())
	mrn := fmt.Sprintf("LD%07d", lm.Patient+1)
	key := "LOADGEN/" + mrn
	m := &store.Message{
		ID: uuid.Must(uuid.NewV7()), ReceivedAt: time.Now(), Listener: "bench", RemoteAddr: "127.0.0.1:40000",
		Raw: lm.Raw,
		Header: store.Header{SendingApplication: "LOADGEN", SendingFacility: "HOSP", ReceivingApplication: "AORTA",
			ReceivingFacility: "HOSP", MessageType: "ORU", TriggerEvent: "R01", MessageStructure: "ORU_R01",
			ControlID: lm.ControlID, ProcessingID: "P", Version: "2.5.1"},
		Status:  store.StatusAccepted,
		AckCode: "AA",
		Ack:     []byte("MSH|^~\\&|AORTA|HOSP|LOADGEN|HOSP|20261126120000||ACK^R01^ACK|" + lm.ControlID + "|P|2.5.1\rMSA|AA|" + lm.ControlID + "\r"),
		Outbox:  &store.OutboxEntry{PartitionKey: patient.Partition(key), PatientKey: key},
	}
	return m
}

// copyGroup writes a group's rows with COPY in one transaction: the
// ceiling for this row shape, with no de-duplication.
func copyGroup(ctx context.Context, conn *pgx.Conn, units []store.Unit) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	rows := make([][]any, len(units))
	outbox := make([][]any, len(units))
	for i, u := range units {
		m := u.Message
		sum := sha256.Sum256(m.Raw)
		h := m.Header
		rows[i] = []any{[16]byte(m.ID), m.ReceivedAt, m.Listener, m.RemoteAddr, m.Raw, sum[:],
			h.SendingApplication, h.SendingFacility, h.ReceivingApplication, h.ReceivingFacility,
			h.MessageType, h.TriggerEvent, h.MessageStructure, h.ControlID, h.ProcessingID, h.Version,
			string(m.Status), m.AckCode, m.Ack, m.Outbox.PatientKey, m.Outbox.PartitionKey}
		outbox[i] = []any{[16]byte(m.ID), m.Outbox.PartitionKey, m.Outbox.PatientKey}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"messages"}, []string{"id", "received_at", "listener", "remote_addr", "raw", "raw_sha256",
		"sending_application", "sending_facility", "receiving_application", "receiving_facility",
		"message_type", "trigger_event", "message_structure", "control_id", "processing_id", "version",
		"status", "ack_code", "ack", "patient_key", "partition_key"}, pgx.CopyFromRows(rows)); err != nil {
		return err
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"outbox"}, []string{"message_id", "partition_key", "patient_key"}, pgx.CopyFromRows(outbox)); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// selfCPU is this process's CPU time so far: Save's own cost (building
// and encoding the statements), plus the message generation around it.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backendCPU is a local server process's CPU time so far; zero when /proc
// cannot tell (a remote server).
func backendCPU(pid int32) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}
