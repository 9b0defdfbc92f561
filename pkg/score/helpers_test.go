package score

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/aortahealth/aorta/pkg/clinical"
)

// t0 is the clinical time of the test values.
var t0 = time.Date(2026, 3, 14, 9, 30, 0, 0, time.UTC)

// idOf is a stable event ID per parameter.
func idOf(param string) uuid.UUID { return uuid.NewSHA1(uuid.NameSpaceOID, []byte(param)) }

// num is a numeric value observed at t0.
func num(param, v string) Value {
	return Value{Parameter: param, Numeric: decimal.RequireFromString(v), ObservedAt: t0, EventID: idOf(param)}
}

// code is a coded value observed at t0.
func code(param, c string) Value {
	return Value{Parameter: param, Coded: c, ObservedAt: t0, EventID: idOf(param)}
}

// at moves a value's time by d.
func at(v Value, d time.Duration) Value {
	v.ObservedAt = v.ObservedAt.Add(d)
	return v
}

// vals builds an input map from values.
func vals(vs ...Value) map[string]Value {
	m := make(map[string]Value, len(vs))
	for _, v := range vs {
		m[v.Parameter] = v
	}
	return m
}

// normal is a complete NEWS2 set scoring 0, on air, with vs replacing or
// adding values.
func normal(vs ...Value) map[string]Value {
	m := vals(
		num(clinical.RespiratoryRate, "16"),
		num(clinical.SpO2, "97"),
		code(clinical.OnOxygen, clinical.OnAir),
		num(clinical.SystolicBP, "120"),
		num(clinical.HeartRate, "70"),
		code(clinical.Consciousness, clinical.Alert),
		num(clinical.Temperature, "37.0"),
	)
	for _, v := range vs {
		m[v.Parameter] = v
	}
	return m
}

// without removes parameters from a map.
func without(m map[string]Value, params ...string) map[string]Value {
	for _, p := range params {
		delete(m, p)
	}
	return m
}

// checkInvariants checks what every Result must satisfy.
func checkInvariants(t *testing.T, r Result, components []string) {
	t.Helper()
	if r.NotApplicable != "" {
		return
	}
	sum := 0
	for _, c := range r.Components {
		sum += c.Points
	}
	if r.Total != sum {
		t.Errorf("Total = %d, sum of component points = %d", r.Total, sum)
	}
	if r.Complete != (len(r.Missing) == 0) {
		t.Errorf("Complete = %v with Missing %v", r.Complete, r.Missing)
	}
	if !slices.IsSorted(r.Missing) {
		t.Errorf("Missing %v not sorted", r.Missing)
	}
	var names []string
	for n := range r.Components {
		names = append(names, n)
	}
	names = append(names, r.Missing...)
	slices.Sort(names)
	want := slices.Clone(components)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("components %v + missing %v, want exactly %v", r.Components, r.Missing, want)
	}
	for i := 1; i < len(r.Inputs); i++ {
		if bytes.Compare(r.Inputs[i-1][:], r.Inputs[i][:]) >= 0 {
			t.Errorf("Inputs %v not sorted and unique", r.Inputs)
		}
	}
	for _, id := range r.Inputs {
		if id == uuid.Nil {
			t.Errorf("Inputs contains the nil UUID")
		}
	}
	for n, c := range r.Components {
		if c.EventID != uuid.Nil && !slices.Contains(r.Inputs, c.EventID) {
			t.Errorf("component %s event %s not in Inputs", n, c.EventID)
		}
	}
}

// news2Components are the NEWS2 component names.
var news2Components = []string{
	clinical.RespiratoryRate, clinical.SpO2, clinical.OnOxygen, clinical.SystolicBP,
	clinical.HeartRate, clinical.Consciousness, clinical.Temperature,
}

// ids returns sorted event IDs of parameters.
func ids(params ...string) []uuid.UUID {
	out := make([]uuid.UUID, 0, len(params))
	for _, p := range params {
		out = append(out, idOf(p))
	}
	slices.SortFunc(out, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	return out
}
