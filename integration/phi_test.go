package integration

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/aortahealth/aorta/internal/pgtest"
)

// Promise 7 end to end: patient data sent over MLLP reaches the database
// (messages.raw) and nowhere else an operator reads without
// authentication, i.e. neither process's log at its production level
// (info) nor either /metrics body.

// phiMarkers are the unique strings the PHI fields of TestNoPHIInLogsOrMetrics
// carry. Every MRN starts with phiMRN, every value with phiValue, so a
// search for the marker finds any of them.
const (
	phiMRN      = "PHIMRN7731"
	phiName     = "PHINAME"
	phiGiven    = "PHIGIVEN"
	phiAddr     = "PHIADDR"
	phiCity     = "PHICITY"
	phiPhone    = "5550199731"
	phiBirth    = "19470323"
	phiVisit    = "PHIVISIT"
	phiKin      = "PHIKIN"
	phiNote     = "PHINOTE"
	phiValue    = "PHIVALUE"
	phiFacility = "GENHOSP" // not a marker: the facility is no patient data
)

var phiMarkers = []string{phiMRN, phiName, phiGiven, phiAddr, phiCity, phiPhone, phiBirth, phiVisit, phiKin, phiNote, phiValue}

// phiPID is a PID segment full of markers: MRN (PID-3), name (PID-5),
// birth date (PID-7), address (PID-11), phone (PID-13).
func phiPID(mrn string) string {
	return "PID|1||" + mrn + "^^^" + phiFacility + "^MR||" + phiName + "^" + phiGiven + "||" + phiBirth +
		"|F|||12 " + phiAddr + " STREET^^" + phiCity + "^^SW1A 1AA||" + phiPhone
}

// TestNoPHIInLogsOrMetrics runs the listener and the router at info level
// with the shipped routes.yaml and sends messages whose PHI fields carry
// marker strings, along every path that writes a log line or moves a
// metric: admissions, a nursing set that raises a NEWS2 alert delivered to
// the log destination, a lab result dead-lettered for text where a number
// belongs, a nursing set with an unreadable value skipped with a warning,
// messages the listener rejects, and a duplicate. No marker may appear in
// either log or either /metrics body, while the markers are in
// messages.raw and the log really holds the alert line.
func TestNoPHIInLogsOrMetrics(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL, "--log-level", "info")
	r := startRouter(t, dbURL, shippedRoutes(t), "--log-level", "info")

	when := at("1000")
	adtA01 := hl7Msg(
		"MSH|^~\\&|PAS|"+phiFacility+"|AORTA|AORTA|"+when+"||ADT^A01^ADT_A01|PH-ADT-1|P|2.5.1",
		"EVN|A01|"+when,
		phiPID(phiMRN+"A"),
		withField("PV1|1|I|WARD7^BAY1^BED1^"+phiFacility, 19, phiVisit+"1^^^"+phiFacility+"^VN"),
		"NK1|1|"+phiKin+"^"+phiGiven+"KIN|SPO^Spouse^HL70063|7 "+phiAddr+" ROAD^^"+phiCity+"||"+phiPhone)
	adtA08 := hl7Msg(
		"MSH|^~\\&|PAS|"+phiFacility+"|AORTA|AORTA|"+at("1005")+"||ADT^A08^ADT_A01|PH-ADT-2|P|2.5.1",
		"EVN|A08|"+at("1005"),
		phiPID(phiMRN+"A"),
		withField("PV1|1|I|WARD8^BAY2^BED3^"+phiFacility, 19, phiVisit+"1^^^"+phiFacility+"^VN"),
		"NK1|1|"+phiKin+"^"+phiGiven+"KIN|SPO^Spouse^HL70063")
	// NEWS2 7 (setEmergency): the news2 rule raises an emergency alert,
	// delivered to the database and log destinations.
	vitalsSegs := append([]string{
		"MSH|^~\\&|EOBS|WARD7|AORTA|AORTA|" + when + "||ORU^R01^ORU_R01|PH-ORU-1|P|2.5.1",
		phiPID(phiMRN + "B"),
		withField("PV1|1|I|WARD7^BAY1^BED2^"+phiFacility, 19, phiVisit+"2^^^"+phiFacility+"^VN"),
		"OBR|1||PH-ORU-1^EOBS|NEWS2^NEWS2 observation set^L|||" + when,
	}, vitalOBX(when, "F", setEmergency)...)
	vitalsMsg := hl7Msg(append(vitalsSegs, "NTE|1||"+phiNote+" patient says her neighbour "+phiName+" visited")...)
	// Text where lab-results expects a number: dead-lettered
	// (on_invalid: dead_letter).
	labMsg := hl7Msg(
		"MSH|^~\\&|LIMS|PATHLAB|AORTA|AORTA|"+when+"||ORU^R01^ORU_R01|PH-LAB-1|P|2.5.1",
		phiPID(phiMRN+"C"),
		"OBR|1||PH-LAB-1^LIMS|2524-7^Lactate^LN|||"+when,
		"OBX|1|NM|2524-7^Lactate^LN||"+phiValue+"LAB|mmol/L|0.5-2.2||||F|||"+when,
		"NTE|1||"+phiNote+"LAB")
	// An unreadable heart rate in a nursing set: skipped with a warning
	// (on_invalid: skip), the other vital signs recorded.
	badHR := setWell
	badHR.hr = phiValue + "HR"
	skipSegs := append([]string{
		"MSH|^~\\&|EOBS|WARD7|AORTA|AORTA|" + when + "||ORU^R01^ORU_R01|PH-ORU-2|P|2.5.1",
		phiPID(phiMRN + "D"),
		"PV1|1|I|WARD7^BAY1^BED4^" + phiFacility,
		"OBR|1||PH-ORU-2^EOBS|NEWS2^NEWS2 observation set^L|||" + when,
	}, vitalOBX(when, "F", badHR)...)
	skipMsg := hl7Msg(skipSegs...)

	// What the listener rejects (AR), each with markers in its PID.
	rejects := []struct {
		name, cid string // cid: MSA-2 expected
		raw       []byte
	}{
		{"MSH-12 not a v2 version", "PH-REJ-1", hl7Msg(
			"MSH|^~\\&|PAS|"+phiFacility+"|AORTA|AORTA|"+when+"||ADT^A01^ADT_A01|PH-REJ-1|P|3.0",
			"EVN|A01|"+when, phiPID(phiMRN+"E"), withField("PV1|1|I|WARD7", 19, phiVisit+"3"))},
		{"MSH-10 missing", "", hl7Msg(
			"MSH|^~\\&|PAS|"+phiFacility+"|AORTA|AORTA|"+when+"||ADT^A01^ADT_A01||P|2.5.1",
			"EVN|A01|"+when, phiPID(phiMRN+"F"))},
		{"no MSH", "", hl7Msg(phiPID(phiMRN+"G"), "NTE|1||"+phiNote+"REJ")},
	}

	accepted := [][]byte{adtA01, adtA08, vitalsMsg, labMsg, skipMsg}
	sendAA(t, l.MLLPAddr, accepted...)
	for _, rj := range rejects {
		ack := send(t, l.MLLPAddr, rj.raw)
		if code, msa2 := msaOf(ack); code != "AR" || msa2 != rj.cid {
			t.Errorf("%s: answered %s/%s, want AR/%s", rj.name, code, msa2, rj.cid)
		}
		if bytes.Contains(ack, []byte(phiMRN)) || bytes.Contains(ack, []byte(phiName)) {
			t.Errorf("%s: the ACK echoes patient data: %q", rj.name, ack)
		}
	}
	// A byte-identical resend (the sender timed out): answered with the
	// stored ACK, stored once.
	sendAA(t, l.MLLPAddr, adtA01)

	waitDrained(t, db, drainTimeout)
	waitDelivered(t, db, "log", 1)

	// The paths really ran.
	for cid, want := range map[string]string{"PH-ADT-1": "routed", "PH-ADT-2": "routed", "PH-ORU-1": "routed", "PH-LAB-1": "dead_lettered", "PH-ORU-2": "routed"} {
		if got := routingOf(t, db, cid); got.Status != want {
			t.Errorf("%s: routing %+v, want %s", cid, got, want)
		}
	}
	if w := routingOf(t, db, "PH-ORU-2").Warnings; w < 1 {
		t.Errorf("PH-ORU-2: %d warnings, want the skipped heart rate", w)
	}
	if n := count(t, db, `SELECT count(*) FROM alerts WHERE patient_key = $1 AND severity = 'emergency'`, phiFacility+"/"+phiMRN+"B"); n != 1 {
		t.Errorf("%d emergency alerts for the NEWS2 7 patient, want 1", n)
	}
	if n := count(t, db, `SELECT count(*) FROM messages WHERE status = 'rejected'`); n != len(rejects) {
		t.Errorf("%d rejected messages stored, want %d", n, len(rejects))
	}
	if n := count(t, db, `SELECT coalesce(sum(duplicate_count), 0) FROM messages WHERE control_id = 'PH-ADT-1'`); n != 1 {
		t.Errorf("PH-ADT-1 duplicate_count %d, want 1 (the resend)", n)
	}
	// The markers really are in the database, so their absence below
	// means something.
	for _, m := range phiMarkers {
		if n := count(t, db, `SELECT count(*) FROM messages WHERE position(convert_to($1, 'UTF8') in raw) > 0`, m); n == 0 {
			t.Errorf("marker %q is in no messages.raw: the test sent no such data", m)
		}
	}
	// The reasons an analyst reads (dead letter, warning) name the field
	// and the rule, not the value.
	var deadReason, warnings string
	queryRow(t, db, `SELECT coalesce(r.error, '') FROM message_routing r JOIN messages m ON m.id = r.message_id
		WHERE m.control_id = 'PH-LAB-1'`, nil, &deadReason)
	queryRow(t, db, `SELECT r.warnings::text FROM message_routing r JOIN messages m ON m.id = r.message_id
		WHERE m.control_id = 'PH-ORU-2'`, nil, &warnings)
	for _, s := range []string{deadReason, warnings} {
		if strings.Contains(s, phiValue) {
			t.Errorf("a routing reason echoes the value: %s", s)
		}
	}

	// Non-vacuous logs: logging works at info, and the alert, the dead
	// letter and the rejects went through it.
	if recs := r.log.records("alert"); len(recs) != 1 {
		t.Errorf("router log has %d \"alert\" lines, want 1 (the log destination)", len(recs))
	}
	if recs := r.log.records("message dead-lettered"); len(recs) != 1 || recs[0]["route"] != "lab-results" {
		t.Errorf("router log has \"message dead-lettered\" lines %v, want 1 for route lab-results", recs)
	}
	if recs := l.log.records("message rejected"); len(recs) != len(rejects) {
		t.Errorf("listener log has %d \"message rejected\" lines, want %d", len(recs), len(rejects))
	}
	lm, rm := scrape(t, l.HTTPAddr), scrape(t, r.HTTPAddr)
	if got := lm.sum("aorta_messages_rejected_total"); got != float64(len(rejects)) {
		t.Errorf("aorta_messages_rejected_total = %v, want %d", got, len(rejects))
	}
	if got := lm.sum("aorta_messages_duplicate_total"); got != 1 {
		t.Errorf("aorta_messages_duplicate_total = %v, want 1", got)
	}
	if got := rm[`aorta_router_messages_total{status="dead_lettered"}`]; got != 1 {
		t.Errorf(`aorta_router_messages_total{status="dead_lettered"} = %v, want 1`, got)
	}

	// No marker in either log, at any level printed.
	checkNoPHI(t, "listener", l.log, phiMarkers...)
	checkNoPHI(t, "router", r.log, phiMarkers...)
	// No marker in either /metrics body (names, labels, help text).
	for _, p := range []struct {
		who, addr string
	}{{"listener", l.HTTPAddr}, {"router", r.HTTPAddr}} {
		code, body, err := httpGet(p.addr, "/metrics")
		if err != nil || code != http.StatusOK {
			t.Fatalf("%s GET /metrics: %d %v", p.who, code, err)
		}
		for _, m := range phiMarkers {
			if i := strings.Index(body, m); i >= 0 {
				line := body[strings.LastIndexByte(body[:i], '\n')+1:]
				if j := strings.IndexByte(line, '\n'); j >= 0 {
					line = line[:j]
				}
				t.Errorf("%s /metrics holds patient data %q: %s", p.who, m, line)
			}
		}
	}
	t.Logf("sent %d accepted messages (ADT A01, A08, NEWS2 7 set, lab text value, nursing set with an unreadable value), %d rejected, 1 duplicate; "+
		"checked %d markers against %d listener and %d router log lines and both /metrics bodies",
		len(accepted), len(rejects), len(phiMarkers), l.log.len(), r.log.len())
}

// len is the number of lines the process has written so far.
func (p *procLog) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}
