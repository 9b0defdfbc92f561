package route

import (
	"fmt"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/aortahealth/aorta/pkg/hl7"
)

// headerField is an MSH field a route can match on.
type headerField uint8

const (
	hMessageType headerField = iota
	hTriggerEvent
	hSendingApplication
	hSendingFacility
	hReceivingApplication
	hReceivingFacility
	hVersion
	hProcessingID
	numHeaderFields
)

// headerKeys are the match keys of the header fields, in field order.
var headerKeys = [numHeaderFields]string{
	"message_type", "trigger_event",
	"sending_application", "sending_facility",
	"receiving_application", "receiving_facility",
	"version", "processing_id",
}

// criterion is one header key of a match: the field must be one of values.
type criterion struct {
	field  headerField
	values []string
}

func (c *criterion) holds(v string) bool {
	for _, x := range c.values {
		if x == v {
			return true
		}
	}
	return false
}

// matcher is a compiled match: every header criterion and every condition
// must hold, unless all is set.
type matcher struct {
	all    bool
	header []criterion
	where  []*condition
}

// header reads MSH fields on first use, once per message however many
// routes ask.
type header struct {
	msh *hl7.Segment
	got [numHeaderFields]bool
	val [numHeaderFields]string
}

func (h *header) get(f headerField) string {
	if h.got[f] {
		return h.val[f]
	}
	var v string
	if h.msh != nil {
		switch f {
		case hMessageType:
			v = h.msh.Field(9).Component(1).String()
		case hTriggerEvent:
			v = h.msh.Field(9).Component(2).String()
		case hSendingApplication:
			v = hd(h.msh.Field(3))
		case hSendingFacility:
			v = hd(h.msh.Field(4))
		case hReceivingApplication:
			v = hd(h.msh.Field(5))
		case hReceivingFacility:
			v = hd(h.msh.Field(6))
		case hVersion:
			v = h.msh.Field(12).Component(1).String()
		case hProcessingID:
			v = h.msh.Field(11).Component(1).String()
		}
	}
	h.got[f], h.val[f] = true, v
	return v
}

// hd reads a hierarchic designator as hl7.HD.String does: the namespace
// ID, or the universal ID when there is none.
func hd(e hl7.Element) string {
	if v := e.Component(1).String(); v != "" {
		return v
	}
	return e.Component(2).String()
}

// Match returns the routes that apply to m, in file order: evaluation
// stops after the first matching route that does not continue. nil means
// the message is unrouted. Match only reads m, and is safe for concurrent
// use.
func (c *Config) Match(m *hl7.Message) []*Route {
	if c == nil || m == nil {
		return nil
	}
	h := header{msh: m.Segment("MSH", 1)}
	var out []*Route
	for _, r := range c.Routes {
		if r.match.fails(m, &h) < 0 {
			out = append(out, r)
			if !r.Continue {
				break
			}
		}
	}
	return out
}

// Matches reports whether the route's match holds for m, regardless of
// the routes before it.
func (r *Route) Matches(m *hl7.Message) bool {
	if m == nil {
		return false
	}
	h := header{msh: m.Segment("MSH", 1)}
	return r.match.fails(m, &h) < 0
}

// Mismatch explains why the route's match does not hold for m, naming the
// first criterion that fails, or returns "" when it holds. It quotes the
// MSH values it compared (type, event, applications, version, processing
// ID) but never the values of "where" fields, which may be patient data.
func (r *Route) Mismatch(m *hl7.Message) string {
	if m == nil {
		return "no message"
	}
	h := header{msh: m.Segment("MSH", 1)}
	i := r.match.fails(m, &h)
	switch {
	case i < 0:
		return ""
	case i < len(r.match.header):
		c := r.match.header[i]
		return fmt.Sprintf("%s is %q, not %s", headerKeys[c.field], h.get(c.field), strings.Join(c.values, " or "))
	default:
		return fmt.Sprintf("where %q does not hold", r.match.where[i-len(r.match.header)].text)
	}
}

// fails returns the index of the first criterion that does not hold (the
// header ones first, then the conditions), or -1 when all hold.
func (mt *matcher) fails(m *hl7.Message, h *header) int {
	if mt.all {
		return -1
	}
	for i := range mt.header {
		c := &mt.header[i]
		if !c.holds(h.get(c.field)) {
			return i
		}
	}
	for j, c := range mt.where {
		if !c.holds(m) {
			return len(mt.header) + j
		}
	}
	if len(mt.header) == 0 && len(mt.where) == 0 {
		// An empty match is rejected at load; a zero Route matches nothing.
		return 0
	}
	return -1
}

// matcher decodes a route's match.
func (d *decoder) matcher(e entry, label string) matcher {
	var mt matcher
	r := d.resolve(e.value)
	if r == nil {
		return mt
	}
	switch r.(type) {
	case *ast.NullNode:
		d.errorf(e.pos, "empty match in %s: add a criterion, or write \"match: all\" to match every message", label)
		return mt
	case *ast.MappingNode, *ast.MappingValueNode:
	default:
		if s, ok := scalarText(r); ok && s == "all" {
			mt.all = true
			return mt
		}
		d.errorf(posOf(r), "match must be a mapping of criteria, or all, not %s", describe(r))
		return mt
	}
	v, ok := d.object(r, matchObject, "match of "+label)
	if !ok {
		return mt
	}
	given := false
	for f := range numHeaderFields {
		key := headerKeys[f]
		e, ok := v.get(key)
		if !ok {
			continue
		}
		given = true
		items, _ := d.textList(e, fmt.Sprintf("%q", key), true)
		if isEmptyList(d.resolveQuiet(e.value)) {
			d.errorf(e.pos, "%s lists no values, so the route would never match", key)
			continue
		}
		c := criterion{field: f}
		for _, it := range items {
			if reason := checkHeaderValue(f, it.text); reason != "" {
				d.errorf(it.pos, "%s", reason)
				continue
			}
			if c.holds(it.text) {
				d.errorf(it.pos, "%s %q is listed twice", key, it.text)
				continue
			}
			c.values = append(c.values, it.text)
		}
		if len(c.values) > 0 {
			mt.header = append(mt.header, c)
		}
	}
	if e, ok := v.get("where"); ok {
		given = true
		items, _ := d.textList(e, `"where"`, true)
		if isEmptyList(d.resolveQuiet(e.value)) {
			d.errorf(e.pos, "where lists no conditions")
		}
		for _, it := range items {
			if strings.ContainsAny(it.text, "\r\n") {
				d.errorf(it.pos, "a condition is written on one line")
				continue
			}
			c, cerr := parseCondition(it.text)
			if cerr != nil {
				d.errorf(within(it.node, it.text, cerr.off), "condition %s: %s", shortQuote(strings.TrimSpace(it.text)), cerr.reason)
				continue
			}
			mt.where = append(mt.where, c)
		}
	}
	if !given {
		d.errorf(v.at, "empty match in %s: add a criterion, or write \"match: all\" to match every message", label)
	}
	return mt
}

// isEmptyList reports whether n is an empty list or an empty value.
func isEmptyList(n ast.Node) bool {
	switch x := n.(type) {
	case *ast.NullNode:
		return true
	case *ast.SequenceNode:
		return len(x.Values) == 0
	}
	return false
}

// checkHeaderValue returns why v can never be the value of an MSH field,
// or "".
func checkHeaderValue(f headerField, v string) string {
	key := headerKeys[f]
	switch f {
	case hMessageType, hTriggerEvent:
		if !codeLike(v, 3) {
			if up := strings.ToUpper(v); codeLike(up, 3) {
				return fmt.Sprintf("%s %q is written in upper case in HL7 (did you mean %q?)", key, v, up)
			}
			return fmt.Sprintf("%s %q must be three upper-case letters or digits, such as %s", key, v, map[headerField]string{hMessageType: "ADT", hTriggerEvent: "A01"}[f])
		}
	case hVersion:
		if !versionLike(v) {
			return fmt.Sprintf("version %q is not an HL7 v2 version such as 2.5 or 2.5.1", v)
		}
	case hProcessingID:
		switch v {
		case "P", "T", "D":
		default:
			hint := ""
			if up := strings.ToUpper(v); up == "P" || up == "T" || up == "D" {
				hint = fmt.Sprintf(" (did you mean %q?)", up)
			}
			return fmt.Sprintf("processing_id %q must be P (production), T (training) or D (debugging)%s", v, hint)
		}
	default:
		if strings.TrimSpace(v) == "" {
			return key + " is empty"
		}
	}
	return ""
}

func codeLike(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// versionLike accepts "2.x" and dotted refinements such as "2.5.1".
func versionLike(v string) bool {
	parts := strings.Split(v, ".")
	if len(parts) < 2 || parts[0] != "2" {
		return false
	}
	for _, p := range parts {
		if !allDigits(p) || len(p) > 4 {
			return false
		}
	}
	return true
}
