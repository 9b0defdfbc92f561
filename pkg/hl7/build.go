package hl7

import (
	"errors"
	"strings"
)

// NewMessage returns a message holding only an MSH segment with the given
// delimiters, to be filled in with Set.
func NewMessage(d Delimiters) (*Message, error) {
	if !d.valid() {
		return nil, errors.New("hl7: new message: delimiters must be distinct printable ASCII punctuation characters, and a truncation character needs a subcomponent separator")
	}
	text := "MSH" + string(d.Field) + d.EncodingCharacters()
	m := &Message{delims: d, cs: autoCharset, text: text}
	seg := &Segment{}
	m.initSegment(seg, text, -1)
	m.segs = []*Segment{seg}
	return m, nil
}

// Set stores value at a location such as "PID-5.1" or "OBX[2]-5",
// escaping delimiters and line breaks so that Get returns value unchanged,
// and encoding it in the message character set. Missing fields,
// repetitions and components are created; a missing segment is appended
// when it would be the next occurrence of its name (so "OBX[2]-1" works
// after one OBX exists). A location above the leaf level replaces the whole
// element with value as plain text.
//
// Setting MSH-18 changes the character set used for values set afterwards;
// values already in the message are not re-encoded. MSH-1 and MSH-2 cannot
// be set: the delimiters are fixed when the message is created.
func (m *Message) Set(loc, value string) error {
	l, err := ParseLocation(loc)
	if err != nil {
		return err
	}
	if l.Field == 0 {
		return locationError(loc, "names no field")
	}
	if l.Subcomponent > 0 && m.delims.Subcomponent == 0 {
		return locationError(loc, "the message has no subcomponent separator")
	}
	seg := m.Segment(l.Segment, l.SegmentIndex)
	if seg == nil {
		if l.Segment == "MSH" || l.Segment == "FHS" || l.Segment == "BHS" {
			return locationError(loc, "cannot add a header segment")
		}
		count := 0
		for range m.All(l.Segment) {
			count++
		}
		if max(l.SegmentIndex, 1) != count+1 {
			return locationError(loc, "earlier occurrences of the segment are missing")
		}
		seg = &Segment{}
		m.initSegment(seg, l.Segment, -1)
		m.segs = append(m.segs, seg)
	}
	if seg.header && l.Field <= 2 {
		return locationError(loc, "the delimiter fields cannot be set")
	}
	enc, ok := m.cs.encode(escape(value, &m.delims), false)
	if !ok {
		return errors.New("hl7: set " + l.String() + ": value cannot be represented in the message character set")
	}
	old, dirty := seg.text, seg.dirty
	seg.setText(replaceAt(seg, l, enc))
	if seg == m.segs[0] && l.Field == 18 {
		if perr := m.setCharset(); perr != nil {
			seg.setText(old)
			seg.dirty = dirty
			return perr
		}
	}
	return nil
}

func replaceAt(seg *Segment, l Location, enc string) string {
	d := &seg.m.delims
	fs := string(d.Field)
	parts := strings.Split(seg.text, fs)
	k := seg.splitIndex(l.Field)
	parts = grow(parts, k+1)
	parts[k] = replaceIn(parts[k], l, enc, d)
	return strings.Join(parts, fs)
}

func replaceIn(field string, l Location, enc string, d *Delimiters) string {
	if l.Repetition == 0 && l.Component == 0 && l.Subcomponent == 0 {
		return enc
	}
	r := max(l.Repetition, 1)
	reps := grow(strings.Split(field, string(d.Repetition)), r)
	if l.Component == 0 && l.Subcomponent == 0 {
		reps[r-1] = enc
		return strings.Join(reps, string(d.Repetition))
	}
	c := max(l.Component, 1)
	comps := grow(strings.Split(reps[r-1], string(d.Component)), c)
	if l.Subcomponent == 0 {
		comps[c-1] = enc
	} else {
		subs := grow(strings.Split(comps[c-1], string(d.Subcomponent)), l.Subcomponent)
		subs[l.Subcomponent-1] = enc
		comps[c-1] = strings.Join(subs, string(d.Subcomponent))
	}
	reps[r-1] = strings.Join(comps, string(d.Component))
	return strings.Join(reps, string(d.Repetition))
}

func grow(s []string, n int) []string {
	for len(s) < n {
		s = append(s, "")
	}
	return s
}
