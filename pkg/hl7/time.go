package hl7

import (
	"errors"
	"time"
)

// ParseTime parses an HL7 date/time (DTM, or the first component of TS):
// YYYY[MM[DD[HH[MM[SS[.S+]]]]]], optionally followed by an offset +ZZZZ or
// -ZZZZ. Missing parts take their lowest value. A time without an offset is returned in UTC; use ParseTimeIn when
// the sender's zone is known.
func ParseTime(s string) (time.Time, error) {
	return ParseTimeIn(s, time.UTC)
}

// ParseTimeIn is like ParseTime but interprets a time without an offset in
// loc. HL7 defines such a time as the sender's local time, which only the
// caller can know.
func ParseTimeIn(s string, loc *time.Location) (time.Time, error) {
	if loc == nil {
		loc = time.UTC
	}
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	switch n {
	case 4, 6, 8, 10, 12, 14:
	default:
		return time.Time{}, errors.New("hl7: invalid time: expected YYYY[MM[DD[HH[MM[SS]]]]]")
	}
	digits := func(i, w, def int) int {
		if i+w > n {
			return def
		}
		v := 0
		for _, c := range s[i : i+w] {
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day := digits(0, 4, 0), digits(4, 2, 1), digits(6, 2, 1)
	hour, minute, sec := digits(8, 2, 0), digits(10, 2, 0), digits(12, 2, 0)
	rest := s[n:]
	nsec := 0
	if len(rest) > 0 && rest[0] == '.' {
		if n != 14 {
			return time.Time{}, errors.New("hl7: invalid time: fraction without seconds")
		}
		k := 1
		scale := 100_000_000
		for k < len(rest) && rest[k] >= '0' && rest[k] <= '9' {
			nsec += int(rest[k]-'0') * scale
			scale /= 10
			k++
		}
		if k == 1 {
			return time.Time{}, errors.New("hl7: invalid time: empty fraction")
		}
		rest = rest[k:]
	}
	if len(rest) > 0 {
		if len(rest) != 5 || (rest[0] != '+' && rest[0] != '-') {
			return time.Time{}, errors.New("hl7: invalid time: expected a +HHMM or -HHMM offset")
		}
		oh, om := 0, 0
		for i, c := range rest[1:] {
			if c < '0' || c > '9' {
				return time.Time{}, errors.New("hl7: invalid time: offset is not numeric")
			}
			if i < 2 {
				oh = oh*10 + int(c-'0')
			} else {
				om = om*10 + int(c-'0')
			}
		}
		if oh > 23 || om > 59 {
			return time.Time{}, errors.New("hl7: invalid time: offset out of range")
		}
		off := (oh*60 + om) * 60
		if rest[0] == '-' {
			off = -off
		}
		loc = time.FixedZone("", off)
	}
	if month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, errors.New("hl7: invalid time: a part is out of range")
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc)
	if t.Day() != day {
		return time.Time{}, errors.New("hl7: invalid time: day does not exist in that month")
	}
	return t, nil
}
