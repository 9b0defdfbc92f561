package route

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that the routes loader never panics, that every
// problem it reports has a position inside the file, and that a file it
// accepts can match messages. The test file loader is run on the same
// input.
func FuzzParse(f *testing.F) {
	for _, seed := range seedFiles(f, "testdata/example.yaml", "testdata/invalid/*.yaml") {
		f.Add(seed)
	}
	f.Add([]byte("version: 1\nroutes:\n  - {name: a, match: {where: [PID-3[*].1 in [a, \"b\"]]}}\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("\r\r0"))
	f.Add([]byte("version: 1\nroutes: [{name: a, match: all, events: !!str 1}]\n"))
	f.Add([]byte(alertingSeed))
	f.Add([]byte("version: 1\nroutes: [{name: a, match: all, handlers: [news2]}]\ndestinations: {l: {log: true}}\nalerts: [{name: n, score: news2, levels: [{severity: s, when: total >= 5 and risk in [medium, high] or single_parameter_3}], destinations: l}]\n"))
	msgs := []string{
		`MSH|^~\&|A|B|C|D|2026||ADT^A01|1|P|2.5`,
		`PID|||123^^^HOSP^MR~456||DOE||19700101|F`,
		`OBX|1|NM|8867-4^HR^LN||72|/min|||||F`,
	}
	// Secrets are not read: a fuzzed secret_file could name any file.
	opts := ParseOptions{SkipSecrets: true}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseWith("fuzz.yaml", data, testRegistry, opts)
		lines := 1
		for _, b := range data {
			if b == '\n' || b == '\r' {
				// CR alone ends a line in YAML too; CRLF counts twice
				// here, which only loosens the bound.
				lines++
			}
		}
		if err != nil {
			var es Errors
			var e *Error
			switch {
			case errors.As(err, &es):
				if len(es) < 2 {
					t.Fatalf("Errors with %d entries", len(es))
				}
			case errors.As(err, &e):
			default:
				t.Fatalf("error of type %T: %v", err, err)
			}
			for _, e := range asErrors(t, err) {
				if e.File != "fuzz.yaml" || e.Line < 0 || e.Line > lines+1 || e.Column < 0 || e.Reason == "" {
					t.Fatalf("bad error %#v in a file of %d lines", e, lines)
				}
			}
			if c != nil {
				t.Fatal("a Config and an error")
			}
		} else {
			if c == nil || c.Parameters == nil || c.Timezone == nil {
				t.Fatalf("incomplete Config %+v", c)
			}
			if c.Destinations == nil || c.Scoring.Freshness == nil {
				t.Fatalf("incomplete Config %+v", c)
			}
			facts := []ScoreFacts{{}, {Total: 7, Risk: "high"}, {Total: 3, Risk: "low-medium", SingleParameter3: true}, {Total: 2, Risk: "positive"}}
			for _, r := range c.Alerts {
				for i, l := range r.Levels {
					if l.Rank != len(r.Levels)-i {
						t.Fatalf("rule %q level %d has rank %d", r.Name, i, l.Rank)
					}
				}
				for _, f := range facts {
					if l, ok := r.LevelFor(f); ok && !l.When.Holds(f) {
						t.Fatalf("LevelFor(%+v) = %q, whose condition does not hold", f, l.Severity)
					}
				}
				for _, dst := range r.Destinations {
					if dst == nil || c.Destinations[dst.Name] != dst {
						t.Fatalf("rule %q names a destination not in the Config", r.Name)
					}
				}
			}
			m := message(t, msgs...)
			for _, r := range c.Match(m) {
				if r.Timezone == nil {
					t.Fatalf("route %q without a timezone", r.Name)
				}
				r.Mismatch(m)
			}
		}
	})
}

// alertingSeed is a small file with every scoring, destination and alert
// key, which pieces leaves out of the seeds it cuts from the example.
const alertingSeed = `version: 1
parameters:
  gcs: {unit: "{score}", codes: {LN: [9269-2]}}
  scale: {type: coded, codes: {L: [S]}, answers: {"1": [1], "2": [2]}}
routes:
  - {name: v, match: all, handlers: [news2, qsofa]}
scoring:
  freshness: {vitals: 1h, labs: 24h, parameters: {gcs: 4h}}
  statuses: [F, C, R, P]
  qsofa: {gcs_threshold: 14}
  spo2_scale: scale
destinations:
  rrt:
    webhook: {url: "https://h/x", secret_env: AORTA_X, timeout: 5s}
    max_attempts: 8
    backoff: 1s
    max_backoff: 10m
  f: {webhook: {url: "http://h", secret_file: /k}}
  db: {notify: aorta_alerts}
  l: {log: true}
alerts:
  - name: news2
    score: news2
    levels:
      - {severity: emergency, when: total >= 7}
      - {severity: urgent, when: "risk in [medium] or total == 5"}
      - {severity: low-medium, when: single_parameter_3 and total < 5}
    renotify_after: 1h
    destinations: [rrt, db, l, f]
  - {name: q, score: qsofa, levels: [{severity: s, when: total > 1}], destinations: l}
`

// maxSeed bounds the seeds given to the fuzzer. Every new input the
// fuzzer finds is minimised by running it again and again, and for a file
// of several kilobytes that takes longer than a whole fuzzing run; so
// large files are cut into small valid files: the header with each
// parameter, and each route, on its own.
const maxSeed = 1024

// seedFiles reads the files matching the patterns as seeds, cutting large
// ones into pieces.
func seedFiles(f *testing.F, patterns ...string) [][]byte {
	var seeds [][]byte
	for _, pattern := range patterns {
		paths, err := filepath.Glob(pattern)
		if err != nil || len(paths) == 0 {
			f.Fatalf("no seeds match %s", pattern)
		}
		for _, path := range paths {
			data, err := os.ReadFile(path)
			if err != nil {
				f.Fatal(err)
			}
			if len(data) <= maxSeed {
				seeds = append(seeds, data)
				continue
			}
			seeds = append(seeds, pieces(string(data))...)
		}
	}
	return seeds
}

// pieces cuts a routes file into one file per parameter and per route.
// Comments are dropped; the header (version, timezone) is kept in each,
// and a route's parameters key is dropped, as are the scoring,
// destinations and alerts sections.
func pieces(src string) [][]byte {
	var header, section string
	var items []string
	var cur *strings.Builder
	var kinds []string
	for _, line := range strings.Split(src, "\n") {
		if i := strings.Index(line, " #"); i >= 0 {
			line = strings.TrimRight(line[:i], " ")
		}
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
			continue
		case !strings.HasPrefix(line, " "):
			section = strings.TrimSuffix(trimmed, ":")
			if !strings.HasSuffix(trimmed, ":") {
				header += line + "\n"
			}
			continue
		case section != "parameters" && section != "routes":
			// Scoring, destinations and alerts refer to parameters,
			// routes and each other: alertingSeed covers them whole.
			continue
		case strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") && (section == "parameters" || strings.HasPrefix(line, "  - ")):
			cur = &strings.Builder{}
			items = append(items, "")
			kinds = append(kinds, section)
		}
		if section == "routes" && strings.HasPrefix(line, "    parameters:") {
			// A route piece has no parameter table to name.
			continue
		}
		if cur != nil {
			cur.WriteString(line + "\n")
			items[len(items)-1] = cur.String()
		}
	}
	var out [][]byte
	for i, it := range items {
		if kinds[i] == "parameters" {
			out = append(out, []byte(header+"parameters:\n"+it+"routes: []\n"))
		} else {
			out = append(out, []byte(header+"routes:\n"+it))
		}
	}
	return out
}

// TestSeedPieces checks that the pieces cut from the example are valid
// routes files, so the fuzzer starts from meaningful input.
func TestSeedPieces(t *testing.T) {
	data, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ps := pieces(string(data))
	if len(ps) < 20 {
		t.Fatalf("%d pieces, want one per parameter and route", len(ps))
	}
	for _, p := range ps {
		if len(p) > maxSeed {
			t.Errorf("piece of %d bytes:\n%s", len(p), p)
		}
		if _, err := Parse("piece.yaml", p, testRegistry); err != nil {
			t.Errorf("piece does not parse: %v\n%s", err, p)
		}
	}
	if len(alertingSeed) > maxSeed {
		t.Errorf("alertingSeed is %d bytes", len(alertingSeed))
	}
	if _, err := ParseWith("seed.yaml", []byte(alertingSeed), testRegistry, ParseOptions{SkipSecrets: true}); err != nil {
		t.Errorf("alertingSeed does not parse: %v", err)
	}
}

// FuzzLoadTests does for the route test file loader what FuzzParse does
// for the routes loader. Message files resolve under a directory that
// does not exist, so the fuzzer reads nothing from disk.
func FuzzLoadTests(f *testing.F) {
	f.Add([]byte("routes: routes.yaml\ntests:\n  - name: t\n    messages:\n      - |\n        MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5\n        PID|||1\n    expect:\n      - route: [a, b]\n        dead_letter: unit\n        warnings: 1\n        events:\n          - type: a.b\n            occurred_at: 2026-11-26T11:55:00Z\n            payload: {a: [1, 2.50, x, null, true], b: {c: d}}\n"))
	f.Add([]byte("routes: r.yaml\ntests:\n  - name: t\n    messages: [{file: m.hl7}, \"MSH|^~\\\\&|A\"]\n    expect: [{route: []}, {route: a, events: []}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tf, err := parseTests("/nonexistent/fuzz.test.yaml", data)
		if err != nil {
			for _, e := range asErrors(t, err) {
				if e.File != "/nonexistent/fuzz.test.yaml" || e.Reason == "" || e.Line < 0 {
					t.Fatalf("bad error %#v", e)
				}
			}
			return
		}
		for _, tc := range tf.Tests {
			if len(tc.Messages) != len(tc.Expect) {
				t.Fatalf("%d messages, %d expectations", len(tc.Messages), len(tc.Expect))
			}
			for _, x := range tc.Expect {
				if len(x.routePos) != len(x.Routes) {
					t.Fatal("route positions out of step")
				}
				for _, ev := range x.Events {
					if ok, diff := SubsetMatch(ev.Want, ev.Want); !ok {
						t.Fatalf("an expectation does not match itself: %s", diff)
					}
				}
			}
		}
	})
}
