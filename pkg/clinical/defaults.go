package clinical

import "github.com/shopspring/decimal"

// Names of the parameters in DefaultParameters. Scoring refers to
// parameters by these names; routes.yaml may declare more.
const (
	RespiratoryRate = "respiratory_rate" // breaths per minute
	SpO2            = "spo2"             // %
	HeartRate       = "heart_rate"       // beats per minute
	SystolicBP      = "sbp"              // mm[Hg]
	DiastolicBP     = "dbp"              // mm[Hg]
	Temperature     = "temperature"      // Cel
	Consciousness   = "consciousness"    // ACVPU letter
	OnOxygen        = "on_oxygen"        // "oxygen" or "air"
	O2Flow          = "o2_flow"          // L/min
	FiO2            = "fio2"             // %
	GCS             = "gcs"              // Glasgow coma score total
	WBC             = "wbc"              // 10*9/L
	Bands           = "bands"            // %
	Lactate         = "lactate"          // mmol/L
	Creatinine      = "creatinine"       // umol/L
	PaCO2           = "paco2"            // mm[Hg]
)

// Canonical answers of the coded parameters.
const (
	// ACVPU (NEWS2 consciousness).
	Alert        = "A"
	NewConfusion = "C"
	Voice        = "V"
	Pain         = "P"
	Unresponsive = "U"
	// Air or oxygen.
	OnOxygenYes = "oxygen"
	OnAir       = "air"
)

// Coding systems as written in OBX-3.3 (HL7 table 0396).
const (
	LOINC  = "LN"
	MDC    = "MDC"
	SNOMED = "SCT"
)

// DefaultParameters returns the reference parameter table of the clinical
// reference (/work/shared/clinical/REFERENCE.md, "Codes" and "Observation
// status and time"): every LOINC and MDC code listed there, the units
// listed (UCUM and MDC unit codes) and the ACVPU answers. The shipped
// routes.yaml carries the same tables and is tested against this
// function. Each call returns new values, so callers may modify them.
//
// Units beyond the reference's list are only UCUM-equivalent spellings of
// a listed unit whose conversion is exact: annotated counts ("{beat}/min"
// is "/min" in UCUM, where annotations carry no meaning), "10*3/uL" for
// 10*9/L, and the micro sign variants of umol/L. A local spelling such as
// "mmHg" or "bpm" is deliberately absent: an analyst adds it in
// routes.yaml, so that accepting a unit is always a decision someone made.
func DefaultParameters() []*Parameter {
	same := Conversion{}
	f := func(s string) Conversion { return Conversion{Factor: decimal.RequireFromString(s)} }
	perMinute := func(extra ...string) map[string]Conversion {
		m := map[string]Conversion{"/min": same}
		for _, u := range extra {
			m[u] = same
		}
		return m
	}
	percent := map[string]Conversion{"%": same, "262688": same}
	mmHg := func() map[string]Conversion { return map[string]Conversion{"mm[Hg]": same, "266016": same} }
	codes := func(system string, cs ...string) []Code {
		out := make([]Code, len(cs))
		for i, c := range cs {
			out[i] = Code{System: system, Code: c}
		}
		return out
	}
	join := func(a, b []Code) []Code { return append(a, b...) }
	clone := func(m map[string]Conversion) map[string]Conversion {
		c := make(map[string]Conversion, len(m))
		for k, v := range m {
			c[k] = v
		}
		return c
	}

	return []*Parameter{
		{
			Name: RespiratoryRate, Description: "Respiratory rate (breaths per minute)",
			Kind: Numeric, Unit: "/min",
			Codes: join(codes(LOINC, "9279-1"), codes(MDC, "151562", "151570", "151578", "151586", "151594")),
			// 264928 is MDC_DIM_RESP_PER_MIN.
			Units: perMinute("264928", "{breath}/min", "{breaths}/min"),
		},
		{
			Name: SpO2, Description: "Oxygen saturation by pulse oximetry (%)",
			Kind: Numeric, Unit: "%",
			Codes: join(codes(LOINC, "2708-6", "59408-5"), codes(MDC, "150456")),
			Units: clone(percent),
		},
		{
			Name: HeartRate, Description: "Heart rate or pulse (beats per minute)",
			Kind: Numeric, Unit: "/min",
			Codes: join(codes(LOINC, "8867-4"), codes(MDC, "147842", "149530", "149546", "149522", "149514")),
			// 264864 is MDC_DIM_BEAT_PER_MIN.
			Units: perMinute("264864", "{beat}/min", "{beats}/min"),
		},
		{
			Name: SystolicBP, Description: "Systolic blood pressure (mmHg)",
			Kind: Numeric, Unit: "mm[Hg]",
			Codes: join(codes(LOINC, "8480-6"), codes(MDC, "150021", "150301", "150033", "150037", "150017")),
			Units: mmHg(),
		},
		{
			Name: DiastolicBP, Description: "Diastolic blood pressure (mmHg)",
			Kind: Numeric, Unit: "mm[Hg]",
			Codes: join(codes(LOINC, "8462-4"), codes(MDC, "150022", "150302", "150034")),
			Units: mmHg(),
		},
		{
			Name: Temperature, Description: "Body temperature (°C; °F converted and rounded half-up to 0.1)",
			Kind: Numeric, Unit: "Cel",
			Codes: join(
				codes(LOINC, "8310-5", "8331-1", "8328-7", "8332-9", "8333-7", "8329-5"),
				codes(MDC, "150344", "150364", "150368", "150392", "188420", "188424", "192780")),
			Units: map[string]Conversion{
				"Cel":    same,
				"268192": same, // MDC_DIM_DEGC
				"[degF]": {Func: Fahrenheit},
				"266560": {Func: Fahrenheit}, // MDC_DIM_FAHR
			},
		},
		{
			Name: Consciousness, Description: "Level of consciousness, ACVPU (alert, new confusion, voice, pain, unresponsive)",
			Kind:  Coded,
			Codes: codes(LOINC, "67775-7"),
			Answers: map[string]string{
				"248234008": Alert,        // SNOMED CT: mentally alert
				"130987000": NewConfusion, // SNOMED CT: acute confusion
				"255373000": Voice,        // SNOMED CT: responds to voice
				"450847001": Pain,         // SNOMED CT: responds to pain
				"422768004": Unresponsive, // SNOMED CT: unresponsive
				"A":         Alert,
				"C":         NewConfusion,
				"V":         Voice,
				"P":         Pain,
				"U":         Unresponsive,
			},
		},
		{
			Name: OnOxygen, Description: "Air or supplemental oxygen, as charted (SNOMED CT findings)",
			Kind: Coded,
			// The reference names the two SNOMED CT findings, not a
			// question code: UK NEWS2 charts record the finding itself as
			// the observation code, with the same finding as its coded
			// answer. A local question code (with these findings as
			// answers) is added in routes.yaml.
			Codes: codes(SNOMED, "371825009", "722742002"),
			Answers: map[string]string{
				"371825009": OnOxygenYes, // patient on oxygen
				"722742002": OnAir,       // breathing room air
			},
		},
		{
			Name: O2Flow, Description: "Inhaled oxygen flow rate (L/min); > 0 means on oxygen",
			Kind: Numeric, Unit: "L/min",
			Codes: codes(LOINC, "3151-8"),
			Units: map[string]Conversion{"L/min": same, "265216": same}, // 265216 is MDC_DIM_L_PER_MIN
		},
		{
			Name: FiO2, Description: "Inhaled oxygen concentration (%); 21 % is room air",
			Kind: Numeric, Unit: "%",
			Codes: join(codes(LOINC, "3150-0"), codes(MDC, "151920", "152196")),
			Units: clone(percent),
		},
		{
			Name: GCS, Description: "Glasgow coma score total (3-15)",
			Kind: Numeric, Unit: "{score}",
			Codes: codes(LOINC, "9269-2"),
			// A score has no unit; senders leave OBX-6 empty or write the
			// UCUM annotation.
			Units: map[string]Conversion{"": same, "{score}": same},
		},
		{
			Name: WBC, Description: "White blood cell count (10^9/L)",
			Kind: Numeric, Unit: "10*9/L",
			Codes: codes(LOINC, "6690-2", "26464-8"),
			Units: map[string]Conversion{
				"10*9/L":     same,
				"10*3/uL":    same, // 10^3/µL = 10^9/L
				"10*3/mm3":   same,
				"/nL":        same,
				"/uL":        f("0.001"),
				"{cells}/uL": f("0.001"),
			},
		},
		{
			Name: Bands, Description: "Band neutrophils (% of leukocytes)",
			Kind: Numeric, Unit: "%",
			Codes: codes(LOINC, "764-1", "26508-2"),
			Units: clone(percent),
		},
		{
			Name: Lactate, Description: "Lactate (mmol/L)",
			Kind: Numeric, Unit: "mmol/L",
			Codes: codes(LOINC, "2524-7", "32693-4", "2518-9", "2519-7"),
			Units: map[string]Conversion{"mmol/L": same},
		},
		{
			Name: Creatinine, Description: "Creatinine (µmol/L; 1 mg/dL = 88.4 µmol/L)",
			Kind: Numeric, Unit: "umol/L",
			Codes: codes(LOINC, "2160-0", "14682-9"),
			Units: map[string]Conversion{
				"umol/L":      same,
				"\u00b5mol/L": same, // micro sign
				"\u03bcmol/L": same, // Greek small letter mu
				"mg/dL":       f("88.4"),
			},
		},
		{
			Name: PaCO2, Description: "Arterial carbon dioxide partial pressure (mmHg)",
			Kind: Numeric, Unit: "mm[Hg]",
			Codes: codes(LOINC, "2019-8"),
			Units: mmHg(),
		},
	}
}
