package route

import (
	"strings"
	"testing"
)

func routeNames(rs []*Route) string {
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = r.Name
	}
	return strings.Join(names, ",")
}

func TestMatchOrderAndContinue(t *testing.T) {
	c := mustParse(t, `version: 1
routes:
  - name: all-adt
    match: {message_type: ADT}
    continue: true
  - name: admit
    match: {message_type: ADT, trigger_event: A01}
  - name: adt-rest
    match: {message_type: ADT}
    continue: true
  - name: female
    match: {where: PID-8 == F}
  - name: never-after-female
    match: {where: PID-8 == F}
`)
	tests := []struct {
		name, msh, pid, want string
	}{
		{"a stop after the first route without continue", "ADT^A01", "F", "all-adt,admit"},
		{"continue runs on to the next match", "ADT^A08", "F", "all-adt,adt-rest,female"},
		{"continue with nothing after it", "ADT^A08", "M", "all-adt,adt-rest"},
		{"only a later route", "ORU^R01", "F", "female"},
		{"unrouted", "ORU^R01", "M", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := message(t, `MSH|^~\&|A|B|C|D|2026||`+tt.msh+`|1|P|2.5`, "PID||||||||"+tt.pid)
			got := c.Match(m)
			if routeNames(got) != tt.want {
				t.Errorf("Match = %q, want %q", routeNames(got), tt.want)
			}
			if tt.want == "" && got != nil {
				t.Errorf("Match = %#v, want nil for an unrouted message", got)
			}
		})
	}
}

func TestHeaderCriteria(t *testing.T) {
	c := mustParse(t, `version: 1
routes:
  - name: r
    match:
      message_type: [ADT, ORU]
      trigger_event: [A01, R01]
      sending_application: [EPIC, 1.2.3]
      sending_facility: ST_THOMAS
      receiving_application: AORTA
      receiving_facility: [HOSP]
      version: [2.5, 2.5.1]
      processing_id: P
`)
	r := c.Routes[0]
	base := []string{"ADT^A01", "EPIC", "ST_THOMAS", "AORTA", "HOSP", "2.5", "P"}
	build := func(f []string) string {
		return `MSH|^~\&|` + f[1] + `|` + f[2] + `|` + f[3] + `|` + f[4] + `|2026||` + f[0] + `|1|` + f[6] + `|` + f[5]
	}
	tests := []struct {
		name     string
		field    int
		value    string
		want     bool
		mismatch string
	}{
		{"all hold", 0, "ADT^A01", true, ""},
		{"second message type", 0, "ORU^R01", true, ""},
		{"type and event from different pairs", 0, "ORU^A01", true, ""},
		{"other type", 0, "ORM^O01", false, `message_type is "ORM", not ADT or ORU`},
		{"other event", 0, "ADT^A08", false, `trigger_event is "A08", not A01 or R01`},
		{"structure does not matter", 0, "ADT^A01^ADT_A01", true, ""},
		{"universal ID when no namespace ID", 1, "^1.2.3^ISO", true, ""},
		{"namespace ID wins", 1, "OTHER^1.2.3^ISO", false, `sending_application is "OTHER", not EPIC or 1.2.3`},
		{"facility components", 2, "ST_THOMAS^2.16.840^ISO", true, ""},
		{"receiving application", 3, "NOTAORTA", false, `receiving_application is "NOTAORTA", not AORTA`},
		{"receiving facility", 4, "", false, `receiving_facility is "", not HOSP`},
		{"version with components", 5, "2.5.1^GBR", true, ""},
		{"version as written", 5, "2.50", false, `version is "2.50", not 2.5 or 2.5.1`},
		{"processing mode ignored", 6, "P^T", true, ""},
		{"training", 6, "T", false, `processing_id is "T", not P`},
		{"case matters", 1, "epic", false, `sending_application is "epic", not EPIC or 1.2.3`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := append([]string(nil), base...)
			f[tt.field] = tt.value
			m := message(t, build(f))
			if got := r.Matches(m); got != tt.want {
				t.Errorf("Matches = %v, want %v", got, tt.want)
			}
			if got := r.Mismatch(m); got != tt.mismatch {
				t.Errorf("Mismatch = %q, want %q", got, tt.mismatch)
			}
			if got := len(c.Match(m)) == 1; got != tt.want {
				t.Errorf("Config.Match matched = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMismatchNamesTheCondition(t *testing.T) {
	c := mustParse(t, `version: 1
routes:
  - name: r
    match:
      message_type: ADT
      where: [PID-3 exists, PID-8 == F]
`)
	m := message(t, `MSH|^~\&|A|B|C|D|2026||ADT^A01|1|P|2.5`, "PID|||123||||||M")
	if got, want := c.Routes[0].Mismatch(m), `where "PID-8 == F" does not hold`; got != want {
		t.Errorf("Mismatch = %q, want %q", got, want)
	}
	if got := c.Routes[0].Mismatch(nil); got != "no message" {
		t.Errorf("Mismatch(nil) = %q", got)
	}
	if c.Match(nil) != nil || c.Routes[0].Matches(nil) {
		t.Error("a nil message matched")
	}
}

func TestMatchAll(t *testing.T) {
	c := mustParse(t, "version: 1\nroutes:\n  - {name: first, match: all, continue: true}\n  - {name: adt, match: {message_type: ADT}}\n  - {name: rest, match: all}\n")
	for _, tt := range []struct{ typ, want string }{
		{"ADT^A01", "first,adt"},
		{"ORU^R01", "first,rest"},
	} {
		m := message(t, `MSH|^~\&|A|B|C|D|2026||`+tt.typ+`|1|P|2.5`)
		if got := routeNames(c.Match(m)); got != tt.want {
			t.Errorf("%s: Match = %q, want %q", tt.typ, got, tt.want)
		}
	}
	// A zero Route (not from Parse) matches nothing.
	var zero Route
	if zero.Matches(message(t, `MSH|^~\&|A|B|C|D|2026||ADT^A01|1|P|2.5`)) {
		t.Error("a zero Route matched")
	}
}

// TestExampleRoutes runs the first message of every example test through
// the example routes.
func TestExampleRoutes(t *testing.T) {
	c, err := Load("testdata/example.yaml", testRegistry)
	if err != nil {
		t.Fatal(err)
	}
	tf, err := LoadTests("testdata/example.test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tf.Tests {
		t.Run(tc.Name, func(t *testing.T) {
			for i, msg := range tc.Messages {
				m := parseRaw(t, msg.Raw)
				if got, want := routeNames(c.Match(m)), strings.Join(tc.Expect[i].Routes, ","); got != want {
					t.Errorf("message %d: Match = %q, want %q", i+1, got, want)
					for _, r := range c.Routes {
						t.Logf("  %s: %s", r.Name, r.Mismatch(m))
					}
				}
			}
		})
	}
}

func BenchmarkMatch(b *testing.B) {
	c, err := Load("testdata/example.yaml", testRegistry)
	if err != nil {
		b.Fatal(err)
	}
	m := message(b,
		`MSH|^~\&|WINPATH|ST_THOMAS|AORTA|ST_THOMAS|202611261300||ORU^R01|4|P|2.4`,
		`PID|||123^^^HOSP^MR`,
		`OBR|1||L1|LAB`,
		`OBX|1|NM|6690-2^WBC^LN||13.1|10*9/L|||||F`,
		`OBX|2|NM|764-1^Bands^LN||4|%|||||F`,
		`OBX|3|NM|2524-7^Lactate^LN||4.1|mmol/L|||||F`,
		`OBX|4|NM|2160-0^Creatinine^LN||1.1|mg/dL|||||F`,
	)
	b.ReportAllocs()
	for b.Loop() {
		if len(c.Match(m)) != 2 {
			b.Fatal("no match")
		}
	}
}
