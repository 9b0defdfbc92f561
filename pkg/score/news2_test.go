package score

import (
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/aortahealth/aorta/pkg/clinical"
)

func TestNEWS2Bands(t *testing.T) {
	t.Parallel()
	type tc struct {
		name   string
		scale  int
		oxygen bool
		param  string
		value  string
		want   int
	}
	cases := []tc{
		// Respiration rate: ≤8 3 | 9–11 1 | 12–20 0 | 21–24 2 | ≥25 3.
		{"rr 0 is a reading", 1, false, clinical.RespiratoryRate, "0", 3},
		{"rr 8", 1, false, clinical.RespiratoryRate, "8", 3},
		{"rr 8.5 between bands", 1, false, clinical.RespiratoryRate, "8.5", 1},
		{"rr 9", 1, false, clinical.RespiratoryRate, "9", 1},
		{"rr 11", 1, false, clinical.RespiratoryRate, "11", 1},
		{"rr 12", 1, false, clinical.RespiratoryRate, "12", 0},
		{"rr 20", 1, false, clinical.RespiratoryRate, "20", 0},
		{"rr 20.5 between bands", 1, false, clinical.RespiratoryRate, "20.5", 2},
		{"rr 21", 1, false, clinical.RespiratoryRate, "21", 2},
		{"rr 24", 1, false, clinical.RespiratoryRate, "24", 2},
		{"rr 25", 1, false, clinical.RespiratoryRate, "25", 3},
		{"rr 60", 1, false, clinical.RespiratoryRate, "60", 3},

		// SpO2 scale 1: ≤91 3 | 92–93 2 | 94–95 1 | ≥96 0.
		{"s1 spo2 0 is a reading", 1, false, clinical.SpO2, "0", 3},
		{"s1 spo2 91", 1, false, clinical.SpO2, "91", 3},
		{"s1 spo2 91.9 between bands", 1, false, clinical.SpO2, "91.9", 2},
		{"s1 spo2 92", 1, false, clinical.SpO2, "92", 2},
		{"s1 spo2 93", 1, false, clinical.SpO2, "93", 2},
		{"s1 spo2 94", 1, false, clinical.SpO2, "94", 1},
		{"s1 spo2 95", 1, false, clinical.SpO2, "95", 1},
		{"s1 spo2 95.5 between bands", 1, false, clinical.SpO2, "95.5", 0},
		{"s1 spo2 96", 1, false, clinical.SpO2, "96", 0},
		{"s1 spo2 100", 1, false, clinical.SpO2, "100", 0},
		{"s1 spo2 97 on oxygen scores as on air", 1, true, clinical.SpO2, "97", 0},
		{"s1 spo2 93 on oxygen scores as on air", 1, true, clinical.SpO2, "93", 2},

		// SpO2 scale 2 on air: ≤83 3 | 84–85 2 | 86–87 1 | 88–92 0 | ≥93 on air 0.
		{"s2 air spo2 83", 2, false, clinical.SpO2, "83", 3},
		{"s2 air spo2 84", 2, false, clinical.SpO2, "84", 2},
		{"s2 air spo2 85", 2, false, clinical.SpO2, "85", 2},
		{"s2 air spo2 85.5 between bands", 2, false, clinical.SpO2, "85.5", 1},
		{"s2 air spo2 86", 2, false, clinical.SpO2, "86", 1},
		{"s2 air spo2 87", 2, false, clinical.SpO2, "87", 1},
		{"s2 air spo2 88", 2, false, clinical.SpO2, "88", 0},
		{"s2 air spo2 92", 2, false, clinical.SpO2, "92", 0},
		{"s2 air spo2 92.5 between bands", 2, false, clinical.SpO2, "92.5", 0},
		{"s2 air spo2 93", 2, false, clinical.SpO2, "93", 0},
		{"s2 air spo2 94", 2, false, clinical.SpO2, "94", 0},
		{"s2 air spo2 95", 2, false, clinical.SpO2, "95", 0},
		{"s2 air spo2 96", 2, false, clinical.SpO2, "96", 0},
		{"s2 air spo2 97", 2, false, clinical.SpO2, "97", 0},
		{"s2 air spo2 100", 2, false, clinical.SpO2, "100", 0},

		// SpO2 scale 2 on oxygen: ... 88–92 0 | 93–94 1 | 95–96 2 | ≥97 3.
		{"s2 o2 spo2 83", 2, true, clinical.SpO2, "83", 3},
		{"s2 o2 spo2 84", 2, true, clinical.SpO2, "84", 2},
		{"s2 o2 spo2 85", 2, true, clinical.SpO2, "85", 2},
		{"s2 o2 spo2 86", 2, true, clinical.SpO2, "86", 1},
		{"s2 o2 spo2 87", 2, true, clinical.SpO2, "87", 1},
		{"s2 o2 spo2 88", 2, true, clinical.SpO2, "88", 0},
		{"s2 o2 spo2 92", 2, true, clinical.SpO2, "92", 0},
		{"s2 o2 spo2 92.5 between bands", 2, true, clinical.SpO2, "92.5", 1},
		{"s2 o2 spo2 93", 2, true, clinical.SpO2, "93", 1},
		{"s2 o2 spo2 94", 2, true, clinical.SpO2, "94", 1},
		{"s2 o2 spo2 94.5 between bands", 2, true, clinical.SpO2, "94.5", 2},
		{"s2 o2 spo2 95", 2, true, clinical.SpO2, "95", 2},
		{"s2 o2 spo2 96", 2, true, clinical.SpO2, "96", 2},
		{"s2 o2 spo2 96.5 between bands", 2, true, clinical.SpO2, "96.5", 3},
		{"s2 o2 spo2 97", 2, true, clinical.SpO2, "97", 3},
		{"s2 o2 spo2 100", 2, true, clinical.SpO2, "100", 3},

		// Systolic BP: ≤90 3 | 91–100 2 | 101–110 1 | 111–219 0 | ≥220 3.
		{"sbp 90", 1, false, clinical.SystolicBP, "90", 3},
		{"sbp 90.5 between bands", 1, false, clinical.SystolicBP, "90.5", 2},
		{"sbp 91", 1, false, clinical.SystolicBP, "91", 2},
		{"sbp 100", 1, false, clinical.SystolicBP, "100", 2},
		{"sbp 101", 1, false, clinical.SystolicBP, "101", 1},
		{"sbp 110", 1, false, clinical.SystolicBP, "110", 1},
		{"sbp 111", 1, false, clinical.SystolicBP, "111", 0},
		{"sbp 219", 1, false, clinical.SystolicBP, "219", 0},
		{"sbp 219.5 between bands", 1, false, clinical.SystolicBP, "219.5", 3},
		{"sbp 220", 1, false, clinical.SystolicBP, "220", 3},

		// Pulse: ≤40 3 | 41–50 1 | 51–90 0 | 91–110 1 | 111–130 2 | ≥131 3.
		{"hr 0 is a reading", 1, false, clinical.HeartRate, "0", 3},
		{"hr 40", 1, false, clinical.HeartRate, "40", 3},
		{"hr 41", 1, false, clinical.HeartRate, "41", 1},
		{"hr 50", 1, false, clinical.HeartRate, "50", 1},
		{"hr 51", 1, false, clinical.HeartRate, "51", 0},
		{"hr 90", 1, false, clinical.HeartRate, "90", 0},
		{"hr 90.5 between bands", 1, false, clinical.HeartRate, "90.5", 1},
		{"hr 91", 1, false, clinical.HeartRate, "91", 1},
		{"hr 110", 1, false, clinical.HeartRate, "110", 1},
		{"hr 111", 1, false, clinical.HeartRate, "111", 2},
		{"hr 130", 1, false, clinical.HeartRate, "130", 2},
		{"hr 131", 1, false, clinical.HeartRate, "131", 3},

		// Temperature: ≤35.0 3 | 35.1–36.0 1 | 36.1–38.0 0 | 38.1–39.0 1 | ≥39.1 2.
		{"temp 34.9", 1, false, clinical.Temperature, "34.9", 3},
		{"temp 35.0", 1, false, clinical.Temperature, "35.0", 3},
		{"temp 35 without decimals", 1, false, clinical.Temperature, "35", 3},
		{"temp 35.00", 1, false, clinical.Temperature, "35.00", 3},
		{"temp 35.05 between bands", 1, false, clinical.Temperature, "35.05", 1},
		{"temp 35.1", 1, false, clinical.Temperature, "35.1", 1},
		{"temp 36.0", 1, false, clinical.Temperature, "36.0", 1},
		{"temp 36.05 between bands", 1, false, clinical.Temperature, "36.05", 0},
		{"temp 36.1", 1, false, clinical.Temperature, "36.1", 0},
		{"temp 38.0", 1, false, clinical.Temperature, "38.0", 0},
		{"temp 38.05 between bands", 1, false, clinical.Temperature, "38.05", 1},
		{"temp 38.1", 1, false, clinical.Temperature, "38.1", 1},
		{"temp 39.0", 1, false, clinical.Temperature, "39.0", 1},
		{"temp 39.05 between bands", 1, false, clinical.Temperature, "39.05", 2},
		{"temp 39.1", 1, false, clinical.Temperature, "39.1", 2},
		{"temp 42.0", 1, false, clinical.Temperature, "42.0", 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			air := clinical.OnAir
			if c.oxygen {
				air = clinical.OnOxygenYes
			}
			in := normal(num(c.param, c.value), code(clinical.OnOxygen, air))
			r := NEWS2(Patient{SpO2Scale: c.scale}, in)
			checkInvariants(t, r, news2Components)
			if !r.Complete {
				t.Fatalf("Complete = false, Missing %v", r.Missing)
			}
			got := r.Components[c.param]
			if got.Points != c.want {
				t.Errorf("%s %s on scale %d: got %d points (%s), want %d", c.param, c.value, c.scale, got.Points, got.Criterion, c.want)
			}
			if got.Value != c.value {
				t.Errorf("Value = %q, want the exact text %q", got.Value, c.value)
			}
			wantTotal := c.want
			if c.oxygen {
				wantTotal += 2
			}
			if r.Total != wantTotal {
				t.Errorf("Total = %d, want %d", r.Total, wantTotal)
			}
			if r.SingleParameter3 != (c.want == 3) {
				t.Errorf("SingleParameter3 = %v with %d points", r.SingleParameter3, c.want)
			}
		})
	}
}

func TestNEWS2Criterion(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		scale  int
		oxygen bool
		v      Value
		want   string
	}{
		{"first band", 1, false, num(clinical.RespiratoryRate, "8"), "≤ 8"},
		{"middle band", 1, false, num(clinical.RespiratoryRate, "21"), "> 20 and ≤ 24"},
		{"above the last band", 1, false, num(clinical.RespiratoryRate, "25"), "> 24"},
		{"temperature keeps its decimals", 1, false, num(clinical.Temperature, "35.05"), "> 35.0 and ≤ 36.0"},
		{"scale 1", 1, false, num(clinical.SpO2, "95.5"), "scale 1: > 95"},
		{"scale 2 up to 92", 2, true, num(clinical.SpO2, "90"), "scale 2: > 87 and ≤ 92"},
		{"scale 2 on air", 2, false, num(clinical.SpO2, "97"), "scale 2, on air: > 92"},
		{"scale 2 on oxygen", 2, true, num(clinical.SpO2, "93"), "scale 2, on oxygen: > 92 and ≤ 94"},
		{"scale 2 on oxygen top", 2, true, num(clinical.SpO2, "97"), "scale 2, on oxygen: > 96"},
		{"new confusion", 1, false, code(clinical.Consciousness, clinical.NewConfusion), "new confusion"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			air := clinical.OnAir
			if c.oxygen {
				air = clinical.OnOxygenYes
			}
			r := NEWS2(Patient{SpO2Scale: c.scale}, normal(c.v, code(clinical.OnOxygen, air)))
			if got := r.Components[c.v.Parameter].Criterion; got != c.want {
				t.Errorf("Criterion = %q, want %q", got, c.want)
			}
		})
	}
}

func TestNEWS2Consciousness(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		code     string
		want     int
		complete bool
	}{
		{"alert", clinical.Alert, 0, true},
		{"new confusion", clinical.NewConfusion, 3, true},
		{"voice", clinical.Voice, 3, true},
		{"pain", clinical.Pain, 3, true},
		{"unresponsive", clinical.Unresponsive, 3, true},
		{"unknown code is missing", "X", 0, false},
		{"a SNOMED code is not canonical", "248234008", 0, false},
		{"lower case is not canonical", "a", 0, false},
		{"empty is missing", "", 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := NEWS2(Patient{}, normal(code(clinical.Consciousness, c.code)))
			checkInvariants(t, r, news2Components)
			if r.Complete != c.complete {
				t.Fatalf("Complete = %v, want %v (Missing %v)", r.Complete, c.complete, r.Missing)
			}
			if !c.complete {
				if !slices.Equal(r.Missing, []string{clinical.Consciousness}) {
					t.Errorf("Missing = %v, want [consciousness]", r.Missing)
				}
				return
			}
			if got := r.Components[clinical.Consciousness]; got.Points != c.want || got.Value != c.code {
				t.Errorf("got %+v, want %d points for %q", got, c.want, c.code)
			}
			if r.Total != c.want {
				t.Errorf("Total = %d, want %d", r.Total, c.want)
			}
		})
	}
}

func TestNEWS2AirOrOxygen(t *testing.T) {
	t.Parallel()
	later := func(v Value, minutes int) Value { return at(v, time.Duration(minutes)*time.Minute) }
	type want struct {
		oxygen *bool // nil: missing
		from   string
		value  string
	}
	yes, no := true, false
	cases := []struct {
		name string
		in   []Value
		want want
	}{
		{"charted oxygen", []Value{code(clinical.OnOxygen, clinical.OnOxygenYes)}, want{&yes, clinical.OnOxygen, "oxygen"}},
		{"charted air", []Value{code(clinical.OnOxygen, clinical.OnAir)}, want{&no, clinical.OnOxygen, "air"}},
		{"charted unknown code", []Value{code(clinical.OnOxygen, "maybe")}, want{}},
		{"flow 2 L/min", []Value{num(clinical.O2Flow, "2")}, want{&yes, clinical.O2Flow, "2"}},
		{"flow 0.5 L/min", []Value{num(clinical.O2Flow, "0.5")}, want{&yes, clinical.O2Flow, "0.5"}},
		{"flow 0", []Value{num(clinical.O2Flow, "0")}, want{&no, clinical.O2Flow, "0"}},
		{"flow 0.0", []Value{num(clinical.O2Flow, "0.0")}, want{&no, clinical.O2Flow, "0.0"}},
		{"negative flow is invalid", []Value{num(clinical.O2Flow, "-1")}, want{}},
		{"fio2 21 is air", []Value{num(clinical.FiO2, "21")}, want{&no, clinical.FiO2, "21"}},
		{"fio2 21.0 is air", []Value{num(clinical.FiO2, "21.0")}, want{&no, clinical.FiO2, "21.0"}},
		{"fio2 21.5 is oxygen", []Value{num(clinical.FiO2, "21.5")}, want{&yes, clinical.FiO2, "21.5"}},
		{"fio2 40", []Value{num(clinical.FiO2, "40")}, want{&yes, clinical.FiO2, "40"}},
		{"fio2 100", []Value{num(clinical.FiO2, "100")}, want{&yes, clinical.FiO2, "100"}},
		{"fio2 20.9 is invalid", []Value{num(clinical.FiO2, "20.9")}, want{}},
		{"fio2 0.4 (a fraction) is invalid", []Value{num(clinical.FiO2, "0.4")}, want{}},
		{"fio2 101 is invalid", []Value{num(clinical.FiO2, "101")}, want{}},
		{"nothing says", nil, want{}},
		{"dbp says nothing", []Value{num(clinical.DiastolicBP, "70")}, want{}},

		{"newer flow beats older charted air", []Value{code(clinical.OnOxygen, clinical.OnAir), later(num(clinical.O2Flow, "2"), 1)}, want{&yes, clinical.O2Flow, "2"}},
		{"newer charted air beats older flow", []Value{later(code(clinical.OnOxygen, clinical.OnAir), 1), num(clinical.O2Flow, "2")}, want{&no, clinical.OnOxygen, "air"}},
		{"newer fio2 21 beats older flow", []Value{num(clinical.O2Flow, "2"), later(num(clinical.FiO2, "21"), 1)}, want{&no, clinical.FiO2, "21"}},
		{"newer flow 0 beats older fio2", []Value{num(clinical.FiO2, "35"), later(num(clinical.O2Flow, "0"), 1)}, want{&no, clinical.O2Flow, "0"}},
		{"newest of three", []Value{
			later(code(clinical.OnOxygen, clinical.OnAir), 5), num(clinical.O2Flow, "0"), later(num(clinical.FiO2, "28"), 10),
		}, want{&yes, clinical.FiO2, "28"}},
		{"an invalid newer fio2 is ignored", []Value{num(clinical.O2Flow, "3"), later(num(clinical.FiO2, "18"), 10)}, want{&yes, clinical.O2Flow, "3"}},
		{"tie: oxygen wins", []Value{num(clinical.O2Flow, "0"), num(clinical.FiO2, "40")}, want{&yes, clinical.FiO2, "40"}},
		{"tie: charted air against flow 4", []Value{code(clinical.OnOxygen, clinical.OnAir), num(clinical.O2Flow, "4")}, want{&yes, clinical.O2Flow, "4"}},
		{"tie: both air, charted first", []Value{num(clinical.O2Flow, "0"), code(clinical.OnOxygen, clinical.OnAir)}, want{&no, clinical.OnOxygen, "air"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			in := without(normal(c.in...), clinical.OnOxygen)
			for _, v := range c.in {
				in[v.Parameter] = v
			}
			r := NEWS2(Patient{}, in)
			checkInvariants(t, r, news2Components)
			if c.want.oxygen == nil {
				if r.OnOxygen != nil {
					t.Errorf("OnOxygen = %v, want nil", *r.OnOxygen)
				}
				if !slices.Equal(r.Missing, []string{clinical.OnOxygen}) || r.Complete {
					t.Errorf("Missing = %v, Complete = %v; want [on_oxygen], false", r.Missing, r.Complete)
				}
				if r.Total != 0 {
					t.Errorf("Total = %d; air must not be assumed nor oxygen scored", r.Total)
				}
				return
			}
			if r.OnOxygen == nil || *r.OnOxygen != *c.want.oxygen {
				t.Fatalf("OnOxygen = %v, want %v", r.OnOxygen, *c.want.oxygen)
			}
			got := r.Components[clinical.OnOxygen]
			wantPoints := 0
			if *c.want.oxygen {
				wantPoints = 2
			}
			if got.Points != wantPoints || got.Parameter != c.want.from || got.Value != c.want.value || got.EventID != idOf(c.want.from) {
				t.Errorf("component %+v, want %d points from %s %q", got, wantPoints, c.want.from, c.want.value)
			}
			if !r.Complete || r.Total != wantPoints {
				t.Errorf("Complete = %v, Total = %d; want true, %d", r.Complete, r.Total, wantPoints)
			}
			// Superseded sources are not inputs.
			for _, p := range []string{clinical.OnOxygen, clinical.O2Flow, clinical.FiO2} {
				if in := slices.Contains(r.Inputs, idOf(p)); in != (p == c.want.from) {
					t.Errorf("%s in Inputs = %v, want %v", p, in, p == c.want.from)
				}
			}
		})
	}
}

func TestNEWS2Scale(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		scale int
		want  int
	}{
		{"unset is scale 1", 0, 1},
		{"scale 1", 1, 1},
		{"scale 2", 2, 2},
		{"3 is not a scale", 3, 1},
		{"negative is not a scale", -2, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := NEWS2(Patient{SpO2Scale: c.scale}, normal())
			if r.Scale != c.want {
				t.Errorf("Scale = %d, want %d", r.Scale, c.want)
			}
		})
	}
}

func TestNEWS2Scale2WithoutAirOrOxygen(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		spo2        string
		wantMissing []string
		wantPoints  int
	}{
		{"93 needs air or oxygen", "93", []string{clinical.OnOxygen, clinical.SpO2}, 0},
		{"97 needs air or oxygen", "97", []string{clinical.OnOxygen, clinical.SpO2}, 0},
		{"92.5 needs air or oxygen", "92.5", []string{clinical.OnOxygen, clinical.SpO2}, 0},
		{"92 does not", "92", []string{clinical.OnOxygen}, 0},
		{"85 does not", "85", []string{clinical.OnOxygen}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := NEWS2(Patient{SpO2Scale: 2}, without(normal(num(clinical.SpO2, c.spo2)), clinical.OnOxygen))
			checkInvariants(t, r, news2Components)
			if !slices.Equal(r.Missing, c.wantMissing) {
				t.Errorf("Missing = %v, want %v", r.Missing, c.wantMissing)
			}
			if r.Total != c.wantPoints {
				t.Errorf("Total = %d, want %d", r.Total, c.wantPoints)
			}
			if _, scored := r.Components[clinical.SpO2]; scored == slices.Contains(c.wantMissing, clinical.SpO2) {
				t.Errorf("spo2 scored = %v with Missing %v", scored, r.Missing)
			}
			if slices.Contains(c.wantMissing, clinical.SpO2) && slices.Contains(r.Inputs, idOf(clinical.SpO2)) {
				t.Errorf("an unscored spo2 is listed in Inputs")
			}
		})
	}
}

func TestNEWS2Missing(t *testing.T) {
	t.Parallel()
	// A high-scoring set, so that a missing component visibly lowers the
	// total: rr 25 (3), spo2 91 (3), oxygen (2), sbp 90 (3), hr 131 (3),
	// V (3), temp 35.0 (3) = 20.
	full := func() map[string]Value {
		return vals(
			num(clinical.RespiratoryRate, "25"), num(clinical.SpO2, "91"), num(clinical.O2Flow, "4"),
			num(clinical.SystolicBP, "90"), num(clinical.HeartRate, "131"),
			code(clinical.Consciousness, clinical.Voice), num(clinical.Temperature, "35.0"),
		)
	}
	if r := NEWS2(Patient{}, full()); r.Total != 20 || !r.Complete {
		t.Fatalf("full set: Total = %d, Complete = %v; want 20, true", r.Total, r.Complete)
	}
	cases := []struct {
		name    string
		remove  string
		missing string
		lost    int
	}{
		{"respiratory_rate", clinical.RespiratoryRate, clinical.RespiratoryRate, 3},
		{"spo2", clinical.SpO2, clinical.SpO2, 3},
		{"air or oxygen", clinical.O2Flow, clinical.OnOxygen, 2},
		{"sbp", clinical.SystolicBP, clinical.SystolicBP, 3},
		{"heart_rate", clinical.HeartRate, clinical.HeartRate, 3},
		{"consciousness", clinical.Consciousness, clinical.Consciousness, 3},
		{"temperature", clinical.Temperature, clinical.Temperature, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := NEWS2(Patient{}, without(full(), c.remove))
			checkInvariants(t, r, news2Components)
			if r.Complete || !slices.Equal(r.Missing, []string{c.missing}) {
				t.Errorf("Complete = %v, Missing = %v; want false, [%s]", r.Complete, r.Missing, c.missing)
			}
			if _, ok := r.Components[c.missing]; ok {
				t.Errorf("missing %s has a component", c.missing)
			}
			if r.Total != 20-c.lost {
				t.Errorf("Total = %d, want the lower bound %d", r.Total, 20-c.lost)
			}
			if r.Risk != RiskHigh {
				t.Errorf("Risk = %q, want %q from the lower bound", r.Risk, RiskHigh)
			}
		})
	}

	t.Run("nothing at all", func(t *testing.T) {
		t.Parallel()
		r := NEWS2(Patient{}, nil)
		checkInvariants(t, r, news2Components)
		want := slices.Clone(news2Components)
		slices.Sort(want)
		if !slices.Equal(r.Missing, want) || r.Complete || r.Total != 0 || len(r.Inputs) != 0 {
			t.Errorf("got Missing %v, Complete %v, Total %d, Inputs %v", r.Missing, r.Complete, r.Total, r.Inputs)
		}
	})
}

func TestNEWS2InvalidValues(t *testing.T) {
	t.Parallel()
	huge := num(clinical.HeartRate, "1")
	huge.Numeric = decimal.New(1, 1_000_000_000)
	tiny := num(clinical.HeartRate, "1")
	tiny.Numeric = decimal.New(1, -1_000_000_000)
	misnamed := num(clinical.SystolicBP, "80")
	cases := []struct {
		name    string
		key     string
		v       Value
		missing string
	}{
		{"negative heart rate", clinical.HeartRate, num(clinical.HeartRate, "-1"), clinical.HeartRate},
		{"negative temperature", clinical.Temperature, num(clinical.Temperature, "-0.1"), clinical.Temperature},
		{"exponent too large", clinical.HeartRate, huge, clinical.HeartRate},
		{"exponent too small", clinical.HeartRate, tiny, clinical.HeartRate},
		{"value named for another parameter", clinical.HeartRate, misnamed, clinical.HeartRate},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			in := normal()
			in[c.key] = c.v
			r := NEWS2(Patient{}, in)
			checkInvariants(t, r, news2Components)
			if !slices.Equal(r.Missing, []string{c.missing}) {
				t.Errorf("Missing = %v, want [%s]", r.Missing, c.missing)
			}
		})
	}

	t.Run("an empty Parameter means the key", func(t *testing.T) {
		t.Parallel()
		v := num(clinical.HeartRate, "35")
		v.Parameter = ""
		in := normal()
		in[clinical.HeartRate] = v
		r := NEWS2(Patient{}, in)
		if !r.Complete || r.Components[clinical.HeartRate].Points != 3 {
			t.Errorf("got %+v", r.Components[clinical.HeartRate])
		}
	})
}

func TestNEWS2Risk(t *testing.T) {
	t.Parallel()
	oxygen := code(clinical.OnOxygen, clinical.OnOxygenYes)
	cases := []struct {
		name     string
		in       map[string]Value
		total    int
		risk     string
		response string
		red      bool
	}{
		{"0 is low, 12-hourly", normal(), 0, RiskLow, ResponseNEWS2Zero, false},
		{"1 is low, 4–6-hourly", normal(num(clinical.HeartRate, "95")), 1, RiskLow, ResponseNEWS2Low, false},
		{"4 without a 3 is low", normal(num(clinical.HeartRate, "95"), num(clinical.Temperature, "38.5"), num(clinical.RespiratoryRate, "22")), 4, RiskLow, ResponseNEWS2Low, false},
		{"a single 3 is low-medium", normal(num(clinical.HeartRate, "35")), 3, RiskLowMedium, ResponseNEWS2LowMedium, true},
		{"a single 3 with total 4 is low-medium", normal(num(clinical.HeartRate, "35"), num(clinical.Temperature, "38.5")), 4, RiskLowMedium, ResponseNEWS2LowMedium, true},
		{"new confusion alone is low-medium", normal(code(clinical.Consciousness, clinical.NewConfusion)), 3, RiskLowMedium, ResponseNEWS2LowMedium, true},
		{"total 5 wins over a single 3", normal(num(clinical.HeartRate, "35"), num(clinical.RespiratoryRate, "22")), 5, RiskMedium, ResponseNEWS2Medium, true},
		{"5 without a 3 is medium", normal(num(clinical.RespiratoryRate, "22"), oxygen, num(clinical.Temperature, "38.5")), 5, RiskMedium, ResponseNEWS2Medium, false},
		{"6 is medium", normal(num(clinical.RespiratoryRate, "22"), oxygen, num(clinical.HeartRate, "115")), 6, RiskMedium, ResponseNEWS2Medium, false},
		{"7 is high", normal(num(clinical.RespiratoryRate, "22"), oxygen, num(clinical.HeartRate, "115"), num(clinical.Temperature, "38.5")), 7, RiskHigh, ResponseNEWS2High, false},
		{"7 with a 3 is high", normal(num(clinical.HeartRate, "35"), num(clinical.RespiratoryRate, "22"), oxygen), 7, RiskHigh, ResponseNEWS2High, true},
		{"20 is high", vals(
			num(clinical.RespiratoryRate, "30"), num(clinical.SpO2, "85"), oxygen, num(clinical.SystolicBP, "80"),
			num(clinical.HeartRate, "150"), code(clinical.Consciousness, clinical.Unresponsive), num(clinical.Temperature, "34.0"),
		), 20, RiskHigh, ResponseNEWS2High, true},
		{"incomplete: a single 3 from the lower bound", vals(num(clinical.HeartRate, "35")), 3, RiskLowMedium, ResponseNEWS2LowMedium, true},
		{"incomplete: high from the lower bound", vals(num(clinical.HeartRate, "35"), num(clinical.SystolicBP, "85"), num(clinical.RespiratoryRate, "22")), 8, RiskHigh, ResponseNEWS2High, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := NEWS2(Patient{}, c.in)
			checkInvariants(t, r, news2Components)
			if r.Total != c.total || r.Risk != c.risk || r.Response != c.response || r.SingleParameter3 != c.red {
				t.Errorf("got Total %d, Risk %q, red %v, Response %q; want %d, %q, %v, %q",
					r.Total, r.Risk, r.SingleParameter3, r.Response, c.total, c.risk, c.red, c.response)
			}
		})
	}
}

func TestNEWS2Lineage(t *testing.T) {
	t.Parallel()
	in := normal(num(clinical.Temperature, "38.0"))
	r := NEWS2(Patient{}, in)
	want := ids(news2Components...)
	if !slices.Equal(r.Inputs, want) {
		t.Errorf("Inputs = %v, want %v", r.Inputs, want)
	}
	temp := r.Components[clinical.Temperature]
	if temp.Value != "38.0" || temp.EventID != idOf(clinical.Temperature) || !temp.ObservedAt.Equal(t0) || temp.Parameter != clinical.Temperature {
		t.Errorf("temperature component %+v", temp)
	}

	t.Run("one event feeding two parameters is listed once", func(t *testing.T) {
		t.Parallel()
		shared := uuid.MustParse("0b5e1a6c-1d1f-4c3b-9a55-5d2f2c0f7a11")
		in := normal()
		for _, p := range []string{clinical.SystolicBP, clinical.HeartRate} {
			v := in[p]
			v.EventID = shared
			in[p] = v
		}
		r := NEWS2(Patient{}, in)
		checkInvariants(t, r, news2Components)
		if n := len(r.Inputs); n != 6 {
			t.Errorf("len(Inputs) = %d, want 6", n)
		}
	})

	t.Run("a nil event ID is not an input", func(t *testing.T) {
		t.Parallel()
		in := normal()
		v := in[clinical.HeartRate]
		v.EventID = uuid.Nil
		in[clinical.HeartRate] = v
		r := NEWS2(Patient{}, in)
		checkInvariants(t, r, news2Components)
		if len(r.Inputs) != 6 || !r.Complete {
			t.Errorf("Inputs = %v, Complete = %v", r.Inputs, r.Complete)
		}
	})
}

func TestNEWS2DoesNotModifyInput(t *testing.T) {
	t.Parallel()
	in := normal(num(clinical.O2Flow, "2"))
	before := len(in)
	NEWS2(Patient{SpO2Scale: 2}, in)
	if len(in) != before {
		t.Errorf("input map changed size: %d → %d", before, len(in))
	}
}
