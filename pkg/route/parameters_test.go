package route

import (
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/aortahealth/aorta/pkg/clinical"
)

func params(t *testing.T, body string) *clinical.Table {
	t.Helper()
	return mustParse(t, "version: 1\nparameters:\n"+body+"routes: []\n").Parameters
}

func TestParameterTable(t *testing.T) {
	tab := params(t, `  heart_rate:
    description: Heart rate or pulse
    unit: /min
    codes:
      LN: [8867-4]
      MDC: [147842, "149530"]
    units: {"{beat}/min": same, "264864": same}
  consciousness:
    type: coded
    codes: {ln: [67775-7]}
    answers: {A: [248234008, A], V: [255373000, V]}
`)
	hr, ok := tab.Lookup(clinical.Code{System: "MDC", Code: "149530"})
	if !ok || hr.Name != "heart_rate" || hr.Kind != clinical.Numeric || hr.Unit != "/min" || hr.Description != "Heart rate or pulse" {
		t.Fatalf("Lookup(MDC 149530) = %+v, %v", hr, ok)
	}
	if p, ok := tab.Lookup(clinical.Code{System: "MDC", Code: "147842"}); !ok || p != hr {
		t.Errorf("an MDC code written as a YAML number is not found")
	}
	for _, u := range []string{"/min", "{beat}/min", "264864"} {
		c, ok := hr.Units[u]
		if !ok || c.Func != "" || !c.Factor.Equal(decimal.NewFromInt(1)) || !c.Offset.IsZero() {
			t.Errorf("unit %q = %+v, %v; want same", u, c, ok)
		}
	}
	if len(hr.Units) != 3 {
		t.Errorf("units = %v, want 3", hr.Units)
	}
	avpu, ok := tab.Lookup(clinical.Code{System: "LN", Code: "67775-7"})
	if !ok || avpu.Kind != clinical.Coded || avpu.Unit != "" || avpu.Units != nil {
		t.Fatalf("consciousness = %+v, %v", avpu, ok)
	}
	if avpu.Codes[0].System != "LN" {
		t.Errorf("coding system written ln is stored as %q, want LN", avpu.Codes[0].System)
	}
	want := map[string]string{"248234008": "A", "A": "A", "255373000": "V", "V": "V"}
	if len(avpu.Answers) != len(want) {
		t.Errorf("answers = %v, want %v", avpu.Answers, want)
	}
	for k, v := range want {
		if avpu.Answers[k] != v {
			t.Errorf("answer %q -> %q, want %q", k, avpu.Answers[k], v)
		}
	}
}

func TestConversions(t *testing.T) {
	tab := params(t, `  temperature:
    unit: Cel
    codes: {LN: [8310-5]}
    units:
      Cel: same
      "[degF]": fahrenheit
      K: {offset: -273.15}
  creatinine:
    unit: umol/L
    codes: {LN: [2160-0]}
    units:
      mg/dL: {factor: 88.4}
      mmol/L: {factor: "1000"}
      odd: {factor: 0.5, offset: 1.25}
`)
	tests := []struct {
		param, unit    string
		factor, offset string
		fn             string
	}{
		{"temperature", "Cel", "1", "0", ""},
		{"temperature", "[degF]", "1", "0", "fahrenheit"},
		{"temperature", "K", "1", "-273.15", ""},
		{"creatinine", "umol/L", "1", "0", ""}, // the canonical unit, implied
		{"creatinine", "mg/dL", "88.4", "0", ""},
		{"creatinine", "mmol/L", "1000", "0", ""},
		{"creatinine", "odd", "0.5", "1.25", ""},
	}
	for _, tt := range tests {
		t.Run(tt.param+" "+tt.unit, func(t *testing.T) {
			p, _ := tab.Parameter(tt.param)
			c, ok := p.Units[tt.unit]
			if !ok {
				t.Fatalf("unit %q missing from %v", tt.unit, p.Units)
			}
			if c.Factor.String() != tt.factor || c.Offset.String() != tt.offset || c.Func != tt.fn {
				t.Errorf("conversion = factor %s offset %s func %q, want %s %s %q", c.Factor, c.Offset, c.Func, tt.factor, tt.offset, tt.fn)
			}
		})
	}
	// 88.4 must be exact, not the nearest binary fraction.
	p, _ := tab.Parameter("creatinine")
	if got := decimal.RequireFromString("1.1").Mul(p.Units["mg/dL"].Factor).String(); got != "97.24" {
		t.Errorf("1.1 mg/dL = %s umol/L, want 97.24", got)
	}
}

func TestParameterErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string
	}{
		{
			name: "duplicate code across parameters names both places",
			body: `  heart_rate:
    unit: /min
    codes: {MDC: [149530]}
  pulse:
    unit: /min
    codes:
      MDC: [149530]
`,
			want: []string{`routes.yaml:9:13: code MDC 149530 already maps to parameter "heart_rate" (routes.yaml:5:19): one observation must feed one parameter`},
		},
		{
			name: "duplicate code across systems written differently",
			body: `  a: {unit: "1", codes: {LN: [8867-4]}}
  b: {unit: "1", codes: {ln: [" 8867-4"]}}
`,
			want: []string{`routes.yaml:4:31: code LN 8867-4 already maps to parameter "a" (routes.yaml:3:31): one observation must feed one parameter`},
		},
		{
			name: "unknown conversion function",
			body: `  t:
    unit: Cel
    codes: {LN: [8310-5]}
    units: {"[degF]": farenheit, x: kelvin, y: 1.8}
`,
			want: []string{
				`routes.yaml:6:23: unknown unit conversion "farenheit" (did you mean "fahrenheit"?)`,
				`routes.yaml:6:37: unknown unit conversion "kelvin" (write same, fahrenheit, or {factor: 88.4, offset: 0})`,
				`routes.yaml:6:48: unknown unit conversion "1.8" (write same, fahrenheit, or {factor: 88.4, offset: 0})`,
			},
		},
		{
			name: "bad factors",
			body: `  t:
    unit: Cel
    codes: {LN: [8310-5]}
    units:
      a: {factor: 0}
      b: {factor: 1e3}
      c: {factor: 1_000}
      d: {factor: [1]}
      e: {}
      f: {offset: .inf}
      g: {factr: 2}
`,
			want: []string{
				`routes.yaml:7:19: factor must not be 0`,
				`routes.yaml:8:19: "factor" must be a decimal number such as 88.4, not "1e3"`,
				`routes.yaml:9:19: "factor" must be a decimal number such as 88.4, not "1_000"`,
				`routes.yaml:10:19: "factor" must be text, not a list`,
				`routes.yaml:11:10: conversion of unit "e" of parameter "t" is empty: write same, or give a factor and/or an offset`,
				`routes.yaml:12:19: "offset" must be text, not the number .inf`,
				`routes.yaml:13:11: unknown key "factr" in unit conversion (did you mean "factor"?)`,
			},
		},
		{
			name: "LOINC and MDC code checks",
			body: `  p:
    unit: "1"
    codes:
      LN: [8867-5, 8867, LP1234-5, LA6576-8, X-1]
      MDC: [MDC_PULS_RATE, 150456]
      LOINC: [8867-4]
`,
			want: []string{
				`routes.yaml:6:12: LOINC code "8867-5" has a wrong check digit (8867-4 would be valid): a typo?`,
				`routes.yaml:6:20: LOINC code "8867" is not of the form 8867-4`,
				`routes.yaml:6:46: LOINC code "X-1" is not of the form 8867-4`,
				`routes.yaml:7:13: MDC code "MDC_PULS_RATE" must be the number sent in OBX-3.1, such as 150456, not a reference ID such as MDC_PULS_OXIM_SAT_O2`,
				`routes.yaml:8:7: coding system "LOINC": write LN, its HL7 table 0396 code, as sent in OBX-3.3`,
			},
		},
		{
			name: "numeric and coded keys",
			body: `  n:
    codes: {LN: [8867-4]}
    answers: {A: [A]}
  c:
    type: coded
    unit: "1"
    codes: {LN: [9279-1]}
  k:
    type: numerc
    unit: "1"
    codes: {LN: [2708-6]}
`,
			want: []string{
				`routes.yaml:3:3: parameter "n" needs a unit: the canonical UCUM unit its values are converted to`,
				`routes.yaml:5:5: parameter "n" is numeric: answers belong to coded parameters (add type: coded)`,
				`routes.yaml:6:3: parameter "c" is coded and needs answers: the accepted OBX-5 values for each canonical value`,
				`routes.yaml:8:5: parameter "c" is coded: "unit" belongs to numeric parameters`,
				`routes.yaml:11:11: type must be numeric or coded, not "numerc" (did you mean "numeric"?)`,
			},
		},
		{
			name: "missing codes and bad names",
			body: `  Heart-Rate:
    unit: /min
  empty_codes:
    unit: /min
    codes: {LN: []}
`,
			want: []string{
				`routes.yaml:3:3: parameter name "Heart-Rate" must start with a lower-case letter and hold only lower-case letters, digits and _ (at most 64)`,
				`routes.yaml:4:5: missing required key "codes" in parameter "Heart-Rate"`,
				`routes.yaml:7:5: parameter "empty_codes" has no codes: list the OBX-3 codes that carry it`,
			},
		},
		{
			name: "answers claimed twice",
			body: `  avpu:
    type: coded
    codes: {LN: [67775-7]}
    answers:
      A: [A, 248234008]
      C: [C, "248234008"]
`,
			want: []string{`routes.yaml:8:14: value "248234008" is already accepted for answer "A" (routes.yaml:7:14)`},
		},
		{
			name: "units differing only in case",
			body: `  u:
    unit: mmol/L
    codes: {LN: [2524-7]}
    units:
      mg/dL: {factor: 0.111}
      MG/DL: {factor: 0.111}
      mg/dl: {factor: 0.11}
      MMOL/L: {factor: 1000}
      MMOL/l: same
`,
			want: []string{
				`routes.yaml:9:7: units "mg/dl" and "mg/dL" (routes.yaml:7:7) differ only in letter case but convert differently`,
				`routes.yaml:10:7: units "MMOL/L" and "mmol/L" (the canonical unit) differ only in letter case but convert differently`,
			},
		},
		{
			name: "canonical unit converting",
			body: `  t:
    unit: Cel
    codes: {LN: [8310-5]}
    units: {Cel: {factor: 2}}
`,
			want: []string{`routes.yaml:6:13: "Cel" is the canonical unit of parameter "t", so it converts as same`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("routes.yaml", []byte("version: 1\nparameters:\n"+tt.body+"routes: []\n"), testRegistry)
			got := strings.Join(errorLines(err), "\n")
			if want := strings.Join(tt.want, "\n"); got != want {
				t.Errorf("errors:\ngot:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestLOINCCheckDigits checks every LOINC code of the clinical reference.
func TestLOINCCheckDigits(t *testing.T) {
	codes := []string{
		"8867-4", "9279-1", "2708-6", "59408-5", "8480-6", "8462-4", "8310-5",
		"8331-1", "8328-7", "8332-9", "8333-7", "8329-5", "67775-7", "9269-2",
		"3151-8", "3150-0", "6690-2", "26464-8", "764-1", "26508-2", "2524-7",
		"32693-4", "2518-9", "2519-7", "2160-0", "14682-9", "2019-8", "LA6576-8",
	}
	for _, c := range codes {
		if reason := checkCode("LN", c); reason != "" {
			t.Errorf("%s: %s", c, reason)
		}
	}
	for _, c := range []string{"8867-3", "9279-2", "12345678-9", "-1", "8867-", "88a7-4"} {
		if checkCode("LN", c) == "" {
			t.Errorf("%s accepted", c)
		}
	}
}
