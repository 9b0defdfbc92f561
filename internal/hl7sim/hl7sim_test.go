package hl7sim

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aortahealth/aorta/pkg/clinical"
	"github.com/aortahealth/aorta/pkg/event"
	"github.com/aortahealth/aorta/pkg/hl7"
	"github.com/aortahealth/aorta/pkg/route"
	"github.com/aortahealth/aorta/pkg/score"
)

// start is the clinical time of the first message in these tests, with an
// offset, as the simulator writes it.
var start = time.Date(2026, 3, 14, 9, 30, 0, 0, time.FixedZone("", 3600))

// shipped loads the repository's routes.yaml, the routes the simulated
// feed must work with as shipped.
func shipped(t *testing.T) *route.Config {
	t.Helper()
	scores := []string{score.NameNEWS2, score.NameQSOFA, score.NameSIRS}
	cfg, err := route.LoadWith("../../routes.yaml",
		route.Registry{Mappings: event.Mappings(), Handlers: scores, Scores: scores},
		route.ParseOptions{SkipSecrets: true})
	if err != nil {
		t.Fatalf("load the shipped routes.yaml: %v", err)
	}
	return cfg
}

func newWard(t *testing.T, o Options) *Ward {
	t.Helper()
	if o.Now.IsZero() {
		o.Now = start
	}
	w, err := NewWard(o)
	if err != nil {
		t.Fatalf("NewWard(%+v): %v", o, err)
	}
	return w
}

// parse returns a function that parses a message a builder returned, so
// that parse(t)(VitalSigns(...)) reads as one call.
func parse(t *testing.T) func(raw []byte, err error) *hl7.Message {
	return func(raw []byte, err error) *hl7.Message {
		t.Helper()
		return parseBuilt(t, raw, err)
	}
}

func parseBuilt(t *testing.T, raw []byte, err error) *hl7.Message {
	t.Helper()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	m, err := hl7.Parse(raw)
	if err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	if errs := m.Header().Check(); len(errs) > 0 {
		t.Fatalf("header of %q: %v", raw, errs)
	}
	return m
}

func get(t *testing.T, m *hl7.Message, loc string) string {
	t.Helper()
	v, err := m.Get(loc)
	if err != nil {
		t.Fatalf("get %s: %v", loc, err)
	}
	return v
}

// firstRoute is the route the router applies to a message (no shipped
// route continues).
func firstRoute(cfg *route.Config, m *hl7.Message) string {
	rs := cfg.Match(m)
	if len(rs) == 0 {
		return "(unrouted)"
	}
	return rs[0].Name
}

// values maps every OBX of a vital signs message to its parameter with the
// route's table, as the router does, and returns the values scores read.
// Every OBX must map and normalise: the scores must be complete.
func values(t *testing.T, rt *route.Route, m *hl7.Message) map[string]score.Value {
	t.Helper()
	out := map[string]score.Value{}
	for obx := range m.All("OBX") {
		code := clinical.Code{System: obx.Field(3).Component(3).String(), Code: obx.Field(3).Component(1).String()}
		p, ok := rt.Table.Lookup(code)
		if !ok {
			t.Fatalf("route %s does not map OBX-3 %v", rt.Name, code)
		}
		value, unit := obx.Field(5).String(), obx.Field(6).Component(1).String()
		if p.Kind == clinical.Coded {
			value = obx.Field(5).Component(1).String()
		}
		v, err := p.Normalize(value, unit)
		if err != nil {
			t.Fatalf("%s %q %q: %v", p.Name, value, unit, err)
		}
		if got := obx.Field(11).String(); got != "F" {
			t.Errorf("%s: OBX-11 = %q, want F", p.Name, got)
		}
		at, err := hl7.ParseTime(obx.Field(14).String())
		if err != nil {
			t.Fatalf("%s: OBX-14: %v", p.Name, err)
		}
		if _, dup := out[p.Name]; dup {
			t.Fatalf("two OBX for %s in one message", p.Name)
		}
		out[p.Name] = score.Value{Parameter: p.Name, Numeric: v.Numeric, Coded: v.Coded, ObservedAt: at}
	}
	return out
}

func TestMessages(t *testing.T) {
	cfg := shipped(t)
	w := newWard(t, Options{Patients: 5, Seed: 1, Child: true})
	ps := w.Patients()
	onAir := Deterioration(0)
	onO2 := Deterioration(AlertReading + 1)
	tests := []struct {
		name      string
		patient   Patient
		build     func(p Patient) ([]byte, error)
		wantType  string
		wantRoute string
		wantOBX   int
	}{
		{"admission of the deteriorating patient", ps[0], func(p Patient) ([]byte, error) { return Admission(p, "C1", start) }, "ADT^A01", "adt", 0},
		{"admission of a child", ps[4], func(p Patient) ([]byte, error) { return Admission(p, "C2", start) }, "ADT^A01", "adt", 0},
		{"vital signs on air", ps[0], func(p Patient) ([]byte, error) { return VitalSigns(p, onAir, "C3", start) }, "ORU^R01", "nursing-vitals", 8},
		{"vital signs on oxygen, confused", ps[0], func(p Patient) ([]byte, error) { return VitalSigns(p, onO2, "C4", start) }, "ORU^R01", "nursing-vitals", 9},
		{"vital signs of a stable adult", ps[1], func(p Patient) ([]byte, error) { return VitalSigns(p, w.Next(1), "C5", start) }, "ORU^R01", "nursing-vitals", 8},
		{"vital signs of a child", ps[4], func(p Patient) ([]byte, error) { return VitalSigns(p, w.Next(4), "C6", start) }, "ORU^R01", "nursing-vitals", 8},
		{"white cell count on admission", ps[2], func(p Patient) ([]byte, error) { return LabResult(p, p.AdmissionWBC, "C7", start) }, "ORU^R01", "lab-results", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := tc.build(tc.patient)
			m := parseBuilt(t, raw, err)
			h := m.Header()
			if got := h.MessageType + "^" + h.TriggerEvent; got != tc.wantType {
				t.Errorf("MSH-9 = %s, want %s", got, tc.wantType)
			}
			// P: the shipped routes set training (T) and debugging (D)
			// traffic aside.
			if h.ProcessingID != "P" || h.SendingApplication.NamespaceID != Application || h.Version != Version {
				t.Errorf("MSH-11 %q, MSH-3 %q, MSH-12 %q; want P, %s, %s", h.ProcessingID, h.SendingApplication.NamespaceID, h.Version, Application, Version)
			}
			if got := firstRoute(cfg, m); got != tc.wantRoute {
				t.Errorf("route %s, want %s", got, tc.wantRoute)
			}
			for loc, want := range map[string]string{
				"PID-3.1": tc.patient.MRN, "PID-3.4": Authority, "PID-3.5": "MR",
				"PID-5.1": FamilyName, "PID-5.2": tc.patient.Given,
				"PID-7":   tc.patient.BirthDate.Format("20060102"),
				"PV1-3.1": tc.patient.Ward, "PV1-3.3": tc.patient.Bed, "PV1-19": tc.patient.VisitNumber,
			} {
				if got := get(t, m, loc); got != want {
					t.Errorf("%s = %q, want %q", loc, got, want)
				}
			}
			n := 0
			for range m.All("OBX") {
				n++
			}
			if n != tc.wantOBX {
				t.Errorf("%d OBX, want %d", n, tc.wantOBX)
			}
			if n > 0 {
				vals := values(t, cfg.Route(tc.wantRoute), m)
				for _, v := range vals {
					if !v.ObservedAt.Equal(start) {
						t.Errorf("%s observed at %v, want %v", v.Parameter, v.ObservedAt, start)
					}
				}
				switch tc.wantRoute {
				case "nursing-vitals":
					if r := score.NEWS2(score.Patient{}, vals); !r.Complete {
						t.Errorf("NEWS2 incomplete, missing %v", r.Missing)
					}
				case "lab-results":
					want := fmt.Sprintf("%d.%d", tc.patient.AdmissionWBC/10, tc.patient.AdmissionWBC%10)
					if got := vals[clinical.WBC].Numeric.String(); len(vals) != 1 || got != want {
						t.Errorf("values %v, want only wbc %s", vals, want)
					}
				}
			}
		})
	}
}

// TestDeterioration replays patient 1's script through the shipped routes
// and alert rules, as the router would: each message's values replace the
// patient's latest ones, NEWS2 and qSOFA are computed after each, and the
// rules raise and resolve alerts. The alert must be an emergency raised at
// AlertReading, so that make demo shows one within a minute.
func TestDeterioration(t *testing.T) {
	cfg := shipped(t)
	w := newWard(t, Options{Patients: 1})
	p := w.Patients()[0]
	if !p.Deteriorates {
		t.Fatal("patient 1 does not deteriorate")
	}
	age := 75
	patient := score.Patient{Age: &age}
	wantNEWS2 := []int{0, 0, 0, 1, 4, 4, 9, 14, 16, 15, 15, 15, 13, 8, 6, 3, 0, 0, 0, 0, 0, 0, 0, 0}
	if len(wantNEWS2) != CycleLength {
		t.Fatalf("%d expected totals for a cycle of %d", len(wantNEWS2), CycleLength)
	}
	type alertEvent struct {
		reading  int
		rule     string
		typ      string
		severity string
	}
	var got []alertEvent
	open := map[string]int{} // rule -> open level rank
	// The blood count on admission, which SIRS reads with the vital signs.
	latest := values(t, cfg.Route("lab-results"), parse(t)(LabResult(p, p.AdmissionWBC, "L", start)))
	for n := range 2 * CycleLength {
		at := start.Add(time.Duration(n) * 5 * time.Second)
		m := parse(t)(VitalSigns(p, w.Next(0), fmt.Sprintf("D%d", n), at))
		if r := firstRoute(cfg, m); r != "nursing-vitals" {
			t.Fatalf("reading %d: route %s, want nursing-vitals", n, r)
		}
		for k, v := range values(t, cfg.Route("nursing-vitals"), m) {
			latest[k] = v
		}
		news2 := score.NEWS2(patient, latest)
		qsofa := score.QSOFA(patient, latest, score.Options{GCSThreshold: cfg.Scoring.GCSThreshold})
		sirs := score.SIRS(patient, latest)
		if !news2.Complete || !qsofa.Complete || !sirs.Complete {
			t.Fatalf("reading %d: NEWS2 missing %v, qSOFA missing %v, SIRS missing %v", n, news2.Missing, qsofa.Missing, sirs.Missing)
		}
		if want := wantNEWS2[n%CycleLength]; news2.Total != want {
			t.Errorf("reading %d: NEWS2 %d, want %d (%s)", n, news2.Total, want, points(news2))
		}
		if n%CycleLength < AlertReading && (news2.Total > 4 || news2.SingleParameter3) {
			t.Errorf("reading %d before the alert: NEWS2 %d (single 3: %v), want at most 4 without a single 3",
				n, news2.Total, news2.SingleParameter3)
		}
		for _, res := range []score.Result{news2, qsofa} {
			for _, rule := range cfg.AlertsFor(res.Score) {
				level, holds := rule.LevelFor(route.ScoreFacts{Total: res.Total, Risk: res.Risk, SingleParameter3: res.SingleParameter3})
				rank, isOpen := open[rule.Name]
				switch {
				case holds && !isOpen:
					open[rule.Name] = level.Rank
					got = append(got, alertEvent{n, rule.Name, "raised", level.Severity})
				case holds && level.Rank > rank:
					open[rule.Name] = level.Rank
					got = append(got, alertEvent{n, rule.Name, "escalated", level.Severity})
				case !holds && isOpen:
					delete(open, rule.Name)
					got = append(got, alertEvent{n, rule.Name, "resolved", ""})
				}
			}
		}
	}
	c := CycleLength
	want := []alertEvent{
		{AlertReading, "news2", "raised", "emergency"},
		{7, "sepsis-screen", "raised", "sepsis-screen"},
		{13, "sepsis-screen", "resolved", ""},
		{15, "news2", "resolved", ""},
		{c + AlertReading, "news2", "raised", "emergency"},
		{c + 7, "sepsis-screen", "raised", "sepsis-screen"},
		{c + 13, "sepsis-screen", "resolved", ""},
		{c + 15, "news2", "resolved", ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("alerts over two cycles:\n got %+v\nwant %+v", got, want)
	}
}

// TestStablePatients checks that the other adults drift but stay in the
// bands that score 0, whatever the seed, and that the child is a child.
func TestStablePatients(t *testing.T) {
	cfg := shipped(t)
	rt := cfg.Route("nursing-vitals")
	for _, seed := range []uint64{0, 1, 42, 1 << 40} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			w := newWard(t, Options{Patients: 6, Seed: seed, Child: true})
			ps := w.Patients()
			for i, p := range ps[1:] {
				i++
				if p.Deteriorates {
					t.Errorf("patient %d deteriorates", p.Number)
				}
				age := ageAt(p.BirthDate, start)
				if p.Child != (i == len(ps)-1) || p.Child != (age < 16) {
					t.Errorf("patient %d: child %v, aged %d", p.Number, p.Child, age)
				}
				seen := map[Vitals]bool{}
				for n := range 300 {
					v := w.Next(i)
					seen[v] = true
					if p.Child {
						continue
					}
					m := parse(t)(VitalSigns(p, v, "S", start))
					r := score.NEWS2(score.Patient{Age: &age}, values(t, rt, m))
					if !r.Complete || r.Total != 0 {
						t.Fatalf("patient %d reading %d: %+v: NEWS2 %d complete %v, want a complete 0", p.Number, n, v, r.Total, r.Complete)
					}
				}
				if len(seen) < 50 {
					t.Errorf("patient %d: %d distinct readings in 300: not drifting", p.Number, len(seen))
				}
			}
		})
	}
}

// points lists a result's components as name value:points, sorted.
func points(r score.Result) string {
	var out []string
	for name, c := range r.Components {
		out = append(out, fmt.Sprintf("%s %s:%d", name, c.Value, c.Points))
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

func ageAt(birth, at time.Time) int {
	age := at.Year() - birth.Year()
	if at.YearDay() < birth.YearDay() {
		age--
	}
	return age
}

func TestSeed(t *testing.T) {
	readings := func(seed uint64) []Vitals {
		w := newWard(t, Options{Patients: 4, Seed: seed})
		var out []Vitals
		for range 20 {
			for i := range 4 {
				out = append(out, w.Next(i))
			}
		}
		return out
	}
	if a, b := readings(7), readings(7); !reflect.DeepEqual(a, b) {
		t.Error("the same seed gave different readings")
	}
	if a, b := readings(7), readings(8); reflect.DeepEqual(a, b) {
		t.Error("seeds 7 and 8 gave the same readings")
	}
}

func TestNewWard(t *testing.T) {
	tests := []struct {
		name    string
		o       Options
		wantErr string
		child   bool
	}{
		{"no patients", Options{Patients: 0, Now: start}, "patients must be", false},
		{"too many", Options{Patients: MaxPatients + 1, Now: start}, "patients must be", false},
		{"no time", Options{Patients: 3}, "current time", false},
		{"two patients: no room for a child", Options{Patients: 2, Child: true, Now: start}, "", false},
		{"three patients, the last a child", Options{Patients: 3, Child: true, Now: start}, "", true},
		{"five adults", Options{Patients: 5, Now: start}, "", false},
		{"many", Options{Patients: 40, Child: true, Now: start}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := NewWard(tc.o)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ps := w.Patients()
			if len(ps) != tc.o.Patients {
				t.Fatalf("%d patients, want %d", len(ps), tc.o.Patients)
			}
			if got := ps[len(ps)-1].Child; got != tc.child {
				t.Errorf("last patient child = %v, want %v", got, tc.child)
			}
			mrns, names := map[string]bool{}, map[string]bool{}
			for i, p := range ps {
				if p.Number != i+1 || p.MRN != fmt.Sprintf("SIM%04d", i+1) || p.Family != FamilyName {
					t.Errorf("patient %d: %+v", i+1, p)
				}
				if mrns[p.MRN] || names[p.Given] {
					t.Errorf("patient %d: MRN %s or name %s used twice", i+1, p.MRN, p.Given)
				}
				mrns[p.MRN], names[p.Given] = true, true
				if p.Deteriorates != (i == 0) {
					t.Errorf("patient %d deteriorates: %v", i+1, p.Deteriorates)
				}
			}
		})
	}
}
