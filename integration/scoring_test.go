package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/aortahealth/aorta/internal/pgtest"
)

// End-to-end scoring: ORU^R01 vital signs sent over MLLP to the real
// listener, scored by the real router with the shipped routes.yaml, and the
// score.calculated and score.skipped events, scores rows and patient facts
// it writes. The alerts those scores raise, and their delivery (NOTIFY,
// webhooks), are in alerts_test.go.

// scoringDay is the clinical day of these tests; times carry an offset so
// that no route time zone applies.
const scoringDay = "20260312"

// at is an HL7 time on scoringDay: at("1000") is 10:00 UTC.
func at(hhmm string) string { return scoringDay + hhmm + "00+0000" }

// clinicalTime parses an at() time.
func clinicalTime(t *testing.T, hhmm string) time.Time {
	t.Helper()
	tm, err := time.Parse("200601021504", scoringDay+hhmm)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// news2Params are the parameters NEWS2 reads: the seven components, with
// air or oxygen derived from on_oxygen, o2_flow or fio2.
var news2Params = map[string]bool{
	"respiratory_rate": true, "spo2": true, "on_oxygen": true, "o2_flow": true, "fio2": true,
	"sbp": true, "heart_rate": true, "consciousness": true, "temperature": true,
}

// vitals is a nursing NEWS2 set; an empty value is not charted.
type vitals struct {
	rr, spo2, o2flow, sbp, hr, acvpu, temp string
}

// Nursing sets with known scores (RCP 2017 chart 1).
var (
	// NEWS2 0, low; qSOFA 0.
	setWell = vitals{rr: "16", spo2: "97", o2flow: "0", sbp: "125", hr: "75", acvpu: "A", temp: "37.0"}
	// NEWS2 5 (rr 2, spo2 1, sbp 1, hr 1), medium; qSOFA 1 (rr >= 22).
	setUrgent = vitals{rr: "22", spo2: "95", o2flow: "0", sbp: "105", hr: "95", acvpu: "A", temp: "37.0"}
	// NEWS2 6 (setUrgent with hr 115: 2), medium; qSOFA 1.
	setUrgent6 = vitals{rr: "22", spo2: "95", o2flow: "0", sbp: "105", hr: "115", acvpu: "A", temp: "37.0"}
	// NEWS2 7 (rr 3, spo2 2, sbp 1, hr 1), high; qSOFA 1.
	setEmergency = vitals{rr: "25", spo2: "93", o2flow: "0", sbp: "105", hr: "95", acvpu: "A", temp: "37.0"}
	// NEWS2 8 (rr 3, spo2 3, sbp 1, hr 1), high; qSOFA 1.
	setWorse = vitals{rr: "26", spo2: "91", o2flow: "0", sbp: "105", hr: "95", acvpu: "A", temp: "37.0"}
	// NEWS2 3 from consciousness alone (a single red score), low-medium;
	// qSOFA 1 (mentation).
	setSingle3 = vitals{rr: "16", spo2: "97", o2flow: "0", sbp: "125", hr: "75", acvpu: "V", temp: "37.0"}
	// NEWS2 4 (rr 2, sbp 2), low, no single 3; qSOFA 2 (rr >= 22, sbp <= 100): positive.
	setSepsis = vitals{rr: "24", spo2: "96", o2flow: "0", sbp: "98", hr: "88", acvpu: "A", temp: "37.0"}
)

// acvpuSNOMED codes the ACVPU letters as nursing systems send them (CWE).
var acvpuSNOMED = map[string]string{
	"A": "248234008^Mentally alert^SCT", "C": "130987000^Acute confusion^SCT", "V": "255373000^Responds to voice^SCT",
	"P": "450847001^Responds to pain^SCT", "U": "422768004^Unresponsive^SCT",
}

// vitalOBX returns the OBX segments of a set observed at when, with
// result status status, numbered from 1.
func vitalOBX(when, status string, v vitals) []string {
	var segs []string
	add := func(typ, code, value, unit string) {
		if value == "" {
			return
		}
		segs = append(segs, fmt.Sprintf("OBX|%d|%s|%s||%s|%s|||||%s|||%s", len(segs)+1, typ, code, value, unit, status, when))
	}
	add("NM", "9279-1^Respiratory rate^LN", v.rr, "/min")
	add("NM", "2708-6^Oxygen saturation^LN", v.spo2, "%")
	add("NM", "3151-8^Inhaled oxygen flow rate^LN", v.o2flow, "L/min")
	add("NM", "8480-6^Systolic blood pressure^LN", v.sbp, "mm[Hg]")
	if v.sbp != "" {
		add("NM", "8462-4^Diastolic blood pressure^LN", "70", "mm[Hg]") // charted with it; NEWS2 does not read it
	}
	add("NM", "8867-4^Heart rate^LN", v.hr, "/min")
	if v.acvpu != "" {
		add("CWE", "67775-7^Level of consciousness^LN", acvpuSNOMED[v.acvpu], "")
	}
	add("NM", "8310-5^Body temperature^LN", v.temp, "Cel")
	return segs
}

// nursingMsg is a nursing observation set (route nursing-vitals) for
// patient GENHOSP/mrn born on birth (PID-7, may be empty), in order filler,
// with the given OBX segments.
func nursingMsg(cid, mrn, birth, when, filler string, obx ...string) []byte {
	segs := []string{
		"MSH|^~\\&|EOBS|WARD7|AORTA|AORTA|" + when + "||ORU^R01^ORU_R01|" + cid + "|P|2.5.1",
		"PID|1||" + mrn + "^^^GENHOSP^MR||SCORETEST^PATIENT||" + birth + "|F",
		"PV1|1|I|WARD7^BAY1^BED1^GENHOSP",
		"OBR|1||" + filler + "^EOBS|NEWS2^NEWS2 observation set^L|||" + when,
	}
	return hl7Msg(append(segs, obx...)...)
}

// nursingSet is a final (F) nursing set of its own order (filler = cid),
// for an adult born in 1960.
func nursingSet(cid, mrn, hhmm string, v vitals) []byte {
	return nursingMsg(cid, mrn, "19600101", at(hhmm), cid, vitalOBX(at(hhmm), "F", v)...)
}

// monitorVitals is what a bedside monitor reports; temperature in °F.
type monitorVitals struct {
	rr, spo2, fio2, sbp, hr, tempF string
}

// monitorSet is an IHE PCD-01 ORU^R01 (route device-vitals) from a
// multi-parameter monitor: MDS, VMD and channel rows with OBX-11 = X,
// metrics with OBX-11 = R and no OBX-14 (they take the MDS row's time),
// units as MDC codes. A second SpO2 metric carries OBX-11 = X (an invalid
// value, 80 %): it must never be scored.
func monitorSet(cid, mrn, hhmm string, m monitorVitals) []byte {
	when := at(hhmm)
	return hl7Msg(
		"MSH|^~\\&|GATEWAY^0011223344556677^EUI-64|ICU|AORTA|AORTA|"+when+"||ORU^R01^ORU_R01|"+cid+"|P|2.6",
		"PID|||"+mrn+"^^^GENHOSP^MR||SCORETEST^MONITORED||19550505|M",
		"PV1||I|ICU^^B3",
		"OBR|1|PL-"+cid+"^GATEWAY|FL-"+cid+"^GATEWAY|69837^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|||"+when,
		"OBX|1||69837^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||"+when+"||||AABBCCDDEEFF0011^EUI-64",
		"OBX|2||69854^MDC_DEV_METER_PRESS_BLD_VMD^MDC|1.1.0.0|||||||X",
		"OBX|3||69855^MDC_DEV_METER_PRESS_BLD_CHAN^MDC|1.1.1.0|||||||X",
		"OBX|4|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.1.1.150021|"+m.sbp+"|266016^MDC_DIM_MMHG^MDC|||||R",
		"OBX|5|NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC|1.1.1.150022|72|266016^MDC_DIM_MMHG^MDC|||||R",
		"OBX|6|NM|147842^MDC_ECG_HEART_RATE^MDC|1.2.1.147842|"+m.hr+"|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R",
		"OBX|7|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.3.1.150456|"+m.spo2+"|262688^MDC_DIM_PERCENT^MDC|||||R",
		"OBX|8|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.3.2.150456|80|262688^MDC_DIM_PERCENT^MDC|||||X",
		"OBX|9|NM|151562^MDC_RESP_RATE^MDC|1.4.1.151562|"+m.rr+"|264928^MDC_DIM_RESP_PER_MIN^MDC|||||R",
		"OBX|10|NM|151920^MDC_CONC_AWAY_O2_INSP^MDC|1.5.1.151920|"+m.fio2+"|262688^MDC_DIM_PERCENT^MDC|||||R",
		"OBX|11|NM|150364^MDC_TEMP_BODY^MDC|1.6.1.150364|"+m.tempF+"|266560^MDC_DIM_FAHR^MDC|||||R")
}

// --- the router with the shipped routes ---

// shippedRoutes returns the absolute path of the shipped routes.yaml.
func shippedRoutes(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "routes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("shipped routes file: %v", err)
	}
	return p
}

// scoringRig is a database with a listener and a router on it.
type scoringRig struct {
	t     *testing.T
	dbURL string
	db    *pgxpool.Pool
	l     *listener
	r     *routerProc
}

// startScoring starts a listener and a router with routesFile ("" for the
// shipped routes.yaml) on a database of the test's own.
func startScoring(t *testing.T, routesFile string, env ...string) *scoringRig {
	t.Helper()
	if routesFile == "" {
		routesFile = shippedRoutes(t)
	}
	dbURL := pgtest.NewDatabase(t)
	rig := &scoringRig{t: t, dbURL: dbURL, db: openDB(t, dbURL)}
	rig.l = startListener(t, dbURL)
	rig.r = startRouterEnv(t, dbURL, routesFile, env)
	return rig
}

// apply sends messages (each must get an AA) and waits until the router
// has applied them, scores and alerts included (one transaction).
func (rig *scoringRig) apply(msgs ...[]byte) {
	rig.t.Helper()
	sendAA(rig.t, rig.l.MLLPAddr, msgs...)
	eventually(rig.t, drainTimeout, "the router to apply what was sent", func() (bool, string) { return drained(rig.t, rig.db) })
}

// --- score events ---

// scoreComponent is one component of a score.calculated payload.
type scoreComponent struct {
	Value      string    `json:"value"`
	Points     int       `json:"points"`
	Parameter  string    `json:"parameter"`
	Criterion  *string   `json:"criterion"`
	ObservedAt time.Time `json:"observed_at"`
	EventID    uuid.UUID `json:"event_id"`
}

// scorePayload is a score.calculated payload.
type scorePayload struct {
	Score            string                    `json:"score"`
	AsOf             time.Time                 `json:"as_of"`
	Total            int                       `json:"total"`
	Risk             string                    `json:"risk"`
	Response         string                    `json:"response"`
	Complete         bool                      `json:"complete"`
	Missing          []string                  `json:"missing"`
	Components       map[string]scoreComponent `json:"components"`
	Inputs           []uuid.UUID               `json:"inputs"`
	CurrentPicture   bool                      `json:"current_picture"`
	SpO2Scale        int                       `json:"spo2_scale"`
	SingleParameter3 bool                      `json:"single_parameter_3"`
	OnOxygen         *bool                     `json:"on_oxygen"`
}

// scoreEvent is a score.calculated event with its payload decoded.
type scoreEvent struct {
	eventRec
	P scorePayload
}

// points returns each component's points, by component name.
func (p scorePayload) points() map[string]int {
	m := map[string]int{}
	for n, c := range p.Components {
		m[n] = c.Points
	}
	return m
}

// scoresOf returns the score.calculated events of one score (news2, qsofa,
// sirs) written for a message, in seq order.
func scoresOf(t *testing.T, db *pgxpool.Pool, controlID, score string) []scoreEvent {
	t.Helper()
	var out []scoreEvent
	for _, e := range events(t, db, "m.control_id = $1 AND e.type = 'score.calculated' AND e.payload->>'score' = $2", controlID, score) {
		s := scoreEvent{eventRec: e}
		if err := json.Unmarshal(e.Payload, &s.P); err != nil {
			t.Fatalf("%s: score.calculated payload: %v", controlID, err)
		}
		out = append(out, s)
	}
	return out
}

// onlyScore returns the one score.calculated event of a score a message
// wrote, failing the test if there is not exactly one.
func onlyScore(t *testing.T, db *pgxpool.Pool, controlID, score string) scoreEvent {
	t.Helper()
	ss := scoresOf(t, db, controlID, score)
	if len(ss) != 1 {
		t.Fatalf("%s: %d %s score.calculated events, want 1", controlID, len(ss), score)
	}
	return ss[0]
}

// currentScore is a scores row: a patient's current score of one kind.
type currentScore struct {
	CalculatedAt time.Time
	Total        int
	Risk         string
	Complete     bool
	EventID      uuid.UUID
}

// currentScoreOf returns the scores row of a patient and score; ok is
// false when there is none.
func currentScoreOf(t *testing.T, db *pgxpool.Pool, patientKey, score string) (s currentScore, ok bool) {
	t.Helper()
	n := count(t, db, `SELECT count(*) FROM scores WHERE patient_key = $1 AND score = $2`, patientKey, score)
	if n == 0 {
		return s, false
	}
	queryRow(t, db, `SELECT calculated_at, total, coalesce(risk, ''), complete, event_id FROM scores WHERE patient_key = $1 AND score = $2`,
		[]any{patientKey, score}, &s.CalculatedAt, &s.Total, &s.Risk, &s.Complete, &s.EventID)
	return s, true
}

// observationIDs returns the observation events of the messages with the
// given control IDs whose parameter NEWS2 reads, by parameter.
func observationIDs(t *testing.T, db *pgxpool.Pool, controlIDs ...string) map[string]uuid.UUID {
	t.Helper()
	out := map[string]uuid.UUID{}
	for _, e := range events(t, db, "m.control_id = ANY($1) AND e.type LIKE 'observation.%'", controlIDs) {
		if p := e.payloadString("parameter"); news2Params[p] {
			out[p] = e.ID
		}
	}
	return out
}

// sortedIDs returns the IDs as sorted strings.
func sortedIDs(ids []uuid.UUID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	sort.Strings(out)
	return out
}

// checkLineage checks that every input of a score is an observation event
// in events, of one of the given messages, and that the components name
// exactly the inputs.
func checkLineage(t *testing.T, db *pgxpool.Pool, s scoreEvent, controlIDs ...string) {
	t.Helper()
	from := map[string]bool{}
	for _, c := range controlIDs {
		from[c] = true
	}
	var fromComponents []uuid.UUID
	for _, c := range s.P.Components {
		fromComponents = append(fromComponents, c.EventID)
	}
	if got, want := sortedIDs(s.P.Inputs), uniqueSorted(sortedIDs(fromComponents)); !reflect.DeepEqual(got, want) {
		t.Errorf("%s: inputs %v, want the components' events %v", s.ControlID, got, want)
	}
	for _, id := range s.P.Inputs {
		es := events(t, db, "e.id = $1", id)
		if len(es) != 1 || !strings.HasPrefix(es[0].Type, "observation.") || !from[es[0].ControlID] {
			t.Errorf("%s: input %s is %d events (%+v), want one observation event of %v", s.ControlID, id, len(es), es, controlIDs)
		}
	}
}

func uniqueSorted(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// --- the router's clinical API ---

// apiToken creates an API token with the real `router token create` and
// returns it; name is then the actor the API records.
func apiToken(t *testing.T, dbURL, name, role string) string {
	t.Helper()
	out := runRouterCommand(t, dbURL, "token", "create", "--name", name, "--role", role, "--database-url", dbURL, "--db-max-conns", "2")
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "aorta_") {
			return strings.TrimSpace(line)
		}
	}
	t.Fatalf("router token create printed no token:\n%s", out)
	return ""
}

// apiCall sends a JSON request to the router's API address with a bearer
// token (none when empty) and returns the status and the decoded JSON
// answer.
func apiCall(t *testing.T, addr, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("%s %s: read answer: %v", method, path, err)
	}
	var m map[string]any
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s %s: answer %d is not JSON: %q", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, m
}

// --- the tests ---

// TestScoreNEWS2Complete scores complete NEWS2 sets from nursing charting
// (LOINC) and from a bedside monitor (IHE PCD-01, MDC codes, with the
// consciousness level charted by a nurse just before), and checks the
// exact total, risk, every component's points and the lineage: inputs are
// the observation events, stored in events, of the messages sent.
func TestScoreNEWS2Complete(t *testing.T) {
	t.Parallel()
	rig := startScoring(t, "")
	oxygen, air := true, false

	for _, tc := range []struct {
		name string
		msgs [][]byte // the last one is scored
		from []string // control IDs of the messages the inputs come from
		key  string
		// want
		total     int
		risk      string
		points    map[string]int
		values    map[string]string
		onOxygen  *bool
		single3   bool
		parameter map[string]string // component -> parameter it came from, where they differ
	}{
		{
			name: "LOINC nursing set, on oxygen, new confusion",
			msgs: [][]byte{nursingSet("SC-N1", "SCN01", "1000",
				vitals{rr: "23", spo2: "94", o2flow: "2", sbp: "95", hr: "45", acvpu: "C", temp: "35.5"})},
			from:  []string{"SC-N1"},
			key:   "GENHOSP/SCN01",
			total: 12, risk: "high", single3: true, onOxygen: &oxygen,
			points:    map[string]int{"respiratory_rate": 2, "spo2": 1, "on_oxygen": 2, "sbp": 2, "heart_rate": 1, "consciousness": 3, "temperature": 1},
			values:    map[string]string{"respiratory_rate": "23", "spo2": "94", "on_oxygen": "2", "sbp": "95", "heart_rate": "45", "consciousness": "C", "temperature": "35.5"},
			parameter: map[string]string{"on_oxygen": "o2_flow"},
		},
		{
			name: "IHE PCD-01 monitor set (MDC, OBX-11 R, X rows), ACVPU charted by the nurse 2 minutes before",
			msgs: [][]byte{
				nursingMsg("SC-M1-ACVPU", "SCM01", "19550505", at("0958"), "SC-M1-ACVPU", vitalOBX(at("0958"), "F", vitals{acvpu: "A"})...),
				monitorSet("SC-M1", "SCM01", "1000", monitorVitals{rr: "18", spo2: "96", fio2: "21", sbp: "120", hr: "100", tempF: "101.0"}),
			},
			from:  []string{"SC-M1", "SC-M1-ACVPU"},
			key:   "GENHOSP/SCM01",
			total: 2, risk: "low", onOxygen: &air,
			// 101.0 °F is 38.3 °C (1 point); the X-status SpO2 of 80 % would score 3.
			points:    map[string]int{"respiratory_rate": 0, "spo2": 0, "on_oxygen": 0, "sbp": 0, "heart_rate": 1, "consciousness": 0, "temperature": 1},
			values:    map[string]string{"respiratory_rate": "18", "spo2": "96", "on_oxygen": "21", "sbp": "120", "heart_rate": "100", "consciousness": "A", "temperature": "38.3"},
			parameter: map[string]string{"on_oxygen": "fio2"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rig.apply(tc.msgs...)
			last := controlIDOf(t, tc.msgs[len(tc.msgs)-1])
			s := onlyScore(t, rig.db, last, "news2")
			p := s.P
			if p.Total != tc.total || p.Risk != tc.risk || !p.Complete || len(p.Missing) != 0 || p.SingleParameter3 != tc.single3 ||
				p.SpO2Scale != 1 || p.CurrentPicture || !reflect.DeepEqual(p.OnOxygen, tc.onOxygen) {
				t.Errorf("NEWS2 total %d risk %s complete %v missing %v single_3 %v scale %d current_picture %v on_oxygen %v; want %d %s complete, none missing, single_3 %v, scale 1, not a recomputation, on_oxygen %v",
					p.Total, p.Risk, p.Complete, p.Missing, p.SingleParameter3, p.SpO2Scale, p.CurrentPicture, show(p.OnOxygen),
					tc.total, tc.risk, tc.single3, show(tc.onOxygen))
			}
			if !s.OccurredAt.Equal(p.AsOf) || s.PatientKey != tc.key || s.Route == "" {
				t.Errorf("score event at %v (as_of %v) for %s route %q; want occurred_at = as_of, patient %s", s.OccurredAt, p.AsOf, s.PatientKey, s.Route, tc.key)
			}
			if got := p.points(); !reflect.DeepEqual(got, tc.points) {
				t.Errorf("component points %v, want %v", got, tc.points)
			}
			sum := 0
			for name, c := range p.Components {
				sum += c.Points
				if c.Value != tc.values[name] {
					t.Errorf("component %s value %q, want %q", name, c.Value, tc.values[name])
				}
				want := name
				if w, ok := tc.parameter[name]; ok {
					want = w
				}
				if c.Parameter != want {
					t.Errorf("component %s from parameter %q, want %q", name, c.Parameter, want)
				}
			}
			if sum != p.Total {
				t.Errorf("components add up to %d, total is %d", sum, p.Total)
			}
			// Inputs: exactly the observation events of the NEWS2
			// parameters in the messages sent (not the diastolic pressure,
			// not the X-status SpO2, which produced no event).
			obs := observationIDs(t, rig.db, tc.from...)
			var want []uuid.UUID
			for _, id := range obs {
				want = append(want, id)
			}
			if got, w := sortedIDs(p.Inputs), sortedIDs(want); !reflect.DeepEqual(got, w) || len(got) != 7 {
				t.Errorf("inputs %v, want the 7 observation events %v", got, w)
			}
			checkLineage(t, rig.db, s, tc.from...)
			cur, ok := currentScoreOf(t, rig.db, tc.key, "news2")
			if !ok || cur.EventID != s.ID || cur.Total != tc.total || cur.Risk != tc.risk || !cur.Complete || !cur.CalculatedAt.Equal(p.AsOf) {
				t.Errorf("scores row %+v (present %v), want the event %s: %d %s complete at %v", cur, ok, s.ID, tc.total, tc.risk, p.AsOf)
			}
			// qSOFA and SIRS come with it (the routes' handlers).
			for _, other := range []string{"qsofa", "sirs"} {
				if n := len(scoresOf(t, rig.db, last, other)); n != 1 {
					t.Errorf("%d %s scores for %s, want 1", n, other, last)
				}
			}
			t.Logf("%s: NEWS2 %d (%s), 7 components as expected, %d inputs all observation events of %v", last, p.Total, p.Risk, len(p.Inputs), tc.from)
		})
	}
	checkNoPHI(t, "router", rig.r.log, "SCN01", "SCM01", "SCORETEST")
}

// TestScoreIncomplete sends sets that lack a parameter (or whose value has
// gone stale): the score is incomplete, names exactly what is missing,
// leaves it out of the components, and its total is only what the others
// add up to: a missing value never counts as zero, while a zero reading
// (O2 flow 0: air) is a reading.
func TestScoreIncomplete(t *testing.T) {
	t.Parallel()
	rig := startScoring(t, "")
	drop := func(v vitals, fields ...string) vitals {
		for _, f := range fields {
			switch f {
			case "rr":
				v.rr = ""
			case "spo2":
				v.spo2 = ""
			case "o2flow":
				v.o2flow = ""
			case "sbp":
				v.sbp = ""
			case "hr":
				v.hr = ""
			case "acvpu":
				v.acvpu = ""
			case "temp":
				v.temp = ""
			}
		}
		return v
	}
	for i, tc := range []struct {
		name    string
		set     vitals
		missing []string
		total   int
		risk    string
	}{
		{"no temperature", drop(setUrgent, "temp"), []string{"temperature"}, 5, "medium"},
		{"no consciousness level", drop(setWell, "acvpu"), []string{"consciousness"}, 0, "low"},
		{"neither air nor oxygen charted (never assumed air)", drop(setSingle3, "o2flow"), []string{"on_oxygen"}, 3, "low-medium"},
		{"no respiratory rate, no blood pressure", drop(setEmergency, "rr", "sbp"), []string{"respiratory_rate", "sbp"}, 3, "low"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cid, mrn := fmt.Sprintf("SC-INC-%d", i), fmt.Sprintf("SCI%02d", i)
			rig.apply(nursingSet(cid, mrn, "1000", tc.set))
			s := onlyScore(t, rig.db, cid, "news2")
			p := s.P
			if p.Complete || !reflect.DeepEqual(p.Missing, tc.missing) || p.Total != tc.total || p.Risk != tc.risk {
				t.Errorf("NEWS2 complete %v missing %v total %d risk %s; want incomplete, missing %v, total %d (a lower bound), %s",
					p.Complete, p.Missing, p.Total, p.Risk, tc.missing, tc.total, tc.risk)
			}
			for _, m := range tc.missing {
				if c, ok := p.Components[m]; ok {
					t.Errorf("missing %s appears as a component %+v: counted as a reading", m, c)
				}
			}
			if len(p.Components)+len(tc.missing) != 7 {
				t.Errorf("%d components and %d missing, want 7 in all", len(p.Components), len(tc.missing))
			}
			if c, ok := p.Components["on_oxygen"]; ok && (c.Value != "0" || c.Points != 0 || c.Parameter != "o2_flow") {
				t.Errorf("O2 flow 0 gives on_oxygen %+v, want the reading 0 (air), 0 points", c)
			}
			checkLineage(t, rig.db, s, cid)
			cur, ok := currentScoreOf(t, rig.db, "GENHOSP/"+mrn, "news2")
			if !ok || cur.Complete || cur.Total != tc.total || cur.EventID != s.ID {
				t.Errorf("scores row %+v (present %v), want incomplete %d from %s", cur, ok, tc.total, s.ID)
			}
			t.Logf("%s: incomplete NEWS2 %d, missing %v, %d components", cid, p.Total, p.Missing, len(p.Components))
		})
	}

	t.Run("a value older than the freshness window is missing", func(t *testing.T) {
		// A complete set at 10:00, then at 11:30 everything but the
		// temperature: the 10:00 temperature is 90 minutes old (vitals
		// freshness 1h), so it is missing, not reused.
		rig.apply(nursingSet("SC-STALE-1", "SCS01", "1000", setWell), nursingSet("SC-STALE-2", "SCS01", "1130", drop(setWell, "temp")))
		first, second := onlyScore(t, rig.db, "SC-STALE-1", "news2"), onlyScore(t, rig.db, "SC-STALE-2", "news2")
		if !first.P.Complete || second.P.Complete || !reflect.DeepEqual(second.P.Missing, []string{"temperature"}) {
			t.Errorf("10:00 complete %v; 11:30 complete %v missing %v; want complete, then incomplete missing the stale temperature",
				first.P.Complete, second.P.Complete, second.P.Missing)
		}
		t.Logf("temperature of 10:00 not used at 11:30: missing %v", second.P.Missing)
	})
}

// TestScoreOutOfOrder sends observations late (an OBX-14 older than the
// patient's current score) and corrected (OBX-11 = C for the same
// observation): each recomputes the score at its own clinical time and,
// when the current picture changes, the current score; a late score never
// replaces a newer current one.
func TestScoreOutOfOrder(t *testing.T) {
	t.Parallel()
	rig := startScoring(t, "")

	t.Run("a late set is scored at its own time and leaves the newer current score", func(t *testing.T) {
		const key = "GENHOSP/SCO01"
		rig.apply(nursingSet("SC-OO1-NOW", "SCO01", "1000", setUrgent))
		now := onlyScore(t, rig.db, "SC-OO1-NOW", "news2")
		rig.apply(nursingSet("SC-OO1-LATE", "SCO01", "0930", setWell))
		late := scoresOf(t, rig.db, "SC-OO1-LATE", "news2")
		if len(late) != 2 {
			t.Fatalf("late set: %d NEWS2 scores, want 2 (at 09:30, and the 10:00 picture again)", len(late))
		}
		byTime := map[string]scoreEvent{}
		for _, s := range late {
			byTime[s.P.AsOf.UTC().Format("1504")] = s
		}
		at0930, at1000 := byTime["0930"], byTime["1000"]
		if at0930.P.Total != 0 || !at0930.P.Complete || at0930.P.CurrentPicture || !at0930.OccurredAt.Equal(clinicalTime(t, "0930")) {
			t.Errorf("09:30 score: total %d complete %v current_picture %v at %v; want the late set's own complete 0 at 09:30, not current",
				at0930.P.Total, at0930.P.Complete, at0930.P.CurrentPicture, at0930.OccurredAt)
		}
		if at1000.P.Total != now.P.Total || !at1000.P.CurrentPicture || !reflect.DeepEqual(at1000.P.points(), now.P.points()) {
			t.Errorf("10:00 recomputed: total %d current_picture %v points %v; want unchanged %d %v (every 10:00 value is newer than 09:30)",
				at1000.P.Total, at1000.P.CurrentPicture, at1000.P.points(), now.P.Total, now.P.points())
		}
		cur, _ := currentScoreOf(t, rig.db, key, "news2")
		if !cur.CalculatedAt.Equal(clinicalTime(t, "1000")) || cur.Total != 5 || cur.EventID == at0930.ID {
			t.Errorf("current score %+v, want 5 at 10:00 (the 09:30 score must not replace it)", cur)
		}
		// The 09:30 score is 0: it must not resolve the alert the 10:00 one raised.
		if n := count(t, rig.db, `SELECT count(*) FROM alerts WHERE patient_key = $1 AND status = 'open' AND rule = 'news2'`, key); n != 1 {
			t.Errorf("%d open news2 alerts after the late low score, want the 10:00 alert still open", n)
		}
		if n := len(events(t, rig.db, "e.patient_key = $1 AND e.type = 'alert.resolved'", key)); n != 0 {
			t.Errorf("%d alert.resolved events: a late low score resolved the current alert", n)
		}
		t.Logf("late 09:30 set: scored 0 at 09:30; current stays 5 at 10:00; alert still open")
	})

	t.Run("a late observation completes the current picture", func(t *testing.T) {
		const key = "GENHOSP/SCO02"
		noACVPU := setWell
		noACVPU.acvpu = ""
		rig.apply(nursingSet("SC-OO2-NOW", "SCO02", "1000", noACVPU))
		before := onlyScore(t, rig.db, "SC-OO2-NOW", "news2")
		// New confusion charted for 09:50, sent after the 10:00 set.
		rig.apply(nursingMsg("SC-OO2-LATE", "SCO02", "19600101", at("0950"), "SC-OO2-LATE", vitalOBX(at("0950"), "F", vitals{acvpu: "C"})...))
		var at1000 scoreEvent
		for _, s := range scoresOf(t, rig.db, "SC-OO2-LATE", "news2") {
			if s.P.AsOf.Equal(clinicalTime(t, "1000")) {
				at1000 = s
			}
		}
		if before.P.Complete || at1000.ID == uuid.Nil || !at1000.P.Complete || at1000.P.Total != 3 || !at1000.P.SingleParameter3 ||
			at1000.P.Components["consciousness"].Points != 3 {
			t.Fatalf("10:00 before: complete %v; recomputed: %+v; want incomplete, then complete 3 with consciousness C scoring 3", before.P.Complete, at1000.P)
		}
		cur, _ := currentScoreOf(t, rig.db, key, "news2")
		if cur.EventID != at1000.ID || !cur.Complete || cur.Total != 3 {
			t.Errorf("current score %+v, want the recomputed 10:00 score %s", cur, at1000.ID)
		}
		raised := events(t, rig.db, "e.patient_key = $1 AND e.type = 'alert.raised'", key)
		if len(raised) != 1 || raised[0].payloadString("severity") != "low-medium" || raised[0].ControlID != "SC-OO2-LATE" {
			t.Errorf("alerts raised %d (%+v), want one low-medium raised by the late observation", len(raised), raised)
		}
		t.Logf("late ACVPU at 09:50: 10:00 NEWS2 recomputed complete 3 (was incomplete), low-medium alert raised")
	})

	t.Run("a corrected observation recomputes the score", func(t *testing.T) {
		const key = "GENHOSP/SCO03"
		low := setWell
		low.spo2 = "91" // 3 points: a single red score
		rig.apply(nursingMsg("SC-OO3-ORIG", "SCO03", "19600101", at("1100"), "SC-OO3", vitalOBX(at("1100"), "F", low)...))
		orig := onlyScore(t, rig.db, "SC-OO3-ORIG", "news2")
		// The nurse corrects the SpO2 (mistyped): same order, same code,
		// OBX-11 = C.
		rig.apply(nursingMsg("SC-OO3-CORR", "SCO03", "19600101", at("1100"), "SC-OO3",
			"OBX|1|NM|2708-6^Oxygen saturation^LN||97|%|||||C|||"+at("1100")))
		obs := events(t, rig.db, "m.control_id = 'SC-OO3-CORR' AND e.type LIKE 'observation.%'")
		if len(obs) != 1 {
			t.Fatalf("correction: %d observation events, want 1", len(obs))
		}
		corr := obs[0]
		s := onlyScore(t, rig.db, "SC-OO3-CORR", "news2")
		spo2 := s.P.Components["spo2"]
		if corr.Type != "observation.corrected" || orig.P.Total != 3 || s.P.Total != 0 || spo2.Points != 0 || spo2.Value != "97" ||
			spo2.EventID != corr.ID || !s.P.AsOf.Equal(clinicalTime(t, "1100")) {
			t.Errorf("original NEWS2 %d; correction %s; recomputed %d at %v with spo2 %+v; want 3, observation.corrected, then 0 at 11:00 from the corrected value %s",
				orig.P.Total, corr.Type, s.P.Total, s.P.AsOf, spo2, corr.ID)
		}
		if orig.P.Components["spo2"].EventID == corr.ID {
			t.Errorf("the original score already names the correction")
		}
		cur, _ := currentScoreOf(t, rig.db, key, "news2")
		if cur.EventID != s.ID || cur.Total != 0 {
			t.Errorf("current score %+v, want the corrected score %s (0)", cur, s.ID)
		}
		types := alertTypes(t, rig.db, key)
		if strings.Join(types, ",") != "alert.raised,alert.resolved" {
			t.Errorf("alert events %v, want raised (single 3) then resolved by the corrected complete 0", types)
		}
		t.Logf("correction SpO2 91 -> 97 (C): NEWS2 3 -> 0 at 11:00, low-medium alert resolved")
	})
	t.Run("sets applied in one batch are not late for each other", func(t *testing.T) {
		// Queued while the router is stopped, so that it applies both in
		// one transaction: the 10:00 set must not be taken for a late one
		// because the 10:15 set, which arrived after it, is already in the
		// transaction's state.
		const key = "GENHOSP/SCO04"
		rig.r.stop(t)
		sendAA(t, rig.l.MLLPAddr, nursingSet("SC-OO4-1", "SCO04", "1000", setUrgent), nursingSet("SC-OO4-2", "SCO04", "1015", setEmergency))
		rig.r = rig.r.restart(t)
		waitDrained(t, rig.db, drainTimeout)
		first, second := scoresOf(t, rig.db, "SC-OO4-1", "news2"), scoresOf(t, rig.db, "SC-OO4-2", "news2")
		if len(first) != 1 || len(second) != 1 || first[0].P.CurrentPicture || second[0].P.CurrentPicture ||
			first[0].P.Total != 5 || second[0].P.Total != 7 {
			t.Fatalf("NEWS2 scores: %d of the 10:00 set, %d of the 10:15 set; want one each (5, then 7), neither a recomputation", len(first), len(second))
		}
		evs := alertEvents(t, rig.db, "e.patient_key = $1", key)
		if len(evs) != 2 || evs[0].ControlID != "SC-OO4-1" || evs[1].ControlID != "SC-OO4-2" ||
			evs[1].payloadString("score_event_id") != second[0].ID.String() {
			t.Errorf("alert events %v from %v; want raised by SC-OO4-1, escalated by SC-OO4-2's score %s", typesOf(evs), controlIDsOf(evs), second[0].ID)
		}
		t.Logf("10:00 and 10:15 sets in one batch: one score each, none a recomputation; raised by the first, escalated by the second")
	})
	checkNoPHI(t, "router", rig.r.log, "SCO01", "SCO02", "SCO03", "SCO04", "SCORETEST")
}

func controlIDsOf(es []eventRec) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ControlID
	}
	return out
}

// alertTypes returns the types of a patient's alert events in seq order.
func alertTypes(t *testing.T, db *pgxpool.Pool, patientKey string) []string {
	t.Helper()
	var out []string
	for _, e := range events(t, db, "e.patient_key = $1 AND e.type LIKE 'alert.%'", patientKey) {
		out = append(out, e.Type)
	}
	return out
}

// TestScoreSpO2Scale2 sets a patient's SpO2 scale to 2 through the router's
// API (audited) and checks the next sets are scored on it: SpO2 90 % on air
// scores 3 on scale 1 and 0 on scale 2; 97 % on oxygen scores 3 on scale 2.
func TestScoreSpO2Scale2(t *testing.T) {
	t.Parallel()
	rig := startScoring(t, "")
	const mrn, key = "SCP01", "GENHOSP/SCP01"
	hypercapnic := setWell
	hypercapnic.spo2 = "90"

	rig.apply(nursingSet("SC-SP-1", mrn, "0800", hypercapnic))
	s1 := onlyScore(t, rig.db, "SC-SP-1", "news2")
	if s1.P.SpO2Scale != 1 || s1.P.Components["spo2"].Points != 3 || s1.P.Total != 3 {
		t.Fatalf("scale 1: scale %d spo2 %+v total %d; want scale 1, SpO2 90 scoring 3, total 3", s1.P.SpO2Scale, s1.P.Components["spo2"], s1.P.Total)
	}

	path := "/api/v1/patients/" + strings.ReplaceAll(key, "/", "%2F") + "/spo2-scale"
	okafor := apiToken(t, rig.dbURL, "dr.okafor", "clinician")
	viewer := apiToken(t, rig.dbURL, "ward.display", "viewer")
	if code, _ := apiCall(t, rig.r.APIAddr, http.MethodPut, path, "", `{"scale": 2}`); code != http.StatusUnauthorized {
		t.Errorf("PUT without a token: %d, want 401", code)
	}
	if code, _ := apiCall(t, rig.r.APIAddr, http.MethodPut, path, viewer, `{"scale": 2}`); code != http.StatusForbidden {
		t.Errorf("PUT with a viewer token: %d, want 403", code)
	}
	if code, _, err := httpGet(rig.r.HTTPAddr, path); err != nil || code != http.StatusNotFound {
		t.Errorf("the admin address still serves the API: GET %s: %d %v, want 404", path, code, err)
	}
	if code, _ := apiCall(t, rig.r.APIAddr, http.MethodPut, path, okafor, `{"scale": 3}`); code != http.StatusBadRequest {
		t.Errorf("PUT scale 3: %d, want 400", code)
	}
	if code, _ := apiCall(t, rig.r.APIAddr, http.MethodPut, "/api/v1/patients/GENHOSP%2FNOSUCH/spo2-scale", okafor, `{"scale": 2}`); code != http.StatusNotFound {
		t.Errorf("PUT for an unknown patient: %d, want 404", code)
	}
	code, body := apiCall(t, rig.r.APIAddr, http.MethodPut, path, okafor, `{"scale": 2}`)
	if code != http.StatusOK || body["patient_key"] != key || body["spo2_scale"] != float64(2) || body["set_by"] != "dr.okafor" {
		t.Fatalf("PUT %s: %d %v, want 200 for %s, scale 2, set by dr.okafor", path, code, body, key)
	}
	var scale int
	var setBy string
	queryRow(t, rig.db, `SELECT spo2_scale, coalesce(spo2_scale_set_by, '') FROM patients WHERE patient_key = $1`, []any{key}, &scale, &setBy)
	if scale != 2 || setBy != "dr.okafor" {
		t.Errorf("patients row: scale %d set by %q, want 2 by dr.okafor", scale, setBy)
	}
	var audits int
	var actor, details string
	queryRow(t, rig.db, `SELECT count(*), max(actor), max(details::text) FROM audit_log WHERE action = 'patient.spo2_scale' AND target = $1`,
		[]any{key}, &audits, &actor, &details)
	if audits != 1 || actor != "dr.okafor" || !strings.Contains(strings.ReplaceAll(details, " ", ""), `"scale":2`) {
		t.Errorf("audit_log: %d rows, actor %q, details %s; want one by dr.okafor with scale 2 (refused requests are not audited)", audits, actor, details)
	}

	onO2 := setWell
	onO2.spo2, onO2.o2flow = "97", "2"
	rig.apply(nursingSet("SC-SP-2", mrn, "0830", hypercapnic))
	rig.apply(nursingSet("SC-SP-3", mrn, "0900", onO2))
	s2, s3 := onlyScore(t, rig.db, "SC-SP-2", "news2"), onlyScore(t, rig.db, "SC-SP-3", "news2")
	c2, c3 := s2.P.Components["spo2"], s3.P.Components["spo2"]
	if s2.P.SpO2Scale != 2 || c2.Points != 0 || s2.P.Total != 0 || c2.Criterion == nil || !strings.HasPrefix(*c2.Criterion, "scale 2") {
		t.Errorf("scale 2, SpO2 90 on air: scale %d spo2 %+v total %d; want scale 2, 0 points, total 0", s2.P.SpO2Scale, c2, s2.P.Total)
	}
	if s3.P.SpO2Scale != 2 || c3.Points != 3 || s3.P.Components["on_oxygen"].Points != 2 || s3.P.Total != 5 {
		t.Errorf("scale 2, SpO2 97 on oxygen: scale %d spo2 %+v on_oxygen %+v total %d; want scale 2, 3 + 2 points, total 5",
			s3.P.SpO2Scale, c3, s3.P.Components["on_oxygen"], s3.P.Total)
	}
	t.Logf("SpO2 90 on air: 3 points on scale 1, 0 on scale 2 after PUT by dr.okafor (audited); 97 on O2 on scale 2: 3 points")
	checkNoPHI(t, "router", rig.r.log, mrn, "SCORETEST")
}

// TestScorePaediatric sends deteriorating sets for patients whose PID-7
// makes them under 16 at the observation time: adult scores are refused
// with score.skipped naming the reason, and nothing is scored or alerted.
// A patient whose 16th birthday is that day is scored.
func TestScorePaediatric(t *testing.T) {
	t.Parallel()
	rig := startScoring(t, "")
	for i, tc := range []struct {
		name   string
		birth  string
		scored bool
	}{
		{"ten years old", "20150601", false},
		{"sixteen tomorrow", "20100313", false},
		{"sixteen today", "20100312", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cid, mrn := fmt.Sprintf("SC-PAED-%d", i), fmt.Sprintf("SCK%02d", i)
			key := "GENHOSP/" + mrn
			rig.apply(nursingMsg(cid, mrn, tc.birth, at("1000"), cid, vitalOBX(at("1000"), "F", setWorse)...))
			var birth time.Time
			queryRow(t, rig.db, `SELECT birth_date FROM patients WHERE patient_key = $1`, []any{key}, &birth)
			if birth.Format("20060102") != tc.birth {
				t.Errorf("patients.birth_date %v, want PID-7 %s", birth, tc.birth)
			}
			skipped := events(t, rig.db, "e.patient_key = $1 AND e.type = 'score.skipped'", key)
			calculated := events(t, rig.db, "e.patient_key = $1 AND e.type = 'score.calculated'", key)
			alerts := alertTypes(t, rig.db, key)
			alertRows := count(t, rig.db, `SELECT count(*) FROM alerts WHERE patient_key = $1`, key)
			scoreRows := count(t, rig.db, `SELECT count(*) FROM scores WHERE patient_key = $1`, key)
			if tc.scored {
				if len(skipped) != 0 || len(calculated) != 3 || len(alerts) == 0 || scoreRows != 3 {
					t.Errorf("skipped %d, calculated %d, alert events %v, scores rows %d; want 0, 3 (news2, qsofa, sirs), an alert, 3",
						len(skipped), len(calculated), alerts, scoreRows)
				}
				t.Logf("%s born %s: scored (%d scores), alerts %v", cid, tc.birth, len(calculated), alerts)
				return
			}
			if len(skipped) != 3 || len(calculated) != 0 || len(alerts) != 0 || alertRows != 0 || scoreRows != 0 {
				t.Errorf("skipped %d, calculated %d, alert events %v, alerts rows %d, scores rows %d; want 3 skipped (news2, qsofa, sirs) and nothing else",
					len(skipped), len(calculated), alerts, alertRows, scoreRows)
			}
			seen := map[string]bool{}
			for _, e := range skipped {
				seen[e.payloadString("score")] = true
				if r := e.payloadString("reason"); !strings.Contains(r, "under 16") {
					t.Errorf("score.skipped reason %q, want it to say the patient is under 16", r)
				}
				if !e.OccurredAt.Equal(clinicalTime(t, "1000")) {
					t.Errorf("score.skipped at %v, want the observations' time 10:00", e.OccurredAt)
				}
			}
			if !seen["news2"] || !seen["qsofa"] || !seen["sirs"] {
				t.Errorf("skipped scores %v, want news2, qsofa and sirs", seen)
			}
			t.Logf("%s born %s: %d scores skipped (%q), none calculated, no alert", cid, tc.birth, len(skipped), skipped[0].payloadString("reason"))
		})
	}
}
