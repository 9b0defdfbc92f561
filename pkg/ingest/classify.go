package ingest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/aortahealth/aorta/pkg/hl7"
	"github.com/aortahealth/aorta/pkg/patient"
	"github.com/aortahealth/aorta/pkg/store"
)

// prepared is one message after parsing and policy, before storage.
type prepared struct {
	msg *store.Message
	hdr hl7.Header
	// answerable is false for inbound acknowledgements: never an ACK to an ACK.
	answerable bool
}

// prepare parses raw, decides accept or reject, and builds the ACK the
// sender asked for. It never fails: whatever arrives is stored.
func (in *Ingester) prepare(raw []byte, now time.Time, remote string) *prepared {
	id := uuid.Must(uuid.NewV7())
	m := &store.Message{
		ID:         id,
		ReceivedAt: now,
		Listener:   in.cfg.Listener,
		RemoteAddr: remote,
		Raw:        raw,
	}
	p := &prepared{msg: m, answerable: true}

	msg, err := hl7.Parse(raw)
	var problems []*hl7.Error
	if err != nil {
		var perr *hl7.Error
		if !errors.As(err, &perr) {
			perr = &hl7.Error{Code: hl7.SegmentSequenceError, Severity: hl7.SeverityError, Reason: err.Error()}
		}
		problems = append(problems, perr)
		// Enough of the header to address the reject, if it can be found.
		p.hdr, _ = hl7.ParseHeader(raw)
	} else {
		p.hdr = msg.Header()
		problems = append(problems, p.hdr.Check()...)
	}
	m.Header = storeHeader(p.hdr)

	if isAck(p.hdr.MessageType) {
		m.Status = store.StatusIgnored
		p.answerable = false
		if len(problems) > 0 {
			m.ErrorCode, m.ErrorLocation, m.Error = int(problems[0].Code), problems[0].Location.String(), problems[0].Reason
		}
		return p
	}
	if len(problems) == 0 {
		problems = in.policy(p.hdr)
	}

	outcome := hl7.Accepted
	if len(problems) > 0 {
		outcome = hl7.Rejected
		m.Status = store.StatusRejected
		m.ErrorCode, m.ErrorLocation, m.Error = int(problems[0].Code), problems[0].Location.String(), problems[0].Reason
	} else {
		m.Status = store.StatusAccepted
		pk := patientKey(msg, p.hdr)
		partition := pk
		if partition == "" {
			partition = id.String()
		}
		m.Outbox = &store.OutboxEntry{PartitionKey: patient.Partition(partition), PatientKey: pk}
	}
	details := make([]hl7.ErrorDetail, 0, len(problems))
	for _, pr := range problems {
		sev := pr.Severity
		if sev == "" {
			sev = hl7.SeverityError
		}
		details = append(details, hl7.ErrorDetail{Location: pr.Location, Code: pr.Code, Severity: sev, Text: pr.Reason})
	}
	m.AckCode, m.Ack = in.buildAck(p.hdr, outcome, id, now, details)
	return p
}

// policy applies this listener's configuration to a well-formed header.
func (in *Ingester) policy(h hl7.Header) []*hl7.Error {
	if !slices.Contains(in.cfg.ProcessingIDs, strings.ToUpper(h.ProcessingID)) {
		return []*hl7.Error{{
			Code: hl7.UnsupportedProcessingID, Severity: hl7.SeverityError,
			Location: hl7.Location{Segment: "MSH", Field: 11, Component: 1},
			Reason:   fmt.Sprintf("processing ID not accepted here (accepted: %s)", strings.Join(in.cfg.ProcessingIDs, ", ")),
		}}
	}
	if slices.Contains(in.cfg.RejectTypes, strings.ToUpper(h.MessageType)) {
		return []*hl7.Error{{
			Code: hl7.UnsupportedMessageType, Severity: hl7.SeverityError,
			Location: hl7.Location{Segment: "MSH", Field: 9, Component: 1},
			Reason:   "message type not supported by this listener: queries need an application response",
		}}
	}
	return nil
}

// buildAck returns the ACK for outcome, or nothing when the sender's
// acknowledgement mode asks for none.
func (in *Ingester) buildAck(h hl7.Header, o hl7.Outcome, id uuid.UUID, now time.Time, details []hl7.ErrorDetail) (string, []byte) {
	code, send := hl7.AckFor(in.ackHeader(h), o)
	if !send {
		return "", nil
	}
	ack, err := hl7.BuildACK(h, hl7.ACK{Code: code, ControlID: ackControlID(id), Time: now, Errors: details})
	if err != nil {
		// BuildACK fails only for an inbound ACK, which prepare filtered out.
		in.cfg.Logger.Error("build ACK", "err", err, "message_id", id)
		return "", nil
	}
	return string(code), ack
}

// ackHeader applies AckModeOriginal: without MSH-15/16 the decision is
// original mode.
func (in *Ingester) ackHeader(h hl7.Header) hl7.Header {
	if in.cfg.AckMode == AckModeOriginal {
		h.AcceptAckType, h.AppAckType = "", ""
	}
	return h
}

// ackControlID is the MSH-10 of our ACK: the first 20 hex digits of the
// stored message's UUIDv7 (48-bit milliseconds, version, a 12-bit sequence
// and 16 random bits), unique per listener and traceable to the row; 20
// characters is MSH-10's length limit before v2.7.
func ackControlID(id uuid.UUID) string {
	return strings.ToUpper(strings.ReplaceAll(id.String(), "-", ""))[:20]
}

func isAck(messageType string) bool {
	// MCF was the v2.1 name of the general acknowledgement.
	return strings.EqualFold(messageType, "ACK") || strings.EqualFold(messageType, "MCF")
}

func storeHeader(h hl7.Header) store.Header {
	cs := ""
	if len(h.CharacterSets) > 0 {
		cs = h.CharacterSets[0]
	}
	return store.Header{
		SendingApplication:   h.SendingApplication.String(),
		SendingFacility:      h.SendingFacility.String(),
		ReceivingApplication: h.ReceivingApplication.String(),
		ReceivingFacility:    h.ReceivingFacility.String(),
		MessageType:          h.MessageType,
		TriggerEvent:         h.TriggerEvent,
		MessageStructure:     h.MessageStructure,
		ControlID:            h.ControlID,
		ProcessingID:         h.ProcessingID,
		Version:              h.Version,
		CharacterSet:         cs,
	}
}

// patientKey names the patient a message is about, for per-patient order:
// the primary identifier (first PID-3 repetition) qualified by its issuer.
// Empty when the message names no patient.
func patientKey(m *hl7.Message, h hl7.Header) string {
	id, ok := patient.Primary(m)
	if !ok {
		return ""
	}
	return id.Key(h.SendingFacility.String())
}
