package delivery

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Kinds of destination.
const (
	KindWebhook = "webhook" // signed JSON POST
	KindLog     = "log"     // one structured log line
)

// Defaults for a Destination's zero fields.
const (
	// DefaultTimeout bounds one attempt: connecting, sending, and reading
	// the answer.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxAttempts is how many attempts fail before a delivery is
	// dead. With the default backoffs that is about half an hour of
	// retrying on average: long enough to ride out a receiver's restart or
	// deployment, short enough that a dead letter is noticed the same shift.
	DefaultMaxAttempts = 15
	// DefaultBackoff is the cap of the first retry's random delay; it
	// doubles with each attempt.
	DefaultBackoff = time.Second
	// DefaultMaxBackoff is the greatest delay between attempts, also the
	// longest Retry-After honoured.
	DefaultMaxBackoff = 5 * time.Minute
)

// MinSecretLen is the shortest webhook secret accepted: an HMAC key much
// shorter than its 32-byte output can be guessed.
const MinSecretLen = 16

// Destination is where deliveries named Name go. The router maps each
// routes.yaml destination to one; zero durations and attempts take the
// defaults above.
type Destination struct {
	Name        string
	Kind        string // KindWebhook or KindLog
	URL         string // webhook: http or https URL
	Secret      []byte // webhook: HMAC-SHA256 key, at least MinSecretLen bytes
	Timeout     time.Duration
	MaxAttempts int
	Backoff     time.Duration
	MaxBackoff  time.Duration
}

func (d Destination) withDefaults() Destination {
	if d.Timeout <= 0 {
		d.Timeout = DefaultTimeout
	}
	if d.MaxAttempts <= 0 {
		d.MaxAttempts = DefaultMaxAttempts
	}
	if d.Backoff <= 0 {
		d.Backoff = DefaultBackoff
	}
	if d.MaxBackoff <= 0 {
		d.MaxBackoff = DefaultMaxBackoff
	}
	d.MaxBackoff = max(d.MaxBackoff, d.Backoff)
	return d
}

// Validate reports what makes d unusable. A Worker holds the deliveries of
// an invalid destination, pending with the reason, until the configuration
// is fixed; `router check` should refuse it first. Errors never quote the
// URL or the secret: a URL may carry a token.
func (d Destination) Validate() error {
	if d.Timeout < 0 || d.MaxAttempts < 0 || d.Backoff < 0 || d.MaxBackoff < 0 {
		return errors.New("negative timeout, attempts or backoff")
	}
	switch d.Kind {
	case KindLog:
		return nil
	case KindWebhook:
		u, err := url.Parse(d.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("webhook URL must be an absolute http or https URL")
		}
		if len(d.Secret) < MinSecretLen {
			return fmt.Errorf("webhook secret must be at least %d bytes", MinSecretLen)
		}
		return nil
	default:
		return fmt.Errorf("unknown kind %q (want %s or %s)", d.Kind, KindWebhook, KindLog)
	}
}
