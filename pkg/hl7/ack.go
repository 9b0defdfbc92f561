package hl7

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// AckCode is the acknowledgment code of MSA-1 (HL7 table 0008).
type AckCode string

// Original-mode (AA, AE, AR) and enhanced-mode commit (CA, CE, CR) codes.
const (
	AA AckCode = "AA" // application accept
	AE AckCode = "AE" // application error
	AR AckCode = "AR" // application reject
	CA AckCode = "CA" // commit accept
	CE AckCode = "CE" // commit error
	CR AckCode = "CR" // commit reject
)

// Outcome is what the receiver did with a message.
type Outcome int

const (
	// Accepted: the message was stored.
	Accepted Outcome = iota
	// Errored: the message was understood but could not be processed,
	// for example because storage failed.
	Errored
	// Rejected: the message is unacceptable (bad header, unsupported
	// type or version) and resending it will not help.
	Rejected
)

// AckFor decides which acknowledgment to send for an outcome.
//
// In original mode (MSH-15 and MSH-16 both empty) the answer is AA, AE or
// AR and it is always sent.
//
// In enhanced mode (either field valued) an empty MSH-15 counts as AL and
// an empty MSH-16 as NE. A condition is met for AL always, NE never, ER
// only when the outcome is not Accepted and SU only when it is Accepted;
// an unknown value counts as AL, since an unwanted ACK is cheaper than a
// sender waiting forever. If the MSH-16 (application ACK) condition is met,
// AA, AE or AR is sent: one ACK, not a commit ACK followed by an
// application ACK, because a receiver that stores and commits in one step
// has nothing to add in a second one. Otherwise, if the MSH-15 (accept ACK)
// condition is met, CA, CE or CR is sent. Otherwise nothing is sent, so
// NE/NE gets no answer, AL/NE a CA and NE/AL an AA.
func AckFor(h Header, o Outcome) (code AckCode, send bool) {
	accept, app := normAckType(h.AcceptAckType), normAckType(h.AppAckType)
	if accept == "" && app == "" {
		return pick(o, AA, AE, AR), true
	}
	if accept == "" {
		accept = "AL"
	}
	if app == "" {
		app = "NE"
	}
	if ackConditionMet(app, o) {
		return pick(o, AA, AE, AR), true
	}
	if ackConditionMet(accept, o) {
		return pick(o, CA, CE, CR), true
	}
	return "", false
}

func normAckType(s string) string { return strings.ToUpper(strings.TrimSpace(s)) }

func ackConditionMet(cond string, o Outcome) bool {
	switch cond {
	case "NE":
		return false
	case "ER":
		return o != Accepted
	case "SU":
		return o == Accepted
	}
	return true // AL, or a value outside table 0155
}

func pick(o Outcome, accepted, errored, rejected AckCode) AckCode {
	switch o {
	case Accepted:
		return accepted
	case Errored:
		return errored
	}
	return rejected
}

// ACK describes an acknowledgment to build with BuildACK.
type ACK struct {
	Code      AckCode
	ControlID string    // MSH-10 of the ACK itself; required
	Time      time.Time // MSH-7; the current time when zero
	Text      string    // MSA-3, optional
	Errors    []ErrorDetail
}

// ErrorDetail becomes one ERR segment.
type ErrorDetail struct {
	Location Location
	Code     ErrorCode
	Severity Severity // SeverityError when empty
	// Text is a diagnostic for the sender's support staff. It must not
	// contain patient data: ACKs are logged on both sides.
	Text string
}

// ErrACKToACK is returned by BuildACK for an inbound ACK: acknowledging an
// acknowledgment would let two engines answer each other forever.
var ErrACKToACK = errors.New("hl7: refusing to acknowledge an ACK")

// BuildACK builds the acknowledgment for the message whose header is in,
// with CR-terminated segments.
//
// The ACK is written with the inbound delimiters, MSH-2 echoed as received
// (three, four or five characters), unless they were invalid, in which
// case the standard |^~\& is used. Sending and receiving application and
// facility are swapped byte for byte; MSH-11, MSH-12 and MSH-18 are echoed
// (P and 2.5 when the inbound left them empty; MSH-18 is left out when it
// named a character set we could not read, since our text would not be in
// it). MSH-9 is ACK^<trigger>^ACK from v2.3.1 on, ACK^<trigger> before,
// and plain ACK when the inbound had no trigger event. An inbound message
// in enhanced mode gets NE/NE in MSH-15/16: an ACK must not ask for an ACK.
//
// MSA-2 echoes the inbound MSH-10 (empty when unknown). Each ErrorDetail
// becomes an ERR segment: ERR-2 location, ERR-3 code^text^HL70357, ERR-4
// severity and ERR-8 the text from v2.5 on (or when the version is
// unknown); ERR-1 as segment^sequence^field^code&text&HL70357 before v2.5.
func BuildACK(in Header, a ACK) ([]byte, error) {
	if strings.EqualFold(strings.TrimSpace(in.MessageType), "ACK") {
		return nil, ErrACKToACK
	}
	if a.ControlID == "" {
		return nil, errors.New("hl7: build ack: control id is empty")
	}
	if a.Code == "" {
		return nil, errors.New("hl7: build ack: acknowledgment code is empty")
	}
	w := ackWriter{d: StandardDelimiters, enc: StandardDelimiters.EncodingCharacters(), cs: autoCharset}
	echo := in.delimsValid && in.Delimiters.valid()
	if echo {
		w.d, w.enc = in.Delimiters, in.rawEncoding
	}
	charsetOK := true
	if len(in.CharacterSets) > 0 {
		cs, ok := lookupCharset(in.CharacterSets[0])
		if ok {
			w.cs = cs
		}
		charsetOK = ok
	}

	// raw echoes an inbound field when its encoding can be trusted and
	// otherwise re-encodes the decoded components with our delimiters.
	raw := func(encoded string, decoded ...string) string {
		if echo {
			return encoded
		}
		return w.components(decoded...)
	}
	hd := func(h HD, encoded string) string {
		return raw(encoded, h.NamespaceID, h.UniversalID, h.UniversalIDType)
	}

	ts := a.Time
	if ts.IsZero() {
		ts = time.Now()
	}
	version := in.Version
	msgType := "ACK"
	if in.TriggerEvent != "" {
		if versionAtLeast(version, 2, 3, 1) {
			msgType = w.components("ACK", in.TriggerEvent, "ACK")
		} else {
			msgType = w.components("ACK", in.TriggerEvent)
		}
	}
	processing := raw(in.rawProcessing, in.ProcessingID, in.ProcessingMode)
	if in.ProcessingID == "" && in.ProcessingMode == "" {
		processing = "P"
	}
	versionField := raw(in.rawVersion, in.Version)
	if in.Version == "" {
		versionField, version = w.text("2.5"), "2.5" // escaped if '.' is a delimiter
	}
	var accept, app string
	if in.AcceptAckType != "" || in.AppAckType != "" {
		accept, app = "NE", "NE"
	}
	var charsets string
	if charsetOK && len(in.CharacterSets) > 0 {
		charsets = raw(in.rawCharsets, in.CharacterSets[0])
	}

	w.segment("MSH", w.enc,
		hd(in.ReceivingApplication, in.rawRecvApp), hd(in.ReceivingFacility, in.rawRecvFac),
		hd(in.SendingApplication, in.rawSendApp), hd(in.SendingFacility, in.rawSendFac),
		formatACKTime(ts, &w.d), "", msgType, w.text(a.ControlID), processing, versionField,
		"", "", accept, app, "", charsets)
	controlID := w.text(in.ControlID)
	if echo {
		controlID = in.rawControlID
	}
	w.segment("MSA", w.text(string(a.Code)), controlID, w.text(a.Text))
	modern := versionAtLeast(version, 2, 5)
	for _, e := range a.Errors {
		w.errSegment(e, modern)
	}
	return []byte(w.b.String()), nil
}

type ackWriter struct {
	b   strings.Builder
	d   Delimiters
	enc string // MSH-2
	cs  *charset
}

// text encodes a plain value in the ACK's character set and escapes it;
// characters the set cannot hold become '?', which is acceptable for
// diagnostics. Escaping comes second because that '?' may be a delimiter.
func (w *ackWriter) text(s string) string {
	v, _ := w.cs.encode(s, true)
	return escape(v, &w.d)
}

func (w *ackWriter) join(sep byte, parts []string) string {
	for len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	return strings.Join(parts, string(sep))
}

func (w *ackWriter) components(parts ...string) string {
	enc := make([]string, len(parts))
	for i, p := range parts {
		enc[i] = w.text(p)
	}
	return w.join(w.d.Component, enc)
}

// segment writes a segment from already encoded fields. For MSH the first
// field is MSH-2, so the separator between the name and it is MSH-1.
func (w *ackWriter) segment(name string, fields ...string) {
	w.b.WriteString(name)
	if f := w.join(w.d.Field, fields); f != "" || name == "MSH" {
		w.b.WriteByte(w.d.Field)
		w.b.WriteString(f)
	}
	w.b.WriteByte('\r')
}

func (w *ackWriter) errSegment(e ErrorDetail, modern bool) {
	sev := e.Severity
	if sev == "" {
		sev = SeverityError
	}
	l := e.Location
	num := func(n int) string {
		if n <= 0 {
			return ""
		}
		return strconv.Itoa(n)
	}
	seq, rep := "", ""
	if l.Segment != "" {
		seq = strconv.Itoa(max(l.SegmentIndex, 1))
	}
	if l.Field > 0 {
		rep = strconv.Itoa(max(l.Repetition, 1))
	}
	code := strconv.Itoa(int(e.Code))
	if modern {
		erl := w.join(w.d.Component, []string{w.text(l.Segment), seq, num(l.Field), rep, num(l.Component), num(l.Subcomponent)})
		cwe := w.components(code, e.Code.String(), "HL70357")
		w.segment("ERR", "", erl, cwe, w.text(string(sev)), "", "", "", w.text(e.Text))
		return
	}
	text := e.Text
	if text == "" {
		text = e.Code.String()
	}
	ce := code
	if w.d.Subcomponent != 0 {
		// The coded element sits in a component, so its parts are
		// subcomponents. Without a subcomponent separator (three encoding
		// characters) only the code can be written.
		ce = w.join(w.d.Subcomponent, []string{code, w.text(text), "HL70357"})
	}
	eld := w.join(w.d.Component, []string{w.text(l.Segment), seq, num(l.Field), ce})
	w.segment("ERR", eld)
}

// formatACKTime writes an HL7 DTM with seconds, a four-digit fraction when
// the time has one, and the zone offset. A part whose punctuation is one of
// the delimiters (a sender may choose '.', '+' or '-') is left out rather
// than escaped, since receivers read timestamps without unescaping: the
// fraction for '.', the offset for its sign, which leaves local time.
func formatACKTime(t time.Time, d *Delimiters) string {
	s := t.Format("20060102150405")
	if ns := t.Nanosecond(); ns >= 100_000 && !d.structural('.') {
		frac := strconv.Itoa(10000 + ns/100_000)
		s += "." + frac[1:]
	}
	if zone := t.Format("-0700"); !d.structural(zone[0]) {
		s += zone
	}
	return s
}

// versionAtLeast compares a dotted version with a minimum. An empty or
// unreadable version counts as new, because the ACK then says 2.5.
func versionAtLeast(v string, min ...int) bool {
	parts, ok := versionParts(v)
	if !ok {
		return true
	}
	for i, m := range min {
		p := 0
		if i < len(parts) {
			p = parts[i]
		}
		if p != m {
			return p > m
		}
	}
	return true
}
