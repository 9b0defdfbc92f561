package score

import (
	"reflect"
	"slices"
	"testing"

	"github.com/aortahealth/aorta/pkg/clinical"
)

func TestApplicable(t *testing.T) {
	t.Parallel()
	age := func(n int) *int { return &n }
	cases := []struct {
		name string
		p    Patient
		ok   bool
	}{
		{"unknown age", Patient{}, true},
		{"newborn", Patient{Age: age(0)}, false},
		{"15", Patient{Age: age(15)}, false},
		{"16", Patient{Age: age(16)}, true},
		{"90", Patient{Age: age(90)}, true},
		{"negative age (birth after score time)", Patient{Age: age(-1)}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ok, reason := Applicable(c.p)
			if ok != c.ok {
				t.Fatalf("Applicable = %v, want %v", ok, c.ok)
			}
			wantReason := ""
			if !c.ok {
				wantReason = "patient under 16 (PID-7): adult scores do not apply"
			}
			if reason != wantReason {
				t.Errorf("reason = %q, want %q", reason, wantReason)
			}
			// Every score refuses alike.
			for _, r := range []Result{
				NEWS2(c.p, normal(num(clinical.HeartRate, "150"))),
				QSOFA(c.p, qsofaNormal(num(clinical.SystolicBP, "80")), Options{}),
				SIRS(c.p, sirsNormal(num(clinical.HeartRate, "150"))),
			} {
				if r.NotApplicable != wantReason {
					t.Errorf("%s: NotApplicable = %q, want %q", r.Score, r.NotApplicable, wantReason)
				}
				if !c.ok && (r.Total != 0 || r.Risk != "" || r.Response != "" || len(r.Components) != 0 || len(r.Inputs) != 0 || r.Complete) {
					t.Errorf("%s: a refused score carries a result: %+v", r.Score, r)
				}
				if c.ok && r.Total == 0 {
					t.Errorf("%s: an applicable score was not computed", r.Score)
				}
			}
		})
	}
}

func TestParameters(t *testing.T) {
	t.Parallel()
	cases := []struct {
		score string
		want  []string
	}{
		{NameNEWS2, []string{"consciousness", "fio2", "heart_rate", "o2_flow", "on_oxygen", "respiratory_rate", "sbp", "spo2", "temperature"}},
		{NameQSOFA, []string{"consciousness", "gcs", "respiratory_rate", "sbp"}},
		{NameSIRS, []string{"bands", "heart_rate", "paco2", "respiratory_rate", "temperature", "wbc"}},
		{"sofa", nil},
		{"", nil},
	}
	for _, c := range cases {
		t.Run(c.score, func(t *testing.T) {
			t.Parallel()
			got := Parameters(c.score)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("Parameters(%q) = %v, want %v", c.score, got, c.want)
			}
		})
	}

	t.Run("every parameter is a clinical default", func(t *testing.T) {
		t.Parallel()
		known := map[string]bool{}
		for _, p := range clinical.DefaultParameters() {
			known[p.Name] = true
		}
		for _, s := range []string{NameNEWS2, NameQSOFA, NameSIRS} {
			for _, p := range Parameters(s) {
				if !known[p] {
					t.Errorf("%s reads %q, which pkg/clinical does not define", s, p)
				}
			}
		}
	})

	t.Run("the caller may modify the slice", func(t *testing.T) {
		t.Parallel()
		a := Parameters(NameQSOFA)
		a[0] = "x"
		if b := Parameters(NameQSOFA); slices.Contains(b, "x") {
			t.Errorf("Parameters returned shared state")
		}
	})
}

// TestResponsesAreDistinct guards against a copy-paste slip in the
// response texts.
func TestResponsesAreDistinct(t *testing.T) {
	t.Parallel()
	all := []string{
		ResponseNEWS2Zero, ResponseNEWS2Low, ResponseNEWS2LowMedium, ResponseNEWS2Medium, ResponseNEWS2High,
		ResponseQSOFAPositive, ResponseQSOFANegative, ResponseSIRSMet, ResponseSIRSNotMet,
	}
	seen := map[string]bool{}
	for _, s := range all {
		if s == "" || seen[s] {
			t.Errorf("response %q empty or repeated", s)
		}
		seen[s] = true
	}
}
