package clinical

import (
	"errors"
	"math/big"
	"sort"
	"strconv"
	"strings"

	"github.com/shopspring/decimal"
)

// Fahrenheit names the conversion from degrees Fahrenheit to Celsius:
// (F-32)*5/9, rounded half-up to 0.1 °C, because NEWS2 bands temperature
// at one decimal ("convert °F to °C and round half-up to 0.1 before
// banding"). The arithmetic is exact: 96.9 °F is 36.0555… °C and becomes
// 36.1, never 36.0 through a float error.
const Fahrenheit = "fahrenheit"

// maxNumberLength bounds the text of a number Normalize accepts. No
// clinical value comes close; the bound keeps hostile input from building
// huge decimals.
const maxNumberLength = 40

// Reasons a value cannot be normalised. A *ValueError wraps one of them, so
// callers branch with errors.Is.
var (
	// ErrNoValue: the value is empty.
	ErrNoValue = errors.New("no value")
	// ErrNotNumber: the value is not a plain decimal number (HL7 NM:
	// optional sign, digits, optional decimal point; no exponent, no
	// thousands separator).
	ErrNotNumber = errors.New("not a number")
	// ErrComparator: the value is a comparison such as "<5" or ">100",
	// which is not a reading a score can use.
	ErrComparator = errors.New("a comparison, not a plain number")
	// ErrUnknownUnit: the unit is not one the parameter accepts; a value in
	// a wrong unit must never be scored.
	ErrUnknownUnit = errors.New("unit not accepted")
	// ErrUnknownAnswer: a coded value that is not one of the parameter's
	// answers.
	ErrUnknownAnswer = errors.New("answer not accepted")
	// ErrParameter: the parameter itself cannot normalise (see
	// Parameter.Validate).
	ErrParameter = errors.New("parameter misconfigured")
)

// ValueError reports a value a parameter cannot normalise. Its text names
// the parameter and the reason, and the unit for ErrUnknownUnit, but never
// the value.
type ValueError struct {
	Parameter string
	Err       error  // ErrNoValue, ErrNotNumber, ErrComparator, ErrUnknownUnit, ErrUnknownAnswer or ErrParameter
	Unit      string // the unit as received, set for ErrUnknownUnit
	accepted  []string
}

func (e *ValueError) Error() string {
	var b strings.Builder
	b.WriteString("clinical: ")
	b.WriteString(e.Parameter)
	b.WriteString(": ")
	if errors.Is(e.Err, ErrUnknownUnit) {
		if e.Unit == "" {
			b.WriteString("empty unit not accepted")
		} else {
			b.WriteString("unit ")
			b.WriteString(quoteUnit(e.Unit))
			b.WriteString(" not accepted")
		}
		if len(e.accepted) > 0 {
			b.WriteString(" (accepted: ")
			for i, u := range e.accepted {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(quoteUnit(u))
			}
			b.WriteString(")")
		}
		return b.String()
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *ValueError) Unwrap() error { return e.Err }

// maxQuotedUnit bounds how much of a unit an error quotes.
const maxQuotedUnit = 40

func quoteUnit(u string) string {
	if u == "" {
		return `""`
	}
	if len(u) > maxQuotedUnit {
		// Cut at a rune boundary.
		n := maxQuotedUnit
		for n > 0 && !isRuneStart(u[n]) {
			n--
		}
		return strconv.Quote(u[:n]) + "…"
	}
	return strconv.Quote(u)
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// Value is a normalised observation value: a decimal in the parameter's
// canonical unit, or one of a coded parameter's canonical answers.
type Value struct {
	Kind    Kind
	Numeric decimal.Decimal // Kind Numeric
	Coded   string          // Kind Coded
	Unit    string          // canonical unit; "" for coded values
}

// String returns the value as text; a number keeps its scale ("38.0").
func (v Value) String() string {
	if v.Kind == Coded {
		return v.Coded
	}
	return DecimalText(v.Numeric)
}

// DecimalText formats a decimal exactly, keeping its scale: 38.0 stays
// "38.0" and 120 stays "120". It is the textual form of numbers in event
// payloads.
func DecimalText(d decimal.Decimal) string {
	if e := d.Exponent(); e < 0 {
		return d.StringFixed(-e)
	}
	return d.String()
}

// Normalize turns an OBX value and unit into the parameter's canonical
// form.
//
// For a Numeric parameter, value is OBX-5 and must be a plain decimal
// number (a leading + is accepted; a comparison such as "<5" is
// ErrComparator, anything else ErrNotNumber). unit is OBX-6.1 and is
// looked up in Units as written, then ignoring letter case (UCUM "mg/dl"
// for "mg/dL"); MDC unit codes such as 266016 are matched as written. An
// empty unit is accepted only when Units declares "". The conversion is
// exact: the zero Conversion keeps the value, Factor and Offset are
// applied with decimals, and Fahrenheit rounds half-up to 0.1.
//
// For a Coded parameter, value is the answer code (OBX-5.1 of a CWE, or
// the text of an ST) and is looked up in Answers as written, then ignoring
// letter case; unit is ignored.
//
// Errors are *ValueError.
func (p *Parameter) Normalize(value string, unit string) (Value, error) {
	switch p.Kind {
	case Numeric:
		return p.normalizeNumber(value, unit)
	case Coded:
		return p.normalizeAnswer(value)
	}
	return Value{}, &ValueError{Parameter: p.Name, Err: ErrParameter}
}

func (p *Parameter) normalizeNumber(value, unit string) (Value, error) {
	n, err := ParseNumber(value)
	if err != nil {
		return Value{}, &ValueError{Parameter: p.Name, Err: err}
	}
	conv, ok := p.lookupUnit(unit)
	if !ok {
		return Value{}, &ValueError{Parameter: p.Name, Err: ErrUnknownUnit, Unit: strings.TrimSpace(unit), accepted: p.acceptedUnits()}
	}
	out, err := conv.apply(n)
	if err != nil {
		return Value{}, &ValueError{Parameter: p.Name, Err: err}
	}
	return Value{Kind: Numeric, Numeric: out, Unit: p.Unit}, nil
}

func (p *Parameter) lookupUnit(unit string) (Conversion, bool) {
	unit = strings.TrimSpace(unit)
	if c, ok := p.Units[unit]; ok {
		return c, true
	}
	if unit == "" {
		return Conversion{}, false
	}
	// Deterministic whatever the map order: the first matching key in
	// sorted order. Validate rejects case-variants that convert
	// differently, so for a valid parameter any match gives the same
	// result.
	var best string
	found := false
	for u := range p.Units {
		if strings.EqualFold(u, unit) && (!found || u < best) {
			best, found = u, true
		}
	}
	if !found {
		return Conversion{}, false
	}
	return p.Units[best], true
}

func (p *Parameter) acceptedUnits() []string {
	us := make([]string, 0, len(p.Units))
	for u := range p.Units {
		us = append(us, u)
	}
	sort.Strings(us)
	return us
}

func (p *Parameter) normalizeAnswer(value string) (Value, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return Value{}, &ValueError{Parameter: p.Name, Err: ErrNoValue}
	}
	if a, ok := p.Answers[value]; ok {
		return Value{Kind: Coded, Coded: a}, nil
	}
	var best string
	found := false
	for k := range p.Answers {
		if strings.EqualFold(k, value) && (!found || k < best) {
			best, found = k, true
		}
	}
	if !found {
		return Value{}, &ValueError{Parameter: p.Name, Err: ErrUnknownAnswer}
	}
	return Value{Kind: Coded, Coded: p.Answers[best]}, nil
}

// apply converts n into the canonical unit.
func (c Conversion) apply(n decimal.Decimal) (decimal.Decimal, error) {
	switch c.Func {
	case "":
		if c.Factor.IsZero() && c.Offset.IsZero() {
			return n, nil
		}
		return n.Mul(c.factor()).Add(c.Offset), nil
	case Fahrenheit:
		return fahrenheitToCelsius(n), nil
	}
	return decimal.Decimal{}, ErrParameter
}

// fahrenheitToCelsius computes (f-32)*5/9 exactly as a rational and rounds
// it half-up (towards +∞ on a tie) to one decimal: floor(c*10 + 1/2) / 10.
func fahrenheitToCelsius(f decimal.Decimal) decimal.Decimal {
	c := f.Sub(decimal.NewFromInt(32)).Rat()
	c.Mul(c, big.NewRat(50, 9))               // tenths of a degree Celsius
	c.Add(c, big.NewRat(1, 2))                // half-up
	q := new(big.Int).Div(c.Num(), c.Denom()) // Euclidean division: floor, since Denom > 0
	return decimal.NewFromBigInt(q, -1)
}

// ParseNumber parses a plain HL7 NM value exactly: optional blanks, an
// optional + or - sign, digits with at most one decimal point and at least
// one digit. It returns ErrNoValue for an empty value, ErrComparator for a
// value that starts with < or > (a comparison such as "<5"), and
// ErrNotNumber for anything else that is not a number (exponents, NaN,
// Inf, thousands separators, text).
func ParseNumber(s string) (decimal.Decimal, error) {
	s = strings.Trim(s, " \t")
	if s == "" {
		return decimal.Decimal{}, ErrNoValue
	}
	if s[0] == '<' || s[0] == '>' {
		return decimal.Decimal{}, ErrComparator
	}
	if len(s) > maxNumberLength {
		return decimal.Decimal{}, ErrNotNumber
	}
	body := s
	neg := false
	switch body[0] {
	case '+':
		body = body[1:]
	case '-':
		neg = true
		body = body[1:]
	}
	digits, dot := 0, -1
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && dot < 0:
			dot = i
		default:
			return decimal.Decimal{}, ErrNotNumber
		}
	}
	if digits == 0 {
		return decimal.Decimal{}, ErrNotNumber
	}
	// Build an unscaled integer and an exponent ourselves: "5." and ".5"
	// are valid NM, and the scale written ("38.0") is kept.
	intText := body
	exp := int32(0)
	if dot >= 0 {
		intText = body[:dot] + body[dot+1:]
		exp = -int32(len(body) - dot - 1)
	}
	v, ok := new(big.Int).SetString(intText, 10)
	if !ok {
		return decimal.Decimal{}, ErrNotNumber
	}
	if neg {
		v.Neg(v)
	}
	return decimal.NewFromBigInt(v, exp), nil
}
