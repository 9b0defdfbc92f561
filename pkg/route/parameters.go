package route

import (
	"fmt"
	"sort"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/shopspring/decimal"

	"github.com/aortahealth/aorta/pkg/clinical"
)

// Conversion names accepted in a parameter's units. "same" means no
// conversion; "fahrenheit" converts °F to °C, which pkg/clinical applies
// as (F-32)*5/9 rounded half-up to 0.1, as NEWS2 requires.
const (
	convSame       = "same"
	convFahrenheit = "fahrenheit"
)

var conversionNames = []string{convSame, convFahrenheit}

var parameterKinds = []string{string(clinical.Numeric), string(clinical.Coded)}

// systemAliases maps names analysts write for well-known coding systems to
// the code HL7 puts in OBX-3.3, which is what observations are matched on.
var systemAliases = map[string]string{
	"LOINC":      "LN",
	"SNOMED":     "SCT",
	"SNOMEDCT":   "SCT",
	"SNOMED-CT":  "SCT",
	"SNOMED_CT":  "SCT",
	"IEEE":       "MDC",
	"IEEE11073":  "MDC",
	"X73":        "MDC",
	"ISO/IEEE":   "MDC",
	"11073":      "MDC",
	"IEEE-11073": "MDC",
}

// codeSite remembers where a code was first declared.
type codeSite struct {
	param string
	pos   position
}

// parameters decodes the parameter table. It returns the table and the
// parameter names, sorted, for validating routes.
func (d *decoder) parameters(e entry) (*clinical.Table, []string) {
	r := d.resolve(e.value)
	if r == nil {
		return nil, nil
	}
	if _, empty := r.(*ast.NullNode); empty {
		return nil, nil
	}
	entries, ok := d.mapping(r, `"parameters"`)
	if !ok {
		return nil, nil
	}
	codes := map[clinical.Code]codeSite{}
	var params []*clinical.Parameter
	var names []string
	for _, pe := range entries {
		if !validParameterName(pe.key) {
			d.errorf(pe.pos, "parameter name %q must start with a lower-case letter and hold only lower-case letters, digits and _ (at most %d)", pe.key, maxRouteName)
		}
		p := d.parameter(pe, codes)
		if p == nil {
			continue
		}
		params = append(params, p)
		names = append(names, p.Name)
	}
	t, err := clinical.NewTable(params)
	if err != nil {
		// Duplicates were reported above with their positions and left
		// out, so this is not expected; report it rather than lose it.
		d.errorf(e.pos, "%v", err)
		return nil, nil
	}
	sort.Strings(names)
	return t, names
}

func validParameterName(s string) bool {
	if s == "" || len(s) > maxRouteName || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func (d *decoder) parameter(pe entry, codes map[clinical.Code]codeSite) *clinical.Parameter {
	label := fmt.Sprintf("parameter %q", pe.key)
	v, ok := d.object(pe.value, parameterObject, label)
	if !ok {
		return nil
	}
	p := &clinical.Parameter{Name: pe.key, Kind: clinical.Numeric}
	if e, ok := v.get("description"); ok {
		p.Description, _, _ = d.text(e, `"description"`)
	}
	if e, ok := v.get("type"); ok {
		if s, pos, ok := d.text(e, `"type"`); ok {
			if containsString(parameterKinds, s) {
				p.Kind = clinical.Kind(s)
			} else {
				d.errorf(pos, "type must be numeric or coded, not %q%s", s, suggest(s, parameterKinds))
			}
		}
	}
	if e, ok := v.get("codes"); ok {
		p.Codes = d.codes(e, pe.key, codes)
	}
	switch p.Kind {
	case clinical.Numeric:
		if e, ok := v.get("answers"); ok {
			d.errorf(e.pos, "%s is numeric: answers belong to coded parameters (add type: coded)", label)
		}
		e, ok := v.get("unit")
		if !ok {
			d.errorf(pe.pos, "%s needs a unit: the canonical UCUM unit its values are converted to", label)
			return p
		}
		unit, pos, ok := d.text(e, `"unit"`)
		if !ok {
			return p
		}
		if strings.TrimSpace(unit) == "" {
			d.errorf(pos, "unit of %s is empty", label)
			return p
		}
		p.Unit = unit
		p.Units = map[string]clinical.Conversion{}
		if e, ok := v.get("units"); ok {
			d.units(e, p)
		}
		if _, listed := p.Units[unit]; !listed {
			p.Units[unit] = clinical.Conversion{Factor: decimal.NewFromInt(1)}
		}
	case clinical.Coded:
		for _, k := range []string{"unit", "units"} {
			if e, ok := v.get(k); ok {
				d.errorf(e.pos, "%s is coded: %q belongs to numeric parameters", label, k)
			}
		}
		if e, ok := v.get("answers"); ok {
			p.Answers = d.answers(e, label)
		} else {
			d.errorf(pe.pos, "%s is coded and needs answers: the accepted OBX-5 values for each canonical value", label)
		}
	}
	return p
}

// codes reads "codes: {LN: [8867-4], MDC: [147842]}", rejecting a code
// already claimed by a parameter.
func (d *decoder) codes(e entry, param string, seen map[clinical.Code]codeSite) []clinical.Code {
	label := fmt.Sprintf("codes of parameter %q", param)
	entries, ok := d.mapping(e.value, label)
	if !ok {
		return nil
	}
	var out []clinical.Code
	written := 0
	for _, se := range entries {
		system := strings.ToUpper(strings.TrimSpace(se.key))
		if alias, ok := systemAliases[system]; ok {
			written++
			d.errorf(se.pos, "coding system %q: write %s, its HL7 table 0396 code, as sent in OBX-3.3", se.key, alias)
			continue
		}
		if system == "" || strings.ContainsAny(system, " \t^~|&\\") {
			written++
			d.errorf(se.pos, "coding system %q must be the code written in OBX-3.3, such as LN or MDC", se.key)
			continue
		}
		items, _ := d.textList(se, fmt.Sprintf("%s codes of parameter %q", system, param), true)
		written += len(items)
		for _, it := range items {
			code := strings.TrimSpace(it.text)
			if reason := checkCode(system, code); reason != "" {
				d.errorf(it.pos, "%s", reason)
				continue
			}
			c := clinical.Code{System: system, Code: code}
			if first, dup := seen[c]; dup {
				if first.param == param {
					d.errorf(it.pos, "code %s %s is listed twice for parameter %q (first at %s:%s)", system, code, param, d.file, first.pos)
				} else {
					d.errorf(it.pos, "code %s %s already maps to parameter %q (%s:%s): one observation must feed one parameter", system, code, first.param, d.file, first.pos)
				}
				continue
			}
			seen[c] = codeSite{param: param, pos: it.pos}
			out = append(out, c)
		}
	}
	if written == 0 {
		d.errorf(e.pos, "parameter %q has no codes: list the OBX-3 codes that carry it", param)
	}
	return out
}

// checkCode returns why a code cannot be right for its system, or "".
func checkCode(system, code string) string {
	if code == "" {
		return fmt.Sprintf("empty %s code", system)
	}
	switch system {
	case "LN":
		digits, check, ok := splitLOINC(code)
		if !ok {
			return fmt.Sprintf("LOINC code %q is not of the form 8867-4", code)
		}
		// Part and answer codes (LP..., LA...) have check digits of
		// their own scheme; only observation codes are checked.
		if want := loincCheckDigit(digits); len(digits) == len(code)-2 && want != check {
			return fmt.Sprintf("LOINC code %q has a wrong check digit (%s-%c would be valid): a typo?", code, code[:len(code)-2], want)
		}
	case "MDC":
		for i := 0; i < len(code); i++ {
			if code[i] < '0' || code[i] > '9' {
				return fmt.Sprintf("MDC code %q must be the number sent in OBX-3.1, such as 150456, not a reference ID such as MDC_PULS_OXIM_SAT_O2", code)
			}
		}
	}
	return ""
}

// splitLOINC splits "8867-4" (or a part or answer code such as
// "LA6576-8") into the digits before the dash and the check digit.
func splitLOINC(code string) (digits string, check byte, ok bool) {
	body := code
	if len(body) >= 2 && body[0] == 'L' && body[1] >= 'A' && body[1] <= 'Z' {
		body = body[2:]
	}
	dash := strings.IndexByte(body, '-')
	if dash < 1 || dash > 7 || dash != len(body)-2 {
		return "", 0, false
	}
	for i := 0; i < len(body); i++ {
		if i != dash && (body[i] < '0' || body[i] > '9') {
			return "", 0, false
		}
	}
	return body[:dash], body[len(body)-1], true
}

// loincCheckDigit computes LOINC's mod 10 check digit: from the right,
// every other digit starting with the last is doubled (its digits summed),
// and the check digit brings the total to a multiple of ten.
func loincCheckDigit(digits string) byte {
	sum := 0
	for i := 0; i < len(digits); i++ {
		n := int(digits[len(digits)-1-i] - '0')
		if i%2 == 0 {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
	}
	return byte('0' + (10-sum%10)%10)
}

// units reads "units: {unit: conversion}" into p.Units.
func (d *decoder) units(e entry, p *clinical.Parameter) {
	label := fmt.Sprintf("units of parameter %q", p.Name)
	entries, ok := d.mapping(e.value, label)
	if !ok {
		return
	}
	// Units are looked up exactly, then regardless of letter case (senders
	// write MMOL/L), so spellings that differ only in case, the canonical
	// unit's included, must convert alike.
	var listed []entry
	for _, ue := range entries {
		conv, ok := d.conversion(ue, p.Name)
		if !ok {
			continue
		}
		if ue.key == p.Unit && !isSame(conv) {
			d.errorf(ue.pos, "%q is the canonical unit of parameter %q, so it converts as same", ue.key, p.Name)
			continue
		}
		clash := ""
		if ue.key != p.Unit && strings.EqualFold(ue.key, p.Unit) && !isSame(conv) {
			clash = fmt.Sprintf("%q (the canonical unit)", p.Unit)
		}
		for _, le := range listed {
			if clash == "" && strings.EqualFold(le.key, ue.key) && !sameConversion(p.Units[le.key], conv) {
				clash = fmt.Sprintf("%q (%s:%s)", le.key, d.file, le.pos)
			}
		}
		if clash != "" {
			d.errorf(ue.pos, "units %q and %s differ only in letter case but convert differently", ue.key, clash)
			continue
		}
		p.Units[ue.key] = conv
		listed = append(listed, ue)
	}
}

func sameConversion(a, b clinical.Conversion) bool {
	return a.Func == b.Func && a.Factor.Equal(b.Factor) && a.Offset.Equal(b.Offset)
}

func isSame(c clinical.Conversion) bool {
	return c.Func == "" && c.Factor.Equal(decimal.NewFromInt(1)) && c.Offset.IsZero()
}

// conversion reads one unit's conversion: same, fahrenheit, or a mapping
// with factor and offset (canonical = value*factor + offset).
func (d *decoder) conversion(ue entry, param string) (clinical.Conversion, bool) {
	one := decimal.NewFromInt(1)
	r := d.resolve(ue.value)
	if r == nil {
		return clinical.Conversion{}, false
	}
	what := fmt.Sprintf("conversion of unit %q of parameter %q", ue.key, param)
	switch r.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
	default:
		s, pos, ok := d.text(ue, what)
		if !ok {
			return clinical.Conversion{}, false
		}
		switch s {
		case convSame:
			return clinical.Conversion{Factor: one}, true
		case convFahrenheit:
			return clinical.Conversion{Factor: one, Func: convFahrenheit}, true
		}
		hint := suggest(s, conversionNames)
		if hint == "" {
			hint = " (write same, fahrenheit, or {factor: 88.4, offset: 0})"
		}
		d.errorf(pos, "unknown unit conversion %q%s", s, hint)
		return clinical.Conversion{}, false
	}
	v, ok := d.object(r, conversionObject, what)
	if !ok {
		return clinical.Conversion{}, false
	}
	if !v.has("factor") && !v.has("offset") && v.written == 0 {
		d.errorf(v.at, "%s is empty: write same, or give a factor and/or an offset", what)
		return clinical.Conversion{}, false
	}
	conv := clinical.Conversion{Factor: one}
	good := true
	if e, ok := v.get("factor"); ok {
		f, ok := d.decimal(e, `"factor"`)
		switch {
		case !ok:
			good = false
		case f.IsZero():
			d.errorf(posOf(e.value), "factor must not be 0")
			good = false
		default:
			conv.Factor = f
		}
	}
	if e, ok := v.get("offset"); ok {
		f, ok := d.decimal(e, `"offset"`)
		if ok {
			conv.Offset = f
		} else {
			good = false
		}
	}
	return conv, good
}

// decimal reads an exact decimal from the number's text, so 88.4 is 88.4
// and not the nearest binary fraction.
func (d *decoder) decimal(e entry, what string) (decimal.Decimal, bool) {
	s, pos, ok := d.text(e, what)
	if !ok {
		return decimal.Decimal{}, false
	}
	s = strings.TrimSpace(s)
	f, err := decimal.NewFromString(s)
	if err != nil || !plainDecimal(s) {
		d.errorf(pos, "%s must be a decimal number such as 88.4, not %q", what, s)
		return decimal.Decimal{}, false
	}
	return f, true
}

// answers reads "answers: {canonical: [accepted, ...]}" into a map from
// each accepted OBX-5.1 value to its canonical value.
func (d *decoder) answers(e entry, label string) map[string]string {
	entries, ok := d.mapping(e.value, "answers of "+label)
	if !ok {
		return nil
	}
	out := map[string]string{}
	where := map[string]position{}
	for _, ae := range entries {
		if strings.TrimSpace(ae.key) == "" {
			d.errorf(ae.pos, "a canonical answer of %s is empty", label)
			continue
		}
		items, _ := d.textList(ae, fmt.Sprintf("accepted values for answer %q of %s", ae.key, label), true)
		if len(items) == 0 {
			d.errorf(ae.pos, "answer %q of %s lists no accepted values", ae.key, label)
		}
		for _, it := range items {
			if it.text == "" {
				d.errorf(it.pos, "an accepted value for answer %q is empty", ae.key)
				continue
			}
			if other, dup := out[it.text]; dup {
				d.errorf(it.pos, "value %q is already accepted for answer %q (%s:%s)", it.text, other, d.file, where[it.text])
				continue
			}
			out[it.text] = ae.key
			where[it.text] = it.pos
		}
	}
	if len(entries) == 0 {
		d.errorf(e.pos, "%s has no answers", label)
	}
	return out
}

// plainDecimal accepts [+-]digits[.digits] of at most 40 characters:
// no exponents, which could make comparisons enormous, and no YAML forms
// such as 0x10 or 1_000.
func plainDecimal(s string) bool {
	if len(s) > 40 {
		return false
	}
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	intPart, frac, hasPoint := strings.Cut(s, ".")
	return allDigits(intPart) && (!hasPoint || allDigits(frac))
}
