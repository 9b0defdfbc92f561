package hl7

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// addSeeds seeds a fuzzer with every testdata message plus inputs aimed at
// the edges: odd delimiters, charsets, escapes and batch envelopes.
func addSeeds(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.hl7"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no testdata seeds: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"", "MSH", "MSH|", "MSH||", "MSH|^~\\&", "MSH|^~}|A", "MSH^~|\\&^A", "MSH$%~\\&$A\rPID$1",
		"\xEF\xBB\xBFMSH|^~\\&|A\r\n\r\nPID|1\n",
		"MSH|^~\\&|A|||||||||||||||8859/15\rPID|1||\xa4\\X80\\\r",
		"MSH|^~\\&|A|||||||||||||||UNICODE UTF-16\r",
		"MSH|^\xef\xbf\xbd\\&|A|B|C|D|1||ADT^A01|X|P|2.5\r",
		"MSH|^~\\&|A\rOBX|1|FT|||\\.sp5\\\\.sk3\\\\X0d0a\\\\H\\x\\N\\\\C2842\\\\E\\\\\r",
		"FHS|^~\\&\rBHS|^~\\&\rMSH|^~\\&|A\rBTS|1\rFTS|1\r",
		"BHS|^~\\&\rEVN|1\rBTS|1\rBTS|2\rFTS|1\r",
	} {
		f.Add([]byte(s))
	}
}

func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		m, err := Parse(data)
		h, herr := ParseHeader(data)
		if !bytes.Equal(data, orig) {
			t.Fatal("Parse modified its input")
		}
		IsBatch(data)
		if b, err := SplitBatch(data); err == nil {
			for _, msg := range b.Messages {
				Parse(msg.Raw)
			}
		}
		ackHeader := h
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not an *Error", err)
			}
			if herr == nil || herr.Error() != err.Error() {
				t.Fatalf("ParseHeader error %v differs from Parse error %v", herr, err)
			}
		} else {
			if herr != nil {
				t.Fatalf("ParseHeader failed on a message Parse accepted: %v", herr)
			}
			if !bytes.Equal(m.Raw(), data) {
				t.Fatal("Raw() is not the input")
			}
			ackHeader = m.Header()
			ackHeader.Check()
			for loc, v := range allValues(m) {
				if !utf8.ValidString(v) {
					t.Fatalf("%s is not valid UTF-8", loc)
				}
			}
			m2, err := Parse(m.Encode())
			if err != nil {
				t.Fatalf("re-parse of Encode: %v", err)
			}
			if countSegments(m) != countSegments(m2) {
				t.Fatalf("round trip changed the segment count")
			}
			for loc, v := range allValues(m) {
				if got := m2.Value(loc); got != v {
					t.Fatalf("round trip changed %s: %q, want %q", loc, got, v)
				}
			}
			var u struct {
				A string    `hl7:"PID-5.1"`
				B []int     `hl7:"PID-1"`
				C time.Time `hl7:"MSH-7"`
				D *float64  `hl7:"OBX-5"`
				E bool      `hl7:"PID-30"`
			}
			Unmarshal(m, &u)
		}
		if ackHeader.MessageType == "ACK" {
			return
		}
		ack, err := BuildACK(ackHeader, ACK{Code: AR, ControlID: "F1", Time: time.Unix(0, 0), Text: "x",
			Errors: []ErrorDetail{{Location: Location{Segment: "MSH", Field: 2}, Code: DataTypeError, Text: "y"}}})
		if err != nil {
			t.Fatalf("BuildACK: %v", err)
		}
		am, err := Parse(ack)
		if err != nil {
			t.Fatalf("ACK does not parse: %v\n%q", err, ack)
		}
		if got := am.Value(Location{Segment: "MSA", Field: 2}); got != ackHeader.ControlID {
			t.Fatalf("MSA-2 = %q, want %q", got, ackHeader.ControlID)
		}
	})
}

// fuzzDelimiters are the delimiter sets the round-trip fuzzer picks from.
var fuzzDelimiters = []Delimiters{
	StandardDelimiters,
	{Field: '|', Component: '^', Repetition: '~', Escape: '\\', Subcomponent: '&', Truncation: '#'},
	{Field: '|', Component: '^', Repetition: '~', Escape: '}'},
	{Field: '^', Component: '~', Repetition: '|', Escape: '\\', Subcomponent: '&'},
	{Field: '$', Component: '%', Repetition: '~', Escape: '\\', Subcomponent: '&'},
	{Field: '^', Component: '.', Repetition: '!', Escape: '"', Subcomponent: '#', Truncation: '$'},
	{Field: '|', Component: '^', Repetition: '~', Escape: '.', Subcomponent: '&'},
}

// FuzzRoundTrip checks that Set then Get returns any value unchanged, in
// the message and after Encode and Parse.
func FuzzRoundTrip(f *testing.F) {
	f.Add("Doe|John^Jr~&\\x", uint8(0), uint8(5), uint8(0), uint8(1), uint8(0), uint8(0))
	f.Add("line\none\rtwo\r\n", uint8(1), uint8(3), uint8(2), uint8(1), uint8(2), uint8(0))
	f.Add("Müller € 日本", uint8(2), uint8(1), uint8(0), uint8(0), uint8(0), uint8(1))
	f.Add("\\.br\\ \\X0D\\ #", uint8(3), uint8(2), uint8(1), uint8(2), uint8(3), uint8(0))
	f.Add("µ\x00end", uint8(4), uint8(2), uint8(1), uint8(2), uint8(3), uint8(2))
	f.Fuzz(func(t *testing.T, value string, dsel, field, rep, comp, sub, cs uint8) {
		value = strings.ToValidUTF8(value, "\uFFFD")
		d := fuzzDelimiters[int(dsel)%len(fuzzDelimiters)]
		if d.Subcomponent == 0 {
			sub = 0
		}
		m, err := NewMessage(d)
		if err != nil {
			t.Fatal(err)
		}
		charset := []string{"", "UNICODE UTF-8", "8859/15"}[int(cs)%3]
		if charset != "" {
			if err := m.Set("MSH-18", charset); err != nil {
				t.Fatal(err)
			}
		}
		loc := Location{Segment: "ZZZ", Field: int(field)%40 + 1, Repetition: int(rep) % 4, Component: int(comp) % 4, Subcomponent: int(sub) % 4}
		if err := m.Set("MSH-10", "CTL"); err != nil {
			t.Fatal(err)
		}
		if err := m.Set(loc.String(), value); err != nil {
			if charset == "8859/15" {
				return // the value holds a character 8859/15 cannot represent
			}
			t.Fatalf("Set(%s): %v", loc, err)
		}
		if got := m.Value(loc); got != value {
			t.Fatalf("Get(%s) = %q, want %q", loc, got, value)
		}
		m2, err := Parse(m.Encode())
		if err != nil {
			t.Fatalf("Parse(Encode): %v", err)
		}
		if got := m2.Value(loc); got != value {
			t.Fatalf("after Encode/Parse, Get(%s) = %q, want %q", loc, got, value)
		}
		if got := m2.Header().ControlID; got != "CTL" {
			t.Fatalf("control id = %q", got)
		}
		if n := countSegments(m2); n != 2 {
			t.Fatalf("%d segments, want 2", n)
		}
	})
}

// FuzzEscape checks that escaping and unescaping are inverse on any bytes.
func FuzzEscape(f *testing.F) {
	for i := range fuzzDelimiters {
		f.Add([]byte("a|b^c~d\\e&f#g}h\ni\rj"), uint8(i))
	}
	f.Add([]byte("\\F\\\\.br\\\\X41\\"), uint8(0))
	f.Fuzz(func(t *testing.T, value []byte, dsel uint8) {
		d := fuzzDelimiters[int(dsel)%len(fuzzDelimiters)]
		s := string(value)
		esc := escape(s, &d)
		if strings.ContainsAny(esc, "\r\n") {
			t.Fatalf("escape(%q) = %q holds a line terminator", s, esc)
		}
		for i := 0; i < len(esc); i++ {
			if d.structural(esc[i]) {
				t.Fatalf("escape(%q) = %q holds a delimiter", s, esc)
			}
		}
		if got := unescape(esc, &d); got != s {
			t.Fatalf("unescape(escape(%q)) = %q", s, got)
		}
		unescape(s, &d) // arbitrary input must not panic
	})
}

// FuzzSplitBatch checks that the pieces SplitBatch returns are the input's
// own bytes, in order, without overlap, and cover every segment.
func FuzzSplitBatch(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := SplitBatch(data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not an *Error", err)
			}
			return
		}
		type piece struct{ start, end int }
		var pieces []piece
		addSeg := func(s *Segment) {
			if s == nil {
				return
			}
			raw := s.Raw()
			if !bytes.Equal(data[s.Offset():s.Offset()+len(raw)], raw) {
				t.Fatalf("segment at %d is not the input's bytes", s.Offset())
			}
			pieces = append(pieces, piece{s.Offset(), s.Offset() + len(raw)})
		}
		if b.FileHeader != nil {
			addSeg(b.FileHeader.Segment)
		}
		addSeg(b.FileTrailer)
		for _, s := range b.Sections {
			addSeg(s.Header.Segment)
			addSeg(s.Trailer)
			if s.Trailer != nil && s.Trailer.Offset() < s.Header.Offset() {
				t.Fatal("batch trailer before its header")
			}
		}
		for _, m := range b.Messages {
			if len(m.Raw) == 0 {
				t.Fatal("empty message")
			}
			if &data[m.Offset] != &m.Raw[0] {
				t.Fatalf("message at %d is not a sub-slice of the input", m.Offset)
			}
			if m.Section < -1 || m.Section >= len(b.Sections) {
				t.Fatalf("section %d out of range", m.Section)
			}
			pieces = append(pieces, piece{m.Offset, m.Offset + len(m.Raw)})
		}
		// Sort by start (insertion sort: inputs are small) and check overlap.
		for i := 1; i < len(pieces); i++ {
			for j := i; j > 0 && pieces[j].start < pieces[j-1].start; j-- {
				pieces[j], pieces[j-1] = pieces[j-1], pieces[j]
			}
		}
		for i := 1; i < len(pieces); i++ {
			if pieces[i].start < pieces[i-1].end {
				t.Fatalf("pieces overlap: %v", pieces)
			}
		}
		start := 0
		if bytes.HasPrefix(data, bom) {
			start = len(bom)
		}
		sc := newLineScanner(data, start)
		for {
			s, e, ok := sc.next()
			if !ok {
				break
			}
			covered := false
			for _, p := range pieces {
				if s >= p.start && e <= p.end {
					covered = true
					break
				}
			}
			if !covered {
				t.Fatalf("segment at %d is in no piece: %v", s, pieces)
			}
		}
	})
}

// FuzzLocation checks that String and ParseLocation are inverse.
func FuzzLocation(f *testing.F) {
	for _, s := range []string{"PID", "PID-5", "PID-5.1.2", "PID-3[2].1", "OBX[3]-5", "MSH-9.2", "X", "PID-0", "PID-3[", "ZZ9[99999]-99999[99999].99999.99999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLocation(s)
		if err != nil {
			return
		}
		l2, err := ParseLocation(l.String())
		if err != nil || l2 != l {
			t.Fatalf("ParseLocation(%q) = %+v; String %q parses to %+v, %v", s, l, l.String(), l2, err)
		}
	})
}

// FuzzTime checks that ParseTime never panics and that what it accepts
// formats back to the same instant.
func FuzzTime(f *testing.F) {
	for _, s := range []string{"2024", "20240315103045.1234+0100", "20240230", "20240315103045-0000", "19991231235959.999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := ParseTime(s)
		if err != nil {
			return
		}
		if len(s) >= 14 {
			again, err := ParseTime(tm.Format("20060102150405.000000000-0700"))
			if err != nil || !again.Equal(tm) {
				t.Fatalf("ParseTime(%q) = %v; reformatted parses to %v, %v", s, tm, again, err)
			}
		}
	})
}

// FuzzACK checks the acknowledgment builders on any input: AckFor answers
// with a code that matches the outcome and the mode, and the ACK BuildACK
// writes for any header ParseHeader reads parses as one MSH, MSA (and ERR)
// message with the original's delimiters (the standard ones when the
// original's were unusable), MSA-2 equal to the original's decoded MSH-10,
// applications and facilities swapped, and no request for an ACK of its
// own. For a batch, BuildBatchACK's envelope splits back into the ACKs.
func FuzzACK(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		// The ACK's own control ID, text and error come from the input too,
		// so escapes and charsets are exercised on both sides.
		ctl, text := "A\\F\\1|^~&#", "ok \r\n\x00 é"
		if i := bytes.IndexByte(data, 0xFF); i >= 0 {
			ctl, text = string(data[i+1:]), string(data[:i])
			if ctl == "" {
				ctl = "1"
			}
		}
		h, _ := ParseHeader(data)
		if strings.EqualFold(strings.TrimSpace(h.MessageType), "ACK") {
			if _, err := BuildACK(h, ACK{Code: AA, ControlID: ctl}); !errors.Is(err, ErrACKToACK) {
				t.Fatalf("BuildACK of an ACK: err = %v, want ErrACKToACK", err)
			}
			return
		}
		enhanced := normAckType(h.AcceptAckType) != "" || normAckType(h.AppAckType) != ""
		for o, letter := range []byte{'A', 'E', 'R'} {
			code, send := AckFor(h, Outcome(o))
			if !send {
				if code != "" || !enhanced {
					t.Fatalf("AckFor(%d) = %q, %v in original mode %v", o, code, send, !enhanced)
				}
				continue
			}
			if len(code) != 2 || code[1] != letter || (code[0] != 'A' && code[0] != 'C') || (!enhanced && code[0] != 'A') {
				t.Fatalf("AckFor(%d) = %q (enhanced %v)", o, code, enhanced)
			}
		}

		errs := []ErrorDetail{
			{Location: Location{Segment: "MSH", Field: 9, Component: 2}, Code: UnsupportedEventCode, Text: text},
			{Code: DataTypeError, Severity: SeverityWarning},
		}
		ack, err := BuildACK(h, ACK{Code: AE, ControlID: ctl, Time: time.Unix(1, 5e8), Text: text, Errors: errs})
		if err != nil {
			t.Fatalf("BuildACK: %v", err)
		}
		if bytes.IndexByte(ack, '\n') >= 0 || !bytes.HasSuffix(ack, []byte{'\r'}) {
			t.Fatalf("ACK segments are not CR-terminated: %q", ack)
		}
		am, err := Parse(ack)
		if err != nil {
			t.Fatalf("ACK does not parse: %v\n%q", err, ack)
		}
		var names []string
		for s := range am.Segments() {
			names = append(names, s.Name())
		}
		if got := strings.Join(names, " "); got != "MSH MSA ERR ERR" {
			t.Fatalf("ACK segments %q, want MSH MSA ERR ERR\n%q", got, ack)
		}
		if IsBatch(ack) {
			t.Fatal("ACK reads as a batch")
		}
		ah := am.Header()
		echo := h.delimsValid && h.Delimiters.valid()
		wantD, wantEnc := StandardDelimiters, StandardDelimiters.EncodingCharacters()
		if echo {
			wantD, wantEnc = h.Delimiters, h.rawEncoding
		}
		if ah.Delimiters != wantD || ah.rawEncoding != wantEnc {
			t.Fatalf("ACK delimiters %+v %q, want %+v %q", ah.Delimiters, ah.rawEncoding, wantD, wantEnc)
		}
		// Echoed fields come back exactly; re-encoded ones (when the
		// original's delimiters were unusable) and our own text come back
		// whenever the ACK's character set can hold them, and are written
		// with '?' otherwise.
		cs, _ := lookupCharset(firstOr(ah.CharacterSets, ""))
		same := func(what, got, want string, echoed bool) {
			t.Helper()
			if got == want {
				return
			}
			if !echoed {
				if _, ok := cs.encode(want, false); !ok || !utf8.ValidString(want) {
					return
				}
			}
			t.Fatalf("%s = %q, want %q\n%q", what, got, want, ack)
		}
		same("MSA-2", am.Value(Location{Segment: "MSA", Field: 2}), h.ControlID, echo)
		same("ACK MSH-10", am.Value(Location{Segment: "MSH", Field: 10}), ctl, false)
		same("MSA-3", am.Value(Location{Segment: "MSA", Field: 3}), text, false)
		if got := am.Value(Location{Segment: "MSA", Field: 1}); got != "AE" {
			t.Fatalf("MSA-1 = %q, want AE", got)
		}
		if ah.MessageType != "ACK" {
			t.Fatalf("ACK MSH-9.1 = %q", ah.MessageType)
		}
		same("ACK MSH-9.2", ah.TriggerEvent, h.TriggerEvent, false)
		for _, p := range []struct {
			what     string
			got, was HD
		}{
			{"MSH-3", ah.SendingApplication, h.ReceivingApplication},
			{"MSH-4", ah.SendingFacility, h.ReceivingFacility},
			{"MSH-5", ah.ReceivingApplication, h.SendingApplication},
			{"MSH-6", ah.ReceivingFacility, h.SendingFacility},
		} {
			same("ACK "+p.what+".1", p.got.NamespaceID, p.was.NamespaceID, echo)
			same("ACK "+p.what+".2", p.got.UniversalID, p.was.UniversalID, echo)
			same("ACK "+p.what+".3", p.got.UniversalIDType, p.was.UniversalIDType, echo)
		}
		if _, send := AckFor(ah, Errored); send && enhanced {
			t.Fatalf("the ACK of an enhanced-mode message asks for an ACK: MSH-15/16 %q/%q", ah.AcceptAckType, ah.AppAckType)
		}

		if !IsBatch(data) {
			return
		}
		b, err := SplitBatch(data)
		if err != nil {
			return
		}
		var acks [][]byte
		for _, m := range b.Messages {
			mh, _ := ParseHeader(m.Raw)
			if a, err := BuildACK(mh, ACK{Code: AA, ControlID: ctl}); err == nil {
				acks = append(acks, a)
			}
		}
		batchACK := BuildBatchACK(b, acks, BatchACK{ControlID: ctl, Time: time.Unix(0, 0)})
		ab, err := SplitBatch(batchACK)
		if err != nil {
			t.Fatalf("batch ACK does not split: %v\n%q", err, batchACK)
		}
		if (ab.FileHeader != nil) != (b.FileHeader != nil) || len(ab.Sections) != 1 || ab.Sections[0].Trailer == nil {
			t.Fatalf("batch ACK envelope: file header %v (inbound %v), %d sections\n%q", ab.FileHeader != nil, b.FileHeader != nil, len(ab.Sections), batchACK)
		}
		if len(ab.Messages) != len(acks) {
			t.Fatalf("batch ACK holds %d messages, want %d\n%q", len(ab.Messages), len(acks), batchACK)
		}
		for i, m := range ab.Messages {
			if !bytes.Equal(m.Raw, acks[i]) {
				t.Fatalf("batch ACK message %d = %q, want %q", i, m.Raw, acks[i])
			}
		}
		if got := ab.Sections[0].Trailer.Field(1).String(); got != strconv.Itoa(len(acks)) {
			t.Fatalf("BTS-1 = %q, want %d", got, len(acks))
		}
		if utf8.ValidString(ctl) {
			if got := ab.Sections[0].Header.ControlID; got != ctl {
				t.Fatalf("BHS-11 = %q, want %q", got, ctl)
			}
		}
	})
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}
