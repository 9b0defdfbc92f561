package loadgen

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/aortahealth/aorta/pkg/hl7"
)

var at = time.Date(2026, 11, 26, 12, 30, 0, 0, time.FixedZone("", 3600))

func newGenerator(t *testing.T, o GeneratorOptions) *Generator {
	t.Helper()
	if o.RunID == "" {
		o.RunID = "TEST1"
	}
	g, err := NewGenerator(o)
	if err != nil {
		t.Fatalf("NewGenerator(%+v): %v", o, err)
	}
	return g
}

// TestMixParses generates a few thousand messages of the default mix and
// checks that each is a valid message with pkg/hl7, of the kind it claims,
// about the patient it claims, with its own control ID and the time given.
func TestMixParses(t *testing.T) {
	g := newGenerator(t, GeneratorOptions{Patients: 500, Seed: 7})
	const n = 1000
	seen := map[string]bool{}
	kinds := map[Kind]int{}
	patients := map[string]bool{}
	wantType := map[Kind]string{Admit: "ADT^A01", Update: "ADT^A08", Lab: "ORU^R01", Monitor: "ORU^R01", Nursing: "ORU^R01"}
	for i := range uint64(n) {
		msg := g.Message(i, at)
		m, err := hl7.Parse(msg.Raw)
		if err != nil {
			t.Fatalf("message %d (%s) does not parse: %v\n%s", i, msg.Kind, err, bytes.ReplaceAll(msg.Raw, []byte("\r"), []byte("\n")))
		}
		h := m.Header()
		if errs := h.Check(); len(errs) > 0 {
			t.Fatalf("message %d (%s): header: %v", i, msg.Kind, errs)
		}
		if got := h.MessageType + "^" + h.TriggerEvent; got != wantType[msg.Kind] {
			t.Errorf("message %d (%s): MSH-9 %s, want %s", i, msg.Kind, got, wantType[msg.Kind])
		}
		if h.ControlID != msg.ControlID || !strings.HasPrefix(h.ControlID, "TEST1-") {
			t.Errorf("message %d: MSH-10 %q, want %q with the run's prefix", i, h.ControlID, msg.ControlID)
		}
		if len(h.ControlID) > 20 {
			t.Errorf("message %d: control ID %q longer than HL7's 20", i, h.ControlID)
		}
		if seen[h.ControlID] {
			t.Errorf("message %d: control ID %s used twice", i, h.ControlID)
		}
		seen[h.ControlID] = true
		if got, _ := m.Get("MSH-7"); got != "20261126123000+0100" {
			t.Errorf("message %d: MSH-7 %q, want the time given", i, got)
		}
		mrn, _ := m.Get("PID-3.1")
		if want := slotValues(msg.Patient, "", at)[slotMRN]; mrn != want {
			t.Errorf("message %d: PID-3.1 %q, want %q", i, mrn, want)
		}
		patients[mrn] = true
		if dob, _ := m.Get("PID-7"); len(dob) != 8 || dob < "19400101" || dob > "19900101" {
			t.Errorf("message %d: PID-7 %q, want an adult's birth date", i, dob)
		}
		if tokenPattern.Match(msg.Raw) {
			t.Errorf("message %d (%s): a slot was left unfilled:\n%s", i, msg.Kind, msg.Raw)
		}
		obx := 0
		for range m.All("OBX") {
			obx++
		}
		switch msg.Kind {
		case Monitor:
			if obx < 10 || obx > 20 {
				t.Errorf("message %d: monitor result with %d OBX, want 10 to 20", i, obx)
			}
			if got, _ := m.Get("OBX-3.3"); got != "MDC" {
				t.Errorf("message %d: monitor OBX-3.3 %q, want MDC", i, got)
			}
		case Lab:
			obr := 0
			for range m.All("OBR") {
				obr++
			}
			if obr < 2 || obx < 5 {
				t.Errorf("message %d: lab report with %d OBR and %d OBX, want several of each", i, obr, obx)
			}
		case Nursing:
			if obx < 8 {
				t.Errorf("message %d: nursing chart with %d OBX", i, obx)
			}
		}
		kinds[msg.Kind]++
	}
	// The shares follow the mix's weights (out of 100) within a margin.
	for k, w := range DefaultMix {
		want := float64(n) * float64(w) / 100
		if got := float64(kinds[k]); got < want*0.8 || got > want*1.2 {
			t.Errorf("%s: %v messages of %d, want about %.0f", k, got, n, want)
		}
	}
	if len(patients) < 400 {
		t.Errorf("%d distinct patients in %d messages of 500, want most of them", len(patients), n)
	}
}

func TestMessageIsDeterministic(t *testing.T) {
	a := newGenerator(t, GeneratorOptions{Seed: 3})
	b := newGenerator(t, GeneratorOptions{Seed: 3})
	c := newGenerator(t, GeneratorOptions{Seed: 4})
	differs := false
	for i := range uint64(50) {
		ma, mb, mc := a.Message(i, at), b.Message(i, at), c.Message(i, at)
		if !bytes.Equal(ma.Raw, mb.Raw) {
			t.Fatalf("message %d differs between two generators with one seed", i)
		}
		differs = differs || !bytes.Equal(ma.Raw, mc.Raw)
	}
	if !differs {
		t.Error("another seed gives the same messages")
	}
}

// TestDeterioratingPatients checks that only the patients meant to
// deteriorate get abnormal vital signs, so that alerts come from them.
func TestDeterioratingPatients(t *testing.T) {
	g := newGenerator(t, GeneratorOptions{Mix: Mix{Nursing: 1}, Patients: 40, DeteriorateEvery: 10})
	confused := map[int]bool{}
	for i := range uint64(2000) {
		msg := g.Message(i, at)
		m, err := hl7.Parse(msg.Raw)
		if err != nil {
			t.Fatal(err)
		}
		for obx := range m.All("OBX") {
			if obx.Field(3).Component(1).String() == "67775-7" && obx.Field(5).Component(1).String() == "130987000" {
				confused[msg.Patient] = true
			}
		}
	}
	if len(confused) != 4 {
		t.Errorf("patients with new confusion: %v, want 0, 10, 20 and 30", confused)
	}
	for p := range confused {
		if p%10 != 0 {
			t.Errorf("patient %d is confused but should be stable", p)
		}
	}
}

func TestParseMix(t *testing.T) {
	tests := []struct {
		in      string
		want    Mix
		wantErr string
	}{
		{"monitor=1", Mix{Monitor: 1}, ""},
		{" adt-a01=5, lab=20 ,monitor=75", Mix{Admit: 5, Lab: 20, Monitor: 75}, ""},
		{DefaultMix.String(), DefaultMix, ""},
		{"monitor", nil, "want kind=weight"},
		{"xray=3", nil, "unknown kind"},
		{"lab=-1", nil, "whole number"},
		{"lab=0", nil, "no kind"},
		{"", nil, "no kind"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseMix(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseMix(%q) error = %v, want one saying %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMix(%q): %v", tc.in, err)
			}
			if got.String() != tc.want.String() {
				t.Errorf("ParseMix(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestGeneratorOptions(t *testing.T) {
	for _, o := range []GeneratorOptions{
		{RunID: "bad-id"},
		{RunID: "ELEVENCHARS"},
		{Patients: -1},
		{Patients: MaxPatients + 1},
		{Mix: Mix{}},
	} {
		if _, err := NewGenerator(o); err == nil {
			t.Errorf("NewGenerator(%+v) accepted", o)
		}
	}
	if id := NewRunID(time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)); !runIDPattern.MatchString(id) {
		t.Errorf("NewRunID = %q, not a valid run ID", id)
	}
}

// BenchmarkMessage is what the generator costs the sender per message,
// next to what storing it costs the listener.
func BenchmarkMessage(b *testing.B) {
	g, err := NewGenerator(GeneratorOptions{RunID: "BENCH"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var i uint64
	for b.Loop() {
		g.Message(i, at)
		i++
	}
}
