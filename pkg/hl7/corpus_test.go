package hl7

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aortahealth/aorta/internal/testcorpus"
)

// TestCorpus runs the shared third-party corpus: every file must split (for
// batches) or parse with the header expected.csv names, or fail with an
// *Error from which ParseHeader still recovers the control ID.
func TestCorpus(t *testing.T) {
	cases := testcorpus.Cases(t)
	if len(cases) < 40 {
		t.Fatalf("only %d corpus cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.File, func(t *testing.T) {
			raw := testcorpus.Read(t, c.File)
			var ids []string
			if c.ControlID != "" {
				ids = strings.Split(c.ControlID, ";")
			}
			if c.MessageType == "BATCH" {
				corpusBatch(t, raw, ids)
				return
			}
			if IsBatch(raw) {
				t.Errorf("IsBatch = true for a single message")
			}
			m, err := Parse(raw)
			if err != nil {
				e := asError(t, err)
				h, herr := ParseHeader(raw)
				if herr == nil || herr.Error() != e.Error() {
					t.Errorf("ParseHeader error %v, Parse error %v", herr, err)
				}
				if h.ControlID != c.ControlID {
					t.Errorf("ParseHeader ControlID = %q, want %q", h.ControlID, c.ControlID)
				}
				corpusACK(t, h, c.ControlID)
				return
			}
			h := m.Header()
			if h.MessageType != c.MessageType || h.TriggerEvent != c.Trigger || h.ControlID != c.ControlID {
				t.Errorf("header = %q^%q control %q, want %q^%q control %q",
					h.MessageType, h.TriggerEvent, h.ControlID, c.MessageType, c.Trigger, c.ControlID)
			}
			checkAllValues(t, m)
			checkRoundTrip(t, m)
			corpusACK(t, h, c.ControlID)
		})
	}
}

func corpusBatch(t *testing.T, raw []byte, ids []string) {
	t.Helper()
	if !IsBatch(raw) {
		t.Errorf("IsBatch = false")
	}
	b, err := SplitBatch(raw)
	if err != nil {
		t.Fatalf("SplitBatch: %v", err)
	}
	var got []string
	for _, msg := range b.Messages {
		if !bytes.Equal(raw[msg.Offset:msg.Offset+len(msg.Raw)], msg.Raw) {
			t.Errorf("message at %d is not the input's bytes", msg.Offset)
		}
		m, err := Parse(msg.Raw)
		if err != nil {
			if e := asError(t, err); e.Code != SegmentSequenceError || bytes.HasPrefix(msg.Raw, []byte("MSH")) {
				t.Errorf("message at %d: %v", msg.Offset, err)
			}
			h, _ := ParseHeader(msg.Raw)
			corpusACK(t, h, "")
			continue
		}
		got = append(got, m.Header().ControlID)
		checkAllValues(t, m)
		corpusACK(t, m.Header(), m.Header().ControlID)
	}
	if !slices.Equal(got, ids) {
		t.Errorf("control ids = %q, want %q", got, ids)
	}
	if len(b.Sections) == 0 {
		t.Errorf("no BHS sections")
	}
	for i, s := range b.Sections {
		if s.Header == nil || s.Trailer == nil {
			t.Errorf("section %d header %v trailer %v", i, s.Header, s.Trailer)
		}
	}
}

// corpusACK checks that the ACK for h parses with our parser and echoes the
// inbound control ID in MSA-2.
func corpusACK(t *testing.T, h Header, controlID string) {
	t.Helper()
	b, err := BuildACK(h, ACK{Code: AA, ControlID: "ACK-1", Time: time.Now()})
	if err != nil {
		t.Fatalf("BuildACK: %v", err)
	}
	ack, err := Parse(b)
	if err != nil {
		t.Fatalf("ACK does not parse: %v\n%q", err, b)
	}
	if got := mustGet(t, ack, "MSA-2"); got != controlID {
		t.Errorf("ACK MSA-2 = %q, want %q", got, controlID)
	}
	if h.delimsValid && ack.Delimiters() != h.Delimiters {
		t.Errorf("ACK delimiters %+v, inbound %+v", ack.Delimiters(), h.Delimiters)
	}
}

// checkAllValues walks every leaf of the message: each must be valid UTF-8
// without line terminators.
func checkAllValues(t *testing.T, m *Message) {
	t.Helper()
	for loc, v := range allValues(m) {
		if !utf8.ValidString(v) {
			t.Errorf("%s is not valid UTF-8", loc)
		}
		if strings.ContainsAny(v, "\r\n") && !strings.Contains(m.Segment(loc.Segment, loc.SegmentIndex).Field(loc.Field).Encoded(), string(m.delims.Escape)) {
			t.Errorf("%s holds a line terminator that no escape sequence produced", loc)
		}
	}
}

// allValues yields every leaf location with its decoded value.
func allValues(m *Message) func(func(Location, string) bool) {
	return func(yield func(Location, string) bool) {
		counts := map[string]int{}
		for s := range m.Segments() {
			counts[s.Name()]++
			for f := 1; f <= s.NumFields(); f++ {
				field := s.Field(f)
				for r, rep := range field.Repetitions() {
					for c, comp := range rep.Components() {
						for sc, sub := range comp.Subcomponents() {
							loc := Location{Segment: s.Name(), SegmentIndex: counts[s.Name()], Field: f, Repetition: r + 1, Component: c + 1, Subcomponent: sc + 1}
							if !yield(loc, sub.String()) {
								return
							}
						}
					}
				}
			}
		}
	}
}

// checkRoundTrip encodes and re-parses m and compares every value.
func checkRoundTrip(t *testing.T, m *Message) {
	t.Helper()
	m2, err := Parse(m.Encode())
	if err != nil {
		t.Fatalf("re-parse of Encode: %v", err)
	}
	for loc, v := range allValues(m) {
		if got := m2.Value(loc); got != v {
			t.Errorf("round trip changed %s: %q, want %q", loc, got, v)
		}
	}
	if countSegments(m) != countSegments(m2) {
		t.Errorf("round trip changed the segment count")
	}
}

func TestCorpusSpecifics(t *testing.T) {
	t.Run("BOM", func(t *testing.T) {
		raw := testcorpus.Read(t, "34_adt-a04-utf8-bom-fhirconv.hl7")
		if !bytes.HasPrefix(raw, bom) {
			t.Fatal("corpus file 34 lost its BOM")
		}
		m := mustParse(t, raw)
		if !bytes.Equal(m.Raw(), raw) {
			t.Errorf("Raw() is not the input")
		}
		if m.Segment("MSH", 1).Offset() != 3 {
			t.Errorf("MSH offset = %d, want 3", m.Segment("MSH", 1).Offset())
		}
	})
	t.Run("LF only", func(t *testing.T) {
		m := mustParse(t, testcorpus.Read(t, "66_variant-lf-adt-a40-fhirconv.hl7"))
		if n := countSegments(m); n != 4 {
			t.Errorf("%d segments, want 4", n)
		}
		if got := m.Header().AppAckType; got != "NE" {
			t.Errorf("MSH-16 = %q, want NE", got)
		}
		if got := mustGet(t, m, "MRG-1.1"); got != "56789" {
			t.Errorf("MRG-1.1 = %q", got)
		}
	})
	t.Run("large ORU", func(t *testing.T) {
		m := mustParse(t, testcorpus.Read(t, "57_oru-r01-utf8-micro-no-msh18-prs.hl7"))
		if n := countSegments(m); n < 170 {
			t.Errorf("%d segments", n)
		}
		found := false
		for s := range m.All("OBX") {
			if strings.Contains(s.Field(6).String(), "µmol/L") {
				found = true
			}
		}
		if !found {
			t.Errorf("no OBX-6 reads µmol/L")
		}
	})
	t.Run("hex escape is not a segment break", func(t *testing.T) {
		raw := testcorpus.Read(t, "58_oru-r01-hex-escape-prs.hl7")
		m := mustParse(t, raw)
		if n, want := countSegments(m), bytes.Count(raw, []byte("\r")); n != want {
			t.Errorf("%d segments, want %d", n, want)
		}
		found := false
		for s := range m.All("NTE") {
			if strings.Contains(s.Field(3).String(), "\r\n") {
				found = true
			}
		}
		if !found {
			t.Errorf("no NTE decodes \\X0d0a\\ to CR LF")
		}
	})
	t.Run("caret field separator", func(t *testing.T) {
		m := mustParse(t, testcorpus.Read(t, "37_adt-a24-caret-fieldsep-hapi.hl7"))
		if got := mustGet(t, m, "PID[2]-5.2"); got != "JOHN" {
			t.Errorf("PID[2]-5.2 = %q", got)
		}
	})
	t.Run("three encoding characters", func(t *testing.T) {
		m := mustParse(t, testcorpus.Read(t, "39_bar-p01-three-enc-chars-hapi.hl7"))
		if d := m.Delimiters(); d.Escape != '}' || d.Subcomponent != 0 {
			t.Errorf("delimiters = %+v", d)
		}
	})
	t.Run("8859/1 with UTF-8 replacement bytes", func(t *testing.T) {
		m := mustParse(t, testcorpus.Read(t, "56_oru-r01-8859-with-fffd-prs.hl7"))
		found := false
		for loc, v := range allValues(m) {
			_ = loc
			if strings.Contains(v, "ï¿½") {
				found = true
			}
		}
		if !found {
			t.Errorf("EF BF BD not read as 8859/1 text")
		}
	})
	t.Run("missing processing id", func(t *testing.T) {
		m := mustParse(t, testcorpus.Read(t, "55_msh-only-no-processing-id-prs.hl7"))
		errs := m.Header().Check()
		if len(errs) != 1 || errs[0].Code != RequiredFieldMissing || errs[0].Location.String() != "MSH-11.1" {
			t.Errorf("Check() = %v", errs)
		}
	})
	t.Run("truncated headers", func(t *testing.T) {
		for _, f := range []string{"21_nonstd-delims-dollar-pythonhl7.hl7", "22_truncated-msh-pythonhl7.hl7"} {
			m := mustParse(t, testcorpus.Read(t, f))
			if len(m.Header().Check()) != 4 {
				t.Errorf("%s: Check() = %v", f, m.Header().Check())
			}
		}
		m := mustParse(t, testcorpus.Read(t, "21_nonstd-delims-dollar-pythonhl7.hl7"))
		if got := mustGet(t, m, "PID-5.2"); got != "EVE" {
			t.Errorf("PID-5.2 = %q", got)
		}
	})
}
