package hl7

import (
	"strings"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	plus1 := time.FixedZone("", 3600)
	minus5 := time.FixedZone("", -5*3600)
	tests := []struct {
		in   string
		want time.Time
	}{
		{"2024", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"202403", time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)},
		{"20240315", time.Date(2024, 3, 15, 0, 0, 0, 0, time.UTC)},
		{"2024031510", time.Date(2024, 3, 15, 10, 0, 0, 0, time.UTC)},
		{"202403151030", time.Date(2024, 3, 15, 10, 30, 0, 0, time.UTC)},
		{"20240315103045", time.Date(2024, 3, 15, 10, 30, 45, 0, time.UTC)},
		{"20240315103045.1", time.Date(2024, 3, 15, 10, 30, 45, 100_000_000, time.UTC)},
		{"20240315103045.1234", time.Date(2024, 3, 15, 10, 30, 45, 123_400_000, time.UTC)},
		{"20240315103045.1234567891", time.Date(2024, 3, 15, 10, 30, 45, 123_456_789, time.UTC)},
		{"20080627102031.292+0100", time.Date(2008, 6, 27, 10, 20, 31, 292_000_000, plus1)},
		{"20110531140551-0500", time.Date(2011, 5, 31, 14, 5, 51, 0, minus5)},
		{"202102101707-0500", time.Date(2021, 2, 10, 17, 7, 0, 0, minus5)},
		{"20240229", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTime(tt.in)
			if err != nil {
				t.Fatalf("ParseTime(%q): %v", tt.in, err)
			}
			if !got.Equal(tt.want) {
				t.Errorf("ParseTime(%q) = %v, want %v", tt.in, got, tt.want)
			}
			_, gotOff := got.Zone()
			_, wantOff := tt.want.Zone()
			if gotOff != wantOff {
				t.Errorf("offset = %d, want %d", gotOff, wantOff)
			}
		})
	}
}

func TestParseTimeErrors(t *testing.T) {
	for _, in := range []string{
		"", "24", "20241", "2024031", "20240230", "20231301", "20240100", "20240315250000", "20240315106000",
		"20240315103060", "2024.5", "20240315.1", "20240315103045.", "20240315103045+01", "20240315103045+2500",
		"20240315103045+01x0", "20240315103045Z", "2024-03-15", " 20240315", "20240315103045^S",
	} {
		if got, err := ParseTime(in); err == nil {
			t.Errorf("ParseTime(%q) = %v, want an error", in, got)
		} else if len(in) > 4 && strings.Contains(err.Error(), in) {
			t.Errorf("error %q quotes the value", err)
		}
	}
}

func TestParseTimeIn(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		ny = time.FixedZone("EST", -5*3600)
	}
	got, err := ParseTimeIn("20240115120000", ny)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2024, 1, 15, 12, 0, 0, 0, ny); !got.Equal(want) {
		t.Errorf("ParseTimeIn = %v, want %v", got, want)
	}
	// An explicit offset wins over the default location.
	got, _ = ParseTimeIn("20240115120000+0000", ny)
	if want := time.Date(2024, 1, 15, 12, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("ParseTimeIn with offset = %v, want %v", got, want)
	}
}
