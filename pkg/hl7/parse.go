package hl7

import (
	"bytes"
	"iter"
	"slices"
)

// bom is the UTF-8 byte-order mark. Some senders (and editors that saved
// sample files) put it before MSH; skipping it is a deliberate leniency,
// since it can only be an encoding artefact, never message content.
var bom = []byte{0xEF, 0xBB, 0xBF}

// Message is a parsed HL7 v2 message.
//
// Parsing only finds segment boundaries and reads the delimiters and the
// character set; fields are located the first time a segment is queried
// and values are decoded when asked for. Any number of goroutines may read
// a Message at once; Set needs exclusive access.
type Message struct {
	raw    []byte
	text   string // immutable copy of raw that segments slice into
	delims Delimiters
	cs     *charset
	segs   []*Segment
}

// Parse parses one HL7 v2 message. Segments may end with CR, LF or CRLF,
// blank lines are ignored and a leading UTF-8 byte-order mark is skipped.
//
// Parse fails with an *Error only when the message cannot be read at all:
// empty input, a first segment other than MSH, missing or invalid
// delimiters in MSH-1/MSH-2, or an unsupported character set in MSH-18.
// Missing header fields are left to Header.Check, so callers can choose
// their own policy and still acknowledge the message.
//
// Parse copies the input for its values, so reusing the input buffer
// cannot change them; Raw and Segment.Raw return the caller's own bytes and
// so reflect any later change to that buffer.
func Parse(raw []byte) (*Message, error) {
	m, err := parse(raw)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func parse(raw []byte) (*Message, *Error) {
	start := 0
	if bytes.HasPrefix(raw, bom) {
		start = len(bom)
	}
	sc := newLineScanner(raw, start)
	first, firstEnd, ok := sc.next()
	if !ok {
		return nil, newError(SegmentSequenceError, Location{}, start, "empty message")
	}
	if !bytes.HasPrefix(raw[first:firstEnd], []byte("MSH")) {
		return nil, newError(SegmentSequenceError, Location{Segment: "MSH"}, first, "first segment is not MSH")
	}
	d, perr := readDelimiters(raw[first:firstEnd], first)
	if perr != nil {
		return nil, perr
	}
	m := &Message{raw: raw, text: string(raw), delims: d, cs: autoCharset}
	// Every segment after the first ends at a CR or LF, so this bounds the
	// segment count. Sizing exactly once matters: regrowing a slice of
	// pointer-holding structs costs write barriers and GC work.
	block := make([]Segment, 0, bytes.Count(raw[firstEnd:], []byte{'\r'})+bytes.Count(raw[firstEnd:], []byte{'\n'})+1)
	for s, e := first, firstEnd; ; {
		block = block[:len(block)+1]
		m.initSegment(&block[len(block)-1], m.text[s:e], s)
		var ok bool
		if s, e, ok = sc.next(); !ok {
			break
		}
	}
	m.segs = make([]*Segment, len(block))
	for i := range block {
		m.segs[i] = &block[i]
	}
	if perr := m.setCharset(); perr != nil {
		return nil, perr
	}
	return m, nil
}

// readDelimiters validates MSH-1 and MSH-2 of the first segment.
func readDelimiters(msh []byte, off int) (Delimiters, *Error) {
	if len(msh) < 4 {
		return Delimiters{}, newError(RequiredFieldMissing, Location{Segment: "MSH", Field: 1}, off+len(msh), "MSH ends before the field separator")
	}
	fs := msh[3]
	if !delimiterByte(fs) {
		return Delimiters{}, newError(DataTypeError, Location{Segment: "MSH", Field: 1}, off+3, "field separator is not a printable ASCII punctuation character")
	}
	enc := msh[4:]
	if i := bytes.IndexByte(enc, fs); i >= 0 {
		enc = enc[:i]
	}
	if len(enc) == 0 {
		return Delimiters{}, newError(RequiredFieldMissing, Location{Segment: "MSH", Field: 2}, off+4, "encoding characters are missing")
	}
	d, reason := parseEncoding(fs, string(enc))
	if reason != "" {
		return Delimiters{}, newError(DataTypeError, Location{Segment: "MSH", Field: 2}, off+4, reason)
	}
	return d, nil
}

// setCharset selects the decoder named by the first repetition of MSH-18.
func (m *Message) setCharset() *Error {
	msh := m.segs[0]
	name := msh.Field(18).Repetition(1).Component(1).Encoded()
	cs, ok := lookupCharset(name)
	if !ok {
		return newError(TableValueNotFound, Location{Segment: "MSH", Field: 18}, msh.fieldOffset(18), "unsupported character set")
	}
	m.cs = cs
	return nil
}

// lineScanner yields the non-blank lines of b, splitting on CR and LF
// alike, so CR, LF, CRLF and mixtures all work. It remembers the next CR
// and the next LF separately: with a single IndexAny-style search an LF-only
// message would rescan to the end for every line.
type lineScanner struct {
	b              []byte
	pos            int
	nextCR, nextLF int
}

func newLineScanner(b []byte, pos int) lineScanner {
	return lineScanner{b: b, pos: pos, nextCR: -1, nextLF: -1}
}

func (l *lineScanner) next() (start, end int, ok bool) {
	for l.pos < len(l.b) {
		start = l.pos
		if l.nextCR < start {
			l.nextCR = indexFrom(l.b, '\r', start)
		}
		if l.nextLF < start {
			l.nextLF = indexFrom(l.b, '\n', start)
		}
		end = min(l.nextCR, l.nextLF)
		l.pos = end + 1
		if !blank(l.b[start:end]) {
			return start, end, true
		}
	}
	return 0, 0, false
}

func indexFrom(b []byte, c byte, from int) int {
	if i := bytes.IndexByte(b[from:], c); i >= 0 {
		return from + i
	}
	return len(b)
}

// blank reports whether a line holds only horizontal whitespace; such lines
// are padding between or after segments, never a segment.
func blank(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\v', '\f':
		default:
			return false
		}
	}
	return true
}

// Raw returns the bytes given to Parse, unmodified, including any
// byte-order mark and the original segment terminators. It is nil for a
// message built with NewMessage.
func (m *Message) Raw() []byte { return m.raw }

// Delimiters returns the message's delimiters.
func (m *Message) Delimiters() Delimiters { return m.delims }

// Segments iterates over all segments in message order.
func (m *Message) Segments() iter.Seq[*Segment] {
	return func(yield func(*Segment) bool) {
		for _, s := range m.segs {
			if !yield(s) {
				return
			}
		}
	}
}

// All iterates over the segments with the given name, in message order.
func (m *Message) All(name string) iter.Seq[*Segment] {
	return func(yield func(*Segment) bool) {
		for _, s := range m.segs {
			if s.Name() == name && !yield(s) {
				return
			}
		}
	}
}

// Segment returns the n-th (1-based) segment with the given name, or nil.
// n < 1 is treated as 1.
func (m *Message) Segment(name string, n int) *Segment {
	n = max(n, 1)
	for _, s := range m.segs {
		if s.Name() == name {
			n--
			if n == 0 {
				return s
			}
		}
	}
	return nil
}

// Get returns the decoded value at a location such as "PID-5.1" or
// "OBX[3]-5". An absent value is "", not an error; the error reports only a
// malformed location. See Element.String for how composite values are
// returned.
func (m *Message) Get(loc string) (string, error) {
	l, err := ParseLocation(loc)
	if err != nil {
		return "", err
	}
	return m.Value(l), nil
}

// Value returns the decoded value at loc, or "" when it is absent.
func (m *Message) Value(loc Location) string {
	seg := m.Segment(loc.Segment, loc.SegmentIndex)
	if seg == nil {
		return ""
	}
	if loc.Field == 0 {
		return m.cs.decode(seg.text)
	}
	return seg.element(loc).String()
}

// Group is a segment together with the child segments that follow it.
type Group struct {
	Parent   *Segment
	Children []*Segment
}

// Groups yields every parent segment with the run of segments after it
// whose names are in children. A run ends at the next parent or at the
// first segment not listed, so Groups("OBR", "OBX", "NTE") yields each
// order with its results and notes. Segments before the first parent are
// not yielded.
func (m *Message) Groups(parent string, children ...string) iter.Seq[Group] {
	return func(yield func(Group) bool) {
		for i := 0; i < len(m.segs); i++ {
			if m.segs[i].Name() != parent {
				continue
			}
			g := Group{Parent: m.segs[i]}
			j := i + 1
			for j < len(m.segs) && m.segs[j].Name() != parent && slices.Contains(children, m.segs[j].Name()) {
				j++
			}
			// A copy, so callers may keep or modify it without touching the message.
			g.Children = slices.Clone(m.segs[i+1 : j])
			if !yield(g) {
				return
			}
			i = j - 1
		}
	}
}

// Encode returns the message with every segment terminated by CR, the
// standard terminator, reflecting any changes made with Set. Blank lines and
// a byte-order mark present in the input are not reproduced.
func (m *Message) Encode() []byte {
	n := 0
	for _, s := range m.segs {
		n += len(s.text) + 1
	}
	b := make([]byte, 0, n)
	for _, s := range m.segs {
		b = append(b, s.text...)
		b = append(b, '\r')
	}
	return b
}
