package hl7

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var ackTime = time.Date(2024, 3, 1, 10, 15, 0, 0, time.FixedZone("", 3600))

func TestAckFor(t *testing.T) {
	// want holds the answer for Accepted, Errored, Rejected; "-" = none.
	tests := []struct {
		accept, app string
		want        [3]string
	}{
		{"", "", [3]string{"AA", "AE", "AR"}},
		{"NE", "NE", [3]string{"-", "-", "-"}},
		{"AL", "NE", [3]string{"CA", "CE", "CR"}},
		{"NE", "AL", [3]string{"AA", "AE", "AR"}},
		{"AL", "AL", [3]string{"AA", "AE", "AR"}},
		{"ER", "NE", [3]string{"-", "CE", "CR"}},
		{"NE", "ER", [3]string{"-", "AE", "AR"}},
		{"SU", "NE", [3]string{"CA", "-", "-"}},
		{"NE", "SU", [3]string{"AA", "-", "-"}},
		{"AL", "ER", [3]string{"CA", "AE", "AR"}},
		{"ER", "SU", [3]string{"AA", "CE", "CR"}},
		{"", "NE", [3]string{"CA", "CE", "CR"}},
		{"", "AL", [3]string{"AA", "AE", "AR"}},
		{"AL", "", [3]string{"CA", "CE", "CR"}},
		{"NE", "", [3]string{"-", "-", "-"}},
		{"al", "ne", [3]string{"CA", "CE", "CR"}},
		{"XX", "NE", [3]string{"CA", "CE", "CR"}},
	}
	for _, tt := range tests {
		for i, o := range []Outcome{Accepted, Errored, Rejected} {
			name := fmt.Sprintf("%q/%q outcome %d", tt.accept, tt.app, o)
			code, send := AckFor(Header{AcceptAckType: tt.accept, AppAckType: tt.app}, o)
			got := string(code)
			if !send {
				got = "-"
				if code != "" {
					t.Errorf("%s: code %q with send=false", name, code)
				}
			}
			if got != tt.want[i] {
				t.Errorf("%s: AckFor = %s, want %s", name, got, tt.want[i])
			}
		}
	}
}

func header(t *testing.T, raw string) Header {
	t.Helper()
	h, _ := ParseHeader([]byte(raw))
	return h
}

func TestBuildACK(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ack  ACK
		want string
	}{
		{
			name: "original mode v2.5",
			in:   "MSH|^~\\&|SAPP^1.2^ISO|SFAC|RAPP|RFAC|20240301||ADT^A01^ADT_A01|IN-1|P|2.5\r",
			ack:  ACK{Code: AA, ControlID: "OUT-1", Time: ackTime},
			want: "MSH|^~\\&|RAPP|RFAC|SAPP^1.2^ISO|SFAC|20240301101500+0100||ACK^A01^ACK|OUT-1|P|2.5\rMSA|AA|IN-1\r",
		},
		{
			name: "enhanced mode asks for nothing back",
			in:   "MSH|^~\\&|S|SF|R|RF|20240301||ORU^R01^ORU_R01|IN-2|T^|2.6|||NE|AL\r",
			ack:  ACK{Code: AA, ControlID: "OUT-2", Time: ackTime},
			want: "MSH|^~\\&|R|RF|S|SF|20240301101500+0100||ACK^R01^ACK|OUT-2|T^|2.6|||NE|NE\rMSA|AA|IN-2\r",
		},
		{
			name: "v2.5 ERR",
			in:   "MSH|^~\\&|S|SF|R|RF|20240301||ORU^R01|IN-3|P|2.5.1\r",
			ack: ACK{Code: AR, ControlID: "OUT-3", Time: ackTime, Text: "rejected", Errors: []ErrorDetail{
				{Location: Location{Segment: "MSH", Field: 11, Component: 1}, Code: RequiredFieldMissing, Text: "processing id missing"},
				{Location: Location{Segment: "OBX", SegmentIndex: 3, Field: 5, Repetition: 2, Component: 1, Subcomponent: 2}, Code: DataTypeError, Severity: SeverityWarning, Text: "bad | value"},
				{Code: UnsupportedMessageType},
			}},
			want: "MSH|^~\\&|R|RF|S|SF|20240301101500+0100||ACK^R01^ACK|OUT-3|P|2.5.1\rMSA|AR|IN-3|rejected\r" +
				"ERR||MSH^1^11^1^1|101^Required field missing^HL70357|E||||processing id missing\r" +
				"ERR||OBX^3^5^2^1^2|102^Data type error^HL70357|W||||bad \\F\\ value\r" +
				"ERR|||200^Unsupported message type^HL70357|E\r",
		},
		{
			name: "v2.3 ERR",
			in:   "MSH|^~\\&|S|SF|R|RF|20240301||ADT^A01|IN-4|P|2.3\r",
			ack: ACK{Code: AE, ControlID: "OUT-4", Time: ackTime, Errors: []ErrorDetail{
				{Location: Location{Segment: "PID", Field: 3}, Code: RequiredFieldMissing, Text: "no patient id"},
				{Code: ApplicationInternalError},
			}},
			want: "MSH|^~\\&|R|RF|S|SF|20240301101500+0100||ACK^A01|OUT-4|P|2.3\rMSA|AE|IN-4\r" +
				"ERR|PID^1^3^101&no patient id&HL70357\r" +
				"ERR|^^^207&Application internal error&HL70357\r",
		},
		{
			name: "v2.4 ERR with three encoding characters",
			in:   "MSH|^~}|S|SF|R|RF|20240301||BAR^P01|IN-5|P|2.4\r",
			ack:  ACK{Code: AE, ControlID: "OUT-5", Time: ackTime, Errors: []ErrorDetail{{Location: Location{Segment: "PV1", Field: 2}, Code: DataTypeError}}},
			want: "MSH|^~}|R|RF|S|SF|20240301101500+0100||ACK^P01^ACK|OUT-5|P|2.4\rMSA|AE|IN-5\rERR|PV1^1^2^102\r",
		},
		{
			name: "caret field separator",
			in:   "MSH^~|\\&^SEND^200M^RECV^200^20120918^^ADT~A24^CTL-6^T^2.4^^^AL^AL\r",
			ack:  ACK{Code: AA, ControlID: "OUT-6", Time: ackTime},
			want: "MSH^~|\\&^RECV^200^SEND^200M^20240301101500+0100^^ACK~A24~ACK^OUT-6^T^2.4^^^NE^NE\rMSA^AA^CTL-6\r",
		},
		{
			name: "five encoding characters echoed",
			in:   "MSH|^~\\&#|S|SF|R|RF|20240301||ORU^R01^ORU_R01|IN-7|P|2.5.1||||||UNICODE UTF-8\r",
			ack:  ACK{Code: AA, ControlID: "OUT-7", Time: ackTime},
			want: "MSH|^~\\&#|R|RF|S|SF|20240301101500+0100||ACK^R01^ACK|OUT-7|P|2.5.1||||||UNICODE UTF-8\rMSA|AA|IN-7\r",
		},
		{
			name: "no trigger event",
			in:   "MSH|^~\\&|S|SF|R|RF|20240301||ORU|IN-8|T|2.3\r",
			ack:  ACK{Code: AA, ControlID: "OUT-8", Time: ackTime},
			want: "MSH|^~\\&|R|RF|S|SF|20240301101500+0100||ACK|OUT-8|T|2.3\rMSA|AA|IN-8\r",
		},
		{
			name: "before 2.3.1 no structure",
			in:   "MSH|^~\\&|S|SF|R|RF|20240301||ORU^R01|IN-9|P|2.2\r",
			ack:  ACK{Code: AA, ControlID: "OUT-9", Time: ackTime},
			want: "MSH|^~\\&|R|RF|S|SF|20240301101500+0100||ACK^R01|OUT-9|P|2.2\rMSA|AA|IN-9\r",
		},
		{
			name: "2.3.1 has structure",
			in:   "MSH|^~\\&|S|SF|R|RF|20240301||ORM^O01|IN-10|1|2.3.1\r",
			ack:  ACK{Code: AR, ControlID: "OUT-10", Time: ackTime},
			want: "MSH|^~\\&|R|RF|S|SF|20240301101500+0100||ACK^O01^ACK|OUT-10|1|2.3.1\rMSA|AR|IN-10\r",
		},
		{
			name: "unknown message: defaults",
			in:   "",
			ack:  ACK{Code: AR, ControlID: "OUT-11", Time: ackTime, Text: "empty message"},
			want: "MSH|^~\\&|||||20240301101500+0100||ACK|OUT-11|P|2.5\rMSA|AR||empty message\r",
		},
		{
			name: "bad MSH-2 falls back to standard delimiters",
			in:   "MSH|^\xEF\xBF\xBD\\&|S^X|SF|R|RF|20111219||ADT^A01^ADT_A01|IN-12|P|2.5||||||UNICODE UTF-8\r",
			ack:  ACK{Code: AR, ControlID: "OUT-12", Time: ackTime},
			want: "MSH|^~\\&|R|RF|S^X|SF|20240301101500+0100||ACK^A01^ACK|OUT-12|P|2.5||||||UNICODE UTF-8\rMSA|AR|IN-12\r",
		},
		{
			name: "unsupported charset is not echoed",
			in:   "MSH|^~\\&|S|SF|R|RF|20240301||ADT^A01|IN-13|P|2.5||||||UNICODE UTF-16\r",
			ack:  ACK{Code: AR, ControlID: "OUT-13", Time: ackTime},
			want: "MSH|^~\\&|R|RF|S|SF|20240301101500+0100||ACK^A01^ACK|OUT-13|P|2.5\rMSA|AR|IN-13\r",
		},
		{
			name: "8859/1 text",
			in:   "MSH|^~\\&|S|SF|R|RF|20240301||ADT^A01|IN-14|P|2.5||||||8859/1\r",
			ack:  ACK{Code: AE, ControlID: "OUT|14", Time: ackTime, Text: "Prüfung fehlgeschlagen 日"},
			want: "MSH|^~\\&|R|RF|S|SF|20240301101500+0100||ACK^A01^ACK|OUT\\F\\14|P|2.5||||||8859/1\rMSA|AE|IN-14|Pr\xfcfung fehlgeschlagen ?\r",
		},
		{
			name: "fractional seconds",
			in:   "MSH|^~\\&|S|SF|R|RF|20240301||ADT^A01|IN-15|P|2.5\r",
			ack:  ACK{Code: AA, ControlID: "OUT-15", Time: time.Date(2024, 3, 1, 10, 15, 0, 123_456_789, time.UTC)},
			want: "MSH|^~\\&|R|RF|S|SF|20240301101500.1234+0000||ACK^A01^ACK|OUT-15|P|2.5\rMSA|AA|IN-15\r",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BuildACK(header(t, tt.in), tt.ack)
			if err != nil {
				t.Fatalf("BuildACK: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("BuildACK =\n%q\nwant\n%q", got, tt.want)
			}
			ack, err := Parse(got)
			if err != nil {
				t.Fatalf("the ACK does not parse: %v", err)
			}
			inCtl := header(t, tt.in).ControlID
			if msa2 := mustGet(t, ack, "MSA-2"); msa2 != inCtl {
				t.Errorf("MSA-2 = %q, want %q", msa2, inCtl)
			}
			if code := mustGet(t, ack, "MSA-1"); code != string(tt.ack.Code) {
				t.Errorf("MSA-1 = %q", code)
			}
			if h := ack.Header(); h.ControlID != tt.ack.ControlID || h.MessageType != "ACK" {
				t.Errorf("ACK header control id %q type %q", h.ControlID, h.MessageType)
			}
		})
	}
}

func TestBuildACKRefusals(t *testing.T) {
	ackIn := header(t, "MSH|^~\\&|S|SF|R|RF|20240301||ACK^A01^ACK|IN-1|P|2.5\rMSA|AA|X\r")
	if _, err := BuildACK(ackIn, ACK{Code: AA, ControlID: "OUT"}); !errors.Is(err, ErrACKToACK) {
		t.Errorf("ACK to an ACK: err = %v, want ErrACKToACK", err)
	}
	in := header(t, "MSH|^~\\&|S|SF|R|RF|20240301||ADT^A01|IN-1|P|2.5\r")
	if _, err := BuildACK(in, ACK{Code: AA}); err == nil {
		t.Errorf("empty control id: no error")
	}
	if _, err := BuildACK(in, ACK{ControlID: "X"}); err == nil {
		t.Errorf("empty code: no error")
	}
	// Zero time means now.
	before := time.Now().Add(-time.Second)
	b, err := BuildACK(in, ACK{Code: AA, ControlID: "X"})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := ParseTime(mustGet(t, mustParse(t, b), "MSH-7"))
	if err != nil || ts.Before(before.Truncate(time.Second)) {
		t.Errorf("MSH-7 = %v, %v; want about now", ts, err)
	}
}

func TestBuildACKSegmentsEndWithCR(t *testing.T) {
	in := header(t, "MSH|^~\\&|S|SF|R|RF|20240301||ADT^A01|IN-1|P|2.5\r")
	b, _ := BuildACK(in, ACK{Code: AE, ControlID: "X", Text: "line\none", Errors: []ErrorDetail{{Code: DataTypeError, Text: "a\r\nb"}}})
	if bytes.Contains(b, []byte("\n")) || !bytes.HasSuffix(b, []byte("\r")) || strings.Count(string(b), "\r") != 3 {
		t.Errorf("ACK = %q", b)
	}
}

// TestBuildACKPunctuationDelimiters checks the ACK of a sender whose
// delimiters include the punctuation of timestamps and versions (found by
// FuzzACK): the parts of MSH-7 that would be split are left out, and every
// field still reads back in its place.
func TestBuildACKPunctuationDelimiters(t *testing.T) {
	at := time.Date(2024, 3, 1, 10, 30, 0, 500_000_000, time.FixedZone("", 3600))
	tests := []struct {
		name, in, wantTime string
	}{
		{"plus field separator", "MSH+^~\\&+S+SF+R+RF+20240301++ADT^A01+IN-1+P+2.5\r", "20240301103000.5000"},
		{"minus component", "MSH|-~\\&|S|SF|R|RF|20240301||ADT-A01|IN-1|P|2.5\r", "20240301103000.5000+0100"},
		{"dot component, no version", "MSH|.~\\&|S|SF|R|RF|20240301||ADT.A01|IN-1|P\r", "20240301103000+0100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := BuildACK(header(t, tt.in), ACK{Code: AA, ControlID: "OUT-1", Time: at})
			if err != nil {
				t.Fatal(err)
			}
			m := mustParse(t, b)
			h := m.Header()
			if got := mustGet(t, m, "MSH-7"); got != tt.wantTime {
				t.Errorf("MSH-7 = %q, want %q", got, tt.wantTime)
			}
			if h.MessageType != "ACK" || h.TriggerEvent != "A01" || h.ControlID != "OUT-1" || h.Version != "2.5" {
				t.Errorf("header %+v of %q", h, b)
			}
			if got := mustGet(t, m, "MSA-2"); got != "IN-1" {
				t.Errorf("MSA-2 = %q", got)
			}
		})
	}
}
