package route

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// feedsHead is a valid file up to its feeds section: one route and two
// destinations for feeds to notify.
const feedsHead = `version: 1
routes:
  - {name: all, match: all}
destinations:
  oncall: {log: true}
  db: {notify: aorta_feeds}
`

func TestFeeds(t *testing.T) {
	c := mustParse(t, feedsHead+`feeds:
  - name: lab-results
    sending_application: LAB
    sending_facility: HOSP
    silence: 15m
    notify: [oncall, db]
  - name: pas
    sending_application: PAS
    silence: 1h30m
    notify: oncall
  - name: quiet
    sending_application: "0042"
    silence: 5s
`)
	type want struct {
		name, app, facility, sender string
		silence                     time.Duration
		notify                      []string
		line                        int
	}
	wants := []want{
		{"lab-results", "LAB", "HOSP", "LAB^HOSP", 15 * time.Minute, []string{"oncall", "db"}, 8},
		{"pas", "PAS", "", "PAS^*", 90 * time.Minute, []string{"oncall"}, 13},
		{"quiet", "0042", "", "0042^*", 5 * time.Second, nil, 17},
	}
	if len(c.Feeds) != len(wants) {
		t.Fatalf("%d feeds, want %d", len(c.Feeds), len(wants))
	}
	for i, w := range wants {
		f := c.Feeds[i]
		var notify []string
		for _, d := range f.Notify {
			notify = append(notify, d.Name)
		}
		if f.Name != w.name || f.SendingApplication != w.app || f.SendingFacility != w.facility || f.Sender() != w.sender ||
			f.Silence != w.silence || !slices.Equal(notify, w.notify) || f.Line != w.line {
			t.Errorf("feed %d = {%s %s %s %s %s %v line %d}, want %+v", i, f.Name, f.SendingApplication, f.SendingFacility,
				f.Sender(), f.Silence, notify, f.Line, w)
		}
		if c.Feed(w.name) != f {
			t.Errorf("Feed(%q) is not feed %d", w.name, i)
		}
	}
	if c.Feed("nope") != nil {
		t.Error(`Feed("nope") found a feed`)
	}
	// A destination only a feed notifies is used.
	mustParse(t, `version: 1
routes:
  - {name: all, match: all}
destinations:
  oncall: {log: true}
feeds:
  - {name: a, sending_application: A, silence: 1m, notify: oncall}
`)
}

func TestFeedErrors(t *testing.T) {
	tests := []struct {
		name  string
		feeds string
		want  []string
	}{
		{"unknown key", `
  - name: a
    sending_application: A
    silence: 1m
    window: 2m
`, []string{`routes.yaml:11:5: unknown key "window" in feed`}},
		{"destinations instead of notify", `
  - name: a
    sending_application: A
    silence: 1m
    destinations: oncall
`, []string{`routes.yaml:11:5: key "destinations" in feed is refused: a feed names its destinations under notify`}},
		{"missing keys", `
  - name: a
`, []string{
			`routes.yaml:8:5: missing required key "sending_application" in feed "a"`,
			`routes.yaml:8:5: missing required key "silence" in feed "a"`,
		}},
		{"bad duration", `
  - {name: a, sending_application: A, silence: 15 minutes}
  - {name: b, sending_application: B, silence: 10}
  - {name: c, sending_application: C, silence: 1s}
  - {name: d, sending_application: D, silence: 2d}
`, []string{
			`routes.yaml:8:48: "silence" must be a duration such as 30s, 10m or 4h, not "15 minutes" (without spaces)`,
			`routes.yaml:9:48: "silence" needs a unit: write 10s, 10m or 10h`,
			`routes.yaml:10:48: "silence" must be from 5s to 168h, not 1s`,
			`routes.yaml:11:48: "silence" must be a duration such as 30s, 10m or 4h, not "2d" (write days in hours: 24h, 48h)`,
		}},
		{"unknown and repeated destinations", `
  - {name: a, sending_application: A, silence: 1m, notify: [oncal, db, db]}
`, []string{
			`routes.yaml:8:61: unknown destination "oncal" (did you mean "oncall"?)`,
			`routes.yaml:8:72: destination "db" is listed twice`,
		}},
		{"duplicate and bad names", `
  - {name: lab, sending_application: A, silence: 1m}
  - {name: lab, sending_application: B, silence: 1m}
  - {name: Lab Feed, sending_application: C, silence: 1m}
`, []string{
			`routes.yaml:9:12: feed name "lab" is already used (routes.yaml:8:12)`,
			`routes.yaml:10:12: feed name "Lab Feed" must be made of lower-case letters, digits, _ and - (at most 64)`,
		}},
		{"empty sender", `
  - {name: a, sending_application: "", sending_facility: "", silence: 1m}
`, []string{
			`routes.yaml:8:36: sending_application is empty: name the MSH-3 of the feed's sender`,
			`routes.yaml:8:58: sending_facility is empty: name the MSH-4, or leave the key out for any facility`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Both destinations are used by a valid feed, so that only the
			// feeds under test can produce errors.
			src := feedsHead + "feeds:" + tt.feeds + "  - {name: z-uses-all, sending_application: Z, silence: 1m, notify: [oncall, db]}\n"
			_, err := ParseWith("routes.yaml", []byte(src), testRegistry, ParseOptions{SkipSecrets: true})
			got := errorLines(err)
			want := slices.Clone(tt.want)
			sortErrorLines(want)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("errors:\ngot:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// The feeds example in the shipped routes.yaml is commented out (its
// senders are not yours); uncommented, it must load, with the shipped
// destinations it names.
func TestShippedFeedsExample(t *testing.T) {
	data, err := os.ReadFile("../../routes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var block []string
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case line == "# feeds:":
			in = true
		case in && !strings.HasPrefix(line, "#   "):
			in = false
		}
		if in {
			block = append(block, strings.TrimPrefix(line, "# "))
		}
	}
	if len(block) < 5 {
		t.Fatalf("no commented feeds example in routes.yaml (found %d lines)", len(block))
	}
	src := "version: 1\nroutes:\n  - {name: all, match: all}\ndestinations:\n  database: {notify: aorta_alerts}\n  log: {log: true}\n" +
		strings.Join(block, "\n") + "\n"
	c := mustParse(t, src)
	if len(c.Feeds) != 3 || c.Feeds[0].Silence != 15*time.Minute || len(c.Feeds[0].Notify) != 2 {
		t.Errorf("example feeds %+v, want three, the first 15m notifying database and log", c.Feeds)
	}
	if len(c.Feeds) == 3 && (c.Feeds[2].Active == nil || c.Feeds[2].Active.String() != "mon,tue,wed,thu,fri 07:00-19:00 Europe/London") {
		t.Errorf("the third example feed's active hours %v, want weekdays 07:00-19:00 in Europe/London", c.Feeds[2].Active)
	}
}
