package score

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aortahealth/aorta/pkg/clinical"
)

// FuzzScores feeds arbitrary values to the three scores: they never panic,
// every component is present or missing, and Total is the sum of the
// component points within the score's range (NEWS2 0–20, qSOFA 0–3, SIRS
// 0–4).
func FuzzScores(f *testing.F) {
	f.Add("16", "97", "0", "21", "120", "70", "37.0", "15", "A", "air", uint16(0xffff), int8(1), int64(0), int64(60))
	f.Add("8", "91", "2", "40", "90", "131", "35.05", "14", "C", "oxygen", uint16(0xffff), int8(2), int64(30), int64(-30))
	f.Add("95.5", "93", "-1", "20.9", "219.5", "0", "39.1", "16", "V", "maybe", uint16(0x0f0f), int8(2), int64(0), int64(0))
	f.Add("1e1000000000", "1e-1000000000", "1e64", "1e-64", "NaN", "", "-0", "2", "", "oxygen", uint16(0xffff), int8(2), int64(1), int64(2))
	f.Add("999999999999999999999999999999", ".5", "0.0", "100.0", "5.", "+72", "38.0", "3", "U", "air", uint16(0), int8(0), int64(-1), int64(1))
	f.Fuzz(func(t *testing.T, rr, spo2, flow, fio2, sbp, hr, temp, gcs, acvpu, onO2 string, present uint16, scale int8, flowAt, fio2At int64) {
		in := map[string]Value{}
		n := 0
		put := func(param string, v Value) {
			if present&(1<<n) != 0 {
				v.Parameter = param
				v.EventID = idOf(param)
				if v.ObservedAt.IsZero() {
					v.ObservedAt = t0
				}
				in[param] = v
			}
			n++
		}
		number := func(param, s string, at int64) {
			d, err := decimal.NewFromString(s)
			if err != nil {
				n++
				return
			}
			put(param, Value{Numeric: d, ObservedAt: t0.Add(time.Duration(at%1e6) * time.Second)})
		}
		number(clinical.RespiratoryRate, rr, 0)
		number(clinical.SpO2, spo2, 0)
		number(clinical.O2Flow, flow, flowAt)
		number(clinical.FiO2, fio2, fio2At)
		number(clinical.SystolicBP, sbp, 0)
		number(clinical.HeartRate, hr, 0)
		number(clinical.Temperature, temp, 0)
		number(clinical.GCS, gcs, 0)
		put(clinical.Consciousness, Value{Coded: acvpu})
		put(clinical.OnOxygen, Value{Coded: onO2})
		// Some of the SIRS laboratory inputs, reusing the texts.
		number(clinical.PaCO2, fio2, 0)
		number(clinical.WBC, flow, 0)
		number(clinical.Bands, gcs, 0)

		p := Patient{SpO2Scale: int(scale)}
		r := NEWS2(p, in)
		checkInvariants(t, r, news2Components)
		if r.Total < 0 || r.Total > 20 {
			t.Fatalf("NEWS2 Total %d out of 0–20", r.Total)
		}
		if r.Scale != 1 && r.Scale != 2 {
			t.Fatalf("Scale %d", r.Scale)
		}
		if (r.OnOxygen == nil) != (r.Components[clinical.OnOxygen] == Component{}) {
			t.Fatalf("OnOxygen %v disagrees with the component", r.OnOxygen)
		}
		red := false
		for _, c := range r.Components {
			if c.Points < 0 || c.Points > 3 {
				t.Fatalf("component %+v out of 0–3", c)
			}
			red = red || c.Points == 3
		}
		if red != r.SingleParameter3 {
			t.Fatalf("SingleParameter3 = %v, components %+v", r.SingleParameter3, r.Components)
		}
		if r.Risk == "" || r.Response == "" {
			t.Fatalf("no risk or response: %+v", r)
		}

		q := QSOFA(p, in, Options{GCSThreshold: int(scale)})
		checkInvariants(t, q, qsofaComponents)
		if q.Total < 0 || q.Total > 3 {
			t.Fatalf("qSOFA Total %d out of 0–3", q.Total)
		}
		s := SIRS(p, in)
		checkInvariants(t, s, sirsComponents)
		if s.Total < 0 || s.Total > 4 {
			t.Fatalf("SIRS Total %d out of 0–4", s.Total)
		}
	})
}
