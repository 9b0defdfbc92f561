// Package clinical defines the clinical parameters Aorta scores and alerts
// on (heart_rate, spo2, temperature, consciousness, ...), the observation
// codes that carry them, and the normalisation of their values to one
// canonical unit. routes.yaml declares the tables; the event mapping uses
// them to turn an OBX into a typed observation.
package clinical

import (
	"fmt"
	"sort"
	"strings"

	"github.com/shopspring/decimal"
)

// Kind says how a parameter's value is represented.
type Kind string

const (
	// Numeric values are decimals in the parameter's canonical unit.
	Numeric Kind = "numeric"
	// Coded values are one of the parameter's answers (e.g. ACVPU letters).
	Coded Kind = "coded"
)

// Code identifies an observation: a coding system as written in OBX-3.3
// (LN for LOINC, MDC for IEEE 11073, SCT for SNOMED CT, or a local name)
// and the code in OBX-3.1.
type Code struct {
	System string
	Code   string
}

// Conversion turns a value in some unit into the canonical unit:
// canonical = value*Factor + Offset, or a named non-linear Func.
type Conversion struct {
	Factor decimal.Decimal // 1 when unset
	Offset decimal.Decimal
	// Func names a conversion that is not linear with exact decimals, e.g.
	// "fahrenheit" ((F-32)*5/9, rounded half-up to 0.1 as NEWS2 requires).
	Func string
}

// Parameter is one clinical parameter.
type Parameter struct {
	Name        string
	Description string
	Kind        Kind
	// Unit is the canonical unit (UCUM) every value is normalised to.
	Unit  string
	Codes []Code
	// Units maps each accepted OBX-6 unit (UCUM text or MDC unit code) to
	// its conversion into Unit. An observation in a unit not listed is
	// invalid for this parameter: a wrong unit must never be scored.
	Units map[string]Conversion
	// Answers maps an accepted coded answer (OBX-5.1, e.g. a SNOMED code or
	// a plain letter) to its canonical value, for Coded parameters.
	Answers map[string]string
}

// Table finds parameters by observation code.
type Table struct {
	byName map[string]*Parameter
	byCode map[Code]*Parameter
}

// NewTable indexes parameters. A code claimed by two parameters is an
// error: one observation must never feed two parameters.
func NewTable(params []*Parameter) (*Table, error) {
	t := &Table{byName: map[string]*Parameter{}, byCode: map[Code]*Parameter{}}
	for _, p := range params {
		if _, dup := t.byName[p.Name]; dup {
			return nil, fmt.Errorf("parameter %q is declared twice", p.Name)
		}
		t.byName[p.Name] = p
		for _, c := range p.Codes {
			c = normCode(c)
			if other, dup := t.byCode[c]; dup {
				return nil, fmt.Errorf("code %s %s maps to both %q and %q", c.System, c.Code, other.Name, p.Name)
			}
			t.byCode[c] = p
		}
	}
	return t, nil
}

// Lookup returns the parameter an observation code maps to.
func (t *Table) Lookup(c Code) (*Parameter, bool) {
	if t == nil {
		return nil, false
	}
	p, ok := t.byCode[normCode(c)]
	return p, ok
}

// Parameter returns the parameter with this name.
func (t *Table) Parameter(name string) (*Parameter, bool) {
	if t == nil {
		return nil, false
	}
	p, ok := t.byName[name]
	return p, ok
}

// Names lists the parameters, sorted.
func (t *Table) Names() []string {
	names := make([]string, 0, len(t.byName))
	for n := range t.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// normCode compares coding systems case-insensitively and ignores blanks
// around codes, which senders pad inconsistently.
func normCode(c Code) Code {
	return Code{System: strings.ToUpper(strings.TrimSpace(c.System)), Code: strings.TrimSpace(c.Code)}
}
