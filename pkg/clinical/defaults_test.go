package clinical

import (
	"testing"

	"github.com/shopspring/decimal"
)

// reference is REFERENCE.md's "Codes" table, written out independently of
// DefaultParameters so that a slip in either shows up.
var reference = []struct {
	param string
	codes []Code
	units []string // every unit the reference lists for it
}{
	{RespiratoryRate, []Code{{LOINC, "9279-1"}, {MDC, "151562"}, {MDC, "151570"}, {MDC, "151578"}, {MDC, "151586"}, {MDC, "151594"}}, []string{"264928", "/min"}},
	{SpO2, []Code{{LOINC, "2708-6"}, {LOINC, "59408-5"}, {MDC, "150456"}}, []string{"%", "262688"}},
	{HeartRate, []Code{{LOINC, "8867-4"}, {MDC, "147842"}, {MDC, "149530"}, {MDC, "149546"}, {MDC, "149522"}, {MDC, "149514"}}, []string{"264864", "/min", "{beat}/min"}},
	{SystolicBP, []Code{{LOINC, "8480-6"}, {MDC, "150021"}, {MDC, "150301"}, {MDC, "150033"}, {MDC, "150037"}, {MDC, "150017"}}, []string{"266016", "mm[Hg]"}},
	{DiastolicBP, []Code{{LOINC, "8462-4"}, {MDC, "150022"}, {MDC, "150302"}, {MDC, "150034"}}, []string{"266016", "mm[Hg]"}},
	{Temperature, []Code{
		{LOINC, "8310-5"}, {LOINC, "8331-1"}, {LOINC, "8328-7"}, {LOINC, "8332-9"}, {LOINC, "8333-7"}, {LOINC, "8329-5"},
		{MDC, "150344"}, {MDC, "150364"}, {MDC, "150368"}, {MDC, "150392"}, {MDC, "188420"}, {MDC, "188424"}, {MDC, "192780"},
	}, []string{"268192", "Cel", "266560", "[degF]"}},
	{Consciousness, []Code{{LOINC, "67775-7"}}, nil},
	{GCS, []Code{{LOINC, "9269-2"}}, nil},
	{O2Flow, []Code{{LOINC, "3151-8"}}, []string{"L/min", "265216"}},
	{FiO2, []Code{{LOINC, "3150-0"}, {MDC, "151920"}, {MDC, "152196"}}, []string{"%", "262688"}},
	{WBC, []Code{{LOINC, "6690-2"}, {LOINC, "26464-8"}}, []string{"10*9/L"}},
	{Bands, []Code{{LOINC, "764-1"}, {LOINC, "26508-2"}}, []string{"%"}},
	{Lactate, []Code{{LOINC, "2524-7"}, {LOINC, "32693-4"}, {LOINC, "2518-9"}, {LOINC, "2519-7"}}, []string{"mmol/L"}},
	{Creatinine, []Code{{LOINC, "2160-0"}, {LOINC, "14682-9"}}, []string{"mg/dL", "umol/L"}},
	{PaCO2, []Code{{LOINC, "2019-8"}}, []string{"mm[Hg]"}},
	{OnOxygen, []Code{{SNOMED, "371825009"}, {SNOMED, "722742002"}}, nil},
}

func TestDefaultParametersCoverTheReference(t *testing.T) {
	t.Parallel()
	tab := defaultTable(t)
	for _, r := range reference {
		p, ok := tab.Parameter(r.param)
		if !ok {
			t.Errorf("parameter %q missing", r.param)
			continue
		}
		for _, c := range r.codes {
			got, ok := tab.Lookup(c)
			if !ok || got.Name != r.param {
				t.Errorf("code %s %s: got %v, want %q", c.System, c.Code, got, r.param)
			}
		}
		for _, u := range r.units {
			if _, ok := p.Units[u]; !ok {
				t.Errorf("%s: unit %q missing", r.param, u)
			}
		}
	}
	if len(tab.Names()) != len(reference) {
		t.Errorf("DefaultParameters has %d parameters %v, the reference %d", len(tab.Names()), tab.Names(), len(reference))
	}
}

func TestDefaultParametersAreValid(t *testing.T) {
	t.Parallel()
	for _, p := range DefaultParameters() {
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", p.Name, err)
		}
		if p.Description == "" {
			t.Errorf("%s: no description", p.Name)
		}
	}
}

func TestDefaultParametersAreFreshCopies(t *testing.T) {
	t.Parallel()
	a := DefaultParameters()
	a[0].Units["bogus"] = Conversion{}
	a[0].Codes[0].Code = "changed"
	b := DefaultParameters()
	if _, ok := b[0].Units["bogus"]; ok || b[0].Codes[0].Code == "changed" {
		t.Error("DefaultParameters shares state between calls")
	}
}

func TestACVPUAnswers(t *testing.T) {
	t.Parallel()
	p := param(t, Consciousness)
	want := map[string]string{
		"248234008": "A", "130987000": "C", "255373000": "V", "450847001": "P", "422768004": "U",
		"A": "A", "C": "C", "V": "V", "P": "P", "U": "U",
	}
	if len(p.Answers) != len(want) {
		t.Errorf("answers = %v, want %v", p.Answers, want)
	}
	for k, v := range want {
		if p.Answers[k] != v {
			t.Errorf("answer %s = %q, want %q", k, p.Answers[k], v)
		}
	}
}

func TestLookupNeverTrustsDisplayOrWrongSystem(t *testing.T) {
	t.Parallel()
	tab := defaultTable(t)
	tests := []struct {
		name string
		code Code
		want string
	}{
		{"LOINC with LN", Code{"LN", "8867-4"}, HeartRate},
		{"LOINC system lower case", Code{"ln", "8867-4"}, HeartRate},
		{"LOINC spelled out", Code{"LOINC", "8867-4"}, HeartRate},
		{"blanks trimmed", Code{" MDC ", " 150021 "}, SystolicBP},
		{"MDC number with LN system", Code{"LN", "150021"}, ""},
		{"LOINC code under MDC", Code{"MDC", "8867-4"}, ""},
		{"MDC reference id text is not a code", Code{"MDC", "MDC_PRESS_BLD_NONINV_SYS"}, ""},
		{"MDC code with a suffix", Code{"MDC", "1500212"}, ""},
		{"SNOMED alias", Code{"SNOMED", "722742002"}, OnOxygen},
		{"no system", Code{"", "8867-4"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, ok := tab.Lookup(tt.code)
			got := ""
			if ok {
				got = p.Name
			}
			if got != tt.want {
				t.Errorf("Lookup(%v) = %q, want %q", tt.code, got, tt.want)
			}
		})
	}
}

func TestNewTableRejectsSharedCodesAcrossAliases(t *testing.T) {
	t.Parallel()
	_, err := NewTable([]*Parameter{
		{Name: "a", Codes: []Code{{"LN", "1-1"}}},
		{Name: "b", Codes: []Code{{"LOINC", "1-1"}}},
	})
	if err == nil {
		t.Error("the same LOINC code under LN and LOINC was accepted for two parameters")
	}
}

func TestParameterEqual(t *testing.T) {
	t.Parallel()
	a, b := DefaultParameters(), DefaultParameters()
	for i := range a {
		if !a[i].Equal(b[i]) {
			t.Errorf("%s differs from itself", a[i].Name)
		}
	}
	one := decimal.NewFromInt(1)
	named := func(name string) *Parameter {
		for _, p := range DefaultParameters() {
			if p.Name == name {
				return p
			}
		}
		t.Fatalf("no parameter %s", name)
		return nil
	}
	temp := func(edit func(*Parameter)) *Parameter {
		p := named(Temperature)
		edit(p)
		return p
	}
	base := temp(func(*Parameter) {})
	tests := []struct {
		name string
		p    *Parameter
		want bool
	}{
		{"same written as factor 1", temp(func(p *Parameter) { p.Units["Cel"] = Conversion{Factor: one} }), true},
		{"fahrenheit with factor 1", temp(func(p *Parameter) { p.Units["[degF]"] = Conversion{Factor: one, Func: Fahrenheit} }), true},
		{"codes reordered and spelled differently", temp(func(p *Parameter) {
			p.Codes[0], p.Codes[1] = p.Codes[1], p.Codes[0]
			p.Codes[2].System = "loinc"
		}), true},
		{"description ignored", temp(func(p *Parameter) { p.Description = "x" }), true},
		{"a unit less", temp(func(p *Parameter) { delete(p.Units, "Cel") }), false},
		{"another conversion", temp(func(p *Parameter) { p.Units["Cel"] = Conversion{Factor: decimal.NewFromInt(2)} }), false},
		{"a code less", temp(func(p *Parameter) { p.Codes = p.Codes[1:] }), false},
		{"another canonical unit", temp(func(p *Parameter) { p.Unit = "K" }), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		if got := base.Equal(tt.p); got != tt.want {
			t.Errorf("%s: Equal = %v, want %v", tt.name, got, tt.want)
		}
	}
	c, d := named(Consciousness), named(Consciousness)
	d.Answers["A"] = "V"
	if c.Equal(d) {
		t.Error("different answers compare equal")
	}
}
