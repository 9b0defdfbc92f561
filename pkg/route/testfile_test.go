package route

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadTestsExample(t *testing.T) {
	tf, err := LoadTests("testdata/example.test.yaml")
	if err != nil {
		t.Fatalf("LoadTests: %v", err)
	}
	if tf.File != "testdata/example.test.yaml" || tf.Routes != filepath.Join("testdata", "example.yaml") {
		t.Errorf("File %q Routes %q", tf.File, tf.Routes)
	}
	if len(tf.Tests) != 6 {
		t.Fatalf("%d tests, want 6", len(tf.Tests))
	}
	first := tf.Tests[0]
	if first.Name != "admission creates patient.admitted" || first.Line != 10 || first.Column != 5 {
		t.Errorf("first test = %q at %d:%d", first.Name, first.Line, first.Column)
	}
	wantRaw := "MSH|^~\\&|EPIC|ST_THOMAS|AORTA|ST_THOMAS|202611261200||ADT^A01^ADT_A01|1|P|2.5\r" +
		"EVN|A01|202611261155\r" +
		"PID|||123^^^HOSP^MR||DOE^JANE||19700101|F\r" +
		"PV1||I|ICU^01^A||||||||||||||||V123\r"
	if got := string(first.Messages[0].Raw); got != wantRaw {
		t.Errorf("message = %q, want %q", got, wantRaw)
	}
	if m := first.Messages[0]; m.File != "" || m.Line != 12 || m.Column != 9 {
		t.Errorf("message at %d:%d file %q", m.Line, m.Column, m.File)
	}
	x := first.Expect[0]
	if strings.Join(x.Routes, ",") != "adt" || x.DeadLetter != (DeadLetterCheck{}) || x.Warnings == nil || *x.Warnings != 0 || !x.CheckEvents || len(x.Events) != 1 {
		t.Fatalf("expectation = %+v", x)
	}
	ev := x.Events[0]
	wantTime := time.Date(2026, 11, 26, 11, 55, 0, 0, time.UTC)
	if got, ok := ev.Want["occurred_at"].(time.Time); !ok || !got.Equal(wantTime) {
		t.Errorf("occurred_at = %v", ev.Want["occurred_at"])
	}
	for k, v := range map[string]string{"type": "patient.admitted", "patient_id": "123", "patient_key": "HOSP/123", "encounter_id": "V123", "source": "EPIC^ST_THOMAS", "route": "adt"} {
		if ev.Want[k] != v {
			t.Errorf("%s = %#v, want %q", k, ev.Want[k], v)
		}
	}
	// The expectation matches an event rendered the way a runner would.
	got := map[string]any{
		"type": "patient.admitted", "occurred_at": wantTime, "patient_id": "123",
		"patient_key": "HOSP/123", "encounter_id": "V123", "source": "EPIC^ST_THOMAS", "route": "adt",
		"payload": json.RawMessage(`{"visit": {"location": {"point_of_care": "ICU", "room": "01"}, "class": "I"}}`),
	}
	if ok, diff := SubsetMatch(ev.Want, got); !ok {
		t.Errorf("SubsetMatch: %s", diff)
	}
	corr := tf.Tests[1].Messages[1]
	if corr.File != filepath.Join("testdata", "messages", "spo2-correction.hl7") || !strings.HasPrefix(string(corr.Raw), "MSH|") {
		t.Errorf("message file %q raw %q", corr.File, corr.Raw)
	}
	if x := tf.Tests[2].Expect[0]; !x.CheckEvents || len(x.Events) != 0 || x.Warnings != nil {
		t.Errorf("events: [] = %+v", x)
	}
	if x := tf.Tests[3].Expect[0]; x.CheckEvents || strings.Join(x.Routes, ",") != "lab,lab-audit" {
		t.Errorf("no events key = %+v", x)
	}
	if x := tf.Tests[4].Expect[0]; x.DeadLetter != (DeadLetterCheck{Want: true, Reason: "unit"}) {
		t.Errorf("dead_letter: unit = %+v", x.DeadLetter)
	}
	if x := tf.Tests[5].Expect[0]; x.Routes == nil || len(x.Routes) != 0 {
		t.Errorf("route: [] = %#v", x.Routes)
	}
	c, err := Load(tf.Routes, testRegistry)
	if err != nil {
		t.Fatal(err)
	}
	if err := tf.Validate(c); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

// writeTests writes a test file (and message files) into a directory of
// its own and loads it.
func writeTests(t *testing.T, src string, files map[string]string) (*TestFile, error) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "routes.test.yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	tf, err := LoadTests(path)
	if err != nil {
		// Report problems relative to the file name, as the golden
		// strings are written.
		return tf, &replacedError{err: err, old: path, new: "routes.test.yaml"}
	}
	return tf, nil
}

type replacedError struct {
	err      error
	old, new string
}

func (e *replacedError) Error() string { return strings.ReplaceAll(e.err.Error(), e.old, e.new) }

func TestLoadTestsErrors(t *testing.T) {
	const adt = "        MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5\n"
	tests := []struct {
		name  string
		src   string
		files map[string]string
		want  []string
	}{
		{
			name: "unknown keys and missing ones",
			src: `routes: routes.yaml
tests:
  - name: t
    mesages: []
    expect: []
`,
			want: []string{
				`routes.test.yaml:3:5: missing required key "messages" in test "t"`,
				`routes.test.yaml:4:5: unknown key "mesages" in test (did you mean "messages"?)`,
			},
		},
		{
			name: "missing routes and tests",
			src:  "test: []\n",
			want: []string{
				`routes.test.yaml:1:1: missing required key "routes" in route test file`,
				`routes.test.yaml:1:1: missing required key "tests" in route test file`,
				`routes.test.yaml:1:1: unknown key "test" in route test file (did you mean "tests"?)`,
			},
		},
		{
			name: "counts must agree",
			src: `routes: routes.yaml
tests:
  - name: t
    messages:
      - |
` + adt + `      - |
` + adt + `    expect:
      - route: adt
`,
			want: []string{`routes.test.yaml:9:5: test "t" has 2 messages and 1 expectations: give one expectation per message, in order`},
		},
		{
			name: "messages",
			src: `routes: routes.yaml
tests:
  - name: t
    messages:
      - >
` + adt + `      - |
        PID|1
      - file: missing.hl7
      - {file: bad.hl7}
      - [x]
      - ""
      - MSH|^~\&|A|B|C|D|2026||ADT^A01|1|P|2.5
        PID|1
    expect: [{route: a}, {route: a}, {route: a}, {route: a}, {route: a}, {route: a}, {route: a}]
`,
			files: map[string]string{"bad.hl7": "not hl7"},
			want: []string{
				`routes.test.yaml:5:9: write a message as a literal block (|), not a folded one (>), which would join its segments into one line`,
				`routes.test.yaml:7:9: message is not readable HL7: hl7: MSH at byte 0: first segment is not MSH (100 segment sequence error)`,
				`routes.test.yaml:9:15: message file "missing.hl7" cannot be read: no such file or directory`,
				`routes.test.yaml:10:9: message is not readable HL7: hl7: MSH at byte 0: first segment is not MSH (100 segment sequence error)`,
				`routes.test.yaml:11:9: a message must be a block of text (|) or {file: path}, not a list`,
				`routes.test.yaml:12:9: message is empty`,
				`routes.test.yaml:13:9: write a message of several lines as a literal block (|), or YAML joins its segments into one line`,
			},
		},
		{
			name: "expectations",
			src: `routes: routes.yaml
tests:
  - name: t
    messages:
      - |
` + adt + `    expect:
      - route: [ADT, a]
        dead_letter: ""
        warnings: -1
        events:
          - type: PatientAdmitted
            occurred_at: 2026-11-26T11:55:00
            patient_id: 123
            route: Bad
            payload: {a: .inf, b: [1, 0x1F, 1.50, null, true]}
            extra: 1
          - patient_id: "1"
`,
			want: []string{
				`routes.test.yaml:8:17: route name "ADT" must be made of lower-case letters, digits, _ and -`,
				`routes.test.yaml:9:22: dead_letter reason is empty: write true to accept any reason`,
				`routes.test.yaml:10:19: warnings must not be negative`,
				`routes.test.yaml:11:9: a dead-lettered message produces no events: remove events or dead_letter`,
				`routes.test.yaml:12:19: event type "PatientAdmitted" must be lower-case words joined by dots, such as patient.admitted`,
				`routes.test.yaml:13:26: occurred_at "2026-11-26T11:55:00" must be an RFC 3339 time with its offset, such as 2026-11-26T11:55:00Z`,
				`routes.test.yaml:15:20: route name "Bad" must be made of lower-case letters, digits, _ and -`,
				`routes.test.yaml:16:26: .inf is not a number an event can hold`,
				`routes.test.yaml:17:13: unknown key "extra" in expected event`,
				`routes.test.yaml:18:13: missing required key "type" in expected event`,
			},
		},
		{
			name: "duplicate test names",
			src: `routes: routes.yaml
tests:
  - name: same
    messages: ["MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5"]
    expect: [{route: []}]
  - name: same
    messages: ["MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5"]
    expect: [{route: []}]
`,
			want: []string{`routes.test.yaml:6:11: test name "same" is already used (routes.test.yaml:3:11)`},
		},
		{
			name: "empty lists",
			src: `routes: ""
tests: []
`,
			want: []string{
				`routes.test.yaml:1:9: routes names no file`,
				`routes.test.yaml:2:1: tests lists no tests`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := writeTests(t, tt.src, tt.files)
			got := strings.Join(errorLines(err), "\n")
			if want := strings.Join(tt.want, "\n"); got != want {
				t.Errorf("errors:\ngot:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestTestPayload(t *testing.T) {
	tf, err := writeTests(t, `routes: routes.yaml
tests:
  - name: t
    messages: ["MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5\nPID|1"]
    expect:
      - route: a
        dead_letter: true
        events: []
      - route: a
`, nil)
	if err == nil {
		t.Fatalf("one message, two expectations: no error (%+v)", tf)
	}
	tf, err = writeTests(t, `routes: routes.yaml
tests:
  - name: t
    messages: ["MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5\nPID|1"]
    expect:
      - route: a
        dead_letter: true
        events: []
        warnings: 2
  - name: u
    messages: [{file: m.hl7}]
    expect:
      - route: a
        events:
          - type: observation.recorded
            payload: &p {value: 36.60, code: 8310-5, n: 0x10, list: [1, "two", null, false], nested: {x: ~}}
          - type: observation.recorded
            payload: *p
`, map[string]string{"m.hl7": "MSH|^~\\&|A|B|C|D|2026||ORU^R01|1|P|2.5\r\n"})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(tf.Tests[0].Messages[0].Raw); got != "MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5\rPID|1\r" {
		t.Errorf("quoted message = %q", got)
	}
	if x := tf.Tests[0].Expect[0]; !x.DeadLetter.Want || x.DeadLetter.Reason != "" || *x.Warnings != 2 {
		t.Errorf("expectation = %+v", x)
	}
	if got := string(tf.Tests[1].Messages[0].Raw); got != "MSH|^~\\&|A|B|C|D|2026||ORU^R01|1|P|2.5\r\n" {
		t.Errorf("a message file is not used byte for byte: %q", got)
	}
	want := map[string]any{
		"value": json.Number("36.60"), "code": "8310-5", "n": json.Number("16"),
		"list": []any{json.Number("1"), "two", nil, false}, "nested": map[string]any{"x": nil},
	}
	for i, ev := range tf.Tests[1].Expect[0].Events {
		if ok, diff := SubsetMatch(ev.Want["payload"], want); !ok {
			t.Errorf("event %d payload: %s", i, diff)
		}
		if ok, diff := SubsetMatch(want, ev.Want["payload"]); !ok {
			t.Errorf("event %d payload (reversed): %s", i, diff)
		}
	}
}

func TestSegments(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"MSH|1\nPID|2\n", "MSH|1\rPID|2\r"},
		{"MSH|1\r\nPID|2\r\n\r\n", "MSH|1\rPID|2\r"},
		{"MSH|1\n\n   \nPID|2", "MSH|1\rPID|2\r"},
		{"MSH|1 \nPID|2", "MSH|1 \rPID|2\r"},
		{"\n\n", ""},
	} {
		if got := string(segments(tt.in)); got != tt.want {
			t.Errorf("segments(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	c := mustParse(t, `version: 1
routes:
  - {name: lab, match: {message_type: ORU}, continue: true}
  - {name: lab-audit, match: {message_type: ORU}}
  - {name: adt, match: {message_type: ADT}}
`)
	tf, err := writeTests(t, `routes: routes.yaml
tests:
  - name: t
    messages:
      - MSH|^~\&|A|B|C|D|2026||ORU^R01|1|P|2.5
      - MSH|^~\&|A|B|C|D|2026||ORU^R01|1|P|2.5
      - MSH|^~\&|A|B|C|D|2026||ORU^R01|1|P|2.5
      - MSH|^~\&|A|B|C|D|2026||ORU^R01|1|P|2.5
    expect:
      - route: [lab, lab-audit]
        events: [{type: a.b, route: lab-audti}]
      - route: [lab-audit, lab]
      - route: [lab-audit, adt]
      - route: [labs]
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	tf.File = "routes.test.yaml"
	c.File = "routes.yaml"
	want := `routes.test.yaml:11:37: no route is named "lab-audti" in routes.yaml (did you mean "lab-audit"?)
routes.test.yaml:12:28: route "lab" comes before route "lab-audit" in routes.yaml, so it cannot match after it
routes.test.yaml:13:28: route "lab-audit" does not continue, so route "adt" can never match after it
routes.test.yaml:14:17: no route is named "labs" in routes.yaml (did you mean "lab"?)`
	err = tf.Validate(c)
	if err == nil || err.Error() != want {
		t.Errorf("Validate:\ngot:\n%v\nwant:\n%s", err, want)
	}
}

// TestTestFileAliasBomb checks the expansion limit on payloads, which
// are decoded in full.
func TestTestFileAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("routes: routes.yaml\ntests:\n  - name: t\n    messages: [\"MSH|^~\\\\&|A|B|C|D|2026||ADT^A01|1|P|2.5\"]\n    expect:\n      - route: a\n        events:\n          - type: a.b\n            payload:\n")
	b.WriteString("              a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 9; i++ {
		n := string(rune('0' + i))
		p := string(rune('0' + i - 1))
		b.WriteString("              a" + n + ": &a" + n + " [*a" + p + ", *a" + p + ", *a" + p + ", *a" + p + ", *a" + p + ", *a" + p + ", *a" + p + ", *a" + p + ", *a" + p + ", *a" + p + "]\n")
	}
	done := make(chan error, 1)
	go func() {
		_, err := parseTests("routes.test.yaml", []byte(b.String()))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "file expands to more than") {
			t.Errorf("err = %v, want the expansion limit", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("parseTests did not stop expanding aliases")
	}
}
