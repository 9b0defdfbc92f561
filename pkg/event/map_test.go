package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aortahealth/aorta/internal/testcorpus"
	"github.com/aortahealth/aorta/pkg/clinical"
	"github.com/aortahealth/aorta/pkg/hl7"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// testMessageID is the stored-message ID every test maps with, so that
// event IDs in golden files are stable.
var testMessageID = uuid.MustParse("01960000-0000-7000-8000-00000000a0a0")

func defaultTable(t testing.TB) *clinical.Table {
	t.Helper()
	tab, err := clinical.NewTable(clinical.DefaultParameters())
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func parse(t testing.TB, raw []byte) Message {
	t.Helper()
	m, err := hl7.Parse(raw)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return Message{ID: testMessageID, ReceivedAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), Parsed: m, Header: m.Header()}
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func zone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("time zone %s: %v", name, err)
	}
	return loc
}

// goldenEvent is an event as the golden files show it: every column,
// the payload and the router's side data.
type goldenEvent struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	OccurredAt    string          `json:"occurred_at"`
	MessageID     string          `json:"message_id"`
	PatientID     string          `json:"patient_id"`
	PatientKey    string          `json:"patient_key"`
	EncounterID   string          `json:"encounter_id"`
	Source        string          `json:"source"`
	Route         string          `json:"route"`
	SchemaVersion int             `json:"schema_version"`
	Payload       json.RawMessage `json:"payload"`
	Observation   *goldenObs      `json:"observation,omitempty"`
	Merge         *Merge          `json:"merge,omitempty"`
	Visit         *Visit          `json:"visit,omitempty"`
	Location      string          `json:"location,omitempty"`
}

type goldenObs struct {
	Key        string `json:"key"`
	Parameter  string `json:"parameter"`
	Code       string `json:"code"`
	Value      string `json:"value"`
	ValueKind  string `json:"value_kind"`
	ValueUnit  string `json:"value_unit"`
	ValueText  string `json:"value_text"`
	Numeric    string `json:"numeric"`
	ValueType  string `json:"value_type"`
	Unit       string `json:"unit"`
	Status     string `json:"status"`
	ObservedAt string `json:"observed_at"`
}

type goldenResult struct {
	Error    string        `json:"error,omitempty"`
	Warnings []string      `json:"warnings"`
	Events   []goldenEvent `json:"events"`
}

func render(t testing.TB, res Result, err error) []byte {
	t.Helper()
	g := goldenResult{Warnings: []string{}, Events: []goldenEvent{}}
	if err != nil {
		g.Error = err.Error()
	}
	for _, w := range res.Warnings {
		g.Warnings = append(g.Warnings, w.String())
	}
	for _, e := range res.Events {
		ge := goldenEvent{
			ID: e.ID.String(), Type: e.Type, OccurredAt: e.OccurredAt.Format(time.RFC3339Nano),
			MessageID: e.MessageID.String(), PatientID: e.PatientID, PatientKey: e.PatientKey,
			EncounterID: e.EncounterID, Source: e.Source, Route: e.Route, SchemaVersion: e.SchemaVersion,
			Payload: e.Payload, Merge: e.Merge, Visit: e.Visit, Location: e.Location(),
		}
		if o := e.Observation; o != nil {
			ge.Observation = &goldenObs{
				Key: o.Key, Parameter: o.Parameter, Code: o.Code.System + "|" + o.Code.Code,
				ValueKind: string(o.Value.Kind), ValueUnit: o.Value.Unit, ValueText: o.Text(), Numeric: o.Numeric(), ValueType: o.ValueType,
				Unit: o.Unit, Status: o.Status, ObservedAt: o.ObservedAt.Format(time.RFC3339Nano),
			}
			if o.Value.Kind != "" {
				ge.Observation.Value = o.Value.String()
			}
		}
		g.Events = append(g.Events, ge)
	}
	b, jerr := json.MarshalIndent(g, "", "  ")
	if jerr != nil {
		t.Fatalf("render: %v", jerr)
	}
	return append(b, '\n')
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test -update after checking the change):\n%s", path, diff(string(want), string(got)))
	}
}

// diff shows the first differing lines.
func diff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return "line " + itoa(i+1) + ":\n  want: " + w + "\n  got:  " + g
		}
	}
	return ""
}

func itoa(i int) string { return strings.TrimSpace(strings.Repeat(" ", 0) + jsonNumber(i)) }

func jsonNumber(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestMapGolden(t *testing.T) {
	t.Parallel()
	tab := defaultTable(t)
	adt := Options{Route: "adt-feed", Mappings: []string{MappingADT}}
	obs := Options{Route: "results", Mappings: []string{MappingObservations}, Parameters: tab}
	with := func(o Options, f func(*Options)) Options { f(&o); return o }

	tests := []struct {
		name string
		file string
		edit func(string) string
		opt  Options
	}{
		{"adt_a01", "adt.hl7", nil, adt},
		{"adt_a01_both_mappings", "adt.hl7", nil, with(obs, func(o *Options) { o.Mappings = []string{MappingADT, MappingObservations} })},
		{"adt_a03_no_offset_london", "adt_no_offset.hl7", nil, with(adt, func(o *Options) { o.Location = zone(t, "Europe/London") })},
		{"adt_a40_two_pairs", "adt_a40.hl7", nil, adt},
		{"adt_no_pid3", "adt_no_pid3.hl7", nil, adt},
		{"adt_unknown_trigger", "adt_unknown_trigger.hl7", nil, adt},
		{"adt_trigger_from_evn", "adt_trigger_from_evn.hl7", nil, adt},
		{"adt_not_adt", "oru_vitals.hl7", nil, adt},
		{"oru_vitals", "oru_vitals.hl7", nil, obs},
		{"oru_vitals_without_parameters", "oru_vitals.hl7", nil, with(obs, func(o *Options) { o.Parameters = nil })},
		{"oru_acvpu", "oru_acvpu.hl7", nil, obs},
		{"oru_statuses", "oru_statuses.hl7", nil, obs},
		{"oru_statuses_preliminary", "oru_statuses.hl7", nil, with(obs, func(o *Options) { o.Preliminary = true })},
		{"oru_bad_values_dead_letter", "oru_bad_values.hl7", nil, obs},
		{"oru_bad_values_skip", "oru_bad_values.hl7", nil, with(obs, func(o *Options) { o.OnInvalid = OnInvalidSkip })},
		{"oru_lab", "oru_lab.hl7", nil, obs},
		{"oru_pcd01", "oru_pcd01.hl7", nil, obs},
		{"oru_two_patients_new_york", "oru_two_patients.hl7", nil, with(obs, func(o *Options) { o.Location = zone(t, "America/New_York") })},
		{"oru_no_pid3", "oru_no_pid3.hl7", nil, obs},
	}
	for _, trig := range []struct{ code, typ string }{
		{"A02", PatientTransferred}, {"A03", PatientDischarged}, {"A04", PatientRegistered}, {"A05", PatientPreadmitted},
		{"A08", PatientUpdated}, {"A11", PatientAdmissionCancelled}, {"A12", PatientTransferCancelled},
		{"A13", PatientDischargeCancelled}, {"A31", PatientUpdated},
	} {
		code := trig.code
		tests = append(tests, struct {
			name string
			file string
			edit func(string) string
			opt  Options
		}{"adt_" + strings.ToLower(code), "adt.hl7", func(s string) string {
			s = strings.Replace(s, "ADT^A01^ADT_A01", "ADT^"+code+"^ADT_A01", 1)
			return strings.Replace(s, "EVN|A01|", "EVN|"+code+"|", 1)
		}, adt})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw := readTestdata(t, tt.file)
			if tt.edit != nil {
				raw = []byte(tt.edit(string(raw)))
			}
			res, err := Map(parse(t, raw), tt.opt)
			if err != nil {
				var ie *InvalidError
				if !errors.As(err, &ie) {
					t.Fatalf("error %v is not an *InvalidError", err)
				}
				if len(res.Events) != 0 {
					t.Errorf("an invalid message produced %d events", len(res.Events))
				}
			}
			checkGolden(t, tt.name, render(t, res, err))
		})
	}
}

func TestADTTriggers(t *testing.T) {
	t.Parallel()
	raw := string(readTestdata(t, "adt.hl7"))
	for trig, typ := range adtTypes {
		if trig == "A40" {
			continue
		}
		t.Run(trig, func(t *testing.T) {
			t.Parallel()
			msg := strings.Replace(raw, "ADT^A01^ADT_A01", "ADT^"+trig, 1)
			res, err := Map(parse(t, []byte(msg)), Options{Route: "r", Mappings: []string{MappingADT}})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Events) != 1 || res.Events[0].Type != typ {
				t.Fatalf("got %v, want one %s", types(res), typ)
			}
			e := res.Events[0]
			want := time.Date(2026, 3, 12, 10, 0, 0, 0, time.UTC) // EVN-6 wins over EVN-2 and MSH-7
			if !e.OccurredAt.Equal(want) || e.PatientKey != "GENHOSP/MRN100" || e.PatientID != "MRN100" || e.EncounterID != "V9001" {
				t.Errorf("got occurred %v key %q id %q encounter %q", e.OccurredAt, e.PatientKey, e.PatientID, e.EncounterID)
			}
			var p struct {
				Trigger string `json:"trigger"`
			}
			if err := json.Unmarshal(e.Payload, &p); err != nil || p.Trigger != trig {
				t.Errorf("payload trigger %q (%v), want %s", p.Trigger, err, trig)
			}
		})
	}
}

func types(res Result) []string {
	var out []string
	for _, e := range res.Events {
		out = append(out, e.Type)
	}
	return out
}

func TestADTTimeFallbacks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		evn     string
		msh7    string
		want    time.Time
		wantErr string
	}{
		{"EVN-6 first", "EVN|A01|20260101100000+0000||||20260101090000+0000", "20260101110000+0000", time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC), ""},
		{"else EVN-2", "EVN|A01|20260101100000+0000", "20260101110000+0000", time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC), ""},
		{"else MSH-7", "EVN|A01", "20260101110000+0000", time.Date(2026, 1, 1, 11, 0, 0, 0, time.UTC), ""},
		{"no EVN: MSH-7", "", "20260101110000+0000", time.Date(2026, 1, 1, 11, 0, 0, 0, time.UTC), ""},
		{"EVN-6 unreadable is invalid, not guessed", "EVN|A01|20260101100000+0000||||yesterday", "20260101110000+0000", time.Time{}, "EVN[1]-6: EVN-6 event time unreadable"},
		{"no time at all", "EVN|A01", "", time.Time{}, "MSH-7: no clinical time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw := "MSH|^~\\&|PAS|GENHOSP|||" + tt.msh7 + "||ADT^A01|1|P|2.5\r"
			if tt.evn != "" {
				raw += tt.evn + "\r"
			}
			raw += "PID|1||MRN1^^^H\r"
			res, err := Map(parse(t, []byte(raw)), Options{Route: "r", Mappings: []string{MappingADT}})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Events[0].OccurredAt; !got.Equal(tt.want) {
				t.Errorf("occurred_at = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestObservationTimeFallbacks(t *testing.T) {
	t.Parallel()
	const msh = "MSH|^~\\&|MON|ICU|||20260101120000+0000||ORU^R01|1|P|2.6\rPID|||MRN1^^^H\r"
	tests := []struct {
		name       string
		body       string
		wantTime   time.Time
		wantSource string
	}{
		{"OBX-14", "OBR|1||F1|X^X^L|||20260101110000+0000\rOBX|1|NM|8867-4^HR^LN||80|/min|||||F|||20260101105900+0000\r",
			time.Date(2026, 1, 1, 10, 59, 0, 0, time.UTC), timeFromOBX},
		{"channel OBX-14 over MDS", "OBR|1||F1|X^X^MDC|||20260101110000+0000\r" +
			"OBX|1||69837^MDS^MDC|1.0.0.0|||||||X|||20260101100000+0000\r" +
			"OBX|2||69855^CHAN^MDC|1.1.1.0|||||||X|||20260101100100+0000\r" +
			"OBX|3|NM|147842^HR^MDC|1.1.1.147842|80|264864|||||R\r",
			time.Date(2026, 1, 1, 10, 1, 0, 0, time.UTC), timeFromParent},
		{"MDS when the channel has none", "OBR|1||F1|X^X^MDC|||20260101110000+0000\r" +
			"OBX|1||69837^MDS^MDC|1.0.0.0|||||||X|||20260101100000+0000\r" +
			"OBX|2||69855^CHAN^MDC|1.1.1.0|||||||X\r" +
			"OBX|3|NM|147842^HR^MDC|1.1.1.147842|80|264864|||||R\r",
			time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC), timeFromParent},
		{"a sibling channel is not an ancestor", "OBR|1||F1|X^X^MDC|||20260101110000+0000\r" +
			"OBX|1||69855^CHAN^MDC|1.1.2.0|||||||X|||20260101100100+0000\r" +
			"OBX|2|NM|147842^HR^MDC|1.1.1.147842|80|264864|||||R\r",
			time.Date(2026, 1, 1, 11, 0, 0, 0, time.UTC), timeFromOBR},
		{"OBR-7", "OBR|1||F1|X^X^L|||20260101110000+0000\rOBX|1|NM|8867-4^HR^LN||80|/min|||||F\r",
			time.Date(2026, 1, 1, 11, 0, 0, 0, time.UTC), timeFromOBR},
		{"MSH-7", "OBR|1||F1|X^X^L\rOBX|1|NM|8867-4^HR^LN||80|/min|||||F\r",
			time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC), timeFromMSH},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := Map(parse(t, []byte(msh+tt.body)), Options{Route: "r", Mappings: []string{MappingObservations}, Parameters: defaultTable(t)})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Events) != 1 {
				t.Fatalf("got %v, want one event", types(res))
			}
			e := res.Events[0]
			var p struct {
				ObservedAt string `json:"observed_at"`
				Source     string `json:"observed_at_source"`
			}
			if err := json.Unmarshal(e.Payload, &p); err != nil {
				t.Fatal(err)
			}
			if !e.OccurredAt.Equal(tt.wantTime) || !e.Observation.ObservedAt.Equal(tt.wantTime) || p.Source != tt.wantSource {
				t.Errorf("occurred %v observed %v source %q, want %v from %q", e.OccurredAt, e.Observation.ObservedAt, p.Source, tt.wantTime, tt.wantSource)
			}
			if p.ObservedAt != tt.wantTime.Format(time.RFC3339Nano) {
				t.Errorf("payload observed_at %q", p.ObservedAt)
			}
		})
	}
}

func TestTimeZones(t *testing.T) {
	t.Parallel()
	raw := readTestdata(t, "oru_two_patients.hl7") // times without offsets
	tests := []struct {
		name string
		loc  *time.Location
		want time.Time
	}{
		{"nil is UTC", nil, time.Date(2026, 3, 12, 15, 0, 0, 0, time.UTC)},
		{"New York in March (EDT, -4)", zone(t, "America/New_York"), time.Date(2026, 3, 12, 19, 0, 0, 0, time.UTC)},
		{"London in March (GMT)", zone(t, "Europe/London"), time.Date(2026, 3, 12, 15, 0, 0, 0, time.UTC)},
		{"Tokyo (+9)", zone(t, "Asia/Tokyo"), time.Date(2026, 3, 12, 6, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := Map(parse(t, raw), Options{Route: "r", Mappings: []string{MappingObservations}, Parameters: defaultTable(t), Location: tt.loc})
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Events[0].OccurredAt; !got.Equal(tt.want) || got.Location() != time.UTC {
				t.Errorf("occurred_at = %v, want %v in UTC", got, tt.want)
			}
		})
	}
	// A written offset wins over the route's zone.
	res, err := Map(parse(t, readTestdata(t, "oru_vitals.hl7")), Options{Route: "r", Mappings: []string{MappingObservations}, Location: zone(t, "Asia/Tokyo")})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Events[0].OccurredAt, time.Date(2026, 3, 12, 10, 21, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("explicit offset: occurred_at = %v, want %v", got, want)
	}
}

func TestDeterministicIDs(t *testing.T) {
	t.Parallel()
	tab := defaultTable(t)
	for _, f := range []string{"oru_lab.hl7", "adt_a40.hl7", "oru_pcd01.hl7"} {
		t.Run(f, func(t *testing.T) {
			t.Parallel()
			opt := Options{Route: "route-a", Mappings: []string{MappingADT, MappingObservations}, Parameters: tab}
			raw := readTestdata(t, f)
			a, err := Map(parse(t, raw), opt)
			if err != nil {
				t.Fatal(err)
			}
			b, err := Map(parse(t, raw), opt)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(render(t, a, nil), render(t, b, nil)) {
				t.Fatal("mapping the same message twice gave different results")
			}
			opt.Route = "route-b"
			c, err := Map(parse(t, raw), opt)
			if err != nil {
				t.Fatal(err)
			}
			m := parse(t, raw)
			m.ID = uuid.MustParse("01960000-0000-7000-8000-00000000b0b0")
			d, err := Map(m, Options{Route: "route-a", Mappings: opt.Mappings, Parameters: tab})
			if err != nil {
				t.Fatal(err)
			}
			seen := map[uuid.UUID]bool{}
			for i := range a.Events {
				id := a.Events[i].ID
				if seen[id] {
					t.Errorf("event ID %s repeats within a message", id)
				}
				seen[id] = true
				if c.Events[i].ID == id {
					t.Errorf("event %d: another route gave the same ID", i)
				}
				if d.Events[i].ID == id {
					t.Errorf("event %d: another message gave the same ID", i)
				}
				if a.Events[i].Observation != nil && a.Events[i].Observation.Key != d.Events[i].Observation.Key {
					t.Errorf("event %d: the observation key depends on the stored message, so a resend would not match", i)
				}
			}
		})
	}
}

func TestEventsInMessageOrder(t *testing.T) {
	t.Parallel()
	// An ADT carrying a result: the patient event (PID) comes before the
	// observation (OBX) whichever mapping is listed first.
	raw := "MSH|^~\\&|PAS|H|||20260101120000+0000||ADT^A08|1|P|2.5\rEVN|A08\rPID|1||M1^^^H\rOBR|1||F1|X^X^L\rOBX|1|NM|8867-4^HR^LN||80|/min|||||F\r"
	res, err := Map(parse(t, []byte(raw)), Options{Route: "r", Mappings: []string{MappingObservations, MappingADT}, Parameters: defaultTable(t)})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(types(res), ","); got != PatientUpdated+","+ObservationRecorded {
		t.Errorf("order = %s", got)
	}
}

func TestObservationKeyStableAcrossCorrections(t *testing.T) {
	t.Parallel()
	tab := defaultTable(t)
	key := func(status, value, msh7, control string) string {
		raw := "MSH|^~\\&|LIMS|LAB|||" + msh7 + "||ORU^R01|" + control + "|P|2.5\rPID|1||M1^^^H\r" +
			"OBR|1|P1^EPR|F1^LIMS|2524-7^Lactate^LN|||20260101100000+0000\r" +
			"OBX|1|NM|2524-7^Lactate^LN|1|" + value + "|mmol/L|||||" + status + "|||20260101100500+0000\r"
		res, err := Map(parse(t, []byte(raw)), Options{Route: "r", Mappings: []string{MappingObservations}, Parameters: tab})
		if err != nil {
			t.Fatal(err)
		}
		return res.Events[0].Observation.Key
	}
	f := key("F", "2.0", "20260101101000+0000", "A")
	if c := key("C", "2.4", "20260101113000+0000", "B"); c != f {
		t.Error("a correction has another key than the result it corrects")
	}
	if d := key("D", "", "20260101120000+0000", "C"); d != f {
		t.Error("a deletion has another key than the result it deletes")
	}

	// Device streams: the same metric at another time is another observation.
	dev := func(obx14 string) string {
		raw := "MSH|^~\\&|GW|ICU|||20260101120000+0000||ORU^R01|1|P|2.6\rPID|||M1^^^H\rOBR|1|P1|F1|69837^MDS^MDC\r" +
			"OBX|1|NM|147842^HR^MDC|1.1.1.147842|80|264864|||||R|||" + obx14 + "\r"
		res, err := Map(parse(t, []byte(raw)), Options{Route: "r", Mappings: []string{MappingObservations}, Parameters: tab})
		if err != nil {
			t.Fatal(err)
		}
		return res.Events[0].Observation.Key
	}
	if dev("20260101100000+0000") == dev("20260101100100+0000") {
		t.Error("two device readings at different times share a key")
	}
}

func TestSetReplaces(t *testing.T) {
	t.Parallel()
	res, err := Map(parse(t, readTestdata(t, "oru_statuses.hl7")), Options{Route: "r", Mappings: []string{MappingObservations}, Parameters: defaultTable(t)})
	if err != nil {
		t.Fatal(err)
	}
	prior := uuid.MustParse("01960000-0000-7000-8000-0000000000aa")
	for i := range res.Events {
		e := &res.Events[i]
		before := string(e.Payload)
		err := e.SetReplaces(prior)
		switch e.Type {
		case ObservationRecorded:
			if !errors.Is(err, ErrNotReplaceable) || string(e.Payload) != before {
				t.Errorf("%s: SetReplaces = %v", e.Type, err)
			}
		default:
			if err != nil {
				t.Fatalf("%s: %v", e.Type, err)
			}
			var p struct {
				Replaces *string `json:"replaces"`
			}
			if err := json.Unmarshal(e.Payload, &p); err != nil || p.Replaces == nil || *p.Replaces != prior.String() {
				t.Errorf("%s: replaces = %v (%v)", e.Type, p.Replaces, err)
			}
			if err := e.SetReplaces(prior); err == nil {
				t.Errorf("%s: SetReplaces twice succeeded", e.Type)
			}
		}
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	m := parse(t, readTestdata(t, "adt.hl7"))
	tests := []struct {
		name string
		opt  Options
		ok   bool
	}{
		{"defaults", Options{Mappings: []string{MappingADT}}, true},
		{"skip", Options{Mappings: []string{MappingADT}, OnInvalid: OnInvalidSkip}, true},
		{"dead letter", Options{Mappings: []string{MappingADT}, OnInvalid: OnInvalidDeadLetter}, true},
		{"unknown mapping", Options{Mappings: []string{"orders"}}, false},
		{"unknown on_invalid", Options{Mappings: []string{MappingADT}, OnInvalid: "ignore"}, false},
		{"no mappings maps nothing", Options{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Map(m, tt.opt)
			if tt.ok != (err == nil) {
				t.Fatalf("Map error = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrOptions) {
				t.Errorf("error %v is not ErrOptions", err)
			}
			if (tt.opt.Validate() == nil) != tt.ok {
				t.Errorf("Validate disagrees with Map")
			}
		})
	}
	if _, err := Map(Message{}, Options{}); !errors.Is(err, ErrOptions) {
		t.Errorf("unparsed message: %v", err)
	}
	if got := Mappings(); len(got) != 2 || got[0] != MappingADT || got[1] != MappingObservations {
		t.Errorf("Mappings() = %v", got)
	}
}

// TestInvalidReasonsCarryNoPatientData checks that dead-letter reasons
// name fields, never values.
func TestInvalidReasonsCarryNoPatientData(t *testing.T) {
	t.Parallel()
	raw := "MSH|^~\\&|EOBS|W|||20260101120000+0000||ORU^R01|1|P|2.5\rPID|1||SECRETMRN^^^H||SECRETNAME\r" +
		"OBR|1||F1|X^X^L\rOBX|1|NM|8867-4^HR^LN||SECRETVALUE|/min|||||F\r"
	_, err := Map(parse(t, []byte(raw)), Options{Route: "r", Mappings: []string{MappingObservations}, Parameters: defaultTable(t)})
	if err == nil {
		t.Fatal("a non-numeric heart rate was accepted")
	}
	for _, secret := range []string{"SECRETMRN", "SECRETNAME", "SECRETVALUE"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q contains %s", err, secret)
		}
	}
	var ie *InvalidError
	if !errors.As(err, &ie) || ie.Location.String() != "OBX[1]-5" {
		t.Errorf("location = %v", ie)
	}
}

// corpusCase maps a corpus file with both mappings and the default
// parameters.
func corpusMap(t *testing.T, file string, opt Options) (Result, error) {
	t.Helper()
	if opt.Route == "" {
		opt.Route = "corpus"
	}
	if opt.Mappings == nil {
		opt.Mappings = []string{MappingADT, MappingObservations}
	}
	if opt.Parameters == nil {
		opt.Parameters = defaultTable(t)
	}
	return Map(parse(t, testcorpus.Read(t, file)), opt)
}

func TestCorpusADT(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file      string
		typ       string
		key       string
		occurred  string
		encounter string
	}{
		{"23_adt-a01-hnam-nulls-pythonhl7.hl7", PatientAdmitted, "MSH_MRN/2148790", "2013-10-17T14:00:41Z", "01"},
		{"24_adt-a02-fhirconv.hl7", PatientTransferred, "test1/PATID1234", "2021-08-17T13:19:43.4Z", "40007716"},
		{"25_adt-a03-fhirconv.hl7", PatientDischarged, "test1/PATID1234", "2021-08-17T13:19:43.4Z", "40007716"},
		{"26_adt-a08-fhirconv.hl7", PatientUpdated, "test1/PATID1234", "2021-08-17T13:19:43.4Z", "40007716"},
		{"27_adt-a11-fhirconv.hl7", PatientAdmissionCancelled, "test1/PATID1234", "2021-08-17T13:19:43.4Z", "40007716"},
		{"28_adt-a13-fhirconv.hl7", PatientDischargeCancelled, "test1/PATID1234", "2021-08-17T13:19:43.4Z", "40007716"},
		{"29_adt-a31-fhirconv.hl7", PatientUpdated, "test1/PATID1234", "2021-08-17T13:19:43.4Z", "40007716"},
		{"32_adt-a01-v28-full-fhirconv.hl7", PatientAdmitted, "test1/PATID1234", "2021-08-17T13:19:43.4Z", "40007716"},
		{"34_adt-a04-utf8-bom-fhirconv.hl7", PatientRegistered, "NINTENDO/123456789", "2000-12-31T17:00:00Z", "0123456789"},
		{"45_adt-a31-empty-pd1-crlf-hapi.hl7", PatientUpdated, "ADMISSION/M07869D", "2008-06-27T09:19:43Z", ""},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			res, err := corpusMap(t, tt.file, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Events) != 1 {
				t.Fatalf("got %v, want one %s", types(res), tt.typ)
			}
			e := res.Events[0]
			if e.Type != tt.typ || e.PatientKey != tt.key || e.OccurredAt.Format(time.RFC3339Nano) != tt.occurred || e.EncounterID != tt.encounter {
				t.Errorf("got %s %q %s %q, want %s %q %s %q", e.Type, e.PatientKey, e.OccurredAt.Format(time.RFC3339Nano), e.EncounterID, tt.typ, tt.key, tt.occurred, tt.encounter)
			}
			if !json.Valid(e.Payload) {
				t.Error("payload is not JSON")
			}
		})
	}
}

func TestCorpusMerges(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		file  string
		pairs [][2]string // surviving key, prior key
	}{
		{"30_adt-a40-merge-fhirconv.hl7", [][2]string{{"BCBS/12345", "BCBS/56789"}}},
		{"66_variant-lf-adt-a40-fhirconv.hl7", [][2]string{{"BCBS/12345", "BCBS/56789"}}},
		{"31_adt-a40-two-merges-fhirconv.hl7", [][2]string{{"BCBS/12345", "BCBS/56789"}, {"BCBS/145", "BCBS/569"}}},
	} {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			res, err := corpusMap(t, tt.file, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Events) != len(tt.pairs) {
				t.Fatalf("got %v, want %d merges", types(res), len(tt.pairs))
			}
			for i, pair := range tt.pairs {
				e := res.Events[i]
				key := "adt"
				if i > 0 {
					key = "adt/" + jsonNumber(i+1)
				}
				if e.Type != PatientMerged || e.PatientKey != pair[0] || e.Merge == nil || e.Merge.SurvivingKey != pair[0] || e.Merge.PriorKey != pair[1] {
					t.Errorf("event %d: %s %q %+v, want %v", i, e.Type, e.PatientKey, e.Merge, pair)
				}
				if e.ID != NewID(testMessageID, "corpus", key) {
					t.Errorf("event %d: ID is not NewID(message, route, %q)", i, key)
				}
				var p struct {
					Prior struct {
						PatientKey  string           `json:"patient_key"`
						Identifiers []identifierJSON `json:"identifiers"`
					} `json:"prior_patient"`
				}
				if err := json.Unmarshal(e.Payload, &p); err != nil || p.Prior.PatientKey != pair[1] || len(p.Prior.Identifiers) != 1 {
					t.Errorf("event %d: prior_patient %+v (%v)", i, p.Prior, err)
				}
			}
		})
	}
}

func TestCorpusInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file    string
		opt     Options
		wantLoc string
		want    string
	}{
		{"46_adt-a45-version-components-hapi.hl7", Options{Mappings: []string{MappingADT}}, "MSH-9.2", "trigger A45 is not mapped by the adt mapping"},
		{"37_adt-a24-caret-fieldsep-hapi.hl7", Options{Mappings: []string{MappingADT}}, "MSH-9.2", "trigger A24 is not mapped"},
		{"33_oru-r01-nist-lri-cbc-fhirconv.hl7", Options{Mappings: []string{MappingADT}}, "MSH-9.1", "message type ORU is not ADT"},
		{"42_oru-r01-ft-formatting-hapi.hl7", Options{Mappings: []string{MappingObservations}}, "PID-3", "PID-3 patient identifier missing"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			res, err := corpusMap(t, tt.file, tt.opt)
			var ie *InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("error = %v, want an *InvalidError", err)
			}
			if ie.Location.String() != tt.wantLoc || !strings.Contains(ie.Reason, tt.want) {
				t.Errorf("got %s: %s, want %s: %s", ie.Location, ie.Reason, tt.wantLoc, tt.want)
			}
			if len(res.Events) != 0 {
				t.Error("events returned with an error")
			}
		})
	}
}

func TestCorpusLab(t *testing.T) {
	t.Parallel()

	t.Run("33 CBC", func(t *testing.T) {
		t.Parallel()
		res, err := corpusMap(t, "33_oru-r01-nist-lri-cbc-fhirconv.hl7", Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Events) != 28 || len(res.Warnings) != 0 {
			t.Fatalf("got %d events, %d warnings; want 28, 0", len(res.Events), len(res.Warnings))
		}
		var wbc, text, code int
		for _, e := range res.Events {
			o := e.Observation
			if e.Type != ObservationRecorded || e.PatientKey != "NIST MPI/PATID1234" {
				t.Errorf("%s %s", e.Type, e.PatientKey)
			}
			if !e.OccurredAt.Equal(time.Date(2011, 1, 3, 22, 34, 28, 0, time.UTC)) {
				t.Errorf("occurred_at %v, want OBX-14 2011-01-03T14:34:28-08:00", e.OccurredAt)
			}
			switch {
			case o.Parameter == clinical.WBC:
				wbc++
				if o.Value.String() != "105.600" || o.Unit != "10*9/L" {
					t.Errorf("wbc = %s %s", o.Value, o.Unit)
				}
			case o.ValueType == ValueText:
				text++
			case o.ValueType == ValueCode:
				code++
			}
		}
		if wbc != 1 || text != 3 || code != 6 {
			t.Errorf("wbc %d text %d code %d, want 1, 3, 6", wbc, text, code)
		}
	})

	t.Run("52 NTE with line breaks and an alternate LOINC", func(t *testing.T) {
		t.Parallel()
		res, err := corpusMap(t, "52_oru-r01-v23-nte-br-prs.hl7", Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Events) != 1 {
			t.Fatalf("got %v", types(res))
		}
		var p observationPayload
		if err := json.Unmarshal(res.Events[0].Payload, &p); err != nil {
			t.Fatal(err)
		}
		if p.Notes == nil || !strings.Contains(*p.Notes, "information.\n\nThis test") || strings.Contains(*p.Notes, `\.br\`) {
			t.Errorf("notes = %v", p.Notes)
		}
		if p.AlternateCode == nil || *p.AlternateCode.Code != "94500-6" || *p.AlternateCode.CodingSystem != "LN" {
			t.Errorf("alternate code = %+v", p.AlternateCode)
		}
		if p.Order.Filler == nil || p.Order.Filler.ID != "2107662558" || p.Order.Placer != nil {
			t.Errorf("order = %+v", p.Order)
		}
		if res.Events[0].EncounterID != "2001408726" {
			t.Errorf("encounter = %q", res.Events[0].EncounterID)
		}
	})

	t.Run("57 many OBR groups", func(t *testing.T) {
		t.Parallel()
		res, err := corpusMap(t, "57_oru-r01-utf8-micro-no-msh18-prs.hl7", Options{})
		if err != nil {
			t.Fatal(err)
		}
		orders := map[string]bool{}
		for _, e := range res.Events {
			var p observationPayload
			if err := json.Unmarshal(e.Payload, &p); err != nil {
				t.Fatal(err)
			}
			orders[*p.Order.SetID] = true
			if p.Unit != nil && strings.Contains(*p.Unit, "\u00b5") && p.ValueType != ValueNumber {
				t.Errorf("µmol/L value typed %s", p.ValueType)
			}
		}
		if len(res.Events) < 100 || len(orders) < 10 {
			t.Errorf("%d events across %d orders", len(res.Events), len(orders))
		}
	})

	t.Run("58 hex escapes in NTE", func(t *testing.T) {
		t.Parallel()
		res, err := corpusMap(t, "58_oru-r01-hex-escape-prs.hl7", Options{})
		if err != nil {
			t.Fatal(err)
		}
		var p observationPayload
		if err := json.Unmarshal(res.Events[0].Payload, &p); err != nil {
			t.Fatal(err)
		}
		if p.Notes == nil || !strings.Contains(*p.Notes, "Interpretation: \r\nNormal <5.7") || !strings.Contains(*p.Notes, "&#8805;6.5") {
			t.Errorf("notes = %q", *p.Notes)
		}
	})

	t.Run("16 SN with an empty comparator", func(t *testing.T) {
		t.Parallel()
		res, err := corpusMap(t, "16_oru-r01-ghh-glucose-pythonhl7.hl7", Options{})
		if err != nil {
			t.Fatal(err)
		}
		if o := res.Events[0].Observation; o.ValueType != ValueNumber || o.Text() != "182" || o.Numeric() != "" {
			t.Errorf("SN ^182 = %s %q %q (unmapped: no Numeric)", o.ValueType, o.Text(), o.Numeric())
		}
	})
}

func TestCorpusDevices(t *testing.T) {
	t.Parallel()

	t.Run("35 PCD-01 blood pressure", func(t *testing.T) {
		t.Parallel()
		res, err := corpusMap(t, "35_oru-r01-pcd01-bp-ipf.hl7", Options{})
		if err != nil {
			t.Fatal(err)
		}
		want := []struct{ param, value string }{{clinical.SystolicBP, "120"}, {clinical.DiastolicBP, "80"}, {"", ""}}
		if len(res.Events) != len(want) {
			t.Fatalf("got %v; the MDS and channel rows carry no value and must not map", types(res))
		}
		for i, w := range want {
			e := res.Events[i]
			o := e.Observation
			if e.Type != ObservationRecorded || o.Parameter != w.param || (w.value != "" && o.Value.String() != w.value) {
				t.Errorf("event %d: %s %q %s, want %q %s", i, e.Type, o.Parameter, o.Value, w.param, w.value)
			}
			// Inherited from the channel row 1.0.1 (OBX-14 20090813095715+0500).
			if !e.OccurredAt.Equal(time.Date(2009, 8, 13, 4, 57, 15, 0, time.UTC)) {
				t.Errorf("event %d: occurred_at %v", i, e.OccurredAt)
			}
			var p observationPayload
			if err := json.Unmarshal(e.Payload, &p); err != nil {
				t.Fatal(err)
			}
			if p.ObservedAtSource != timeFromParent || p.Device == nil || len(p.Device.Identifiers) != 1 || p.Device.Identifiers[0].ID != "0123456789ABCDEF" || len(p.Device.Hierarchy) != 2 {
				t.Errorf("event %d: source %s device %+v", i, p.ObservedAtSource, p.Device)
			}
		}
	})

	t.Run("36 PCD-01 statuses and notes", func(t *testing.T) {
		t.Parallel()
		res, err := corpusMap(t, "36_oru-r01-pcd01-max-8859-ipf.hl7", Options{})
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join(types(res), ",")
		want := strings.Join([]string{ObservationRecorded, ObservationCorrected, ObservationRetracted, ObservationRecorded}, ",")
		if got != want {
			t.Fatalf("types = %s, want %s", got, want)
		}
		if c := res.Events[1].Observation; c.Parameter != clinical.SystolicBP || c.Value.String() != "140" {
			t.Errorf("corrected = %+v", c)
		}
		if d := res.Events[2].Observation; d.Parameter != clinical.DiastolicBP || d.Value.Kind != "" {
			t.Errorf("retracted = %+v; a retraction carries no scoreable value", d)
		}
		if len(res.Warnings) != 2 || !strings.Contains(res.Warnings[0].Reason, "status S") || !strings.Contains(res.Warnings[1].Reason, "status U") {
			t.Errorf("warnings = %v", res.Warnings)
		}
		if res.Events[0].EncounterID != "72008190" {
			t.Errorf("encounter = %q", res.Events[0].EncounterID)
		}
	})

	t.Run("36 with preliminary results", func(t *testing.T) {
		t.Parallel()
		res, err := corpusMap(t, "36_oru-r01-pcd01-max-8859-ipf.hl7", Options{Preliminary: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Events) != 4 {
			t.Errorf("got %v: the P row carries no value, so Preliminary adds nothing", types(res))
		}
	})
}

// TestLargeMessageStaysLinear maps one order with many deep PCD-01 rows
// and no PV1: ancestry and visit look-ups must not rescan the message per
// OBX, or one such message would stall its patient's partition.
func TestLargeMessageStaysLinear(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("MSH|^~\\&|GW|ICU|||20260101120000+0000||ORU^R01|1|P|2.6\rPID|||M1^^^H\rOBR|1|P1|F1|69837^MDS^MDC|||20260101110000+0000\r")
	b.WriteString("OBX|1||69837^MDS^MDC|1.0.0.0|||||||X|||20260101100000+0000||||AABB^EUI-64\r")
	const rows = 20000
	for i := 0; i < rows; i++ {
		b.WriteString("OBX|" + jsonNumber(i+2) + "|NM|147842^HR^MDC|1." + jsonNumber(i%50+1) + ".1." + jsonNumber(i) + "|80|264864|||||R\r")
	}
	m := parse(t, []byte(b.String()))
	start := time.Now()
	res, err := Map(m, Options{Route: "r", Mappings: []string{MappingObservations}, Parameters: defaultTable(t)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != rows {
		t.Fatalf("got %d events, want %d", len(res.Events), rows)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("mapping %d rows took %v", rows, d)
	}
}

// TestNULNeverReachesTheStore: PostgreSQL rejects NUL in text and
// \u0000 in jsonb, so a message carrying one must still map to storable
// events.
func TestNULNeverReachesTheStore(t *testing.T) {
	t.Parallel()
	raw := "MSH|^~\\&|LIMS|LAB\x00|||20260101120000+0000||ORU^R01|1|P|2.5\rPID|1||M\x001^^^H\rPV1|1|I|W\\X00\\7||||||||||||||||V\x009\r" +
		"OBR|1||F1|X^X^L\rOBX|1|ST|C\x00D^Text^L||a\\X00\\b \\E\\u0000 c|u\x00|||||F\r"
	res, err := Map(parse(t, []byte(raw)), Options{Route: "r", Mappings: []string{MappingObservations}})
	if err != nil {
		t.Fatal(err)
	}
	e := res.Events[0]
	for _, s := range []string{e.PatientID, e.PatientKey, e.EncounterID, e.Source, e.Observation.Code.Code, e.Observation.ValueText, e.Observation.Unit} {
		if strings.ContainsRune(s, 0) {
			t.Errorf("%q contains NUL", s)
		}
	}
	if bytes.Contains(e.Payload, []byte(`\u0000`)) && !bytes.Contains(e.Payload, []byte(`\\u0000`)) {
		t.Errorf("payload carries \\u0000: %s", e.Payload)
	}
	var p observationPayload
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		t.Fatal(err)
	}
	if *p.Value != "a\ufffdb \\u0000 c" {
		t.Errorf("value = %q; the NUL becomes U+FFFD and the text \\u0000 stays", *p.Value)
	}
}

func TestOrderWithoutEventsNeedsNoPatient(t *testing.T) {
	t.Parallel()
	// Only device grouping rows: nothing to map, so no PID is needed.
	raw := "MSH|^~\\&|GW|ICU|||20260101120000+0000||ORU^R01|1|P|2.6\rOBR|1|P1|F1|69837^MDS^MDC\r" +
		"OBX|1||69837^MDS^MDC|1.0.0.0|||||||X\rOBX|2||69855^CHAN^MDC|1.1.1.0|||||||R\r"
	res, err := Map(parse(t, []byte(raw)), Options{Route: "r", Mappings: []string{MappingObservations}})
	if err != nil || len(res.Events) != 0 {
		t.Fatalf("got %v, %v; want no events and no error", types(res), err)
	}
	// With a value, the missing patient is an error whatever on_invalid says.
	raw += "OBX|3|NM|147842^HR^MDC|1.1.1.147842|80|264864|||||R\r"
	_, err = Map(parse(t, []byte(raw)), Options{Route: "r", Mappings: []string{MappingObservations}, OnInvalid: OnInvalidSkip})
	var ie *InvalidError
	if !errors.As(err, &ie) || !strings.Contains(ie.Reason, "PID-3") {
		t.Errorf("error = %v, want PID-3 missing", err)
	}
}

func TestUnmappedValueTypes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, obx2, obx5 string
		wantType         string
		wantValue        string // "<nil>" for null
		wantComparator   string
		wantValue2       string
	}{
		{"NM exact", "NM", "007.50", ValueNumber, "7.50", "", ""},
		{"NM not a number", "NM", "see note", ValueText, "see note", "", ""},
		{"SN plain", "SN", "^182", ValueNumber, "182", "", ""},
		{"SN equals", "SN", "=^0.5", ValueNumber, "0.5", "", ""},
		{"SN without components", "SN", "182", ValueNumber, "182", "", ""},
		{"SN greater or equal", "SN", ">=^32", ValueComparison, "32", ">=", ""},
		{"SN range", "SN", "^2^-^4", ValueRange, "2", "", "4"},
		{"SN ratio", "SN", "^1^:^128", ValueRatio, "1", "", "128"},
		{"SN ratio with slash and comparator", "SN", "<^1^/^64", ValueRatio, "1", "<", "64"},
		{"SN categorical", "SN", "^2^+", ValueText, "2+", "", ""},
		{"CWE", "CWE", "260415000^not detected^SCT", ValueCode, "260415000", "", ""},
		{"CE alternate only", "CE", "^^^LOC1^Local^L", ValueCode, "LOC1", "", ""},
		{"ST decoded", "ST", "A \\T\\ B", ValueText, "A & B", "", ""},
		{"FT repetitions", "FT", "one~two", ValueText, "one\ntwo", "", ""},
		{"DTM", "DTM", "20260101103000+0100", ValueDateTime, "2026-01-01T09:30:00Z", "", ""},
		{"DT bad date is text", "DT", "2026-01-01", ValueText, "2026-01-01", "", ""},
		{"ED not copied", "ED", "^text^pdf^Base64^AAAA", ValueEmbedded, "<nil>", "", ""},
		{"unknown type is text", "XYZ", "abc", ValueText, "abc", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw := "MSH|^~\\&|L|F|||20260101120000+0000||ORU^R01|1|P|2.5\rPID|1||M1^^^H\rOBR|1||F1|X^X^L\r" +
				"OBX|1|" + tt.obx2 + "|LOCAL^Local^99L||" + tt.obx5 + "||||||F\r"
			res, err := Map(parse(t, []byte(raw)), Options{Route: "r", Mappings: []string{MappingObservations}, Parameters: defaultTable(t)})
			if err != nil {
				t.Fatal(err)
			}
			var p observationPayload
			if err := json.Unmarshal(res.Events[0].Payload, &p); err != nil {
				t.Fatal(err)
			}
			str := func(s *string) string {
				if s == nil {
					return "<nil>"
				}
				return *s
			}
			if p.ValueType != tt.wantType || str(p.Value) != tt.wantValue {
				t.Errorf("got %s %q, want %s %q", p.ValueType, str(p.Value), tt.wantType, tt.wantValue)
			}
			if c := str(p.Comparator); (tt.wantComparator == "" && c != "<nil>") || (tt.wantComparator != "" && c != tt.wantComparator) {
				t.Errorf("comparator = %s, want %q", c, tt.wantComparator)
			}
			if v := str(p.Value2); (tt.wantValue2 == "" && v != "<nil>") || (tt.wantValue2 != "" && v != tt.wantValue2) {
				t.Errorf("value_2 = %s, want %q", v, tt.wantValue2)
			}
		})
	}
}

func TestMappedValueEdgeCases(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		obx       string
		want      string // value, or "invalid: <location>"
		wantUnit  string
		wantOrigU string
	}{
		{"SN number for a numeric parameter", "OBX|1|SN|8867-4^HR^LN||=^72|/min|||||F", "72", "/min", ""},
		{"ST number for a numeric parameter", "OBX|1|ST|8867-4^HR^LN||72|/min|||||F", "72", "/min", ""},
		{"alternate unit OBX-6.4", "OBX|1|NM|8480-6^SBP^LN||120|mmHg^^L^mm[Hg]^^UCUM|||||F", "120", "mm[Hg]", ""},
		{"alternate unit after an MDC code", "OBX|1|NM|150021^NIBP^MDC|1.1.1.1|120|local^^L^266016^^MDC|||||R", "120", "mm[Hg]", "266016"},
		{"repeated value is invalid", "OBX|1|NM|8867-4^HR^LN||60~120|/min|||||F", "invalid: OBX[1]-5", "", ""},
		{"SN range is invalid for a parameter", "OBX|1|SN|8867-4^HR^LN||^60^-^80|/min|||||F", "invalid: OBX[1]-5", "", ""},
		{"display text never matches", "OBX|1|NM|LOCAL^Heart rate^L||72|/min|||||F", "72", "/min", ""},
		{"MDC text in OBX-3.1 never matches", "OBX|1|NM|MDC_PULS_RATE^^MDC||72|bpm|||||F", "72", "bpm", ""},
		{"LOINC alternate for a local code", "OBX|1|NM|HR1^Pulse^L^8867-4^^LN||72|/min|||||F", "72", "/min", ""},
		{"coded alternate answer", "OBX|1|CWE|67775-7^AVPU^LN||^^^P^Pain^L||||||F", "P", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw := "MSH|^~\\&|L|F|||20260101120000+0000||ORU^R01|1|P|2.5\rPID|1||M1^^^H\rOBR|1||F1|X^X^L\r" + tt.obx + "\r"
			res, err := Map(parse(t, []byte(raw)), Options{Route: "r", Mappings: []string{MappingObservations}, Parameters: defaultTable(t)})
			if strings.HasPrefix(tt.want, "invalid: ") {
				var ie *InvalidError
				if !errors.As(err, &ie) || ie.Location.String() != strings.TrimPrefix(tt.want, "invalid: ") {
					t.Fatalf("error = %v, want %s", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o := res.Events[0].Observation
			var p observationPayload
			if err := json.Unmarshal(res.Events[0].Payload, &p); err != nil {
				t.Fatal(err)
			}
			ou := ""
			if p.OriginalUnit != nil {
				ou = *p.OriginalUnit
			}
			if o.Text() != tt.want || o.Unit != tt.wantUnit || ou != tt.wantOrigU {
				t.Errorf("got %q %q (original unit %q), want %q %q (%q)", o.Text(), o.Unit, ou, tt.want, tt.wantUnit, tt.wantOrigU)
			}
		})
	}
}
