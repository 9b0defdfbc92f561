package score

import (
	"github.com/shopspring/decimal"

	"github.com/aortahealth/aorta/pkg/clinical"
)

// SIRS response texts.
const (
	ResponseSIRSMet    = "SIRS criteria met: assess for infection and sepsis; SIRS is not specific to infection"
	ResponseSIRSNotMet = "SIRS criteria not met: continue monitoring"
)

// The SIRS thresholds (ACCP/SCCM 1992), all strict.
var (
	sirsTempHigh  = dec("38") // >
	sirsTempLow   = dec("36") // <
	sirsHeartRate = dec("90") // >
	sirsRespRate  = dec("20") // >
	sirsPaCO2     = dec("32") // <
	sirsWBCHigh   = dec("12") // >
	sirsWBCLow    = dec("4")  // <
	sirsBands     = dec("10") // >
)

// clause is one input of a SIRS criterion.
type clause struct {
	param string
	met   func(decimal.Decimal) bool
	yes   string // the rule, when met
	no    string // the rule, when not met
}

// The SIRS criteria: each is met when any of its present inputs meets its
// clause. Inputs are tried in this order.
var sirsCriteria = []struct {
	name    string
	clauses []clause
}{
	{clinical.Temperature, []clause{{clinical.Temperature,
		func(v decimal.Decimal) bool { return v.Cmp(sirsTempHigh) > 0 || v.Cmp(sirsTempLow) < 0 },
		"temperature > 38 or < 36", "temperature 36–38"}}},
	{clinical.HeartRate, []clause{{clinical.HeartRate,
		func(v decimal.Decimal) bool { return v.Cmp(sirsHeartRate) > 0 },
		"heart_rate > 90", "heart_rate ≤ 90"}}},
	{Respiration, []clause{
		{clinical.RespiratoryRate, func(v decimal.Decimal) bool { return v.Cmp(sirsRespRate) > 0 },
			"respiratory_rate > 20", "respiratory_rate ≤ 20"},
		{clinical.PaCO2, func(v decimal.Decimal) bool { return v.Cmp(sirsPaCO2) < 0 },
			"paco2 < 32", "paco2 ≥ 32"},
	}},
	{Leukocytes, []clause{
		{clinical.WBC, func(v decimal.Decimal) bool { return v.Cmp(sirsWBCHigh) > 0 || v.Cmp(sirsWBCLow) < 0 },
			"wbc > 12 or < 4", "wbc 4–12"},
		{clinical.Bands, func(v decimal.Decimal) bool { return v.Cmp(sirsBands) > 0 },
			"bands > 10 %", "bands ≤ 10 %"},
	}},
}

// SIRS computes the systemic inflammatory response syndrome criteria
// (ACCP/SCCM consensus, 1992) from the latest valid value of each
// parameter, keyed by parameter name.
//
// Four criteria, one point each, all strict comparisons:
//   - temperature: > 38 or < 36 °C;
//   - heart_rate: > 90 /min;
//   - Respiration: respiratory_rate > 20 /min or paco2 < 32 mm[Hg];
//   - Leukocytes: wbc > 12 or < 4 ×10⁹/L, or bands > 10 %.
//
// So 38.0 °C, 90 /min, 20 /min, 32 mm[Hg], wbc 12.0 and 4.0 and bands 10 %
// do not meet them. A criterion is missing only when none of its inputs is
// present; one present input decides it (respiratory_rate 18 without a
// paco2 is "not met"). Its component reports the first input that meets
// it, else the first present; every present input is in Inputs. Risk is
// RiskMet for two or more criteria, else RiskNotMet; for an incomplete
// result both are lower bounds. A patient under 16 gets a Result with
// NotApplicable set.
func SIRS(p Patient, vals map[string]Value) Result {
	if ok, reason := Applicable(p); !ok {
		return Result{Score: NameSIRS, NotApplicable: reason}
	}
	b := newBuilder(NameSIRS)
	for _, crit := range sirsCriteria {
		var present []Value
		var clauses []clause
		for _, c := range crit.clauses {
			if v, ok := numeric(vals, c.param); ok {
				present = append(present, v)
				clauses = append(clauses, c)
			}
		}
		if len(present) == 0 {
			b.missing(crit.name)
			continue
		}
		decided := -1
		for i, c := range clauses {
			if c.met(present[i].Numeric) {
				decided = i
				break
			}
		}
		if decided >= 0 {
			b.component(crit.name, clauses[decided].param, present[decided], true, 1, clauses[decided].yes, present...)
			continue
		}
		rule := clauses[0].no
		for _, c := range clauses[1:] {
			rule += "; " + c.no
		}
		b.component(crit.name, clauses[0].param, present[0], true, 0, rule, present...)
	}

	r := b.result()
	if r.Total >= 2 {
		r.Risk, r.Response = RiskMet, ResponseSIRSMet
	} else {
		r.Risk, r.Response = RiskNotMet, ResponseSIRSNotMet
	}
	return r
}
