package event

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

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
	Payload       json.RawMessage
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
