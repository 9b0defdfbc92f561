package delivery

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/aortahealth/aorta/pkg/store"
)

// Webhook request headers.
const (
	HeaderSignature = "X-Aorta-Signature"
	HeaderTimestamp = "X-Aorta-Timestamp"
	HeaderDelivery  = "X-Aorta-Delivery"
	HeaderEvent     = "X-Aorta-Event"
	userAgent       = "aorta/1"
	signaturePrefix = "sha256="
)

// maxResponseDrain is how much of a receiver's answer is read (and
// discarded) so that the connection can be reused; the rest is dropped
// with the connection. Answers are never stored or logged: they may echo
// the alert.
const maxResponseDrain = 64 << 10

// maxRetryAfter bounds a Retry-After header before the destination's own
// max_backoff applies, so that absurd values cannot overflow.
const maxRetryAfter = 24 * time.Hour

// Body is the JSON body of a webhook request (see the package doc).
type Body struct {
	DeliveryID  int64           `json:"delivery_id"`
	EventID     uuid.UUID       `json:"event_id"`
	Type        string          `json:"type"`
	AlertID     uuid.UUID       `json:"alert_id"`
	OccurredAt  time.Time       `json:"occurred_at"`
	RecordedAt  time.Time       `json:"recorded_at"`
	PatientID   string          `json:"patient_id"`
	PatientKey  string          `json:"patient_key"`
	EncounterID *string         `json:"encounter_id"` // null when the event has none
	Payload     json.RawMessage `json:"payload"`
}

func newBody(d store.Delivery) Body {
	b := Body{
		DeliveryID: d.ID,
		EventID:    d.EventID,
		Type:       d.Type,
		AlertID:    d.AlertID,
		OccurredAt: d.OccurredAt.UTC(),
		RecordedAt: d.RecordedAt.UTC(),
		PatientID:  d.PatientID,
		PatientKey: d.PatientKey,
		Payload:    json.RawMessage(d.Payload),
	}
	if d.EncounterID != "" {
		e := d.EncounterID
		b.EncounterID = &e
	}
	if len(b.Payload) == 0 {
		b.Payload = json.RawMessage("null")
	}
	return b
}

// Sign returns the X-Aorta-Signature value for body sent at timestamp
// (the X-Aorta-Timestamp value, Unix seconds).
func Sign(secret []byte, timestamp string, body []byte) string {
	return signaturePrefix + hex.EncodeToString(mac(secret, timestamp, body))
}

func mac(secret []byte, timestamp string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(timestamp))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Errors from Verify.
var (
	// ErrTimestamp means X-Aorta-Timestamp is missing, malformed, or
	// further than the allowed skew from now: possibly a replay.
	ErrTimestamp = errors.New("delivery: timestamp missing, malformed or outside the allowed skew")
	// ErrSignature means X-Aorta-Signature is missing, malformed or does
	// not match the body and timestamp under the secret.
	ErrSignature = errors.New("delivery: signature does not match")
)

// Verify checks a webhook request as a receiver should: timestamp and
// signature are the X-Aorta-Timestamp and X-Aorta-Signature header values,
// body the exact bytes received, maxSkew how far the timestamp may be from
// now (five minutes is usual). It returns nil, or an error wrapping
// ErrTimestamp or ErrSignature. The comparison takes constant time.
func Verify(secret []byte, timestamp, signature string, body []byte, maxSkew time.Duration, now time.Time) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: no secret to verify with", ErrSignature)
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q is not Unix seconds", ErrTimestamp, timestamp)
	}
	if skew := now.Sub(time.Unix(ts, 0)).Abs(); skew > maxSkew {
		return fmt.Errorf("%w: %s from now, more than %s", ErrTimestamp, skew.Truncate(time.Second), maxSkew)
	}
	hexMAC, ok := strings.CutPrefix(signature, signaturePrefix)
	if !ok {
		return fmt.Errorf("%w: want %s<hex>", ErrSignature, signaturePrefix)
	}
	got, err := hex.DecodeString(hexMAC)
	if err != nil {
		return fmt.Errorf("%w: not hex", ErrSignature)
	}
	if !hmac.Equal(got, mac(secret, timestamp, body)) {
		return ErrSignature
	}
	return nil
}

// outcome is how one attempt went.
type outcome struct {
	err        error         // nil when delivered
	retryAfter time.Duration // the receiver's Retry-After, 0 when none
}

// post sends one webhook attempt; ctx carries the attempt's deadline.
func (w *Worker) post(ctx context.Context, dest Destination, d store.Delivery) outcome {
	body, err := json.Marshal(newBody(d))
	if err != nil {
		return outcome{err: fmt.Errorf("encode body: %w", err)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dest.URL, bytes.NewReader(body))
	if err != nil {
		return outcome{err: errors.New("invalid webhook URL")}
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set(HeaderDelivery, strconv.FormatInt(d.ID, 10))
	req.Header.Set(HeaderEvent, d.EventID.String())
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(dest.Secret, ts, body))
	resp, err := w.client.Do(req)
	if err != nil {
		return outcome{err: describe(ctx, err, dest.Timeout)}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseDrain))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return outcome{}
	}
	o := outcome{err: fmt.Errorf("HTTP %s", resp.Status)}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if o.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); o.retryAfter > 0 {
			o.err = fmt.Errorf("HTTP %s (Retry-After %s)", resp.Status, o.retryAfter)
		}
	}
	return o
}

// describe turns a transport error into a last_error reason without the
// URL, which may carry a token.
func describe(ctx context.Context, err error, timeout time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %s", timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("POST: %w", err)
}

// parseRetryAfter reads a Retry-After value, delay-seconds or an HTTP date;
// 0 when absent, malformed or in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return min(time.Duration(min(secs, int64(maxRetryAfter/time.Second)))*time.Second, maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, maxRetryAfter)
		}
	}
	return 0
}

// backoffCap is the largest delay after attempt n (from 1) fails:
// base·2^(n-1), at most limit.
func backoffCap(n int, base, limit time.Duration) time.Duration {
	c := base
	for i := 1; i < n && c < limit; i++ {
		c *= 2
	}
	return min(c, limit)
}

// retryDelay is the wait after attempt n fails: uniform in [0, cap] ("full
// jitter", so that receivers recovering from an outage are not hit by
// every sender at once), at least the receiver's Retry-After, never more
// than limit.
func retryDelay(n int, base, limit, retryAfter time.Duration, randN func(int64) int64) time.Duration {
	d := time.Duration(randN(int64(backoffCap(n, base, limit)) + 1))
	if retryAfter > 0 {
		d = max(d, min(retryAfter, limit))
	}
	return d
}
