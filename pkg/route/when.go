package route

import (
	"fmt"
	"strconv"
	"strings"
)

// ScoreFacts is what an alert condition reads of a score.
type ScoreFacts struct {
	// Total is the score's total points.
	Total int
	// Risk is the score's risk level: low, low-medium, medium or high for
	// NEWS2; positive or negative for qSOFA; met or not-met for SIRS.
	Risk string
	// SingleParameter3 is true when a NEWS2 parameter scored 3 on its own.
	SingleParameter3 bool
}

// Condition is a compiled "when" of an alert level: terms joined by and
// and or, and binding tighter than or. The zero Condition never holds.
type Condition struct {
	text string
	// any holds when one of its conjunctions holds; a conjunction when all
	// of its terms do.
	any [][]term
}

// Holds reports whether the condition holds for a score.
func (c Condition) Holds(f ScoreFacts) bool {
	for _, all := range c.any {
		ok := true
		for _, t := range all {
			if !t.holds(f) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// String returns the condition as written in routes.yaml.
func (c Condition) String() string { return c.text }

// termKind is what a term of a condition reads.
type termKind uint8

const (
	termTotal   termKind = iota // total <op> n
	termSingle3                 // single_parameter_3
	termRisk                    // risk == name, risk in [names]
)

// cmpOp compares a total with a number.
type cmpOp uint8

const (
	cmpGE cmpOp = iota // >=
	cmpGT              // >
	cmpLE              // <=
	cmpLT              // <
	cmpEQ              // ==
)

var cmpOps = map[string]cmpOp{">=": cmpGE, ">": cmpGT, "<=": cmpLE, "<": cmpLT, "==": cmpEQ}

const cmpOpList = ">=, >, <=, <, =="

// term is one predicate of a condition.
type term struct {
	kind  termKind
	op    cmpOp
	n     int
	risks []string
}

func (t term) holds(f ScoreFacts) bool {
	switch t.kind {
	case termTotal:
		switch t.op {
		case cmpGE:
			return f.Total >= t.n
		case cmpGT:
			return f.Total > t.n
		case cmpLE:
			return f.Total <= t.n
		case cmpLT:
			return f.Total < t.n
		case cmpEQ:
			return f.Total == t.n
		}
	case termSingle3:
		return f.SingleParameter3
	case termRisk:
		return containsString(t.risks, f.Risk)
	}
	return false
}

// scoreSpec is what this package knows of a score, to check conditions
// against it: the range of its total, its risk levels, and whether it has
// single-parameter scores. Scores the caller registers beyond these may
// be alerted on by their total only.
type scoreSpec struct {
	name     string
	known    bool
	maxTotal int
	risks    []string
	single3  bool
	// risk returns the risk level of a complete score.
	risk func(total int, single3 bool) string
}

// builtinScores are the scores of the clinical reference
// (/work/shared/clinical/REFERENCE.md), by the names pkg/score gives them.
var builtinScores = map[string]*scoreSpec{
	"news2": {
		name: "news2", known: true, maxTotal: 20, single3: true,
		risks: []string{"low", "low-medium", "medium", "high"},
		risk: func(total int, single3 bool) string {
			switch {
			case total >= 7:
				return "high"
			case total >= 5:
				return "medium"
			case single3:
				return "low-medium"
			}
			return "low"
		},
	},
	"qsofa": {
		name: "qsofa", known: true, maxTotal: 3,
		risks: []string{"positive", "negative"},
		risk: func(total int, _ bool) string {
			if total >= 2 {
				return "positive"
			}
			return "negative"
		},
	},
	"sirs": {
		name: "sirs", known: true, maxTotal: 4,
		risks: []string{"met", "not-met"},
		risk: func(total int, _ bool) string {
			if total >= 2 {
				return "met"
			}
			return "not-met"
		},
	},
}

// specOf returns what is known of a registered score.
func specOf(score string) *scoreSpec {
	if s, ok := builtinScores[score]; ok {
		return s
	}
	return &scoreSpec{name: score}
}

// facts lists every score a complete calculation can give: each total
// with the risk it implies, and for NEWS2 with and without a single
// parameter scoring 3 (which needs a total of at least 3).
func (s *scoreSpec) facts() []ScoreFacts {
	if !s.known {
		return nil
	}
	var out []ScoreFacts
	for t := 0; t <= s.maxTotal; t++ {
		out = append(out, ScoreFacts{Total: t, Risk: s.risk(t, false)})
		if s.single3 && t >= 3 {
			out = append(out, ScoreFacts{Total: t, Risk: s.risk(t, true), SingleParameter3: true})
		}
	}
	return out
}

// whenError is a problem at a byte offset of a condition's text.
type whenError struct {
	off    int
	reason string
}

// token kinds of the condition lexer.
type tokKind uint8

const (
	tokEnd tokKind = iota
	tokWord
	tokQuoted
	tokOp
	tokLBrack
	tokRBrack
	tokComma
	tokLParen
	tokRParen
	tokOther
)

type tok struct {
	kind tokKind
	text string // a quoted word without its quotes
	off  int
}

func isWordChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '+'
}

func isOpChar(c byte) bool { return strings.IndexByte("<>=!&|~", c) >= 0 }

// lexWhen cuts a condition into tokens.
func lexWhen(s string) ([]tok, *whenError) {
	var out []tok
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case isWordChar(c):
			j := i
			for j < len(s) && isWordChar(s[j]) {
				j++
			}
			out = append(out, tok{tokWord, s[i:j], i})
			i = j
		case isOpChar(c):
			j := i
			for j < len(s) && isOpChar(s[j]) {
				j++
			}
			out = append(out, tok{tokOp, s[i:j], i})
			i = j
		case c == '"' || c == '\'':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return nil, &whenError{i, "missing closing quote"}
			}
			out = append(out, tok{tokQuoted, s[i+1 : i+1+j], i})
			i += j + 2
		case c == '[':
			out = append(out, tok{tokLBrack, "[", i})
			i++
		case c == ']':
			out = append(out, tok{tokRBrack, "]", i})
			i++
		case c == ',':
			out = append(out, tok{tokComma, ",", i})
			i++
		case c == '(':
			out = append(out, tok{tokLParen, "(", i})
			i++
		case c == ')':
			out = append(out, tok{tokRParen, ")", i})
			i++
		default:
			// One character, or one UTF-8 sequence, shown as written.
			j := i + 1
			for j < len(s) && s[j]&0xC0 == 0x80 {
				j++
			}
			out = append(out, tok{tokOther, s[i:j], i})
			i = j
		}
	}
	return append(out, tok{tokEnd, "", len(s)}), nil
}

// whenParser parses one condition for one score.
type whenParser struct {
	toks []tok
	i    int
	// spec is the rule's score, or nil when it is unknown: then only the
	// grammar is checked, not what the score offers.
	spec *scoreSpec
}

const whenGrammar = "total >= 5, single_parameter_3 or risk == high, joined by and / or"

// parseWhen compiles a condition written for a score (spec nil: unknown).
func parseWhen(s string, spec *scoreSpec) (Condition, *whenError) {
	c := Condition{text: strings.TrimSpace(s)}
	toks, werr := lexWhen(s)
	if werr != nil {
		return c, werr
	}
	if toks[0].kind == tokEnd {
		return c, &whenError{0, "empty condition: write one such as " + whenGrammar}
	}
	p := &whenParser{toks: toks, spec: spec}
	for {
		all, werr := p.conjunction()
		if werr != nil {
			return c, werr
		}
		c.any = append(c.any, all)
		t := p.next()
		switch {
		case t.kind == tokEnd:
			return c, nil
		case t.kind == tokWord && t.text == "or":
			if p.peek().kind == tokEnd {
				return c, &whenError{t.off, `nothing follows "or"`}
			}
			continue
		}
		return c, p.afterTerm(t)
	}
}

func (p *whenParser) next() tok {
	t := p.toks[p.i]
	if t.kind != tokEnd {
		p.i++
	}
	return t
}

func (p *whenParser) peek() tok { return p.toks[p.i] }

// conjunction parses terms joined by and.
func (p *whenParser) conjunction() ([]term, *whenError) {
	var all []term
	for {
		t, werr := p.term()
		if werr != nil {
			return nil, werr
		}
		all = append(all, t)
		if nt := p.peek(); nt.kind == tokWord && nt.text == "and" {
			p.next()
			if p.peek().kind == tokEnd {
				return nil, &whenError{nt.off, `nothing follows "and"`}
			}
			continue
		}
		return all, nil
	}
}

// afterTerm explains a token found where and, or or the end belong.
func (p *whenParser) afterTerm(t tok) *whenError {
	switch {
	case t.kind == tokWord && (strings.EqualFold(t.text, "and") || strings.EqualFold(t.text, "or")):
		return &whenError{t.off, fmt.Sprintf("write %s in lower case", strings.ToLower(t.text))}
	case t.kind == tokOp && t.text == "&&":
		return &whenError{t.off, "write and instead of &&"}
	case t.kind == tokOp && t.text == "||":
		return &whenError{t.off, "write or instead of ||"}
	case t.kind == tokLParen || t.kind == tokRParen:
		return &whenError{t.off, "parentheses are not used: and binds tighter than or, so a and b or c means (a and b) or c"}
	}
	return &whenError{t.off, fmt.Sprintf("expected and, or, or the end of the condition, not %s", showTok(t))}
}

// showTok quotes a token for a message.
func showTok(t tok) string {
	if t.kind == tokEnd {
		return "the end"
	}
	return strconv.Quote(t.text)
}

// term parses one predicate.
func (p *whenParser) term() (term, *whenError) {
	t := p.next()
	switch {
	case t.kind == tokWord && t.text == "total":
		return p.total(t)
	case t.kind == tokWord && t.text == "single_parameter_3":
		if p.spec != nil && !p.spec.single3 {
			return term{}, &whenError{t.off, fmt.Sprintf("single_parameter_3 applies to news2 only, not to %s", p.spec.name)}
		}
		return term{kind: termSingle3}, nil
	case t.kind == tokWord && t.text == "risk":
		return p.risk(t)
	case t.kind == tokEnd:
		return term{}, &whenError{t.off, "missing condition: write one such as " + whenGrammar}
	case t.kind == tokLParen || t.kind == tokRParen:
		return term{}, &whenError{t.off, "parentheses are not used: and binds tighter than or, so a and b or c means (a and b) or c"}
	case t.kind == tokWord && (t.text == "and" || t.text == "or"):
		return term{}, &whenError{t.off, fmt.Sprintf("missing condition before %q", t.text)}
	case t.kind == tokWord && t.text == "not" || t.kind == tokOp && t.text == "!":
		return term{}, &whenError{t.off, "not is not supported: compare the other way (total < 5, risk in [low, medium])"}
	case t.kind == tokWord && (builtinScores[strings.ToLower(t.text)] != nil || strings.EqualFold(t.text, "score")):
		return term{}, &whenError{t.off, fmt.Sprintf("%q: a condition reads the rule's own score; write total >= 5", t.text)}
	case t.kind == tokWord:
		hint := suggest(t.text, []string{"total", "single_parameter_3", "risk"})
		if hint == "" && strings.Contains(strings.ToLower(t.text), "single") {
			hint = ` (did you mean "single_parameter_3"?)`
		}
		return term{}, &whenError{t.off, fmt.Sprintf("unknown word %q%s: a condition is %s", t.text, hint, whenGrammar)}
	}
	return term{}, &whenError{t.off, fmt.Sprintf("unexpected %s: a condition is %s", showTok(t), whenGrammar)}
}

// total parses "total <op> <n>" after the word total.
func (p *whenParser) total(w tok) (term, *whenError) {
	t := p.next()
	if t.kind != tokOp {
		if t.kind == tokEnd {
			return term{}, &whenError{w.off + len(w.text), "missing operator after total: one of " + cmpOpList}
		}
		return term{}, &whenError{t.off, fmt.Sprintf("expected an operator after total (one of %s), not %s", cmpOpList, showTok(t))}
	}
	op, ok := cmpOps[t.text]
	if !ok {
		reason := fmt.Sprintf("unknown operator %q: use one of %s", t.text, cmpOpList)
		switch t.text {
		case "=":
			reason = "use == to compare (a single = is not an operator)"
		case "=>":
			reason = `write >= (not =>)`
		case "=<":
			reason = `write <= (not =<)`
		case "!=":
			reason = "!= is not supported: write total < n or total > n"
		}
		return term{}, &whenError{t.off, reason}
	}
	n := p.next()
	if n.kind != tokWord || !allDigits(n.text) {
		if n.kind == tokEnd {
			return term{}, &whenError{n.off, fmt.Sprintf("missing number after %s", t.text)}
		}
		if n.kind == tokWord && strings.HasPrefix(n.text, "-") && allDigits(n.text[1:]) {
			return term{}, &whenError{n.off, "a total is never negative"}
		}
		return term{}, &whenError{n.off, fmt.Sprintf("expected a whole number after %s, not %s", t.text, showTok(n))}
	}
	v, err := strconv.Atoi(n.text)
	if err != nil || len(n.text) > 4 || p.spec != nil && p.spec.known && v > p.spec.maxTotal {
		if p.spec != nil && p.spec.known {
			return term{}, &whenError{n.off, fmt.Sprintf("%s totals run from 0 to %d", p.spec.name, p.spec.maxTotal)}
		}
		return term{}, &whenError{n.off, fmt.Sprintf("total %s is too large", n.text)}
	}
	return term{kind: termTotal, op: op, n: v}, nil
}

// risk parses "risk == name" or "risk in [names]" after the word risk.
func (p *whenParser) risk(w tok) (term, *whenError) {
	if p.spec != nil && !p.spec.known {
		return term{}, &whenError{w.off, fmt.Sprintf("this router knows no risk levels of score %q: compare its total", p.spec.name)}
	}
	t := p.next()
	tm := term{kind: termRisk}
	switch {
	case t.kind == tokOp && t.text == "==":
		n := p.next()
		name, werr := p.riskName(n, t)
		if werr != nil {
			return term{}, werr
		}
		tm.risks = []string{name}
		return tm, nil
	case t.kind == tokWord && t.text == "in":
		open := p.next()
		if open.kind != tokLBrack {
			return term{}, &whenError{open.off, "expected a list in brackets after in, such as [medium, high]"}
		}
		for {
			n := p.next()
			if n.kind == tokRBrack && len(tm.risks) == 0 {
				return term{}, &whenError{n.off, "empty list: it would never hold"}
			}
			name, werr := p.riskName(n, open)
			if werr != nil {
				return term{}, werr
			}
			if containsString(tm.risks, name) {
				return term{}, &whenError{n.off, fmt.Sprintf("risk %q is listed twice", name)}
			}
			tm.risks = append(tm.risks, name)
			switch sep := p.next(); sep.kind {
			case tokComma:
				continue
			case tokRBrack:
				return tm, nil
			case tokEnd:
				return term{}, &whenError{sep.off, "missing ] at the end of the list"}
			default:
				return term{}, &whenError{sep.off, fmt.Sprintf("expected , or ] in the list, not %s", showTok(sep))}
			}
		}
	case t.kind == tokOp && t.text == "=":
		return term{}, &whenError{t.off, "use == to compare (a single = is not an operator)"}
	case t.kind == tokEnd:
		return term{}, &whenError{w.off + len(w.text), "missing == or in after risk"}
	}
	return term{}, &whenError{t.off, fmt.Sprintf("expected == or in after risk, not %s", showTok(t))}
}

// riskName reads one risk level name; after is the token before it.
func (p *whenParser) riskName(n, after tok) (string, *whenError) {
	if n.kind != tokWord && n.kind != tokQuoted {
		if n.kind == tokEnd {
			return "", &whenError{n.off, fmt.Sprintf("missing risk level after %s", after.text)}
		}
		return "", &whenError{n.off, fmt.Sprintf("expected a risk level, not %s", showTok(n))}
	}
	if p.spec == nil {
		return n.text, nil
	}
	if !containsString(p.spec.risks, n.text) {
		hint := suggest(n.text, p.spec.risks)
		if hint == "" {
			hint = " (known: " + quoteList(p.spec.risks) + ")"
		}
		return "", &whenError{n.off, fmt.Sprintf("unknown %s risk level %q%s", p.spec.name, n.text, hint)}
	}
	return n.text, nil
}
