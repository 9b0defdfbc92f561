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
// canonical = value*Factor + Offset, or a named non-linear Func. The zero
// Conversion is "same": the value is already in the canonical unit.
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

// systemAliases maps coding-system names senders write in place of the
// HL7 table 0396 mnemonic to that mnemonic. Only unambiguous spellings of
// the same system are listed: "LOINC" is LN (corpus: a v2.3 lab writes
// OBR-4.6 "LOINC"), and the SNOMED CT spellings are SCT.
var systemAliases = map[string]string{
	"LOINC":     "LN",
	"SNOMED":    "SCT",
	"SNOMEDCT":  "SCT",
	"SNOMED-CT": "SCT",
	"SNOMED CT": "SCT",
}

// normCode compares coding systems case-insensitively, reads the aliases
// in systemAliases as their table 0396 mnemonic and ignores blanks around
// codes, which senders pad inconsistently.
func normCode(c Code) Code {
	sys := strings.ToUpper(strings.TrimSpace(c.System))
	if a, ok := systemAliases[sys]; ok {
		sys = a
	}
	return Code{System: sys, Code: strings.TrimSpace(c.Code)}
}

// Normalized returns the code with its system in canonical form (upper
// case, aliases such as LOINC read as LN) and blanks trimmed: the form
// Table.Lookup compares.
func (c Code) Normalized() Code { return normCode(c) }

// Validate reports a parameter that could not normalise any value: no
// name, an unknown kind, a numeric parameter without units or with an
// unknown conversion function, units that differ only in letter case but
// convert differently, or a coded parameter without answers. NewTable
// does not call it, so that a table can be built from a partial
// declaration; configuration loaders (routes.yaml) should.
func (p *Parameter) Validate() error {
	if p == nil {
		return fmt.Errorf("parameter is nil")
	}
	if p.Name == "" {
		return fmt.Errorf("parameter without a name")
	}
	for _, c := range p.Codes {
		if n := normCode(c); n.System == "" || n.Code == "" {
			return fmt.Errorf("parameter %q: a code needs both a coding system and a code", p.Name)
		}
	}
	switch p.Kind {
	case Numeric:
		if p.Unit == "" {
			return fmt.Errorf("parameter %q: a numeric parameter needs a canonical unit", p.Name)
		}
		if len(p.Units) == 0 {
			return fmt.Errorf("parameter %q: a numeric parameter needs at least one accepted unit", p.Name)
		}
		units := make([]string, 0, len(p.Units))
		for u := range p.Units {
			units = append(units, u)
		}
		sort.Strings(units)
		for i, u := range units {
			c := p.Units[u]
			switch c.Func {
			case "":
			case Fahrenheit:
				if !c.factor().Equal(decimal.NewFromInt(1)) || !c.Offset.IsZero() {
					return fmt.Errorf("parameter %q: unit %q: a conversion function cannot be combined with a factor or an offset", p.Name, u)
				}
			default:
				return fmt.Errorf("parameter %q: unit %q: unknown conversion function %q (known: %s)", p.Name, u, c.Func, Fahrenheit)
			}
			for _, v := range units[i+1:] {
				if strings.EqualFold(u, v) && !c.Equal(p.Units[v]) {
					return fmt.Errorf("parameter %q: units %q and %q differ only in letter case but convert differently", p.Name, u, v)
				}
			}
		}
	case Coded:
		if len(p.Answers) == 0 {
			return fmt.Errorf("parameter %q: a coded parameter needs at least one answer", p.Name)
		}
	default:
		return fmt.Errorf("parameter %q: kind must be %q or %q", p.Name, Numeric, Coded)
	}
	return nil
}

// Equal reports whether two conversions convert alike: an unset Factor
// equals a Factor of 1, and decimals compare by value (1.0 = 1).
func (c Conversion) Equal(o Conversion) bool {
	return c.factor().Equal(o.factor()) && c.Offset.Equal(o.Offset) && c.Func == o.Func
}

// Equal reports whether two parameters normalise alike: same name, kind,
// canonical unit, codes (in any order, compared as Table.Lookup compares
// them), units with equal conversions, and answers. Descriptions are not
// compared. It lets a configuration (routes.yaml) be tested against
// DefaultParameters.
func (p *Parameter) Equal(o *Parameter) bool {
	if p == nil || o == nil {
		return p == o
	}
	if p.Name != o.Name || p.Kind != o.Kind || p.Unit != o.Unit || len(p.Units) != len(o.Units) || len(p.Answers) != len(o.Answers) {
		return false
	}
	codes := func(cs []Code) map[Code]bool {
		m := make(map[Code]bool, len(cs))
		for _, c := range cs {
			m[normCode(c)] = true
		}
		return m
	}
	pc, oc := codes(p.Codes), codes(o.Codes)
	if len(pc) != len(oc) {
		return false
	}
	for c := range pc {
		if !oc[c] {
			return false
		}
	}
	for u, c := range p.Units {
		if oconv, ok := o.Units[u]; !ok || !c.Equal(oconv) {
			return false
		}
	}
	for k, v := range p.Answers {
		if ov, ok := o.Answers[k]; !ok || ov != v {
			return false
		}
	}
	return true
}

// factor returns Factor, or 1 when it is unset.
func (c Conversion) factor() decimal.Decimal {
	if c.Factor.IsZero() {
		return decimal.NewFromInt(1)
	}
	return c.Factor
}
