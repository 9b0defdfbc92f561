package consolebench

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/aortahealth/aorta/internal/loadgen"
	"github.com/aortahealth/aorta/pkg/patient"
)

// A seed is shaped like a year-old installation of a mid-sized hospital:
// a dozen and a half feeds, mostly monitors, a few percent rejected at the
// door, a few thousand dead letters, a few hundred alerts. The constants
// below are those shares; Plan holds what a run may change.

// Shares of the stored messages by outcome.
const (
	rejectedShare  = 0.03   // answered AR/AE at the door (status rejected)
	unroutedShare  = 0.03   // accepted, but no route matched
	duplicateShare = 0.005  // re-sent byte for byte at least once
	reusedShare    = 0.0005 // control ID seen before with other bytes
	// openDeadLetterShare of the dead letters are still open (the rest
	// reprocessed or discarded); the newest are open more often.
	openDeadLetterShare = 0.2
)

// Shares of the received times: a dense last day, most of the rest in
// the last week, a tail over the remaining days.
const (
	lastDayShare  = 0.25
	lastWeekShare = 0.60 // days 1 to 7 back
)

// authority is PID-3.4 of loadgen's messages: the patient keys are
// "AORTA_SIM/LD0000001" and so on, the bare identifiers "LD0000001".
const authority = "AORTA_SIM"

// sender is one feed: MSH-3^MSH-4 and the peer address it connects from.
type sender struct {
	App, Facility, Remote string
}

// senders by kind of message; a patient's site picks one of each list, so
// each feed sends one kind, as real feeds do. 16 senders in all, and
// the idle feed's successor.
var senders = map[loadgen.Kind][]sender{
	loadgen.Admit: {
		{"EPIC_ADT", "GENHOSP", "10.20.1.11:41001"},
		{"EPIC_ADT", "NORTHSITE", "10.20.1.12:41002"},
		{"PAS", "COMMUNITY", "10.30.4.20:50112"},
	},
	loadgen.Lab: {
		{"WINPATH", "GENHOSP", "10.20.2.31:39044"},
		{"WINPATH", "NORTHSITE", "10.20.2.32:39045"},
		{"LIMS", "COMMUNITY", "10.30.4.41:51120"},
	},
	loadgen.Monitor: {
		{"PHILIPS_IX", "GENHOSP_ICU", "10.40.0.5:2575"},
		{"PHILIPS_IX", "GENHOSP_WARDS", "10.40.0.6:2575"},
		{"GE_CARESCAPE", "NORTHSITE", "10.40.1.9:3001"},
		{"MINDRAY_EGW", "COMMUNITY", "10.40.2.14:6000"},
		{"DRAEGER_ICS", "GENHOSP_ED", "10.40.3.2:2575"},
		{"NIHON_KOHDEN", "GENHOSP_THEATRES", "10.40.4.8:2575"},
	},
	loadgen.Nursing: {
		{"EOBS", "GENHOSP", "10.20.3.50:42210"},
		{"EOBS", "NORTHSITE", "10.20.3.51:42211"},
		{"NERVECENTRE", "COMMUNITY", "10.30.5.7:44300"},
		{"EOBS", "GENHOSP_ED", "10.20.3.52:42212"},
	},
}

func init() { senders[loadgen.Update] = senders[loadgen.Admit] }

// The idle feed: the community laboratory moved to a new interface
// (LIMS_V2) idleFor before the newest message, so LIMS^COMMUNITY has
// sent nothing since. The dashboard lists it, and an analyst opening its
// messages searches back past days of everyone else's: the search the
// indexes must serve.
var (
	idleSender   = sender{"LIMS", "COMMUNITY", "10.30.4.41:51120"}
	idleReplaced = sender{"LIMS_V2", "COMMUNITY", "10.30.4.42:51121"}
)

const idleFor = 3 * 24 * time.Hour

// senderFor is the feed that sends kind about patient.
func senderFor(kind loadgen.Kind, patient int) sender {
	list := senders[kind]
	return list[patient%len(list)]
}

// Plan is what a seed writes. The zero value of a field is its default.
type Plan struct {
	Messages    int       // stored messages
	Days        int       // received over this many days before End
	End         time.Time // the newest message's receipt
	Patients    int       // distinct patients (loadgen MRNs LD0000001 ...)
	DeadLetters int       // accepted messages that were dead-lettered
	Alerts      int       // alerts raised, about
	Seed        uint64
}

// Defaults of Plan.
const (
	DefaultMessages    = 1_000_000
	DefaultDays        = 30
	DefaultPatients    = 20_000
	DefaultDeadLetters = 3_000
	DefaultAlerts      = 400
)

func (p *Plan) defaults() {
	if p.Messages == 0 {
		p.Messages = DefaultMessages
	}
	if p.Days == 0 {
		p.Days = DefaultDays
	}
	if p.End.IsZero() {
		p.End = time.Now()
	}
	if p.Patients == 0 {
		p.Patients = DefaultPatients
	}
	if p.DeadLetters == 0 {
		p.DeadLetters = DefaultDeadLetters
	}
	if p.Alerts == 0 {
		p.Alerts = DefaultAlerts
	}
}

// receivedAt is when message i of n arrived: times increase with i, so
// that ids (UUIDv7) and the received_at indexes grow in order as a real
// feed's do. The last day holds lastDayShare of them, days 1 to 7 back
// lastWeekShare, and the rest spread over the remaining days.
func (p *Plan) receivedAt(i int) time.Time {
	day := 24 * time.Hour
	type seg struct {
		share    float64
		from, to time.Duration // back from End
	}
	var segs []seg
	switch {
	case p.Days <= 1:
		segs = []seg{{1, day, 0}}
	case p.Days <= 7:
		segs = []seg{{1 - lastDayShare, time.Duration(p.Days) * day, day}, {lastDayShare, day, 0}}
	default:
		segs = []seg{{1 - lastDayShare - lastWeekShare, time.Duration(p.Days) * day, 7 * day},
			{lastWeekShare, 7 * day, day}, {lastDayShare, day, 0}}
	}
	f := float64(i) / float64(p.Messages)
	for k, s := range segs {
		if f < s.share || k == len(segs)-1 {
			frac := min(f/s.share, 1)
			back := s.from - time.Duration(frac*float64(s.from-s.to))
			return p.End.Add(-back)
		}
		f -= s.share
	}
	return p.End
}

// uuidV7 is a UUIDv7 for t with random bits from rng: time-ordered ids,
// like the listener's.
func uuidV7(t time.Time, rng *rand.Rand) uuid.UUID {
	var u uuid.UUID
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(t.UnixMilli()))
	copy(u[:6], ms[2:])
	binary.BigEndian.PutUint64(u[8:], rng.Uint64())
	r := rng.Uint32()
	u[6], u[7] = 0x70|byte(r&0x0f), byte(r>>8)
	u[8] = 0x80 | (u[8] & 0x3f)
	return u
}

// uuidV4 is a random UUID from rng (event and alert ids).
func uuidV4(rng *rand.Rand) uuid.UUID {
	var u uuid.UUID
	binary.BigEndian.PutUint64(u[:8], rng.Uint64())
	binary.BigEndian.PutUint64(u[8:], rng.Uint64())
	u[6] = 0x40 | (u[6] & 0x0f)
	u[8] = 0x80 | (u[8] & 0x3f)
	return u
}

// message is one stored message and everything the router wrote for it.
type message struct {
	ID         uuid.UUID
	ReceivedAt time.Time
	Sender     sender
	Kind       loadgen.Kind
	Type       string // MSH-9.1
	Trigger    string // MSH-9.2
	Structure  string // MSH-9.3
	ControlID  string
	Version    string
	Raw        []byte
	SHA256     []byte
	PatientID  string // LD0000001
	PatientKey string // AORTA_SIM/LD0000001
	Patient    int
	Encounter  string
	Location   string

	Status          string // accepted or rejected
	AckCode         string
	ACK             []byte
	ErrorCode       int
	ErrorLocation   string
	Error           string
	Reused          bool
	DuplicateCount  int
	LastDuplicateAt time.Time

	// Accepted messages only.
	Routing    string // routed, unrouted or dead_lettered
	Routes     []string
	RoutedAt   time.Time
	Events     []event
	DeadLetter *deadLetter
	Alert      *alertSeed // raised by this message's score
}

// event is a row of events.
type event struct {
	ID         uuid.UUID
	Type       string
	OccurredAt time.Time
	Route      string
	Payload    []byte
	// Observation state for the observations table; Score for scores.
	Obs   *observation
	Score *scoreSeed
}

type observation struct {
	Key, Parameter, System, Code, Unit, Value string
}

type scoreSeed struct {
	Total int
	Risk  string
}

type deadLetter struct {
	Route      string
	Error      string
	Attempts   int
	ResolvedAt time.Time // zero while open
	Resolution string
	ResolvedBy string
}

type alertSeed struct {
	ID       uuid.UUID
	EventID  uuid.UUID // the alert.raised event
	ScoreID  uuid.UUID // the score.calculated event
	Severity string
	Level    int
	RaisedAt time.Time
}

// rejections are the reasons a message is answered AR/AE at the door:
// HL7 table 0357 code, location, and the words stored in messages.error.
var rejections = []struct {
	Code     int
	Location string
	Text     string
	Ack      string
}{
	{101, "PID-3", "required field missing: patient identifier list", "AR"},
	{102, "OBX-5", "data type error: value does not match OBX-2 NM", "AE"},
	{103, "MSH-9", "table value not found: message type not supported by this interface", "AR"},
	{207, "MSH-12", "application internal error: unsupported version", "AE"},
}

// deadLetterReasons are why the router gave up on a message.
var deadLetterReasons = []struct{ Route, Text string }{
	{"lab-results", "OBX[4]-5: value \"see note\" is not a number for parameter lactate (on_invalid: dead_letter)"},
	{"device-vitals", "OBX-14: observation time 3 days after the message time"},
	{"adt", "PV1-3: location unknown to the bed map"},
	{"nursing-vitals", "OBX[2]-6: unit \"kPa\" cannot be converted to % for spo2"},
}

// vitalParams are the parameters the observation events carry.
var vitalParams = []struct {
	Name, System, Code, Display, Unit string
	Base, Spread                      float64
}{
	{"heart_rate", "LN", "8867-4", "Heart rate", "/min", 78, 20},
	{"resp_rate", "LN", "9279-1", "Respiratory rate", "/min", 16, 5},
	{"spo2", "LN", "59408-5", "Oxygen saturation by pulse oximetry", "%", 96, 3},
	{"temperature", "LN", "8310-5", "Body temperature", "Cel", 37, 0.8},
	{"sbp", "LN", "8480-6", "Systolic blood pressure", "mm[Hg]", 125, 20},
	{"lactate", "LN", "2524-7", "Lactate [Moles/volume] in Serum or Plasma", "mmol/L", 1.4, 0.8},
	{"wbc", "LN", "6690-2", "Leukocytes [#/volume] in Blood", "10*9/L", 8, 3},
}

// generator makes the messages of a plan. message(i) depends only on the
// plan and i, so batches can be made in any order by any worker.
type generator struct {
	plan  Plan
	gen   *loadgen.Generator
	alert float64 // chance that a deteriorating patient's score raises an alert
}

func newGenerator(p Plan) (*generator, error) {
	p.defaults()
	g, err := loadgen.NewGenerator(loadgen.GeneratorOptions{Patients: p.Patients, Seed: p.Seed,
		RunID: "CB" + strconv.FormatUint(p.Seed%1_000_000, 36)})
	if err != nil {
		return nil, err
	}
	// Score events come with monitor (one in three) and nursing (every
	// one) messages of accepted, routed traffic, one patient in
	// DefaultDeteriorateEvery deteriorating.
	mix := loadgen.DefaultMix
	total := 0
	for _, w := range mix {
		total += w
	}
	scoreShare := (float64(mix[loadgen.Monitor])/3 + float64(mix[loadgen.Nursing])) / float64(total)
	expected := float64(p.Messages) * scoreShare * (1 - rejectedShare - unroutedShare) / loadgen.DefaultDeteriorateEvery
	return &generator{plan: p, gen: g, alert: min(1, float64(p.Alerts)/max(expected, 1))}, nil
}

// message builds message i.
func (g *generator) message(i int) *message {
	p := &g.plan
	rng := rand.New(rand.NewPCG(p.Seed^0x9e3779b97f4a7c15, uint64(i)))
	at := p.receivedAt(i)
	lm := g.gen.Message(uint64(i), at.Add(-time.Duration(rng.IntN(30_000))*time.Millisecond))
	n := lm.Patient + 1
	m := &message{ReceivedAt: at, Kind: lm.Kind, ControlID: lm.ControlID, Patient: lm.Patient,
		PatientID: fmt.Sprintf("LD%07d", n), Encounter: fmt.Sprintf("LV%07d", n),
		Location: fmt.Sprintf("LOADWARD%d^BAY%d^BED%d", lm.Patient/24+1, lm.Patient%24/4+1, lm.Patient%24+1)}
	m.ID = uuidV7(at, rng)
	m.PatientKey = authority + "/" + m.PatientID
	m.Sender = senderFor(lm.Kind, lm.Patient)
	if m.Sender == idleSender && p.End.Sub(at) < idleFor {
		m.Sender = idleReplaced
	}
	raw := lm.Raw
	m.Type, m.Trigger, m.Structure, m.Version = "ORU", "R01", "ORU_R01", "2.5.1"
	switch lm.Kind {
	case loadgen.Admit:
		m.Type, m.Trigger, m.Structure = "ADT", "A01", "ADT_A01"
	case loadgen.Update:
		m.Type, m.Trigger, m.Structure = "ADT", "A08", "ADT_A01"
		// Half the updates become transfers and discharges, which
		// loadgen does not make: same shape, other trigger.
		switch r := rng.IntN(10); {
		case r < 3:
			m.Trigger, m.Structure = "A02", "ADT_A02"
		case r < 5:
			m.Trigger, m.Structure = "A03", "ADT_A03"
		}
		if m.Trigger != "A08" {
			raw = bytes.Replace(raw, []byte("ADT^A08^ADT_A01"), []byte("ADT^"+m.Trigger+"^"+m.Structure), 1)
			raw = bytes.Replace(raw, []byte("EVN|A08|"), []byte("EVN|"+m.Trigger+"|"), 1)
		}
	case loadgen.Monitor:
		m.Version = "2.6"
	}
	// Each feed names itself in MSH-3 and MSH-4.
	raw = bytes.Replace(raw, []byte("MSH|^~\\&|AORTA_SIM|AORTA_SIM|"),
		[]byte("MSH|^~\\&|"+m.Sender.App+"|"+m.Sender.Facility+"|"), 1)
	m.Raw = raw
	sum := sha256.Sum256(raw)
	m.SHA256 = sum[:]

	m.Status, m.AckCode = "accepted", "AA"
	if rng.Float64() < rejectedShare {
		r := rejections[rng.IntN(len(rejections))]
		m.Status, m.AckCode, m.ErrorCode, m.ErrorLocation, m.Error = "rejected", r.Ack, r.Code, r.Location, r.Text
	}
	if rng.Float64() < duplicateShare {
		m.DuplicateCount = 1 + rng.IntN(3)
		m.LastDuplicateAt = at.Add(time.Duration(5+rng.IntN(600)) * time.Second)
	}
	m.Reused = rng.Float64() < reusedShare
	m.ACK = ackFor(m)
	if m.Status != "accepted" {
		return m
	}

	m.RoutedAt = at.Add(time.Duration(5+rng.IntN(40)) * time.Millisecond)
	deadShare := float64(p.DeadLetters) / float64(p.Messages) / (1 - rejectedShare)
	switch f := rng.Float64(); {
	case f < deadShare:
		m.Routing = "dead_lettered"
		reason := deadLetterReasons[rng.IntN(len(deadLetterReasons))]
		d := &deadLetter{Route: reason.Route, Error: reason.Text, Attempts: 1 + rng.IntN(5)}
		// The newest are mostly still open; older ones were settled.
		open := rng.Float64() < openDeadLetterShare || (p.End.Sub(at) < 24*time.Hour && rng.IntN(2) == 0)
		if !open {
			d.ResolvedAt = m.RoutedAt.Add(time.Duration(10+rng.IntN(600)) * time.Minute)
			d.Resolution = []string{"reprocessed", "discarded"}[rng.IntN(2)]
			d.ResolvedBy = []string{"analyst.jones", "analyst.okoro", "ops.night"}[rng.IntN(3)]
		}
		m.DeadLetter = d
		m.Routes = []string{d.Route}
		return m
	case f < deadShare+unroutedShare:
		m.Routing = "unrouted"
		return m
	}
	m.Routing = "routed"
	g.events(m, rng)
	routes := map[string]bool{}
	for _, e := range m.Events {
		if !routes[e.Route] {
			routes[e.Route] = true
			m.Routes = append(m.Routes, e.Route)
		}
	}
	return m
}

// events are what the router writes for a routed message: about two per
// message over the mix (one per ADT, two observations per result, and a
// score for nursing charts and one monitor result in three).
func (g *generator) events(m *message, rng *rand.Rand) {
	clinical := m.ReceivedAt.Add(-time.Duration(1+rng.IntN(120)) * time.Second)
	add := func(typ, route string, payload []byte) *event {
		m.Events = append(m.Events, event{ID: uuidV4(rng), Type: typ, OccurredAt: clinical, Route: route, Payload: payload})
		return &m.Events[len(m.Events)-1]
	}
	switch m.Kind {
	case loadgen.Admit, loadgen.Update:
		typ := map[string]string{"A01": "patient.admitted", "A02": "patient.transferred", "A03": "patient.discharged", "A08": "patient.updated"}[m.Trigger]
		add(typ, "adt", adtPayload(m, clinical))
		return
	}
	route := map[loadgen.Kind]string{loadgen.Lab: "lab-results", loadgen.Monitor: "device-vitals", loadgen.Nursing: "nursing-vitals"}[m.Kind]
	params := []int{0, 2} // heart rate, SpO2
	if m.Kind == loadgen.Lab {
		params = []int{5, 6} // lactate, white cells
	} else if rng.IntN(2) == 0 {
		params = []int{1, 4} // respiratory rate, systolic pressure
	}
	for k, pi := range params {
		vp := vitalParams[pi]
		v := vp.Base + (rng.Float64()*2-1)*vp.Spread
		value := strconv.FormatFloat(v, 'f', 1, 64)
		key := fmt.Sprintf("%x", sha256.Sum256([]byte(m.PatientKey+"|"+vp.Code+"|"+m.ControlID)))[:32]
		e := add("observation.recorded", route, observationPayload(m, key, vp.Code, vp.System, vp.Display, vp.Name, value, vp.Unit, clinical, k+1))
		e.Obs = &observation{Key: key, Parameter: vp.Name, System: vp.System, Code: vp.Code, Unit: vp.Unit, Value: value}
	}
	if m.Kind == loadgen.Nursing || (m.Kind == loadgen.Monitor && rng.IntN(3) == 0) {
		total := rng.IntN(4)
		deteriorating := m.Patient%loadgen.DefaultDeteriorateEvery == 0
		if deteriorating {
			total = 3 + rng.IntN(7)
		}
		risk := "low"
		switch {
		case total >= 7:
			risk = "high"
		case total >= 5:
			risk = "medium"
		}
		score := add("score.calculated", route, scorePayload(total, risk, clinical))
		score.Score = &scoreSeed{Total: total, Risk: risk}
		if deteriorating && total >= 5 && rng.Float64() < g.alert {
			a := &alertSeed{ID: uuidV4(rng), ScoreID: score.ID, Level: total, RaisedAt: m.RoutedAt, Severity: "urgent"}
			if total >= 7 {
				a.Severity = "emergency"
			}
			ev := add("alert.raised", route, alertPayload(a, m))
			a.EventID = ev.ID
			m.Alert = a
		}
	}
}

// ackFor is the acknowledgement the listener sent: MSH, MSA, and for a
// reject an ERR naming the location and code.
func ackFor(m *message) []byte {
	ts := m.ReceivedAt.UTC().Format("20060102150405.000+0000")
	var b bytes.Buffer
	fmt.Fprintf(&b, "MSH|^~\\&|AORTA|AORTA|%s|%s|%s||ACK^%s^ACK|%s|P|%s\r", m.Sender.App, m.Sender.Facility, ts, m.Trigger,
		hex20(m.ID), m.Version)
	fmt.Fprintf(&b, "MSA|%s|%s\r", m.AckCode, m.ControlID)
	if m.ErrorCode != 0 {
		seg, field, _ := bytes.Cut([]byte(m.ErrorLocation), []byte("-"))
		fmt.Fprintf(&b, "ERR||%s^1^%s|%d^%s^HL70357|E\r", seg, field, m.ErrorCode, m.Error)
	}
	return b.Bytes()
}

// hex20 is the first 20 hex digits of id: the ACK's MSH-10.
func hex20(id uuid.UUID) string { return fmt.Sprintf("%x", id[:10]) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps and strings of this file: cannot fail
	}
	return b
}

func adtPayload(m *message, at time.Time) []byte {
	sex := []string{"F", "M"}[m.Patient%2]
	ward, room, bed := "", "", ""
	parts := bytes.Split([]byte(m.Location), []byte("^"))
	if len(parts) == 3 {
		ward, room, bed = string(parts[0]), string(parts[1]), string(parts[2])
	}
	return mustJSON(map[string]any{
		"trigger":           m.Trigger,
		"event_reason":      nil,
		"event_recorded_at": at.UTC().Format(time.RFC3339),
		"patient": map[string]any{
			"identifiers": []any{map[string]any{"id": m.PatientID, "authority": authority, "type": "MR"}},
			"name":        map[string]any{"family": "AORTASIM", "given": "P" + strconv.Itoa(m.Patient+1), "middle": nil, "suffix": nil, "prefix": nil},
			"birth_date":  time.Date(1940, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, (m.Patient*7919)%(50*365)).Format(time.DateOnly),
			"sex":         sex,
		},
		"prior_patient": nil,
		"visit": map[string]any{
			"class":            "I",
			"location":         map[string]any{"point_of_care": ward, "room": room, "bed": bed, "facility": authority, "building": nil, "floor": nil},
			"prior_location":   nil,
			"attending_doctor": nil,
			"hospital_service": "MED",
			"visit_number":     m.Encounter,
			"admitted_at":      at.UTC().Format(time.RFC3339),
			"discharged_at":    nil,
		},
	})
}

func observationPayload(m *message, key, code, system, display, param, value, unit string, at time.Time, setID int) []byte {
	return mustJSON(map[string]any{
		"observation_key": key, "replaces": nil, "code": code, "coding_system": system, "display": display,
		"alternate_code": nil, "parameter": param, "value": value, "value_type": "number", "comparator": nil,
		"value_2": nil, "value_coding": nil, "unit": unit, "original_value": value, "original_unit": unit,
		"reference_range": nil, "abnormal_flags": []string{}, "status": "F", "observed_at": at.UTC().Format(time.RFC3339),
		"observed_at_source": "obx_14", "set_id": strconv.Itoa(setID), "sub_id": nil,
		"order": map[string]any{"set_id": "1", "placer_number": nil, "filler_number": m.ControlID, "code": nil},
	})
}

func scorePayload(total int, risk string, at time.Time) []byte {
	return mustJSON(map[string]any{
		"score": "news2", "total": total, "risk": risk, "complete": true, "calculated_at": at.UTC().Format(time.RFC3339),
		"components": []any{
			map[string]any{"parameter": "resp_rate", "points": min(total, 3)},
			map[string]any{"parameter": "spo2", "points": max(0, min(total-3, 3))},
			map[string]any{"parameter": "heart_rate", "points": max(0, total-6)},
		},
		"missing": []string{}, "spo2_scale": 1,
	})
}

func alertPayload(a *alertSeed, m *message) []byte {
	return mustJSON(map[string]any{
		"alert_id": a.ID, "rule": "news2-" + a.Severity, "score": "news2", "severity": a.Severity, "level": a.Level,
		"patient_key": m.PatientKey, "encounter_id": m.Encounter, "location": m.Location, "score_event_id": a.ScoreID,
		"response": "Urgent review by a clinician with competencies in acute illness",
	})
}

// partitionOf is the listener's outbox partition key of a patient key.
func partitionOf(key string) int32 { return patient.Partition(key) }
