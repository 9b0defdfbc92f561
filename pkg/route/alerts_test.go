package route

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// head starts the files of the alerting tests: line 3 is a route that
// computes every score, so rules on any score are valid; tests add
// their sections from line 4.
const head = `version: 1
routes:
  - {name: v, match: all, handlers: [news2, qsofa, sirs]}
`

// logDest is a destination section for rules that need one (lines 4-5).
const logDest = `destinations:
  l: {log: true}
`

// TestAlertingErrors checks each problem of the scoring, destinations and
// alerts sections with its exact position and wording.
func TestAlertingErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "scoring keys",
			src: head + `scoring:
  vitals: 1h
  freshnes: {}
  qsofa: {gcs: 14}
`,
			want: []string{
				`routes.yaml:5:3: unknown key "vitals" in scoring (it belongs under "freshness")`,
				`routes.yaml:6:3: unknown key "freshnes" in scoring (did you mean "freshness"?)`,
				`routes.yaml:7:11: unknown key "gcs" in qsofa`,
			},
		},
		{
			name: "scoring not a mapping",
			src:  head + "scoring: [F]\n",
			want: []string{`routes.yaml:4:10: scoring must be a mapping of keys to values, not a list`},
		},
		{
			name: "freshness durations",
			src: head + `parameters:
  gcs: {unit: "{score}", codes: {LN: [9269-2]}}
scoring:
  freshness:
    vitals: 2 days
    labs: 24
    parameters: {gsc: 4h, gcs: 30s, heart_rate: 1h}
`,
			want: []string{
				`routes.yaml:8:13: "vitals" must be a duration such as 30s, 10m or 4h, not "2 days" (write days in hours: 24h, 48h)`,
				`routes.yaml:9:11: "labs" needs a unit: write 24s, 24m or 24h`,
				`routes.yaml:10:18: unknown parameter "gsc" (did you mean "gcs"?)`,
				`routes.yaml:10:32: freshness of "gcs" must be from 1m to 168h, not 30s`,
				`routes.yaml:10:37: unknown parameter "heart_rate" (known: "gcs")`,
			},
		},
		{
			name: "freshness bounds and forms",
			src: head + `scoring:
  freshness: {vitals: -1h, labs: 200h}
`,
			want: []string{
				`routes.yaml:5:23: "vitals" must not be negative`,
				`routes.yaml:5:34: "labs" must be from 1m to 168h, not 200h`,
			},
		},
		{
			name: "freshness of text and lists",
			src: head + `scoring:
  freshness: {vitals: "1 h", labs: [1h], parameters: [gcs]}
`,
			want: []string{
				`routes.yaml:5:23: "vitals" must be a duration such as 30s, 10m or 4h, not "1 h" (without spaces)`,
				`routes.yaml:5:36: "labs" must be a duration such as 30s, 10m or 4h, not a list`,
				`routes.yaml:5:54: freshness of parameters must be a mapping of keys to values, not a list`,
			},
		},
		{
			name: "statuses",
			src: head + `scoring:
  statuses: [F, C, X, D, W, f, Q, C]
`,
			want: []string{
				`routes.yaml:5:20: OBX-11 X means the result could not be obtained (devices also mark grouping rows with it): it is never scored`,
				`routes.yaml:5:23: OBX-11 D deletes an earlier result: it is never scored`,
				`routes.yaml:5:26: OBX-11 W marks a result as posted in error: it is never scored`,
				`routes.yaml:5:29: OBX-11 status "f" is not one a score may use: choose from F (final), C (corrected), R (not yet verified), P (preliminary) (did you mean "F"?)`,
				`routes.yaml:5:32: OBX-11 status "Q" is not one a score may use: choose from F (final), C (corrected), R (not yet verified), P (preliminary)`,
				`routes.yaml:5:35: status "C" is listed twice`,
			},
		},
		{
			name: "statuses must include F and C",
			src: head + `scoring:
  statuses: [R, P]
`,
			want: []string{
				`routes.yaml:5:3: statuses must include C: a correction replaces the result it corrects, which would otherwise go on counting`,
				`routes.yaml:5:3: statuses must include F: final results are always scored`,
			},
		},
		{
			name: "statuses empty",
			src: head + `scoring:
  statuses: []
`,
			want: []string{`routes.yaml:5:3: statuses lists none: no score could use any result (the default is F, C, R)`},
		},
		{
			name: "spo2 scale parameter",
			src: head + `parameters:
  gcs: {unit: "{score}", codes: {LN: [9269-2]}}
  scale: {type: coded, codes: {L: [S]}, answers: {"1": [1], "2": [2], "3": [3]}}
scoring:
  spo2_scale: scal
`,
			want: []string{`routes.yaml:8:15: unknown parameter "scal" (did you mean "scale"?): spo2_scale names a coded parameter declared under parameters`},
		},
		{
			name: "spo2 scale numeric",
			src: head + `parameters:
  gcs: {unit: "{score}", codes: {LN: [9269-2]}}
scoring:
  spo2_scale: gcs
`,
			want: []string{`routes.yaml:7:15: parameter "gcs" is numeric: the SpO2 scale is charted as a coded answer, 1 or 2 (type: coded, answers: {"1": [...], "2": [...]})`},
		},
		{
			name: "spo2 scale answers",
			src: head + `parameters:
  scale: {type: coded, codes: {L: [S]}, answers: {"1": [1], "2": [2], "3": [3]}}
scoring:
  spo2_scale: scale
`,
			want: []string{`routes.yaml:7:15: the answers of parameter "scale" must be 1 and 2, the NEWS2 SpO2 scales, not "1", "2", "3"`},
		},
		{
			name: "spo2 scale has no freshness",
			src: head + `parameters:
  scale: {type: coded, codes: {L: [S]}, answers: {"1": [1, ONE], "2": [2]}}
scoring:
  freshness: {parameters: {scale: 4h}}
  spo2_scale: scale
`,
			want: []string{`routes.yaml:7:28: parameter "scale" sets the SpO2 scale, a clinician's decision that holds until changed: it has no freshness`},
		},
		{
			name: "destination kinds",
			src: head + `destinations:
  none: {}
  both: {notify: aorta, log: true}
  off: {log: false}
  Bad Name: {log: true}
  text: log
alerts:
  - {name: a, score: news2, levels: [{severity: s, when: total >= 5}], destinations: [none, both, off, Bad Name, text]}
`,
			want: []string{
				`routes.yaml:5:3: destination "none" says nowhere to deliver: give one of webhook, notify or log`,
				`routes.yaml:6:25: destination "both" has both notify and log: give one per destination, and declare another destination for the other`,
				`routes.yaml:7:14: log: false delivers nothing: write log: true, or remove the destination`,
				`routes.yaml:8:3: destination name "Bad Name" must be made of lower-case letters, digits, _ and - (at most 64)`,
				`routes.yaml:9:9: destination "text" must be a mapping of keys to values, not the text "log"`,
			},
		},
		{
			name: "notify channel",
			src: head + `destinations:
  a: {notify: Aorta_Alerts}
  b: {notify: 1alerts}
  c: {notify: "aorta-alerts"}
  d: {notify: ` + strings.Repeat("x", 64) + `}
  e: {notify: ""}
alerts:
  - {name: a, score: news2, levels: [{severity: s, when: total >= 5}], destinations: [a, b, c, d, e]}
`,
			want: []string{
				`routes.yaml:5:15: notify channel "Aorta_Alerts" must be a PostgreSQL identifier: lower-case letters, digits and _, starting with a letter or _, at most 63 (did you mean "aorta_alerts"?)`,
				`routes.yaml:6:15: notify channel "1alerts" must be a PostgreSQL identifier: lower-case letters, digits and _, starting with a letter or _, at most 63`,
				`routes.yaml:7:15: notify channel "aorta-alerts" must be a PostgreSQL identifier: lower-case letters, digits and _, starting with a letter or _, at most 63`,
				`routes.yaml:8:15: notify channel "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…" must be a PostgreSQL identifier: lower-case letters, digits and _, starting with a letter or _, at most 63`,
				`routes.yaml:9:15: notify channel "" must be a PostgreSQL identifier: lower-case letters, digits and _, starting with a letter or _, at most 63`,
			},
		},
		{
			name: "retries",
			src: head + `destinations:
  l: {log: true, max_attempts: 3, backoff: 1s, max_backoff: 1m}
  n: {notify: x, max_attempts: 0, backoff: 50ms, max_backoff: 48h}
  m: {notify: y, max_attempts: 101, backoff: 20m}
  o: {notify: z, backoff: 1m, max_backoff: 30s}
  p: {notify: w, max_attempts: "3", backoff: 1}
alerts:
  - {name: a, score: news2, levels: [{severity: s, when: total >= 5}], destinations: [l, n, m, o, p]}
`,
			want: []string{
				`routes.yaml:5:18: "max_attempts" does not apply to a log destination, which is written at once and never retried`,
				`routes.yaml:5:35: "backoff" does not apply to a log destination, which is written at once and never retried`,
				`routes.yaml:5:48: "max_backoff" does not apply to a log destination, which is written at once and never retried`,
				`routes.yaml:6:32: max_attempts must be from 1 to 100, not 0`,
				`routes.yaml:6:44: "backoff" must be from 100ms to 1h, not 50ms`,
				`routes.yaml:6:63: "max_backoff" must be from 1s to 24h, not 48h`,
				`routes.yaml:7:32: max_attempts must be from 1 to 100, not 101`,
				`routes.yaml:7:46: backoff 20m is longer than max_backoff 10m`,
				`routes.yaml:8:27: backoff 1m is longer than max_backoff 30s`,
				`routes.yaml:9:32: "max_attempts" must be a whole number, not the text "3"`,
				`routes.yaml:9:46: "backoff" needs a unit: write 1s, 1m or 1h`,
			},
		},
		{
			name: "webhook keys",
			src: head + `destinations:
  a:
    url: https://x.example/h
    webhook: {url: https://x.example/h, secret_env: AORTA_KEY, max_attempts: 3, timout: 5s}
  b:
    webhook: {secret_env: AORTA_KEY, secret_file: /run/k}
  c:
    webhook: {url: https://x.example/h}
  d:
    webhook: https://x.example/h
alerts:
  - {name: a, score: news2, levels: [{severity: s, when: total >= 5}], destinations: [a, b, c, d]}
`,
			want: []string{
				`routes.yaml:6:5: unknown key "url" in destination (it belongs under "webhook")`,
				`routes.yaml:7:64: unknown key "max_attempts" in webhook (it belongs under "the destination")`,
				`routes.yaml:7:81: unknown key "timout" in webhook (did you mean "timeout"?)`,
				`routes.yaml:9:14: missing required key "url" in webhook of destination "b"`,
				`routes.yaml:9:38: give secret_env or secret_file, not both`,
				`routes.yaml:11:5: the webhook of destination "c" needs an HMAC key: name the environment variable that holds it with secret_env, or the file with secret_file`,
				`routes.yaml:13:14: webhook of destination "d" must be a mapping of keys to values, not the text "https://x.example/h"`,
			},
		},
		{
			name: "literal secrets refused without echoing them",
			src: head + `destinations:
  a:
    secret: hunter2hunter2hunter2
    webhook: {url: https://x.example/h, secret: hunter2hunter2hunter2, token: t0k3n}
alerts:
  - {name: a, score: news2, levels: [{severity: s, when: total >= 5}], destinations: a}
`,
			want: []string{
				`routes.yaml:6:5: key "secret" in destination "a" is refused: a webhook's HMAC key must not be written in routes.yaml, which is kept in version control and printed in logs: put it in an environment variable and name it with secret_env, or in a file named with secret_file`,
				`routes.yaml:7:41: key "secret" in webhook of destination "a" is refused: a webhook's HMAC key must not be written in routes.yaml, which is kept in version control and printed in logs: put it in an environment variable and name it with secret_env, or in a file named with secret_file`,
				`routes.yaml:7:72: key "token" in webhook of destination "a" is refused: a webhook's HMAC key must not be written in routes.yaml, which is kept in version control and printed in logs: put it in an environment variable and name it with secret_env, or in a file named with secret_file`,
				`routes.yaml:7:5: the webhook of destination "a" needs an HMAC key: name the environment variable that holds it with secret_env, or the file with secret_file`,
			},
		},
		{
			name: "webhook urls and timeouts",
			src: head + `destinations:
  a: {webhook: {url: "ftp://x.example/h", secret_env: AORTA_KEY, timeout: 0s}}
  b: {webhook: {url: "https://user:pw@x.example/h", secret_env: AORTA_KEY, timeout: 10m}}
  c: {webhook: {url: "/hooks/aorta", secret_env: AORTA_KEY}}
  d: {webhook: {url: "https:///h", secret_env: AORTA_KEY}}
  e: {webhook: {url: "https://x.example/h#top", secret_env: AORTA_KEY}}
  f: {webhook: {url: "https://x.example/a b", secret_env: AORTA_KEY}}
  g: {webhook: {url: "", secret_env: AORTA_KEY}}
  h: {webhook: {url: "https://x.example:99999/h", secret_env: AORTA_KEY}}
  i: {webhook: {url: "ftp://x.example/h?token=t0k3n", secret_env: AORTA_KEY}}
alerts:
  - {name: a, score: news2, levels: [{severity: s, when: total >= 5}], destinations: [a, b, c, d, e, f, g, h, i]}
`,
			want: []string{
				`routes.yaml:5:22: url must be an absolute http or https URL, such as https://rrt.example.org/hooks/aorta, not "ftp://x.example/h"`,
				`routes.yaml:5:75: "timeout" must be from 1s to 5m, not 0s`,
				`routes.yaml:6:22: url holds user information (user:password@): credentials must not be written in routes.yaml; receivers check the HMAC signature instead`,
				`routes.yaml:6:85: "timeout" must be from 1s to 5m, not 10m`,
				`routes.yaml:7:22: url must be an absolute http or https URL, such as https://rrt.example.org/hooks/aorta, not "/hooks/aorta"`,
				`routes.yaml:8:22: url "https:///h" has no host`,
				`routes.yaml:9:22: url "https://x.example/h" has a fragment (#...), which is never sent`,
				`routes.yaml:10:22: url must be an absolute http or https URL, such as https://rrt.example.org/hooks/aorta, without spaces`,
				`routes.yaml:11:22: url is empty: must be an absolute http or https URL, such as https://rrt.example.org/hooks/aorta`,
				`routes.yaml:12:22: url "https://x.example:99999/h" has a port out of range`,
				`routes.yaml:13:22: url must be an absolute http or https URL, such as https://rrt.example.org/hooks/aorta, not "ftp://x.example/h?…"`,
			},
		},
		{
			name: "unused destination",
			src: head + `destinations:
  l: {log: true}
  spare: {notify: spare}
alerts:
  - {name: a, score: news2, levels: [{severity: s, when: total >= 5}], destinations: l}
`,
			want: []string{`routes.yaml:6:3: destination "spare" is not used by any alert rule`},
		},
		{
			name: "destinations without alerts are unused",
			src:  head + logDest,
			want: []string{`routes.yaml:5:3: destination "l" is not used by any alert rule`},
		},
		{
			name: "alert rule keys",
			src: head + logDest + `alerts:
  - name: a
    score: news2
    severity: urgent
    destination: l
  - {score: news2}
`,
			want: []string{
				`routes.yaml:7:5: missing required key "destinations" in alert rule "a"`,
				`routes.yaml:7:5: missing required key "levels" in alert rule "a"`,
				`routes.yaml:9:5: unknown key "severity" in alert rule (it belongs under "levels")`,
				`routes.yaml:10:5: unknown key "destination" in alert rule (did you mean "destinations"?)`,
				`routes.yaml:11:5: missing required key "destinations" in alert rule`,
				`routes.yaml:11:5: missing required key "levels" in alert rule`,
				`routes.yaml:11:5: missing required key "name" in alert rule`,
			},
		},
		{
			name: "alerts not a list",
			src:  head + logDest + "alerts:\n  news2: {score: news2}\n",
			want: []string{`routes.yaml:7:3: "alerts" must be a list, not a mapping`},
		},
		{
			name: "rule names, scores and destinations",
			src: head + logDest + `  db: {notify: aorta}
alerts:
  - {name: news2, score: news, levels: [{severity: s, when: total >= 5}], destinations: [l, lg, l]}
  - {name: news2, score: mews, levels: [{severity: s, when: total >= 5}], destinations: [database]}
  - {name: News 2, score: news2, levels: [{severity: s, when: total >= 5}], destinations: []}
  - {name: d, score: news2, levels: [{severity: s, when: total >= 5}], destinations: db, renotify_after: 30s}
  - {name: e, score: news2, levels: [{severity: s, when: total >= 5}], destinations: db, renotify_after: 0}
  - {name: f, score: news2, levels: [{severity: s, when: total >= 5}], destinations: db, renotify_after: 0s}
  - {name: g, score: news2, levels: [{severity: s, when: total >= 5}], destinations: db, renotify_after: 10}
`,
			want: []string{
				`routes.yaml:8:26: unknown score "news" (did you mean "news2"?)`,
				`routes.yaml:8:93: unknown destination "lg" (known: "db", "l")`,
				`routes.yaml:8:97: destination "l" is listed twice`,
				`routes.yaml:9:12: alert rule name "news2" is already used (routes.yaml:8:12)`,
				`routes.yaml:9:26: unknown score "mews" (did you mean "news2"?)`,
				`routes.yaml:9:90: unknown destination "database" (known: "db", "l")`,
				`routes.yaml:10:77: alert rule "News 2" has no destinations: its alerts would reach no one`,
				`routes.yaml:10:12: alert rule name "News 2" must be made of lower-case letters, digits, _ and - (at most 64)`,
				`routes.yaml:11:106: "renotify_after" must be 0 (never) or from 1m to 168h, not 30s`,
				`routes.yaml:14:106: "renotify_after" needs a unit: write 10s, 10m or 10h`,
			},
		},
		{
			name: "no route computes the score",
			src: `version: 1
routes:
  - {name: v, match: all, handlers: [news2]}
` + logDest + `alerts:
  - {name: q, score: qsofa, levels: [{severity: s, when: total >= 2}], destinations: l}
`,
			want: []string{`routes.yaml:7:22: no route computes score "qsofa": add it to the handlers of the routes whose observations feed it`},
		},
		{
			name: "levels",
			src: head + logDest + `alerts:
  - name: a
    score: news2
    levels:
      - {severity: urgent, when: total >= 5}
      - {severity: urgent, when: total >= 3}
      - {severity: Low, when: single_parameter_3}
      - {severity: x}
      - {when: total >= 1}
      - severity: y
        when: [total >= 1]
      - "total >= 1"
    destinations: l
  - {name: b, score: news2, levels: [], destinations: l}
  - {name: c, score: news2, levels: {severity: x, when: total >= 5}, destinations: l}
`,
			want: []string{
				`routes.yaml:11:20: severity "urgent" is already a level of this rule (routes.yaml:10:20)`,
				`routes.yaml:12:20: severity "Low" must be made of lower-case letters, digits, _ and - (at most 64)`,
				`routes.yaml:13:9: missing required key "when" in level 4 of alert rule "a"`,
				`routes.yaml:14:9: missing required key "severity" in level 5 of alert rule "a"`,
				`routes.yaml:16:15: "when" must be text, not a list`,
				`routes.yaml:17:9: level 7 of alert rule "a" must be a mapping of keys to values, not the text "total >= 1"`,
				`routes.yaml:19:29: alert rule "b" has no levels: give at least one, such as {severity: urgent, when: total >= 5}`,
				`routes.yaml:20:37: "levels" must be a list, not a mapping`,
			},
		},
		{
			name: "conditions point inside the text",
			src: head + logDest + `alerts:
  - name: a
    score: news2
    levels:
      - {severity: a, when: total >= 21}
      - {severity: b, when: totl >= 3}
      - {severity: c, when: "risk in [medium, hihg]"}
      - {severity: d, when: 'total >= 3 && risk == high'}
      - severity: e
        when: total >= 3 and
      - severity: f
        when: |
          total >= 3
    destinations: l
  - {name: q, score: qsofa, levels: [{severity: s, when: single_parameter_3}], destinations: l}
`,
			want: []string{
				`routes.yaml:10:38: when "total >= 21": news2 totals run from 0 to 20`,
				`routes.yaml:11:29: when "totl >= 3": unknown word "totl" (did you mean "total"?): a condition is total >= 5, single_parameter_3 or risk == high, joined by and / or`,
				`routes.yaml:12:47: when "risk in [medium, hihg]": unknown news2 risk level "hihg" (did you mean "high"?)`,
				`routes.yaml:13:41: when "total >= 3 && risk == high": write and instead of &&`,
				`routes.yaml:15:26: when "total >= 3 and": nothing follows "and"`,
				`routes.yaml:17:15: a condition is written on one line`,
				`routes.yaml:20:58: when "single_parameter_3": single_parameter_3 applies to news2 only, not to qsofa`,
			},
		},
		{
			name: "levels that never hold, always hold or are never reached",
			src: head + logDest + `alerts:
  - name: order
    score: news2
    levels:
      - {severity: low-medium, when: single_parameter_3}
      - {severity: urgent, when: total >= 5}
      - {severity: emergency, when: total >= 7}
    destinations: l
  - name: never
    score: news2
    levels:
      - {severity: a, when: total < 0}
      - {severity: b, when: total >= 20 and risk == low}
      - {severity: c, when: single_parameter_3 and total < 3}
    destinations: l
  - name: always
    score: qsofa
    levels:
      - {severity: a, when: total >= 0}
    destinations: l
  - name: shadowed
    score: sirs
    levels:
      - {severity: a, when: total == 2}
      - {severity: b, when: total >= 3}
      - {severity: c, when: "risk in [met]"}
    destinations: l
  - name: upside-down
    score: news2
    levels:
      - {severity: urgent, when: total >= 5}
      - {severity: emergency, when: total >= 7}
    destinations: l
`,
			want: []string{
				`routes.yaml:12:37: level "emergency" is never reached: the levels above it hold whenever it does (list the most severe level first)`,
				`routes.yaml:17:29: level "a" never holds: no news2 score (total 0 to 20) meets "total < 0"`,
				`routes.yaml:18:29: level "b" never holds: no news2 score (total 0 to 20) meets "total >= 20 and risk == low"`,
				`routes.yaml:19:29: level "c" never holds: no news2 score (total 0 to 20) meets "single_parameter_3 and total < 3"`,
				`routes.yaml:24:29: level "a" holds for every qsofa score, so every scored patient would have an open alert: raise its threshold`,
				`routes.yaml:31:29: level "c" is never reached: the levels above it hold whenever it does (list the most severe level first)`,
				`routes.yaml:37:37: level "emergency" is never reached: level "urgent" above it holds whenever it does (list the most severe level first)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWith("routes.yaml", []byte(tt.src), testRegistry, ParseOptions{SkipSecrets: true})
			got := errorLines(err)
			want := slices.Clone(tt.want)
			sortErrorLines(want)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("errors:\ngot:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// sortErrorLines sorts expected lines as Errors are: by line, column and
// reason, so tests may list them in the order that reads best.
func sortErrorLines(lines []string) {
	key := func(s string) (int, int, string) {
		var l, c int
		parts := strings.SplitN(s, ":", 4)
		if len(parts) == 4 {
			fmt.Sscan(parts[1], &l)
			fmt.Sscan(parts[2], &c)
			return l, c, parts[3]
		}
		return 0, 0, s
	}
	slices.SortStableFunc(lines, func(a, b string) int {
		la, ca, ra := key(a)
		lb, cb, rb := key(b)
		switch {
		case la != lb:
			return la - lb
		case ca != cb:
			return ca - cb
		}
		return strings.Compare(ra, rb)
	})
	// Identical problems are reported once.
	out := slices.Compact(lines)
	clear(lines[len(out):])
}

func TestGCSThreshold(t *testing.T) {
	for _, tt := range []struct {
		value string
		want  string // "" for valid
	}{
		{"15", ""}, {"14", ""}, {"4", ""},
		{"3", `routes.yaml:2:34: gcs_threshold 3 would never count altered mentation: GCS is never below 3 (write 15, the default, for any GCS below 15)`},
		{"16", `routes.yaml:2:34: gcs_threshold must be from 4 to 15, not 16: altered mentation is a GCS below it, and GCS runs from 3 to 15`},
		{"0", `routes.yaml:2:34: gcs_threshold must be from 4 to 15, not 0: altered mentation is a GCS below it, and GCS runs from 3 to 15`},
		{"fifteen", `routes.yaml:2:34: "gcs_threshold" must be a whole number, not the text "fifteen"`},
	} {
		src := "version: 1\nscoring: {qsofa: {gcs_threshold: " + tt.value + "}}\nroutes: []\n"
		c, err := Parse("routes.yaml", []byte(src), testRegistry)
		if tt.want == "" {
			if err != nil {
				t.Errorf("gcs_threshold %s: %v", tt.value, err)
			} else if fmt.Sprint(c.Scoring.GCSThreshold) != tt.value {
				t.Errorf("gcs_threshold %s read as %d", tt.value, c.Scoring.GCSThreshold)
			}
			continue
		}
		if err == nil || err.Error() != tt.want {
			t.Errorf("gcs_threshold %s:\ngot  %v\nwant %s", tt.value, err, tt.want)
		}
	}
}

// TestAlertingDefaults checks a file without the new sections: default
// scoring, no destinations, no alerts.
func TestAlertingDefaults(t *testing.T) {
	c := mustParse(t, `version: 1
parameters:
  heart_rate: {unit: /min, codes: {LN: [8867-4]}}
  wbc: {unit: 10*9/L, codes: {LN: [6690-2]}}
routes: []
`)
	s := c.Scoring
	if s.Vitals != time.Hour || s.Labs != 24*time.Hour || s.GCSThreshold != 15 || s.SpO2ScaleParameter != "" {
		t.Errorf("Scoring = %+v", s)
	}
	if strings.Join(s.Statuses, ",") != "F,C,R" {
		t.Errorf("Statuses = %v, want F, C, R", s.Statuses)
	}
	if len(s.Freshness) != 2 || s.Freshness["heart_rate"] != time.Hour || s.Freshness["wbc"] != 24*time.Hour {
		t.Errorf("Freshness = %v", s.Freshness)
	}
	if c.Destinations == nil || len(c.Destinations) != 0 || c.Alerts != nil || c.AlertsFor("news2") != nil {
		t.Errorf("Destinations %v, Alerts %v", c.Destinations, c.Alerts)
	}
	for _, st := range []string{"F", "C", "R"} {
		if !s.UsesStatus(st) {
			t.Errorf("UsesStatus(%s) = false", st)
		}
	}
	for _, st := range []string{"P", "X", "D", "W", "", "f"} {
		if s.UsesStatus(st) {
			t.Errorf("UsesStatus(%q) = true", st)
		}
	}
	// Empty sections are the defaults too.
	c = mustParse(t, "version: 1\nroutes: []\nscoring:\ndestinations:\nalerts:\n")
	if c.Scoring.Vitals != time.Hour || len(c.Destinations) != 0 || len(c.Alerts) != 0 {
		t.Errorf("empty sections: %+v", c)
	}
	// A zero Scoring still answers for labs and vitals.
	if got := (Scoring{Vitals: 1, Labs: 2}).FreshnessOf("lactate"); got != 2 {
		t.Errorf("zero Scoring FreshnessOf(lactate) = %v", got)
	}
}

func TestFreshnessOf(t *testing.T) {
	c := mustParse(t, `version: 1
parameters:
  gcs: {unit: "{score}", codes: {LN: [9269-2]}}
  lactate: {unit: mmol/L, codes: {LN: [2524-7]}}
  creatinine: {unit: umol/L, codes: {LN: [2160-0]}}
  heart_rate: {unit: /min, codes: {LN: [8867-4]}}
  scale: {type: coded, codes: {L: [S]}, answers: {1: [1, SCALE1], 2: [2, SCALE2]}}
routes: []
scoring:
  freshness:
    vitals: 2h
    labs: 48h
    parameters: {gcs: 4h, creatinine: 72h}
  statuses: [F, C, P]
  qsofa: {gcs_threshold: 14}
  spo2_scale: scale
`)
	s := c.Scoring
	tests := []struct {
		param string
		want  time.Duration
	}{
		{"gcs", 4 * time.Hour},
		{"creatinine", 72 * time.Hour},
		{"lactate", 48 * time.Hour},
		{"heart_rate", 2 * time.Hour},
		{"wbc", 48 * time.Hour},             // a lab not declared
		{"respiratory_rate", 2 * time.Hour}, // a vital sign not declared
		{"anything", 2 * time.Hour},
		{"scale", 0},
	}
	for _, tt := range tests {
		if got := s.FreshnessOf(tt.param); got != tt.want {
			t.Errorf("FreshnessOf(%q) = %v, want %v", tt.param, got, tt.want)
		}
	}
	want := map[string]time.Duration{"gcs": 4 * time.Hour, "creatinine": 72 * time.Hour, "lactate": 48 * time.Hour, "heart_rate": 2 * time.Hour}
	if len(s.Freshness) != len(want) {
		t.Errorf("Freshness = %v, want %v", s.Freshness, want)
	}
	for p, d := range want {
		if s.Freshness[p] != d {
			t.Errorf("Freshness[%s] = %v, want %v", p, s.Freshness[p], d)
		}
	}
	if s.SpO2ScaleParameter != "scale" || s.GCSThreshold != 14 || strings.Join(s.Statuses, ",") != "F,C,P" || !s.UsesStatus("P") || s.UsesStatus("R") {
		t.Errorf("Scoring = %+v", s)
	}
}

// TestExampleAlerting checks the scoring, destinations and alerts of
// testdata/example.yaml as decoded.
func TestExampleAlerting(t *testing.T) {
	c, err := Load("testdata/example.yaml", testRegistry)
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Scoring; s.SpO2ScaleParameter != "spo2_scale" || s.GCSThreshold != 15 || s.FreshnessOf("gcs") != 4*time.Hour || s.FreshnessOf("spo2") != time.Hour || s.FreshnessOf("wbc") != 24*time.Hour {
		t.Errorf("Scoring = %+v", s)
	}
	if got := strings.Join(c.Route("monitors").Handlers, ","); got != "news2,qsofa,sirs" {
		t.Errorf("monitors handlers = %s", got)
	}
	rrt := c.Destinations["rapid-response"]
	if rrt == nil || rrt.Kind != KindWebhook || rrt.Webhook == nil || rrt.MaxAttempts != 8 || rrt.Backoff != time.Second || rrt.MaxBackoff != 10*time.Minute {
		t.Fatalf("rapid-response = %+v", rrt)
	}
	if w := rrt.Webhook; w.URL != "https://rrt.example.org/hooks/aorta" || string(w.Secret) != exampleSecret || w.SecretEnv != exampleSecretEnv || w.Timeout != 5*time.Second {
		t.Errorf("rapid-response webhook = %+v", w)
	}
	out := c.Destinations["outreach"]
	if w := out.Webhook; string(w.Secret) != "example-outreach-hmac-key-not-secret" || w.SecretFile != filepath.Join("testdata", "secrets", "outreach-webhook.key") || w.Timeout != DefaultWebhookTimeout {
		t.Errorf("outreach webhook = %+v (secret %q)", w, []byte(w.Secret))
	}
	if out.MaxAttempts != DefaultMaxAttempts || out.Backoff != DefaultBackoff || out.MaxBackoff != DefaultMaxBackoff {
		t.Errorf("outreach retries = %+v", out)
	}
	if db := c.Destinations["database"]; db.Kind != KindNotify || db.Channel != "aorta_alerts" || db.Webhook != nil {
		t.Errorf("database = %+v", db)
	}
	if l := c.Destinations["log"]; l.Kind != KindLog || l.Name != "log" {
		t.Errorf("log = %+v", l)
	}
	var names []string
	for _, r := range c.Alerts {
		names = append(names, r.Name)
	}
	if strings.Join(names, ",") != "news2,sepsis-screen,sirs" {
		t.Errorf("alerts = %v", names)
	}
	news2 := c.AlertsFor("news2")
	if len(news2) != 1 || news2[0].RenotifyAfter != time.Hour || news2[0].Line != 240 || news2[0].Column != 5 {
		t.Fatalf("AlertsFor(news2) = %+v", news2)
	}
	r := news2[0]
	var dests []string
	for _, d := range r.Destinations {
		dests = append(dests, d.Name)
		if c.Destinations[d.Name] != d {
			t.Errorf("destination %s is not the Config's", d.Name)
		}
	}
	if strings.Join(dests, ",") != "rapid-response,database,log" {
		t.Errorf("news2 destinations = %v", dests)
	}
	var levels []string
	for _, l := range r.Levels {
		levels = append(levels, fmt.Sprintf("%s/%d/%s", l.Severity, l.Rank, l.When))
	}
	if got := strings.Join(levels, ", "); got != "emergency/3/total >= 7, urgent/2/total >= 5, low-medium/1/single_parameter_3" {
		t.Errorf("levels = %s", got)
	}
	for _, tt := range []struct {
		f    ScoreFacts
		want string
	}{
		{ScoreFacts{Total: 0, Risk: "low"}, ""},
		{ScoreFacts{Total: 4, Risk: "low"}, ""},
		{ScoreFacts{Total: 3, Risk: "low-medium", SingleParameter3: true}, "low-medium"},
		{ScoreFacts{Total: 5, Risk: "medium"}, "urgent"},
		{ScoreFacts{Total: 6, Risk: "medium", SingleParameter3: true}, "urgent"},
		{ScoreFacts{Total: 7, Risk: "high"}, "emergency"},
		{ScoreFacts{Total: 20, Risk: "high", SingleParameter3: true}, "emergency"},
	} {
		l, ok := r.LevelFor(tt.f)
		if ok != (tt.want != "") || l.Severity != tt.want {
			t.Errorf("LevelFor(%+v) = %q, %v; want %q", tt.f, l.Severity, ok, tt.want)
		}
	}
	if q := c.AlertsFor("qsofa"); len(q) != 1 || q[0].Name != "sepsis-screen" {
		t.Errorf("AlertsFor(qsofa) = %v", q)
	} else if l, ok := q[0].LevelFor(ScoreFacts{Total: 2, Risk: "positive"}); !ok || l.Severity != "sepsis-screen" || l.Rank != 1 {
		t.Errorf("qsofa 2 -> %+v, %v", l, ok)
	}
	if s := c.AlertsFor("sirs"); len(s) != 1 || len(s[0].Destinations) != 1 || s[0].Destinations[0].Kind != KindLog {
		t.Errorf("AlertsFor(sirs) = %+v", s)
	}
	if c.AlertsFor("mews") != nil {
		t.Error("AlertsFor(mews) != nil")
	}
}

// TestSecrets checks where webhook keys come from and what is wrong with
// them, strictly and in lint mode.
func TestSecrets(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.key", "0123456789abcdef0123456789abcdef\r\n")
	write("empty.key", "\n")
	write("short.key", "short")
	write("big.key", strings.Repeat("k", maxSecretFileSize+1))
	if err := os.Mkdir(filepath.Join(dir, "dir.key"), 0o700); err != nil {
		t.Fatal(err)
	}
	routes := filepath.Join(dir, "routes.yaml")
	env := map[string]string{"AORTA_GOOD": "a-key-of-more-than-16-bytes", "AORTA_EMPTY": "", "AORTA_SHORT": "123"}
	lookup := func(name string) (string, bool) { v, ok := env[name]; return v, ok }
	file := func(webhook string) string {
		return head + "destinations:\n  d: {webhook: {url: \"https://x.example/h\", " + webhook + "}}\n" +
			"alerts: [{name: a, score: news2, levels: [{severity: s, when: total >= 5}], destinations: d}]\n"
	}
	tests := []struct {
		webhook string
		want    string // the secret, or the error
	}{
		{"secret_env: AORTA_GOOD", "a-key-of-more-than-16-bytes"},
		{"secret_env: AORTA_UNSET", "routes.yaml:5:57: environment variable AORTA_UNSET is not set: it must hold this webhook's HMAC key"},
		{"secret_env: AORTA_EMPTY", "routes.yaml:5:57: environment variable AORTA_EMPTY is empty: it must hold this webhook's HMAC key"},
		{"secret_env: AORTA_SHORT", "routes.yaml:5:57: environment variable AORTA_SHORT holds a key of 3 bytes: an HMAC key needs at least 16"},
		{"secret_env: my-secret-key-value", "routes.yaml:5:57: secret_env must name an environment variable (upper-case letters, digits and _, such as AORTA_RRT_WEBHOOK_SECRET); the value is not shown in case it is the key itself"},
		{"secret_env: ''", "routes.yaml:5:57: secret_env must name an environment variable (upper-case letters, digits and _, such as AORTA_RRT_WEBHOOK_SECRET); the value is not shown in case it is the key itself"},
		{"secret_file: " + good, "0123456789abcdef0123456789abcdef"},
		{"secret_file: good.key", "0123456789abcdef0123456789abcdef"},
		{"secret_file: missing.key", "routes.yaml:5:58: secret_file cannot be read: no such file or directory"},
		{"secret_file: empty.key", "routes.yaml:5:58: secret_file is empty: it must hold this webhook's HMAC key"},
		{"secret_file: short.key", "routes.yaml:5:58: secret_file holds a key of 5 bytes: an HMAC key needs at least 16"},
		{"secret_file: big.key", "routes.yaml:5:58: secret_file cannot be read: larger than the 65536 bytes allowed"},
		{"secret_file: dir.key", "routes.yaml:5:58: secret_file cannot be read: not a regular file"},
		{"secret_file: ' '", "routes.yaml:5:58: secret_file is empty: name the file that holds the webhook's HMAC key"},
	}
	for _, tt := range tests {
		src := []byte(file(tt.webhook))
		c, err := ParseWith(routes, src, testRegistry, ParseOptions{LookupEnv: lookup})
		want := strings.ReplaceAll(tt.want, "routes.yaml", routes)
		switch {
		case !strings.Contains(tt.want, "routes.yaml:"):
			if err != nil {
				t.Errorf("%s: %v", tt.webhook, err)
			} else if got := string(c.Destinations["d"].Webhook.Secret); got != tt.want {
				t.Errorf("%s: secret %q, want %q", tt.webhook, got, tt.want)
			}
		case err == nil || err.Error() != want:
			t.Errorf("%s:\ngot  %v\nwant %s", tt.webhook, err, want)
		}
		// Lint mode reads nothing and reports only what is wrong in the
		// file itself.
		c, err = ParseWith(routes, src, testRegistry, ParseOptions{SkipSecrets: true, LookupEnv: func(string) (string, bool) {
			t.Fatal("SkipSecrets looked up the environment")
			return "", false
		}})
		syntaxOnly := strings.Contains(tt.want, "must name an environment variable") || strings.Contains(tt.want, "name the file")
		if syntaxOnly != (err != nil) {
			t.Errorf("%s with SkipSecrets: %v", tt.webhook, err)
		}
		if err == nil && len(c.Destinations["d"].Webhook.Secret) != 0 {
			t.Errorf("%s with SkipSecrets: a secret was read", tt.webhook)
		}
	}
	// Load reads the real environment; LoadWith can skip it.
	if err := os.WriteFile(routes, []byte(file("secret_env: AORTA_ROUTE_TEST_SECRET")), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AORTA_ROUTE_TEST_SECRET", "")
	os.Unsetenv("AORTA_ROUTE_TEST_SECRET")
	if _, err := Load(routes, testRegistry); err == nil || !strings.Contains(err.Error(), "AORTA_ROUTE_TEST_SECRET is not set") {
		t.Errorf("Load without the variable: %v", err)
	}
	if c, err := LoadWith(routes, testRegistry, ParseOptions{SkipSecrets: true}); err != nil || c.Destinations["d"].Webhook.SecretEnv != "AORTA_ROUTE_TEST_SECRET" {
		t.Errorf("LoadWith SkipSecrets: %v", err)
	}
	t.Setenv("AORTA_ROUTE_TEST_SECRET", "from-the-real-environment")
	if c, err := Load(routes, testRegistry); err != nil || string(c.Destinations["d"].Webhook.Secret) != "from-the-real-environment" {
		t.Errorf("Load with the variable: %v", err)
	}
}

// TestSecretRedacted checks that a key never shows in what is printed or
// logged of a Config.
func TestSecretRedacted(t *testing.T) {
	const key = "s3cr3t-hmac-key-0123456789"
	c, err := ParseWith("routes.yaml", []byte(head+`destinations:
  d: {webhook: {url: "https://x.example/h?token=abc", secret_env: AORTA_KEY}}
alerts: [{name: a, score: news2, levels: [{severity: s, when: total >= 5}], destinations: d}]
`), testRegistry, ParseOptions{LookupEnv: func(string) (string, bool) { return key, true }})
	if err != nil {
		t.Fatal(err)
	}
	d := c.Destinations["d"]
	w := d.Webhook
	if string(w.Secret) != key {
		t.Fatalf("secret not read")
	}
	var outputs []string
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"} {
		outputs = append(outputs, fmt.Sprintf(format, w), fmt.Sprintf(format, *w), fmt.Sprintf(format, w.Secret), fmt.Sprintf(format, d), fmt.Sprintf(format, *d))
	}
	outputs = append(outputs, fmt.Sprint(c.Alerts[0].Destinations), fmt.Sprintf("%+v", c.Alerts), w.String(), w.Secret.GoString())
	js, err := json.Marshal(map[string]any{"webhook": w, "destination": d, "config": c.Destinations})
	if err != nil {
		t.Fatal(err)
	}
	outputs = append(outputs, string(js))
	var logs bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&logs, nil), slog.NewJSONHandler(&logs, nil)} {
		l := slog.New(h)
		l.Info("loaded", "webhook", w, "value", *w, "secret", w.Secret, "destination", d)
		l.Info("loaded", slog.Any("secret", w.Secret), slog.Any("destinations", c.Destinations))
	}
	outputs = append(outputs, logs.String())
	hexKey := fmt.Sprintf("%x", []byte(key))
	for _, out := range outputs {
		if strings.Contains(out, key) || strings.Contains(out, hexKey) {
			t.Errorf("key printed: %s", out)
		}
	}
	if !strings.Contains(w.String(), "[redacted]") || !strings.Contains(w.String(), "$AORTA_KEY") || strings.Contains(w.String(), "token") {
		t.Errorf("String() = %s", w.String())
	}
	if got := fmt.Sprint(w); got != "webhook https://x.example/h?… (HMAC key [redacted] from $AORTA_KEY, timeout 10s)" {
		t.Errorf("Sprint(webhook) = %s", got)
	}
	if !strings.Contains(logs.String(), `secret=[redacted]`) || !strings.Contains(logs.String(), `"secret":"[redacted]"`) {
		t.Errorf("logs:\n%s", logs.String())
	}
	if got := fmt.Sprint(Secret(nil)); got != "[not loaded]" {
		t.Errorf("empty secret prints %q", got)
	}
	if got := (Webhook{URL: "https://u:p@h/x#f", SecretFile: "/run/k", Timeout: time.Second}).String(); got != "webhook https://h/x (HMAC key [not loaded] from /run/k, timeout 1s)" {
		t.Errorf("String() = %s", got)
	}
}
