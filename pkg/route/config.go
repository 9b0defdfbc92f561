package route

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	// The time zone database is embedded so that a zone named in
	// routes.yaml resolves the same on every host, including minimal
	// container images without /usr/share/zoneinfo; otherwise
	// "router check" could pass in CI and the router fail in production.
	_ "time/tzdata"

	"github.com/goccy/go-yaml/ast"

	"github.com/aortahealth/aorta/pkg/clinical"
)

// SchemaVersion is the routes.yaml schema version this package reads.
const SchemaVersion = 1

// maxRouteName bounds route names, which become metric labels.
const maxRouteName = 64

// Config is a decoded, validated routes.yaml, ready to match messages. It
// is immutable once returned, so any number of goroutines may use it; a
// reload builds a new Config.
type Config struct {
	// File is the name the file was loaded under, for messages.
	File    string
	Version int
	// Timezone is the zone of HL7 times written without an offset, unless
	// a route names its own. Never nil (UTC by default).
	Timezone *time.Location
	// Parameters maps observation codes to clinical parameters. Never nil;
	// empty when the file declares none.
	Parameters *clinical.Table
	// Routes in file order, the order they are evaluated in.
	Routes []*Route
	// Scoring says which values scores are computed from. Defaults apply
	// when the file has no scoring section.
	Scoring Scoring
	// Destinations by name. Never nil; empty when the file declares none.
	Destinations map[string]*Destination
	// Alerts are the alert rules in file order; see AlertsFor.
	Alerts []*AlertRule
	// Feeds are the senders watched for silence, in file order.
	Feeds []*Feed
}

// Route is one entry of routes.yaml: which messages it applies to and what
// is done with them.
type Route struct {
	// Name is unique in the file and made of [a-z0-9_-]; events record it
	// and metrics use it as a label.
	Name        string
	Description string
	// Events names the event mappings applied, in order (Registry.Mappings).
	Events []string
	// Handlers names the handlers that run on the events (Registry.Handlers).
	Handlers []string
	// Parameters are the parameter names the route lists, as written; nil
	// when it lists none, which means every parameter of the file.
	Parameters []string
	// Table is the parameter table the route's observation mapping uses:
	// the file's whole table, or only the parameters the route lists.
	// Never nil.
	Table *clinical.Table
	// OnInvalid says what happens to a message with an invalid observation.
	OnInvalid InvalidPolicy
	// Preliminary is true when preliminary results (OBX-11 = P) are
	// mapped and scored too.
	Preliminary bool
	// Continue is true when evaluation goes on to the next routes after
	// this one matches.
	Continue bool
	// Timezone is the zone of HL7 times without an offset for messages on
	// this route: the route's own, else the file's. Never nil.
	Timezone *time.Location
	// Line and Column locate the route in the file, for messages such as
	// "routes.yaml:40:5: route adt: ...".
	Line, Column int

	match matcher
}

// InvalidPolicy says what happens to a message when one of its
// observations cannot be mapped: a numeric parameter whose OBX-5 is not a
// number, or a unit its table does not list.
type InvalidPolicy string

const (
	// DeadLetter sets the whole message aside, unprocessed, for an analyst
	// to look at. The default: a wrong unit must never be scored.
	DeadLetter InvalidPolicy = "dead_letter"
	// Skip drops the invalid observation with a warning and maps the rest.
	Skip InvalidPolicy = "skip"
)

var invalidPolicies = []string{string(DeadLetter), string(Skip)}

// Registry names the event mappings, handlers and scores the caller
// implements, so that an unknown name in routes.yaml stops start-up
// instead of silently doing nothing. pkg/route never imports the
// implementations.
type Registry struct {
	// Mappings are the event mappings a route's events may name.
	Mappings []string
	// Handlers are what a route's handlers may name. The scores are
	// handlers too: handlers: [news2] computes NEWS2 for the patients the
	// route's observations touch.
	Handlers []string
	// Scores are the scores an alert rule may read (news2, qsofa, sirs).
	Scores []string
}

// ParseOptions change how a routes file is loaded.
type ParseOptions struct {
	// SkipSecrets leaves webhook keys unread (Webhook.Secret empty): an
	// unset environment variable or a missing key file is then no error.
	// For linting (router check) on a machine without the secrets; never
	// for running.
	SkipSecrets bool
	// LookupEnv reads an environment variable; nil means os.LookupEnv.
	LookupEnv func(name string) (string, bool)
}

var osLookupEnv = os.LookupEnv

// Load reads and parses a routes file. Problems in the file come back as
// *Error or Errors, each with the file name as given, line and column.
// Webhook keys are read from the environment and files named, and one
// that is missing is an error: see LoadWith to lint without them.
func Load(path string, reg Registry) (*Config, error) {
	return LoadWith(path, reg, ParseOptions{})
}

// LoadWith is Load with options.
func LoadWith(path string, reg Registry, opts ParseOptions) (*Config, error) {
	data, err := readLimited(path, maxRoutesFileSize)
	if err != nil {
		return nil, err
	}
	return ParseWith(path, data, reg, opts)
}

// readLimited reads a whole file, refusing one larger than limit.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, &Error{File: path, Reason: fmt.Sprintf("file is larger than the %d bytes allowed", limit)}
	}
	return data, nil
}

// Parse decodes a routes file. file names it in messages. Every problem
// found is reported, sorted by position: one as an *Error, several as
// Errors. Parse never panics, whatever data holds.
func Parse(file string, data []byte, reg Registry) (*Config, error) {
	return ParseWith(file, data, reg, ParseOptions{})
}

// ParseWith is Parse with options. A relative secret_file is read from
// the directory of file.
func ParseWith(file string, data []byte, reg Registry, opts ParseOptions) (*Config, error) {
	d := newDecoder(file)
	d.opts = opts
	root := d.document(data, maxRoutesFileSize)
	if root == nil {
		return nil, d.err()
	}
	c := d.config(root, reg)
	if err := d.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// Route returns the route with this name, or nil.
func (c *Config) Route(name string) *Route {
	for _, r := range c.Routes {
		if r.Name == name {
			return r
		}
	}
	return nil
}

func (d *decoder) config(root ast.Node, reg Registry) *Config {
	c := &Config{File: d.file, Timezone: time.UTC, Scoring: defaultScoring(), Destinations: map[string]*Destination{}}
	v, ok := d.object(root, fileObject, "")
	if !ok {
		return c
	}
	if e, ok := v.get("version"); ok {
		if n, ok := d.integer(e, `"version"`); ok {
			if n != SchemaVersion {
				d.errorf(posOf(e.value), "version %d is not supported: this router reads version %d", n, SchemaVersion)
			}
			c.Version = n
		}
	}
	if e, ok := v.get("timezone"); ok {
		if loc, ok := d.timezone(e); ok {
			c.Timezone = loc
		}
	}
	var paramNames []string
	if e, ok := v.get("parameters"); ok {
		c.Parameters, paramNames = d.parameters(e)
	}
	if c.Parameters == nil {
		c.Parameters, _ = clinical.NewTable(nil)
	}
	if e, ok := v.get("routes"); ok {
		c.Routes = d.routes(e, c, reg, paramNames)
	}
	if e, ok := v.get("scoring"); ok {
		d.scoring(e, c, paramNames)
	}
	c.Scoring.resolveFreshness(paramNames)
	var destinations []entry
	if e, ok := v.get("destinations"); ok {
		c.Destinations, destinations = d.destinations(e)
	}
	used := map[string]bool{}
	alertsRead := true
	if e, ok := v.get("alerts"); ok {
		c.Alerts, alertsRead = d.alerts(e, c, reg, used)
	}
	if e, ok := v.get("feeds"); ok {
		var feedsRead bool
		c.Feeds, feedsRead = d.feeds(e, c, used)
		alertsRead = alertsRead && feedsRead
	}
	if alertsRead {
		for _, de := range destinations {
			if !used[de.key] {
				d.errorf(de.pos, "destination %q is not used by any alert rule", de.key)
			}
		}
	}
	return c
}

// timezone reads an IANA zone name.
func (d *decoder) timezone(e entry) (*time.Location, bool) {
	s, p, ok := d.text(e, `"timezone"`)
	if !ok {
		return nil, false
	}
	if s == "" {
		d.errorf(p, "timezone is empty: name a zone such as Europe/London, or leave the key out for UTC")
		return nil, false
	}
	if strings.EqualFold(s, "local") {
		d.errorf(p, "timezone %q would depend on the host's settings: name the zone, such as Europe/London", s)
		return nil, false
	}
	loc, err := time.LoadLocation(s)
	if err != nil {
		switch {
		case strings.EqualFold(s, "UTC"):
			d.errorf(p, "unknown time zone %q (did you mean \"UTC\"?)", s)
		case strings.ContainsAny(s, "+-:") && strings.IndexFunc(s, func(r rune) bool { return r >= '0' && r <= '9' }) >= 0 && !strings.Contains(s, "/"):
			d.errorf(p, "time zone %q is an offset, not a zone: name the zone, such as Europe/London, so daylight saving time is applied", s)
		default:
			d.errorf(p, "unknown time zone %q: use an IANA zone name such as Europe/London or UTC", s)
		}
		return nil, false
	}
	return loc, true
}

func (d *decoder) routes(e entry, c *Config, reg Registry, params []string) []*Route {
	nodes, ok := d.list(e, `"routes"`, false)
	if !ok {
		return nil
	}
	var routes []*Route
	names := map[string]position{}
	var catchAll *Route
	warnedUnreachable := false
	for _, n := range nodes {
		r := d.route(n, c, reg, params, names)
		if r == nil {
			continue
		}
		if catchAll != nil && !warnedUnreachable {
			warnedUnreachable = true
			d.errorf(position{line: r.Line, col: r.Column}, "route %q is never evaluated: route %q (%s:%d:%d) matches every message and does not continue", r.Name, catchAll.Name, d.file, catchAll.Line, catchAll.Column)
		}
		if r.match.all && !r.Continue && catchAll == nil {
			catchAll = r
		}
		routes = append(routes, r)
	}
	return routes
}

func (d *decoder) route(n ast.Node, c *Config, reg Registry, params []string, names map[string]position) *Route {
	start := posOf(d.resolveQuiet(n))
	r := &Route{OnInvalid: DeadLetter, Timezone: c.Timezone, Line: start.line, Column: start.col}
	v, ok := d.object(n, routeObject, "")
	if !ok {
		return nil
	}
	label := v.label
	if e, ok := v.get("name"); ok {
		r.Name = d.name(e, "route name", names, "is already used")
	}
	if e, ok := v.get("description"); ok {
		r.Description, _, _ = d.text(e, `"description"`)
	}
	if e, ok := v.get("match"); ok {
		r.match = d.matcher(e, label)
	}
	if e, ok := v.get("events"); ok {
		r.Events = d.registered(e, `"events"`, "event mapping", reg.Mappings)
	}
	if e, ok := v.get("handlers"); ok {
		r.Handlers = d.registered(e, `"handlers"`, "handler", reg.Handlers)
	}
	r.Table = c.Parameters
	if e, ok := v.get("parameters"); ok {
		r.Parameters = d.registered(e, `"parameters"`, "parameter", params)
		if r.Parameters == nil {
			// Written but empty: no parameter, rather than all of them.
			r.Parameters = []string{}
		}
		subset := make([]*clinical.Parameter, 0, len(r.Parameters))
		for _, name := range r.Parameters {
			if p, ok := c.Parameters.Parameter(name); ok {
				subset = append(subset, p)
			}
		}
		// A subset of a valid table is valid.
		if t, err := clinical.NewTable(subset); err == nil {
			r.Table = t
		}
	}
	if e, ok := v.get("on_invalid"); ok {
		if s, p, ok := d.text(e, `"on_invalid"`); ok {
			if containsString(invalidPolicies, s) {
				r.OnInvalid = InvalidPolicy(s)
			} else {
				d.errorf(p, "on_invalid must be dead_letter or skip, not %q%s", s, suggest(s, invalidPolicies))
			}
		}
	}
	if e, ok := v.get("preliminary"); ok {
		r.Preliminary, _ = d.boolean(e, `"preliminary"`)
	}
	if e, ok := v.get("continue"); ok {
		r.Continue, _ = d.boolean(e, `"continue"`)
	}
	if e, ok := v.get("timezone"); ok {
		if loc, ok := d.timezone(e); ok {
			r.Timezone = loc
		}
	}
	return r
}

func validName(s string) bool {
	if s == "" || len(s) > maxRouteName {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// registered reads a list of names that must each be one of known.
func (d *decoder) registered(e entry, what, kind string, known []string) []string {
	items, _ := d.textList(e, what, true)
	var out []string
	seen := map[string]bool{}
	for _, it := range items {
		switch {
		case seen[it.text]:
			d.errorf(it.pos, "%s %q is listed twice", kind, it.text)
		case !containsString(known, it.text):
			hint := suggest(it.text, known)
			if hint == "" {
				hint = " (known: " + quoteList(known) + ")"
			}
			d.errorf(it.pos, "unknown %s %q%s", kind, it.text, hint)
		default:
			seen[it.text] = true
			out = append(out, it.text)
		}
	}
	return out
}
