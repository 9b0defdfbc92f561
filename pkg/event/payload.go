package event

import (
	"encoding/json"

	"github.com/aortahealth/aorta/pkg/hl7"
	"github.com/aortahealth/aorta/pkg/patient"
)

// Payload shapes, schema_version 1. docs/events.md documents every key;
// keep the two in step. Every key is always present (null when the message
// lacks the value), so consumers never need to test for a key.

type identifierJSON struct {
	ID        string  `json:"id"`
	Authority *string `json:"authority"`
	Type      *string `json:"type"`
}

func identifierOf(id patient.Identifier) identifierJSON {
	return identifierJSON{ID: id.ID, Authority: opt(id.Authority), Type: opt(id.Type)}
}

func identifiersOf(ids []patient.Identifier) []identifierJSON {
	out := make([]identifierJSON, 0, len(ids))
	for _, id := range ids {
		out = append(out, identifierOf(id))
	}
	return out
}

type nameJSON struct {
	Family *string `json:"family"`
	Given  *string `json:"given"`
	Middle *string `json:"middle"`
	Suffix *string `json:"suffix"`
	Prefix *string `json:"prefix"`
}

// nameOf reads an XPN repetition; nil when it is empty.
func nameOf(e hl7.Element) *nameJSON {
	n := nameJSON{
		Family: opt(leaf(e.Component(1))), // FN.1 surname
		Given:  opt(leaf(e.Component(2))),
		Middle: opt(leaf(e.Component(3))),
		Suffix: opt(leaf(e.Component(4))),
		Prefix: opt(leaf(e.Component(5))),
	}
	if n == (nameJSON{}) {
		return nil
	}
	return &n
}

type codingJSON struct {
	Code         *string `json:"code"`
	Display      *string `json:"display"`
	CodingSystem *string `json:"coding_system"`
}

// codingAt reads the triplet starting at component first (1 for the
// identifier, 4 for the alternate identifier of CE/CWE); nil when empty.
func codingAt(e hl7.Element, first int) *codingJSON {
	c := codingJSON{
		Code:         opt(leaf(e.Component(first))),
		Display:      opt(leaf(e.Component(first + 1))),
		CodingSystem: opt(leaf(e.Component(first + 2))),
	}
	if c == (codingJSON{}) {
		return nil
	}
	return &c
}

// eiJSON is an entity identifier (EI): order numbers, equipment.
type eiJSON struct {
	ID              string  `json:"id"`
	Namespace       *string `json:"namespace"`
	UniversalID     *string `json:"universal_id"`
	UniversalIDType *string `json:"universal_id_type"`
}

func eiOf(e hl7.Element) *eiJSON {
	id := leaf(e.Component(1))
	if id == "" || id == `""` {
		return nil
	}
	return &eiJSON{
		ID:              id,
		Namespace:       opt(leaf(e.Component(2))),
		UniversalID:     opt(leaf(e.Component(3))),
		UniversalIDType: opt(leaf(e.Component(4))),
	}
}

func eisOf(f hl7.Element) []eiJSON {
	out := []eiJSON{}
	for _, r := range f.Repetitions() {
		if ei := eiOf(r); ei != nil {
			out = append(out, *ei)
		}
	}
	return out
}

// locationJSON is a person location (PL).
type locationJSON struct {
	PointOfCare *string `json:"point_of_care"`
	Room        *string `json:"room"`
	Bed         *string `json:"bed"`
	Facility    *string `json:"facility"`
	Building    *string `json:"building"`
	Floor       *string `json:"floor"`
}

func locationOf(f hl7.Element) *locationJSON {
	fac := f.Component(4)
	facility := fac.Subcomponent(1).String()
	if facility == "" {
		facility = fac.Subcomponent(2).String()
	}
	l := locationJSON{
		PointOfCare: opt(leaf(f.Component(1))),
		Room:        opt(leaf(f.Component(2))),
		Bed:         opt(leaf(f.Component(3))),
		Facility:    opt(facility),
		Building:    opt(leaf(f.Component(7))),
		Floor:       opt(leaf(f.Component(8))),
	}
	if l == (locationJSON{}) {
		return nil
	}
	return &l
}

// doctorJSON is a clinician (XCN): staff identifiers and names are not
// patient data.
type doctorJSON struct {
	ID     *string `json:"id"`
	Family *string `json:"family"`
	Given  *string `json:"given"`
}

func doctorOf(f hl7.Element) *doctorJSON {
	r := f.Repetition(1)
	d := doctorJSON{ID: opt(leaf(r.Component(1))), Family: opt(leaf(r.Component(2))), Given: opt(leaf(r.Component(3)))}
	if d == (doctorJSON{}) {
		return nil
	}
	return &d
}

type patientJSON struct {
	Identifiers []identifierJSON `json:"identifiers"`
	Name        *nameJSON        `json:"name"`
	BirthDate   *string          `json:"birth_date"`
	Sex         *string          `json:"sex"`
}

type visitJSON struct {
	Class           *string       `json:"class"`
	Location        *locationJSON `json:"location"`
	PriorLocation   *locationJSON `json:"prior_location"`
	AttendingDoctor *doctorJSON   `json:"attending_doctor"`
	HospitalService *string       `json:"hospital_service"`
	VisitNumber     *string       `json:"visit_number"`
	AdmittedAt      *string       `json:"admitted_at"`
	DischargedAt    *string       `json:"discharged_at"`
}

type priorPatientJSON struct {
	Identifiers []identifierJSON `json:"identifiers"`
	PatientKey  string           `json:"patient_key"`
	VisitNumber *string          `json:"visit_number"`
}

// adtPayload is the payload of every patient.* event.
type adtPayload struct {
	Trigger         string            `json:"trigger"`
	EventReason     *codingJSON       `json:"event_reason"`
	EventRecordedAt *string           `json:"event_recorded_at"`
	Patient         patientJSON       `json:"patient"`
	PriorPatient    *priorPatientJSON `json:"prior_patient"`
	Visit           *visitJSON        `json:"visit"`
}

type orderJSON struct {
	SetID   *string     `json:"set_id"`
	Placer  *eiJSON     `json:"placer"`
	Filler  *eiJSON     `json:"filler"`
	Service *codingJSON `json:"service"`
	Notes   *string     `json:"notes"`
}

type deviceLevelJSON struct {
	SubID        string   `json:"sub_id"`
	Code         *string  `json:"code"`
	CodingSystem *string  `json:"coding_system"`
	Display      *string  `json:"display"`
	Identifiers  []eiJSON `json:"identifiers"`
}

type deviceJSON struct {
	Identifiers []eiJSON          `json:"identifiers"`
	Hierarchy   []deviceLevelJSON `json:"hierarchy"`
}

// observationPayload is the payload of every observation.* event.
type observationPayload struct {
	ObservationKey   string          `json:"observation_key"`
	Replaces         json.RawMessage `json:"replaces"`
	Code             *string         `json:"code"`
	CodingSystem     *string         `json:"coding_system"`
	Display          *string         `json:"display"`
	AlternateCode    *codingJSON     `json:"alternate_code"`
	Parameter        *string         `json:"parameter"`
	Value            *string         `json:"value"`
	ValueType        string          `json:"value_type"`
	Comparator       *string         `json:"comparator"`
	Value2           *string         `json:"value_2"`
	ValueCoding      *codingJSON     `json:"value_coding"`
	Unit             *string         `json:"unit"`
	OriginalValue    *string         `json:"original_value"`
	OriginalUnit     *string         `json:"original_unit"`
	ReferenceRange   *string         `json:"reference_range"`
	AbnormalFlags    []string        `json:"abnormal_flags"`
	Status           string          `json:"status"`
	ObservedAt       string          `json:"observed_at"`
	ObservedAtSource string          `json:"observed_at_source"`
	SetID            *string         `json:"set_id"`
	SubID            *string         `json:"sub_id"`
	Order            orderJSON       `json:"order"`
	Device           *deviceJSON     `json:"device"`
	Notes            *string         `json:"notes"`
	Patient          identifierJSON  `json:"patient_identifier"`
}
