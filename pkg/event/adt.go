package event

import (
	"fmt"
	"strings"
	"time"

	"github.com/aortahealth/aorta/pkg/hl7"
	"github.com/aortahealth/aorta/pkg/patient"
)

// adtTypes maps ADT trigger events to event types.
var adtTypes = map[string]string{
	"A01": PatientAdmitted,
	"A02": PatientTransferred,
	"A03": PatientDischarged,
	"A04": PatientRegistered,
	"A05": PatientPreadmitted,
	"A08": PatientUpdated,
	"A31": PatientUpdated,
	"A11": PatientAdmissionCancelled,
	"A12": PatientTransferCancelled,
	"A13": PatientDischargeCancelled,
	"A40": PatientMerged,
}

// adt maps an ADT message to one patient.* event, or one patient.merged
// event per PID/MRG pair of an A40.
func (mp *mapper) adt() error {
	h := mp.msg.Header
	if !strings.EqualFold(h.MessageType, "ADT") {
		if mp.has(MappingObservations) {
			// A route mapping both ADT and results: this message is for
			// the other mapping.
			return nil
		}
		return &InvalidError{
			Location: hl7.Location{Segment: "MSH", Field: 9, Component: 1},
			Reason:   fmt.Sprintf("message type %s is not ADT, the only type the adt mapping reads", safeCode(h.MessageType)),
		}
	}
	trigger, trigLoc := strings.ToUpper(strings.TrimSpace(h.TriggerEvent)), hl7.Location{Segment: "MSH", Field: 9, Component: 2}
	if trigger == "" {
		if i := mp.first("EVN"); i >= 0 {
			trigger, trigLoc = strings.ToUpper(strings.TrimSpace(mp.segs[i].Field(1).String())), mp.at(i, 1)
		}
	}
	if trigger == "" {
		return &InvalidError{Location: trigLoc, Reason: "trigger event missing (MSH-9.2 and EVN-1 are empty)"}
	}
	typ, ok := adtTypes[trigger]
	if !ok {
		return &InvalidError{Location: trigLoc, Reason: fmt.Sprintf("trigger %s is not mapped by the adt mapping", safeCode(trigger))}
	}
	occurred, err := mp.adtTime()
	if err != nil {
		return err
	}
	base := adtPayload{Trigger: trigger}
	if i := mp.first("EVN"); i >= 0 {
		evn := mp.segs[i]
		base.EventReason = codingAt(evn.Field(4), 1)
		if s := evn.Field(2).Component(1).String(); s != "" && s != `""` {
			if t, err := mp.readTime(s); err == nil {
				base.EventRecordedAt = opt(timeText(t))
			} else {
				mp.warn(mp.at(i, 2), "EVN-2 recorded time unreadable; left out")
			}
		}
	}
	if typ == PatientMerged {
		return mp.merges(typ, occurred, base)
	}

	pidPos := mp.first("PID")
	pat, err := mp.patientAt(pidPos)
	if err != nil {
		return err
	}
	p := base
	p.Patient = mp.patientPayload(pidPos, pat)
	pv1 := mp.visitAfter(pidPos)
	p.Visit = mp.visitPayload(pv1)
	return mp.emit(pidPos, "adt", Event{
		Type:        typ,
		OccurredAt:  occurred,
		PatientID:   pat.primary.ID,
		PatientKey:  pat.key,
		EncounterID: mp.encounterID(pv1),
		Visit:       mp.visit(pv1),
	}, p)
}

// merges emits one patient.merged per PID/MRG pair, in message order.
func (mp *mapper) merges(typ string, occurred time.Time, base adtPayload) error {
	n := 0
	for i, s := range mp.segs {
		if s.Name() != "PID" {
			continue
		}
		n++
		pat, err := mp.patientAt(i)
		if err != nil {
			return err
		}
		mrgPos := -1
		for j := i + 1; j < len(mp.segs) && mp.segs[j].Name() != "PID"; j++ {
			if mp.segs[j].Name() == "MRG" {
				mrgPos = j
				break
			}
		}
		if mrgPos < 0 {
			return &InvalidError{Location: hl7.Location{Segment: "MRG"}, Reason: fmt.Sprintf("MRG segment missing after PID %d: a merge names the prior patient in MRG-1", n)}
		}
		priorIDs := patient.Identifiers(mp.segs[mrgPos].Field(1))
		if len(priorIDs) == 0 {
			return &InvalidError{Location: mp.at(mrgPos, 1), Reason: "MRG-1 prior patient identifier missing"}
		}
		prior := priorIDs[0]
		priorKey := prior.Key(mp.fallbackAuthority)
		p := base
		p.Patient = mp.patientPayload(i, pat)
		p.PriorPatient = &priorPatientJSON{
			Identifiers: identifiersOf(priorIDs),
			PatientKey:  priorKey,
			VisitNumber: opt(leaf(mp.segs[mrgPos].Field(5))),
		}
		pv1 := mp.visitAfter(i)
		p.Visit = mp.visitPayload(pv1)
		key := "adt"
		if n > 1 {
			key = fmt.Sprintf("adt/%d", n)
		}
		err = mp.emit(i, key, Event{
			Type:        typ,
			OccurredAt:  occurred,
			PatientID:   pat.primary.ID,
			PatientKey:  pat.key,
			EncounterID: mp.encounterID(pv1),
			Visit:       mp.visit(pv1),
			Merge: &Merge{
				PriorKey:     priorKey,
				PriorID:      prior.ID,
				SurvivingKey: pat.key,
				SurvivingID:  pat.primary.ID,
			},
		}, p)
		if err != nil {
			return err
		}
	}
	if n == 0 {
		return &InvalidError{Location: hl7.Location{Segment: "PID", Field: 3}, Reason: "PID-3 patient identifier missing (no PID segment)"}
	}
	return nil
}

// adtTime is when the ADT event happened: EVN-6 (event occurred), else
// EVN-2 (recorded), else MSH-7. The first of them present decides; if it
// is unreadable the message is invalid rather than dated by a guess.
func (mp *mapper) adtTime() (time.Time, error) {
	if i := mp.first("EVN"); i >= 0 {
		for _, f := range []int{6, 2} {
			// HL7's explicit null "" says "no value": fall back as for empty.
			if s := mp.segs[i].Field(f).Component(1).String(); s != "" && s != `""` {
				t, err := mp.readTime(s)
				if err != nil {
					return time.Time{}, &InvalidError{Location: mp.at(i, f), Reason: fmt.Sprintf("EVN-%d event time unreadable", f)}
				}
				return t, nil
			}
		}
	}
	return mp.headerTime()
}

// headerTime reads MSH-7, the last resort for clinical time.
func (mp *mapper) headerTime() (time.Time, error) {
	loc := hl7.Location{Segment: "MSH", Field: 7}
	s := mp.msg.Header.DateTime
	if s == "" {
		return time.Time{}, &InvalidError{Location: loc, Reason: "no clinical time: MSH-7 is empty and no more specific time is given"}
	}
	t, err := mp.readTime(s)
	if err != nil {
		return time.Time{}, &InvalidError{Location: loc, Reason: "MSH-7 message time unreadable"}
	}
	return t, nil
}

// first returns the position of the first segment with this name, or -1.
func (mp *mapper) first(name string) int {
	for i, s := range mp.segs {
		if s.Name() == name {
			return i
		}
	}
	return -1
}

// subject is a patient named by a PID segment.
type subject struct {
	primary     patient.Identifier
	all         []patient.Identifier
	key         string
	encounterID string // PV1-19.1 of the patient's visit, set by the observations mapping
}

// patientAt reads the PID at position i (-1: there is none).
func (mp *mapper) patientAt(i int) (subject, error) {
	if i < 0 {
		return subject{}, &InvalidError{Location: hl7.Location{Segment: "PID", Field: 3}, Reason: "PID-3 patient identifier missing (no PID segment)"}
	}
	ids := patient.Identifiers(mp.segs[i].Field(3))
	if len(ids) == 0 {
		return subject{}, &InvalidError{Location: mp.at(i, 3), Reason: "PID-3 patient identifier missing"}
	}
	return subject{primary: ids[0], all: ids, key: ids[0].Key(mp.fallbackAuthority)}, nil
}

func (mp *mapper) patientPayload(i int, s subject) patientJSON {
	pid := mp.segs[i]
	p := patientJSON{
		Identifiers: identifiersOf(s.all),
		Name:        nameOf(pid.Field(5).Repetition(1)),
		Sex:         opt(leaf(pid.Field(8))),
	}
	if b := pid.Field(7).Component(1).String(); b != "" && b != `""` {
		if d, ok := birthDate(b); ok {
			p.BirthDate = &d
		} else {
			mp.warn(mp.at(i, 7), "PID-7 birth date unreadable; left out")
		}
	}
	return p
}

// birthDate keeps the calendar date as written ("YYYY", "YYYY-MM" or
// "YYYY-MM-DD"): converting a birth time between zones could move it to
// another day.
func birthDate(s string) (string, bool) {
	n := 0
	for n < len(s) && n < 8 && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	switch n {
	case 4, 6, 8:
	default:
		return "", false
	}
	if _, err := hl7.ParseTime(s[:n]); err != nil {
		return "", false
	}
	switch n {
	case 4:
		return s[:4], true
	case 6:
		return s[:4] + "-" + s[4:6], true
	}
	return s[:4] + "-" + s[4:6] + "-" + s[6:8], true
}

// visitAfter returns the position of the PV1 that belongs to the PID at
// position i (the first PV1 before the next PID), or -1.
func (mp *mapper) visitAfter(i int) int {
	if i < 0 {
		return -1
	}
	for j := i + 1; j < len(mp.segs); j++ {
		switch mp.segs[j].Name() {
		case "PV1":
			return j
		case "PID":
			return -1
		}
	}
	return -1
}

func (mp *mapper) encounterID(pv1 int) string {
	if pv1 < 0 {
		return ""
	}
	id := leaf(mp.segs[pv1].Field(19))
	if id == `""` {
		return ""
	}
	return id
}

// visit is the typed side data of the PV1 at position i (nil for -1).
func (mp *mapper) visit(i int) *Visit {
	if i < 0 {
		return nil
	}
	pv1 := mp.segs[i]
	return &Visit{
		Class:         leaf(pv1.Field(2)),
		Location:      PlaceOf(pv1.Field(3).Repetition(1)),
		PriorLocation: PlaceOf(pv1.Field(6).Repetition(1)),
		EncounterID:   mp.encounterID(i),
	}
}

// PlaceOf reads a location field (PL: PV1-3, PV1-6).
func PlaceOf(f hl7.Element) Place {
	l := locationOf(f)
	if l == nil {
		return Place{}
	}
	return Place{PointOfCare: deref(l.PointOfCare), Room: deref(l.Room), Bed: deref(l.Bed), Facility: deref(l.Facility)}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (mp *mapper) visitPayload(i int) *visitJSON {
	if i < 0 {
		return nil
	}
	pv1 := mp.segs[i]
	v := &visitJSON{
		Class:           opt(leaf(pv1.Field(2))),
		Location:        locationOf(pv1.Field(3).Repetition(1)),
		PriorLocation:   locationOf(pv1.Field(6).Repetition(1)),
		AttendingDoctor: doctorOf(pv1.Field(7)),
		HospitalService: opt(leaf(pv1.Field(10))),
		VisitNumber:     opt(mp.encounterID(i)),
	}
	for _, f := range []struct {
		field int
		dst   **string
		what  string
	}{{44, &v.AdmittedAt, "PV1-44 admit time"}, {45, &v.DischargedAt, "PV1-45 discharge time"}} {
		s := pv1.Field(f.field).Repetition(1).Component(1).String()
		if s == "" || s == `""` {
			continue
		}
		t, err := mp.readTime(s)
		if err != nil {
			mp.warn(mp.at(i, f.field), f.what+" unreadable; left out")
			continue
		}
		*f.dst = opt(timeText(t))
	}
	return v
}
