package hl7sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Identifiers of the simulated feed. Everything it sends is recognisably
// simulated: the sending application and facility, the assigning authority
// of every MRN, the family name of every patient.
const (
	// Application is MSH-3, the sending application.
	Application = "AORTA_SIM"
	// Facility is MSH-4, and the facility of every location (PL.4).
	Facility = "AORTA_SIM"
	// Authority is the assigning authority of every MRN (PID-3.4), so a
	// patient's patient_key is AORTA_SIM/SIM0001.
	Authority = "AORTA_SIM"
	// FamilyName is every patient's family name (PID-5.1).
	FamilyName = "AORTASIM"
)

// MaxPatients bounds Options.Patients: MRNs have four digits.
const MaxPatients = 9999

// Patient is one simulated patient.
type Patient struct {
	// Number is the patient's position, from 1.
	Number int
	// MRN is PID-3.1: SIM0001, SIM0002 ...
	MRN string
	// Family and Given are PID-5.1 and PID-5.2.
	Family, Given string
	// BirthDate is PID-7, a date (midnight UTC).
	BirthDate time.Time
	// Sex is PID-8: F or M.
	Sex string
	// Ward, Room and Bed are PV1-3.1 to PV1-3.3.
	Ward, Room, Bed string
	// VisitNumber is PV1-19, the encounter_id of the patient's events.
	VisitNumber string
	// Deteriorates is true for the patient who follows Deterioration.
	Deteriorates bool
	// Child is true for a patient under 16, whom adult scores skip.
	Child bool
	// AdmissionWBC is the white cell count of the blood taken on
	// admission, in tenths of 10^9/L (74 is 7.4): SIRS reads it.
	AdmissionWBC int
}

// PatientKey is the patient_key the router gives the patient's events
// (assigning authority/MRN).
func (p Patient) PatientKey() string { return Authority + "/" + p.MRN }

// Location is PV1-3 as text, ward/room/bed.
func (p Patient) Location() string { return p.Ward + "/" + p.Room + "/" + p.Bed }

// Vitals is one set of nursing observations: everything NEWS2 needs.
type Vitals struct {
	RespiratoryRate int    // breaths per minute
	SpO2            int    // %
	O2Flow          int    // inhaled oxygen, L/min; 0 is room air
	Systolic        int    // mm[Hg]
	Diastolic       int    // mm[Hg]
	HeartRate       int    // beats per minute
	ACVPU           string // "A" alert, "C" new confusion, "V", "P" or "U"
	Temperature     int    // tenths of a degree Celsius: 371 is 37.1 °C
}

// OnOxygen reports whether the patient breathes supplemental oxygen.
func (v Vitals) OnOxygen() bool { return v.O2Flow > 0 }

// Readings of patient 1's script (Deterioration).
const (
	// AlertReading is the first reading whose NEWS2 is 7 or more; every
	// reading before it scores 4 or less with no single red score, so the
	// alert raised is an emergency straight away.
	AlertReading = 6
	// CycleLength is the length of the script: it starts again after
	// this many readings.
	CycleLength = len(deterioration)
)

// deterioration is patient 1's script, one row per reading. The NEWS2 of
// each row (RR, SpO2 scale 1, air/oxygen, SBP, HR, ACVPU, temperature) is
// in its comment; TestDeterioration recomputes them with pkg/score from the
// messages, so the script cannot silently stop deteriorating.
var deterioration = [...]Vitals{
	// Well.
	{16, 97, 0, 128, 78, 78, "A", 370}, // 0
	{17, 97, 0, 124, 76, 82, "A", 372}, // 0
	// Rising respiratory and heart rates, falling SpO2 and blood pressure.
	{19, 96, 0, 118, 74, 88, "A", 375},  // 0
	{20, 96, 0, 114, 72, 94, "A", 378},  // 1: HR 1
	{21, 95, 0, 112, 70, 98, "A", 379},  // 4: RR 2, SpO2 1, HR 1
	{22, 95, 0, 111, 68, 102, "A", 380}, // 4: RR 2, SpO2 1, HR 1
	// AlertReading: oxygen started (2 L/min), fever: emergency.
	{23, 93, 2, 106, 64, 108, "A", 383}, // 9: RR 2, SpO2 2, O2 2, SBP 1, HR 1, T 1
	// New confusion (qSOFA 3: the sepsis screen too).
	{24, 92, 4, 98, 58, 116, "C", 386}, // 14: RR 2, SpO2 2, O2 2, SBP 2, HR 2, C 3, T 1
	{26, 91, 6, 92, 54, 124, "C", 389}, // 16: RR 3, SpO2 3, O2 2, SBP 2, HR 2, C 3, T 1
	// The rapid-response team is at the bedside.
	{26, 92, 6, 94, 56, 122, "C", 388}, // 15
	{25, 92, 6, 96, 58, 120, "C", 387}, // 15
	{25, 93, 6, 98, 60, 120, "C", 387}, // 15
	// Recovery: the sepsis screen resolves (reading 13), then NEWS2
	// (reading 15, a complete score of 3).
	{24, 94, 4, 100, 60, 118, "C", 386}, // 13: RR 2, SpO2 1, O2 2, SBP 2, HR 2, C 3, T 1
	{22, 95, 4, 106, 64, 110, "A", 382}, // 8: RR 2, SpO2 1, O2 2, SBP 1, HR 1, T 1
	{21, 96, 2, 110, 66, 102, "A", 379}, // 6: RR 2, O2 2, SBP 1, HR 1
	{20, 96, 2, 114, 70, 96, "A", 376},  // 3: O2 2, HR 1
	{19, 96, 0, 118, 72, 90, "A", 374},  // 0
	{18, 97, 0, 122, 74, 86, "A", 372},  // 0
	{17, 97, 0, 124, 76, 82, "A", 371},  // 0
	{16, 98, 0, 126, 77, 80, "A", 370},  // 0
	{16, 97, 0, 128, 78, 78, "A", 369},  // 0
	{15, 97, 0, 130, 80, 76, "A", 368},  // 0
	{16, 98, 0, 128, 78, 78, "A", 369},  // 0
	{16, 97, 0, 126, 77, 80, "A", 370},  // 0
}

// Deterioration returns patient 1's reading n (from 0): the script,
// repeated every CycleLength readings.
func Deterioration(n int) Vitals {
	return deterioration[n%CycleLength]
}

// Options configure a Ward.
type Options struct {
	// Patients is how many patients there are, 1 to MaxPatients.
	Patients int
	// Seed makes the stable patients' drift reproducible.
	Seed uint64
	// Child makes the last patient a child of 8, when there are three
	// patients or more.
	Child bool
	// Now dates the child's birth; the adults' birth dates are fixed.
	Now time.Time
}

// Ward is the simulated patients and the state of their vital signs. It
// is not safe for concurrent use.
type Ward struct {
	patients []Patient
	walks    []*walk // nil for the deteriorating patient
	readings []int   // readings taken so far, per patient
}

// givenNames are the patients' given names, in order; past the list a
// patient is called P<number>.
var givenNames = []string{
	"ALPHA", "BRAVO", "CHARLIE", "DELTA", "ECHO", "FOXTROT", "GOLF", "HOTEL", "INDIA",
	"JULIETT", "KILO", "LIMA", "MIKE", "NOVEMBER", "OSCAR", "PAPA", "QUEBEC", "ROMEO",
	"SIERRA", "TANGO", "UNIFORM", "VICTOR", "WHISKEY", "XRAY", "YANKEE", "ZULU",
}

// adultBirthDates are the adults' birth dates, in turn.
var adultBirthDates = []time.Time{
	date(1951, 3, 14), date(1963, 7, 2), date(1978, 11, 23), date(1989, 5, 9),
	date(1944, 1, 30), date(1970, 9, 17), date(1995, 12, 4), date(1958, 6, 21),
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// NewWard returns a ward of o.Patients patients: patient 1 deteriorates,
// the last is a child when o.Child and there are three or more, the
// others are stable adults.
func NewWard(o Options) (*Ward, error) {
	if o.Patients < 1 || o.Patients > MaxPatients {
		return nil, fmt.Errorf("patients must be 1 to %d, not %d", MaxPatients, o.Patients)
	}
	if o.Now.IsZero() {
		return nil, errors.New("options need the current time (Now)")
	}
	w := &Ward{readings: make([]int, o.Patients)}
	for i := range o.Patients {
		n := i + 1
		p := Patient{
			Number: n, MRN: fmt.Sprintf("SIM%04d", n), Family: FamilyName,
			Sex:  []string{"F", "M"}[i%2],
			Ward: "SIMWARD", Room: fmt.Sprintf("BAY%d", i/4+1), Bed: fmt.Sprintf("BED%d", n),
			VisitNumber: fmt.Sprintf("SIMV%04d", n),
		}
		p.Given = fmt.Sprintf("P%d", n)
		if i < len(givenNames) {
			p.Given = givenNames[i]
		}
		p.BirthDate = adultBirthDates[i%len(adultBirthDates)]
		rng := rand.New(rand.NewPCG(o.Seed, uint64(n)))
		p.AdmissionWBC = 50 + rng.IntN(46) // 5.0 to 9.5
		var wk *walk
		switch {
		case n == 1:
			p.Deteriorates = true
			p.AdmissionWBC = 86
		case o.Child && o.Patients >= 3 && n == o.Patients:
			p.Child = true
			p.Ward, p.Room, p.Bed = "SIMPAEDS", "BAY1", "BED1"
			// Eight years and a few weeks old at Now.
			b := o.Now.UTC().AddDate(-8, 0, -40)
			p.BirthDate = date(b.Year(), b.Month(), b.Day())
			wk = newWalk(rng, childRanges)
		default:
			wk = newWalk(rng, adultRanges)
		}
		w.patients = append(w.patients, p)
		w.walks = append(w.walks, wk)
	}
	return w, nil
}

// Patients returns the ward's patients, patient 1 first.
func (w *Ward) Patients() []Patient { return append([]Patient(nil), w.patients...) }

// Next returns the next reading of the i-th patient (from 0).
func (w *Ward) Next(i int) Vitals {
	n := w.readings[i]
	w.readings[i]++
	if w.walks[i] == nil {
		return Deterioration(n)
	}
	return w.walks[i].next()
}

// bounds is the range a stable patient's parameter drifts in, and its
// largest step from one reading to the next.
type bounds struct{ lo, hi, step int }

// ranges are the bounds of each drifting parameter.
type ranges struct {
	rr, spo2, sbp, dbp, hr, temp bounds
}

// adultRanges lie inside the NEWS2 bands that score 0 (RR 12–20, SpO2 ≥ 96,
// SBP 111–219, HR 51–90, temperature 36.1–38.0), with a margin.
var adultRanges = ranges{
	rr: bounds{13, 19, 1}, spo2: bounds{96, 99, 1}, sbp: bounds{114, 150, 4},
	dbp: bounds{62, 88, 3}, hr: bounds{58, 88, 4}, temp: bounds{362, 376, 1},
}

// childRanges are normal for a child of 8 (the adult scores do not apply).
var childRanges = ranges{
	rr: bounds{18, 24, 1}, spo2: bounds{97, 99, 1}, sbp: bounds{95, 110, 3},
	dbp: bounds{55, 70, 2}, hr: bounds{80, 110, 4}, temp: bounds{365, 375, 1},
}

// walk is a stable patient's vital signs: a bounded random walk.
type walk struct {
	rng                          *rand.Rand
	r                            ranges
	rr, spo2, sbp, dbp, hr, temp int
}

func newWalk(rng *rand.Rand, r ranges) *walk {
	start := func(b bounds) int { return b.lo + (b.hi-b.lo)/4 + rng.IntN((b.hi-b.lo)/2+1) }
	return &walk{rng: rng, r: r,
		rr: start(r.rr), spo2: start(r.spo2), sbp: start(r.sbp),
		dbp: start(r.dbp), hr: start(r.hr), temp: start(r.temp)}
}

// step moves v by at most b.step either way, staying within b.
func (w *walk) step(v int, b bounds) int {
	v += w.rng.IntN(2*b.step+1) - b.step
	return min(max(v, b.lo), b.hi)
}

func (w *walk) next() Vitals {
	w.rr, w.spo2 = w.step(w.rr, w.r.rr), w.step(w.spo2, w.r.spo2)
	w.sbp, w.dbp = w.step(w.sbp, w.r.sbp), w.step(w.dbp, w.r.dbp)
	w.hr, w.temp = w.step(w.hr, w.r.hr), w.step(w.temp, w.r.temp)
	return Vitals{
		RespiratoryRate: w.rr, SpO2: w.spo2, Systolic: w.sbp, Diastolic: w.dbp,
		HeartRate: w.hr, ACVPU: "A", Temperature: w.temp,
	}
}
