package ingest_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/internal/testcorpus"
	"github.com/aortahealth/aorta/pkg/hl7"
	"github.com/aortahealth/aorta/pkg/ingest"
	"github.com/aortahealth/aorta/pkg/mllp"
	"github.com/aortahealth/aorta/pkg/patient"
	"github.com/aortahealth/aorta/pkg/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var conn = mllp.ConnInfo{ID: 1, RemoteAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}}

type harness struct {
	in  *ingest.Ingester
	url string
}

func newHarness(t *testing.T, cfg ingest.Config) *harness {
	t.Helper()
	st, url := pgtest.NewStore(t)
	in, err := ingest.New(st, cfg)
	if err != nil {
		t.Fatalf("ingest.New: %v", err)
	}
	t.Cleanup(in.Close)
	return &harness{in: in, url: url}
}

func (h *harness) send(t *testing.T, frame []byte) []byte {
	t.Helper()
	resp, err := h.in.ServeMLLP(context.Background(), conn, frame)
	if err != nil {
		t.Fatalf("ServeMLLP: %v", err)
	}
	return resp
}

func (h *harness) query(t *testing.T, sql string, args []any, dest ...any) {
	t.Helper()
	c, err := pgx.Connect(context.Background(), h.url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if err := c.QueryRow(context.Background(), sql, args...).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// ackOf parses an acknowledgement and returns MSA-1 and MSA-2.
func ackOf(t *testing.T, ack []byte) (code, controlID string, m *hl7.Message) {
	t.Helper()
	m, err := hl7.Parse(ack)
	if err != nil {
		t.Fatalf("our ACK does not parse: %v\n%q", err, ack)
	}
	code, _ = m.Get("MSA-1")
	controlID, _ = m.Get("MSA-2")
	return code, controlID, m
}

func msg(cid, extra string) []byte {
	return []byte("MSH|^~\\&|LAB|HOSP|AORTA|HOSP|20261126120000||ORU^R01^ORU_R01|" + cid + "|P|2.5.1" + extra + "\r" +
		"PID|||123456^^^HOSP^MR~999^^^SSA^SS||DOE^JANE\r" +
		"OBR|1||X1|8867-4^Heart rate^LN\r" +
		"OBX|1|NM|8867-4^Heart rate^LN||88|/min|||||F\r")
}

func TestAcceptStoresAndAcknowledges(t *testing.T) {
	t.Parallel()
	h := newHarness(t, ingest.Config{})
	frame := msg("C1", "")
	code, cid, ack := ackOf(t, h.send(t, frame))
	if code != "AA" || cid != "C1" {
		t.Fatalf("ACK MSA = %s/%s, want AA/C1", code, cid)
	}
	if app, _ := ack.Get("MSH-3"); app != "AORTA" {
		t.Errorf("ACK MSH-3 = %q, want the inbound receiver AORTA (sender and receiver swapped)", app)
	}
	var raw []byte
	var status, patientKey, ackCode string
	var partition int32
	h.query(t, `SELECT m.raw, m.status, m.ack_code, o.patient_key, o.partition_key FROM messages m JOIN outbox o ON o.message_id = m.id`, nil,
		&raw, &status, &ackCode, &patientKey, &partition)
	if !bytes.Equal(raw, frame) || status != "accepted" || ackCode != "AA" {
		t.Errorf("stored raw equal=%v status=%s ack=%s", bytes.Equal(raw, frame), status, ackCode)
	}
	if patientKey != "HOSP/123456" || partition != patient.Partition("HOSP/123456") {
		t.Errorf("patient key %q partition %d, want HOSP/123456 (the first PID-3 identifier)", patientKey, partition)
	}
}

func TestRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		frame    string
		wantCode string
		wantMSA2 string
		wantErr  string // ERR-3.1, the table 0357 code
		wantLoc  string // stored error_location
	}{
		{"no MSH", "PID|||1\r", "AR", "", "100", ""},
		{"missing control id", "MSH|^~\\&|LAB|HOSP|||20260101||ORU^R01||P|2.5\r", "AR", "", "101", "MSH-10"},
		{"missing message type", "MSH|^~\\&|LAB|HOSP|||20260101|||C2|P|2.5\r", "AR", "C2", "101", "MSH-9"},
		{"missing processing id", "MSH|^~\\&|LAB|HOSP|||20260101||ORU^R01|C3||2.5\r", "AR", "C3", "101", "MSH-11"},
		{"unsupported processing id", "MSH|^~\\&|LAB|HOSP|||20260101||ORU^R01|C4|1|2.5\r", "AR", "C4", "202", "MSH-11"},
		{"unsupported version", "MSH|^~\\&|LAB|HOSP|||20260101||ORU^R01|C5|P|3.0\r", "AR", "C5", "203", "MSH-12"},
		{"query type", "MSH|^~\\&|LAB|HOSP|||20260101||QRY^Q01|C6|P|2.5\r", "AR", "C6", "200", "MSH-9"},
		{"unknown character set", "MSH|^~\\&|LAB|HOSP|||20260101||ORU^R01|C7|P|2.5||||||KLINGON\r", "AR", "C7", "103", "MSH-18"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, ingest.Config{})
			code, cid, ack := ackOf(t, h.send(t, []byte(tt.frame)))
			if code != tt.wantCode || cid != tt.wantMSA2 {
				t.Errorf("MSA = %s/%s, want %s/%s", code, cid, tt.wantCode, tt.wantMSA2)
			}
			if e, _ := ack.Get("ERR-3.1"); e != tt.wantErr {
				t.Errorf("ERR-3.1 = %q, want %q", e, tt.wantErr)
			}
			var status string
			var errCode int
			var loc string
			var outbox int
			h.query(t, `SELECT status, error_code, coalesce(error_location, ''), (SELECT count(*) FROM outbox) FROM messages`, nil, &status, &errCode, &loc, &outbox)
			if status != "rejected" || outbox != 0 {
				t.Errorf("status %q outbox rows %d, want rejected and no outbox row", status, outbox)
			}
			if errCode == 0 || !strings.HasPrefix(loc, tt.wantLoc) {
				t.Errorf("stored error %d at %q, want a code at %s", errCode, loc, tt.wantLoc)
			}
		})
	}
}

func TestInboundACKIsStoredNeverAnswered(t *testing.T) {
	t.Parallel()
	h := newHarness(t, ingest.Config{})
	resp := h.send(t, []byte("MSH|^~\\&|EHR|HOSP|AORTA|HOSP|20260101||ACK^R01^ACK|A1|P|2.5\rMSA|AA|C1\r"))
	if resp != nil {
		t.Fatalf("answered an ACK with %q; never an ACK to an ACK", resp)
	}
	var status string
	var outbox int
	h.query(t, `SELECT status, (SELECT count(*) FROM outbox) FROM messages`, nil, &status, &outbox)
	if status != "ignored" || outbox != 0 {
		t.Errorf("status %q outbox %d, want ignored and 0", status, outbox)
	}
}

func TestDuplicateGetsTheStoredACK(t *testing.T) {
	t.Parallel()
	h := newHarness(t, ingest.Config{})
	first := h.send(t, msg("D1", ""))
	again := h.send(t, msg("D1", ""))
	if !bytes.Equal(first, again) {
		t.Errorf("duplicate answered\n%q\nwant the stored ACK\n%q", again, first)
	}
	reuse := h.send(t, msg("D1", "|||||||")) // same control ID, other bytes
	if code, _, _ := ackOf(t, reuse); code != "AA" {
		t.Errorf("control-ID reuse answered %s, want AA", code)
	}
	var rows, outbox, dups, reused int
	h.query(t, `SELECT count(*), (SELECT count(*) FROM outbox), sum(duplicate_count), count(*) FILTER (WHERE control_id_reused) FROM messages`, nil,
		&rows, &outbox, &dups, &reused)
	if rows != 2 || outbox != 2 || dups != 1 || reused != 1 {
		t.Errorf("rows=%d outbox=%d duplicates=%d reused=%d, want 2 2 1 1", rows, outbox, dups, reused)
	}
}

func TestAckModes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		mode     ingest.AckMode
		msh1516  string // MSH-13..16 appended after MSH-12
		wantCode string // "" means no answer
	}{
		{"original", "", "", "AA"},
		{"enhanced AL/NE gives a commit ACK", "", "|||AL|NE", "CA"},
		{"enhanced NE/AL gives an application ACK", "", "|||NE|AL", "AA"},
		{"enhanced AL/AL gives one application ACK", "", "|||AL|AL", "AA"},
		{"enhanced NE/NE gives nothing", "", "|||NE|NE", ""},
		{"enhanced ER/ER on success gives nothing", "", "|||ER|ER", ""},
		{"enhanced SU/NE on success gives a commit ACK", "", "|||SU|NE", "CA"},
		{"forced original answers NE/NE", ingest.AckModeOriginal, "|||NE|NE", "AA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, ingest.Config{AckMode: tt.mode})
			resp := h.send(t, msg("E1", tt.msh1516))
			if tt.wantCode == "" {
				if resp != nil {
					t.Fatalf("answered %q, want no ACK", resp)
				}
				return
			}
			if resp == nil {
				t.Fatalf("no ACK, want %s", tt.wantCode)
			}
			if code, cid, _ := ackOf(t, resp); code != tt.wantCode || cid != "E1" {
				t.Errorf("MSA = %s/%s, want %s/E1", code, cid, tt.wantCode)
			}
		})
	}
}

func TestStoreFailureNeverAcknowledges(t *testing.T) {
	t.Parallel()
	// A port nobody listens on: every commit fails as the database being away.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "postgres://postgres@" + ln.Addr().String() + "/none?sslmode=disable&connect_timeout=1"
	ln.Close()
	for _, tt := range []struct {
		action   ingest.StoreFailureAction
		wantCode string
	}{{ingest.OnStoreFailureClose, ""}, {ingest.OnStoreFailureReject, "AR"}} {
		t.Run(string(tt.action), func(t *testing.T) {
			t.Parallel()
			st, err := store.Open(context.Background(), dead, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			in, err := ingest.New(st, ingest.Config{StoreRetryBudget: 300 * time.Millisecond, OnStoreFailure: tt.action})
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			start := time.Now()
			resp, err := in.ServeMLLP(context.Background(), conn, msg("F1", ""))
			if elapsed := time.Since(start); elapsed < 300*time.Millisecond {
				t.Errorf("gave up after %v, before the retry budget", elapsed)
			}
			if tt.wantCode == "" {
				if resp != nil || !errors.Is(err, ingest.ErrNotStored) {
					t.Fatalf("resp=%q err=%v, want no answer and ErrNotStored", resp, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			code, cid, ack := ackOf(t, resp)
			if e, _ := ack.Get("ERR-3.1"); code != tt.wantCode || cid != "F1" || e != "207" {
				t.Errorf("MSA %s/%s ERR %s, want AR/F1 with ERR 207", code, cid, e)
			}
		})
	}
}

// TestCorpus sends every third-party sample and checks the answer: the ACK
// code, MSA-2 against the control ID, and the stored row.
func TestCorpus(t *testing.T) {
	t.Parallel()
	for _, mode := range []ingest.AckMode{ingest.AckModeAuto, ingest.AckModeOriginal} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			for _, c := range testcorpus.Cases(t) {
				t.Run(c.File, func(t *testing.T) {
					t.Parallel()
					// A fresh database per file: several samples share control IDs.
					h := newHarness(t, ingest.Config{AckMode: mode})
					raw := testcorpus.Read(t, c.File)
					resp := h.send(t, raw)
					want, why := c.Want(mode == ingest.AckModeAuto)
					switch want {
					case "none":
						if resp != nil {
							t.Fatalf("answered %q, want nothing (%s)", resp, why)
						}
					case "batch":
						checkBatchAck(t, h, raw, resp, c, mode)
					default:
						code, cid, _ := ackOf(t, resp)
						if code != want {
							t.Errorf("MSA-1 = %s, want %s (%s)", code, want, why)
						}
						if cid != c.ControlID {
							t.Errorf("MSA-2 = %q, want %q", cid, c.ControlID)
						}
					}
					var stored []byte
					h.query(t, `SELECT coalesce((SELECT raw FROM batches), (SELECT raw FROM messages))`, nil, &stored)
					if !bytes.Equal(stored, raw) {
						t.Errorf("stored raw differs from the bytes sent")
					}
				})
			}
		})
	}
}

func checkBatchAck(t *testing.T, h *harness, raw, resp []byte, c testcorpus.Case, mode ingest.AckMode) {
	t.Helper()
	if resp == nil {
		t.Fatal("no batch acknowledgement")
	}
	b, err := hl7.SplitBatch(resp)
	if err != nil {
		t.Fatalf("batch ACK does not split: %v\n%q", err, resp)
	}
	in, err := hl7.SplitBatch(raw)
	if err != nil {
		t.Fatal(err)
	}
	wantIDs := strings.Split(c.ControlID, ";")
	if c.ControlID == "" {
		wantIDs = []string{""}
	}
	var msgs int
	h.query(t, `SELECT count(*) FROM messages`, nil, &msgs)
	if msgs != len(in.Messages) && c.File != "19_batch-two-bhs-dup-ids-pythonhl7.hl7" {
		t.Errorf("stored %d member messages, want %d", msgs, len(in.Messages))
	}
	acked := mode == ingest.AckModeOriginal || c.ExpectedACK == "AR"
	if !acked {
		if len(b.Messages) != 0 {
			t.Errorf("batch ACK holds %d ACKs, want none (members asked for none)", len(b.Messages))
		}
		return
	}
	if len(b.Messages) != len(wantIDs) {
		t.Fatalf("batch ACK holds %d ACKs, want %d", len(b.Messages), len(wantIDs))
	}
	for i, bm := range b.Messages {
		code, cid, _ := ackOf(t, bm.Raw)
		if code != c.ExpectedACK || cid != wantIDs[i] {
			t.Errorf("member %d: MSA %s/%s, want %s/%s", i, code, cid, c.ExpectedACK, wantIDs[i])
		}
	}
}
