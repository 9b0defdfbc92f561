package route

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"

	"github.com/aortahealth/aorta/pkg/clinical"
)

// Defaults of the scoring and alerting keys.
const (
	DefaultVitalsFreshness = time.Hour
	DefaultLabsFreshness   = 24 * time.Hour
	DefaultGCSThreshold    = 15
	DefaultMaxAttempts     = 10
	DefaultBackoff         = time.Second
	DefaultMaxBackoff      = 10 * time.Minute
	DefaultWebhookTimeout  = 10 * time.Second
)

// DefaultStatuses are the OBX-11 result statuses scores use unless
// scoring.statuses says otherwise: final, corrected and not yet verified
// (which bedside devices send).
var DefaultStatuses = []string{"F", "C", "R"}

// LabParameters are the parameters whose freshness is scoring.freshness.labs
// unless overridden; every other parameter is a vital sign.
var LabParameters = []string{clinical.WBC, clinical.Bands, clinical.Lactate, clinical.Creatinine, clinical.PaCO2}

// Bounds of the durations and numbers of the scoring and alerting keys.
// They catch slips (24m for 24h, 10 attempts written 1000) rather than
// encode clinical policy.
const (
	minFreshness     = time.Minute
	maxFreshness     = 7 * 24 * time.Hour
	minRenotify      = time.Minute
	maxRenotify      = 7 * 24 * time.Hour
	minTimeout       = time.Second
	maxTimeout       = 5 * time.Minute
	minBackoff       = 100 * time.Millisecond
	maxBackoffFirst  = time.Hour
	maxBackoffCap    = 24 * time.Hour
	maxMaxAttempts   = 100
	maxChannelLength = 63 // PostgreSQL's NAMEDATALEN - 1
)

// Scoring is how scores pick the values they are computed from.
type Scoring struct {
	// Vitals and Labs are the default freshness windows of vital signs and
	// of LabParameters: the oldest a value may be, before the score's
	// clinical time, to count.
	Vitals, Labs time.Duration
	// Freshness is the window of every parameter the file declares (but
	// the SpO2 scale parameter): its override, else Vitals or Labs. Never
	// nil. FreshnessOf also answers for parameters not declared.
	Freshness map[string]time.Duration
	// Statuses are the OBX-11 statuses of results a score may use, in the
	// order written: F and C always, R and P as configured.
	Statuses []string
	// GCSThreshold is qSOFA's: altered mentation when GCS < GCSThreshold.
	GCSThreshold int
	// SpO2ScaleParameter is the coded parameter (answers 1 and 2) whose
	// observations set a patient's NEWS2 SpO2 scale; "" when none.
	SpO2ScaleParameter string
}

// FreshnessOf returns the freshness window of a parameter: its override,
// else the labs window for LabParameters and the vitals window for any
// other. It returns 0 for the SpO2 scale parameter, which is no reading
// that ages but a clinician's decision that holds until it is changed.
func (s Scoring) FreshnessOf(parameter string) time.Duration {
	if parameter != "" && parameter == s.SpO2ScaleParameter {
		return 0
	}
	if d, ok := s.Freshness[parameter]; ok {
		return d
	}
	if slices.Contains(LabParameters, parameter) {
		return s.Labs
	}
	return s.Vitals
}

// UsesStatus reports whether a score may use a result with this OBX-11
// status.
func (s Scoring) UsesStatus(status string) bool { return slices.Contains(s.Statuses, status) }

func defaultScoring() Scoring {
	return Scoring{
		Vitals:       DefaultVitalsFreshness,
		Labs:         DefaultLabsFreshness,
		Freshness:    map[string]time.Duration{},
		Statuses:     slices.Clone(DefaultStatuses),
		GCSThreshold: DefaultGCSThreshold,
	}
}

// Kinds of destination.
const (
	KindWebhook = "webhook"
	KindNotify  = "notify"
	KindLog     = "log"
)

var destinationKinds = []string{KindWebhook, KindNotify, KindLog}

// Destination is where alerts are delivered.
type Destination struct {
	// Name is the key under destinations, as alert rules name it.
	Name string
	// Kind is KindWebhook, KindNotify or KindLog.
	Kind string
	// Webhook is set for KindWebhook.
	Webhook *Webhook
	// Channel is the PostgreSQL NOTIFY channel, for KindNotify.
	Channel string
	// MaxAttempts bounds the attempts at one delivery; after the last
	// failure the delivery is dead.
	MaxAttempts int
	// Backoff is the delay before the first retry, doubled (with jitter)
	// before each next one and capped by MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// Line and Column locate the destination's name in the file.
	Line, Column int
}

// AlertRule raises alerts from one score.
type AlertRule struct {
	// Name is unique among the rules and made of [a-z0-9_-].
	Name string
	// Score is the score the rule reads (Registry.Scores).
	Score string
	// Levels, most severe first; an alert's level is the first that holds.
	Levels []AlertLevel
	// RenotifyAfter is how long after the last notification an unchanged
	// open alert is notified again; 0 means never. Escalations always
	// notify.
	RenotifyAfter time.Duration
	// Destinations receive the rule's alerts.
	Destinations []*Destination
	// Line and Column locate the rule in the file.
	Line, Column int
}

// AlertLevel is one level of a rule.
type AlertLevel struct {
	// Severity names the level, as written (urgent, emergency, ...).
	Severity string
	// Rank orders the levels: len(Levels) for the first (most severe),
	// down to 1 for the last. An alert escalates when its rank rises.
	Rank int
	// When is the condition for this level.
	When Condition
}

// LevelFor returns the first level of the rule that holds for a score;
// false when none does, which resolves an open alert.
func (r *AlertRule) LevelFor(f ScoreFacts) (AlertLevel, bool) {
	for _, l := range r.Levels {
		if l.When.Holds(f) {
			return l, true
		}
	}
	return AlertLevel{}, false
}

// AlertRule returns the alert rule named name, or nil.
func (c *Config) AlertRule(name string) *AlertRule {
	for _, r := range c.Alerts {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// AlertsFor returns the rules that read a score, in file order.
func (c *Config) AlertsFor(score string) []*AlertRule {
	var out []*AlertRule
	for _, r := range c.Alerts {
		if r.Score == score {
			out = append(out, r)
		}
	}
	return out
}

// scoring decodes the scoring section into c.Scoring.
func (d *decoder) scoring(e entry, c *Config, params []string) {
	if _, empty := d.resolveQuiet(e.value).(*ast.NullNode); empty {
		return
	}
	s := &c.Scoring
	v, ok := d.object(e.value, scoringObject, "scoring")
	if !ok {
		return
	}
	overrides := map[string]position{}
	if fe, ok := v.get("freshness"); ok {
		d.freshness(fe, s, params, overrides)
	}
	if se, ok := v.get("statuses"); ok {
		d.statuses(se, s)
	}
	if qe, ok := v.get("qsofa"); ok {
		if qv, ok := d.object(qe.value, qsofaObject, "qsofa"); ok {
			if ge, ok := qv.get("gcs_threshold"); ok {
				if n, ok := d.integer(ge, `"gcs_threshold"`); ok {
					switch {
					case n == 3:
						d.errorf(posOf(ge.value), "gcs_threshold 3 would never count altered mentation: GCS is never below 3 (write 15, the default, for any GCS below 15)")
					case n < 4 || n > 15:
						d.errorf(posOf(ge.value), "gcs_threshold must be from 4 to 15, not %d: altered mentation is a GCS below it, and GCS runs from 3 to 15", n)
					default:
						s.GCSThreshold = n
					}
				}
			}
		}
	}
	if pe, ok := v.get("spo2_scale"); ok {
		d.spo2Scale(pe, c, params)
	}
	if p, ok := overrides[s.SpO2ScaleParameter]; ok && s.SpO2ScaleParameter != "" {
		d.errorf(p, "parameter %q sets the SpO2 scale, a clinician's decision that holds until changed: it has no freshness", s.SpO2ScaleParameter)
		delete(s.Freshness, s.SpO2ScaleParameter)
	}
}

func (d *decoder) freshness(e entry, s *Scoring, params []string, overrides map[string]position) {
	v, ok := d.object(e.value, freshnessObject, "freshness")
	if !ok {
		return
	}
	if ve, ok := v.get("vitals"); ok {
		if dur, _, ok := d.duration(ve, `"vitals"`, minFreshness, maxFreshness, false); ok {
			s.Vitals = dur
		}
	}
	if le, ok := v.get("labs"); ok {
		if dur, _, ok := d.duration(le, `"labs"`, minFreshness, maxFreshness, false); ok {
			s.Labs = dur
		}
	}
	pe, ok := v.get("parameters")
	if !ok {
		return
	}
	if _, empty := d.resolveQuiet(pe.value).(*ast.NullNode); empty {
		return
	}
	entries, ok := d.mapping(pe.value, "freshness of parameters")
	if !ok {
		return
	}
	for _, fe := range entries {
		if !slices.Contains(params, fe.key) {
			hint := suggest(fe.key, params)
			if hint == "" {
				hint = " (known: " + quoteList(params) + ")"
			}
			d.errorf(fe.pos, "unknown parameter %q%s", fe.key, hint)
			continue
		}
		if dur, _, ok := d.duration(fe, fmt.Sprintf("freshness of %q", fe.key), minFreshness, maxFreshness, false); ok {
			s.Freshness[fe.key] = dur
			overrides[fe.key] = fe.pos
		}
	}
}

// statusReasons says why the OBX-11 statuses a score never uses are
// refused (clinical reference, "Observation status and time").
var statusReasons = map[string]string{
	"D": "OBX-11 D deletes an earlier result: it is never scored",
	"W": "OBX-11 W marks a result as posted in error: it is never scored",
	"X": "OBX-11 X means the result could not be obtained (devices also mark grouping rows with it): it is never scored",
}

var scorableStatuses = []string{"F", "C", "R", "P"}

func (d *decoder) statuses(e entry, s *Scoring) {
	items, _ := d.textList(e, `"statuses"`, true)
	if isEmptyList(d.resolveQuiet(e.value)) {
		d.errorf(e.pos, "statuses lists none: no score could use any result (the default is F, C, R)")
		return
	}
	var out []string
	good := true
	for _, it := range items {
		code := strings.TrimSpace(it.text)
		switch {
		case slices.Contains(out, code):
			d.errorf(it.pos, "status %q is listed twice", code)
		case slices.Contains(scorableStatuses, code):
			out = append(out, code)
		case statusReasons[strings.ToUpper(code)] != "":
			d.errorf(it.pos, "%s", statusReasons[strings.ToUpper(code)])
			good = false
		default:
			hint := ""
			if up := strings.ToUpper(code); slices.Contains(scorableStatuses, up) {
				hint = fmt.Sprintf(" (did you mean %q?)", up)
			}
			d.errorf(it.pos, "OBX-11 status %q is not one a score may use: choose from F (final), C (corrected), R (not yet verified), P (preliminary)%s", code, hint)
			good = false
		}
	}
	if good && len(items) == len(out) {
		if !slices.Contains(out, "F") {
			d.errorf(e.pos, "statuses must include F: final results are always scored")
		}
		if !slices.Contains(out, "C") {
			d.errorf(e.pos, "statuses must include C: a correction replaces the result it corrects, which would otherwise go on counting")
		}
	}
	s.Statuses = out
}

func (d *decoder) spo2Scale(e entry, c *Config, params []string) {
	name, p, ok := d.text(e, `"spo2_scale"`)
	if !ok {
		return
	}
	param, declared := c.Parameters.Parameter(name)
	if !declared {
		hint := suggest(name, params)
		if hint == "" {
			hint = " (known: " + quoteList(params) + ")"
		}
		d.errorf(p, "unknown parameter %q%s: spo2_scale names a coded parameter declared under parameters", name, hint)
		return
	}
	if param.Kind != clinical.Coded {
		d.errorf(p, "parameter %q is numeric: the SpO2 scale is charted as a coded answer, 1 or 2 (type: coded, answers: {\"1\": [...], \"2\": [...]})", name)
		return
	}
	var canon []string
	for _, v := range param.Answers {
		if !slices.Contains(canon, v) {
			canon = append(canon, v)
		}
	}
	slices.Sort(canon)
	if !slices.Equal(canon, []string{"1", "2"}) {
		d.errorf(p, "the answers of parameter %q must be 1 and 2, the NEWS2 SpO2 scales, not %s", name, quoteList(canon))
		return
	}
	c.Scoring.SpO2ScaleParameter = name
}

// resolveFreshness gives every declared parameter its window.
func (s *Scoring) resolveFreshness(params []string) {
	for _, p := range params {
		if p == s.SpO2ScaleParameter {
			continue
		}
		if _, ok := s.Freshness[p]; ok {
			continue
		}
		if slices.Contains(LabParameters, p) {
			s.Freshness[p] = s.Labs
		} else {
			s.Freshness[p] = s.Vitals
		}
	}
}

// destinations decodes the destinations section; it returns the entries
// too, for their positions.
func (d *decoder) destinations(e entry) (map[string]*Destination, []entry) {
	out := map[string]*Destination{}
	if _, empty := d.resolveQuiet(e.value).(*ast.NullNode); empty {
		return out, nil
	}
	entries, ok := d.mapping(e.value, `"destinations"`)
	if !ok {
		return out, nil
	}
	for _, de := range entries {
		if !validName(de.key) {
			d.errorf(de.pos, "destination name %q must be made of lower-case letters, digits, _ and - (at most %d)", de.key, maxRouteName)
		}
		out[de.key] = d.destination(de)
	}
	return out, entries
}

func (d *decoder) destination(de entry) *Destination {
	label := fmt.Sprintf("destination %q", de.key)
	dst := &Destination{
		Name: de.key, MaxAttempts: DefaultMaxAttempts, Backoff: DefaultBackoff, MaxBackoff: DefaultMaxBackoff,
		Line: de.pos.line, Column: de.pos.col,
	}
	v, ok := d.object(de.value, destinationObject, label)
	if !ok {
		return dst
	}
	var kinds []entry
	for _, k := range destinationKinds {
		if ke, ok := v.get(k); ok {
			kinds = append(kinds, ke)
		}
	}
	slices.SortFunc(kinds, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.pos.line, b.pos.line), cmp.Compare(a.pos.col, b.pos.col))
	})
	switch len(kinds) {
	case 0:
		d.errorf(de.pos, "%s says nowhere to deliver: give one of webhook, notify or log", label)
	case 1:
	default:
		d.errorf(kinds[1].pos, "%s has both %s and %s: give one per destination, and declare another destination for the other", label, kinds[0].key, kinds[1].key)
	}
	if len(kinds) > 0 {
		dst.Kind = kinds[0].key
	}
	for _, ke := range kinds {
		switch ke.key {
		case KindWebhook:
			w := d.webhook(ke, label)
			if dst.Kind == KindWebhook {
				dst.Webhook = w
			}
		case KindNotify:
			if s, p, ok := d.text(ke, `"notify"`); ok {
				if reason := checkChannel(s); reason != "" {
					d.errorf(p, "%s", reason)
				} else if dst.Kind == KindNotify {
					dst.Channel = s
				}
			}
		case KindLog:
			if b, ok := d.boolean(ke, `"log"`); ok && !b {
				d.errorf(posOf(d.resolveQuiet(ke.value)), "log: false delivers nothing: write log: true, or remove the destination")
			}
		}
	}
	for _, k := range []string{"max_attempts", "backoff", "max_backoff"} {
		if ke, ok := v.get(k); ok && dst.Kind == KindLog {
			d.errorf(ke.pos, "%q does not apply to a log destination, which is written at once and never retried", k)
		}
	}
	if dst.Kind == KindLog {
		return dst
	}
	if ke, ok := v.get("max_attempts"); ok {
		if n, ok := d.integer(ke, `"max_attempts"`); ok {
			if n < 1 || n > maxMaxAttempts {
				d.errorf(posOf(d.resolveQuiet(ke.value)), "max_attempts must be from 1 to %d, not %d", maxMaxAttempts, n)
			} else {
				dst.MaxAttempts = n
			}
		}
	}
	var backoffAt position
	be, hasBackoff := v.get("backoff")
	if hasBackoff {
		if dur, p, ok := d.duration(be, `"backoff"`, minBackoff, maxBackoffFirst, false); ok {
			dst.Backoff, backoffAt = dur, p
		} else {
			hasBackoff = false
		}
	}
	me, hasMax := v.get("max_backoff")
	if hasMax {
		if dur, p, ok := d.duration(me, `"max_backoff"`, time.Second, maxBackoffCap, false); ok {
			dst.MaxBackoff = dur
			if !hasBackoff {
				backoffAt = p
			}
		} else {
			hasMax = false
		}
	}
	if (hasBackoff || hasMax) && dst.Backoff > dst.MaxBackoff {
		d.errorf(backoffAt, "backoff %s is longer than max_backoff %s", fmtDuration(dst.Backoff), fmtDuration(dst.MaxBackoff))
	}
	return dst
}

// checkChannel returns why a NOTIFY channel name is not a plain
// PostgreSQL identifier, or "".
func checkChannel(s string) string {
	ok := s != "" && len(s) <= maxChannelLength && (s[0] >= 'a' && s[0] <= 'z' || s[0] == '_')
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_'
	}
	if ok {
		return ""
	}
	hint := ""
	if low := strings.ToLower(s); low != s && checkChannel(low) == "" {
		hint = fmt.Sprintf(" (did you mean %q?)", low)
	}
	return fmt.Sprintf("notify channel %s must be a PostgreSQL identifier: lower-case letters, digits and _, starting with a letter or _, at most %d%s", shortQuote(s), maxChannelLength, hint)
}

func (d *decoder) webhook(e entry, label string) *Webhook {
	w := &Webhook{Timeout: DefaultWebhookTimeout}
	v, ok := d.object(e.value, webhookObject, "webhook of "+label)
	if !ok {
		return w
	}
	if ue, ok := v.get("url"); ok {
		if s, p, ok := d.text(ue, `"url"`); ok {
			if reason := checkURL(s); reason != "" {
				d.errorf(p, "%s", reason)
			} else {
				w.URL = s
			}
		}
	}
	env, hasEnv := v.get("secret_env")
	file, hasFile := v.get("secret_file")
	switch {
	case hasEnv && hasFile:
		second := file
		if env.pos.line > file.pos.line || env.pos.line == file.pos.line && env.pos.col > file.pos.col {
			second = env
		}
		d.errorf(second.pos, "give secret_env or secret_file, not both")
	case !hasEnv && !hasFile:
		d.errorf(e.pos, "the webhook of %s needs an HMAC key: name the environment variable that holds it with secret_env, or the file with secret_file", label)
	}
	if hasEnv {
		d.secretEnv(env, w)
	}
	if hasFile && !hasEnv {
		d.secretFile(file, w)
	}
	if te, ok := v.get("timeout"); ok {
		if dur, _, ok := d.duration(te, `"timeout"`, minTimeout, maxTimeout, false); ok {
			w.Timeout = dur
		}
	}
	return w
}

func (d *decoder) secretEnv(e entry, w *Webhook) {
	name, p, ok := d.text(e, `"secret_env"`)
	if !ok {
		return
	}
	if !envNameOK(name) {
		// Not echoed: it may be the key itself, pasted by mistake.
		d.errorf(p, "secret_env must name an environment variable (upper-case letters, digits and _, such as AORTA_RRT_WEBHOOK_SECRET); the value is not shown in case it is the key itself")
		return
	}
	w.SecretEnv = name
	if d.opts.SkipSecrets {
		return
	}
	lookup := d.opts.LookupEnv
	if lookup == nil {
		lookup = osLookupEnv
	}
	val, set := lookup(name)
	switch {
	case !set:
		d.errorf(p, "environment variable %s is not set: it must hold this webhook's HMAC key", name)
	case val == "":
		d.errorf(p, "environment variable %s is empty: it must hold this webhook's HMAC key", name)
	case len(val) < minSecretLen:
		d.errorf(p, "environment variable %s holds a key of %d bytes: an HMAC key needs at least %d", name, len(val), minSecretLen)
	default:
		w.Secret = Secret(val)
	}
}

func (d *decoder) secretFile(e entry, w *Webhook) {
	name, p, ok := d.text(e, `"secret_file"`)
	if !ok {
		return
	}
	if strings.TrimSpace(name) == "" {
		d.errorf(p, "secret_file is empty: name the file that holds the webhook's HMAC key")
		return
	}
	w.SecretFile = resolveBeside(d.file, name)
	if d.opts.SkipSecrets {
		return
	}
	// The path is not echoed: the position says which file is meant, and
	// the value may be the key itself, pasted by mistake.
	data, err := readSecretFile(w.SecretFile)
	switch {
	case err != nil:
		d.errorf(p, "secret_file cannot be read: %v", err)
	case len(data) == 0:
		d.errorf(p, "secret_file is empty: it must hold this webhook's HMAC key")
	case len(data) < minSecretLen:
		d.errorf(p, "secret_file holds a key of %d bytes: an HMAC key needs at least %d", len(data), minSecretLen)
	default:
		w.Secret = Secret(data)
	}
}

// checkURL returns why s is not a webhook URL, or "".
func checkURL(s string) string {
	const want = "url must be an absolute http or https URL, such as https://rrt.example.org/hooks/aorta"
	if strings.TrimSpace(s) == "" {
		return "url is empty: " + strings.TrimPrefix(want, "url ")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return want + ", without spaces"
	}
	u, err := url.Parse(s)
	if err != nil {
		return want
	}
	if u.User != nil {
		// Not echoed: it holds a credential.
		return "url holds user information (user:password@): credentials must not be written in routes.yaml; receivers check the HMAC signature instead"
	}
	// Shown without its query, which some receivers use for a token.
	shown := shortQuote(safeURL(s))
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("%s, not %s", want, shown)
	case u.Hostname() == "":
		return fmt.Sprintf("url %s has no host", shown)
	case u.Port() != "" && (len(u.Port()) > 5 || u.Port() > "65535" && len(u.Port()) == 5 || u.Port() == "0"):
		return fmt.Sprintf("url %s has a port out of range", shown)
	case u.Fragment != "" || strings.HasSuffix(s, "#"):
		return fmt.Sprintf("url %s has a fragment (#...), which is never sent", shown)
	}
	return ""
}

// alerts decodes the alert rules. complete is false when the section, or
// a rule's destinations, could not be read, so that no destination looks
// unused because of a mistake reported already.
func (d *decoder) alerts(e entry, c *Config, reg Registry, used map[string]bool) (rules []*AlertRule, complete bool) {
	nodes, ok := d.list(e, `"alerts"`, false)
	if !ok {
		return nil, false
	}
	names := map[string]position{}
	complete = true
	for _, n := range nodes {
		r, read := d.alert(n, c, reg, names, used)
		if !read {
			// A rule whose destinations could not all be read may have
			// meant any: none is reported unused because of it.
			complete = false
		}
		if r != nil {
			rules = append(rules, r)
		}
	}
	return rules, complete
}

// alert decodes one rule. read is true when its destinations were all
// read and known.
func (d *decoder) alert(n ast.Node, c *Config, reg Registry, names map[string]position, used map[string]bool) (r *AlertRule, read bool) {
	start := posOf(d.resolveQuiet(n))
	r = &AlertRule{Line: start.line, Column: start.col}
	v, ok := d.object(n, alertObject, "")
	if !ok {
		return nil, false
	}
	label := v.label
	if e, ok := v.get("name"); ok {
		r.Name = d.name(e, "alert rule name", names, "is already used")
	}
	// spec stays nil when the score is unknown, so that the levels are
	// checked for their grammar only rather than against a wrong score.
	var spec *scoreSpec
	if e, ok := v.get("score"); ok {
		if s, p, ok := d.text(e, `"score"`); ok {
			switch {
			case !slices.Contains(reg.Scores, s):
				hint := suggest(s, reg.Scores)
				if hint == "" {
					hint = " (known: " + quoteList(reg.Scores) + ")"
				}
				d.errorf(p, "unknown score %q%s", s, hint)
			default:
				r.Score, spec = s, specOf(s)
				if slices.Contains(reg.Handlers, s) && !routesCompute(c.Routes, s) {
					d.errorf(p, "no route computes score %q: add it to the handlers of the routes whose observations feed it", s)
				}
			}
		}
	}
	if e, ok := v.get("levels"); ok {
		r.Levels = d.levels(e, spec, label)
	}
	if e, ok := v.get("renotify_after"); ok {
		if dur, _, ok := d.duration(e, `"renotify_after"`, minRenotify, maxRenotify, true); ok {
			r.RenotifyAfter = dur
		}
	}
	if e, ok := v.get("destinations"); ok {
		if isEmptyList(d.resolveQuiet(e.value)) {
			d.errorf(e.pos, "%s has no destinations: its alerts would reach no one", label)
		}
		r.Destinations, read = d.destinationList(e, `"destinations"`, c, used)
	}
	return r, read
}

// destinationList reads a list of destination names (an alert rule's
// destinations, a feed's notify), marking each one used. An unknown name
// is refused with the closest known one, a name listed twice too.
func (d *decoder) destinationList(e entry, what string, c *Config, used map[string]bool) ([]*Destination, bool) {
	known := make([]string, 0, len(c.Destinations))
	for name := range c.Destinations {
		known = append(known, name)
	}
	slices.Sort(known)
	items, read := d.textList(e, what, true)
	var out []*Destination
	for _, it := range items {
		dst, found := c.Destinations[it.text]
		switch {
		case found && slices.Contains(out, dst):
			d.errorf(it.pos, "destination %q is listed twice", it.text)
		case found:
			out = append(out, dst)
			used[it.text] = true
		default:
			hint := suggest(it.text, known)
			if hint == "" {
				hint = " (known: " + quoteList(known) + ")"
			}
			d.errorf(it.pos, "unknown destination %q%s", it.text, hint)
			read = false
		}
	}
	return out, read
}

func routesCompute(routes []*Route, score string) bool {
	for _, r := range routes {
		if slices.Contains(r.Handlers, score) {
			return true
		}
	}
	return false
}

// levels decodes a rule's levels, most severe first, and checks them
// against every score the rule's score can give.
func (d *decoder) levels(e entry, spec *scoreSpec, label string) []AlertLevel {
	nodes, ok := d.list(e, `"levels"`, false)
	if !ok {
		return nil
	}
	if len(nodes) == 0 {
		d.errorf(e.pos, "%s has no levels: give at least one, such as {severity: urgent, when: total >= 5}", label)
		return nil
	}
	levels := make([]AlertLevel, 0, len(nodes))
	whenAt := make([]position, 0, len(nodes))
	severities := map[string]position{}
	good := true
	for i, n := range nodes {
		l := AlertLevel{Rank: len(nodes) - i}
		v, ok := d.object(n, levelObject, fmt.Sprintf("level %d of %s", i+1, label))
		if !ok {
			good = false
			continue
		}
		if se, ok := v.get("severity"); ok {
			l.Severity = d.name(se, "severity", severities, "is already a level of this rule")
		}
		we, ok := v.get("when")
		if !ok {
			good = false
			continue
		}
		s, p, ok := d.text(we, `"when"`)
		if !ok {
			good = false
			continue
		}
		if strings.ContainsAny(s, "\r\n") {
			d.errorf(p, "a condition is written on one line")
			good = false
			continue
		}
		cond, werr := parseWhen(s, spec)
		if werr != nil {
			d.errorf(within(d.resolveQuiet(we.value), s, werr.off), "when %s: %s", shortQuote(strings.TrimSpace(s)), werr.reason)
			good = false
			continue
		}
		l.When = cond
		levels = append(levels, l)
		whenAt = append(whenAt, p)
	}
	if good && spec != nil && spec.known {
		d.checkLevels(levels, whenAt, spec)
	}
	return levels
}

// checkLevels reports levels that never hold, that hold for every score
// (an alert no patient could leave), and levels that are never reached
// because a level above holds whenever they do: levels written least
// severe first.
func (d *decoder) checkLevels(levels []AlertLevel, at []position, spec *scoreSpec) {
	all := spec.facts()
	for i, l := range levels {
		var holds []ScoreFacts
		for _, f := range all {
			if l.When.Holds(f) {
				holds = append(holds, f)
			}
		}
		if len(holds) == 0 {
			d.errorf(at[i], "level %q never holds: no %s score (total 0 to %d) meets %q", l.Severity, spec.name, spec.maxTotal, l.When.text)
			continue
		}
		if len(holds) == len(all) {
			d.errorf(at[i], "level %q holds for every %s score, so every scored patient would have an open alert: raise its threshold", l.Severity, spec.name)
			continue
		}
		if i == 0 {
			continue
		}
		reached := false
		var shadows []int
		for _, f := range holds {
			first := -1
			for j := range i {
				if levels[j].When.Holds(f) {
					first = j
					break
				}
			}
			if first < 0 {
				reached = true
				break
			}
			if !slices.Contains(shadows, first) {
				shadows = append(shadows, first)
			}
		}
		if reached {
			continue
		}
		if len(shadows) == 1 {
			d.errorf(at[i], "level %q is never reached: level %q above it holds whenever it does (list the most severe level first)", l.Severity, levels[shadows[0]].Severity)
		} else {
			d.errorf(at[i], "level %q is never reached: the levels above it hold whenever it does (list the most severe level first)", l.Severity)
		}
	}
}

// duration reads a Go duration written with its unit (90s, 30m, 4h,
// 1h30m), within [lo, hi]; with zeroOK, 0 is accepted too.
func (d *decoder) duration(e entry, what string, lo, hi time.Duration, zeroOK bool) (time.Duration, position, bool) {
	r := d.resolve(e.value)
	if r == nil {
		return 0, e.pos, false
	}
	p := posOf(r)
	var s string
	switch r.(type) {
	case *ast.NullNode:
		d.errorf(e.pos, "%s has no value", what)
		return 0, e.pos, false
	case *ast.IntegerNode, *ast.FloatNode:
		s, _ = scalarText(r)
		if zeroOK && s == "0" {
			return 0, p, true
		}
		d.errorf(p, "%s needs a unit: write %ss, %sm or %sh", what, s, s, s)
		return 0, p, false
	case *ast.StringNode:
		s, _ = scalarText(r)
	default:
		d.errorf(p, "%s must be a duration such as 30s, 10m or 4h, not %s", what, describe(r))
		return 0, p, false
	}
	s = strings.TrimSpace(s)
	dur, err := time.ParseDuration(s)
	if err != nil || strings.HasPrefix(s, "+") {
		hint := ""
		switch {
		case strings.HasSuffix(s, "d") || strings.HasSuffix(s, "days") || strings.HasSuffix(s, "day"):
			hint = " (write days in hours: 24h, 48h)"
		case strings.ContainsAny(s, " \t"):
			hint = " (without spaces)"
		}
		d.errorf(p, "%s must be a duration such as 30s, 10m or 4h, not %s%s", what, shortQuote(s), hint)
		return 0, p, false
	}
	switch {
	case dur < 0:
		d.errorf(p, "%s must not be negative", what)
		return 0, p, false
	case dur == 0 && zeroOK:
		return 0, p, true
	case dur < lo || dur > hi:
		if zeroOK {
			d.errorf(p, "%s must be 0 (never) or from %s to %s, not %s", what, fmtDuration(lo), fmtDuration(hi), s)
		} else {
			d.errorf(p, "%s must be from %s to %s, not %s", what, fmtDuration(lo), fmtDuration(hi), s)
		}
		return 0, p, false
	}
	return dur, p, true
}

// fmtDuration writes a duration as people do: 1h, 10m, 1h30m, 500ms.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
