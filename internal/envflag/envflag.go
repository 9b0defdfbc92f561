// Package envflag declares command-line flags whose defaults come from
// environment variables, the convention of every Aorta binary: a flag
// wins over its variable, which wins over the built-in default, and the
// help text names the variable.
package envflag

import (
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Set wraps a FlagSet and collects malformed environment values, which
// Parse reports together.
type Set struct {
	*flag.FlagSet
	errs []string
}

// New wraps fs.
func New(fs *flag.FlagSet) *Set { return &Set{FlagSet: fs} }

// lookup treats an empty variable as unset, as shells and unit files often
// leave them that way.
func lookup(name string) (string, bool) {
	v := os.Getenv(name)
	return v, v != ""
}

func usage(text, env string) string { return fmt.Sprintf("%s (env %s)", text, env) }

// String declares a string flag.
func (s *Set) String(p *string, name, env, def, text string) {
	if v, ok := lookup(env); ok {
		def = v
	}
	s.StringVar(p, name, def, usage(text, env))
}

// Int declares an int flag.
func (s *Set) Int(p *int, name, env string, def int, text string) {
	if v, ok := lookup(env); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Sprintf("%s=%q: not an integer", env, v))
		}
		def = n
	}
	s.IntVar(p, name, def, usage(text, env))
}

// Float64 declares a float64 flag.
func (s *Set) Float64(p *float64, name, env string, def float64, text string) {
	if v, ok := lookup(env); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			s.errs = append(s.errs, fmt.Sprintf("%s=%q: not a number", env, v))
		}
		def = f
	}
	s.Float64Var(p, name, def, usage(text, env))
}

// Duration declares a duration flag.
func (s *Set) Duration(p *time.Duration, name, env string, def time.Duration, text string) {
	if v, ok := lookup(env); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Sprintf("%s=%q: not a duration (e.g. 30s, 5m)", env, v))
		}
		def = d
	}
	s.DurationVar(p, name, def, usage(text, env))
}

// Bool declares a bool flag.
func (s *Set) Bool(p *bool, name, env string, def bool, text string) {
	if v, ok := lookup(env); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Sprintf("%s=%q: not a boolean", env, v))
		}
		def = b
	}
	s.BoolVar(p, name, def, usage(text, env))
}

// Parse parses args and reports malformed environment values.
func (s *Set) Parse(args []string) error {
	if err := s.FlagSet.Parse(args); err != nil {
		return err
	}
	if len(s.errs) > 0 {
		return fmt.Errorf("bad environment: %s", strings.Join(s.errs, "; "))
	}
	return nil
}

// ParseLevel reads a log level name.
func ParseLevel(name string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(name)); err != nil {
		return l, fmt.Errorf("log level %q: want debug, info, warn or error", name)
	}
	return l, nil
}

// RedactURL hides the secrets of a PostgreSQL connection string for
// logging. pgx, like libpq, takes a password in three places, and each is
// replaced by xxxxx: the user information of a URL, its password and
// sslpassword query parameters, and the same keys of the keyword/value
// form ("host=db password=..."). What it cannot read safely it does not
// echo at all.
func RedactURL(s string) string {
	if !strings.Contains(s, "://") {
		return secretKeyword.ReplaceAllString(s, "${1}${2}xxxxx")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable)"
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return "(unparseable)"
		}
		redacted := false
		for k := range q {
			if secretParam(k) {
				q[k] = []string{"xxxxx"}
				redacted = true
			}
		}
		if redacted {
			u.RawQuery = q.Encode()
		}
	}
	return u.Redacted()
}

// secretKeyword finds the value of a secret in a keyword/value connection
// string: bare up to the next space, or single-quoted with backslash
// escapes (to the end of the string when the quote is not closed).
var secretKeyword = regexp.MustCompile(`(?i)(\b(?:ssl)?password)(\s*=\s*)('(?:[^'\\]|\\.)*(?:'|$)|\S*)`)

func secretParam(k string) bool {
	k = strings.ToLower(k)
	return k == "password" || k == "sslpassword"
}
