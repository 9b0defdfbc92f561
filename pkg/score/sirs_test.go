package score

import (
	"slices"
	"testing"

	"github.com/aortahealth/aorta/pkg/clinical"
)

var sirsComponents = []string{clinical.Temperature, clinical.HeartRate, Respiration, Leukocytes}

// sirsNormal is a complete SIRS set meeting no criterion, with vs
// replacing or adding values.
func sirsNormal(vs ...Value) map[string]Value {
	m := vals(
		num(clinical.Temperature, "37.0"), num(clinical.HeartRate, "80"),
		num(clinical.RespiratoryRate, "16"), num(clinical.WBC, "8.0"),
	)
	for _, v := range vs {
		m[v.Parameter] = v
	}
	return m
}

func TestSIRSCriteria(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		in        map[string]Value
		component string
		from      string
		want      int
	}{
		{"temp 36.0", sirsNormal(num(clinical.Temperature, "36.0")), clinical.Temperature, clinical.Temperature, 0},
		{"temp 35.9", sirsNormal(num(clinical.Temperature, "35.9")), clinical.Temperature, clinical.Temperature, 1},
		{"temp 35.99", sirsNormal(num(clinical.Temperature, "35.99")), clinical.Temperature, clinical.Temperature, 1},
		{"temp 38.0", sirsNormal(num(clinical.Temperature, "38.0")), clinical.Temperature, clinical.Temperature, 0},
		{"temp 38.01", sirsNormal(num(clinical.Temperature, "38.01")), clinical.Temperature, clinical.Temperature, 1},
		{"temp 38.1", sirsNormal(num(clinical.Temperature, "38.1")), clinical.Temperature, clinical.Temperature, 1},
		{"hr 90", sirsNormal(num(clinical.HeartRate, "90")), clinical.HeartRate, clinical.HeartRate, 0},
		{"hr 91", sirsNormal(num(clinical.HeartRate, "91")), clinical.HeartRate, clinical.HeartRate, 1},
		{"rr 20", sirsNormal(num(clinical.RespiratoryRate, "20")), Respiration, clinical.RespiratoryRate, 0},
		{"rr 21", sirsNormal(num(clinical.RespiratoryRate, "21")), Respiration, clinical.RespiratoryRate, 1},
		{"paco2 32 alone", without(sirsNormal(num(clinical.PaCO2, "32")), clinical.RespiratoryRate), Respiration, clinical.PaCO2, 0},
		{"paco2 31.9 alone", without(sirsNormal(num(clinical.PaCO2, "31.9")), clinical.RespiratoryRate), Respiration, clinical.PaCO2, 1},
		{"rr 16 and paco2 31.9", sirsNormal(num(clinical.PaCO2, "31.9")), Respiration, clinical.PaCO2, 1},
		{"rr 16 and paco2 32", sirsNormal(num(clinical.PaCO2, "32")), Respiration, clinical.RespiratoryRate, 0},
		{"rr 21 and paco2 31", sirsNormal(num(clinical.RespiratoryRate, "21"), num(clinical.PaCO2, "31")), Respiration, clinical.RespiratoryRate, 1},
		{"wbc 4.0", sirsNormal(num(clinical.WBC, "4.0")), Leukocytes, clinical.WBC, 0},
		{"wbc 3.9", sirsNormal(num(clinical.WBC, "3.9")), Leukocytes, clinical.WBC, 1},
		{"wbc 12.0", sirsNormal(num(clinical.WBC, "12.0")), Leukocytes, clinical.WBC, 0},
		{"wbc 12.1", sirsNormal(num(clinical.WBC, "12.1")), Leukocytes, clinical.WBC, 1},
		{"wbc 0 is a reading", sirsNormal(num(clinical.WBC, "0")), Leukocytes, clinical.WBC, 1},
		{"bands 10", sirsNormal(num(clinical.Bands, "10")), Leukocytes, clinical.WBC, 0},
		{"bands 10.1", sirsNormal(num(clinical.Bands, "10.1")), Leukocytes, clinical.Bands, 1},
		{"bands 10.1 alone", without(sirsNormal(num(clinical.Bands, "10.1")), clinical.WBC), Leukocytes, clinical.Bands, 1},
		{"bands 10 alone", without(sirsNormal(num(clinical.Bands, "10")), clinical.WBC), Leukocytes, clinical.Bands, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := SIRS(Patient{}, c.in)
			checkInvariants(t, r, sirsComponents)
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
			// Every present input is an input, met or not.
			for p := range c.in {
				if !slices.Contains(r.Inputs, idOf(p)) {
					t.Errorf("%s not in Inputs", p)
				}
			}
		})
	}
}

func TestSIRSRisk(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		in       map[string]Value
		total    int
		risk     string
		complete bool
	}{
		{"none", sirsNormal(), 0, RiskNotMet, true},
		{"one", sirsNormal(num(clinical.HeartRate, "91")), 1, RiskNotMet, true},
		{"two", sirsNormal(num(clinical.HeartRate, "91"), num(clinical.Temperature, "38.1")), 2, RiskMet, true},
		{"all four", sirsNormal(num(clinical.HeartRate, "91"), num(clinical.Temperature, "35.9"), num(clinical.PaCO2, "30"), num(clinical.Bands, "12")), 4, RiskMet, true},
		{"rr and paco2 both met count once", sirsNormal(num(clinical.RespiratoryRate, "25"), num(clinical.PaCO2, "30")), 1, RiskNotMet, true},
		{"wbc and bands both met count once", sirsNormal(num(clinical.WBC, "15"), num(clinical.Bands, "12")), 1, RiskNotMet, true},
		{"all printed edges meet nothing", sirsNormal(
			num(clinical.Temperature, "38.0"), num(clinical.HeartRate, "90"), num(clinical.RespiratoryRate, "20"),
			num(clinical.PaCO2, "32"), num(clinical.WBC, "12.0"), num(clinical.Bands, "10"),
		), 0, RiskNotMet, true},
		{"incomplete but met", vals(num(clinical.HeartRate, "120"), num(clinical.Temperature, "39.0")), 2, RiskMet, false},
		{"incomplete not met is a lower bound", vals(num(clinical.HeartRate, "120")), 1, RiskNotMet, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := SIRS(Patient{}, c.in)
			checkInvariants(t, r, sirsComponents)
			if r.Total != c.total || r.Risk != c.risk || r.Complete != c.complete || r.Score != NameSIRS {
				t.Errorf("got %s Total %d Risk %q Complete %v; want %d %q %v", r.Score, r.Total, r.Risk, r.Complete, c.total, c.risk, c.complete)
			}
			wantResponse := ResponseSIRSNotMet
			if c.risk == RiskMet {
				wantResponse = ResponseSIRSMet
			}
			if r.Response != wantResponse {
				t.Errorf("Response = %q, want %q", r.Response, wantResponse)
			}
		})
	}
}

func TestSIRSMissing(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		remove  []string
		missing []string
	}{
		{"temperature", []string{clinical.Temperature}, []string{clinical.Temperature}},
		{"heart_rate", []string{clinical.HeartRate}, []string{clinical.HeartRate}},
		{"respiration: no rr, no paco2", []string{clinical.RespiratoryRate}, []string{Respiration}},
		{"leukocytes: no wbc, no bands", []string{clinical.WBC}, []string{Leukocytes}},
		{"everything", []string{clinical.Temperature, clinical.HeartRate, clinical.RespiratoryRate, clinical.WBC}, []string{clinical.HeartRate, Leukocytes, Respiration, clinical.Temperature}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := SIRS(Patient{}, without(sirsNormal(), c.remove...))
			checkInvariants(t, r, sirsComponents)
			want := slices.Clone(c.missing)
			slices.Sort(want)
			if r.Complete || !slices.Equal(r.Missing, want) {
				t.Errorf("Complete = %v, Missing = %v; want false, %v", r.Complete, r.Missing, want)
			}
		})
	}
}

func TestSIRSCriterionText(t *testing.T) {
	t.Parallel()
	r := SIRS(Patient{}, sirsNormal(num(clinical.PaCO2, "40")))
	if got, want := r.Components[Respiration].Criterion, "respiratory_rate ≤ 20; paco2 ≥ 32"; got != want {
		t.Errorf("Criterion = %q, want %q", got, want)
	}
	r = SIRS(Patient{}, sirsNormal(num(clinical.PaCO2, "30")))
	if got, want := r.Components[Respiration].Criterion, "paco2 < 32"; got != want {
		t.Errorf("Criterion = %q, want %q", got, want)
	}
}
