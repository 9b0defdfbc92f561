package hl7

import "testing"

func TestParseLocation(t *testing.T) {
	tests := []struct {
		in   string
		want Location
		str  string
	}{
		{"PID", Location{Segment: "PID"}, "PID"},
		{"PID-5", Location{Segment: "PID", Field: 5}, "PID-5"},
		{"PID-5.1", Location{Segment: "PID", Field: 5, Component: 1}, "PID-5.1"},
		{"PID-5.1.2", Location{Segment: "PID", Field: 5, Component: 1, Subcomponent: 2}, "PID-5.1.2"},
		{"PID-3[2].1", Location{Segment: "PID", Field: 3, Repetition: 2, Component: 1}, "PID-3[2].1"},
		{"OBX[3]-5", Location{Segment: "OBX", SegmentIndex: 3, Field: 5}, "OBX[3]-5"},
		{"OBX[12]-5[3].2.1", Location{Segment: "OBX", SegmentIndex: 12, Field: 5, Repetition: 3, Component: 2, Subcomponent: 1}, "OBX[12]-5[3].2.1"},
		{"MSH-9.2", Location{Segment: "MSH", Field: 9, Component: 2}, "MSH-9.2"},
		{"ZP1-1", Location{Segment: "ZP1", Field: 1}, "ZP1-1"},
		{"PID-05", Location{Segment: "PID", Field: 5}, "PID-5"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseLocation(tt.in)
			if err != nil {
				t.Fatalf("ParseLocation(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseLocation(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("String() = %q, want %q", s, tt.str)
			}
		})
	}
}

func TestParseLocationErrors(t *testing.T) {
	for _, in := range []string{
		"", "P", "pid-5", "PI-5", "PID5", "PID-", "PID-0", "PID-5.", "PID-5.0", "PID-5..1", "PID-5.1.2.3",
		"PID[0]-1", "PID[]-1", "PID[2-1", "PID-3[2", "PID-3[x]", "PID-+5", "PID--5", "PID-5 ", "PID-123456", "PID-5.1x",
	} {
		if l, err := ParseLocation(in); err == nil {
			t.Errorf("ParseLocation(%q) = %+v, want an error", in, l)
		}
	}
}

func TestLocationStringZero(t *testing.T) {
	if s := (Location{}).String(); s != "" {
		t.Errorf("zero Location = %q", s)
	}
	if s := (Location{Segment: "PID", Field: 5, Subcomponent: 2}).String(); s != "PID-5.1.2" {
		t.Errorf("subcomponent without component = %q", s)
	}
}
