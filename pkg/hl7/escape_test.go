package hl7

import (
	"strings"
	"testing"
)

func TestUnescape(t *testing.T) {
	std := StandardDelimiters
	trunc := Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '\\', Subcomponent: '&', Truncation: '#'}
	three := Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '}'}
	tests := []struct {
		name string
		d    Delimiters
		in   string
		want string
	}{
		{"none", std, "plain text", "plain text"},
		{"field", std, `a\F\b`, "a|b"},
		{"component", std, `a\S\b`, "a^b"},
		{"subcomponent", std, `A\T\E`, "A&E"},
		{"repetition", std, `a\R\b`, "a~b"},
		{"escape", std, `C:\E\temp`, `C:\temp`},
		{"all together", std, `\F\\S\\T\\R\\E\`, `|^&~\`},
		{"hex byte", std, `\X41\`, "A"},
		{"hex bytes lower case", std, `\X0d0a\`, "\r\n"},
		{"hex UTF-8", std, `caf\XC3A9\`, "caf\xc3\xa9"},
		{"hex odd length kept", std, `\X414\`, `\X414\`},
		{"hex not hex kept", std, `\XZZ\`, `\XZZ\`},
		{"hex empty kept", std, `\X\`, `\X\`},
		{"line break", std, `one\.br\two`, "one\ntwo"},
		{"highlight dropped", std, `\H\bold\N\ normal`, "bold normal"},
		{"skip lines", std, `a\.sp\b\.sp3\c`, "a\nb\n\n\nc"},
		{"skip lines capped", std, `\.sp999999999\`, strings.Repeat("\n", maxSkipLines)},
		{"skip spaces", std, `a\.sk2\b`, "a  b"},
		{"indent dropped", std, `\.in+4\a\.ti-2\b`, "ab"},
		{"center", std, `\.ce\Title`, "\nTitle"},
		{"fill modes dropped", std, `\.nf\a\.fi\`, "a"},
		{"bad formatting kept", std, `\.spx\ \.zz\ \.br2\`, `\.spx\ \.zz\ \.br2\`},
		{"character set switches kept", std, `\C2842\x\M2442\`, `\C2842\x\M2442\`},
		{"locally defined kept", std, `\Zabc\`, `\Zabc\`},
		{"unknown kept", std, `\Q\`, `\Q\`},
		{"lower case is unknown", std, `\f\`, `\f\`},
		{"empty sequence kept", std, `a\\b`, `a\\b`},
		{"unterminated kept", std, `tail\F`, `tail\F`},
		{"windows path", std, `C:\Users\Fred`, `C:\Users\Fred`},
		{"truncation", trunc, `Issue \P\1`, "Issue #1"},
		{"truncation undefined", std, `\P\`, `\P\`},
		{"own escape character", three, `a}F}b}S}c}E}`, "a|b^c}"},
		{"no subcomponent separator", three, `}T}`, `}T}`},
		{"backslash is plain with another escape", three, `a\F\b`, `a\F\b`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := unescape(tt.in, &tt.d); got != tt.want {
				t.Errorf("unescape(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestEscape(t *testing.T) {
	three := Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '}'}
	tests := []struct {
		name string
		d    Delimiters
		in   string
		want string
	}{
		{"plain", StandardDelimiters, "plain", "plain"},
		{"delimiters", StandardDelimiters, `a|b^c&d~e\f`, `a\F\b\S\c\T\d\R\e\E\f`},
		{"line breaks", StandardDelimiters, "a\nb\rc", `a\.br\b\X0D\c`},
		{"three characters leave ampersand", three, "a&b}c|", "a&b}E}c}F}"},
		{"truncation written literally", Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '\\', Subcomponent: '&', Truncation: '#'}, "#1", "#1"},
		{"NUL kept", StandardDelimiters, "a\x00b", "a\x00b"},
		// \.br\ would be split by its own dot (found by FuzzACK).
		{"line break, dot component", Delimiters{Field: '^', Component: '.', Repetition: '!', Escape: '"', Subcomponent: '#'}, "a\nb.c", `a"X0A"b"S"c`},
		{"line break, dot escape", Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '.', Subcomponent: '&'}, "a\nb.c", `a.X0A.b.E.c`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := escape(tt.in, &tt.d)
			if got != tt.want {
				t.Errorf("escape(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if back := unescape(got, &tt.d); back != tt.in {
				t.Errorf("unescape(escape(%q)) = %q", tt.in, back)
			}
		})
	}
}

func TestEscapesInMessage(t *testing.T) {
	m := mustParse(t, readTestdata(t, "escapes.hl7"))
	want := "Line one\r\nLine two bold \n\nend \\C2842\\ \\Zlocal\\"
	if got := mustGet(t, m, "OBX-5"); got != want {
		t.Errorf("OBX-5 = %q, want %q", got, want)
	}
	// \X0D0A\ is data, not a segment break: there are still two segments.
	if n := countSegments(m); n != 2 {
		t.Errorf("%d segments, want 2", n)
	}
	if got := mustGet(t, m, "OBX-11"); got != "F" {
		t.Errorf("OBX-11 = %q, want F", got)
	}
}
