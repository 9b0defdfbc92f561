package hl7

import (
	"strings"
	"sync/atomic"
)

// Segment is one segment of a message.
type Segment struct {
	m    *Message
	text string // encoded segment without terminator
	// seps holds the positions of the field separators in text. It is
	// built the first time a field is read; being atomic, concurrent
	// readers may race to build it without harm.
	seps    atomic.Pointer[[]int]
	off     int   // byte offset in the input; -1 for segments added by Set
	nameLen int32 // the name is text[:nameLen]; no string of its own to allocate
	// header is true for MSH, FHS and BHS, whose field 1 is the field
	// separator itself, so field n sits at split index n-1.
	header bool
	dirty  bool // changed by Set since parsing
}

// initSegment fills s in place (a Segment holds an atomic and must not be
// copied).
func (m *Message) initSegment(s *Segment, text string, off int) {
	n := len(text)
	if i := strings.IndexByte(text, m.delims.Field); i >= 0 {
		n = i
	}
	name := text[:n]
	s.m, s.text, s.off, s.nameLen = m, text, off, int32(n)
	s.header = (name == "MSH" || name == "FHS" || name == "BHS") && len(text) > 3
}

// setText replaces the segment's encoded text after a change.
func (s *Segment) setText(text string) {
	s.text = text
	s.dirty = true
	s.seps.Store(nil)
}

// Name returns the segment ID, such as "PID" or "ZPI".
func (s *Segment) Name() string { return s.text[:s.nameLen] }

// Offset returns the byte offset of the segment in the input given to
// Parse or SplitBatch, or -1 for a segment added by Set.
func (s *Segment) Offset() int { return s.off }

// Raw returns the segment's bytes without its terminator: for a segment
// read from input and not modified since, the exact input bytes.
func (s *Segment) Raw() []byte {
	if !s.dirty && s.off >= 0 && s.off+len(s.text) <= len(s.m.raw) {
		return s.m.raw[s.off : s.off+len(s.text) : s.off+len(s.text)]
	}
	return []byte(s.text)
}

func (s *Segment) index() []int {
	if p := s.seps.Load(); p != nil {
		return *p
	}
	fs := s.m.delims.Field
	seps := make([]int, 0, strings.Count(s.text, string(fs)))
	for i := 0; ; {
		j := strings.IndexByte(s.text[i:], fs)
		if j < 0 {
			break
		}
		seps = append(seps, i+j)
		i += j + 1
	}
	s.seps.Store(&seps)
	return seps
}

// span returns the bounds of the k-th piece of the segment split on the
// field separator (piece 0 is the segment name).
func (s *Segment) span(k int) (start, end int, ok bool) {
	seps := s.index()
	if k < 0 || k > len(seps) {
		return 0, 0, false
	}
	if k > 0 {
		start = seps[k-1] + 1
	}
	end = len(s.text)
	if k < len(seps) {
		end = seps[k]
	}
	return start, end, true
}

// splitIndex maps an HL7 field number to a piece index.
func (s *Segment) splitIndex(n int) int {
	if s.header {
		return n - 1
	}
	return n
}

// fieldOffset returns the byte offset of field n in the input, or of the
// end of the segment when the field is absent.
func (s *Segment) fieldOffset(n int) int {
	if s.off < 0 {
		return -1
	}
	if s.header && n == 1 {
		return s.off + 3
	}
	if start, _, ok := s.span(s.splitIndex(n)); ok {
		return s.off + start
	}
	return s.off + len(s.text)
}

// NumFields returns the number of the last field present, counting MSH-1
// for header segments; an empty segment such as "PD1" has none.
func (s *Segment) NumFields() int {
	n := len(s.index())
	if s.header {
		return n + 1
	}
	return n
}

// Field returns field n (1-based, HL7 numbering). For MSH, FHS and BHS,
// field 1 is the field separator and field 2 the encoding characters, both
// returned as written and never split or unescaped.
func (s *Segment) Field(n int) Element {
	if s == nil || n < 1 {
		return Element{}
	}
	if s.header {
		switch n {
		case 1:
			return Element{m: s.m, s: s.text[3:4], lv: lvAtomic}
		case 2:
			start, end, _ := s.span(1)
			return Element{m: s.m, s: s.text[start:end], lv: lvAtomic}
		}
	}
	start, end, ok := s.span(s.splitIndex(n))
	if !ok {
		return Element{m: s.m, lv: lvField}
	}
	return Element{m: s.m, s: s.text[start:end], lv: lvField}
}

// Get returns the decoded value at a location relative to this segment,
// such as "5.1" or "3[2].1"; a full location such as "PID-5.1" is accepted
// when it names this segment.
func (s *Segment) Get(loc string) (string, error) {
	var l Location
	var err error
	if loc != "" && loc[0] >= '0' && loc[0] <= '9' {
		l, err = parseRelative(loc)
	} else {
		l, err = ParseLocation(loc)
		if err == nil && l.Segment != s.Name() {
			return "", locationError(loc, "names another segment")
		}
	}
	if err != nil {
		return "", err
	}
	return s.Value(l), nil
}

// Value returns the decoded value at loc within this segment; the segment
// part of loc is ignored.
func (s *Segment) Value(loc Location) string {
	if loc.Field == 0 {
		return s.m.cs.decode(s.text)
	}
	return s.element(loc).String()
}

func (s *Segment) element(loc Location) Element {
	e := s.Field(loc.Field)
	if loc.Repetition > 0 {
		e = e.Repetition(loc.Repetition)
	}
	if loc.Component > 0 {
		e = e.Component(loc.Component)
	}
	if loc.Subcomponent > 0 {
		e = e.Subcomponent(loc.Subcomponent)
	}
	return e
}

type level uint8

const (
	lvField level = iota
	lvRepetition
	lvComponent
	lvSubcomponent
	lvAtomic // MSH-1 and MSH-2: never split, never unescaped
)

// Element is a field, a repetition, a component or a subcomponent. Asking
// an element for a finer part than it has is always safe: component 1 of a
// plain value is the value itself, any other component is empty.
type Element struct {
	m  *Message
	s  string
	lv level
}

// Encoded returns the element exactly as written in the message: delimiters
// and escape sequences kept, bytes in the message's character set.
func (e Element) Encoded() string { return e.s }

// IsEmpty reports whether the element is absent or empty.
func (e Element) IsEmpty() bool { return e.s == "" }

// IsNull reports whether the element is HL7's explicit null, "" (two
// double quotes), which tells the receiver to delete the stored value.
func (e Element) IsNull() bool { return e.s == `""` }

// String returns the value as text: valid UTF-8 whatever the message
// character set. A simple value (one with no separators left below its
// level) has its escape sequences decoded. A composite value, such as the
// whole of "MSH-9", is returned in its encoded form ("ORU^R01"), because
// decoding it would make an escaped separator indistinguishable from a
// real one.
func (e Element) String() string {
	if e.m == nil || e.s == "" {
		return ""
	}
	if e.lv == lvAtomic || e.composite() {
		return e.m.cs.decode(e.s)
	}
	return e.m.cs.decode(unescape(e.s, &e.m.delims))
}

func (e Element) composite() bool {
	d := &e.m.delims
	var a, b, c byte
	switch e.lv {
	case lvField:
		a, b, c = d.Repetition, d.Component, d.Subcomponent
	case lvRepetition:
		a, b = d.Component, d.Subcomponent
	case lvComponent:
		a = d.Subcomponent
	default:
		return false
	}
	for i := 0; i < len(e.s); i++ {
		if x := e.s[i]; x != 0 && (x == a || x == b || x == c) {
			return true
		}
	}
	return false
}

// Repetition returns the n-th (1-based) repetition of a field; for any
// finer element, repetition 1 is the element itself.
func (e Element) Repetition(n int) Element {
	if e.m == nil {
		return Element{}
	}
	if e.lv == lvField {
		return Element{m: e.m, s: piece(e.s, e.m.delims.Repetition, n), lv: lvRepetition}
	}
	return e.self(n)
}

// Component returns the n-th (1-based) component; for a field with
// repetitions, of the first repetition.
func (e Element) Component(n int) Element {
	if e.m == nil {
		return Element{}
	}
	switch e.lv {
	case lvField:
		return e.Repetition(1).Component(n)
	case lvRepetition:
		return Element{m: e.m, s: piece(e.s, e.m.delims.Component, n), lv: lvComponent}
	}
	return e.self(n)
}

// Subcomponent returns the n-th (1-based) subcomponent; for a field or a
// repetition, of its first component.
func (e Element) Subcomponent(n int) Element {
	if e.m == nil {
		return Element{}
	}
	switch e.lv {
	case lvField, lvRepetition:
		return e.Component(1).Subcomponent(n)
	case lvComponent:
		return Element{m: e.m, s: piece(e.s, e.m.delims.Subcomponent, n), lv: lvSubcomponent}
	}
	return e.self(n)
}

func (e Element) self(n int) Element {
	if n == 1 {
		return e
	}
	return Element{m: e.m, lv: e.lv}
}

// Repetitions returns every repetition of a field; an empty field has none.
func (e Element) Repetitions() []Element {
	if e.m == nil || e.s == "" {
		return nil
	}
	if e.lv != lvField {
		return []Element{e}
	}
	return e.pieces(e.m.delims.Repetition, lvRepetition)
}

// Components returns the components of a repetition (of the first
// repetition, for a field); an empty element has none.
func (e Element) Components() []Element {
	if e.m == nil || e.s == "" {
		return nil
	}
	switch e.lv {
	case lvField:
		return e.Repetition(1).Components()
	case lvRepetition:
		return e.pieces(e.m.delims.Component, lvComponent)
	}
	return []Element{e}
}

// Subcomponents returns the subcomponents of a component (of the first
// component, for a field or repetition); an empty element has none.
func (e Element) Subcomponents() []Element {
	if e.m == nil || e.s == "" {
		return nil
	}
	switch e.lv {
	case lvField, lvRepetition:
		return e.Component(1).Subcomponents()
	case lvComponent:
		return e.pieces(e.m.delims.Subcomponent, lvSubcomponent)
	}
	return []Element{e}
}

func (e Element) pieces(sep byte, lv level) []Element {
	if sep == 0 {
		return []Element{{m: e.m, s: e.s, lv: lv}}
	}
	out := make([]Element, 0, strings.Count(e.s, string(sep))+1)
	for s := e.s; ; {
		i := strings.IndexByte(s, sep)
		if i < 0 {
			out = append(out, Element{m: e.m, s: s, lv: lv})
			return out
		}
		out = append(out, Element{m: e.m, s: s[:i], lv: lv})
		s = s[i+1:]
	}
}

// piece returns the n-th (1-based) part of s split on sep. A zero sep means
// the delimiter does not exist in this message, so s is one piece.
func piece(s string, sep byte, n int) string {
	if n < 1 {
		return ""
	}
	if sep == 0 {
		if n == 1 {
			return s
		}
		return ""
	}
	for ; n > 1; n-- {
		i := strings.IndexByte(s, sep)
		if i < 0 {
			return ""
		}
		s = s[i+1:]
	}
	if i := strings.IndexByte(s, sep); i >= 0 {
		return s[:i]
	}
	return s
}
