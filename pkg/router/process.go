package router

import (
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/aortahealth/aorta/pkg/event"
	"github.com/aortahealth/aorta/pkg/hl7"
	"github.com/aortahealth/aorta/pkg/patient"
	"github.com/aortahealth/aorta/pkg/route"
	"github.com/aortahealth/aorta/pkg/store"
)

// Process runs one stored message through the routes and returns what to
// write: the events of every matching route, or a dead letter when the
// message is invalid for a route (all or nothing: a message never writes
// half its events). It reads nothing but its arguments, so `router test`
// and the router share it.
//
// An error means processing itself failed (a bug, recovered from a
// panic): the message is retried and then dead-lettered.
func Process(routes *route.Config, w store.Work) (p store.Processed, err error) {
	p.Work = w
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("processing panicked: %v\n%s", v, debug.Stack())
		}
	}()
	msg, perr := hl7.Parse(w.Raw)
	if perr != nil {
		// The listener accepted it, so it parsed then; only a parser change
		// can get here, and retrying will not help.
		p.Status, p.Error = store.DeadLettered, "stored message no longer parses: "+perr.Error()
		return p, nil
	}
	matched := routes.Match(msg)
	if len(matched) == 0 {
		p.Status = store.Unrouted
		return p, nil
	}
	for _, rt := range matched {
		p.Routes = append(p.Routes, rt.Name)
	}
	header := msg.Header()
	for _, rt := range matched {
		loc := rt.Timezone
		if loc == nil {
			loc = routes.Timezone
		}
		res, merr := event.Map(event.Message{ID: w.MessageID, ReceivedAt: w.ReceivedAt, Parsed: msg, Header: header}, event.Options{
			Route:       rt.Name,
			Mappings:    rt.Events,
			OnInvalid:   string(rt.OnInvalid),
			Preliminary: rt.Preliminary,
			Parameters:  rt.Table,
			Location:    loc,
		})
		var invalid *event.InvalidError
		if errors.As(merr, &invalid) {
			p.Status, p.Error, p.ErrorRoute = store.DeadLettered, invalid.Error(), rt.Name
			p.Events, p.Warnings = nil, nil
			return p, nil
		}
		if merr != nil {
			p.ErrorRoute = rt.Name
			return p, fmt.Errorf("route %s: %w", rt.Name, merr)
		}
		for _, e := range res.Events {
			if reason := tooLong(e); reason != "" {
				p.Status, p.Error, p.ErrorRoute = store.DeadLettered, reason, rt.Name
				p.Events, p.Warnings = nil, nil
				return p, nil
			}
			p.Events = append(p.Events, eventRow(e))
		}
		for _, wn := range res.Warnings {
			p.Warnings = append(p.Warnings, store.Warning{Location: wn.Location.String(), Reason: wn.Reason})
		}
	}
	p.Status = store.Routed
	p.Facts = patientFacts(msg, header, routes.Timezone)
	return p, nil
}

// patientFacts reads what scoring and alerting need to know about the
// message's patient beyond its events: the date of birth (PID-7), which
// decides whether adult scores apply, and the location (PV1-3), which an
// alert carries to the rapid-response team.
func patientFacts(msg *hl7.Message, h hl7.Header, loc *time.Location) []store.PatientFacts {
	id, ok := patient.Primary(msg)
	if !ok {
		return nil
	}
	f := store.PatientFacts{PatientKey: id.Key(h.SendingFacility.String()), PatientID: id.ID}
	if pid := msg.Segment("PID", 1); pid != nil {
		if s := pid.Field(7).Component(1).String(); s != "" && s != `""` {
			if loc == nil {
				loc = time.UTC
			}
			if t, err := hl7.ParseTimeIn(s, loc); err == nil {
				f.BirthDate = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
			}
		}
	}
	if pv1 := msg.Segment("PV1", 1); pv1 != nil {
		f.Location = event.PlaceOf(pv1.Field(3).Repetition(1)).String()
	}
	return []store.PatientFacts{f}
}

// maxIdentifierLength bounds the identifiers the events table indexes. A
// longer one is not a real identifier (MSH-10 and CX.1 allow a few dozen
// characters) and would exceed PostgreSQL's index entry size, failing the
// insert on every retry; it is refused at once instead.
const maxIdentifierLength = 256

func tooLong(e event.Event) string {
	for _, f := range []struct{ name, v string }{
		{"patient identifier (PID-3)", e.PatientID}, {"patient key", e.PatientKey},
		{"visit number (PV1-19)", e.EncounterID}, {"source (MSH-3/MSH-4)", e.Source},
	} {
		if len(f.v) > maxIdentifierLength {
			return fmt.Sprintf("%s longer than %d bytes", f.name, maxIdentifierLength)
		}
	}
	return ""
}

// process is Process with the router's own bookkeeping.
func (r *Router) process(routes *route.Config, w store.Work) (store.Processed, error) {
	return Process(routes, w)
}

// eventRow converts a mapped event into the row and state changes the
// store writes.
func eventRow(e event.Event) store.EventRow {
	row := store.EventRow{
		ID: e.ID, Type: e.Type, OccurredAt: e.OccurredAt, MessageID: e.MessageID,
		PatientID: e.PatientID, PatientKey: e.PatientKey, EncounterID: e.EncounterID,
		Source: e.Source, Route: e.Route, SchemaVersion: e.SchemaVersion, Payload: e.Payload,
	}
	if o := e.Observation; o != nil {
		change := store.ObservationRecord
		switch e.Type {
		case event.ObservationCorrected:
			change = store.ObservationCorrect
		case event.ObservationRetracted:
			change = store.ObservationRetract
		}
		num, text := o.Numeric(), o.Text()
		if num != "" {
			text = "" // the exact value is in value_numeric
		}
		row.Observation = &store.ObservationRow{
			Change: change, Key: o.Key, Parameter: o.Parameter,
			CodeSystem: o.Code.System, Code: o.Code.Code,
			Numeric: num, Text: text, Unit: o.Unit,
			Status: o.Status, ObservedAt: o.ObservedAt,
		}
	}
	if s, ok := patientStatus[e.Type]; ok {
		row.Patient = &store.PatientRow{Status: s, Location: e.Location()}
	}
	if m := e.Merge; m != nil {
		row.Merge = &store.MergeRow{PriorKey: m.PriorKey, SurvivingKey: m.SurvivingKey}
	}
	return row
}

// patientStatus is the administrative status each ADT event leaves the
// patient in; "" keeps the current status (an update, a transfer).
var patientStatus = map[string]string{
	event.PatientAdmitted:           "admitted",
	event.PatientTransferred:        "",
	event.PatientDischarged:         "discharged",
	event.PatientRegistered:         "registered",
	event.PatientPreadmitted:        "preadmitted",
	event.PatientUpdated:            "",
	event.PatientAdmissionCancelled: "admission_cancelled",
	event.PatientTransferCancelled:  "",
	event.PatientDischargeCancelled: "admitted",
	event.PatientMerged:             "",
}
