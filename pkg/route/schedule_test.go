package route

import (
	"strings"
	"testing"
	"time"
)

func TestScheduleActive(t *testing.T) {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	weekdays := &Schedule{Days: [7]bool{false, true, true, true, true, true, false}, From: 7 * 60, To: 19 * 60, Location: london}
	nights := &Schedule{Days: [7]bool{true, true, true, true, true, true, true}, From: 22 * 60, To: 6 * 60, Location: london}
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.ParseInLocation("2006-01-02 15:04", s, london)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name     string
		s        *Schedule
		from, to string
		want     time.Duration
	}{
		{"inside one window", weekdays, "2026-11-26 09:00", "2026-11-26 10:30", 90 * time.Minute},
		{"across the evening close", weekdays, "2026-11-26 18:50", "2026-11-27 07:10", 20 * time.Minute},
		{"a whole night outside", weekdays, "2026-11-26 19:00", "2026-11-27 07:00", 0},
		{"over the weekend", weekdays, "2026-11-27 18:45", "2026-11-30 07:15", 30 * time.Minute}, // Friday to Monday
		{"a full week", weekdays, "2026-11-23 00:00", "2026-11-30 00:00", 60 * time.Hour},
		{"night window open at the start", nights, "2026-11-26 05:00", "2026-11-26 23:00", 2 * time.Hour},
		{"night window across midnight", nights, "2026-11-26 23:30", "2026-11-27 00:30", time.Hour},
		// 2026-10-25, 02:00 BST becomes 01:00 GMT: that night is 9 hours long.
		{"night of the clock change", nights, "2026-10-24 21:00", "2026-10-25 07:00", 9 * time.Hour},
		{"empty span", weekdays, "2026-11-26 10:00", "2026-11-26 10:00", 0},
		{"reversed span", weekdays, "2026-11-26 11:00", "2026-11-26 10:00", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.Active(at(tt.from), at(tt.to)); got != tt.want {
				t.Errorf("Active(%s, %s) = %v, want %v", tt.from, tt.to, got, tt.want)
			}
		})
	}

	after := []struct {
		name string
		s    *Schedule
		from string
		d    time.Duration
		want string
	}{
		{"inside a window", weekdays, "2026-11-26 09:00", 15 * time.Minute, "2026-11-26 09:15"},
		{"carried over the night", weekdays, "2026-11-26 18:55", 15 * time.Minute, "2026-11-27 07:10"},
		{"from outside the hours", weekdays, "2026-11-26 21:00", 15 * time.Minute, "2026-11-27 07:15"},
		{"carried over the weekend", weekdays, "2026-11-27 18:55", 15 * time.Minute, "2026-11-30 07:10"},
		{"night window across midnight", nights, "2026-11-26 23:50", 30 * time.Minute, "2026-11-27 00:20"},
		{"exactly the window's end", weekdays, "2026-11-26 18:45", 15 * time.Minute, "2026-11-26 19:00"},
	}
	for _, tt := range after {
		t.Run("After "+tt.name, func(t *testing.T) {
			if got := tt.s.After(at(tt.from), tt.d); !got.Equal(at(tt.want)) {
				t.Errorf("After(%s, %v) = %s, want %s", tt.from, tt.d, got.In(london).Format("2006-01-02 15:04"), tt.want)
			}
			// The two agree: d of active time has passed at After.
			if got := tt.s.Active(at(tt.from), at(tt.want)); got != tt.d {
				t.Errorf("Active(%s, %s) = %v, want %v", tt.from, tt.want, got, tt.d)
			}
		})
	}
}

// A span far longer than two weeks is cut to the last fortnight: still
// more than any allowed silence.
func TestScheduleActiveLongSpan(t *testing.T) {
	s := &Schedule{Days: [7]bool{false, true}, From: 9 * 60, To: 10 * 60, Location: time.UTC} // Mondays, one hour
	to := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	if got := s.Active(to.AddDate(-1, 0, 0), to); got < 2*time.Hour {
		t.Errorf("Active over a year = %v, want at least the fortnight's 2h", got)
	}
}

func TestFeedActiveHours(t *testing.T) {
	const head = "version: 1\ntimezone: Europe/London\nroutes: []\nfeeds:\n  - name: opd\n    sending_application: OPD\n    silence: 30m\n"
	tests := []struct {
		name    string
		active  string
		want    string // Schedule.String(), or "" for an error
		wantErr string
	}{
		{name: "weekdays", active: "    active: {days: [mon, tue, wed, thu, fri], from: \"07:00\", to: \"19:00\"}\n",
			want: "mon,tue,wed,thu,fri 07:00-19:00 Europe/London"},
		{name: "every day by default, own zone", active: "    active: {from: \"22:00\", to: \"06:00\", timezone: America/New_York}\n",
			want: "mon,tue,wed,thu,fri,sat,sun 22:00-06:00 America/New_York"},
		{name: "whole days", active: "    active: {days: [Sat, SUN], from: \"00:00\", to: \"24:00\"}\n",
			want: "sat,sun 00:00-24:00 Europe/London"},
		{name: "unknown day", active: "    active: {days: [mon, thurs], from: \"07:00\", to: \"19:00\"}\n",
			wantErr: `routes.yaml:8:26: day "thurs" is not one of`},
		{name: "day twice", active: "    active: {days: [mon, mon], from: \"07:00\", to: \"19:00\"}\n",
			wantErr: `day "mon" is listed twice`},
		{name: "not a time", active: "    active: {from: \"7am\", to: \"19:00\"}\n",
			wantErr: `routes.yaml:8:20: from "7am" is not a time of day`},
		{name: "a space for a digit", active: "    active: {from: \" 7:00\", to: \"19:00\"}\n",
			wantErr: `from " 7:00" is not a time of day`},
		{name: "25 o'clock", active: "    active: {from: \"07:00\", to: \"25:00\"}\n",
			wantErr: `to "25:00" is not a time of day`},
		{name: "from 24:00", active: "    active: {from: \"24:00\", to: \"06:00\"}\n",
			wantErr: `active hours cannot start at 24:00`},
		{name: "minutes out of range", active: "    active: {from: \"07:60\", to: \"19:00\"}\n",
			wantErr: `from "07:60" is not a time of day`},
		{name: "missing to", active: "    active: {from: \"07:00\"}\n",
			wantErr: `missing required key "to"`},
		{name: "same from and to", active: "    active: {from: \"07:00\", to: \"07:00\"}\n",
			wantErr: `for the whole day write from: "00:00" and to: "24:00"`},
		{name: "less than the silence each week", active: "    active: {days: [sun], from: \"07:00\", to: \"07:20\"}\n",
			wantErr: "active hours hold 20m0s a week, less than the feed's silence of 30m0s"},
		{name: "bad zone", active: "    active: {from: \"07:00\", to: \"19:00\", timezone: Mars/Olympus}\n",
			wantErr: "Mars/Olympus"},
		{name: "unknown key", active: "    active: {from: \"07:00\", to: \"19:00\", weekdays: [mon]}\n",
			wantErr: `unknown key "weekdays"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("routes.yaml", []byte(head+tt.active), testRegistry)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Feed("opd").Active; got == nil || got.String() != tt.want {
				t.Errorf("active %v, want %s", got, tt.want)
			}
		})
	}
}
