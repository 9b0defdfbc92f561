package hl7sim

import (
	"testing"

	"github.com/aortahealth/aorta/pkg/clinical"
	"github.com/aortahealth/aorta/pkg/hl7"
)

// TestLoadBuilders covers the builders cmd/hl7load mixes in: each message
// parses, has a valid header, goes to the route meant for it, and every
// mapped value it carries normalises (a unit the routes do not list would
// make the lab route dead-letter it, and monitors' NEWS2 incomplete).
func TestLoadBuilders(t *testing.T) {
	cfg := shipped(t)
	w := newWard(t, Options{Patients: 2, Seed: 1})
	p := w.Patients()[1]
	panels := []LabPanel{
		{Code: "58410-2", Name: "CBC panel", Tests: []LabTest{
			{Code: "6690-2", Name: "Leukocytes", Value: "7.4", Unit: "10*9/L", Range: "4.0-11.0"},
			{Code: "718-7", Name: "Hemoglobin", Value: "131", Unit: "g/L", Range: "115-165"},
		}},
		{Code: "24362-6", Name: "Renal function panel", Tests: []LabTest{
			{Code: "14682-9", Name: "Creatinine", Value: "97", Unit: "umol/L", Range: "45-90", Flag: "H"},
			{Code: "2951-2", Name: "Sodium", Value: "139", Unit: "mmol/L", Range: "133-146"},
			{Code: "2524-7", Name: "Lactate", Value: "1.1", Unit: "mmol/L", Range: "0.5-2.2"},
		}},
	}
	all := MonitorSetup{NIBP: true, Temperature: true, CO2: true}
	tests := []struct {
		name      string
		build     func() ([]byte, error)
		wantType  string
		wantRoute string
		wantOBR   int
		wantOBX   int
	}{
		{"update", func() ([]byte, error) { return Update(p, "U1", start) }, "ADT^A08", "adt", 0, 0},
		{"lab report", func() ([]byte, error) { return LabReport(p, panels, "L1", start) }, "ORU^R01", "lab-results", 2, 5},
		{"monitor, basic", func() ([]byte, error) { return MonitorResult(p, w.Next(1), MonitorSetup{}, "M1", start) }, "ORU^R01", "device-vitals", 1, 10},
		{"monitor, NIBP and temperature", func() ([]byte, error) {
			return MonitorResult(p, Deterioration(AlertReading), MonitorSetup{NIBP: true, Temperature: true}, "M2", start)
		}, "ORU^R01", "device-vitals", 1, 19},
		{"monitor, everything", func() ([]byte, error) { return MonitorResult(p, w.Next(1), all, "M3", start) }, "ORU^R01", "device-vitals", 1, all.MonitorOBX()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := tc.build()
			m := parseBuilt(t, raw, err)
			h := m.Header()
			if got := h.MessageType + "^" + h.TriggerEvent; got != tc.wantType {
				t.Errorf("MSH-9 = %s, want %s", got, tc.wantType)
			}
			if got := firstRoute(cfg, m); got != tc.wantRoute {
				t.Errorf("route %s, want %s", got, tc.wantRoute)
			}
			if got := get(t, m, "PID-3.1"); got != p.MRN {
				t.Errorf("PID-3.1 = %q, want %q", got, p.MRN)
			}
			count := func(name string) int {
				n := 0
				for range m.All(name) {
					n++
				}
				return n
			}
			if got := count("OBR"); got != tc.wantOBR {
				t.Errorf("%d OBR, want %d", got, tc.wantOBR)
			}
			if got := count("OBX"); got != tc.wantOBX {
				t.Errorf("%d OBX, want %d", got, tc.wantOBX)
			}
			rt := cfg.Route(tc.wantRoute)
			mapped := 0
			for obx := range m.All("OBX") {
				if obx.Field(11).String() == "X" {
					continue
				}
				code := clinical.Code{System: obx.Field(3).Component(3).String(), Code: obx.Field(3).Component(1).String()}
				par, ok := rt.Table.Lookup(code)
				if !ok {
					continue // recorded with no parameter
				}
				mapped++
				if _, err := par.Normalize(obx.Field(5).String(), obx.Field(6).Component(1).String()); err != nil {
					t.Errorf("%s %v: %v", par.Name, code, err)
				}
				if _, err := hl7.ParseTime(obx.Field(14).String()); err != nil {
					t.Errorf("%v: OBX-14: %v", code, err)
				}
			}
			if tc.wantOBX > 0 && mapped == 0 {
				t.Errorf("no OBX maps to a parameter of route %s", tc.wantRoute)
			}
		})
	}
}
