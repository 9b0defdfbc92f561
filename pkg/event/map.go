package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/aortahealth/aorta/pkg/clinical"
	"github.com/aortahealth/aorta/pkg/hl7"
)

// Mapping names, as written in a route's mappings list.
const (
	// MappingADT maps ADT messages to patient.* events.
	MappingADT = "adt"
	// MappingObservations maps results (OBX under OBR, as in ORU^R01) to
	// observation.* events.
	MappingObservations = "observations"
)

// Mappings lists the mapping names Map understands, for the route
// registry and its lint.
func Mappings() []string { return []string{MappingADT, MappingObservations} }

// What to do with an observation whose value cannot be normalised, as
// written in a route's on_invalid.
const (
	// OnInvalidDeadLetter fails the whole message with an *InvalidError,
	// so that nothing of it is applied and an analyst sees it (default).
	OnInvalidDeadLetter = "dead_letter"
	// OnInvalidSkip drops the offending OBX with a Warning and maps the
	// rest of the message.
	OnInvalidSkip = "skip"
)

// OnInvalidPolicies lists the accepted on_invalid values.
func OnInvalidPolicies() []string { return []string{OnInvalidDeadLetter, OnInvalidSkip} }

// Message is a stored message ready to be mapped.
type Message struct {
	ID         uuid.UUID // the stored message's ID; event IDs derive from it
	ReceivedAt time.Time // arrival time: recorded, never used as clinical time
	Parsed     *hl7.Message
	Header     hl7.Header // Parsed.Header(), as the caller already has it
}

// Options are a route's mapping settings.
type Options struct {
	Route    string   // route name; part of every event ID
	Mappings []string // MappingADT, MappingObservations
	// OnInvalid is OnInvalidDeadLetter (the default when empty) or
	// OnInvalidSkip.
	OnInvalid string
	// Preliminary maps OBX-11 = P (preliminary) as observation.recorded;
	// otherwise preliminary results produce no event.
	Preliminary bool
	// Parameters maps observation codes to clinical parameters; nil maps
	// every observation as an unmapped code.
	Parameters *clinical.Table
	// Location is the zone of HL7 times written without an offset; nil
	// means UTC.
	Location *time.Location
}

// ErrOptions reports options Map cannot work with: an unknown mapping or
// on_invalid value. It is a configuration error, not a message problem.
var ErrOptions = errors.New("event: invalid options")

// Validate checks the options the way Map does, for a route lint.
func (o Options) Validate() error {
	for _, m := range o.Mappings {
		if !slices.Contains(Mappings(), m) {
			return fmt.Errorf("%w: unknown mapping %q (known: %s)", ErrOptions, m, strings.Join(Mappings(), ", "))
		}
	}
	if o.OnInvalid != "" && !slices.Contains(OnInvalidPolicies(), o.OnInvalid) {
		return fmt.Errorf("%w: on_invalid %q (accepted: %s)", ErrOptions, o.OnInvalid, strings.Join(OnInvalidPolicies(), ", "))
	}
	return nil
}

// Result is what a message maps to.
type Result struct {
	Events   []Event // in message order
	Warnings []Warning
}

// Warning reports something Map left out or could not read without
// failing the message: an OBX skipped under on_invalid: skip, a result
// status that produces no event, an unreadable informational time.
type Warning struct {
	Location hl7.Location
	Reason   string // readable; never quotes patient data
}

func (w Warning) String() string {
	if l := w.Location.String(); l != "" {
		return l + ": " + w.Reason
	}
	return w.Reason
}

// InvalidError reports a message the route cannot map, which the router
// dead-letters: no patient identifier, an ADT trigger the adt mapping does
// not know, an unreadable clinical time, or (under on_invalid:
// dead_letter) an observation whose value cannot be normalised. Reason is
// readable by an analyst and never quotes patient data.
type InvalidError struct {
	Location hl7.Location
	Reason   string
}

func (e *InvalidError) Error() string {
	if l := e.Location.String(); l != "" {
		return "event: invalid message: " + l + ": " + e.Reason
	}
	return "event: invalid message: " + e.Reason
}

// Map turns a message into the events a route produces. It is pure: the
// result depends only on the message and the options (no clock, no I/O),
// so mapping a message twice yields the same events with the same IDs.
//
// A message that cannot be mapped returns an error wrapping an
// *InvalidError (errors.As) and no events: the router dead-letters it.
// Options the mapper cannot use return an error wrapping ErrOptions.
func Map(m Message, o Options) (Result, error) {
	if err := o.Validate(); err != nil {
		return Result{}, err
	}
	if m.Parsed == nil {
		return Result{}, fmt.Errorf("%w: message is not parsed", ErrOptions)
	}
	mp := newMapper(m, o)
	for _, name := range dedupe(o.Mappings) {
		var err error
		switch name {
		case MappingADT:
			err = mp.adt()
		case MappingObservations:
			err = mp.observations()
		}
		if err != nil {
			return Result{}, fmt.Errorf("map message for route %q: %w", o.Route, err)
		}
	}
	// Events in message order, whichever mapping produced them.
	slices.SortStableFunc(mp.events, func(a, b anchored) int { return a.pos - b.pos })
	res := Result{Warnings: mp.warnings}
	for _, a := range mp.events {
		res.Events = append(res.Events, a.ev)
	}
	return res, nil
}

func dedupe(names []string) []string {
	var out []string
	for _, n := range names {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// anchored is an event with the position of the segment it came from.
type anchored struct {
	pos int
	ev  Event
}

type mapper struct {
	msg     Message
	opt     Options
	loc     *time.Location
	segs    []*hl7.Segment
	ordinal []int // ordinal[i]: 1-based count of segs[i]'s name up to i
	source  string
	// fallbackAuthority qualifies identifiers that lack an assigning
	// authority, as pkg/patient and the listener do.
	fallbackAuthority string
	events            []anchored
	warnings          []Warning
}

func newMapper(m Message, o Options) *mapper {
	mp := &mapper{msg: m, opt: o, loc: o.Location}
	if mp.loc == nil {
		mp.loc = time.UTC
	}
	seen := map[string]int{}
	for s := range m.Parsed.Segments() {
		seen[s.Name()]++
		mp.segs = append(mp.segs, s)
		mp.ordinal = append(mp.ordinal, seen[s.Name()])
	}
	h := m.Header
	mp.source = h.SendingApplication.String() + "^" + h.SendingFacility.String()
	mp.fallbackAuthority = h.SendingFacility.String()
	return mp
}

// at returns the location of field f of the segment at position i.
func (mp *mapper) at(i, f int) hl7.Location {
	return hl7.Location{Segment: mp.segs[i].Name(), SegmentIndex: mp.ordinal[i], Field: f}
}

func (mp *mapper) has(mapping string) bool { return slices.Contains(mp.opt.Mappings, mapping) }

func (mp *mapper) warn(loc hl7.Location, reason string) {
	mp.warnings = append(mp.warnings, Warning{Location: loc, Reason: reason})
}

// emit adds an event anchored at segment position pos; key is unique
// within the message and route.
func (mp *mapper) emit(pos int, key string, ev Event, payload any) error {
	b, err := encodeJSON(payload)
	if err != nil {
		return err
	}
	ev.ID = NewID(mp.msg.ID, mp.opt.Route, key)
	ev.MessageID = mp.msg.ID
	ev.Source = mp.source
	ev.Route = mp.opt.Route
	ev.SchemaVersion = SchemaVersion
	ev.OccurredAt = ev.OccurredAt.UTC()
	ev.Payload = b
	withoutNUL(&ev)
	mp.events = append(mp.events, anchored{pos: pos, ev: ev})
	return nil
}

// withoutNUL replaces NUL characters, which a message can carry (a raw
// 0x00 byte, or the escape \X00\), by U+FFFD in every string the store
// writes: PostgreSQL text columns reject NUL and jsonb rejects \u0000, so
// one such value would fail the insert on every retry instead of being
// stored.
func withoutNUL(ev *Event) {
	for _, s := range []*string{&ev.PatientID, &ev.PatientKey, &ev.EncounterID, &ev.Source, &ev.Route} {
		*s = noNUL(*s)
	}
	if o := ev.Observation; o != nil {
		for _, s := range []*string{&o.Code.System, &o.Code.Code, &o.ValueText, &o.Unit, &o.Status} {
			*s = noNUL(*s)
		}
	}
	if m := ev.Merge; m != nil {
		for _, s := range []*string{&m.PriorKey, &m.PriorID, &m.SurvivingKey, &m.SurvivingID} {
			*s = noNUL(*s)
		}
	}
	if v := ev.Visit; v != nil {
		for _, s := range []*string{&v.Class, &v.EncounterID,
			&v.Location.PointOfCare, &v.Location.Room, &v.Location.Bed, &v.Location.Facility,
			&v.PriorLocation.PointOfCare, &v.PriorLocation.Room, &v.PriorLocation.Bed, &v.PriorLocation.Facility} {
			*s = noNUL(*s)
		}
	}
	ev.Payload = jsonWithoutNUL(ev.Payload)
}

func noNUL(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// jsonWithoutNUL rewrites the escape \u0000 in encoded JSON as \ufffd.
// It reads escapes pairwise, so an escaped backslash followed by "u0000"
// (the text \u0000 in a value) is left alone.
func jsonWithoutNUL(b []byte) []byte {
	if !bytes.Contains(b, []byte(`\u0000`)) {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			out = append(out, b[i])
			continue
		}
		if b[i+1] == 'u' && i+6 <= len(b) && string(b[i+2:i+6]) == "0000" {
			out = append(out, `\ufffd`...)
			i += 5
			continue
		}
		out = append(out, b[i], b[i+1])
		i++
	}
	return out
}

// encodeJSON marshals without HTML escaping ("<5" stays readable) and
// without the encoder's trailing newline.
func encodeJSON(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode payload: %w", err)
	}
	return json.RawMessage(bytes.TrimRight(buf.Bytes(), "\n")), nil
}

// readTime parses an HL7 time in the route's zone.
func (mp *mapper) readTime(s string) (time.Time, error) {
	return hl7.ParseTimeIn(strings.TrimSpace(s), mp.loc)
}

// timeText formats a time for payloads: RFC 3339 in UTC.
func timeText(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// safeCode returns a short table code (message type, trigger, status) for
// an error text, or a neutral word when the field holds something else:
// reasons must never carry free text from the message.
func safeCode(s string) string {
	if s == "" {
		return "(empty)"
	}
	if len(s) > 10 {
		return "(unrecognised)"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return "(unrecognised)"
		}
	}
	return s
}

// opt returns nil for an absent value and for HL7's explicit null "",
// so that payloads carry JSON null for both.
func opt(s string) *string {
	if s == "" || s == `""` {
		return nil
	}
	return &s
}

// leaf reads a component or subcomponent as text: its first subcomponent,
// decoded, so that a composite written where text is expected (a
// namespace with its universal ID, "HOSP&1.2.3&ISO") yields its first part.
func leaf(e hl7.Element) string { return e.Subcomponent(1).String() }
