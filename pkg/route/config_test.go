package route

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aortahealth/aorta/pkg/clinical"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/invalid")

// TestParseErrors checks each kind of problem with its exact position and
// wording, as an analyst sees it.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "unknown key with suggestion",
			src: `version: 1
routes:
  - name: adt
    mach: {message_type: ADT}
    match: all
`,
			want: []string{`routes.yaml:4:5: unknown key "mach" in route (did you mean "match"?)`},
		},
		{
			name: "unknown key without a close match",
			src: `version: 1
colour: blue
routes: []
`,
			want: []string{`routes.yaml:2:1: unknown key "colour" in routes file`},
		},
		{
			name: "key at the wrong level",
			src: `version: 1
routes:
  - name: adt
    message_type: ADT
    match: all
`,
			want: []string{`routes.yaml:4:5: unknown key "message_type" in route (it belongs under "match")`},
		},
		{
			name: "route key inside match",
			src: `version: 1
routes:
  - name: adt
    match:
      message_type: ADT
      continue: true
`,
			want: []string{`routes.yaml:6:7: unknown key "continue" in match (it belongs under "the route")`},
		},
		{
			name: "missing version and routes",
			src: `timezone: UTC
`,
			want: []string{
				`routes.yaml:1:1: missing required key "routes" in routes file`,
				`routes.yaml:1:1: missing required key "version" in routes file`,
			},
		},
		{
			name: "missing match names the route",
			src: `version: 1
routes:
  - name: adt
    events: [adt]
`,
			want: []string{`routes.yaml:3:5: missing required key "match" in route "adt"`},
		},
		{
			name: "unsupported version",
			src: `version: 2
routes: []
`,
			want: []string{`routes.yaml:1:10: version 2 is not supported: this router reads version 1`},
		},
		{
			name: "version as text",
			src: `version: "1"
routes: []
`,
			want: []string{`routes.yaml:1:10: "version" must be a whole number, not the text "1"`},
		},
		{
			name: "wrong types",
			src: `version: 1
routes:
  - name: adt
    match: all
    preliminary: yes
    continue: 1
    events: {adt: true}
    description: [a]
`,
			want: []string{
				`routes.yaml:5:18: "preliminary" must be true or false, not the text "yes"`,
				`routes.yaml:6:15: "continue" must be true or false, not the number 1`,
				`routes.yaml:7:13: "events" must be a value or a list of values, not a mapping`,
				`routes.yaml:8:18: "description" must be text, not a list`,
			},
		},
		{
			name: "routes not a list",
			src: `version: 1
routes:
  name: adt
`,
			want: []string{`routes.yaml:3:3: "routes" must be a list, not a mapping`},
		},
		{
			name: "route not a mapping",
			src: `version: 1
routes:
  - adt
`,
			want: []string{`routes.yaml:3:5: route must be a mapping of keys to values, not the text "adt"`},
		},
		{
			name: "empty value for a boolean",
			src: `version: 1
routes:
  - name: adt
    match: all
    continue:
`,
			want: []string{`routes.yaml:5:5: "continue" has no value: write true or false`},
		},
		{
			name: "unknown mapping and handler",
			src: `version: 1
routes:
  - name: adt
    match: all
    events: [adts, observations, adt, adt]
    handlers: [news, sofa]
`,
			want: []string{
				`routes.yaml:5:14: unknown event mapping "adts" (did you mean "adt"?)`,
				`routes.yaml:5:39: event mapping "adt" is listed twice`,
				`routes.yaml:6:16: unknown handler "news" (did you mean "news2"?)`,
				`routes.yaml:6:22: unknown handler "sofa" (did you mean "qsofa"?)`,
			},
		},
		{
			name: "unknown name lists the known ones when nothing is close",
			src: `version: 1
routes:
  - name: adt
    match: all
    events: scoring
`,
			want: []string{`routes.yaml:5:13: unknown event mapping "scoring" (known: "adt", "observations")`},
		},
		{
			name: "bad route names and duplicates",
			src: `version: 1
routes:
  - name: adt
    match: {message_type: ADT}
  - name: adt
    match: {message_type: ORU}
  - name: Lab Results
    match: {message_type: ORM}
`,
			want: []string{
				`routes.yaml:5:11: route name "adt" is already used (routes.yaml:3:11)`,
				`routes.yaml:7:11: route name "Lab Results" must be made of lower-case letters, digits, _ and - (at most 64)`,
			},
		},
		{
			name: "empty match",
			src: `version: 1
routes:
  - name: a
    match:
  - name: b
    match: {}
  - name: c
    match: any
`,
			want: []string{
				`routes.yaml:4:5: empty match in route "a": add a criterion, or write "match: all" to match every message`,
				`routes.yaml:6:12: empty match in route "b": add a criterion, or write "match: all" to match every message`,
				`routes.yaml:8:12: match must be a mapping of criteria, or all, not the text "any"`,
			},
		},
		{
			name: "empty lists never match",
			src: `version: 1
routes:
  - name: a
    match:
      message_type: []
      where: []
`,
			want: []string{
				`routes.yaml:5:7: message_type lists no values, so the route would never match`,
				`routes.yaml:6:7: where lists no conditions`,
			},
		},
		{
			name: "header values",
			src: `version: 1
routes:
  - name: a
    match:
      message_type: adt
      trigger_event: [A01, A1, A01]
      version: [2.5, 3.0, "2.5.1", v2]
      processing_id: p
      sending_application: ""
`,
			want: []string{
				`routes.yaml:5:21: message_type "adt" is written in upper case in HL7 (did you mean "ADT"?)`,
				`routes.yaml:6:28: trigger_event "A1" must be three upper-case letters or digits, such as A01`,
				`routes.yaml:6:32: trigger_event "A01" is listed twice`,
				`routes.yaml:7:22: version "3.0" is not an HL7 v2 version such as 2.5 or 2.5.1`,
				`routes.yaml:7:36: version "v2" is not an HL7 v2 version such as 2.5 or 2.5.1`,
				`routes.yaml:8:22: processing_id "p" must be P (production), T (training) or D (debugging) (did you mean "P"?)`,
				`routes.yaml:9:28: sending_application is empty`,
			},
		},
		{
			name: "conditions point inside the text",
			src: `version: 1
routes:
  - name: a
    match:
      where:
        - pid-8 == F
        - PID-8 = F
        - PID-8 ==
        - OBX-3.1 in []
        - OBX-3.1 in [a, , b]
        - OBX-3.1 in [a, b
        - OBX-3.1 in a, b
        - MSH-4 =~ ^ST_(.*$
        - PID-3 exists now
        - PID-5.1 == "DE LA CRUZ
        - PID-5.1 == "DE" LA
        - PID-3[2][*] == x
        - PID == x
        - PID-8 is F
        - PID-8 not F
        - PID-3[*].1 =~ ""
        - == F
        - 'PID-5.1 == "A: B" and more'
`,
			want: []string{
				`routes.yaml:6:11: condition "pid-8 == F": bad field path "pid-8": segment name must be three upper-case letters or digits (segment names are upper case: did you mean "PID-8"?)`,
				`routes.yaml:7:17: condition "PID-8 = F": use == to compare (a single = is not an operator)`,
				`routes.yaml:8:19: condition "PID-8 ==": missing value: write "" to compare with an empty value`,
				`routes.yaml:9:23: condition "OBX-3.1 in []": empty list: it would never match`,
				`routes.yaml:10:26: condition "OBX-3.1 in [a, , b]": empty entry in the list`,
				`routes.yaml:11:27: condition "OBX-3.1 in [a, b": missing ] at the end of the list`,
				`routes.yaml:12:22: condition "OBX-3.1 in a, b": expected a list in brackets, such as [8867-4, 9279-1]`,
				`routes.yaml:13:20: condition "MSH-4 =~ ^ST_(.*$": bad regular expression: missing closing ): ` + "`^ST_(.*$`",
				`routes.yaml:14:24: condition "PID-3 exists now": nothing may follow exists or empty`,
				`routes.yaml:15:22: condition "PID-5.1 == \"DE LA CRUZ": missing closing quote`,
				`routes.yaml:16:26: condition "PID-5.1 == \"DE\" LA": unexpected text after the closing quote`,
				`routes.yaml:17:11: condition "PID-3[2][*] == x": [*] goes after a field number, as in PID-3[*].1`,
				`routes.yaml:18:11: condition "PID == x": field path "PID" names a segment, not a field: write PID-3, for example`,
				`routes.yaml:19:17: condition "PID-8 is F": unknown operator: expected one of ==, !=, =~, !~, in, not in, exists, empty`,
				`routes.yaml:20:21: condition "PID-8 not F": expected "in" after "not"`,
				`routes.yaml:21:25: condition "PID-3[*].1 =~ \"\"": empty regular expression`,
				`routes.yaml:22:11: condition "== F": a condition starts with a field path such as PID-8, then an operator (==, !=, =~, !~, in, not in, exists, empty)`,
				`routes.yaml:23:29: condition "PID-5.1 == \"A: B\" and more": unexpected text after the closing quote`,
			},
		},
		{
			name: "condition not a string",
			src: `version: 1
routes:
  - name: a
    match:
      where:
        - PID-5.1 == A: B
`,
			want: []string{`routes.yaml:6:11: each entry of "where" must be text, not a mapping`},
		},
		{
			name: "on_invalid",
			src: `version: 1
routes:
  - name: a
    match: all
    on_invalid: dead-letter
`,
			want: []string{`routes.yaml:5:17: on_invalid must be dead_letter or skip, not "dead-letter" (did you mean "dead_letter"?)`},
		},
		{
			name: "unreachable route after a catch-all",
			src: `version: 1
routes:
  - name: everything
    match: all
  - name: adt
    match: {message_type: ADT}
  - name: oru
    match: {message_type: ORU}
`,
			want: []string{`routes.yaml:5:5: route "adt" is never evaluated: route "everything" (routes.yaml:3:5) matches every message and does not continue`},
		},
		{
			name: "timezones",
			src: `version: 1
timezone: Europe/Londn
routes:
  - {name: a, match: all, timezone: +01:00, continue: true}
  - {name: b, match: all, timezone: Local, continue: true}
  - {name: c, match: all, timezone: utc, continue: true}
  - {name: d, match: all, timezone: "", continue: true}
  - {name: e, match: all, timezone: 1}
`,
			want: []string{
				`routes.yaml:2:11: unknown time zone "Europe/Londn": use an IANA zone name such as Europe/London or UTC`,
				`routes.yaml:4:37: time zone "+01:00" is an offset, not a zone: name the zone, such as Europe/London, so daylight saving time is applied`,
				`routes.yaml:5:37: timezone "Local" would depend on the host's settings: name the zone, such as Europe/London`,
				`routes.yaml:6:37: unknown time zone "utc" (did you mean "UTC"?)`,
				`routes.yaml:7:37: timezone is empty: name a zone such as Europe/London, or leave the key out for UTC`,
				`routes.yaml:8:37: unknown time zone "1": use an IANA zone name such as Europe/London or UTC`,
			},
		},
		{
			name: "unknown route parameter",
			src: `version: 1
parameters:
  heart_rate: {unit: /min, codes: {LN: [8867-4]}}
routes:
  - name: a
    match: all
    parameters: [heart_rat, spo2]
`,
			want: []string{
				`routes.yaml:7:18: unknown parameter "heart_rat" (did you mean "heart_rate"?)`,
				`routes.yaml:7:29: unknown parameter "spo2" (known: "heart_rate")`,
			},
		},
		{
			name: "YAML syntax error",
			src: `version: 1
routes:
  - name: a
     match: all
`,
			want: []string{`routes.yaml:3:11: YAML syntax: mapping value is not allowed in this context`},
		},
		{
			name: "tab indentation",
			src:  "version: 1\nroutes:\n\t- name: a\n",
			want: []string{`routes.yaml:3:1: YAML syntax: found character '\t' that cannot start any token`},
		},
		{
			name: "duplicate key",
			src: `version: 1
version: 1
routes: []
`,
			want: []string{`routes.yaml:2:1: YAML syntax: mapping key "version" already defined at [1:1]`},
		},
		{
			name: "two documents",
			src: `version: 1
routes: []
---
version: 1
`,
			want: []string{`routes.yaml:4:1: a second YAML document (after ---) is not allowed; keep everything in one document`},
		},
		{
			name: "empty file",
			src:  "# nothing yet\n",
			want: []string{`routes.yaml:1:1: file is empty`},
		},
		{
			name: "top level not a mapping",
			src:  "- a\n- b\n",
			want: []string{`routes.yaml:1:1: routes file must be a mapping of keys to values, not a list`},
		},
		{
			name: "unknown alias",
			src: `version: 1
routes:
  - name: a
    match: *common
`,
			want: []string{`routes.yaml:4:12: alias *common names no anchor defined before it`},
		},
		{
			name: "unsupported tag",
			src: `version: !!int 1
routes: []
`,
			want: []string{`routes.yaml:1:10: YAML tag !!int is not supported here`},
		},
		{
			name: "deep brackets",
			src:  "version: 1\nroutes: " + strings.Repeat("[", 100) + "\n",
			want: []string{`routes.yaml:2:73: brackets nested more than 64 deep`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("routes.yaml", []byte(tt.src), testRegistry)
			got := errorLines(err)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\ngot:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestAllErrorsReported checks that problems all over a file are reported
// together, sorted by position, and that the result is errors.As-able.
func TestAllErrorsReported(t *testing.T) {
	src := `version: 1
routes:
  - name: b
    match: {message_type: ORU}
    handlers: [nope]
  - name: a
    mach: {}
    match: {where: [PID-8 ~ F]}
`
	_, err := Parse("routes.yaml", []byte(src), testRegistry)
	es := asErrors(t, err)
	if len(es) != 3 {
		t.Fatalf("got %d errors, want 3:\n%v", len(es), err)
	}
	var prev *Error
	for _, e := range es {
		if e.File != "routes.yaml" || e.Line == 0 || e.Column == 0 {
			t.Errorf("error without a position: %#v", e)
		}
		if prev != nil && (e.Line < prev.Line || e.Line == prev.Line && e.Column < prev.Column) {
			t.Errorf("errors not sorted: %v before %v", prev, e)
		}
		prev = e
	}
	var one *Error
	if !errors.As(err, &one) || one != es[0] {
		t.Errorf("errors.As(*Error) = %v, want the first error %v", one, es[0])
	}
}

// TestTooManyErrors checks that a file full of mistakes is cut short.
func TestTooManyErrors(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nroutes:\n")
	for range 150 {
		b.WriteString("  - {name: a, match: all, continue: maybe}\n")
	}
	_, err := Parse("routes.yaml", []byte(b.String()), testRegistry)
	es := asErrors(t, err)
	if len(es) != maxErrors+1 {
		t.Fatalf("got %d errors, want %d and a summary", len(es), maxErrors+1)
	}
	if last := es[len(es)-1]; !strings.Contains(last.Reason, "more problems not shown") || last.Line != 0 {
		t.Errorf("last error = %v, want the summary", last)
	}
}

// TestGolden checks whole invalid files against their expected output:
// go test -run TestGolden -update rewrites the .golden files.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := Load(f, testRegistry)
			if err == nil {
				t.Fatal("Load succeeded, want errors")
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("errors differ from %s:\ngot:\n%swant:\n%s", golden, got, want)
			}
		})
	}
}

func TestExampleLoads(t *testing.T) {
	c, err := Load("testdata/example.yaml", testRegistry)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Version != 1 || c.Timezone.String() != "Europe/London" || c.File != "testdata/example.yaml" {
		t.Errorf("Config = version %d, timezone %v, file %q", c.Version, c.Timezone, c.File)
	}
	wantParams := []string{"bands", "consciousness", "creatinine", "dbp", "fio2", "gcs", "heart_rate", "lactate", "o2_flow", "on_oxygen", "paco2", "respiratory_rate", "sbp", "spo2", "spo2_scale", "temperature", "wbc"}
	if got := c.Parameters.Names(); strings.Join(got, ",") != strings.Join(wantParams, ",") {
		t.Errorf("parameters = %v, want %v", got, wantParams)
	}
	var names []string
	for _, r := range c.Routes {
		names = append(names, r.Name)
	}
	if got, want := strings.Join(names, ","), "not-production,adt,monitors,lab,lab-audit"; got != want {
		t.Errorf("routes = %s, want %s", got, want)
	}
	mon := c.Route("monitors")
	if mon.Timezone != time.UTC || mon.OnInvalid != Skip || mon.Line != 167 || mon.Column != 5 {
		t.Errorf("monitors = timezone %v, on_invalid %v, at %d:%d", mon.Timezone, mon.OnInvalid, mon.Line, mon.Column)
	}
	adt := c.Route("adt")
	if adt.Timezone.String() != "Europe/London" || adt.OnInvalid != DeadLetter || adt.Continue || adt.Preliminary {
		t.Errorf("adt defaults = %+v", adt)
	}
	lab := c.Route("lab")
	if !lab.Continue || !lab.Preliminary {
		t.Errorf("lab = %+v", lab)
	}
	if got := strings.Join(lab.Table.Names(), ","); got != "bands,creatinine,lactate,paco2,wbc" {
		t.Errorf("lab table = %s, want the five parameters it lists", got)
	}
	if p, ok := lab.Table.Lookup(clinical.Code{System: "LN", Code: "2524-7"}); !ok || p.Name != "lactate" {
		t.Errorf("lab table Lookup(2524-7) = %v, %v", p, ok)
	}
	if _, ok := lab.Table.Lookup(clinical.Code{System: "LN", Code: "8867-4"}); ok {
		t.Error("lab table maps heart rate, which the route does not list")
	}
	if adt.Table != c.Parameters || adt.Parameters != nil {
		t.Error("a route without parameters should map with the whole table")
	}
	if c.Route("nope") != nil {
		t.Error(`Route("nope") != nil`)
	}
}

// TestSchemaDocumented keeps doc.go and the example files in step with
// the keys the decoder accepts.
func TestSchemaDocumented(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	routes, _ := os.ReadFile("testdata/example.yaml")
	tests, _ := os.ReadFile("testdata/example.test.yaml")
	for _, o := range []*object{fileObject, parameterObject, conversionObject, routeObject, matchObject,
		scoringObject, freshnessObject, qsofaObject, destinationObject, webhookObject, alertObject, levelObject,
		feedObject, activeObject} {
		for _, f := range o.fields {
			if !strings.Contains(string(doc), "//   - "+f.name+" (") {
				t.Errorf("doc.go does not describe %s key %q", o.what, f.name)
			}
			if !usesKey(string(routes), f.name) {
				t.Errorf("testdata/example.yaml does not use %s key %q", o.what, f.name)
			}
		}
	}
	for _, o := range []*object{testFileObject, testObject, messageFileObject, expectObject, eventObject} {
		for _, f := range o.fields {
			if !strings.Contains(string(doc), "//   - "+f.name+" (") {
				t.Errorf("doc.go does not describe %s key %q", o.what, f.name)
			}
			if !usesKey(string(tests), f.name) {
				t.Errorf("testdata/example.test.yaml does not use %s key %q", o.what, f.name)
			}
		}
	}
}

func usesKey(src, key string) bool {
	for _, line := range strings.Split(src, "\n") {
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		for _, prefix := range []string{" ", "-", "{", ","} {
			if strings.Contains(line, prefix+key+":") || strings.HasPrefix(line, key+":") {
				return true
			}
		}
	}
	return false
}

func TestVersionText(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"float", "2.5", []string{"2.5"}},
		{"float with trailing zero keeps its text", "2.50", []string{"2.50"}},
		{"three parts", "2.5.1", []string{"2.5.1"}},
		{"quoted", `"2.4"`, []string{"2.4"}},
		{"list of floats and text", `[2.3, 2.5.1, "2.6"]`, []string{"2.3", "2.5.1", "2.6"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, "version: 1\nroutes:\n  - name: a\n    match:\n      version: "+tt.yaml+"\n")
			got := c.Routes[0].match.header[0].values
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("version values = %q, want %q", got, tt.want)
			}
		})
	}
	c := mustParse(t, "version: 1\nroutes:\n  - name: a\n    match:\n      version: 2.5\n")
	for _, tt := range []struct {
		msh  string
		want bool
	}{
		{"2.5", true}, {"2.5^GBR", true}, {"2.50", false}, {"2.5.1", false},
	} {
		m := message(t, "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|"+tt.msh)
		if got := len(c.Match(m)) == 1; got != tt.want {
			t.Errorf("MSH-12 %q matched = %v, want %v", tt.msh, got, tt.want)
		}
	}
}

func TestTimezones(t *testing.T) {
	c := mustParse(t, `version: 1
routes:
  - {name: a, match: all, continue: true}
  - {name: b, match: all, timezone: America/New_York}
`)
	if c.Timezone != time.UTC || c.Routes[0].Timezone != time.UTC {
		t.Errorf("default timezone = %v / %v, want UTC", c.Timezone, c.Routes[0].Timezone)
	}
	if got := c.Routes[1].Timezone.String(); got != "America/New_York" {
		t.Errorf("route timezone = %s", got)
	}
	c = mustParse(t, "version: 1\ntimezone: Australia/Adelaide\nroutes:\n  - {name: a, match: all}\n")
	if got := c.Routes[0].Timezone.String(); got != "Australia/Adelaide" {
		t.Errorf("route inherits %s, want Australia/Adelaide", got)
	}
}

func TestRegistries(t *testing.T) {
	src := "version: 1\nroutes:\n  - {name: a, match: all, events: [adt, scoring], handlers: [news2]}\n"
	if _, err := Parse("r.yaml", []byte(src), Registry{Mappings: []string{"adt", "scoring"}, Handlers: []string{"news2"}}); err != nil {
		t.Errorf("with scoring registered: %v", err)
	}
	_, err := Parse("r.yaml", []byte(src), Registry{})
	want := `r.yaml:3:36: unknown event mapping "adt" (known: none)
r.yaml:3:41: unknown event mapping "scoring" (known: none)
r.yaml:3:62: unknown handler "news2" (known: none)`
	if err == nil || err.Error() != want {
		t.Errorf("empty registry:\ngot:\n%v\nwant:\n%s", err, want)
	}
	c := mustParse(t, "version: 1\nroutes:\n  - {name: a, match: all, events: observations, handlers: [qsofa, news2]}\n")
	if r := c.Routes[0]; strings.Join(r.Events, ",") != "observations" || strings.Join(r.Handlers, ",") != "qsofa,news2" {
		t.Errorf("events %v handlers %v", r.Events, r.Handlers)
	}
}

func TestAnchorsAliasesAndMerges(t *testing.T) {
	c := mustParse(t, `version: 1
routes:
  - name: adt
    match: &adt
      message_type: ADT
      sending_application: EPIC
    events: &events [adt]
  - name: adt-pas
    match:
      <<: *adt
      sending_application: PAS
    events: *events
`)
	m := message(t, `MSH|^~\&|PAS|X|Y|Z|2026||ADT^A01|1|P|2.5`)
	got := c.Match(m)
	if len(got) != 1 || got[0].Name != "adt-pas" || strings.Join(got[0].Events, ",") != "adt" {
		t.Errorf("Match = %v, want adt-pas with events [adt]", got)
	}
}

// TestAliasBomb checks that aliases cannot multiply a small file into
// endless work: a list of 2000 conditions shared by 600 routes is 1.2
// million conditions to compile.
func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nroutes:\n  - name: r0\n    continue: true\n    match:\n      where: &w\n")
	for range 2000 {
		b.WriteString("        - PID-8 == F\n")
	}
	for i := 1; i <= 600; i++ {
		b.WriteString("  - {name: r" + strconv.Itoa(i) + ", continue: true, match: {where: *w}}\n")
	}
	done := make(chan error, 1)
	go func() {
		_, err := Parse("routes.yaml", []byte(b.String()), testRegistry)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "file expands to more than") {
			t.Errorf("err = %v, want the expansion limit", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Parse did not stop expanding aliases")
	}
}

func TestSizeLimit(t *testing.T) {
	big := "version: 1\nroutes: []\n" + strings.Repeat("# padding\n", maxRoutesFileSize/10+1)
	_, err := Parse("routes.yaml", []byte(big), testRegistry)
	if err == nil || !strings.Contains(err.Error(), "bytes, more than the") {
		t.Errorf("err = %v, want the size limit", err)
	}
	path := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(path, []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, testRegistry); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load err = %v, want the size limit", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), testRegistry)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want os.ErrNotExist", err)
	}
}

func TestErrorFormat(t *testing.T) {
	e := &Error{File: "routes.yaml", Line: 12, Column: 7, Reason: "x"}
	if got := e.Error(); got != "routes.yaml:12:7: x" {
		t.Errorf("Error() = %q", got)
	}
	e = &Error{File: "routes.yaml", Reason: "x"}
	if got := e.Error(); got != "routes.yaml: x" {
		t.Errorf("Error() without a line = %q", got)
	}
	es := Errors{{File: "a", Line: 1, Column: 2, Reason: "x"}, {File: "a", Line: 3, Column: 4, Reason: "y"}}
	if got := es.Error(); got != "a:1:2: x\na:3:4: y" {
		t.Errorf("Errors.Error() = %q", got)
	}
}

func TestSuggest(t *testing.T) {
	keys := routeObject.names()
	tests := []struct{ in, want string }{
		{"mach", `match`},
		{"mtach", `match`},
		{"Match", `match`},
		{"handler", `handlers`},
		{"contine", `continue`},
		{"on-invalid", `on_invalid`},
		{"prelimnary", `preliminary`},
		{"xyz", ``},
		{"id", ``},
		{"timezones", `timezone`},
	}
	for _, tt := range tests {
		got := suggest(tt.in, keys)
		want := ""
		if tt.want != "" {
			want = ` (did you mean "` + tt.want + `"?)`
		}
		if got != want {
			t.Errorf("suggest(%q) = %q, want %q", tt.in, got, want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"match", "match", 0}, {"mach", "match", 1},
		{"mtach", "match", 1}, {"kitten", "sitting", 3}, {"ca", "abc", 3},
	} {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
