package loadgen

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aortahealth/aorta/internal/hl7sim"
)

// Kind is a kind of message in the mix.
type Kind string

// The kinds of message a Generator makes.
const (
	// Admit is an ADT^A01 (hl7sim.Admission).
	Admit Kind = "adt-a01"
	// Update is an ADT^A08 (hl7sim.Update).
	Update Kind = "adt-a08"
	// Lab is a laboratory ORU^R01 with three orders and ten results
	// (hl7sim.LabReport).
	Lab Kind = "lab"
	// Monitor is an IHE PCD-01 ORU^R01 from a bedside monitor, 10 to 19
	// MDC-coded OBX (hl7sim.MonitorResult).
	Monitor Kind = "monitor"
	// Nursing is an ORU^R01 of nursing vital signs, a complete NEWS2 set
	// (hl7sim.VitalSigns).
	Nursing Kind = "nursing"
)

// Kinds lists every kind, in the order reports show them.
var Kinds = []Kind{Admit, Update, Lab, Monitor, Nursing}

// Mix is the share of each kind, as relative weights.
type Mix map[Kind]int

// DefaultMix is a ward's feed dominated by monitors: for every 100
// messages, 5 admissions, 10 updates, 20 laboratory reports, 55 monitor
// results and 10 nursing charts.
var DefaultMix = Mix{Admit: 5, Update: 10, Lab: 20, Monitor: 55, Nursing: 10}

// ParseMix reads a mix written as kind=weight pairs separated by commas,
// e.g. "monitor=1" or "adt-a01=5,lab=20,monitor=75". Kinds left out get
// no messages.
func ParseMix(s string) (Mix, error) {
	m := Mix{}
	total := 0
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, w, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("mix %q: want kind=weight, e.g. monitor=55", part)
		}
		kind := Kind(strings.TrimSpace(k))
		if !slices.Contains(Kinds, kind) {
			return nil, fmt.Errorf("mix: unknown kind %q (kinds: %s)", k, kindList())
		}
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("mix %q: the weight must be a whole number, 0 or more", part)
		}
		m[kind] += n
		total += n
	}
	if total == 0 {
		return nil, errors.New("mix: no kind has a weight above 0")
	}
	return m, nil
}

// String writes m as ParseMix reads it, kinds in the order of Kinds.
func (m Mix) String() string {
	var parts []string
	for _, k := range Kinds {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
		}
	}
	return strings.Join(parts, ",")
}

func kindList() string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// GeneratorOptions configure a Generator.
type GeneratorOptions struct {
	// Mix is the share of each kind; nil is DefaultMix.
	Mix Mix
	// Patients is how many distinct patients the messages are about
	// (MRNs LD0000001 ...); 0 is DefaultPatients.
	Patients int
	// DeteriorateEvery makes one patient in this many deteriorate: their
	// vital signs follow hl7sim's deterioration script, so the shipped
	// alert rules raise alerts; the others' stay normal. 0 is
	// DefaultDeteriorateEvery; negative: nobody deteriorates.
	DeteriorateEvery int
	// Seed makes the sequence reproducible: the same options give the
	// same messages but for their time.
	Seed uint64
	// RunID begins every control ID (RunID-<n in base 36>); it must be
	// unique per run, so that the listener does not take a message for a
	// re-send of an earlier run's. At most 10 letters and digits; empty
	// derives one from the current time (NewRunID).
	RunID string
}

// Defaults of GeneratorOptions.
const (
	DefaultPatients         = 10000
	DefaultDeteriorateEvery = 20
	// MaxPatients bounds Patients: MRNs have seven digits.
	MaxPatients = 9_999_999
)

// NewRunID returns a run ID derived from t: milliseconds since 2020 in
// base 36, upper case (8 characters until 2109).
func NewRunID(t time.Time) string {
	epoch := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	return strings.ToUpper(strconv.FormatInt(t.Sub(epoch).Milliseconds(), 36))
}

var runIDPattern = regexp.MustCompile(`^[A-Za-z0-9]{1,10}$`)

// Message is one message of the mix.
type Message struct {
	Kind      Kind
	ControlID string // MSH-10
	Patient   int    // from 0
	Raw       []byte
}

// Generator makes the messages of a run. Message is safe for concurrent
// use.
type Generator struct {
	o         GeneratorOptions
	kinds     []Kind // one entry per unit of weight
	templates map[Kind]variants
}

// variants are a kind's templates: normal[i] for everyone, and for the
// vital signs deteriorating[i] for the patients who deteriorate.
type variants struct {
	normal, deteriorating []*template
}

// NewGenerator renders the templates of every kind in the mix.
func NewGenerator(o GeneratorOptions) (*Generator, error) {
	if o.Mix == nil {
		o.Mix = DefaultMix
	}
	if o.Patients == 0 {
		o.Patients = DefaultPatients
	}
	if o.Patients < 1 || o.Patients > MaxPatients {
		return nil, fmt.Errorf("patients must be 1 to %d, not %d", MaxPatients, o.Patients)
	}
	if o.DeteriorateEvery == 0 {
		o.DeteriorateEvery = DefaultDeteriorateEvery
	}
	if o.RunID == "" {
		o.RunID = NewRunID(time.Now())
	}
	if !runIDPattern.MatchString(o.RunID) {
		return nil, fmt.Errorf("run ID %q: want 1 to 10 letters and digits", o.RunID)
	}
	g := &Generator{o: o, templates: map[Kind]variants{}}
	for _, k := range Kinds {
		w := o.Mix[k]
		if w < 0 {
			return nil, fmt.Errorf("mix: negative weight for %s", k)
		}
		for range w {
			g.kinds = append(g.kinds, k)
		}
		if w == 0 {
			continue
		}
		v, err := render(k, o.Seed)
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", k, err)
		}
		g.templates[k] = v
	}
	if len(g.kinds) == 0 {
		return nil, errors.New("mix: no kind has a weight above 0")
	}
	return g, nil
}

// WithRunID returns a generator of the same messages under another run ID,
// sharing the templates: a tool that makes several runs gives each its
// own, since every run numbers its messages from 0.
func (g *Generator) WithRunID(id string) (*Generator, error) {
	if !runIDPattern.MatchString(id) {
		return nil, fmt.Errorf("run ID %q: want 1 to 10 letters and digits", id)
	}
	c := *g
	c.o.RunID = id
	return &c, nil
}

// RunID returns the prefix of the run's control IDs.
func (g *Generator) RunID() string { return g.o.RunID }

// Options returns the generator's options, defaults filled in.
func (g *Generator) Options() GeneratorOptions { return g.o }

// ControlID returns the control ID of message i.
func (g *Generator) ControlID(i uint64) string {
	return g.o.RunID + "-" + strings.ToUpper(strconv.FormatUint(i, 36))
}

// Message returns message i of the run, dated at. It depends only on the
// options, i and at.
func (g *Generator) Message(i uint64, at time.Time) Message {
	rng := rand.New(rand.NewPCG(g.o.Seed, i))
	kind := g.kinds[rng.IntN(len(g.kinds))]
	patient := rng.IntN(g.o.Patients)
	v := g.templates[kind]
	list := v.normal
	if len(v.deteriorating) > 0 && g.deteriorates(patient) {
		list = v.deteriorating
	}
	t := list[rng.IntN(len(list))]
	cid := g.ControlID(i)
	return Message{Kind: kind, ControlID: cid, Patient: patient, Raw: t.fill(slotValues(patient, cid, at))}
}

// deteriorates reports whether patient (from 0) follows the script.
func (g *Generator) deteriorates(patient int) bool {
	return g.o.DeteriorateEvery > 0 && patient%g.o.DeteriorateEvery == 0
}

// --- templates ---

// Slots: the values a template leaves open, in the order of slotTokens.
const (
	slotControlID = iota
	slotMRN
	slotGiven
	slotSex
	slotWard
	slotRoom
	slotBed
	slotVisit
	slotBirthDate
	slotTime
	slotCount
)

// Tokens stand for the slots in the rendered messages. The builders escape
// HL7 delimiters in values, so tokens are letters and digits only; the
// dates go through time.Time and are recognised by their text.
var (
	sentinelBirth = time.Date(1901, 1, 1, 0, 0, 0, 0, time.UTC) // PID-7: 19010101
	sentinelTime  = time.Date(1901, 2, 3, 4, 5, 6, 0, time.UTC) // 19010203040506+0000
	slotTokens    = [slotCount]string{
		slotControlID: "ZQ0ZQ", slotMRN: "ZQ1ZQ", slotGiven: "ZQ2ZQ", slotSex: "ZQ3ZQ",
		slotWard: "ZQ4ZQ", slotRoom: "ZQ5ZQ", slotBed: "ZQ6ZQ", slotVisit: "ZQ7ZQ",
		slotBirthDate: sentinelBirth.Format("20060102"), slotTime: hl7sim.Time(sentinelTime),
	}
	tokenPattern = func() *regexp.Regexp {
		q := make([]string, slotCount)
		for i, t := range slotTokens {
			q[i] = regexp.QuoteMeta(t)
		}
		return regexp.MustCompile(strings.Join(q, "|"))
	}()
)

// tokenPatient is the patient whose fields are tokens.
var tokenPatient = hl7sim.Patient{
	Number: 1, MRN: slotTokens[slotMRN], Family: hl7sim.FamilyName, Given: slotTokens[slotGiven],
	BirthDate: sentinelBirth, Sex: slotTokens[slotSex],
	Ward: slotTokens[slotWard], Room: slotTokens[slotRoom], Bed: slotTokens[slotBed],
	VisitNumber: slotTokens[slotVisit],
}

// template is a rendered message cut at its slots: lits[0], slot[0],
// lits[1], slot[1] ... lits[n].
type template struct {
	lits  [][]byte
	slots []int
	size  int // of the literals
}

func compile(raw []byte) (*template, error) {
	t := &template{}
	at := 0
	for _, loc := range tokenPattern.FindAllIndex(raw, -1) {
		t.lits = append(t.lits, raw[at:loc[0]])
		tok := string(raw[loc[0]:loc[1]])
		t.slots = append(t.slots, slices.Index(slotTokens[:], tok))
		at = loc[1]
	}
	t.lits = append(t.lits, raw[at:])
	for _, l := range t.lits {
		t.size += len(l)
	}
	if !slices.Contains(t.slots, slotControlID) || !slices.Contains(t.slots, slotMRN) {
		return nil, errors.New("rendered message lacks the control ID or MRN slot")
	}
	return t, nil
}

func (t *template) fill(vals *[slotCount]string) []byte {
	n := t.size
	for _, s := range t.slots {
		n += len(vals[s])
	}
	out := make([]byte, 0, n)
	for i, s := range t.slots {
		out = append(out, t.lits[i]...)
		out = append(out, vals[s]...)
	}
	return append(out, t.lits[len(t.lits)-1]...)
}

// bedsPerWard is how many patients share a ward (PV1-3.1), four to a bay.
const bedsPerWard = 24

// slotValues are patient's values (from 0), the control ID and the time.
func slotValues(patient int, cid string, at time.Time) *[slotCount]string {
	n := patient + 1
	bed := patient % bedsPerWard
	// Adults born 1940-1989, a different day for neighbours.
	birth := time.Date(1940, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, (patient*7919)%(50*365))
	return &[slotCount]string{
		slotControlID: cid,
		slotMRN:       fmt.Sprintf("LD%07d", n),
		slotGiven:     "P" + strconv.Itoa(n),
		slotSex:       []string{"F", "M"}[patient%2],
		slotWard:      fmt.Sprintf("LOADWARD%d", patient/bedsPerWard+1),
		slotRoom:      "BAY" + strconv.Itoa(bed/4+1),
		slotBed:       "BED" + strconv.Itoa(bed+1),
		slotVisit:     fmt.Sprintf("LV%07d", n),
		slotBirthDate: birth.Format("20060102"),
		slotTime:      hl7sim.Time(at),
	}
}

// stableReadings is how many readings of a stable patient's drift each
// vital-signs kind has templates for.
const stableReadings = 16

// monitorSetups are the monitor configurations of the templates: 10 to 19
// OBX.
var monitorSetups = []hl7sim.MonitorSetup{
	{}, {Temperature: true}, {CO2: true}, {Temperature: true, CO2: true},
	{NIBP: true}, {NIBP: true, Temperature: true}, {NIBP: true, CO2: true},
}

// labPanels are the laboratory reports of the templates: a full blood
// count, renal function and a lactate with a CRP, ten results; the second
// variant has a raised white cell count and lactate.
var labPanels = [][]hl7sim.LabPanel{
	labReport("7.4", "12", "1.1", ""),
	labReport("14.2", "96", "2.8", "H"),
}

func labReport(wbc, crp, lactate, flag string) []hl7sim.LabPanel {
	return []hl7sim.LabPanel{
		{Code: "58410-2", Name: "CBC panel - Blood by Automated count", Tests: []hl7sim.LabTest{
			{Code: "6690-2", Name: "Leukocytes [#/volume] in Blood", Value: wbc, Unit: "10*9/L", Range: "4.0-11.0", Flag: flag},
			{Code: "718-7", Name: "Hemoglobin [Mass/volume] in Blood", Value: "131", Unit: "g/L", Range: "115-165"},
			{Code: "777-3", Name: "Platelets [#/volume] in Blood", Value: "245", Unit: "10*9/L", Range: "150-400"},
			{Code: "751-8", Name: "Neutrophils [#/volume] in Blood", Value: "4.6", Unit: "10*9/L", Range: "2.0-7.5"},
		}},
		{Code: "24362-6", Name: "Renal function panel - Serum or Plasma", Tests: []hl7sim.LabTest{
			{Code: "2951-2", Name: "Sodium [Moles/volume] in Serum or Plasma", Value: "139", Unit: "mmol/L", Range: "133-146"},
			{Code: "2823-3", Name: "Potassium [Moles/volume] in Serum or Plasma", Value: "4.2", Unit: "mmol/L", Range: "3.5-5.3"},
			{Code: "14937-7", Name: "Urea nitrogen [Moles/volume] in Serum or Plasma", Value: "5.1", Unit: "mmol/L", Range: "2.5-7.8"},
			{Code: "14682-9", Name: "Creatinine [Moles/volume] in Serum or Plasma", Value: "78", Unit: "umol/L", Range: "45-90"},
		}},
		{Code: "1988-5", Name: "C reactive protein and lactate", Tests: []hl7sim.LabTest{
			{Code: "1988-5", Name: "C reactive protein [Mass/volume] in Serum or Plasma", Value: crp, Unit: "mg/L", Range: "0-5", Flag: "H"},
			{Code: "2524-7", Name: "Lactate [Moles/volume] in Serum or Plasma", Value: lactate, Unit: "mmol/L", Range: "0.5-2.2", Flag: flag},
		}},
	}
}

// render builds kind's templates with hl7sim's builders.
func render(kind Kind, seed uint64) (variants, error) {
	var v variants
	add := func(list *[]*template, raw []byte, err error) error {
		if err != nil {
			return err
		}
		t, err := compile(raw)
		if err != nil {
			return err
		}
		*list = append(*list, t)
		return nil
	}
	cid, p, at := slotTokens[slotControlID], tokenPatient, sentinelTime
	// Readings of a stable adult (patient 2 of a ward of two drifts).
	ward, err := hl7sim.NewWard(hl7sim.Options{Patients: 2, Seed: seed, Now: at})
	if err != nil {
		return v, err
	}
	var stable []hl7sim.Vitals
	for range stableReadings {
		stable = append(stable, ward.Next(1))
	}
	var script []hl7sim.Vitals
	for n := range hl7sim.CycleLength {
		script = append(script, hl7sim.Deterioration(n))
	}
	switch kind {
	case Admit:
		raw, err := hl7sim.Admission(p, cid, at)
		err = add(&v.normal, raw, err)
		return v, err
	case Update:
		raw, err := hl7sim.Update(p, cid, at)
		err = add(&v.normal, raw, err)
		return v, err
	case Lab:
		for _, panels := range labPanels {
			raw, err := hl7sim.LabReport(p, panels, cid, at)
			if err := add(&v.normal, raw, err); err != nil {
				return v, err
			}
		}
		return v, nil
	case Monitor, Nursing:
		build := func(vs hl7sim.Vitals, i int) ([]byte, error) {
			if kind == Nursing {
				return hl7sim.VitalSigns(p, vs, cid, at)
			}
			return hl7sim.MonitorResult(p, vs, monitorSetups[i%len(monitorSetups)], cid, at)
		}
		for i, vs := range stable {
			raw, err := build(vs, i)
			if err := add(&v.normal, raw, err); err != nil {
				return v, err
			}
		}
		for i, vs := range script {
			raw, err := build(vs, i)
			if err := add(&v.deteriorating, raw, err); err != nil {
				return v, err
			}
		}
		return v, nil
	}
	return v, fmt.Errorf("unknown kind %q", kind)
}
