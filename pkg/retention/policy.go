package retention

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aortahealth/aorta/pkg/store"
)

// Day is how an age written "90d" is counted: 24 hours, whatever the
// clocks do in between.
const Day = 24 * time.Hour

// ScoringWindow is the longest freshness window routes.yaml accepts for
// any scoring parameter (pkg/route, maxFreshness: 168h; TestScoringWindow
// holds the two together). Observations go with their messages, so with
// messages kept for R an observation arriving late by up to R minus this
// window is still scored exactly as if nothing had been deleted: every
// value its scores read is younger than R.
const ScoringWindow = 7 * Day

// MinAge is the shortest retention accepted: twice the scoring window, so
// that observations a week late are still scored as before. It also
// catches slips (90m read as minutes, not months).
//
// Observations are not kept a scoring window longer than their messages
// instead: a message would then stay a week past its retention, and every
// hourly pass would walk that week of messages again to keep them.
const MinAge = 2 * ScoringWindow

// Defaults of the router's flags.
const (
	DefaultInterval = time.Hour
	// DefaultBatch rows are read, and at most deleted, per transaction:
	// a message brings its events and observations (a vital-signs ORU some
	// ten of each), so a transaction deletes a few thousand rows and
	// commits in well under a second.
	DefaultBatch = 500
	// MaxBatch bounds a transaction's size and its locks.
	MaxBatch = 10000
)

// Policy is how long each kind of row is kept; zero keeps it forever.
type Policy struct {
	// Messages: raw messages by arrival time (received_at), with
	// everything derived from them.
	Messages time.Duration
	// Events: events by the time the router wrote them (recorded_at).
	// Zero with Messages set: events go with their message. It may not
	// exceed Messages: an event never outlives its raw message.
	Events time.Duration
	// Audit: audit_log rows, and resolved alerts (clinical records,
	// acknowledged by name) by when they last changed, with their
	// deliveries; open alerts are never deleted. Zero keeps them forever;
	// otherwise it must be at least Messages and Events, and those must be
	// set: who viewed or changed a message is kept as long as the message,
	// and an alert as long as the messages behind it.
	Audit time.Duration
}

// ParseAge reads a retention age: a number of days ("90d"), a Go
// duration ("2160h"), or "off", "0" or "" for keep forever.
func ParseAge(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "", "0", "off":
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("age %q: want a whole number of days (90d), a duration (2160h) or off", s)
		}
		if n > int(time.Duration(1<<63-1)/Day) {
			return 0, fmt.Errorf("age %q: too long", s)
		}
		return time.Duration(n) * Day, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("age %q: want a whole number of days (90d), a duration (2160h) or off", s)
	}
	return d, nil
}

// FormatAge writes an age the way ParseAge reads it, in days when whole.
func FormatAge(d time.Duration) string {
	switch {
	case d == 0:
		return "off"
	case d%Day == 0:
		return strconv.FormatInt(int64(d/Day), 10) + "d"
	}
	return d.String()
}

// Enabled reports whether the policy deletes anything.
func (p Policy) Enabled() bool { return p.Messages > 0 || p.Events > 0 || p.Audit > 0 }

// Validate refuses a policy that would delete too soon or in the wrong
// order, naming the flags.
func (p Policy) Validate() error {
	var errs []error
	for _, a := range []struct {
		flag string
		d    time.Duration
	}{{"--retain-messages", p.Messages}, {"--retain-events", p.Events}, {"--retain-audit", p.Audit}} {
		if a.d < 0 {
			errs = append(errs, fmt.Errorf("%s=%s: must not be negative", a.flag, a.d))
		} else if a.d > 0 && a.d < MinAge {
			errs = append(errs, fmt.Errorf("%s=%s: shorter than the minimum %s (twice the longest scoring window; a slip such as 90m for 90 days is refused)",
				a.flag, FormatAge(a.d), FormatAge(MinAge)))
		}
	}
	if p.Messages > 0 && p.Events > p.Messages {
		errs = append(errs, fmt.Errorf("--retain-events=%s is longer than --retain-messages=%s: an event is deleted with its raw message at the latest (events reference it as their lineage)",
			FormatAge(p.Events), FormatAge(p.Messages)))
	}
	// The audit trail records who viewed or changed a message: it is kept
	// at least as long as what it audits.
	if p.Audit > 0 {
		if p.Messages == 0 || p.Messages > p.Audit {
			errs = append(errs, fmt.Errorf("--retain-audit=%s is shorter than --retain-messages=%s: the audit trail must be kept at least as long as the messages it audits",
				FormatAge(p.Audit), keptFor(p.Messages)))
		}
		if p.Events > p.Audit {
			errs = append(errs, fmt.Errorf("--retain-audit=%s is shorter than --retain-events=%s: the audit trail must be kept at least as long as the events",
				FormatAge(p.Audit), FormatAge(p.Events)))
		}
	}
	return errors.Join(errs...)
}

func keptFor(d time.Duration) string {
	if d == 0 {
		return "off (kept forever)"
	}
	return FormatAge(d)
}

// Cutoffs are the times before which the policy deletes, as of now.
func (p Policy) Cutoffs(now time.Time) store.RetentionCutoffs {
	var c store.RetentionCutoffs
	if p.Messages > 0 {
		c.Messages = now.Add(-p.Messages)
		c.Observations = c.Messages
	}
	if p.Events > 0 {
		c.Events = now.Add(-p.Events)
	}
	if p.Audit > 0 {
		c.Audit = now.Add(-p.Audit)
	}
	return c
}

// String describes the policy for logs and the audit row.
func (p Policy) String() string {
	return fmt.Sprintf("messages=%s events=%s audit=%s", FormatAge(p.Messages), FormatAge(p.Events), FormatAge(p.Audit))
}
