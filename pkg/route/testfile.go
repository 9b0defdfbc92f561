package route

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/shopspring/decimal"

	"github.com/aortahealth/aorta/pkg/hl7"
)

// TestFile is a decoded route test file: messages to run through the
// routes and what each must produce. Running them needs the event
// mappings, so the router does it; this package decodes and checks the
// file, and SubsetMatch compares what was produced with what was wanted.
type TestFile struct {
	// File is the test file's path as given to LoadTests.
	File string
	// Routes is the routes file under test: the path written in the file,
	// resolved against the test file's directory.
	Routes string
	Tests  []*Test
}

// Test is one named scenario: messages processed in order (a later one
// may correct an earlier one), and one expectation per message.
type Test struct {
	Name         string
	Messages     []*TestMessage
	Expect       []*Expectation
	Line, Column int
}

// TestMessage is one HL7 message of a test.
type TestMessage struct {
	// Raw is the message: for one written in the test, its lines joined
	// as CR-terminated segments; for one read from a file, the file's
	// bytes as they are.
	Raw []byte
	// File is the message file, resolved against the test file's
	// directory, when the test names one; "" for a message written inline.
	File         string
	Line, Column int
}

// Expectation is what processing one message must produce. Keys left out
// of the test file are not checked, except dead_letter, which defaults to
// "must not be dead-lettered".
type Expectation struct {
	// Routes are the routes that must match, in order; empty means the
	// message must be unrouted.
	Routes     []string
	DeadLetter DeadLetterCheck
	// Warnings is the number of warnings processing must give; nil when
	// not checked.
	Warnings *int
	// CheckEvents is true when the test lists the events; then the
	// events produced must correspond one to one, in order, to Events.
	CheckEvents  bool
	Events       []*EventExpectation
	Line, Column int

	routePos []position
}

// DeadLetterCheck says whether a message must be dead-lettered.
type DeadLetterCheck struct {
	// Want is true when the message must be dead-lettered, false when it
	// must not be.
	Want bool
	// Reason, when not empty, must occur in the dead-letter reason.
	Reason string
}

// EventExpectation is one expected event, given as the keys the test
// wrote: "type" (string, always present), "occurred_at" (time.Time),
// "patient_id", "patient_key", "encounter_id", "source", "route" (strings)
// and "payload" (maps, slices, strings, json.Number, bools and nils). The
// runner renders each produced event with the same keys and compares with
// SubsetMatch(Want, got): keys not written are not checked, and the
// payload only needs to contain what the test lists.
type EventExpectation struct {
	Want         map[string]any
	Line, Column int

	routePos position
}

// LoadTests reads and checks a route test file. Problems come back as
// *Error or Errors with the file name, line and column, like Load's.
// Message files named by tests are read too. Use Validate, once the
// routes file is loaded, to check the route names the tests use.
func LoadTests(path string) (*TestFile, error) {
	data, err := readLimited(path, maxTestFileSize)
	if err != nil {
		return nil, err
	}
	return parseTests(path, data)
}

func parseTests(path string, data []byte) (*TestFile, error) {
	d := newDecoder(path)
	root := d.document(data, maxTestFileSize)
	if root == nil {
		return nil, d.err()
	}
	tf := &TestFile{File: path}
	dir := filepath.Dir(path)
	if v, ok := d.object(root, testFileObject, ""); ok {
		if e, ok := v.get("routes"); ok {
			if s, p, ok := d.text(e, `"routes"`); ok {
				if strings.TrimSpace(s) == "" {
					d.errorf(p, "routes names no file")
				} else {
					tf.Routes = resolvePath(dir, s)
				}
			}
		}
		if e, ok := v.get("tests"); ok {
			tf.Tests = d.tests(e, dir)
		}
	}
	if err := d.err(); err != nil {
		return nil, err
	}
	return tf, nil
}

func resolvePath(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

func (d *decoder) tests(e entry, dir string) []*Test {
	nodes, ok := d.list(e, `"tests"`, false)
	if !ok {
		return nil
	}
	if len(nodes) == 0 {
		d.errorf(e.pos, "tests lists no tests")
	}
	var out []*Test
	names := map[string]position{}
	for _, n := range nodes {
		start := posOf(d.resolveQuiet(n))
		t := &Test{Line: start.line, Column: start.col}
		v, ok := d.object(n, testObject, "")
		if !ok {
			continue
		}
		label := v.label
		if e, ok := v.get("name"); ok {
			if s, p, ok := d.text(e, "test name"); ok {
				switch first, dup := names[s]; {
				case strings.TrimSpace(s) == "":
					d.errorf(p, "test name is empty")
				case dup:
					d.errorf(p, "test name %q is already used (%s:%s)", s, d.file, first)
				default:
					names[s] = p
				}
				t.Name = s
			}
		}
		written := -1
		if e, ok := v.get("messages"); ok {
			t.Messages, written = d.testMessages(e, dir, label)
		}
		if e, ok := v.get("expect"); ok {
			nodes, ok := d.list(e, `"expect"`, false)
			if ok {
				for _, n := range nodes {
					if x := d.expectation(n); x != nil {
						t.Expect = append(t.Expect, x)
					}
				}
				if written >= 0 && len(nodes) != written {
					d.errorf(e.pos, "%s has %d messages and %d expectations: give one expectation per message, in order", label, written, len(nodes))
				}
			}
		}
		out = append(out, t)
	}
	return out
}

// testMessages reads a test's messages. written is the number of
// messages the test lists, readable or not, or -1 when it lists none.
func (d *decoder) testMessages(e entry, dir, label string) (msgs []*TestMessage, written int) {
	nodes, ok := d.list(e, `"messages"`, false)
	if !ok {
		return nil, -1
	}
	if len(nodes) == 0 {
		d.errorf(e.pos, "%s lists no messages", label)
	}
	var out []*TestMessage
	for _, n := range nodes {
		r := d.resolve(n)
		if r == nil {
			continue
		}
		p := posOf(r)
		tm := &TestMessage{Line: p.line, Column: p.col}
		switch x := r.(type) {
		case *ast.MappingNode, *ast.MappingValueNode:
			v, ok := d.object(r, messageFileObject, "")
			if !ok {
				continue
			}
			fe, ok := v.get("file")
			if !ok {
				continue
			}
			name, fp, ok := d.text(fe, `"file"`)
			if !ok {
				continue
			}
			tm.File = resolvePath(dir, name)
			raw, err := readLimited(tm.File, maxMessageFileSize)
			if err != nil {
				var re *Error
				if errors.As(err, &re) {
					d.errorf(fp, "message file %q: %s", name, re.Reason)
				} else {
					d.errorf(fp, "message file %q cannot be read: %v", name, unwrapPathError(err))
				}
				continue
			}
			tm.Raw = raw
		case *ast.LiteralNode:
			if x.Start != nil && strings.HasPrefix(x.Start.Value, ">") {
				d.errorf(p, "write a message as a literal block (|), not a folded one (>), which would join its segments into one line")
				continue
			}
			tm.Raw = segments(x.Value.Value)
		case *ast.StringNode:
			if tk := x.GetToken(); tk != nil && strings.Contains(strings.TrimSpace(tk.Origin), "\n") && !strings.ContainsAny(x.Value, "\r\n") {
				// YAML joins the lines of a plain or quoted value with
				// spaces, which would make one segment of them all.
				d.errorf(p, "write a message of several lines as a literal block (|), or YAML joins its segments into one line")
				continue
			}
			tm.Raw = segments(x.Value)
		default:
			d.errorf(p, "a message must be a block of text (|) or {file: path}, not %s", describe(r))
			continue
		}
		if len(tm.Raw) == 0 {
			d.errorf(p, "message is empty")
			continue
		}
		if _, err := hl7.Parse(tm.Raw); err != nil {
			d.errorf(p, "message is not readable HL7: %v", err)
			continue
		}
		out = append(out, tm)
	}
	return out, len(nodes)
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// segments turns the lines of a YAML block into CR-terminated segments,
// dropping blank lines (and the CR of CRLF line ends).
func segments(text string) []byte {
	var b []byte
	for _, line := range strings.FieldsFunc(text, func(r rune) bool { return r == '\r' || r == '\n' }) {
		if strings.TrimSpace(line) == "" {
			continue
		}
		b = append(b, line...)
		b = append(b, '\r')
	}
	return b
}

func (d *decoder) expectation(n ast.Node) *Expectation {
	start := posOf(d.resolveQuiet(n))
	x := &Expectation{Line: start.line, Column: start.col}
	v, ok := d.object(n, expectObject, "")
	if !ok {
		return nil
	}
	if e, ok := v.get("route"); ok {
		items, _ := d.textList(e, `"route"`, true)
		x.Routes = []string{}
		for _, it := range items {
			if !validName(it.text) {
				d.errorf(it.pos, "route name %q must be made of lower-case letters, digits, _ and -", it.text)
				continue
			}
			x.Routes = append(x.Routes, it.text)
			x.routePos = append(x.routePos, it.pos)
		}
	}
	if e, ok := v.get("dead_letter"); ok {
		r := d.resolve(e.value)
		switch y := r.(type) {
		case nil:
		case *ast.BoolNode:
			x.DeadLetter.Want = y.Value
		case *ast.StringNode:
			if strings.TrimSpace(y.Value) == "" {
				d.errorf(posOf(r), "dead_letter reason is empty: write true to accept any reason")
			}
			x.DeadLetter = DeadLetterCheck{Want: true, Reason: y.Value}
		default:
			d.errorf(posOf(r), "dead_letter must be true, false or a part of the expected reason, not %s", describe(r))
		}
	}
	if e, ok := v.get("warnings"); ok {
		if n, ok := d.integer(e, `"warnings"`); ok {
			if n < 0 {
				d.errorf(posOf(e.value), "warnings must not be negative")
			} else {
				x.Warnings = &n
			}
		}
	}
	if e, ok := v.get("events"); ok {
		x.CheckEvents = true
		nodes, _ := d.list(e, `"events"`, false)
		for _, n := range nodes {
			if ev := d.eventExpectation(n); ev != nil {
				x.Events = append(x.Events, ev)
			}
		}
		if x.DeadLetter.Want && len(nodes) > 0 {
			d.errorf(e.pos, "a dead-lettered message produces no events: remove events or dead_letter")
		}
	}
	return x
}

func (d *decoder) eventExpectation(n ast.Node) *EventExpectation {
	start := posOf(d.resolveQuiet(n))
	ev := &EventExpectation{Want: map[string]any{}, Line: start.line, Column: start.col}
	v, ok := d.object(n, eventObject, "")
	if !ok {
		return nil
	}
	for _, f := range eventObject.fields {
		e, ok := v.get(f.name)
		if !ok {
			continue
		}
		switch f.name {
		case "payload":
			if val, ok := d.toAny(e.value); ok {
				ev.Want[f.name] = val
			}
		case "occurred_at":
			s, p, ok := d.text(e, `"occurred_at"`)
			if !ok {
				continue
			}
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				d.errorf(p, "occurred_at %q must be an RFC 3339 time with its offset, such as 2026-11-26T11:55:00Z", s)
				continue
			}
			ev.Want[f.name] = t
		default:
			s, p, ok := d.text(e, fmt.Sprintf("%q", f.name))
			if !ok {
				continue
			}
			switch f.name {
			case "type":
				if !eventTypeLike(s) {
					d.errorf(p, "event type %q must be lower-case words joined by dots, such as patient.admitted", s)
					continue
				}
			case "route":
				if !validName(s) {
					d.errorf(p, "route name %q must be made of lower-case letters, digits, _ and -", s)
					continue
				}
				ev.routePos = p
			}
			ev.Want[f.name] = s
		}
	}
	return ev
}

func eventTypeLike(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return false
	}
	for _, p := range parts {
		if p == "" {
			return false
		}
		for i := 0; i < len(p); i++ {
			if c := p[i]; !(c >= 'a' && c <= 'z' || c == '_' || c >= '0' && c <= '9') {
				return false
			}
		}
	}
	return true
}

// toAny converts a YAML value to the JSON-like values SubsetMatch compares:
// map[string]any, []any, string, json.Number, bool and nil. Numbers keep
// their written digits.
func (d *decoder) toAny(n ast.Node) (any, bool) {
	r := d.resolve(n)
	if r == nil {
		return nil, false
	}
	switch x := r.(type) {
	case *ast.NullNode:
		return nil, true
	case *ast.BoolNode:
		return x.Value, true
	case *ast.StringNode:
		return x.Value, true
	case *ast.LiteralNode:
		s, _ := scalarText(x)
		return s, true
	case *ast.IntegerNode:
		text := x.GetToken().Value
		if _, err := decimal.NewFromString(text); err == nil {
			return json.Number(text), true
		}
		if b, ok := new(big.Int).SetString(text, 0); ok {
			return json.Number(b.String()), true
		}
		d.errorf(posOf(r), "number %s cannot be read", text)
		return nil, false
	case *ast.FloatNode:
		text := x.GetToken().Value
		if _, err := decimal.NewFromString(text); err == nil {
			return json.Number(text), true
		}
		d.errorf(posOf(r), "number %s cannot be read", text)
		return nil, false
	case *ast.InfinityNode, *ast.NanNode:
		d.errorf(posOf(r), "%s is not a number an event can hold", x.GetToken().Value)
		return nil, false
	case *ast.SequenceNode:
		out := make([]any, 0, len(x.Values))
		good := true
		for _, v := range x.Values {
			val, ok := d.toAny(v)
			good = good && ok
			out = append(out, val)
		}
		return out, good
	case *ast.MappingNode, *ast.MappingValueNode:
		entries, ok := d.mapping(r, "payload")
		if !ok {
			return nil, false
		}
		out := make(map[string]any, len(entries))
		good := true
		for _, e := range entries {
			val, ok := d.toAny(e.value)
			good = good && ok
			out[e.key] = val
		}
		return out, good
	}
	d.errorf(posOf(r), "%s cannot be part of a payload", describe(r))
	return nil, false
}

// Validate checks the route names a test file uses against the routes
// under test: each must exist, and routes expected together must be in
// file order, each but the last continuing. Problems come back like
// LoadTests's.
func (f *TestFile) Validate(c *Config) error {
	col := collector{file: f.File}
	names := make([]string, len(c.Routes))
	index := map[string]int{}
	for i, r := range c.Routes {
		names[i] = r.Name
		index[r.Name] = i
	}
	unknown := func(p position, name string) bool {
		if _, ok := index[name]; ok {
			return false
		}
		hint := suggest(name, names)
		if hint == "" {
			hint = " (routes: " + quoteList(names) + ")"
		}
		col.errorf(p, "no route is named %q in %s%s", name, c.File, hint)
		return true
	}
	for _, t := range f.Tests {
		for _, x := range t.Expect {
			prev := -1
			for i, name := range x.Routes {
				if unknown(x.routePos[i], name) {
					prev = -1
					continue
				}
				cur := index[name]
				if prev >= 0 {
					switch p := c.Routes[prev]; {
					case cur <= prev:
						col.errorf(x.routePos[i], "route %q comes before route %q in %s, so it cannot match after it", name, p.Name, c.File)
					case !p.Continue:
						col.errorf(x.routePos[i], "route %q does not continue, so route %q can never match after it", p.Name, name)
					}
				}
				prev = cur
			}
			for _, ev := range x.Events {
				if name, ok := ev.Want["route"].(string); ok {
					unknown(ev.routePos, name)
				}
			}
		}
	}
	return col.err()
}
