package hl7

import (
	"errors"
	"strconv"
	"strings"
)

// Location addresses a part of a message with HL7's 1-based numbering, as
// written in specifications and ERR-2: "PID-5.1", "PID-3[2].1", "OBX[3]-5".
//
// A zero number means "not specified": SegmentIndex 0 is the first segment
// of that name, Repetition 0 is the whole field (or its first repetition
// when a component is asked for), Component 0 the whole repetition and
// Subcomponent 0 the whole component.
type Location struct {
	Segment      string
	SegmentIndex int
	Field        int
	Repetition   int
	Component    int
	Subcomponent int
}

// maxLocationNumber bounds every number in a location string; no real
// message comes close, and it keeps arithmetic far from overflow.
const maxLocationNumber = 99999

var errEmptyLocation = errors.New("hl7: empty location")

// ParseLocation parses "SEG[n]-F[r].C.S", every part after the segment name
// being optional. The segment name is three upper-case letters or digits.
func ParseLocation(s string) (Location, error) {
	if s == "" {
		return Location{}, errEmptyLocation
	}
	if len(s) < 3 || !segmentName(s[:3]) {
		return Location{}, locationError(s, "segment name must be three upper-case letters or digits")
	}
	loc := Location{Segment: s[:3]}
	rest := s[3:]
	var err error
	if strings.HasPrefix(rest, "[") {
		if loc.SegmentIndex, rest, err = bracket(rest); err != nil {
			return Location{}, locationError(s, "segment index: "+err.Error())
		}
	}
	if rest == "" {
		return loc, nil
	}
	if rest[0] != '-' {
		return Location{}, locationError(s, "expected '-' after the segment")
	}
	if err := parseFieldPath(rest[1:], &loc); err != nil {
		return Location{}, locationError(s, err.Error())
	}
	return loc, nil
}

// parseRelative parses a segment-relative path such as "5", "5.1" or
// "3[2].1.2".
func parseRelative(s string) (Location, error) {
	var loc Location
	if err := parseFieldPath(s, &loc); err != nil {
		return Location{}, locationError(s, err.Error())
	}
	return loc, nil
}

func parseFieldPath(s string, loc *Location) error {
	var err error
	if loc.Field, s, err = number(s); err != nil {
		return errors.New("field: " + err.Error())
	}
	if strings.HasPrefix(s, "[") {
		if loc.Repetition, s, err = bracket(s); err != nil {
			return errors.New("repetition: " + err.Error())
		}
	}
	if s == "" {
		return nil
	}
	if s[0] != '.' {
		return errors.New("expected '.' before the component")
	}
	if loc.Component, s, err = number(s[1:]); err != nil {
		return errors.New("component: " + err.Error())
	}
	if s == "" {
		return nil
	}
	if s[0] != '.' {
		return errors.New("expected '.' before the subcomponent")
	}
	if loc.Subcomponent, s, err = number(s[1:]); err != nil {
		return errors.New("subcomponent: " + err.Error())
	}
	if s != "" {
		return errors.New("unexpected text after the subcomponent")
	}
	return nil
}

func bracket(s string) (int, string, error) {
	n, rest, err := number(s[1:])
	if err != nil {
		return 0, "", err
	}
	if !strings.HasPrefix(rest, "]") {
		return 0, "", errors.New("missing ']'")
	}
	return n, rest[1:], nil
}

// number reads a positive decimal number without a sign.
func number(s string) (int, string, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, "", errors.New("expected a number")
	}
	if i > 5 {
		return 0, "", errors.New("number too large")
	}
	n, _ := strconv.Atoi(s[:i])
	if n < 1 || n > maxLocationNumber {
		return 0, "", errors.New("numbers start at 1")
	}
	return n, s[i:], nil
}

func segmentName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func locationError(s, reason string) error {
	// A location is written by a programmer or an analyst, not taken from a
	// message, so quoting it cannot leak patient data.
	return errors.New("hl7: location " + strconv.Quote(s) + ": " + reason)
}

// String formats the location the way ParseLocation reads it; unspecified
// parts are left out. The zero Location formats as "".
func (l Location) String() string {
	if l.Segment == "" && l.Field == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(l.Segment)
	if l.SegmentIndex > 0 {
		b.WriteByte('[')
		b.WriteString(strconv.Itoa(l.SegmentIndex))
		b.WriteByte(']')
	}
	if l.Field <= 0 {
		return b.String()
	}
	b.WriteByte('-')
	b.WriteString(strconv.Itoa(l.Field))
	if l.Repetition > 0 {
		b.WriteByte('[')
		b.WriteString(strconv.Itoa(l.Repetition))
		b.WriteByte(']')
	}
	if l.Component > 0 || l.Subcomponent > 0 {
		b.WriteByte('.')
		b.WriteString(strconv.Itoa(max(l.Component, 1)))
		if l.Subcomponent > 0 {
			b.WriteByte('.')
			b.WriteString(strconv.Itoa(l.Subcomponent))
		}
	}
	return b.String()
}
