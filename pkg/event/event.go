package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/aortahealth/aorta/pkg/clinical"
)

// SchemaVersion is the version of the payload schemas documented in
// docs/events.md. A change that removes or retypes a payload key bumps it;
// adding a key does not.
const SchemaVersion = 1

// Event types: the public vocabulary downstream consumers rely on
// (docs/events.md). Scoring and alerting add score.* and alert.* types.
const (
	PatientAdmitted           = "patient.admitted"            // A01
	PatientTransferred        = "patient.transferred"         // A02
	PatientDischarged         = "patient.discharged"          // A03
	PatientRegistered         = "patient.registered"          // A04
	PatientPreadmitted        = "patient.preadmitted"         // A05
	PatientUpdated            = "patient.updated"             // A08, A31
	PatientAdmissionCancelled = "patient.admission_cancelled" // A11
	PatientTransferCancelled  = "patient.transfer_cancelled"  // A12
	PatientDischargeCancelled = "patient.discharge_cancelled" // A13
	PatientMerged             = "patient.merged"              // A40
	ObservationRecorded       = "observation.recorded"        // OBX-11 F, R (and P if configured)
	ObservationCorrected      = "observation.corrected"       // OBX-11 C
	ObservationRetracted      = "observation.retracted"       // OBX-11 D or W
)

// Event is one clinical event, a row of the events table.
type Event struct {
	ID   uuid.UUID // deterministic: NewID(message, route, key)
	Type string
	// OccurredAt is clinical time (when it happened), not arrival time.
	OccurredAt time.Time
	MessageID  uuid.UUID // the stored raw message it came from
	// PatientID is the primary identifier's value (first PID-3
	// repetition); the assigning authority is in the payload.
	PatientID string
	// PatientKey is "authority/id" (pkg/patient): per-patient state and
	// ordering are keyed by it, since an ID alone is only unique within
	// its authority.
	PatientKey    string
	EncounterID   string // PV1-19 when present
	Source        string // sending application and facility, "APP^FACILITY"
	Route         string
	SchemaVersion int
	Payload       json.RawMessage // JSON object, keys in snake_case (docs/events.md)

	// Side data for the router, which keeps per-patient state from it
	// without parsing Payload. None of them is stored as a column.

	// Observation is set on observation.* events.
	Observation *Observation
	// Merge is set on patient.merged events.
	Merge *Merge
	// Visit is set on patient.* events whose patient has a PV1.
	Visit *Visit
}

// Location returns the patient's location after a patient.* event
// (Visit.Location as text), or "" when the event carries none.
func (e Event) Location() string {
	if e.Visit == nil {
		return ""
	}
	return e.Visit.Location.String()
}

// Observation is the typed form of an observation.* event.
type Observation struct {
	// Key identifies the observation across a result's corrections and
	// retractions (OBX-11 C, D, W resent later): the patient, the order
	// (OBR-3 filler number, else OBR-2 placer number), the observation
	// code (OBX-3) and sub-ID (OBX-4), plus the observation time for
	// device streams (MDC codes, or results without an order number),
	// whose codes and sub-IDs repeat in every message. It is also the
	// payload's observation_key.
	Key string
	// Parameter is the clinical parameter the code maps to, or "" for a
	// code the route's parameter table does not know.
	Parameter string
	// Code is the code that matched the parameter (OBX-3.1/3.3, or the
	// alternate OBX-3.4/3.6), else the code as sent; its system is in
	// canonical form (Code.Normalized).
	Code clinical.Code
	// Value is the normalised value of a mapped parameter; its Kind is ""
	// for an unmapped code and for a retraction, which is never scored.
	Value clinical.Value
	// ValueText and ValueType are the payload's value and value_type: the
	// value as text (an exact decimal, a code, text...) and what kind it
	// is. For a mapped parameter ValueText is the normalised value.
	ValueText string
	ValueType string
	// Unit is the canonical unit of a mapped parameter, else OBX-6.1 as
	// sent.
	Unit   string
	Status string // OBX-11, upper case
	// ObservedAt is clinical time (OBX-14, else the enclosing device's
	// OBX-14, else OBR-7, else MSH-7), never arrival time.
	ObservedAt time.Time
}

// Numeric returns the normalised value of a numeric parameter as an exact
// decimal in the canonical unit ("38.0"), or "" for anything else.
func (o *Observation) Numeric() string {
	if o.Value.Kind != clinical.Numeric {
		return ""
	}
	return o.Value.String()
}

// Text returns the payload's value: the normalised value of a mapped
// parameter, else the value as sent, typed by OBX-2 (value_type).
func (o *Observation) Text() string { return o.ValueText }

// Visit is the typed visit (PV1) of a patient.* event.
type Visit struct {
	Class         string // PV1-2 patient class, e.g. I, O, E
	Location      Place  // PV1-3 assigned location
	PriorLocation Place  // PV1-6 prior location
	EncounterID   string // PV1-19.1
}

// Place is a person location (PL).
type Place struct {
	PointOfCare, Room, Bed, Facility string
}

// String returns the location in HL7 component order,
// "point_of_care^room^bed^facility", without trailing empty parts; "" for
// no location.
func (p Place) String() string {
	parts := []string{p.PointOfCare, p.Room, p.Bed, p.Facility}
	for len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	return strings.Join(parts, "^")
}

// Merge is the typed form of a patient.merged event: the prior patient
// (MRG-1) is merged into the surviving patient (PID-3).
type Merge struct {
	PriorKey     string // patient key of MRG-1 ("authority/id")
	PriorID      string // MRG-1.1
	SurvivingKey string // patient key of PID-3
	SurvivingID  string // PID-3.1
}

// ErrNotReplaceable is returned by SetReplaces for an event that is not
// an observation.corrected or observation.retracted.
var ErrNotReplaceable = errors.New("event: only observation.corrected and observation.retracted events replace an earlier event")

// nullReplaces is how Map writes the replaces key; SetReplaces fills it.
var nullReplaces = []byte(`"replaces":null`)

// SetReplaces records in the payload which earlier event a correction or
// retraction replaces (its replaces key, null as Map leaves it). The router
// calls it once it has looked the observation key up in its state. The
// payload's key order is kept.
func (e *Event) SetReplaces(prior uuid.UUID) error {
	if e.Type != ObservationCorrected && e.Type != ObservationRetracted {
		return ErrNotReplaceable
	}
	i := bytes.Index(e.Payload, nullReplaces)
	if i < 0 {
		return errors.New("event: payload has no unset replaces key")
	}
	val, _ := json.Marshal(prior.String())
	out := make([]byte, 0, len(e.Payload)+len(val))
	out = append(out, e.Payload[:i]...)
	out = append(out, `"replaces":`...)
	out = append(out, val...)
	out = append(out, e.Payload[i+len(nullReplaces):]...)
	e.Payload = out
	return nil
}

// namespace roots the deterministic event IDs (UUIDv5).
var namespace = uuid.MustParse("6f0d3c1e-8a3b-5c55-9f3e-2b7a4e5d9c01")

// NewID derives an event's ID from the message it came from, the route
// that produced it and a key unique within that message and route (such
// as the OBX's position). Replaying a message through the same routes
// yields the same IDs, so replays and retries never duplicate an event.
func NewID(messageID uuid.UUID, route, key string) uuid.UUID {
	name := make([]byte, 0, 16+len(route)+1+len(key))
	name = append(name, messageID[:]...)
	name = append(name, route...)
	name = append(name, 0)
	name = append(name, key...)
	return uuid.NewSHA1(namespace, name)
}
