package score

import (
	"strconv"

	"github.com/aortahealth/aorta/pkg/clinical"
)

// qSOFA response texts. qSOFA flags risk; it is not a diagnosis. The
// positive text follows Sepsis-3 (Singer et al., JAMA 2016).
const (
	ResponseQSOFAPositive = "qSOFA positive: investigate for organ dysfunction, initiate or escalate therapy as appropriate, " +
		"and consider referral to critical care or more frequent monitoring"
	ResponseQSOFANegative = "qSOFA negative: continue monitoring; a negative qSOFA does not rule out sepsis"
)

// The qSOFA thresholds (Seymour et al., JAMA 2016).
var (
	qsofaRespRate = dec("22")  // ≥
	qsofaSBP      = dec("100") // ≤
)

// defaultGCSThreshold: altered mentation is a GCS below 15.
const defaultGCSThreshold = 15

// GCS totals outside 3–15, or not whole, are invalid.
const (
	minGCS = 3
	maxGCS = 15
)

// QSOFA computes the quick Sequential Organ Failure Assessment (Sepsis-3)
// from the latest valid value of each parameter, keyed by parameter name.
//
// Three criteria, one point each: respiratory_rate ≥ 22 /min; sbp ≤ 100
// mm[Hg]; Mentation, altered when the GCS total is below
// o.GCSThreshold (default 15) or, when there is no valid GCS (a whole
// number 3–15), when the ACVPU level is anything but alert. A GCS is
// preferred to ACVPU whatever their times. Risk is RiskPositive for a
// total ≥ 2, else RiskNegative.
//
// Missing criteria are handled as in NEWS2: named in Missing, never
// counted, so Total and Risk are lower bounds (a negative incomplete
// qSOFA is not a negative qSOFA). A patient under 16 gets a Result with
// NotApplicable set.
func QSOFA(p Patient, vals map[string]Value, o Options) Result {
	if ok, reason := Applicable(p); !ok {
		return Result{Score: NameQSOFA, NotApplicable: reason}
	}
	threshold := o.GCSThreshold
	if threshold <= 0 {
		threshold = defaultGCSThreshold
	}
	b := newBuilder(NameQSOFA)

	if v, ok := numeric(vals, clinical.RespiratoryRate); !ok {
		b.missing(clinical.RespiratoryRate)
	} else if v.Numeric.Cmp(qsofaRespRate) >= 0 {
		b.component(clinical.RespiratoryRate, clinical.RespiratoryRate, v, true, 1, "≥ 22")
	} else {
		b.component(clinical.RespiratoryRate, clinical.RespiratoryRate, v, true, 0, "< 22")
	}

	if v, ok := numeric(vals, clinical.SystolicBP); !ok {
		b.missing(clinical.SystolicBP)
	} else if v.Numeric.Cmp(qsofaSBP) <= 0 {
		b.component(clinical.SystolicBP, clinical.SystolicBP, v, true, 1, "≤ 100")
	} else {
		b.component(clinical.SystolicBP, clinical.SystolicBP, v, true, 0, "> 100")
	}

	t := strconv.Itoa(threshold)
	if v, ok := gcs(vals); ok {
		if v.Numeric.IntPart() < int64(threshold) {
			b.component(Mentation, clinical.GCS, v, true, 1, "gcs < "+t)
		} else {
			b.component(Mentation, clinical.GCS, v, true, 0, "gcs ≥ "+t)
		}
	} else if v, ok := coded(vals, clinical.Consciousness, clinical.Alert, clinical.NewConfusion, clinical.Voice, clinical.Pain, clinical.Unresponsive); ok {
		if v.Coded == clinical.Alert {
			b.component(Mentation, clinical.Consciousness, v, false, 0, "alert (no gcs)")
		} else {
			b.component(Mentation, clinical.Consciousness, v, false, 1, acvpuText(v.Coded)+" (no gcs)")
		}
	} else {
		b.missing(Mentation)
	}

	r := b.result()
	if r.Total >= 2 {
		r.Risk, r.Response = RiskPositive, ResponseQSOFAPositive
	} else {
		r.Risk, r.Response = RiskNegative, ResponseQSOFANegative
	}
	return r
}

// gcs returns a valid GCS total: a whole number from 3 to 15.
func gcs(vals map[string]Value) (Value, bool) {
	v, ok := numeric(vals, clinical.GCS)
	if !ok || !v.Numeric.Equal(v.Numeric.Truncate(0)) {
		return Value{}, false
	}
	if n := v.Numeric.IntPart(); n < minGCS || n > maxGCS {
		return Value{}, false
	}
	return v, true
}
