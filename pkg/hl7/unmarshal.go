package hl7

import (
	"encoding"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Unmarshal fills the struct pointed to by v from the message, following
// `hl7` struct tags:
//
//	type Patient struct {
//		MRN       string    `hl7:"PID-3.1"`
//		IDs       []string  `hl7:"PID-3.1"`  // every repetition of PID-3
//		Family    string    `hl7:"PID-5.1"`
//		BirthDate time.Time `hl7:"PID-7"`    // TS: first component, see ParseTime
//		Weight    *float64  `hl7:"OBX[2]-5"` // nil when absent
//		Results   []Result  `hl7:"OBX"`      // one per OBX segment
//		Visit     Visit     `hl7:"PV1"`      // fields relative to PV1
//	}
//	type Result struct {
//		Code  string `hl7:"3.1"`
//		Value string `hl7:"5"`
//	}
//
// Supported field types are string, bool (Y/N, T/F, YES/NO, TRUE/FALSE,
// 1/0), every int, uint and float kind, time.Time, types implementing
// encoding.TextUnmarshaler, pointers to these, and slices of these (one
// element per repetition). A struct or slice of structs tagged with a
// segment name is filled with tags relative to that segment.
//
// Untagged fields and fields tagged "-" are left alone. Absent values and
// HL7's explicit null ("") leave the zero value (nil for pointers and
// slices). A value that does not fit its type, or an unsupported field
// type, is reported as an *UnmarshalError; Unmarshal never panics.
func Unmarshal(m *Message, v any) error {
	if m == nil {
		return errors.New("hl7: unmarshal: nil message")
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return errors.New("hl7: unmarshal: target must be a non-nil pointer to a struct")
	}
	return unmarshalStruct(rv.Elem(), m, nil)
}

// UnmarshalError reports a struct field Unmarshal could not fill. Its
// message names the location, the field and the type, never the value;
// Err, when set, holds the underlying cause, which may quote the value.
type UnmarshalError struct {
	Location Location
	Field    string // Go struct field, e.g. "Patient.BirthDate"
	Type     string // Go type of the field
	Reason   string
	Err      error
}

func (e *UnmarshalError) Error() string {
	loc := e.Location.String()
	if loc == "" {
		loc = "?"
	}
	return "hl7: unmarshal " + loc + " into " + e.Field + " (" + e.Type + "): " + e.Reason
}

func (e *UnmarshalError) Unwrap() error { return e.Err }

var (
	timeType            = reflect.TypeFor[time.Time]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func unmarshalStruct(sv reflect.Value, m *Message, seg *Segment) error {
	st := sv.Type()
	for i := 0; i < st.NumField(); i++ {
		sf := st.Field(i)
		tag, ok := sf.Tag.Lookup("hl7")
		if !ok || tag == "-" {
			continue
		}
		fieldName := sf.Name
		if st.Name() != "" {
			fieldName = st.Name() + "." + sf.Name
		}
		uerr := func(loc Location, reason string, err error) error {
			return &UnmarshalError{Location: loc, Field: fieldName, Type: sf.Type.String(), Reason: reason, Err: err}
		}
		if !sf.IsExported() {
			return uerr(Location{}, "tagged field is not exported", nil)
		}
		fv := sv.Field(i)
		if isSegmentStruct(sf.Type) {
			if err := unmarshalSegments(fv, m, seg, tag, uerr); err != nil {
				return err
			}
			continue
		}
		loc, err := fieldLocation(tag, seg)
		if err != nil {
			return uerr(Location{}, "bad tag", err)
		}
		if loc.Field == 0 {
			return uerr(loc, "tag names no field", nil)
		}
		if !supportedValue(sf.Type) {
			return uerr(loc, "unsupported field type", nil)
		}
		var target *Segment
		if seg != nil {
			target = seg
		} else {
			target = m.Segment(loc.Segment, loc.SegmentIndex)
		}
		if err := fillValue(fv, target, loc); err != nil {
			var u *UnmarshalError
			if errors.As(err, &u) {
				u.Field, u.Type = fieldName, sf.Type.String()
			}
			return err
		}
	}
	return nil
}

// isSegmentStruct reports whether t (or its element type) is a struct
// holding segment-relative tags rather than a single value.
func isSegmentStruct(t reflect.Type) bool {
	if t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct && t != timeType && !reflect.PointerTo(t).Implements(textUnmarshalerType)
}

func unmarshalSegments(fv reflect.Value, m *Message, seg *Segment, tag string, uerr func(Location, string, error) error) error {
	if seg != nil {
		return uerr(Location{}, "segment structs cannot be nested inside a segment", nil)
	}
	loc, err := ParseLocation(tag)
	if err != nil {
		return uerr(Location{}, "bad tag", err)
	}
	if loc.Field != 0 {
		return uerr(loc, "a struct field must be tagged with a segment, such as \"PID\" or \"OBX[2]\"", nil)
	}
	t := fv.Type()
	switch t.Kind() {
	case reflect.Slice:
		if loc.SegmentIndex != 0 {
			return uerr(loc, "a slice of segments takes every occurrence; drop the index", nil)
		}
		out := reflect.Zero(t)
		for s := range m.All(loc.Segment) {
			ev := reflect.New(t.Elem()).Elem()
			target := ev
			if t.Elem().Kind() == reflect.Pointer {
				ev = reflect.New(t.Elem().Elem())
				target = ev.Elem()
			}
			if err := unmarshalStruct(target, m, s); err != nil {
				return err
			}
			out = reflect.Append(out, ev)
		}
		fv.Set(out)
	case reflect.Pointer:
		s := m.Segment(loc.Segment, loc.SegmentIndex)
		if s == nil {
			fv.Set(reflect.Zero(t))
			return nil
		}
		p := reflect.New(t.Elem())
		if err := unmarshalStruct(p.Elem(), m, s); err != nil {
			return err
		}
		fv.Set(p)
	default:
		s := m.Segment(loc.Segment, loc.SegmentIndex)
		if s == nil {
			fv.Set(reflect.Zero(t))
			return nil
		}
		return unmarshalStruct(fv, m, s)
	}
	return nil
}

// fieldLocation parses a tag: a full location at message level, a
// segment-relative one ("5.1") inside a segment struct.
func fieldLocation(tag string, seg *Segment) (Location, error) {
	if seg == nil {
		return ParseLocation(tag)
	}
	if tag != "" && tag[0] >= '0' && tag[0] <= '9' {
		loc, err := parseRelative(tag)
		loc.Segment = seg.Name()
		return loc, err
	}
	loc, err := ParseLocation(tag)
	if err == nil && loc.Segment != seg.Name() {
		return Location{}, locationError(tag, "names another segment than the enclosing one")
	}
	return loc, err
}

func supportedValue(t reflect.Type) bool {
	if t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == timeType || reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

func fillValue(fv reflect.Value, seg *Segment, loc Location) error {
	if seg == nil {
		fv.Set(reflect.Zero(fv.Type()))
		return nil
	}
	field := seg.Field(loc.Field)
	narrow := func(e Element, t reflect.Type) Element {
		if loc.Component > 0 {
			e = e.Component(loc.Component)
		} else if isTimeType(t) {
			// TS carries a degree of precision after the time in v2.3-2.5.
			e = e.Component(1)
		}
		if loc.Subcomponent > 0 {
			e = e.Subcomponent(loc.Subcomponent)
		}
		return e
	}
	t := fv.Type()
	if t.Kind() == reflect.Slice {
		var reps []Element
		if loc.Repetition > 0 {
			reps = []Element{field.Repetition(loc.Repetition)}
		} else {
			reps = field.Repetitions()
		}
		if len(reps) == 0 {
			fv.Set(reflect.Zero(t))
			return nil
		}
		out := reflect.MakeSlice(t, len(reps), len(reps))
		for i, r := range reps {
			rl := loc
			rl.Repetition = i + 1
			if loc.Repetition > 0 {
				rl.Repetition = loc.Repetition
			}
			if err := setScalar(out.Index(i), narrow(r, t.Elem()).String(), rl); err != nil {
				return err
			}
		}
		fv.Set(out)
		return nil
	}
	e := field
	if loc.Repetition > 0 {
		e = e.Repetition(loc.Repetition)
	}
	return setScalar(fv, narrow(e, t).String(), loc)
}

func isTimeType(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t == timeType
}

func setScalar(v reflect.Value, s string, loc Location) error {
	if s == `""` {
		s = "" // HL7's explicit null
	}
	bad := func(reason string, err error) error {
		return &UnmarshalError{Location: loc, Reason: reason, Err: err}
	}
	if v.Kind() == reflect.Pointer {
		if s == "" {
			v.Set(reflect.Zero(v.Type()))
			return nil
		}
		p := reflect.New(v.Type().Elem())
		if err := setScalar(p.Elem(), s, loc); err != nil {
			return err
		}
		v.Set(p)
		return nil
	}
	if s == "" {
		v.Set(reflect.Zero(v.Type()))
		return nil
	}
	if v.Type() == timeType {
		t, err := ParseTime(s)
		if err != nil {
			return bad("not an HL7 date/time", err)
		}
		v.Set(reflect.ValueOf(t))
		return nil
	}
	if v.CanAddr() {
		if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
			if err := u.UnmarshalText([]byte(s)); err != nil {
				return bad("rejected by UnmarshalText", err)
			}
			return nil
		}
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, ok := parseBool(s)
		if !ok {
			return bad("not a boolean (Y/N)", nil)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		s = strings.TrimSpace(s)
		if !isInteger(s, true) {
			return bad("not an integer", nil)
		}
		n, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			return bad("integer out of range", err)
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		s = strings.TrimSpace(s)
		if !isInteger(s, false) {
			return bad("not an unsigned integer", nil)
		}
		n, err := strconv.ParseUint(strings.TrimPrefix(s, "+"), 10, v.Type().Bits())
		if err != nil {
			return bad("integer out of range", err)
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		s = strings.TrimSpace(s)
		if !isNumeric(s) {
			return bad("not an HL7 numeric (NM) value", nil)
		}
		f, err := strconv.ParseFloat(s, v.Type().Bits())
		if err != nil {
			return bad("number out of range", err)
		}
		v.SetFloat(f)
	default:
		return bad("unsupported field type", nil)
	}
	return nil
}

func parseBool(s string) (bool, bool) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "Y", "YES", "T", "TRUE", "1":
		return true, true
	case "N", "NO", "F", "FALSE", "0":
		return false, true
	}
	return false, false
}

func isInteger(s string, signed bool) bool {
	if s != "" && (s[0] == '+' || (signed && s[0] == '-')) {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isNumeric accepts HL7's NM: an optional sign, digits and an optional
// decimal point. strconv alone would also take "NaN", "Inf" and hex.
func isNumeric(s string) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	digits, dot := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot:
			dot = true
		default:
			return false
		}
	}
	return digits > 0
}
