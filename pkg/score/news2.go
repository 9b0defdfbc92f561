package score

import (
	"strings"

	"github.com/shopspring/decimal"

	"github.com/aortahealth/aorta/pkg/clinical"
)

// band is one step of a cascade: values up to and including upTo score
// points.
type band struct {
	upTo   decimal.Decimal
	points int
}

// cascade scores a value with inclusive upper bounds tried in order, so
// that a value between two printed bands (35.05 °C, SpO2 95.5) falls in
// the band above it: v ≤ bands[0].upTo scores bands[0].points, else
// v ≤ bands[1].upTo ..., else above.
type cascade struct {
	bands []band
	above int
}

// upTo is a band: values up to and including the bound score points.
func upTo(bound string, points int) band { return band{upTo: dec(bound), points: points} }

// score returns the points of v and the band it fell in, as text: "≤ 8",
// "> 8 and ≤ 11" or "> 24". floor, when not empty, is the exclusive lower
// bound of the first band ("> 92 and ≤ 94").
func (c cascade) score(v decimal.Decimal, floor string) (int, string) {
	prev := floor
	for _, b := range c.bands {
		if v.Cmp(b.upTo) <= 0 {
			bound := clinical.DecimalText(b.upTo)
			if prev == "" {
				return b.points, "≤ " + bound
			}
			return b.points, "> " + prev + " and ≤ " + bound
		}
		prev = clinical.DecimalText(b.upTo)
	}
	return c.above, "> " + prev
}

// The NEWS2 bands (RCP 2017, chart 1), as cascades.
var (
	news2RespRate   = cascade{bands: []band{upTo("8", 3), upTo("11", 1), upTo("20", 0), upTo("24", 2)}, above: 3}
	news2SpO2Scale1 = cascade{bands: []band{upTo("91", 3), upTo("93", 2), upTo("95", 1)}, above: 0}
	// Scale 2 up to 92 %; above it air or oxygen decides (news2SpO2Air,
	// news2SpO2Oxygen), so this cascade's above is never used.
	news2SpO2Scale2  = cascade{bands: []band{upTo("83", 3), upTo("85", 2), upTo("87", 1), upTo("92", 0)}}
	news2SpO2Air     = dec("92") // scale 2: above it, on air scores 0
	news2SpO2Oxygen  = cascade{bands: []band{upTo("94", 1), upTo("96", 2)}, above: 3}
	news2SBP         = cascade{bands: []band{upTo("90", 3), upTo("100", 2), upTo("110", 1), upTo("219", 0)}, above: 3}
	news2HeartRate   = cascade{bands: []band{upTo("40", 3), upTo("50", 1), upTo("90", 0), upTo("110", 1), upTo("130", 2)}, above: 3}
	news2Temperature = cascade{bands: []band{upTo("35.0", 3), upTo("36.0", 1), upTo("38.0", 0), upTo("39.0", 1)}, above: 2}
)

// NEWS2 response texts: RCP chart 4 (NEWS2, © Royal College of Physicians
// 2017, reproduced with acknowledgement as the RCP permits), frequency of
// monitoring then clinical response.
const (
	ResponseNEWS2Zero = "Minimum 12-hourly monitoring; continue routine NEWS monitoring"
	ResponseNEWS2Low  = "Minimum 4–6-hourly monitoring; inform a registered nurse, who must assess the patient " +
		"and decide whether increased frequency of clinical monitoring or escalation of care is required"
	ResponseNEWS2LowMedium = "Minimum 1-hourly monitoring; registered nurse to inform the medical team caring for the patient, " +
		"who will review and decide whether escalation of care is necessary"
	ResponseNEWS2Medium = "Minimum 1-hourly monitoring; registered nurse to immediately inform the medical team caring for the patient; " +
		"registered nurse to request urgent assessment by a clinician or team with core competencies in the care of acutely ill patients; " +
		"provide clinical care in an environment with monitoring facilities"
	ResponseNEWS2High = "Continuous monitoring of vital signs; registered nurse to immediately inform the medical team caring for the patient " +
		"(at least specialist registrar level); emergency assessment by a team with critical-care competencies, " +
		"including practitioner(s) with advanced airway management skills; consider transfer of care to a level 2 or 3 " +
		"clinical care facility (higher-dependency unit or ICU); clinical care in an environment with monitoring facilities"
)

// NEWS2 computes the National Early Warning Score 2 (RCP 2017) from the
// latest valid value of each parameter, keyed by parameter name.
//
// Seven components, each named after its parameter: respiratory_rate,
// spo2, on_oxygen (air or oxygen), sbp, heart_rate, consciousness (ACVPU)
// and temperature (°C, already rounded by pkg/clinical; not re-rounded).
// Bands are inclusive cascades compared exactly: a value between two
// printed bands falls in the band above it (35.05 °C scores 1, SpO2 95.5 on
// scale 1 scores 0).
//
// SpO2 uses scale 2 only when p.SpO2Scale is 2. On scale 2 a value above
// 92 % scores by air or oxygen; when that is unknown the spo2 component is
// missing, never guessed.
//
// Air or oxygen is derived from on_oxygen (charted "oxygen" or "air"),
// o2_flow (> 0 L/min oxygen, 0 air) and fio2 (> 21 % oxygen, 21 % air;
// below 21 or above 100 is invalid and ignored). When several are present
// the most recent by ObservedAt wins, as a newer reading of one parameter
// supersedes an older one; the superseded ones are not inputs. On a tie
// oxygen wins, the reading that does not under-state risk. When nothing
// says, on_oxygen is missing: air is never assumed. Oxygen scores 2, air 0.
//
// A component whose value is absent or invalid (a negative number, a code
// that is not an answer) is missing: Complete is false, it is named in
// Missing and contributes nothing, so Total is a lower bound. A zero is a
// reading. Risk and Response follow Total: ≥ 7 high, 5–6 medium, a single
// 3 with a total ≤ 4 low-medium, else low; the total wins over the single
// red score.
//
// A patient under 16 gets a Result with NotApplicable set (see
// Applicable).
func NEWS2(p Patient, vals map[string]Value) Result {
	if ok, reason := Applicable(p); !ok {
		return Result{Score: NameNEWS2, NotApplicable: reason}
	}
	b := newBuilder(NameNEWS2)
	b.r.Scale = 1
	if p.SpO2Scale == 2 {
		b.r.Scale = 2
	}

	band := func(name string, c cascade) {
		v, ok := numeric(vals, name)
		if !ok {
			b.missing(name)
			return
		}
		points, crit := c.score(v.Numeric, "")
		b.component(name, name, v, true, points, crit)
	}
	band(clinical.RespiratoryRate, news2RespRate)

	air, airOK := airOrOxygen(vals)
	if airOK {
		oxygen := air.oxygen
		b.r.OnOxygen = &oxygen
		points := 0
		if oxygen {
			points = 2
		}
		b.component(clinical.OnOxygen, air.param, air.v, air.param != clinical.OnOxygen, points, air.criterion)
	} else {
		b.missing(clinical.OnOxygen)
	}

	if v, ok := numeric(vals, clinical.SpO2); !ok {
		b.missing(clinical.SpO2)
	} else if b.r.Scale == 1 {
		points, crit := news2SpO2Scale1.score(v.Numeric, "")
		b.component(clinical.SpO2, clinical.SpO2, v, true, points, "scale 1: "+crit)
	} else if v.Numeric.Cmp(news2SpO2Air) <= 0 {
		points, crit := news2SpO2Scale2.score(v.Numeric, "")
		b.component(clinical.SpO2, clinical.SpO2, v, true, points, "scale 2: "+crit)
	} else if !airOK {
		b.missing(clinical.SpO2) // scale 2 above 92 %: needs air or oxygen
	} else if !air.oxygen {
		b.component(clinical.SpO2, clinical.SpO2, v, true, 0, "scale 2, on air: > 92")
	} else {
		points, crit := news2SpO2Oxygen.score(v.Numeric, "92")
		b.component(clinical.SpO2, clinical.SpO2, v, true, points, "scale 2, on oxygen: "+crit)
	}

	band(clinical.SystolicBP, news2SBP)
	band(clinical.HeartRate, news2HeartRate)

	if v, ok := coded(vals, clinical.Consciousness, clinical.Alert, clinical.NewConfusion, clinical.Voice, clinical.Pain, clinical.Unresponsive); ok {
		if v.Coded == clinical.Alert {
			b.component(clinical.Consciousness, clinical.Consciousness, v, false, 0, "alert")
		} else {
			b.component(clinical.Consciousness, clinical.Consciousness, v, false, 3, acvpuText(v.Coded))
		}
	} else {
		b.missing(clinical.Consciousness)
	}

	band(clinical.Temperature, news2Temperature)

	r := b.result()
	switch {
	case r.Total >= 7:
		r.Risk, r.Response = RiskHigh, ResponseNEWS2High
	case r.Total >= 5:
		r.Risk, r.Response = RiskMedium, ResponseNEWS2Medium
	case r.SingleParameter3:
		r.Risk, r.Response = RiskLowMedium, ResponseNEWS2LowMedium
	case r.Total == 0:
		r.Risk, r.Response = RiskLow, ResponseNEWS2Zero
	default:
		r.Risk, r.Response = RiskLow, ResponseNEWS2Low
	}
	return r
}

// acvpuText names a level of consciousness that is not alert.
func acvpuText(code string) string {
	switch code {
	case clinical.NewConfusion:
		return "new confusion"
	case clinical.Voice:
		return "responds to voice"
	case clinical.Pain:
		return "responds to pain"
	case clinical.Unresponsive:
		return "unresponsive"
	}
	return strings.ToLower(code)
}

// airOxygen is a derived air-or-oxygen reading.
type airOxygen struct {
	oxygen    bool
	param     string // on_oxygen, o2_flow or fio2
	v         Value
	criterion string
}

var (
	fio2Air = dec("21")
	fio2Max = dec("100")
)

// airOrOxygen derives air or oxygen: the most recent of the valid
// on_oxygen, o2_flow and fio2 values; on a tie oxygen, then that order.
func airOrOxygen(vals map[string]Value) (airOxygen, bool) {
	var cands []airOxygen
	if v, ok := coded(vals, clinical.OnOxygen, clinical.OnOxygenYes, clinical.OnAir); ok {
		cands = append(cands, airOxygen{oxygen: v.Coded == clinical.OnOxygenYes, param: clinical.OnOxygen, v: v, criterion: "charted " + v.Coded})
	}
	if v, ok := numeric(vals, clinical.O2Flow); ok {
		if v.Numeric.IsPositive() {
			cands = append(cands, airOxygen{oxygen: true, param: clinical.O2Flow, v: v, criterion: "o2_flow > 0 L/min: oxygen"})
		} else {
			cands = append(cands, airOxygen{oxygen: false, param: clinical.O2Flow, v: v, criterion: "o2_flow 0 L/min: air"})
		}
	}
	if v, ok := numeric(vals, clinical.FiO2); ok && v.Numeric.Cmp(fio2Air) >= 0 && v.Numeric.Cmp(fio2Max) <= 0 {
		if v.Numeric.Cmp(fio2Air) > 0 {
			cands = append(cands, airOxygen{oxygen: true, param: clinical.FiO2, v: v, criterion: "fio2 > 21 %: oxygen"})
		} else {
			cands = append(cands, airOxygen{oxygen: false, param: clinical.FiO2, v: v, criterion: "fio2 21 %: air"})
		}
	}
	if len(cands) == 0 {
		return airOxygen{}, false
	}
	best := cands[0]
	for _, c := range cands[1:] {
		switch {
		case c.v.ObservedAt.After(best.v.ObservedAt):
			best = c
		case c.v.ObservedAt.Equal(best.v.ObservedAt) && c.oxygen && !best.oxygen:
			best = c
		}
	}
	return best, true
}
