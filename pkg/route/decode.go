package route

import (
	"cmp"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Limits on the files this package reads. Routes and tests are written by
// people, so real files stay far below them; the limits keep a mistaken
// or hostile file from exhausting memory or time at start-up.
const (
	// maxRoutesFileSize bounds routes.yaml. A generous parameter table and
	// a hundred routes take well under 100 KiB.
	maxRoutesFileSize = 1 << 20
	// maxTestFileSize bounds a route test file, which embeds messages.
	maxTestFileSize = 16 << 20
	// maxMessageFileSize bounds one message file named by a test.
	maxMessageFileSize = 16 << 20
	// maxFlowDepth bounds the nesting of [ ] and { }. The YAML parser's
	// memory grows with the square of the nesting, so a few hundred
	// kilobytes of "[" would otherwise exhaust memory.
	maxFlowDepth = 64
	// maxNodes bounds the YAML values visited while decoding, counting
	// every expansion of an alias, so that nested aliases ("billion
	// laughs") cannot make a small file expand without end.
	maxNodes = 1_000_000
	// maxErrors bounds the problems reported for one file.
	maxErrors = 100
)

// decoder walks a YAML syntax tree, reporting every problem with its
// position instead of stopping at the first.
type decoder struct {
	collector
	// aliases maps each alias to the node its anchor named at the point
	// where the alias appears (an anchor may be redefined later).
	aliases map[*ast.AliasNode]ast.Node
	visited int
	tooBig  bool
	opts    ParseOptions
}

func newDecoder(file string) *decoder {
	return &decoder{collector: collector{file: file}, aliases: map[*ast.AliasNode]ast.Node{}}
}

// document parses data as a single YAML document and returns its body, or
// nil after reporting why there is none.
func (d *decoder) document(data []byte, limit int) ast.Node {
	if len(data) > limit {
		d.errorf(position{}, "file is %d bytes, more than the %d allowed", len(data), limit)
		return nil
	}
	f, err := parseYAML(data)
	if err != nil {
		var se *parserSyntaxError
		if errors.As(err, &se) {
			d.errorf(se.pos, "%s", se.msg)
		} else {
			d.errorf(position{}, "%v", err)
		}
		return nil
	}
	var body ast.Node
	n := 0
	for _, doc := range f.Docs {
		if doc == nil || doc.Body == nil {
			continue
		}
		if _, comment := doc.Body.(*ast.CommentGroupNode); comment {
			continue
		}
		n++
		if n == 1 {
			body = doc.Body
			continue
		}
		d.errorf(posOf(doc.Body), "a second YAML document (after ---) is not allowed; keep everything in one document")
		return nil
	}
	if body == nil {
		d.errorf(position{line: 1, col: 1}, "file is empty")
		return nil
	}
	d.collectAnchors(body, map[string]ast.Node{})
	return body
}

// parserSyntaxError carries a syntax error of the YAML parser.
type parserSyntaxError struct {
	pos position
	msg string
}

func (e *parserSyntaxError) Error() string { return e.msg }

// parseYAML runs the YAML parser. The parser is a dependency fuzzed by its
// authors rather than by us, so a panic in it becomes an error here: one
// odd file must never take the router down.
func parseYAML(data []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("the YAML parser failed on this file (%v); please report it", r)
		}
	}()
	tokens := lexer.Tokenize(string(data))
	if p, ok := flowTooDeep(tokens); !ok {
		return nil, &parserSyntaxError{pos: p, msg: fmt.Sprintf("brackets nested more than %d deep", maxFlowDepth)}
	}
	f, err = parser.Parse(tokens, 0)
	if err != nil {
		type tokenError interface{ GetToken() *token.Token }
		type messageError interface{ GetMessage() string }
		var te tokenError
		if errors.As(err, &te) {
			// GetMessage, not Error: Error prints the source around the
			// token, which takes time quadratic in the length of a line.
			var msg string
			if me, ok := te.(messageError); ok {
				msg = me.GetMessage()
			} else {
				msg = "the file is not valid YAML"
			}
			p := position{}
			if tk := te.GetToken(); tk != nil && tk.Position != nil {
				p = position{line: tk.Position.Line, col: tk.Position.Column}
			}
			// Control characters (a tab where spaces belong) are shown
			// escaped, so the reason prints on one visible line.
			msg = strings.NewReplacer("\t", `\t`, "\r", `\r`, "\n", `\n`).Replace(msg)
			return nil, &parserSyntaxError{pos: p, msg: "YAML syntax: " + msg}
		}
		return nil, fmt.Errorf("YAML syntax: %w", err)
	}
	return f, nil
}

// flowTooDeep reports the first [ or { nested deeper than maxFlowDepth.
func flowTooDeep(tokens token.Tokens) (position, bool) {
	depth := 0
	for _, tk := range tokens {
		switch tk.Type {
		case token.SequenceStartType, token.MappingStartType:
			depth++
			if depth > maxFlowDepth {
				p := position{}
				if tk.Position != nil {
					p = position{line: tk.Position.Line, col: tk.Position.Column}
				}
				return p, false
			}
		case token.SequenceEndType, token.MappingEndType:
			depth = max(depth-1, 0)
		}
	}
	return position{}, true
}

// collectAnchors binds every alias to the anchor it names, in document
// order. An anchor is bound after its own content, so an alias inside the
// content it names is unknown rather than a cycle.
func (d *decoder) collectAnchors(n ast.Node, anchors map[string]ast.Node) {
	switch x := n.(type) {
	case *ast.AnchorNode:
		d.collectAnchors(x.Value, anchors)
		if name, ok := x.Name.(ast.ScalarNode); ok && x.Value != nil {
			anchors[fmt.Sprint(name.GetValue())] = x.Value
		}
	case *ast.AliasNode:
		if name, ok := x.Value.(ast.ScalarNode); ok {
			if target, ok := anchors[fmt.Sprint(name.GetValue())]; ok {
				d.aliases[x] = target
			}
		}
	case *ast.MappingNode:
		for _, v := range x.Values {
			d.collectAnchors(v, anchors)
		}
	case *ast.MappingValueNode:
		d.collectAnchors(x.Key, anchors)
		d.collectAnchors(x.Value, anchors)
	case *ast.SequenceNode:
		for _, v := range x.Values {
			d.collectAnchors(v, anchors)
		}
	case *ast.TagNode:
		d.collectAnchors(x.Value, anchors)
	}
}

// resolve follows aliases, drops anchors and applies the !!str tag. It
// returns nil, after reporting, for nodes that cannot be decoded.
func (d *decoder) resolve(n ast.Node) ast.Node {
	for hops := 0; n != nil; hops++ {
		d.visited++
		if d.visited > maxNodes {
			if !d.tooBig {
				d.tooBig = true
				d.errorf(posOf(n), "file expands to more than %d values (through aliases?)", maxNodes)
			}
			return nil
		}
		switch x := n.(type) {
		case *ast.AnchorNode:
			n = x.Value
		case *ast.AliasNode:
			target, ok := d.aliases[x]
			if !ok {
				d.errorf(posOf(x), "alias %s names no anchor defined before it", x.String())
				return nil
			}
			n = target
		case *ast.TagNode:
			if x.Start == nil || x.Start.Value != "!!str" {
				d.errorf(posOf(x), "YAML tag %s is not supported here", tagName(x))
				return nil
			}
			inner := d.resolve(x.Value)
			if inner == nil {
				return nil
			}
			if _, ok := inner.(ast.ScalarNode); !ok || inner.GetToken() == nil {
				d.errorf(posOf(x), "!!str applies to a single value, not %s", describe(inner))
				return nil
			}
			return ast.String(inner.GetToken())
		default:
			return n
		}
	}
	return nil
}

func tagName(x *ast.TagNode) string {
	if x.Start != nil {
		return x.Start.Value
	}
	return "!"
}

// posOf returns where a node starts: a mapping at its first key, a block
// scalar at its indicator.
func posOf(n ast.Node) position {
	var tk *token.Token
	switch x := n.(type) {
	case nil:
		return position{}
	case *ast.MappingNode:
		if !x.IsFlowStyle && len(x.Values) > 0 {
			return posOf(x.Values[0])
		}
		tk = x.Start
	case *ast.MappingValueNode:
		return posOf(x.Key)
	case *ast.SequenceNode:
		tk = x.Start
	case *ast.LiteralNode:
		tk = x.Start
	case *ast.AnchorNode:
		tk = x.Start
	case *ast.AliasNode:
		tk = x.Start
	case *ast.TagNode:
		tk = x.Start
	case *ast.MappingKeyNode:
		tk = x.Start
	}
	if tk == nil {
		tk = n.GetToken()
	}
	if tk == nil || tk.Position == nil {
		return position{}
	}
	return position{line: tk.Position.Line, col: tk.Position.Column}
}

// within returns the position of byte offset off in the text of a scalar
// written on one line, so a problem inside a condition can be pointed at
// exactly; for other scalars it returns the scalar's start.
func within(n ast.Node, text string, off int) position {
	p := posOf(n)
	tk := n.GetToken()
	if tk == nil || off <= 0 || off > len(text) || p.line == 0 {
		return p
	}
	switch origin := strings.TrimSpace(tk.Origin); origin {
	case text:
		// A plain scalar: the token's column is the text's.
	case "'" + text + "'", `"` + text + `"`:
		// A quoted scalar without escapes: the column is the opening quote's.
		p.col++
	default:
		return p
	}
	p.col += utf8.RuneCountInString(text[:off])
	return p
}

// describe names a node's kind for a message, quoting short values: an
// analyst reading "not the text "yes"" sees what they wrote.
func describe(n ast.Node) string {
	switch x := n.(type) {
	case nil, *ast.NullNode:
		return "empty"
	case *ast.StringNode:
		return "the text " + shortQuote(x.Value)
	case *ast.IntegerNode, *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "the number " + x.GetToken().Value
	case *ast.BoolNode:
		return x.GetToken().Value
	case *ast.LiteralNode:
		return "a block of text"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	}
	return "a " + n.Type().String()
}

func shortQuote(s string) string {
	const max = 40
	if utf8.RuneCountInString(s) > max {
		r := []rune(s)
		s = string(r[:max]) + "…"
	}
	return strconv.Quote(s)
}

// entry is one key and value of a mapping.
type entry struct {
	key   string
	pos   position // of the key
	value ast.Node // unresolved
}

// mapping returns the entries of a mapping in order, with merge keys (<<)
// expanded: keys written in the mapping win over merged ones, and earlier
// merged mappings over later ones, as YAML specifies. ok is false, after
// reporting, when n is not a mapping.
func (d *decoder) mapping(n ast.Node, what string) (entries []entry, ok bool) {
	r := d.resolve(n)
	if r == nil {
		return nil, false
	}
	var values []*ast.MappingValueNode
	switch x := r.(type) {
	case *ast.MappingNode:
		values = x.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{x}
	default:
		d.errorf(posOf(r), "%s must be a mapping of keys to values, not %s", what, describe(r))
		return nil, false
	}
	seen := map[string]bool{}
	var merged []entry
	for _, mv := range values {
		if _, isMerge := mv.Key.(*ast.MergeKeyNode); isMerge {
			merged = append(merged, d.mergeSources(mv.Value, what)...)
			continue
		}
		k := d.resolve(mv.Key)
		if k == nil {
			continue
		}
		key, ok := scalarText(k)
		if !ok {
			d.errorf(posOf(mv.Key), "keys of %s must be plain values, not %s", what, describe(k))
			continue
		}
		if seen[key] {
			d.errorf(posOf(mv.Key), "key %q is given twice in %s", key, what)
			continue
		}
		seen[key] = true
		entries = append(entries, entry{key: key, pos: posOf(mv.Key), value: mv.Value})
	}
	for _, e := range merged {
		if !seen[e.key] {
			seen[e.key] = true
			entries = append(entries, e)
		}
	}
	return entries, true
}

// mergeSources reads the value of a merge key: a mapping, or a list of
// mappings.
func (d *decoder) mergeSources(n ast.Node, what string) []entry {
	r := d.resolve(n)
	if r == nil {
		return nil
	}
	if seq, ok := r.(*ast.SequenceNode); ok {
		var out []entry
		for _, v := range seq.Values {
			es, _ := d.mapping(v, "a merge (<<) in "+what)
			out = append(out, es...)
		}
		return out
	}
	es, _ := d.mapping(r, "a merge (<<) in "+what)
	return es
}

// scalarText returns the text of a scalar exactly as written (without
// quotes): "2.50" stays "2.50", 0777 stays "0777", 8867-4 is text.
func scalarText(n ast.Node) (string, bool) {
	switch x := n.(type) {
	case *ast.StringNode:
		return x.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return x.GetToken().Value, true
	case *ast.LiteralNode:
		if x.Value != nil {
			return x.Value.Value, true
		}
		return "", true
	}
	return "", false
}

// field describes one key of a YAML object: the decoder uses it to accept
// known keys and suggest corrections, and the tests check that doc.go and
// testdata/example.yaml document every one.
type field struct {
	name     string
	required bool
}

// object is the set of keys one kind of YAML mapping accepts.
type object struct {
	what   string // as named in messages: "route", "match"
	fields []field
	// elsewhere maps keys that belong to another object to its name, for
	// a hint when one is written at the wrong level.
	elsewhere map[string]string
	// refused maps keys that must never be written to the reason why,
	// given instead of "unknown key" (a literal secret, for one).
	refused map[string]string
}

func (o *object) names() []string {
	out := make([]string, len(o.fields))
	for i, f := range o.fields {
		out[i] = f.name
	}
	return out
}

// values holds the known entries of a decoded object by key.
type values struct {
	at      position // of the mapping
	byKey   map[string]entry
	written int    // entries in the mapping, known or not
	label   string // the mapping's name in messages
}

func (v values) has(key string) bool { _, ok := v.byKey[key]; return ok }

func (v values) get(key string) (entry, bool) { e, ok := v.byKey[key]; return e, ok }

// object decodes a mapping against its spec: unknown keys are reported
// with a suggestion, missing required keys at the mapping's start. label
// names the mapping in messages; when empty, it is o.what followed by the
// mapping's name key if it has one (route "adt"). values.label holds it.
func (d *decoder) object(n ast.Node, o *object, label string) (values, bool) {
	entries, ok := d.mapping(n, cmp.Or(label, o.what))
	v := values{at: posOf(d.resolveQuiet(n)), byKey: map[string]entry{}, label: cmp.Or(label, o.what)}
	if !ok {
		return v, false
	}
	known := o.names()
	v.written = len(entries)
	for _, e := range entries {
		if reason, ok := o.refused[e.key]; ok {
			d.errorf(e.pos, "key %q in %s is refused: %s", e.key, v.label, reason)
			continue
		}
		if !containsString(known, e.key) {
			hint := suggest(e.key, known)
			if other, ok := o.elsewhere[e.key]; ok {
				hint = fmt.Sprintf(" (it belongs under %q)", other)
			}
			d.errorf(e.pos, "unknown key %q in %s%s", e.key, o.what, hint)
			continue
		}
		v.byKey[e.key] = e
	}
	if e, ok := v.byKey["name"]; ok && label == "" {
		if s, ok := scalarText(d.resolveQuiet(e.value)); ok && s != "" {
			v.label = o.what + " " + strconv.Quote(s)
		}
	}
	for _, f := range o.fields {
		if f.required && !v.has(f.name) {
			d.errorf(v.at, "missing required key %q in %s", f.name, v.label)
		}
	}
	return v, true
}

// resolveQuiet resolves without counting or reporting, for positions.
func (d *decoder) resolveQuiet(n ast.Node) ast.Node {
	for i := 0; i < 8 && n != nil; i++ {
		switch x := n.(type) {
		case *ast.AnchorNode:
			n = x.Value
		case *ast.AliasNode:
			if t, ok := d.aliases[x]; ok {
				n = t
			} else {
				return n
			}
		default:
			return n
		}
	}
	return n
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// name reads a name (of a route, an alert rule, a severity): text made of
// lower-case letters, digits, _ and -, not already in names, where it is
// then recorded. taken ends the error for a name already used, so that the
// reader learns what it collides with.
func (d *decoder) name(e entry, what string, names map[string]position, taken string) string {
	s, p, ok := d.text(e, what)
	if !ok {
		return ""
	}
	switch first, dup := names[s]; {
	case !validName(s):
		d.errorf(p, "%s %q must be made of lower-case letters, digits, _ and - (at most %d)", what, s, maxRouteName)
	case dup:
		d.errorf(p, "%s %q %s (%s:%s)", what, s, taken, d.file, first)
	default:
		names[s] = p
	}
	return s
}

// text reads a scalar as text. Numbers are read as written, so "2.50",
// 8867 and 0777 keep their digits. Booleans, empty values, lists and
// mappings are errors.
func (d *decoder) text(e entry, what string) (string, position, bool) {
	r := d.resolve(e.value)
	if r == nil {
		return "", e.pos, false
	}
	switch r.(type) {
	case *ast.StringNode, *ast.IntegerNode, *ast.FloatNode, *ast.LiteralNode:
		s, _ := scalarText(r)
		return s, posOf(r), true
	case *ast.NullNode:
		d.errorf(e.pos, "%s has no value", what)
		return "", e.pos, false
	}
	d.errorf(posOf(r), "%s must be text, not %s", what, describe(r))
	return "", posOf(r), false
}

// boolean reads true or false.
func (d *decoder) boolean(e entry, what string) (bool, bool) {
	r := d.resolve(e.value)
	if r == nil {
		return false, false
	}
	if b, ok := r.(*ast.BoolNode); ok {
		return b.Value, true
	}
	if _, ok := r.(*ast.NullNode); ok {
		d.errorf(e.pos, "%s has no value: write true or false", what)
		return false, false
	}
	d.errorf(posOf(r), "%s must be true or false, not %s", what, describe(r))
	return false, false
}

// integer reads a whole number written in decimal.
func (d *decoder) integer(e entry, what string) (int, bool) {
	r := d.resolve(e.value)
	if r == nil {
		return 0, false
	}
	if x, ok := r.(*ast.IntegerNode); ok {
		if n, err := strconv.Atoi(x.GetToken().Value); err == nil {
			return n, true
		}
	}
	if _, ok := r.(*ast.NullNode); ok {
		d.errorf(e.pos, "%s has no value", what)
		return 0, false
	}
	d.errorf(posOf(r), "%s must be a whole number, not %s", what, describe(r))
	return 0, false
}

// item is one text value of a list, with its node for positions.
type item struct {
	text string
	node ast.Node
	pos  position
}

// list returns the elements of a list. With one, a single value stands
// for a list of one ("events: adt"). An empty value is an empty list.
func (d *decoder) list(e entry, what string, one bool) ([]ast.Node, bool) {
	r := d.resolve(e.value)
	if r == nil {
		return nil, false
	}
	switch x := r.(type) {
	case *ast.SequenceNode:
		return x.Values, true
	case *ast.NullNode:
		return nil, true
	case *ast.MappingNode, *ast.MappingValueNode:
	default:
		if one {
			return []ast.Node{r}, true
		}
	}
	if one {
		d.errorf(posOf(r), "%s must be a value or a list of values, not %s", what, describe(r))
	} else {
		d.errorf(posOf(r), "%s must be a list, not %s", what, describe(r))
	}
	return nil, false
}

// textList reads a list of text values (or one value, when one is set).
func (d *decoder) textList(e entry, what string, one bool) ([]item, bool) {
	nodes, ok := d.list(e, what, one)
	if !ok {
		return nil, false
	}
	out := make([]item, 0, len(nodes))
	good := true
	for _, n := range nodes {
		s, p, ok := d.text(entry{key: e.key, pos: posOf(n), value: n}, "each entry of "+what)
		if !ok {
			good = false
			continue
		}
		out = append(out, item{text: s, node: d.resolveQuiet(n), pos: p})
	}
	return out, good
}
