package score

import (
	"bytes"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/aortahealth/aorta/pkg/clinical"
)

// Names of the scores, as in Result.Score and as Parameters takes them.
const (
	NameNEWS2 = "news2"
	NameQSOFA = "qsofa"
	NameSIRS  = "sirs"
)

// Names of the components that are criteria fed by more than one
// parameter. Every other component is named after the one parameter it
// reads (clinical.HeartRate, ...). NEWS2's air-or-oxygen component is
// named clinical.OnOxygen although it may be derived from
// clinical.O2Flow or clinical.FiO2 (Component.Parameter says which).
const (
	// Mentation is qSOFA's altered mentation: clinical.GCS, else
	// clinical.Consciousness.
	Mentation = "mentation"
	// Respiration is SIRS's respiratory criterion: clinical.RespiratoryRate
	// or clinical.PaCO2.
	Respiration = "respiration"
	// Leukocytes is SIRS's white-cell criterion: clinical.WBC or
	// clinical.Bands.
	Leukocytes = "leukocytes"
)

// Risk levels (Result.Risk).
const (
	RiskLow       = "low"        // NEWS2 0–4 without a single 3
	RiskLowMedium = "low-medium" // NEWS2 a single 3, total ≤ 4
	RiskMedium    = "medium"     // NEWS2 5–6
	RiskHigh      = "high"       // NEWS2 ≥ 7
	RiskPositive  = "positive"   // qSOFA ≥ 2
	RiskNegative  = "negative"   // qSOFA < 2
	RiskMet       = "met"        // SIRS ≥ 2 criteria
	RiskNotMet    = "not-met"    // SIRS < 2 criteria
)

// minAdultAge is the age from which the adult scores apply.
const minAdultAge = 16

// underageReason is Applicable's reason for a patient under minAdultAge.
const underageReason = "patient under 16 (PID-7): adult scores do not apply"

// maxExponent bounds the decimal exponent of a value the package compares.
// Exact comparison rescales both operands to the smaller exponent, which
// for an exponent of a billion would build a number of a billion digits.
// pkg/clinical bounds numbers to 40 characters without exponents, so a
// value beyond ±64 is no reading and is ignored as invalid.
const maxExponent = 64

// Value is the latest valid value of one parameter, chosen by the caller
// (latest by clinical time, within its freshness window, with an allowed
// observation status).
type Value struct {
	// Parameter is the clinical parameter name (clinical.HeartRate, ...).
	// Empty means "the map key"; a name that differs from the map key is
	// a caller error and the value is ignored.
	Parameter string
	// Numeric is the value of a numeric parameter in its canonical unit
	// (pkg/clinical), kept exact: 38.0 °C stays 38.0.
	Numeric decimal.Decimal
	// Coded is the canonical answer of a coded parameter: an ACVPU letter
	// (clinical.Alert, ...) or clinical.OnOxygenYes / clinical.OnAir.
	Coded string
	// ObservedAt is the clinical time of the observation.
	ObservedAt time.Time
	// EventID is the observation event the value came from (lineage).
	EventID uuid.UUID
}

// Patient is what the scores need to know about the patient.
type Patient struct {
	// Age in whole years at the score time; nil when unknown.
	Age *int
	// SpO2Scale is the NEWS2 SpO2 scale: 2 only where a clinician decided
	// so for this patient (hypercapnic respiratory failure, target
	// 88–92 %); any other value, including 0, means scale 1.
	SpO2Scale int
}

// Component is one scored component of a Result.
type Component struct {
	// Parameter is the parameter the value came from. It differs from the
	// component's name for derived components (air or oxygen from o2_flow
	// or fio2; qSOFA mentation; SIRS respiration and leukocytes).
	Parameter string
	// Value is the value as exact text: a decimal with its scale ("38.0")
	// or a code ("V", "oxygen").
	Value string
	// Points the component contributes to Result.Total: NEWS2 0–3; qSOFA
	// and SIRS 1 when the criterion is met, else 0.
	Points int
	// ObservedAt and EventID identify the value.
	ObservedAt time.Time
	EventID    uuid.UUID
	// Criterion says which band or rule the value fell in, e.g.
	// "> 20 and ≤ 24" or "gcs 14 < 15".
	Criterion string
}

// Result is a computed score.
type Result struct {
	// Score is NameNEWS2, NameQSOFA or NameSIRS.
	Score string
	// NotApplicable, when not empty, is why the score does not apply to
	// this patient (see Applicable). No other field but Score is set then:
	// record the reason, never the empty score.
	NotApplicable string
	// Total is the sum of the points of the components present. When the
	// score is incomplete it is a lower bound: a missing component may
	// only add points.
	Total int
	// Risk is computed from Total, so for an incomplete score it is a
	// lower bound too. A lower bound can only under-state risk: alerting
	// on it never raises a false alarm. Only a complete score can show
	// improvement: resolve an alert only on a complete score.
	Risk string
	// Response is the recommended response to Risk: for NEWS2 the RCP
	// chart 4 frequency of monitoring and clinical response.
	Response string
	// Components holds the components present, by component name.
	Components map[string]Component
	// Complete is true when no component is missing.
	Complete bool
	// Missing names the missing components, sorted. A missing component
	// contributes nothing; it is never counted as zero.
	Missing []string
	// Inputs are the event IDs of the values the result was computed from
	// (see the package documentation, Lineage), sorted and unique; values
	// with a nil EventID are not listed.
	Inputs []uuid.UUID
	// SingleParameter3 (NEWS2) is true when some component scored 3: the
	// "red score".
	SingleParameter3 bool
	// Scale (NEWS2) is the SpO2 scale used, 1 or 2.
	Scale int
	// OnOxygen (NEWS2) is the derived air (false) or oxygen (true); nil
	// when nothing said which.
	OnOxygen *bool
}

// Options configure qSOFA.
type Options struct {
	// GCSThreshold: altered mentation is a GCS below it. 0 (or less) means
	// 15, so that any GCS below 15 counts (Sepsis-3). 14 gives GCS ≤ 13,
	// the definition of the qSOFA derivation (Seymour et al. 2016).
	GCSThreshold int
}

// Applicable reports whether adult scores (NEWS2, qSOFA, SIRS) apply to
// the patient. They do not for a patient under 16 (NEWS2: RCP 2017, NICE
// MIB205); reason then says so, for the caller to record. An unknown age
// is applicable. NEWS2, QSOFA and SIRS call it themselves.
func Applicable(p Patient) (ok bool, reason string) {
	if p.Age != nil && *p.Age < minAdultAge {
		return false, underageReason
	}
	return true, ""
}

// Parameters returns the parameters a score reads, sorted, so that the
// caller can fetch their latest values; nil for an unknown score.
func Parameters(score string) []string {
	var ps []string
	switch score {
	case NameNEWS2:
		ps = []string{
			clinical.RespiratoryRate, clinical.SpO2, clinical.OnOxygen, clinical.O2Flow, clinical.FiO2,
			clinical.SystolicBP, clinical.HeartRate, clinical.Consciousness, clinical.Temperature,
		}
	case NameQSOFA:
		ps = []string{clinical.RespiratoryRate, clinical.SystolicBP, clinical.GCS, clinical.Consciousness}
	case NameSIRS:
		ps = []string{
			clinical.Temperature, clinical.HeartRate, clinical.RespiratoryRate, clinical.PaCO2,
			clinical.WBC, clinical.Bands,
		}
	default:
		return nil
	}
	sort.Strings(ps)
	return ps
}

// numeric returns the value of a numeric parameter when it is present and
// valid: named as its key, with a sane exponent, not negative (no
// parameter scored here can be).
func numeric(vals map[string]Value, name string) (Value, bool) {
	v, ok := vals[name]
	if !ok || (v.Parameter != "" && v.Parameter != name) {
		return Value{}, false
	}
	if e := v.Numeric.Exponent(); e > maxExponent || e < -maxExponent {
		return Value{}, false
	}
	if v.Numeric.IsNegative() {
		return Value{}, false
	}
	return v, true
}

// coded returns the value of a coded parameter when it is present, named
// as its key and one of the accepted canonical answers.
func coded(vals map[string]Value, name string, accepted ...string) (Value, bool) {
	v, ok := vals[name]
	if !ok || (v.Parameter != "" && v.Parameter != name) {
		return Value{}, false
	}
	for _, a := range accepted {
		if v.Coded == a {
			return v, true
		}
	}
	return Value{}, false
}

// text is a value's exact text.
func text(v Value, isNumeric bool) string {
	if isNumeric {
		return clinical.DecimalText(v.Numeric)
	}
	return v.Coded
}

// dec parses a constant threshold.
func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// builder accumulates a Result.
type builder struct {
	r      Result
	inputs map[uuid.UUID]bool
}

func newBuilder(score string) *builder {
	return &builder{r: Result{Score: score, Components: map[string]Component{}}, inputs: map[uuid.UUID]bool{}}
}

// component records a component computed from v, and v (and any other
// values it was decided from) as inputs.
func (b *builder) component(name, param string, v Value, isNumeric bool, points int, criterion string, also ...Value) {
	b.r.Components[name] = Component{
		Parameter:  param,
		Value:      text(v, isNumeric),
		Points:     points,
		ObservedAt: v.ObservedAt,
		EventID:    v.EventID,
		Criterion:  criterion,
	}
	b.r.Total += points
	if points == 3 {
		b.r.SingleParameter3 = true
	}
	b.input(v)
	for _, a := range also {
		b.input(a)
	}
}

func (b *builder) input(v Value) {
	if v.EventID != uuid.Nil {
		b.inputs[v.EventID] = true
	}
}

func (b *builder) missing(name string) { b.r.Missing = append(b.r.Missing, name) }

// result finishes the Result: sorted Missing and Inputs, Complete.
func (b *builder) result() Result {
	sort.Strings(b.r.Missing)
	b.r.Complete = len(b.r.Missing) == 0
	for id := range b.inputs {
		b.r.Inputs = append(b.r.Inputs, id)
	}
	sort.Slice(b.r.Inputs, func(i, j int) bool { return bytes.Compare(b.r.Inputs[i][:], b.r.Inputs[j][:]) < 0 })
	return b.r
}
