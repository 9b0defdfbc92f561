package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/hl7"
	"github.com/aortahealth/aorta/pkg/mllp"
)

// The tests in this file send what a listener must take: many messages
// at once, duplicates, malformed messages, every terminator and character
// set, batches and large documents.

// TestConcurrentSenders: many senders at once share group commits, and
// still every message gets its own AA (with its own ACK control ID) only
// after its own row committed: one row per message, byte for byte, each
// with one outbox row.
func TestConcurrentSenders(t *testing.T) {
	t.Parallel()
	const senders, perSender = 32, 40
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)

	type failure struct {
		cid string
		err string
	}
	var mu sync.Mutex
	var failures []failure
	fail := func(cid, format string, args ...any) {
		mu.Lock()
		failures = append(failures, failure{cid, fmt.Sprintf(format, args...)})
		mu.Unlock()
	}
	var acks ackLog
	start := time.Now()
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c, err := mllp.Dial(ctx, l.MLLPAddr)
			if err != nil {
				fail(controlID(s, 0), "dial: %v", err)
				return
			}
			defer c.Close()
			for n := range perSender {
				cid := controlID(s, n)
				sctx, scancel := context.WithTimeout(ctx, ioTimeout)
				ack, err := c.Send(sctx, testMessage(s, n))
				scancel()
				if err != nil {
					fail(cid, "send: %v", err)
					return
				}
				if code, msa2 := msaOf(ack); code != "AA" || msa2 != cid {
					fail(cid, "MSA %s/%s, want AA/%s", code, msa2, cid)
				}
				acks.add(cid, ack)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	ackIDs := map[string]string{}
	for _, r := range acks.all() {
		if other, dup := ackIDs[r.ackID]; dup {
			fail(r.cid, "ACK MSH-10 %q already used for the ACK of %s: ACK control IDs must be unique", r.ackID, other)
		}
		ackIDs[r.ackID] = r.cid
	}
	for _, f := range failures {
		t.Errorf("%s: %s", f.cid, f.err)
	}
	if t.Failed() {
		t.FailNow()
	}

	stored := storedByControlID(t, db)
	for s := range senders {
		for n := range perSender {
			cid := controlID(s, n)
			rows := stored[cid]
			if len(rows) != 1 {
				t.Errorf("%s: %d rows, want 1", cid, len(rows))
				continue
			}
			if !bytes.Equal(rows[0].Raw, testMessage(s, n)) {
				t.Errorf("%s: stored raw differs from the bytes sent", cid)
			}
			if rows[0].Outbox != 1 || rows[0].Status != "accepted" {
				t.Errorf("%s: status %q with %d outbox rows, want accepted with 1", cid, rows[0].Status, rows[0].Outbox)
			}
		}
	}
	if got, want := count(t, db, `SELECT count(*) FROM messages`), senders*perSender; got != want {
		t.Errorf("messages has %d rows, want %d", got, want)
	}
	if got, want := count(t, db, `SELECT count(*) FROM outbox`), senders*perSender; got != want {
		t.Errorf("outbox has %d rows, want %d", got, want)
	}
	m := scrape(t, l.HTTPAddr)
	t.Logf("%d messages from %d connections in %v; %v transactions (group commit)",
		senders*perSender, senders, elapsed.Round(time.Millisecond), m.sum("aorta_commit_group_frames_count"))
}

// ackLog collects the ACK control IDs (MSH-10) the senders received.
type ackLog struct {
	mu   sync.Mutex
	recs []ackRec
}

type ackRec struct{ cid, ackID string }

func (a *ackLog) add(cid string, ack []byte) {
	m, err := hl7.Parse(ack)
	id := ""
	if err == nil {
		id, _ = m.Get("MSH-10")
	}
	a.mu.Lock()
	a.recs = append(a.recs, ackRec{cid, id})
	a.mu.Unlock()
}

func (a *ackLog) all() []ackRec {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]ackRec(nil), a.recs...)
}

// TestDuplicates: a re-send of the same bytes (a sender that timed out
// waiting for our ACK) gets the stored ACK byte for byte and is not stored
// again; the same control ID with other bytes is stored and flagged.
func TestDuplicates(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)

	frame := testMessage(1, 1)
	cid := controlID(1, 1)
	first := send(t, l.MLLPAddr, frame)
	again := send(t, l.MLLPAddr, frame) // a new connection, as after a timeout
	if code, msa2 := msaOf(first); code != "AA" || msa2 != cid {
		t.Fatalf("first ACK MSA %s/%s, want AA/%s", code, msa2, cid)
	}
	if !bytes.Equal(first, again) {
		t.Errorf("re-send answered\n%q\nwant the stored ACK\n%q", again, first)
	}
	rows := storedByControlID(t, db)[cid]
	if len(rows) != 1 || rows[0].DuplicateCount != 1 || rows[0].Outbox != 1 || !bytes.Equal(rows[0].Ack, first) {
		t.Fatalf("after a re-send: %d rows, want 1 with duplicate_count 1, one outbox row and the ACK sent: %+v", len(rows), rows)
	}

	// Same sender and control ID, different bytes: a sender that reuses
	// IDs (or a corrected message). Stored, never taken for a duplicate.
	other := append(bytes.Clone(frame), "NTE|1||corrected\r"...)
	reuse := send(t, l.MLLPAddr, other)
	if code, msa2 := msaOf(reuse); code != "AA" || msa2 != cid {
		t.Errorf("control ID reused: MSA %s/%s, want AA/%s", code, msa2, cid)
	}
	if bytes.Equal(reuse, first) {
		t.Errorf("control ID reused with other bytes got the first message's stored ACK")
	}
	rows = storedByControlID(t, db)[cid]
	if len(rows) != 2 {
		t.Fatalf("%d rows with control ID %s, want 2", len(rows), cid)
	}
	for i, r := range rows {
		wantRaw, wantReused := frame, false
		if i == 1 {
			wantRaw, wantReused = other, true
		}
		if !bytes.Equal(r.Raw, wantRaw) || r.Reused != wantReused || r.Outbox != 1 {
			t.Errorf("row %d: raw equal=%v control_id_reused=%v outbox=%d, want true %v 1", i, bytes.Equal(r.Raw, wantRaw), r.Reused, r.Outbox, wantReused)
		}
	}
	m := scrape(t, l.HTTPAddr)
	if got := m.sum("aorta_messages_duplicate_total"); got != 1 {
		t.Errorf("aorta_messages_duplicate_total = %v, want 1", got)
	}
	if got := m.sum("aorta_control_id_reuse_total"); got != 1 {
		t.Errorf("aorta_control_id_reuse_total = %v, want 1", got)
	}
}

// TestMalformed: what cannot be accepted is still stored, answered AR
// with an ERR segment, and never queued for the router.
func TestMalformed(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)

	tests := []struct {
		name     string
		frame    string
		wantMSA2 string // MSA-2: the control ID when it can be found
		wantErr  string // ERR-3.1, HL7 table 0357
	}{
		{"no MSH", "PID|1||MRN1^^^HOSP^MR||DOE^JANE\rOBX|1|NM|8867-4^Heart rate^LN||88|/min|||||F\r", "", "100"},
		{"truncated MSH", "MSH|^~\\&|LAB", "", "101"},
		{"truncated MSH after control ID", "MSH|^~\\&|LAB|HOSP|AORTA|HOSP|20261126120000||ORU^R01|TRUNC-1", "TRUNC-1", "101"},
		{"MSH-2 repeats a delimiter", "MSH|^^\\&|LAB|HOSP|AORTA|HOSP|20261126120000||ADT^A01|BADENC-1|P|2.5\rPID|1||MRN1\r", "BADENC-1", "102"},
		{"MSH-2 not ASCII", "MSH|^\xc3\xa9\\&|LAB|HOSP|AORTA|HOSP|20261126120000||ADT^A01|BADENC-2|P|2.5\rPID|1||MRN1\r", "BADENC-2", "102"},
		{"MSH-2 missing", "MSH||LAB|HOSP|AORTA|HOSP|20261126120000||ADT^A01|BADENC-3|P|2.5\r", "BADENC-3", "101"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ack := send(t, l.MLLPAddr, []byte(tt.frame))
			code, msa2 := msaOf(ack)
			if code != "AR" || msa2 != tt.wantMSA2 {
				t.Errorf("MSA %s/%s, want AR/%s\nACK %q", code, msa2, tt.wantMSA2, ack)
			}
			m, err := hl7.Parse(ack)
			if err != nil {
				t.Fatalf("ACK does not parse: %v", err)
			}
			if m.Segment("ERR", 1) == nil {
				t.Fatalf("AR without an ERR segment: %q", ack)
			}
			if got := errCodeOf(ack); got != tt.wantErr {
				t.Errorf("ERR-3.1 = %q, want %s", got, tt.wantErr)
			}
			row := waitForRaw(t, db, []byte(tt.frame))
			if row.Status != "rejected" || row.AckCode != "AR" || row.Outbox != 0 {
				t.Errorf("stored status %q ack_code %q with %d outbox rows, want rejected, AR, none", row.Status, row.AckCode, row.Outbox)
			}
			if want := errCodeOf(ack); fmt.Sprint(row.ErrorCode) != want {
				t.Errorf("stored error_code %d, want the ERR-3.1 sent (%s)", row.ErrorCode, want)
			}
			if !bytes.Equal(row.Ack, ack) {
				t.Errorf("stored ack differs from the ACK sent")
			}
		})
	}
	if n := count(t, db, `SELECT count(*) FROM outbox`); n != 0 {
		t.Errorf("outbox has %d rows, want none for rejected messages", n)
	}
}

// TestTerminatorsAndCharsets: LF and CRLF segment terminators, UTF-8 and
// ISO 8859-1 text, and bytes a database text column cannot hold are all
// accepted, stored byte for byte, and decoded correctly into the header
// columns; the ACK echoes the sender's facility in the sender's own
// encoding.
func TestTerminatorsAndCharsets(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)

	// latin1 re-encodes an ASCII-or-Latin-1 string as ISO 8859-1 bytes.
	latin1 := func(s string) string {
		var b []byte
		for _, r := range s {
			if r > 0xff {
				t.Fatalf("%q is not Latin-1", s)
			}
			b = append(b, byte(r))
		}
		return string(b)
	}
	msg := func(cid, facility, charset, name, eol string) []byte {
		return []byte(strings.Join([]string{
			"MSH|^~\\&|ADT|" + facility + "|AORTA|HOSP|20261126120000||ADT^A01^ADT_A01|" + cid + "|P|2.5.1||||||" + charset,
			"EVN|A01|20261126120000",
			"PID|1||MRN5^^^HOSP^MR||" + name + "||19800215|F",
			"PV1|1|I|WARD1^1^A",
		}, eol) + eol)
	}
	tests := []struct {
		name         string
		frame        []byte
		facility     []byte // MSH-4 as sent
		wantFacility string // the sending_facility column, UTF-8
		wantCharset  string
	}{
		{"CR", msg("EOL-CR", "HOSP", "", "DOE^JANE", "\r"), []byte("HOSP"), "HOSP", ""},
		{"LF only", msg("EOL-LF", "HOSP", "", "DOE^JANE", "\n"), []byte("HOSP"), "HOSP", ""},
		{"CRLF", msg("EOL-CRLF", "HOSP", "", "DOE^JANE", "\r\n"), []byte("HOSP"), "HOSP", ""},
		{"UTF-8", msg("CS-UTF8", "Clínica", "UNICODE UTF-8", "Müller^Zoë", "\r"), []byte("Clínica"), "Clínica", "UNICODE UTF-8"},
		{"8859/1", msg("CS-LATIN1", latin1("Clínica"), "8859/1", latin1("Müller^Zoë"), "\r"), []byte(latin1("Clínica")), "Clínica", "8859/1"},
		// Raw is kept whatever the bytes; only the decoded columns are
		// made storable (text columns cannot hold NUL or invalid UTF-8).
		{"invalid UTF-8", msg("CS-BADUTF8", latin1("Clínica"), "UNICODE UTF-8", latin1("Müller^Zoë"), "\r"), []byte(latin1("Clínica")), "Cl\uFFFDnica", "UNICODE UTF-8"},
		{"NUL byte", msg("CS-NUL", "HO\x00SP", "", "DOE^JANE", "\r"), []byte("HO\x00SP"), "HOSP", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cid, _ := hl7.ParseHeader(tt.frame)
			ack := send(t, l.MLLPAddr, tt.frame)
			if code, msa2 := msaOf(ack); code != "AA" || msa2 != cid.ControlID {
				t.Errorf("MSA %s/%s, want AA/%s\nACK %q", code, msa2, cid.ControlID, ack)
			}
			// The ACK's MSH-6 (receiving facility) is our MSH-4, echoed
			// in the sender's encoding.
			if fields := bytes.Split(bytes.SplitN(ack, []byte("\r"), 2)[0], []byte("|")); len(fields) < 6 || !bytes.Equal(fields[5], tt.facility) {
				t.Errorf("ACK MSH: %q, want MSH-6 %q", bytes.SplitN(ack, []byte("\r"), 2)[0], tt.facility)
			}
			var raw []byte
			var facility, charset string
			queryRow(t, db, `SELECT raw, sending_facility, character_set FROM messages WHERE control_id = $1`, []any{cid.ControlID}, &raw, &facility, &charset)
			if !bytes.Equal(raw, tt.frame) {
				t.Errorf("stored raw %q, want the bytes sent %q", raw, tt.frame)
			}
			if facility != tt.wantFacility || charset != tt.wantCharset {
				t.Errorf("sending_facility %q character_set %q, want %q %q", facility, charset, tt.wantFacility, tt.wantCharset)
			}
		})
	}
}

// TestBatch: a batch file in one frame gets one batch acknowledgement
// holding an ACK per message, and is stored as a batches row with the
// exact frame and one messages row per member.
func TestBatch(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)

	frame, err := os.ReadFile(filepath.Join("testdata", "batch_three_oru.hl7"))
	if err != nil {
		t.Fatal(err)
	}
	in, err := hl7.SplitBatch(frame)
	if err != nil || len(in.Messages) != 3 {
		t.Fatalf("testdata batch: %v, %d messages", err, len(in.Messages))
	}
	wantIDs := []string{"B1-MSG-1", "B1-MSG-2", "B1-MSG-3"}

	resp := send(t, l.MLLPAddr, frame)
	out, err := hl7.SplitBatch(resp)
	if err != nil {
		t.Fatalf("batch acknowledgement does not split: %v\n%q", err, resp)
	}
	if out.FileHeader == nil || len(out.Sections) != 1 || out.FileTrailer == nil || out.Sections[0].Trailer == nil {
		t.Errorf("batch acknowledgement envelope: want FHS, BHS, BTS, FTS: %q", resp)
	}
	if out.FileHeader != nil && out.FileHeader.ReferenceControlID != "FILE-0001" {
		t.Errorf("FHS-12 = %q, want the inbound FHS-11 FILE-0001", out.FileHeader.ReferenceControlID)
	}
	if len(out.Messages) != len(wantIDs) {
		t.Fatalf("batch acknowledgement holds %d messages, want %d:\n%q", len(out.Messages), len(wantIDs), resp)
	}
	for i, m := range out.Messages {
		if code, msa2 := msaOf(m.Raw); code != "AA" || msa2 != wantIDs[i] {
			t.Errorf("ACK %d: MSA %s/%s, want AA/%s", i, code, msa2, wantIDs[i])
		}
	}

	var batchRaw []byte
	var header, batchCID string
	var msgCount int
	queryRow(t, db, `SELECT raw, header_type, control_id, message_count FROM batches`, nil, &batchRaw, &header, &batchCID, &msgCount)
	if !bytes.Equal(batchRaw, frame) {
		t.Errorf("batches.raw differs from the frame sent")
	}
	if header != "FHS" || batchCID != "FILE-0001" || msgCount != 3 {
		t.Errorf("batches row: %s %q %d, want FHS FILE-0001 3", header, batchCID, msgCount)
	}
	rows, err := db.Query(context.Background(), `SELECT m.control_id, m.batch_index, m.raw, (SELECT count(*) FROM outbox o WHERE o.message_id = m.id)
		FROM messages m JOIN batches b ON b.id = m.batch_id ORDER BY m.batch_index`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		var cid string
		var index, outbox int
		var raw []byte
		if err := rows.Scan(&cid, &index, &raw, &outbox); err != nil {
			t.Fatal(err)
		}
		if i >= 3 || cid != wantIDs[i] || index != i || !bytes.Equal(raw, in.Messages[i].Raw) || outbox != 1 {
			t.Errorf("member row %d: %s index %d raw equal=%v outbox %d", i, cid, index, i < 3 && bytes.Equal(raw, in.Messages[i].Raw), outbox)
		}
		i++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if i != 3 {
		t.Errorf("%d messages rows reference the batch, want 3", i)
	}
	if n := count(t, db, `SELECT count(*) FROM messages`); n != 3 {
		t.Errorf("messages has %d rows, want 3", n)
	}
}

// pdfMessage returns an ORU^R01 carrying a document of about size bytes
// base64-encoded in OBX-5 (data type ED), as report feeds do.
func pdfMessage(cid string, size int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	body := make([]byte, size*3/4)
	for i := range body {
		body[i] = byte(rng.Uint32())
	}
	pdf := append([]byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /XObject /Length "+fmt.Sprint(len(body))+" >>\nstream\n"), body...)
	pdf = append(pdf, "\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"...)
	return []byte("MSH|^~\\&|REPORTS|HOSP|AORTA|HOSP|20261126120000||ORU^R01^ORU_R01|" + cid + "|P|2.5.1\r" +
		"PID|1||MRN7^^^HOSP^MR||DOE^JANE||19800215|F\r" +
		"OBR|1||R1|11502-2^Laboratory report^LN\r" +
		"OBX|1|ED|11502-2^Laboratory report^LN||^AP^PDF^Base64^" + base64.StdEncoding.EncodeToString(pdf) + "||||||F\r")
}

// TestLargeFrame: a 1 MiB message (an embedded PDF) with the default frame
// limit is accepted and stored byte for byte.
func TestLargeFrame(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)

	frame := pdfMessage("PDF-1", 1<<20)
	ack := send(t, l.MLLPAddr, frame)
	if code, msa2 := msaOf(ack); code != "AA" || msa2 != "PDF-1" {
		t.Fatalf("MSA %s/%s, want AA/PDF-1", code, msa2)
	}
	rows := storedByControlID(t, db)["PDF-1"]
	if len(rows) != 1 || !bytes.Equal(rows[0].Raw, frame) {
		t.Fatalf("%d rows; want one holding the %d bytes sent", len(rows), len(frame))
	}
	t.Logf("%d-byte frame stored byte for byte", len(frame))
}
