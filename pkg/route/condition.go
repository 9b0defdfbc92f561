package route

import (
	"regexp"
	"strings"

	"github.com/aortahealth/aorta/pkg/hl7"
)

// op is a condition's operator.
type op uint8

const (
	opEq       op = iota // ==
	opNe                 // !=
	opMatch              // =~
	opNotMatch           // !~
	opIn                 // in
	opNotIn              // not in
	opExists             // exists
	opEmpty              // empty
)

// negative operators hold when no occurrence satisfies their positive
// form: "OBX-3.1 != X" means no OBX has X, not that some OBX lacks it.
func (o op) negative() bool {
	return o == opNe || o == opNotMatch || o == opNotIn || o == opEmpty
}

const operatorList = "==, !=, =~, !~, in, not in, exists, empty"

// condition is one compiled "where" entry.
type condition struct {
	text   string // as written, for explanations
	loc    hl7.Location
	anyRep bool // PID-3[*].1: any repetition of the field
	op     op
	value  string
	set    map[string]struct{}
	re     *regexp.Regexp
}

// conditionError is a problem at a byte offset of a condition's text.
type conditionError struct {
	off    int
	reason string
}

// parseCondition compiles "LOCATION OPERATOR [VALUE]".
func parseCondition(s string) (*condition, *conditionError) {
	c := &condition{text: strings.TrimSpace(s)}
	i := skipSpace(s, 0)
	start := i
	for i < len(s) && isPathChar(s[i]) {
		i++
	}
	path := s[start:i]
	if path == "" {
		return nil, &conditionError{start, "a condition starts with a field path such as PID-8, then an operator (" + operatorList + ")"}
	}
	loc, anyRep, reason := parsePath(path)
	if reason != "" {
		return nil, &conditionError{start, reason}
	}
	c.loc, c.anyRep = loc, anyRep
	i = skipSpace(s, i)
	rest := s[i:]
	switch {
	case strings.HasPrefix(rest, "=="):
		c.op, i = opEq, i+2
	case strings.HasPrefix(rest, "!="):
		c.op, i = opNe, i+2
	case strings.HasPrefix(rest, "=~"):
		c.op, i = opMatch, i+2
	case strings.HasPrefix(rest, "!~"):
		c.op, i = opNotMatch, i+2
	case isWord(rest, "in"):
		c.op, i = opIn, i+2
	case isWord(rest, "not"):
		j := skipSpace(s, i+3)
		if !isWord(s[j:], "in") {
			return nil, &conditionError{j, `expected "in" after "not"`}
		}
		c.op, i = opNotIn, j+2
	case isWord(rest, "exists"):
		c.op, i = opExists, i+6
	case isWord(rest, "empty"):
		c.op, i = opEmpty, i+5
	case strings.TrimSpace(rest) == "":
		return nil, &conditionError{i, "missing operator after " + path + ": expected one of " + operatorList}
	case strings.HasPrefix(rest, "="):
		return nil, &conditionError{i, "use == to compare (a single = is not an operator)"}
	default:
		return nil, &conditionError{i, "unknown operator: expected one of " + operatorList}
	}
	at := skipSpace(s, i)
	val := strings.TrimRight(s[at:], " \t")
	switch c.op {
	case opExists, opEmpty:
		if val != "" {
			return nil, &conditionError{at, "nothing may follow exists or empty"}
		}
	case opEq, opNe:
		v, cerr := parseValue(val)
		if cerr != nil {
			cerr.off += at
			return nil, cerr
		}
		c.value = v
	case opMatch, opNotMatch:
		v, cerr := parseValue(val)
		if cerr != nil {
			cerr.off += at
			return nil, cerr
		}
		if v == "" {
			return nil, &conditionError{at, "empty regular expression"}
		}
		re, err := regexp.Compile(v)
		if err != nil {
			return nil, &conditionError{at, "bad regular expression: " + strings.TrimPrefix(err.Error(), "error parsing regexp: ")}
		}
		c.re = re
	case opIn, opNotIn:
		items, cerr := parseList(val)
		if cerr != nil {
			cerr.off += at
			return nil, cerr
		}
		c.set = make(map[string]struct{}, len(items))
		for _, it := range items {
			c.set[it] = struct{}{}
		}
	}
	return c, nil
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

func isPathChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '[' || c == ']' || c == '*'
}

// isWord reports whether s starts with the word w, followed by a space,
// a bracket or nothing.
func isWord(s, w string) bool {
	if !strings.HasPrefix(s, w) {
		return false
	}
	return len(s) == len(w) || s[len(w)] == ' ' || s[len(w)] == '\t' || s[len(w)] == '['
}

// parsePath reads a field path: an hl7 location ("PID-8", "OBX[2]-5",
// "PID-3[2].1") or one with [*] after the field number ("PID-3[*].1"),
// meaning any repetition of the field.
func parsePath(path string) (hl7.Location, bool, string) {
	s, anyRep := path, false
	if i := strings.Index(s, "[*]"); i >= 0 {
		before, after := s[:i], s[i+3:]
		switch dash := strings.LastIndexByte(before, '-'); {
		case len(before) == 3 && !strings.Contains(before, "-"):
			// OBX[*]-3: every occurrence of a segment is already the
			// default for a segment without an index.
		case dash >= 0 && dash < len(before)-1 && allDigits(before[dash+1:]):
			anyRep = true
		default:
			return hl7.Location{}, false, "[*] goes after a field number, as in PID-3[*].1"
		}
		s = before + after
		if strings.Contains(s, "[*]") {
			return hl7.Location{}, false, "[*] may appear once in a field path"
		}
	}
	loc, err := hl7.ParseLocation(s)
	if err != nil {
		msg := err.Error()
		if k := strings.Index(msg, `": `); k >= 0 {
			msg = msg[k+3:]
		}
		reason := "bad field path " + quote(path) + ": " + msg
		if up := strings.ToUpper(path); up != path {
			if _, err := hl7.ParseLocation(strings.ReplaceAll(up, "[*]", "")); err == nil {
				reason += " (segment names are upper case: did you mean " + quote(up) + "?)"
			}
		}
		return hl7.Location{}, false, reason
	}
	if loc.Field == 0 {
		return hl7.Location{}, false, "field path " + quote(path) + " names a segment, not a field: write " + loc.Segment + "-3, for example"
	}
	if anyRep && loc.Repetition > 0 {
		return hl7.Location{}, false, "field path " + quote(path) + " gives both [*] and a repetition number"
	}
	return loc, anyRep, ""
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func quote(s string) string { return `"` + s + `"` }

// parseValue reads a value after == or =~: a quoted string ("DE LA CRUZ"
// or 'DE LA CRUZ'), or the rest of the condition as written.
func parseValue(v string) (string, *conditionError) {
	if v == "" {
		return "", &conditionError{0, `missing value: write "" to compare with an empty value`}
	}
	if v[0] != '"' && v[0] != '\'' {
		return v, nil
	}
	s, n, cerr := unquote(v, 0)
	if cerr != nil {
		return "", cerr
	}
	if n != len(v) {
		return "", &conditionError{n, "unexpected text after the closing quote"}
	}
	return s, nil
}

// unquote reads the quoted string starting at s[i]. In double quotes, a
// backslash escapes a double quote or a backslash, and is kept before
// anything else, so regular expressions such as "\d+" read as written. In
// single quotes, a quote is written twice. It returns the string and the
// offset just past the closing quote.
func unquote(s string, i int) (string, int, *conditionError) {
	q := s[i]
	var b strings.Builder
	for j := i + 1; j < len(s); j++ {
		c := s[j]
		switch {
		case q == '"' && c == '\\' && j+1 < len(s) && (s[j+1] == '"' || s[j+1] == '\\'):
			b.WriteByte(s[j+1])
			j++
		case q == '\'' && c == '\'' && j+1 < len(s) && s[j+1] == '\'':
			b.WriteByte('\'')
			j++
		case c == q:
			return b.String(), j + 1, nil
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, &conditionError{i, "missing closing quote"}
}

// parseList reads "[a, b, "c, d"]".
func parseList(v string) ([]string, *conditionError) {
	if v == "" || v[0] != '[' {
		return nil, &conditionError{0, "expected a list in brackets, such as [8867-4, 9279-1]"}
	}
	var items []string
	i := 1
	for {
		i = skipSpace(v, i)
		if i >= len(v) {
			return nil, &conditionError{len(v), "missing ] at the end of the list"}
		}
		if v[i] == ']' {
			if len(items) == 0 {
				return nil, &conditionError{i, "empty list: it would never match"}
			}
			return nil, &conditionError{i, "empty entry in the list"}
		}
		var it string
		if v[i] == '"' || v[i] == '\'' {
			s, n, cerr := unquote(v, i)
			if cerr != nil {
				return nil, cerr
			}
			it, i = s, n
		} else {
			j := i
			for j < len(v) && v[j] != ',' && v[j] != ']' {
				j++
			}
			it = strings.TrimRight(v[i:j], " \t")
			if it == "" {
				return nil, &conditionError{i, "empty entry in the list"}
			}
			i = j
		}
		items = append(items, it)
		i = skipSpace(v, i)
		if i >= len(v) {
			return nil, &conditionError{len(v), "missing ] at the end of the list"}
		}
		switch v[i] {
		case ',':
			i++
		case ']':
			if rest := strings.TrimSpace(v[i+1:]); rest != "" {
				return nil, &conditionError{i + 1, "unexpected text after the list"}
			}
			return items, nil
		default:
			return nil, &conditionError{i, "expected , or ] after a list entry"}
		}
	}
}

// holds evaluates the condition on a message. A location naming a segment
// without an index looks at every occurrence of the segment: a positive
// operator holds when any occurrence satisfies it, a negative one when
// none satisfies its positive form.
func (c *condition) holds(m *hl7.Message) bool {
	found := false
	if c.loc.SegmentIndex > 0 {
		found = c.testSegment(m.Segment(c.loc.Segment, c.loc.SegmentIndex))
	} else {
		for s := range m.All(c.loc.Segment) {
			if c.testSegment(s) {
				found = true
				break
			}
		}
	}
	return found != c.op.negative()
}

func (c *condition) testSegment(s *hl7.Segment) bool {
	if s == nil {
		return false
	}
	if !c.anyRep {
		return c.test(s.Value(c.loc))
	}
	reps := s.Field(c.loc.Field).Repetitions()
	if len(reps) == 0 {
		return c.test("")
	}
	for _, r := range reps {
		e := r
		if c.loc.Component > 0 {
			e = e.Component(c.loc.Component)
		}
		if c.loc.Subcomponent > 0 {
			e = e.Subcomponent(c.loc.Subcomponent)
		}
		if c.test(e.String()) {
			return true
		}
	}
	return false
}

// test applies the positive form of the operator to one decoded value.
func (c *condition) test(v string) bool {
	switch c.op {
	case opEq, opNe:
		return v == c.value
	case opMatch, opNotMatch:
		return c.re.MatchString(v)
	case opIn, opNotIn:
		_, ok := c.set[v]
		return ok
	default: // opExists, opEmpty
		return v != ""
	}
}
