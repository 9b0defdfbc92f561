package hl7

// Delimiters are the separators a message declares in MSH-1 and MSH-2.
//
// Subcomponent is 0 when MSH-2 holds only three characters, which older
// versions allowed; Truncation is 0 unless MSH-2 has the fifth character
// introduced in v2.7.
type Delimiters struct {
	Field        byte
	Component    byte
	Repetition   byte
	Escape       byte
	Subcomponent byte
	Truncation   byte
}

// StandardDelimiters are the delimiters HL7 recommends: |^~\&.
var StandardDelimiters = Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '\\', Subcomponent: '&'}

// EncodingCharacters returns the MSH-2 text the delimiters are written as.
func (d Delimiters) EncodingCharacters() string {
	b := make([]byte, 0, 5)
	b = append(b, d.Component, d.Repetition, d.Escape)
	if d.Subcomponent != 0 {
		b = append(b, d.Subcomponent)
		if d.Truncation != 0 {
			b = append(b, d.Truncation)
		}
	}
	return string(b)
}

// delimiterByte reports whether c may serve as a delimiter. HL7 asks for
// printable ASCII. Letters and digits are refused as well, because segment
// names, ACK codes and version numbers are written with them (a field
// separator 'A' would cut "MSA" in two), and space because it would split
// every free-text value.
func delimiterByte(c byte) bool {
	switch {
	case c <= ' ' || c >= 0x7f:
		return false
	case c >= '0' && c <= '9', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		return false
	}
	return true
}

// parseEncoding builds delimiters from the field separator and the MSH-2
// text. reason is empty on success and never quotes the input.
func parseEncoding(field byte, enc string) (Delimiters, string) {
	if !delimiterByte(field) {
		return Delimiters{}, "field separator is not a printable ASCII punctuation character"
	}
	var seen [256]bool
	seen[field] = true
	for i := 0; i < len(enc); i++ {
		c := enc[i]
		if !delimiterByte(c) {
			return Delimiters{}, "encoding characters must be printable ASCII punctuation"
		}
		if seen[c] {
			return Delimiters{}, "encoding characters must be distinct from each other and from the field separator"
		}
		seen[c] = true
	}
	if len(enc) < 3 {
		return Delimiters{}, "encoding characters need at least component, repetition and escape characters"
	}
	if len(enc) > 5 {
		return Delimiters{}, "more than five encoding characters"
	}
	d := Delimiters{Field: field, Component: enc[0], Repetition: enc[1], Escape: enc[2]}
	if len(enc) > 3 {
		d.Subcomponent = enc[3]
	}
	if len(enc) > 4 {
		d.Truncation = enc[4]
	}
	return d, ""
}

// valid reports whether d could have come from parseEncoding.
func (d Delimiters) valid() bool {
	if d.Subcomponent == 0 && d.Truncation != 0 {
		return false
	}
	got, reason := parseEncoding(d.Field, d.EncodingCharacters())
	return reason == "" && got == d
}

// fallbackDelimiters are used to read a header whose MSH-2 is unusable: the
// standard encoding characters, minus any that clash with the field
// separator actually in use.
func fallbackDelimiters(field byte) Delimiters {
	d := StandardDelimiters
	d.Field = field
	for _, p := range []*byte{&d.Component, &d.Repetition, &d.Escape, &d.Subcomponent} {
		if *p == field {
			*p = 0
		}
	}
	return d
}

// isDelimiter reports whether c is one of the separators that structure a
// field (not counting the escape character).
func (d *Delimiters) structural(c byte) bool {
	return c != 0 && (c == d.Field || c == d.Component || c == d.Repetition || c == d.Subcomponent)
}
