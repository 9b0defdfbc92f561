package route

import (
	"maps"
	"slices"
	"testing"
)

var conditionMessage = []string{
	`MSH|^~\&|MON|ST_THOMAS^1.2.3^ISO|AORTA|HOSP|20261126120000||ORU^R01^ORU_R01|1|P|2.6`,
	`PID|||123^^^HOSP^MR~456^^^NHS^NH||O\F\NEIL^MARY||19700101|F`,
	`PV1||I|ICU^01^A`,
	`OBR|1|||VITALS`,
	`OBX|1|NM|8867-4^Heart rate^LN||72|/min|||||F`,
	`OBX|2|NM|9279-1^Resp rate^LN||18|/min|||||F`,
	`OBX|3|ST|X^Note^L||A\S\B||||||X`,
	`NTE|1||DE LA CRUZ`,
}

func TestConditionHolds(t *testing.T) {
	m := message(t, conditionMessage...)
	tests := []struct {
		cond string
		want bool
	}{
		// == and != on a single segment.
		{"PID-8 == F", true},
		{"PID-8 == M", false},
		{"PID-8 != M", true},
		{"PID-8 != F", false},
		{"PID-8==F", true},
		{"PV1-3.1 == ICU", true},
		{"MSH-9.2 == R01", true},
		{`MSH-2 == ^~\&`, true},
		// Repeating segments: any occurrence for the positive operators,
		// no occurrence for the negative ones.
		{"OBX-3.1 == 9279-1", true},
		{"OBX-3.1 != 9279-1", false},
		{"OBX-3.1 != 1234-5", true},
		{"OBX-11 == X", true},
		{"OBX-11 != X", false},
		{"OBX-11 != D", true},
		{"OBX-3.1 in [8867-4, 2708-6]", true},
		{"OBX-3.1 not in [8867-4]", false},
		{"OBX-3.1 not in [2708-6, 59408-5]", true},
		{`OBX-5 =~ ^7\d$`, true},
		{"OBX-5 !~ ^7", false},
		{"OBX-5 !~ ^9", true},
		// An indexed segment is that occurrence only.
		{"OBX[2]-3.1 == 9279-1", true},
		{"OBX[1]-3.1 == 9279-1", false},
		{"OBX[9]-3.1 == x", false},
		{"OBX[9]-3.1 != x", true},
		{"OBX[9]-3.1 empty", true},
		{"OBX[*]-3.1 == 9279-1", true},
		// Values compare decoded.
		{"PID-5.1 == O|NEIL", true},
		{`PID-5.1 == "O|NEIL"`, true},
		{`PID-5.1 == O\F\NEIL`, false},
		{"OBX[3]-5 == A^B", true},
		// Field repetitions.
		{"PID-3.1 == 123", true},
		{"PID-3.1 == 456", false},
		{"PID-3[2].1 == 456", true},
		{"PID-3[*].1 == 456", true},
		{"PID-3[*].5 == NH", true},
		{"PID-3[*].1 != 789", true},
		{"PID-3[*].1 != 456", false},
		{"PID-3[*].1 not in [123, 456]", false},
		{"PID-3[*].1 in[999, 123]", true},
		{"PID-19[*] empty", true},
		{`PID-19[*] == ""`, true},
		// A whole field with components is compared as sent.
		{"PID-3 == 123", false},
		{`PID-3 =~ ^123\^\^\^HOSP`, true},
		{"MSH-4 =~ ^ST_", true},
		{"MSH-4.1 =~ ^ST_THOMAS$", true},
		{"MSH-4.1 !~ ^TEST_", true},
		// exists and empty, and absent segments.
		{"PID-3 exists", true},
		{"PID-19 exists", false},
		{"PID-19 empty", true},
		{`PID-19 == ""`, true},
		{"ZZZ-1 exists", false},
		{"ZZZ-1 empty", true},
		{"ZZZ-1 != x", true},
		{`ZZZ-1 == ""`, false},
		// Quoting.
		{"NTE-3 == DE LA CRUZ", true},
		{`NTE-3 == "DE LA CRUZ"`, true},
		{`NTE-3 == 'DE LA CRUZ'`, true},
		{`NTE-3 == " DE LA CRUZ"`, false},
		{`NTE-3 in ["DE LA CRUZ", X]`, true},
		{`PID-5.2 in ['MARY', "JO\"HN"]`, true},
	}
	for _, tt := range tests {
		t.Run(tt.cond, func(t *testing.T) {
			c, cerr := parseCondition(tt.cond)
			if cerr != nil {
				t.Fatalf("parseCondition: %s (at %d)", cerr.reason, cerr.off)
			}
			if got := c.holds(m); got != tt.want {
				t.Errorf("holds = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseConditionValues(t *testing.T) {
	tests := []struct {
		cond  string
		op    op
		value string
		set   []string
		re    string
	}{
		{cond: `PID-5.1 == DE LA CRUZ  `, op: opEq, value: "DE LA CRUZ"},
		{cond: `PID-5.1 != ""`, op: opNe, value: ""},
		{cond: `PID-5.1 == "a \"b\" \\ \d"`, op: opEq, value: `a "b" \ \d`},
		{cond: `PID-5.1 == 'it''s'`, op: opEq, value: `it's`},
		{cond: `OBX-3.1 in [A, "B, C", 'D''E', "x\"y", " s ", a\b]`, op: opIn, set: []string{"A", "B, C", "D'E", `x"y`, " s ", `a\b`}},
		{cond: `OBX-3.1 not   in [A]`, op: opNotIn, set: []string{"A"}},
		{cond: `MSH-7 =~ "\d+ $"`, op: opMatch, re: `\d+ $`},
		{cond: `MSH-7 !~ ^20[0-9]{12}`, op: opNotMatch, re: `^20[0-9]{12}`},
		{cond: `PID-5.1 in [A, "B, C", 'O''NEIL']`, op: opIn, set: []string{"A", "B, C", "O'NEIL"}},
		{cond: `MSH-7 =~ "\d{14}"`, op: opMatch, re: `\d{14}`},
		{cond: `NTE-3 == " indented"`, op: opEq, value: " indented"},
		{cond: `  PID-3 exists  `, op: opExists},
		{cond: `PID-3 empty`, op: opEmpty},
	}
	for _, tt := range tests {
		t.Run(tt.cond, func(t *testing.T) {
			c, cerr := parseCondition(tt.cond)
			if cerr != nil {
				t.Fatalf("parseCondition: %s (at %d)", cerr.reason, cerr.off)
			}
			if c.op != tt.op || c.value != tt.value {
				t.Errorf("op %d value %q, want %d %q", c.op, c.value, tt.op, tt.value)
			}
			if tt.set != nil {
				got := slices.Sorted(maps.Keys(c.set))
				want := slices.Sorted(slices.Values(tt.set))
				if !slices.Equal(got, want) {
					t.Errorf("set = %q, want %q", got, want)
				}
			}
			if tt.re != "" && (c.re == nil || c.re.String() != tt.re) {
				t.Errorf("regexp = %v, want %s", c.re, tt.re)
			}
		})
	}
}

func TestParsePath(t *testing.T) {
	tests := []struct {
		path   string
		loc    string
		anyRep bool
		err    string
	}{
		{path: "PID-8", loc: "PID-8"},
		{path: "PID-3[2].1", loc: "PID-3[2].1"},
		{path: "OBX[2]-5.1.2", loc: "OBX[2]-5.1.2"},
		{path: "PID-3[*].1", loc: "PID-3.1", anyRep: true},
		{path: "PID-3[*]", loc: "PID-3", anyRep: true},
		{path: "OBX[2]-3[*].1", loc: "OBX[2]-3.1", anyRep: true},
		{path: "OBX[*]-3.1", loc: "OBX-3.1"},
		{path: "PID-3[*][*]", err: "[*] may appear once in a field path"},
		{path: "PID[*]-3[*]", err: "[*] may appear once in a field path"},
		{path: "PID-3[*].1[*]", err: "[*] may appear once in a field path"},
		{path: "PID[2]", err: `field path "PID[2]" names a segment, not a field: write PID-3, for example`},
		{path: "PID-0", err: `bad field path "PID-0": field: numbers start at 1`},
		{path: "PID-3.x", err: `bad field path "PID-3.x": component: expected a number`},
		{path: "PI-3", err: `bad field path "PI-3": segment name must be three upper-case letters or digits`},
		{path: "obx-3.1", err: `bad field path "obx-3.1": segment name must be three upper-case letters or digits (segment names are upper case: did you mean "OBX-3.1"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			loc, anyRep, reason := parsePath(tt.path)
			if reason != tt.err {
				t.Fatalf("reason = %q, want %q", reason, tt.err)
			}
			if tt.err == "" && (loc.String() != tt.loc || anyRep != tt.anyRep) {
				t.Errorf("= %s any %v, want %s any %v", loc, anyRep, tt.loc, tt.anyRep)
			}
		})
	}
}

// TestQuotedConditionInYAML checks the documented way to write a
// condition holding ": ".
func TestQuotedConditionInYAML(t *testing.T) {
	c := mustParse(t, "version: 1\nroutes:\n  - name: a\n    match:\n      where: ['NTE-3 == \"note: see below\"']\n")
	m := message(t, `MSH|^~\&|A|B|C|D|2026||ADT^A01|1|P|2.5`, "NTE|1||note: see below")
	if len(c.Match(m)) != 1 {
		t.Errorf("condition with a colon did not match: %s", c.Routes[0].Mismatch(m))
	}
}
