package hl7

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestIsBatch(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"FHS|^~\\&|A\r", true},
		{"BHS|^~\\&|A\r", true},
		{"\xEF\xBB\xBFFHS|^~\\&|A\r", true},
		{"\r\n\r\nBHS|^~\\&|A\r", true},
		{"MSH|^~\\&|A\rFHS|x\r", false},
		{"", false},
		{"FH", false},
	}
	for _, tt := range tests {
		if got := IsBatch([]byte(tt.in)); got != tt.want {
			t.Errorf("IsBatch(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestSplitBatchTwoBHS(t *testing.T) {
	raw := readTestdata(t, "batch_two_bhs.hl7")
	b, err := SplitBatch(raw)
	if err != nil {
		t.Fatal(err)
	}
	if b.FileHeader == nil || b.FileTrailer == nil {
		t.Fatalf("file header %v trailer %v", b.FileHeader, b.FileTrailer)
	}
	fh := b.FileHeader
	if fh.ControlID != "FHS-CTL-1" || fh.SendingApplication.String() != "FILEAPP" || fh.SendingFacility.String() != "FILEFAC" || fh.NameID != "FILE-A" {
		t.Errorf("file header = %+v", fh)
	}
	if got := string(fh.Raw()); !strings.HasPrefix(got, "FHS|") || strings.Contains(got, "\r") {
		t.Errorf("file header raw = %q", got)
	}
	if fh.Offset() != 0 {
		t.Errorf("file header offset = %d", fh.Offset())
	}
	if got, _ := b.FileTrailer.Get("FTS-1"); got != "2" {
		t.Errorf("FTS-1 = %q", got)
	}
	if len(b.Sections) != 2 {
		t.Fatalf("%d sections, want 2", len(b.Sections))
	}
	for i, want := range []string{"BHS-CTL-1", "BHS-CTL-2"} {
		s := b.Sections[i]
		if s.Header.ControlID != want {
			t.Errorf("section %d BHS-11 = %q, want %q", i, s.Header.ControlID, want)
		}
		if got, _ := s.Header.Get("BHS-11"); got != want {
			t.Errorf("section %d Get(BHS-11) = %q", i, got)
		}
		if s.Trailer == nil {
			t.Errorf("section %d has no trailer", i)
		}
	}
	if got, _ := b.Sections[0].Trailer.Get("1"); got != "2" {
		t.Errorf("first BTS-1 = %q", got)
	}
	var ids []string
	var sections []int
	for _, msg := range b.Messages {
		if !bytes.Equal(raw[msg.Offset:msg.Offset+len(msg.Raw)], msg.Raw) {
			t.Errorf("message at %d is not a sub-slice of the input", msg.Offset)
		}
		m := mustParse(t, msg.Raw)
		ids = append(ids, m.Header().ControlID)
		sections = append(sections, msg.Section)
	}
	if want := []string{"B1-M1", "B1-M2", "B2-M1"}; !slices.Equal(ids, want) {
		t.Errorf("control ids = %v, want %v", ids, want)
	}
	if want := []int{0, 0, 1}; !slices.Equal(sections, want) {
		t.Errorf("sections = %v, want %v", sections, want)
	}
	// Raw runs up to and including the terminator before the next MSH.
	if got := string(b.Messages[0].Raw); got != "MSH|^~\\&|A|F|R|RF|20240301||ADT^A08|B1-M1|P|2.5\rPID|1||X1\r" {
		t.Errorf("first message raw = %q", got)
	}
}

func TestSplitBatchMissingMSH(t *testing.T) {
	raw := readTestdata(t, "batch_missing_msh.hl7")
	b, err := SplitBatch(raw)
	if err != nil {
		t.Fatal(err)
	}
	if b.FileHeader != nil || len(b.Sections) != 1 || b.Sections[0].Header.ControlID != "BHS-CTL-9" {
		t.Fatalf("envelope = %+v", b)
	}
	if len(b.Messages) != 1 {
		t.Fatalf("%d messages, want 1", len(b.Messages))
	}
	msg := b.Messages[0]
	if !bytes.HasPrefix(msg.Raw, []byte("EVN|")) {
		t.Errorf("message raw = %q", msg.Raw)
	}
	_, err = Parse(msg.Raw)
	if e := asError(t, err); e.Code != SegmentSequenceError {
		t.Errorf("Parse of a message without MSH: code %d", e.Code)
	}
}

func TestSplitBatchVariants(t *testing.T) {
	tests := []struct {
		name     string
		raw      string
		messages []string // first segment name of each message
		sections int
		trailer  bool
	}{
		{"plain concatenated messages", "MSH|^~\\&|A\rPID|1\rMSH|^~\\&|B\rPID|2\r", []string{"MSH", "MSH"}, 0, false},
		{"LF and blank lines", "FHS|^~\\&\n\nBHS|^~\\&\nMSH|^~\\&|A\n\nPID|1\nBTS|1\nFTS|1\n", []string{"MSH"}, 1, true},
		{"stray BTS", "FHS|^~\\&\rMSH|^~\\&|A\rBTS|1\rFTS|1\r", []string{"MSH", "BTS"}, 0, true},
		{"FTS without FHS", "BHS|^~\\&\rMSH|^~\\&|A\rBTS|1\rFTS|1\r", []string{"MSH", "FTS"}, 1, false},
		{"second FHS", "FHS|^~\\&\rFHS|^~\\&\rMSH|^~\\&|A\rFTS|1\r", []string{"FHS", "MSH"}, 0, true},
		{"unclosed batch", "BHS|^~\\&\rMSH|^~\\&|A\rPID|1", []string{"MSH"}, 1, false},
		{"empty batch", "FHS|^~\\&\rBHS|^~\\&\rBTS|0\rFTS|1\r", nil, 1, true},
		{"BOM", "\xEF\xBB\xBFBHS|^~\\&\rMSH|^~\\&|A\rBTS|1\r", []string{"MSH"}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := SplitBatch([]byte(tt.raw))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range b.Messages {
				got = append(got, string(m.Raw[:3]))
			}
			if !slices.Equal(got, tt.messages) {
				t.Errorf("messages = %v, want %v", got, tt.messages)
			}
			if len(b.Sections) != tt.sections {
				t.Errorf("%d sections, want %d", len(b.Sections), tt.sections)
			}
			if (b.FileTrailer != nil) != tt.trailer {
				t.Errorf("file trailer = %v, want %v", b.FileTrailer != nil, tt.trailer)
			}
		})
	}
}

func TestSplitBatchErrors(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		code ErrorCode
		loc  string
	}{
		{"empty", "", SegmentSequenceError, ""},
		{"starts with PID", "PID|1\r", SegmentSequenceError, ""},
		{"bad FHS delimiters", "FHS|^^\\&\r", DataTypeError, "FHS-2"},
		{"bad BHS delimiters", "FHS|^~\\&\rBHS|\r", RequiredFieldMissing, "BHS-2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := SplitBatch([]byte(tt.raw))
			if err == nil {
				t.Fatal("no error")
			}
			e := asError(t, err)
			if e.Code != tt.code || e.Location.String() != tt.loc {
				t.Errorf("error = %v, want code %d at %q", err, tt.code, tt.loc)
			}
		})
	}
}
