package hl7

import (
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

type charsetKind uint8

const (
	// csAuto is used when MSH-18 is absent or ASCII. Senders that declare
	// nothing routinely send UTF-8 or Windows-1252 anyway, so each value is
	// read as UTF-8 when it is valid UTF-8 and as Windows-1252 otherwise.
	// Deciding per value keeps one mis-encoded field from garbling the rest.
	csAuto charsetKind = iota
	csUTF8
	csSingleByte
)

// charset decodes values from the message character set to UTF-8 and
// encodes them back.
type charset struct {
	name string // canonical HL7 table 0211 name, "" for auto
	kind charsetKind
	cmap *charmap.Charmap
}

var (
	autoCharset = &charset{kind: csAuto, cmap: charmap.Windows1252}
	utf8Charset = &charset{name: "UNICODE UTF-8", kind: csUTF8}
)

// charsets maps upper-cased MSH-18 values (HL7 table 0211 plus a few aliases
// seen in the wild) to decoders.
var charsets = map[string]*charset{
	"":              autoCharset,
	"ASCII":         autoCharset,
	"ISO IR6":       autoCharset,
	"8859/1":        {name: "8859/1", kind: csSingleByte, cmap: charmap.ISO8859_1},
	"8859/2":        {name: "8859/2", kind: csSingleByte, cmap: charmap.ISO8859_2},
	"8859/3":        {name: "8859/3", kind: csSingleByte, cmap: charmap.ISO8859_3},
	"8859/4":        {name: "8859/4", kind: csSingleByte, cmap: charmap.ISO8859_4},
	"8859/5":        {name: "8859/5", kind: csSingleByte, cmap: charmap.ISO8859_5},
	"8859/6":        {name: "8859/6", kind: csSingleByte, cmap: charmap.ISO8859_6},
	"8859/7":        {name: "8859/7", kind: csSingleByte, cmap: charmap.ISO8859_7},
	"8859/8":        {name: "8859/8", kind: csSingleByte, cmap: charmap.ISO8859_8},
	"8859/9":        {name: "8859/9", kind: csSingleByte, cmap: charmap.ISO8859_9},
	"8859/15":       {name: "8859/15", kind: csSingleByte, cmap: charmap.ISO8859_15},
	"ISO IR100":     {name: "8859/1", kind: csSingleByte, cmap: charmap.ISO8859_1},
	"UNICODE UTF-8": utf8Charset,
	"UTF-8":         utf8Charset,
	"UTF8":          utf8Charset,
	// Table 0211 defines UNICODE as UCS-2, but every sender we have seen
	// writing it meant UTF-8; real UCS-2 would not survive MLLP framing.
	"UNICODE": utf8Charset,
}

// lookupCharset resolves an MSH-18 value. Multi-byte legacy sets (JIS, GB
// 18030, BIG-5, ...) and UTF-16/32 are not supported: they are not
// ASCII-compatible, so delimiters could not even be found reliably.
//
// Every name is ASCII, so a value with any other character is refused
// before trimming and case folding: Parse looks up MSH-18's bytes and
// ParseHeader its decoded text, and Unicode rules (a trailing U+00A0, a
// dotless i) must not make the two disagree.
func lookupCharset(name string) (*charset, bool) {
	if !isASCII(name) {
		return nil, false
	}
	cs, ok := charsets[strings.ToUpper(strings.TrimSpace(name))]
	return cs, ok
}

type decodeTable [256]rune

var tables sync.Map // *charmap.Charmap -> *decodeTable

func tableFor(cm *charmap.Charmap) *decodeTable {
	if t, ok := tables.Load(cm); ok {
		return t.(*decodeTable)
	}
	t := new(decodeTable)
	for i := range t {
		t[i] = cm.DecodeByte(byte(i))
	}
	actual, _ := tables.LoadOrStore(cm, t)
	return actual.(*decodeTable)
}

// isASCII reports whether s needs no charset conversion.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// decode converts bytes in the message charset to valid UTF-8. It never
// fails: bytes that are invalid in a declared UTF-8 message become U+FFFD.
// NUL bytes are kept; sanitising them is the storage layer's decision.
func (cs *charset) decode(s string) string {
	if isASCII(s) {
		return s
	}
	switch cs.kind {
	case csUTF8:
		if utf8.ValidString(s) {
			return s
		}
		return strings.ToValidUTF8(s, "\uFFFD")
	case csAuto:
		if utf8.ValidString(s) {
			return s
		}
	}
	t := tableFor(cs.cmap)
	var b strings.Builder
	b.Grow(len(s) + len(s)/2)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < utf8.RuneSelf {
			b.WriteByte(c)
			continue
		}
		b.WriteRune(t[c])
	}
	return b.String()
}

// encode converts UTF-8 text to the message charset. ok is false when a
// character has no representation there; lossy encoding then writes '?'.
func (cs *charset) encode(s string, lossy bool) (string, bool) {
	if cs.kind != csSingleByte || isASCII(s) {
		if !utf8.ValidString(s) {
			if !lossy {
				return "", false
			}
			return strings.ToValidUTF8(s, "?"), false
		}
		return s, true
	}
	ok := true
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r < utf8.RuneSelf {
			b = append(b, byte(r))
			continue
		}
		c, found := cs.cmap.EncodeRune(r)
		if !found {
			if !lossy {
				return "", false
			}
			ok = false
			c = '?'
		}
		b = append(b, c)
	}
	return string(b), ok
}
