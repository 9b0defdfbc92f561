package hl7

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

func TestCharsets(t *testing.T) {
	const head = "MSH|^~\\&|A|B|C|D|1||ADT^A08|1|P|2.5||||||"
	tests := []struct {
		name    string
		charset string
		value   string // raw bytes of PID-5
		want    string
	}{
		{"absent, UTF-8 bytes", "", "M\xc3\xbcller", "Müller"},
		{"absent, Latin-1 bytes", "", "M\xfcller", "Müller"},
		{"absent, Windows-1252 euro", "", "\x80 5", "€ 5"},
		{"ASCII declared, UTF-8 bytes", "ASCII", "\xc2\xb5mol/L", "µmol/L"},
		{"UNICODE UTF-8", "UNICODE UTF-8", "\xe2\x80\x99s", "’s"},
		{"UTF-8 alias", "UTF-8", "M\xc3\xbcller", "Müller"},
		{"UNICODE alias", "UNICODE", "M\xc3\xbcller", "Müller"},
		{"lower case name", "unicode utf-8", "M\xc3\xbcller", "Müller"},
		{"invalid UTF-8 declared UTF-8", "UNICODE UTF-8", "M\xfcller \xff", "M\uFFFDller \uFFFD"},
		{"8859/1", "8859/1", "M\xfcller", "Müller"},
		{"8859/1 reads UTF-8 bytes as Latin-1", "8859/1", "\xef\xbf\xbd", "ï¿½"},
		{"8859/2", "8859/2", "\xb1", "ą"},
		{"8859/5", "8859/5", "\xb0", "А"},
		{"8859/7", "8859/7", "\xe1", "α"},
		{"8859/9", "8859/9", "\xfd", "ı"},
		{"8859/15 euro", "8859/15", "\xa4 10", "€ 10"},
		{"first repetition governs", "8859/15~UNICODE UTF-8", "\xa4", "€"},
		{"repeated UTF-8", "UTF-8~UNICODE", "\xe2\x82\xac", "€"},
		{"hex escape in charset", "8859/1", "\\XFC\\", "ü"},
		{"hex escape UTF-8", "UNICODE UTF-8", "\\XC3BC\\", "ü"},
		{"NUL kept", "", "a\x00b", "a\x00b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := []byte(head + tt.charset + "\rPID|1||x||" + tt.value + "\r")
			m := mustParse(t, raw)
			got := mustGet(t, m, "PID-5")
			if got != tt.want {
				t.Errorf("PID-5 = %q, want %q", got, tt.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("decoded value is not valid UTF-8")
			}
			if !bytes.Equal(m.Raw(), raw) {
				t.Errorf("Raw() changed")
			}
		})
	}
}

func TestCharsetFile(t *testing.T) {
	m := mustParse(t, readTestdata(t, "latin1.hl7"))
	for loc, want := range map[string]string{"PID-5.1": "Müller", "PID-5.2": "Jürgen", "PID-11.1": "Straße 1", "PID-11.3": "Köln"} {
		if got := mustGet(t, m, loc); got != want {
			t.Errorf("%s = %q, want %q", loc, got, want)
		}
	}
}

func TestCharsetEncode(t *testing.T) {
	cs, _ := lookupCharset("8859/15")
	if got, ok := cs.encode("€ café", false); !ok || got != "\xa4 caf\xe9" {
		t.Errorf("encode = %q, %v", got, ok)
	}
	if _, ok := cs.encode("日本", false); ok {
		t.Errorf("encode of CJK in 8859/15 succeeded")
	}
	if got, ok := cs.encode("日本", true); ok || got != "??" {
		t.Errorf("lossy encode = %q, %v", got, ok)
	}
	if got, _ := utf8Charset.encode("日本", false); got != "日本" {
		t.Errorf("UTF-8 encode = %q", got)
	}
}
