// Package storetest builds store rows for tests of the packages that read
// them (the API, the console), as the listener would have written them.
package storetest

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aortahealth/aorta/pkg/hl7"
	"github.com/aortahealth/aorta/pkg/patient"
	"github.com/aortahealth/aorta/pkg/store"
)

// Message is raw as the listener stores an accepted message received at
// receivedAt: header columns from MSH, an AA acknowledgement, and an
// outbox entry keyed by the patient (by the message when it names none).
func Message(t testing.TB, raw string, receivedAt time.Time) *store.Message {
	t.Helper()
	m, err := hl7.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	get := func(loc string) string { v, _ := m.Get(loc); return v }
	msg := &store.Message{
		ID: uuid.Must(uuid.NewV7()), ReceivedAt: receivedAt, Listener: "test", RemoteAddr: "127.0.0.1:1",
		Raw: []byte(raw), Status: store.StatusAccepted, AckCode: "AA", Ack: []byte("MSH|^~\\&|AORTA|HOSP|||x||ACK|1|P|2.5\rMSA|AA|" + get("MSH-10") + "\r"),
		Header: store.Header{SendingApplication: get("MSH-3"), SendingFacility: get("MSH-4"), ReceivingApplication: get("MSH-5"),
			ReceivingFacility: get("MSH-6"), MessageType: get("MSH-9.1"), TriggerEvent: get("MSH-9.2"), MessageStructure: get("MSH-9.3"),
			ControlID: get("MSH-10"), ProcessingID: get("MSH-11.1"), Version: get("MSH-12.1")},
	}
	key := msg.ID.String()
	if id, ok := patient.Primary(m); ok {
		key = id.Key(get("MSH-4"))
		msg.Outbox = &store.OutboxEntry{PartitionKey: patient.Partition(key), PatientKey: key}
	} else {
		msg.Outbox = &store.OutboxEntry{PartitionKey: patient.Partition(key)}
	}
	return msg
}
