package retention

import (
	"strings"
	"testing"
	"time"

	"github.com/aortahealth/aorta/pkg/route"
)

func TestParseAge(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"90d", 90 * Day, false},
		{" 7d ", 7 * Day, false},
		{"2160h", 90 * Day, false},
		{"1h30m", 90 * time.Minute, false},
		{"off", 0, false},
		{"OFF", 0, false},
		{"0", 0, false},
		{"", 0, false},
		{"0d", 0, false},
		{"-3d", 0, true},
		{"-1h", 0, true},
		{"1.5d", 0, true},
		{"d", 0, true},
		{"90 days", 0, true},
		{"3mo", 0, true},
		{"99999999999d", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAge(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseAge(%q) = %s, %v; want %s, error %t", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	d := func(days int) time.Duration { return time.Duration(days) * Day }
	tests := []struct {
		name string
		p    Policy
		// want are fragments of the error, each of which must appear; none
		// for a valid policy.
		want []string
	}{
		{"all off", Policy{}, nil},
		{"messages only", Policy{Messages: d(90)}, nil},
		{"events only", Policy{Events: d(30)}, nil},
		{"events shorter than messages", Policy{Messages: d(90), Events: d(30)}, nil},
		{"events as long as messages", Policy{Messages: d(90), Events: d(90)}, nil},
		{"audit longer", Policy{Messages: d(90), Events: d(30), Audit: d(2190)}, nil},
		{"audit as long as messages, events with them", Policy{Messages: d(90), Audit: d(90)}, nil},
		{"minimum", Policy{Messages: MinAge, Events: MinAge, Audit: MinAge}, nil},
		{"slip: minutes for months", Policy{Messages: 90 * time.Minute},
			[]string{"--retain-messages=1h30m0s: shorter than the minimum 14d"}},
		{"thirteen days", Policy{Events: d(13)}, []string{"--retain-events=13d: shorter than the minimum 14d"}},
		{"negative", Policy{Audit: -time.Hour}, []string{"--retain-audit=-1h0m0s: must not be negative"}},
		{"events outlive messages", Policy{Messages: d(30), Events: d(90)},
			[]string{"--retain-events=90d is longer than --retain-messages=30d"}},
		{"audit shorter than messages", Policy{Messages: d(90), Audit: d(30)},
			[]string{"--retain-audit=30d is shorter than --retain-messages=90d"}},
		{"audit with messages kept forever", Policy{Audit: d(365)},
			[]string{"--retain-audit=365d is shorter than --retain-messages=off (kept forever)"}},
		{"audit shorter than events, messages forever", Policy{Events: d(90), Audit: d(30)},
			[]string{"--retain-messages=off (kept forever)", "--retain-audit=30d is shorter than --retain-events=90d"}},
		{"every problem at once", Policy{Messages: time.Hour, Events: d(15), Audit: d(14)},
			[]string{"--retain-messages=1h0m0s: shorter", "--retain-events=15d is longer", "--retain-audit=14d is shorter than --retain-events=15d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("Validate(%s) = %v, want nil", tt.p, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate(%s) = nil, want an error with %q", tt.p, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate(%s) = %q, want it to say %q", tt.p, err, w)
				}
			}
		})
	}
}

func TestPolicyCutoffs(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		p    Policy
		want [4]string // messages, observations, events, audit; "" for zero
	}{
		{"off", Policy{}, [4]string{}},
		{"messages", Policy{Messages: 90 * Day}, [4]string{"2026-08-28", "2026-08-28", "", ""}},
		{"all", Policy{Messages: 90 * Day, Events: 30 * Day, Audit: 365 * Day},
			[4]string{"2026-08-28", "2026-08-28", "2026-10-27", "2025-11-26"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.p.Cutoffs(now)
			var got [4]string
			for i, at := range []time.Time{c.Messages, c.Observations, c.Events, c.Audit} {
				if !at.IsZero() {
					got[i] = at.Format(time.DateOnly)
				}
			}
			if got != tt.want {
				t.Errorf("Cutoffs = %q, want %q", got, tt.want)
			}
		})
	}
}

// ScoringWindow is the longest freshness window routes.yaml accepts: if
// pkg/route ever allows a longer one, observations deleted with their
// messages could change a new score, and this fails.
func TestScoringWindow(t *testing.T) {
	reg := route.Registry{Mappings: []string{"observations"}, Handlers: []string{"news2"}, Scores: []string{"news2"}}
	src := func(labs string) []byte {
		return []byte("version: 1\nroutes:\n  - {name: v, match: all, handlers: [news2]}\nscoring:\n  freshness: {labs: " + labs + "}\n")
	}
	c, err := route.Parse("routes.yaml", src("168h"), reg)
	if err != nil {
		t.Fatalf("a labs window of ScoringWindow is refused: %v", err)
	}
	if got := c.Scoring.Labs; got != ScoringWindow {
		t.Errorf("labs window %s, want %s", got, ScoringWindow)
	}
	if _, err := route.Parse("routes.yaml", src("169h"), reg); err == nil || !strings.Contains(err.Error(), "168h") {
		t.Errorf("a labs window longer than ScoringWindow: %v, want it refused at 168h", err)
	}
}
