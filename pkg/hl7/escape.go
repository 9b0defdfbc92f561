package hl7

import (
	"strings"
)

// Limits on formatting commands that expand into repeated characters, so a
// hostile "\.sp999999999\" cannot turn a few bytes into gigabytes.
const (
	maxSkipLines  = 100 // \.sp n\
	maxSkipSpaces = 100 // \.sk n\
)

// unescape decodes the escape sequences of one leaf value. It works on the
// encoded bytes, before charset decoding, because \Xhh\ yields bytes in the
// message charset. Sequences it does not understand, including \Cxxyy\ and
// \Mxxyyzz\ (which switch character sets mid-value), are kept verbatim.
func unescape(s string, d *Delimiters) string {
	esc := d.Escape
	if esc == 0 {
		return s
	}
	i := strings.IndexByte(s, esc)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i >= 0 {
		b.WriteString(s[:i])
		s = s[i:]
		j := strings.IndexByte(s[1:], esc)
		if j < 0 {
			break // unterminated: the rest is kept as written
		}
		if !decodeSequence(&b, s[1:1+j], d) {
			b.WriteString(s[:j+2])
		}
		s = s[j+2:]
		i = strings.IndexByte(s, esc)
	}
	b.WriteString(s)
	return b.String()
}

// decodeSequence writes the meaning of one escape sequence (without its
// escape characters) and reports whether it knew it.
func decodeSequence(b *strings.Builder, seq string, d *Delimiters) bool {
	if len(seq) == 1 {
		var c byte
		switch seq[0] {
		case 'F':
			c = d.Field
		case 'S':
			c = d.Component
		case 'T':
			c = d.Subcomponent
		case 'R':
			c = d.Repetition
		case 'E':
			c = d.Escape
		case 'P':
			c = d.Truncation
		case 'H', 'N':
			// Highlighting on/off has no plain-text form.
			return true
		}
		if c == 0 {
			return false
		}
		b.WriteByte(c)
		return true
	}
	if len(seq) == 0 {
		return false
	}
	switch seq[0] {
	case 'X':
		hex := seq[1:]
		if len(hex) == 0 || len(hex)%2 != 0 {
			return false
		}
		for k := 0; k < len(hex); k += 2 {
			if _, ok := hexByte(hex[k], hex[k+1]); !ok {
				return false
			}
		}
		for k := 0; k < len(hex); k += 2 {
			c, _ := hexByte(hex[k], hex[k+1])
			b.WriteByte(c)
		}
		return true
	case '.':
		return decodeFormatting(b, seq[1:])
	}
	return false
}

// decodeFormatting renders the formatted-text commands of the FT data type
// as plain text: line breaks become newlines, horizontal skips become
// spaces, and layout-only commands (indent, fill) are dropped.
func decodeFormatting(b *strings.Builder, cmd string) bool {
	if len(cmd) < 2 {
		return false
	}
	name, arg := cmd[:2], cmd[2:]
	switch name {
	case "br", "ce", "fi", "nf":
		if arg != "" {
			return false
		}
		if name == "br" || name == "ce" {
			b.WriteByte('\n')
		}
		return true
	case "sp", "sk":
		n, ok := formatNumber(arg, false)
		if !ok {
			return false
		}
		n = max(n, 1)
		if name == "sp" {
			b.WriteString(strings.Repeat("\n", min(n, maxSkipLines)))
		} else {
			b.WriteString(strings.Repeat(" ", min(n, maxSkipSpaces)))
		}
		return true
	case "in", "ti":
		if _, ok := formatNumber(arg, true); !ok {
			return false
		}
		return true
	}
	return false
}

// formatNumber parses the optional numeric argument of a formatting
// command; an absent argument is 0.
func formatNumber(s string, signed bool) (int, bool) {
	if s == "" {
		return 0, true
	}
	if s[0] == '+' || (signed && s[0] == '-') {
		s = s[1:]
		if s == "" {
			return 0, false
		}
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < 1_000_000 {
			n = n*10 + int(c-'0')
		}
	}
	return n, true
}

func hexByte(hi, lo byte) (byte, bool) {
	h, ok1 := hexDigit(hi)
	l, ok2 := hexDigit(lo)
	return h<<4 | l, ok1 && ok2
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// escape encodes a plain value so that it reads back unchanged. Line
// breaks become \.br\ (\X0A\ when a delimiter is a dot) and carriage
// returns \X0D\, so a value can never end a segment. The v2.7 truncation character is written literally: this
// package never gives it a meaning on read, and receivers older than v2.7
// would not understand \P\.
func escape(s string, d *Delimiters) string {
	need := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\n' || c == '\r' || c == d.Escape || d.structural(c) {
			need = true
			break
		}
	}
	if !need {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	seq := func(code string) {
		b.WriteByte(d.Escape)
		b.WriteString(code)
		b.WriteByte(d.Escape)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\n':
			if d.Escape == '.' || d.structural('.') {
				// \.br\ would be cut in two by its own dot.
				seq("X0A")
			} else {
				seq(".br")
			}
		case c == '\r':
			seq("X0D")
		case c == 0:
			b.WriteByte(c)
		case c == d.Escape:
			seq("E")
		case c == d.Field:
			seq("F")
		case c == d.Component:
			seq("S")
		case c == d.Repetition:
			seq("R")
		case c == d.Subcomponent:
			seq("T")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
