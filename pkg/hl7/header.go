package hl7

import (
	"bytes"
)

// HD is HL7's hierarchic designator, used for applications and
// facilities in MSH-3 to MSH-6.
type HD struct {
	NamespaceID     string
	UniversalID     string
	UniversalIDType string
}

// String returns the namespace ID, or the universal ID when there is no
// namespace ID.
func (h HD) String() string {
	if h.NamespaceID != "" {
		return h.NamespaceID
	}
	return h.UniversalID
}

// Header holds the decoded MSH fields a receiver needs to route and
// acknowledge a message.
type Header struct {
	Delimiters           Delimiters
	SendingApplication   HD       // MSH-3
	SendingFacility      HD       // MSH-4
	ReceivingApplication HD       // MSH-5
	ReceivingFacility    HD       // MSH-6
	DateTime             string   // MSH-7.1 as written, e.g. "20240102030405+0100"
	MessageType          string   // MSH-9.1
	TriggerEvent         string   // MSH-9.2
	MessageStructure     string   // MSH-9.3
	ControlID            string   // MSH-10 (see Element.String if it has components)
	ProcessingID         string   // MSH-11.1
	ProcessingMode       string   // MSH-11.2
	Version              string   // MSH-12.1, e.g. "2.5" from "2.5^^"
	AcceptAckType        string   // MSH-15
	AppAckType           string   // MSH-16
	CharacterSets        []string // MSH-18, every repetition; the first governs decoding

	// Encoded copies, so the ACK builder can echo and swap fields byte for
	// byte with their components intact.
	rawEncoding   string // MSH-2
	rawSendApp    string
	rawSendFac    string
	rawRecvApp    string
	rawRecvFac    string
	rawControlID  string
	rawProcessing string
	rawVersion    string
	rawCharsets   string
	// delimsValid is false when the header was recovered from a message
	// whose MSH-2 was unusable; its raw copies then use guessed delimiters.
	delimsValid bool
	// offsets of MSH-9..MSH-12 in the input, for Check.
	offsets [4]int
}

// Header returns the decoded MSH of the message.
func (m *Message) Header() Header {
	return headerFrom(m.segs[0], true)
}

func headerFrom(msh *Segment, delimsValid bool) Header {
	hd := func(n int) (HD, string) {
		f := msh.Field(n)
		return HD{
			NamespaceID:     f.Component(1).String(),
			UniversalID:     f.Component(2).String(),
			UniversalIDType: f.Component(3).String(),
		}, f.Encoded()
	}
	h := Header{Delimiters: msh.m.delims, delimsValid: delimsValid}
	h.rawEncoding = msh.Field(2).Encoded()
	h.SendingApplication, h.rawSendApp = hd(3)
	h.SendingFacility, h.rawSendFac = hd(4)
	h.ReceivingApplication, h.rawRecvApp = hd(5)
	h.ReceivingFacility, h.rawRecvFac = hd(6)
	h.DateTime = msh.Field(7).Component(1).String()
	typ := msh.Field(9)
	h.MessageType = typ.Component(1).String()
	h.TriggerEvent = typ.Component(2).String()
	h.MessageStructure = typ.Component(3).String()
	ctl := msh.Field(10)
	h.ControlID, h.rawControlID = ctl.String(), ctl.Encoded()
	pid := msh.Field(11)
	h.ProcessingID = pid.Component(1).String()
	h.ProcessingMode = pid.Component(2).String()
	h.rawProcessing = pid.Encoded()
	ver := msh.Field(12)
	h.Version = ver.Component(1).String()
	h.rawVersion = ver.Encoded()
	h.AcceptAckType = msh.Field(15).Component(1).String()
	h.AppAckType = msh.Field(16).Component(1).String()
	cs := msh.Field(18)
	h.rawCharsets = cs.Encoded()
	for _, r := range cs.Repetitions() {
		h.CharacterSets = append(h.CharacterSets, r.Component(1).String())
	}
	for i := range h.offsets {
		h.offsets[i] = msh.fieldOffset(9 + i)
	}
	return h
}

// ParseHeader reads the MSH of a message as well as it can, for building a
// reject ACK when Parse fails. It returns the same *Error Parse would, but
// still fills every header field it can read: it skips leading segments to
// find MSH, takes the byte after "MSH" as the field separator even when
// MSH-2 is invalid (falling back to the standard encoding characters), and
// reads text of an unsupported character set as if none were declared.
func ParseHeader(raw []byte) (Header, error) {
	m, perr := parse(raw)
	if perr == nil {
		return m.Header(), nil
	}
	return recoverHeader(raw), perr
}

func recoverHeader(raw []byte) Header {
	start := 0
	if bytes.HasPrefix(raw, bom) {
		start = len(bom)
	}
	sc := newLineScanner(raw, start)
	for {
		s, e, ok := sc.next()
		if !ok {
			return Header{}
		}
		line := raw[s:e]
		if len(line) < 4 || !bytes.HasPrefix(line, []byte("MSH")) {
			continue
		}
		fs := line[3]
		enc := line[4:]
		if i := bytes.IndexByte(enc, fs); i >= 0 {
			enc = enc[:i]
		}
		d, reason := parseEncoding(fs, string(enc))
		valid := reason == ""
		if !valid {
			d = fallbackDelimiters(fs)
		}
		m := &Message{raw: raw, text: string(raw[:e]), delims: d, cs: autoCharset}
		seg := &Segment{}
		m.initSegment(seg, m.text[s:e], s)
		m.segs = []*Segment{seg}
		// An unreadable MSH-18 leaves the automatic UTF-8/Windows-1252
		// decoding in place, which is the best guess left.
		_ = m.setCharset()
		return headerFrom(seg, valid)
	}
}

// Check reports the header fields a receiver needs but the message lacks,
// in field order: MSH-9.1 (message type), MSH-10 (control ID), MSH-11.1
// (processing ID) and MSH-12.1 (version) as RequiredFieldMissing, and a
// version that is not "2.x" as UnsupportedVersionID. Parse accepts such
// messages so that the caller decides whether to reject them.
func (h Header) Check() []*Error {
	var errs []*Error
	missing := func(field, comp int, v string) {
		if v == "" {
			loc := Location{Segment: "MSH", Field: field, Component: comp}
			errs = append(errs, newError(RequiredFieldMissing, loc, h.offset(field), "required field is empty"))
		}
	}
	missing(9, 1, h.MessageType)
	missing(10, 0, h.ControlID)
	missing(11, 1, h.ProcessingID)
	missing(12, 1, h.Version)
	if h.Version != "" && !isV2Version(h.Version) {
		errs = append(errs, newError(UnsupportedVersionID, Location{Segment: "MSH", Field: 12, Component: 1}, h.offset(12), "version is not an HL7 v2.x version"))
	}
	return errs
}

func (h Header) offset(field int) int {
	if field < 9 || field > 12 || h.offsets == [4]int{} {
		return -1
	}
	return h.offsets[field-9]
}

// isV2Version accepts "2.1" up to "2.9" and dotted refinements such as
// "2.3.1" or "2.5.1".
func isV2Version(v string) bool {
	parts, ok := versionParts(v)
	return ok && len(parts) >= 2 && parts[0] == 2
}

// versionParts splits a dotted version into numbers.
func versionParts(v string) ([]int, bool) {
	if v == "" {
		return nil, false
	}
	var parts []int
	n, digits := 0, 0
	for i := 0; i <= len(v); i++ {
		if i == len(v) || v[i] == '.' {
			if digits == 0 {
				return nil, false
			}
			parts = append(parts, n)
			n, digits = 0, 0
			continue
		}
		c := v[i]
		if c < '0' || c > '9' || digits >= 4 {
			return nil, false
		}
		n = n*10 + int(c-'0')
		digits++
	}
	return parts, true
}
