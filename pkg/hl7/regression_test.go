package hl7

// Regression tests for the defects of github.com/lenaten/hl7 that made us
// write this package. Each test names the behaviour it pins down.

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRegressionLenatenNonASCIITextPreserved(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"UTF-8 declared", "MSH|^~\\&|A|||||||||||||||UNICODE UTF-8\rPID|1||||Zoë Ø’Brien µ 日本\r", "Zoë Ø’Brien µ 日本"},
		{"UTF-8 undeclared", "MSH|^~\\&|A\rPID|1||||Zoë µmol/L\r", "Zoë µmol/L"},
		{"8859/1 declared", "MSH|^~\\&|A|||||||||||||||8859/1\rPID|1||||Zo\xeb M\xfcller\r", "Zoë Müller"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustParse(t, []byte(tt.raw))
			if got := mustGet(t, m, "PID-5"); got != tt.want {
				t.Errorf("PID-5 = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRegressionLenatenNoCarriageReturnInLastField(t *testing.T) {
	for _, term := range []string{"\r", "\n", "\r\n", "\n\r"} {
		raw := strings.Join([]string{"MSH|^~\\&|A|B|C|D|1||ADT^A01|CTL|P|2.5", "PID|1||ID||Doe^Jane", "PV1|1|I"}, term) + term
		m := mustParse(t, []byte(raw))
		for loc, want := range map[string]string{"MSH-12": "2.5", "PID-5.2": "Jane", "PID-5": "Doe^Jane", "PV1-2": "I"} {
			if got := mustGet(t, m, loc); got != want {
				t.Errorf("terminator %q: %s = %q, want %q", term, loc, got, want)
			}
		}
		for s := range m.Segments() {
			if last := s.Field(s.NumFields()).Encoded(); strings.ContainsAny(last, "\r\n") {
				t.Errorf("terminator %q: last field of %s is %q", term, s.Name(), last)
			}
		}
	}
}

func TestRegressionLenatenEscapeSequencesDecoded(t *testing.T) {
	m := mustParse(t, []byte("MSH|^~\\&|A\rNTE|1||Na\\S\\Cl \\T\\ H\\E\\2O\\.br\\\\F\\ \\R\\ \\X41\\\r"))
	if got, want := mustGet(t, m, "NTE-3"), "Na^Cl & H\\2O\n| ~ A"; got != want {
		t.Errorf("NTE-3 = %q, want %q", got, want)
	}
}

func TestRegressionLenatenEscapedFieldSeparatorDoesNotMergeFields(t *testing.T) {
	m := mustParse(t, []byte("MSH|^~\\&|A\rOBX|1|ST|X||a\\F\\|mg\r"))
	if got := mustGet(t, m, "OBX-5"); got != "a|" {
		t.Errorf("OBX-5 = %q, want %q", got, "a|")
	}
	if got := mustGet(t, m, "OBX-6"); got != "mg" {
		t.Errorf("OBX-6 = %q, want %q", got, "mg")
	}
	if n := m.Segment("OBX", 1).NumFields(); n != 6 {
		t.Errorf("OBX has %d fields, want 6", n)
	}
}

func TestRegressionLenatenPartialInput(t *testing.T) {
	raw := readTestdata(t, "oru_r01.hl7")
	// Every prefix, as a reader that returned early would deliver it, either
	// parses or fails with an *Error; nothing panics.
	for i := 0; i <= len(raw); i++ {
		m, err := Parse(raw[:i])
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("prefix %d: error %T is not an *Error", i, err)
			}
			continue
		}
		if got := m.Header().MessageType; i > 80 && got != "ORU" {
			t.Errorf("prefix %d: MessageType = %q", i, got)
		}
	}
	// A message assembled from chunks parses exactly like the whole, and
	// reusing the read buffer afterwards does not change parsed values.
	var buf bytes.Buffer
	for i := 0; i < len(raw); i += 7 {
		buf.Write(raw[i:min(i+7, len(raw))])
	}
	readBuf := buf.Bytes()
	m := mustParse(t, readBuf)
	for i := range readBuf {
		readBuf[i] = 'X'
	}
	if got := mustGet(t, m, "OBX[3]-5"); got != "6.1" {
		t.Errorf("after the read buffer was reused, OBX[3]-5 = %q", got)
	}
	if got := m.Header().ControlID; got != "LAB-42" {
		t.Errorf("after the read buffer was reused, control id = %q", got)
	}
}

func TestRegressionLenatenWellFormedACK(t *testing.T) {
	in := mustParse(t, readTestdata(t, "adt_a01.hl7")).Header()
	b, err := BuildACK(in, ACK{Code: AA, ControlID: "ACK-1", Time: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	want := "MSH|^~\\&|AORTA|AORTAFAC|ADTAPP|GOODHOSP|20240301000000+0000||ACK^A01^ACK|ACK-1|P|2.5.1|||NE|NE||UNICODE UTF-8\rMSA|AA|MSG-0001\r"
	if string(b) != want {
		t.Errorf("ACK =\n%q\nwant\n%q", b, want)
	}
	ack := mustParse(t, b)
	if errs := ack.Header().Check(); len(errs) != 0 {
		t.Errorf("ACK header fails Check: %v", errs)
	}
	if _, err := BuildACK(ack.Header(), ACK{Code: AA, ControlID: "X"}); !errors.Is(err, ErrACKToACK) {
		t.Errorf("ACK to ACK: %v", err)
	}
}

func TestRegressionLenatenUnmarshalNonStringFieldsDoNotPanic(t *testing.T) {
	pid := "PID|7||||||19800215|F" + strings.Repeat("|", 22) + "Y" // PID-30 at the end
	m := mustParse(t, []byte("MSH|^~\\&|A|B|C|D|20240301||ADT^A01|1|P|2.5\r"+pid+"\rZZZ|x|notatime|1.5\r"))
	var good struct {
		SetID int       `hl7:"PID-1"`
		Birth time.Time `hl7:"PID-7"`
		Dead  bool      `hl7:"PID-30"`
		Sent  time.Time `hl7:"MSH-7"`
	}
	if err := Unmarshal(m, &good); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if good.SetID != 7 || good.Birth.Year() != 1980 || !good.Dead || good.Sent.Day() != 1 {
		t.Errorf("got %+v", good)
	}
	bad := []any{
		&struct {
			N int `hl7:"ZZZ-1"`
		}{},
		&struct {
			T time.Time `hl7:"ZZZ-2"`
		}{},
		&struct {
			N int `hl7:"ZZZ-3"`
		}{},
		&struct {
			C complex128 `hl7:"ZZZ-1"`
		}{},
	}
	for _, v := range bad {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("Unmarshal(%T) panicked: %v", v, r)
				}
			}()
			if err := Unmarshal(m, v); err == nil {
				t.Errorf("Unmarshal(%T): no error", v)
			}
		}()
	}
}
