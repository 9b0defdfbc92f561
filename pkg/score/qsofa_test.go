package score

import (
	"slices"
	"testing"

	"github.com/aortahealth/aorta/pkg/clinical"
)

var qsofaComponents = []string{clinical.RespiratoryRate, clinical.SystolicBP, Mentation}

// qsofaNormal is a complete qSOFA set scoring 0, with vs replacing or
// adding values.
func qsofaNormal(vs ...Value) map[string]Value {
	m := vals(num(clinical.RespiratoryRate, "16"), num(clinical.SystolicBP, "120"), num(clinical.GCS, "15"))
	for _, v := range vs {
		m[v.Parameter] = v
	}
	return m
}

func TestQSOFACriteria(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		in        map[string]Value
		o         Options
		component string
		from      string
		want      int
	}{
		{"rr 21", qsofaNormal(num(clinical.RespiratoryRate, "21")), Options{}, clinical.RespiratoryRate, clinical.RespiratoryRate, 0},
		{"rr 21.9", qsofaNormal(num(clinical.RespiratoryRate, "21.9")), Options{}, clinical.RespiratoryRate, clinical.RespiratoryRate, 0},
		{"rr 22", qsofaNormal(num(clinical.RespiratoryRate, "22")), Options{}, clinical.RespiratoryRate, clinical.RespiratoryRate, 1},
		{"rr 40", qsofaNormal(num(clinical.RespiratoryRate, "40")), Options{}, clinical.RespiratoryRate, clinical.RespiratoryRate, 1},
		{"sbp 100", qsofaNormal(num(clinical.SystolicBP, "100")), Options{}, clinical.SystolicBP, clinical.SystolicBP, 1},
		{"sbp 100.5", qsofaNormal(num(clinical.SystolicBP, "100.5")), Options{}, clinical.SystolicBP, clinical.SystolicBP, 0},
		{"sbp 101", qsofaNormal(num(clinical.SystolicBP, "101")), Options{}, clinical.SystolicBP, clinical.SystolicBP, 0},
		{"sbp 0 is a reading", qsofaNormal(num(clinical.SystolicBP, "0")), Options{}, clinical.SystolicBP, clinical.SystolicBP, 1},
		{"gcs 15", qsofaNormal(), Options{}, Mentation, clinical.GCS, 0},
		{"gcs 14", qsofaNormal(num(clinical.GCS, "14")), Options{}, Mentation, clinical.GCS, 1},
		{"gcs 3", qsofaNormal(num(clinical.GCS, "3")), Options{}, Mentation, clinical.GCS, 1},
		{"gcs 15.0 is whole", qsofaNormal(num(clinical.GCS, "15.0")), Options{}, Mentation, clinical.GCS, 0},
		{"threshold 14: gcs 14", qsofaNormal(num(clinical.GCS, "14")), Options{GCSThreshold: 14}, Mentation, clinical.GCS, 0},
		{"threshold 14: gcs 13", qsofaNormal(num(clinical.GCS, "13")), Options{GCSThreshold: 14}, Mentation, clinical.GCS, 1},
		{"threshold 0 is 15", qsofaNormal(num(clinical.GCS, "14")), Options{GCSThreshold: 0}, Mentation, clinical.GCS, 1},
		{"negative threshold is 15", qsofaNormal(num(clinical.GCS, "14")), Options{GCSThreshold: -3}, Mentation, clinical.GCS, 1},
		{"no gcs: alert", without(qsofaNormal(code(clinical.Consciousness, clinical.Alert)), clinical.GCS), Options{}, Mentation, clinical.Consciousness, 0},
		{"no gcs: new confusion", without(qsofaNormal(code(clinical.Consciousness, clinical.NewConfusion)), clinical.GCS), Options{}, Mentation, clinical.Consciousness, 1},
		{"no gcs: voice", without(qsofaNormal(code(clinical.Consciousness, clinical.Voice)), clinical.GCS), Options{}, Mentation, clinical.Consciousness, 1},
		{"no gcs: pain", without(qsofaNormal(code(clinical.Consciousness, clinical.Pain)), clinical.GCS), Options{}, Mentation, clinical.Consciousness, 1},
		{"no gcs: unresponsive", without(qsofaNormal(code(clinical.Consciousness, clinical.Unresponsive)), clinical.GCS), Options{}, Mentation, clinical.Consciousness, 1},
		{"gcs preferred to acvpu", qsofaNormal(code(clinical.Consciousness, clinical.Voice)), Options{}, Mentation, clinical.GCS, 0},
		{"gcs 14 preferred to alert", qsofaNormal(num(clinical.GCS, "14"), code(clinical.Consciousness, clinical.Alert)), Options{}, Mentation, clinical.GCS, 1},
		{"gcs 16 is invalid: acvpu", qsofaNormal(num(clinical.GCS, "16"), code(clinical.Consciousness, clinical.Voice)), Options{}, Mentation, clinical.Consciousness, 1},
		{"gcs 2 is invalid: acvpu", qsofaNormal(num(clinical.GCS, "2"), code(clinical.Consciousness, clinical.Alert)), Options{}, Mentation, clinical.Consciousness, 0},
		{"gcs 14.5 is invalid: acvpu", qsofaNormal(num(clinical.GCS, "14.5"), code(clinical.Consciousness, clinical.Alert)), Options{}, Mentation, clinical.Consciousness, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := QSOFA(Patient{}, c.in, c.o)
			checkInvariants(t, r, qsofaComponents)
			if !r.Complete {
				t.Fatalf("Complete = false, Missing %v", r.Missing)
			}
			got := r.Components[c.component]
			if got.Points != c.want || got.Parameter != c.from {
				t.Errorf("%s: got %d points from %s (%s), want %d from %s", c.component, got.Points, got.Parameter, got.Criterion, c.want, c.from)
			}
			if r.Total != c.want {
				t.Errorf("Total = %d, want %d", r.Total, c.want)
			}
			if c.from == clinical.GCS && slices.Contains(r.Inputs, idOf(clinical.Consciousness)) {
				t.Errorf("an ACVPU the GCS overrode is listed in Inputs")
			}
		})
	}
}

func TestQSOFARisk(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		in       map[string]Value
		total    int
		risk     string
		complete bool
	}{
		{"0 negative", qsofaNormal(), 0, RiskNegative, true},
		{"1 negative", qsofaNormal(num(clinical.RespiratoryRate, "22")), 1, RiskNegative, true},
		{"2 positive", qsofaNormal(num(clinical.RespiratoryRate, "22"), num(clinical.SystolicBP, "100")), 2, RiskPositive, true},
		{"3 positive", qsofaNormal(num(clinical.RespiratoryRate, "22"), num(clinical.SystolicBP, "100"), num(clinical.GCS, "14")), 3, RiskPositive, true},
		{"incomplete but positive", vals(num(clinical.RespiratoryRate, "22"), num(clinical.SystolicBP, "90")), 2, RiskPositive, false},
		{"incomplete negative is a lower bound", vals(num(clinical.RespiratoryRate, "22")), 1, RiskNegative, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := QSOFA(Patient{}, c.in, Options{})
			checkInvariants(t, r, qsofaComponents)
			if r.Total != c.total || r.Risk != c.risk || r.Complete != c.complete || r.Score != NameQSOFA {
				t.Errorf("got %s Total %d Risk %q Complete %v; want %d %q %v", r.Score, r.Total, r.Risk, r.Complete, c.total, c.risk, c.complete)
			}
			wantResponse := ResponseQSOFANegative
			if c.risk == RiskPositive {
				wantResponse = ResponseQSOFAPositive
			}
			if r.Response != wantResponse {
				t.Errorf("Response = %q, want %q", r.Response, wantResponse)
			}
		})
	}
}

func TestQSOFAMissing(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		remove  []string
		missing []string
	}{
		{"respiratory_rate", []string{clinical.RespiratoryRate}, []string{clinical.RespiratoryRate}},
		{"sbp", []string{clinical.SystolicBP}, []string{clinical.SystolicBP}},
		{"gcs and consciousness", []string{clinical.GCS, clinical.Consciousness}, []string{Mentation}},
		{"everything", []string{clinical.RespiratoryRate, clinical.SystolicBP, clinical.GCS}, []string{Mentation, clinical.RespiratoryRate, clinical.SystolicBP}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := QSOFA(Patient{}, without(qsofaNormal(), c.remove...), Options{})
			checkInvariants(t, r, qsofaComponents)
			if r.Complete || !slices.Equal(r.Missing, c.missing) {
				t.Errorf("Complete = %v, Missing = %v; want false, %v", r.Complete, r.Missing, c.missing)
			}
		})
	}
}

func TestQSOFALineage(t *testing.T) {
	t.Parallel()
	r := QSOFA(Patient{}, qsofaNormal(num(clinical.SystolicBP, "95")), Options{})
	if want := ids(clinical.RespiratoryRate, clinical.SystolicBP, clinical.GCS); !slices.Equal(r.Inputs, want) {
		t.Errorf("Inputs = %v, want %v", r.Inputs, want)
	}
	if c := r.Components[clinical.SystolicBP]; c.Value != "95" || c.EventID != idOf(clinical.SystolicBP) || c.Criterion != "≤ 100" {
		t.Errorf("sbp component %+v", c)
	}
	if c := r.Components[Mentation]; c.Criterion != "gcs ≥ 15" || c.Value != "15" {
		t.Errorf("mentation component %+v", c)
	}
}
