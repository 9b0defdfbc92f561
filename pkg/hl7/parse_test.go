package hl7

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestParseDelimiterVariants(t *testing.T) {
	tests := []struct {
		name string
		file string
		want Delimiters
		enc  string
		gets map[string]string
	}{
		{
			name: "standard",
			file: "adt_a01.hl7",
			want: StandardDelimiters,
			enc:  `^~\&`,
			gets: map[string]string{"MSH-1": "|", "MSH-2": `^~\&`, "MSH-3": "ADTAPP", "MSH-9.2": "A01", "PID-5.2": "Jane"},
		},
		{
			name: "five encoding characters with truncation",
			file: "five_enc.hl7",
			want: Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '\\', Subcomponent: '&', Truncation: '#'},
			enc:  `^~\&#`,
			gets: map[string]string{"MSH-2": `^~\&#`, "MSH-3": "NEWAPP", "MSH-10": "TRUNC-5", "NTE-3": "Issue #42 # done"},
		},
		{
			name: "three encoding characters",
			file: "three_enc.hl7",
			want: Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '}'},
			enc:  "^~}",
			gets: map[string]string{"MSH-2": "^~}", "MSH-3": "OLDAPP", "PID-3.1": "A&B", "PID-3.2": "X^Y}T}", "PID-3.1.2": ""},
		},
		{
			name: "caret as field separator",
			file: "caret_fieldsep.hl7",
			want: Delimiters{Field: '^', Component: '~', Repetition: '|', Escape: '\\', Subcomponent: '&'},
			enc:  `~|\&`,
			gets: map[string]string{"MSH-1": "^", "MSH-3": "SENDAPP", "MSH-9.1": "ADT", "MSH-9.2": "A08", "MSH-10": "CARET-1",
				"PID-3[1].4.2": "1.2", "PID-3[2]": "ID2", "PID-5.2": "JOHN"},
		},
		{
			name: "dollar as field separator",
			file: "",
			want: Delimiters{Field: '$', Component: '%', Repetition: '~', Escape: '\\', Subcomponent: '&'},
			enc:  `%~\&`,
			gets: map[string]string{"MSH-3": "APP", "PID-5.2": "EVE", "MSH-9": "ORU%R01"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := []byte("MSH$%~\\&$APP$$$$$$ORU%R01$1$P$2.4\rPID$$$555$$EVERYWOMAN%EVE\r")
			if tt.file != "" {
				raw = readTestdata(t, tt.file)
			}
			m := mustParse(t, raw)
			if got := m.Delimiters(); got != tt.want {
				t.Errorf("Delimiters() = %+v, want %+v", got, tt.want)
			}
			if got := m.Delimiters().EncodingCharacters(); got != tt.enc {
				t.Errorf("EncodingCharacters() = %q, want %q", got, tt.enc)
			}
			for loc, want := range tt.gets {
				if got := mustGet(t, m, loc); got != want {
					t.Errorf("Get(%q) = %q, want %q", loc, got, want)
				}
			}
		})
	}
}

func TestParseTerminators(t *testing.T) {
	const msh = `MSH|^~\&|A|B|C|D|20240101||ADT^A01|C1|P|2.5`
	tests := []struct {
		name string
		raw  string
		segs []string
	}{
		{"CR", msh + "\rPID|1\rPV1|1\r", []string{"MSH", "PID", "PV1"}},
		{"LF", msh + "\nPID|1\nPV1|1\n", []string{"MSH", "PID", "PV1"}},
		{"CRLF", msh + "\r\nPID|1\r\nPV1|1\r\n", []string{"MSH", "PID", "PV1"}},
		{"mixed", msh + "\rPID|1\nPV1|1\r\nOBX|1", []string{"MSH", "PID", "PV1", "OBX"}},
		{"no final terminator", msh + "\rPID|1", []string{"MSH", "PID"}},
		{"blank lines", "\r\n\r\n" + msh + "\r\r\n\nPID|1\r\r\r", []string{"MSH", "PID"}},
		{"trailing whitespace", msh + "\rPID|1\r \t \r\n  ", []string{"MSH", "PID"}},
		{"BOM", "\xEF\xBB\xBF" + msh + "\rPID|1\r", []string{"MSH", "PID"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustParse(t, []byte(tt.raw))
			var got []string
			for s := range m.Segments() {
				got = append(got, s.Name())
				if bytes.ContainsAny(s.Raw(), "\r\n") {
					t.Errorf("segment %s keeps a line terminator", s.Name())
				}
			}
			if !slices.Equal(got, tt.segs) {
				t.Errorf("segments = %v, want %v", got, tt.segs)
			}
			if got := mustGet(t, m, "MSH-12"); got != "2.5" {
				t.Errorf("MSH-12 = %q, want 2.5", got)
			}
			if got := mustGet(t, m, "PID-1"); got != "1" {
				t.Errorf("PID-1 = %q, want 1", got)
			}
			if !bytes.Equal(m.Raw(), []byte(tt.raw)) {
				t.Errorf("Raw() differs from the input")
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		code ErrorCode
		loc  string
		off  int
	}{
		{"empty", "", SegmentSequenceError, "", 0},
		{"whitespace only", " \r\n\t\n", SegmentSequenceError, "", 0},
		{"BOM only", "\xEF\xBB\xBF\r\n", SegmentSequenceError, "", 3},
		{"first segment not MSH", "PID|1\rMSH|^~\\&|A\r", SegmentSequenceError, "MSH", 0},
		{"leading space before MSH", " MSH|^~\\&|A\r", SegmentSequenceError, "MSH", 0},
		{"MSH only", "MSH\r", RequiredFieldMissing, "MSH-1", 3},
		{"MSH with separator only", "MSH|\r", RequiredFieldMissing, "MSH-2", 4},
		{"empty MSH-2", "MSH||A|B\r", RequiredFieldMissing, "MSH-2", 4},
		{"two encoding characters", "MSH|^~|A\r", DataTypeError, "MSH-2", 4},
		{"six encoding characters", "MSH|^~\\&#!|A\r", DataTypeError, "MSH-2", 4},
		{"duplicate encoding character", "MSH|^^\\&|A\r", DataTypeError, "MSH-2", 4},
		{"encoding character equals field separator", "MSH|^|\\&|A\r", DataTypeError, "MSH-2", 4},
		{"non-ASCII encoding character", "MSH|^\xEF\xBF\xBD\\&|A\r", DataTypeError, "MSH-2", 4},
		{"space as encoding character", "MSH|^ \\&|A\r", DataTypeError, "MSH-2", 4},
		{"control character as field separator", "MSH\x01^~\\&\x01A\r", DataTypeError, "MSH-1", 3},
		{"letter as field separator", "MSHA012AA0AAAAAA0", DataTypeError, "MSH-1", 3},
		{"digit as encoding character", "MSH|^~1&|A\r", DataTypeError, "MSH-2", 4},
		{"UTF-16", msh18("UNICODE UTF-16"), TableValueNotFound, "MSH-18", 24},
		{"UTF-32", msh18("UNICODE UTF-32"), TableValueNotFound, "MSH-18", 24},
		{"unknown charset", msh18("KLINGON"), TableValueNotFound, "MSH-18", 24},
		{"unsupported first repetition", msh18("ISO IR87~UNICODE UTF-8"), TableValueNotFound, "MSH-18", 24},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.raw))
			if err == nil {
				t.Fatalf("Parse succeeded with %d segments, want error code %d", countSegments(m), tt.code)
			}
			e := asError(t, err)
			if e.Code != tt.code {
				t.Errorf("Code = %d, want %d (%v)", e.Code, tt.code, err)
			}
			if got := e.Location.String(); got != tt.loc {
				t.Errorf("Location = %q, want %q", got, tt.loc)
			}
			if e.Offset != tt.off {
				t.Errorf("Offset = %d, want %d", e.Offset, tt.off)
			}
			if e.Severity != SeverityError {
				t.Errorf("Severity = %q, want E", e.Severity)
			}
			if tt.loc != "" && !strings.Contains(err.Error(), tt.loc) {
				t.Errorf("error %q does not name the location %s", err, tt.loc)
			}
		})
	}
}

// msh18 returns an MSH whose MSH-18 (at byte 24) holds charset.
func msh18(charset string) string {
	return "MSH|^~\\&" + strings.Repeat("|", 16) + charset + "\r"
}

func TestErrorTextHasNoValues(t *testing.T) {
	// The charset name and the bad delimiters are message content; the
	// error must describe them without quoting them.
	inputs := []string{
		"MSH|^~\\&|SECRETAPP|||||||||||||||SECRETCHARSET\r",
		"MSH|^SECRET|A\r",
		"SECRET|1\r",
	}
	for _, in := range inputs {
		_, err := Parse([]byte(in))
		if err == nil {
			t.Fatalf("Parse(%q) succeeded", in)
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("error %q quotes message content", err)
		}
	}
}

func TestGetLocations(t *testing.T) {
	adt := mustParse(t, readTestdata(t, "adt_a01.hl7"))
	oru := mustParse(t, readTestdata(t, "oru_r01.hl7"))
	tests := []struct {
		name string
		m    *Message
		loc  string
		want string
	}{
		{"field", adt, "PID-8", "F"},
		{"component", adt, "PID-5.1", "Doe"},
		{"composite field is encoded", adt, "PID-5", "Doe^Jane^Q^^Dr"},
		{"composite MSH-9", adt, "MSH-9", "ADT^A01^ADT_A01"},
		{"MSH numbering", adt, "MSH-10", "MSG-0001"},
		{"MSH-9.2", adt, "MSH-9.2", "A01"},
		{"MSH-12", adt, "MSH-12", "2.5.1"},
		{"first repetition implied", adt, "PID-3.1", "MRN123"},
		{"second repetition", adt, "PID-3[2].1", "NHS999"},
		{"second repetition whole", adt, "PID-3[2]", "NHS999^^^NHS^NH"},
		{"subcomponent", adt, "PID-3.4.2", "1.2.3"},
		{"subcomponent of second repetition", adt, "PID-3[2].4.2", ""},
		{"component of a simple field is itself", adt, "PID-8.1", "F"},
		{"component 2 of a simple field", adt, "PID-8.2", ""},
		{"missing field", adt, "PID-30", ""},
		{"missing component", adt, "PID-5.9", ""},
		{"missing repetition", adt, "PID-3[7]", ""},
		{"missing segment", adt, "OBX-5", ""},
		{"empty segment", adt, "PD1-1", ""},
		{"third OBX", oru, "OBX[3]-5", "6.1"},
		{"second OBX code", oru, "OBX[2]-3.2", "Triglyceride"},
		{"first OBX by default", oru, "OBX-5", "185"},
		{"escape T and br", oru, "NTE-3", "Fasting & rested\nsecond line"},
		{"escape F and S", oru, "NTE[2]-3", "Value | flag ^ ok"},
		{"Z-segment", oru, "ZDS-1.2", "data"},
		{"whole segment", oru, "ORC", "ORC|RE|ORD1"},
		{"CRLF leaves no CR", oru, "ZDS-1", "custom^data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustGet(t, tt.m, tt.loc); got != tt.want {
				t.Errorf("Get(%q) = %q, want %q", tt.loc, got, tt.want)
			}
		})
	}
	if _, err := adt.Get("pid-5"); err == nil {
		t.Errorf("Get with a malformed location: got no error")
	}
}

func TestSegmentAccessors(t *testing.T) {
	m := mustParse(t, readTestdata(t, "adt_a01.hl7"))
	pid := m.Segment("PID", 1)
	if pid == nil {
		t.Fatal("no PID")
	}
	if got, want := pid.Name(), "PID"; got != want {
		t.Errorf("Name() = %q, want %q", got, want)
	}
	if got := pid.NumFields(); got != 13 {
		t.Errorf("NumFields() = %d, want 13", got)
	}
	if got := m.Segment("MSH", 1).NumFields(); got != 18 {
		t.Errorf("MSH NumFields() = %d, want 18", got)
	}
	if got := m.Segment("PD1", 1).NumFields(); got != 0 {
		t.Errorf("PD1 NumFields() = %d, want 0", got)
	}
	raw := readTestdata(t, "adt_a01.hl7")
	if off := pid.Offset(); !bytes.HasPrefix(raw[off:], []byte("PID|1|")) {
		t.Errorf("Offset() = %d does not point at PID", off)
	}
	if got := string(pid.Raw()); !strings.HasPrefix(got, "PID|1||MRN123") || strings.ContainsAny(got, "\r\n") {
		t.Errorf("Raw() = %q", got)
	}
	ids := pid.Field(3)
	reps := ids.Repetitions()
	if len(reps) != 2 {
		t.Fatalf("PID-3 has %d repetitions, want 2", len(reps))
	}
	if got := reps[1].Component(1).String(); got != "NHS999" {
		t.Errorf("second repetition component 1 = %q", got)
	}
	comps := reps[0].Components()
	if len(comps) != 5 {
		t.Errorf("first repetition has %d components, want 5", len(comps))
	}
	subs := comps[3].Subcomponents()
	if len(subs) != 3 || subs[0].String() != "GOODHOSP" || subs[2].String() != "ISO" {
		t.Errorf("subcomponents = %v", subs)
	}
	if got := ids.Encoded(); got != "MRN123^^^GOODHOSP&1.2.3&ISO^MR~NHS999^^^NHS^NH" {
		t.Errorf("Encoded() = %q", got)
	}
	if pid.Field(2).IsEmpty() != true || pid.Field(3).IsEmpty() {
		t.Errorf("IsEmpty wrong")
	}
	for _, tc := range []struct{ loc, want string }{{"5.2", "Jane"}, {"PID-5.1", "Doe"}, {"3[2].5", "NH"}} {
		if got, err := pid.Get(tc.loc); err != nil || got != tc.want {
			t.Errorf("Segment.Get(%q) = %q, %v; want %q", tc.loc, got, err, tc.want)
		}
	}
	if _, err := pid.Get("PV1-2"); err == nil {
		t.Errorf("Segment.Get with another segment's location: no error")
	}
	var nilSeg *Segment
	if got := nilSeg.Field(1).Component(2).Subcomponent(3).String(); got != "" {
		t.Errorf("nil segment field = %q", got)
	}
}

func TestNullValue(t *testing.T) {
	m := mustParse(t, []byte("MSH|^~\\&|A\rPID|1|\"\"|x\r"))
	f := m.Segment("PID", 1).Field(2)
	if !f.IsNull() || f.String() != `""` {
		t.Errorf("IsNull() = %v, String() = %q", f.IsNull(), f.String())
	}
	if m.Segment("PID", 1).Field(3).IsNull() {
		t.Errorf("x reported as null")
	}
}

func TestAllAndSegments(t *testing.T) {
	m := mustParse(t, readTestdata(t, "oru_r01.hl7"))
	var values []string
	for s := range m.All("OBX") {
		values = append(values, s.Field(5).String())
	}
	if want := []string{"185", "150", "6.1"}; !slices.Equal(values, want) {
		t.Errorf("OBX-5 values = %v, want %v", values, want)
	}
	if got := countSegments(m); got != 11 {
		t.Errorf("%d segments, want 11", got)
	}
	if m.Segment("OBX", 4) != nil || m.Segment("XYZ", 1) != nil {
		t.Errorf("Segment returned a segment that does not exist")
	}
	if got := m.Segment("OBX", 0); got != m.Segment("OBX", 1) {
		t.Errorf("Segment(name, 0) is not the first")
	}
	// Stopping early must be honoured.
	n := 0
	for range m.Segments() {
		n++
		break
	}
	for range m.All("OBX") {
		n++
		break
	}
	if n != 2 {
		t.Errorf("early break not honoured")
	}
}

func TestGroups(t *testing.T) {
	m := mustParse(t, readTestdata(t, "oru_r01.hl7"))
	type group struct {
		parent   string
		children []string
	}
	var got []group
	for g := range m.Groups("OBR", "OBX", "NTE") {
		gr := group{parent: g.Parent.Field(2).String()}
		for _, c := range g.Children {
			gr.children = append(gr.children, c.Name()+"-"+c.Field(1).String())
		}
		got = append(got, gr)
	}
	want := []group{
		{"ORD1", []string{"OBX-1", "OBX-2", "NTE-1"}},
		{"ORD2", []string{"OBX-1", "NTE-1"}},
	}
	if len(got) != len(want) {
		t.Fatalf("groups = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].parent != want[i].parent || !slices.Equal(got[i].children, want[i].children) {
			t.Errorf("group %d = %v, want %v", i, got[i], want[i])
		}
	}
	// A segment outside the child list ends a group.
	var sizes []int
	for g := range m.Groups("OBR", "OBX") {
		sizes = append(sizes, len(g.Children))
	}
	if !slices.Equal(sizes, []int{2, 1}) {
		t.Errorf("OBR/OBX group sizes = %v, want [2 1]", sizes)
	}
	n := 0
	for range m.Groups("OBR", "OBX", "NTE") {
		n++
		break
	}
	if n != 1 {
		t.Errorf("early break not honoured")
	}
}

func TestEmptySegmentAndZSegments(t *testing.T) {
	m := mustParse(t, []byte("MSH|^~\\&|A\rZPI|custom\rPD1\rPID|||ID\rZZ1|a^b\r"))
	var names []string
	for s := range m.Segments() {
		names = append(names, s.Name())
	}
	if want := []string{"MSH", "ZPI", "PD1", "PID", "ZZ1"}; !slices.Equal(names, want) {
		t.Errorf("names = %v, want %v", names, want)
	}
	if got := mustGet(t, m, "ZZ1-1.2"); got != "b" {
		t.Errorf("ZZ1-1.2 = %q", got)
	}
	if got := mustGet(t, m, "PD1-1"); got != "" {
		t.Errorf("PD1-1 = %q", got)
	}
}

func TestHeader(t *testing.T) {
	m := mustParse(t, readTestdata(t, "adt_a01.hl7"))
	h := m.Header()
	checks := []struct{ name, got, want string }{
		{"SendingApplication", h.SendingApplication.String(), "ADTAPP"},
		{"SendingFacility", h.SendingFacility.NamespaceID, "GOODHOSP"},
		{"ReceivingApplication", h.ReceivingApplication.String(), "AORTA"},
		{"ReceivingFacility", h.ReceivingFacility.String(), "AORTAFAC"},
		{"DateTime", h.DateTime, "20240301101500+0100"},
		{"MessageType", h.MessageType, "ADT"},
		{"TriggerEvent", h.TriggerEvent, "A01"},
		{"MessageStructure", h.MessageStructure, "ADT_A01"},
		{"ControlID", h.ControlID, "MSG-0001"},
		{"ProcessingID", h.ProcessingID, "P"},
		{"Version", h.Version, "2.5.1"},
		{"AcceptAckType", h.AcceptAckType, "AL"},
		{"AppAckType", h.AppAckType, "NE"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if !slices.Equal(h.CharacterSets, []string{"UNICODE UTF-8"}) {
		t.Errorf("CharacterSets = %q", h.CharacterSets)
	}
	if errs := h.Check(); len(errs) != 0 {
		t.Errorf("Check() = %v, want none", errs)
	}
	if got := (HD{UniversalID: "1.2.3"}).String(); got != "1.2.3" {
		t.Errorf("HD.String() without namespace = %q", got)
	}
}

func TestHeaderComponentsInVersionAndProcessingID(t *testing.T) {
	m := mustParse(t, []byte("MSH|^~\\&|A|B|C|D|20100414||ADT^A45^ADT_A45|102416|T^|2.5^^|||NE|AL|CAN|8859/1~UNICODE UTF-8\r"))
	h := m.Header()
	if h.Version != "2.5" || h.ProcessingID != "T" || h.ProcessingMode != "" {
		t.Errorf("Version = %q, ProcessingID = %q, ProcessingMode = %q", h.Version, h.ProcessingID, h.ProcessingMode)
	}
	if !slices.Equal(h.CharacterSets, []string{"8859/1", "UNICODE UTF-8"}) {
		t.Errorf("CharacterSets = %q", h.CharacterSets)
	}
}

func TestHeaderCheck(t *testing.T) {
	tests := []struct {
		name string
		msh  string
		want []string // "code location"
	}{
		{"complete", "MSH|^~\\&|A|B|C|D|1||ADT^A01|C1|P|2.5", nil},
		{"everything missing", "MSH|^~\\&|A|B", []string{"101 MSH-9.1", "101 MSH-10", "101 MSH-11.1", "101 MSH-12.1"}},
		{"only trigger", "MSH|^~\\&|A|B|C|D|1||^A01|C1|P|2.5", []string{"101 MSH-9.1"}},
		{"processing id empty", "MSH|^~\\&|A|B|C|D|1||ORU^R01|C1||2.5.1", []string{"101 MSH-11.1"}},
		{"processing id component missing", "MSH|^~\\&|A|B|C|D|1||ORU^R01|C1|^T|2.5.1", []string{"101 MSH-11.1"}},
		{"version 3", "MSH|^~\\&|A|B|C|D|1||ORU^R01|C1|P|3.0", []string{"203 MSH-12.1"}},
		{"version text", "MSH|^~\\&|A|B|C|D|1||ORU^R01|C1|P|two", []string{"203 MSH-12.1"}},
		{"version 2", "MSH|^~\\&|A|B|C|D|1||ORU^R01|C1|P|2", []string{"203 MSH-12.1"}},
		{"version 2.3.1", "MSH|^~\\&|A|B|C|D|1||ORU^R01|C1|P|2.3.1", nil},
		{"version with components", "MSH|^~\\&|A|B|C|D|1||ORU^R01|C1|P|2.5^^", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustParse(t, []byte(tt.msh+"\r"))
			var got []string
			for _, e := range m.Header().Check() {
				got = append(got, strconv.Itoa(int(e.Code))+" "+e.Location.String())
				if e.Offset < 0 || e.Offset > len(tt.msh) {
					t.Errorf("%v: offset %d outside the MSH", e, e.Offset)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Check() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseHeaderRecovers(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		code    ErrorCode
		control string
		typ     string
	}{
		{"bad MSH-2 with U+FFFD", "MSH|^\xEF\xBF\xBD\\&|APP|FAC|R|RF|20111219||ADT^A01^ADT_A01|CTRL-47|P|2.5||||||UNICODE UTF-8\rPID|1\r", DataTypeError, "CTRL-47", "ADT"},
		{"unsupported charset", "MSH|^~\\&|APP|FAC|R|RF|1||ORU^R01|CTRL-16|P|2.5||||||UNICODE UTF-16\r", TableValueNotFound, "CTRL-16", "ORU"},
		{"MSH after other segments", "\xEF\xBB\xBFZZZ|1\rMSH|^~\\&|APP|FAC|R|RF|1||ORU^R01|CTRL-Z|P|2.5\r", SegmentSequenceError, "CTRL-Z", "ORU"},
		{"duplicate delimiters", "MSH|^^^^|A|B|C|D|1||ADT^A08|CTRL-D|P|2.4\r", DataTypeError, "CTRL-D", "ADT"},
		{"no MSH at all", "PID|1\r", SegmentSequenceError, "", ""},
		{"empty", "", SegmentSequenceError, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseHeader([]byte(tt.raw))
			_, perr := Parse([]byte(tt.raw))
			if err == nil || perr == nil {
				t.Fatalf("ParseHeader err = %v, Parse err = %v; want both to fail", err, perr)
			}
			if err.Error() != perr.Error() {
				t.Errorf("ParseHeader error %q differs from Parse error %q", err, perr)
			}
			if e := asError(t, err); e.Code != tt.code {
				t.Errorf("Code = %d, want %d", e.Code, tt.code)
			}
			if h.ControlID != tt.control || h.MessageType != tt.typ {
				t.Errorf("ControlID = %q, MessageType = %q; want %q, %q", h.ControlID, h.MessageType, tt.control, tt.typ)
			}
		})
	}
	h, err := ParseHeader(readTestdata(t, "adt_a01.hl7"))
	if err != nil || h.ControlID != "MSG-0001" {
		t.Errorf("ParseHeader of a good message = %q, %v", h.ControlID, err)
	}
}

func TestSetAndEncode(t *testing.T) {
	m := mustParse(t, readTestdata(t, "oru_r01.hl7"))
	raw := bytes.Clone(m.Raw())
	sets := []struct{ loc, value string }{
		{"PID-5.1", "O'Brien|Smith^Jr & Co~x\\y"},
		{"PID-5.3", "Ann\nMarie"},
		{"PID-3[2].1", "SECOND"},
		{"PID-3[2].4.2", "1.2.840"},
		{"OBX[2]-5", "151"},
		{"NTE-3", "carriage\rreturn"},
		{"MSH-10", "NEW-ID"},
		{"PID-40", "far away"},
		{"OBX[4]-5", "new OBX"},
		{"ZDS", ""},
	}
	for _, s := range sets {
		err := m.Set(s.loc, s.value)
		if s.loc == "ZDS" {
			if err == nil {
				t.Errorf("Set on a segment location: no error")
			}
			continue
		}
		if err != nil {
			t.Fatalf("Set(%q): %v", s.loc, err)
		}
	}
	if !bytes.Equal(m.Raw(), raw) {
		t.Errorf("Set modified the raw input")
	}
	enc := m.Encode()
	if bytes.Contains(enc, []byte("\n")) {
		t.Errorf("Encode() contains LF")
	}
	m2 := mustParse(t, enc)
	for _, s := range sets {
		if s.loc == "ZDS" {
			continue
		}
		for _, msg := range []*Message{m, m2} {
			if got := mustGet(t, msg, s.loc); got != s.value {
				t.Errorf("after Set, Get(%q) = %q, want %q", s.loc, got, s.value)
			}
		}
	}
	if got := mustGet(t, m2, "PID-3[1].1"); got != "MRN123" {
		t.Errorf("untouched repetition changed: %q", got)
	}
	if got := mustGet(t, m2, "OBX[3]-5"); got != "6.1" {
		t.Errorf("untouched OBX changed: %q", got)
	}
	if got := m2.Header().ControlID; got != "NEW-ID" {
		t.Errorf("header control id = %q", got)
	}
	if s := m.Segment("PID", 1); s.Offset() < 0 || bytes.Contains(s.Raw(), []byte("MRN123^^^GOODHOSP^MR|")) {
		t.Errorf("modified segment: offset %d raw %q", s.Offset(), s.Raw())
	}
	if s := m.Segment("OBX", 4); s.Offset() != -1 {
		t.Errorf("added segment offset = %d, want -1", s.Offset())
	}
}

func TestSetErrors(t *testing.T) {
	m := mustParse(t, readTestdata(t, "three_enc.hl7"))
	for _, loc := range []string{"MSH-1", "MSH-2", "PID-3.1.2", "OBX[2]-1", "MSH[2]-3", "bad", "PID"} {
		if err := m.Set(loc, "x"); err == nil {
			t.Errorf("Set(%q) succeeded", loc)
		}
	}
	l := mustParse(t, readTestdata(t, "latin1.hl7"))
	if err := l.Set("PID-5.1", "€uro"); err == nil {
		t.Errorf("Set of a character 8859/1 cannot hold: no error")
	}
	if err := l.Set("PID-5.1", "Weiß"); err != nil {
		t.Errorf("Set(Weiß) in 8859/1: %v", err)
	}
	if b := l.Segment("PID", 1).Raw(); !bytes.Contains(b, []byte("Wei\xdf")) {
		t.Errorf("value not encoded as 8859/1: %q", b)
	}
	if err := l.Set("MSH-18", "UNICODE UTF-16"); err == nil {
		t.Errorf("Set of an unsupported MSH-18: no error")
	}
	if got := mustGet(t, l, "MSH-18"); got != "8859/1" {
		t.Errorf("MSH-18 after failed Set = %q", got)
	}
}

func TestNewMessage(t *testing.T) {
	if _, err := NewMessage(Delimiters{Field: '|', Component: '|', Repetition: '~', Escape: '\\'}); err == nil {
		t.Errorf("NewMessage with clashing delimiters: no error")
	}
	if _, err := NewMessage(Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '\\', Truncation: '#'}); err == nil {
		t.Errorf("NewMessage with truncation but no subcomponent: no error")
	}
	m, err := NewMessage(StandardDelimiters)
	if err != nil {
		t.Fatal(err)
	}
	if m.Raw() != nil {
		t.Errorf("Raw() of a built message is not nil")
	}
	for _, s := range [][2]string{
		{"MSH-3", "AORTA"}, {"MSH-9.1", "ADT"}, {"MSH-9.2", "A08"}, {"MSH-10", "B-1"},
		{"MSH-11", "P"}, {"MSH-12", "2.5"}, {"PID-5.1", "Doe"}, {"PID-5.2", "Jane"}, {"OBX-5", "1"}, {"OBX[2]-5", "2"},
	} {
		if err := m.Set(s[0], s[1]); err != nil {
			t.Fatalf("Set(%q): %v", s[0], err)
		}
	}
	want := "MSH|^~\\&|AORTA||||||ADT^A08|B-1|P|2.5\rPID|||||Doe^Jane\rOBX|||||1\rOBX|||||2\r"
	if got := string(m.Encode()); got != want {
		t.Errorf("Encode() = %q\nwant        %q", got, want)
	}
	h := m.Header()
	if h.MessageType != "ADT" || h.TriggerEvent != "A08" || h.ControlID != "B-1" {
		t.Errorf("header = %+v", h)
	}
}

func TestConcurrentReads(t *testing.T) {
	m := mustParse(t, readTestdata(t, "oru_r01.hl7"))
	done := make(chan string)
	for range 8 {
		go func() {
			var b strings.Builder
			for s := range m.Segments() {
				for f := 1; f <= s.NumFields(); f++ {
					b.WriteString(s.Field(f).String())
				}
			}
			b.WriteString(m.Header().ControlID)
			done <- b.String()
		}()
	}
	first := <-done
	for range 7 {
		if got := <-done; got != first {
			t.Errorf("concurrent readers saw different values")
		}
	}
}
