package delivery

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aortahealth/aorta/pkg/store"
)

func TestBackoffCap(t *testing.T) {
	tests := []struct {
		name    string
		attempt int
		want    time.Duration
	}{
		{"first failure", 1, time.Second},
		{"second", 2, 2 * time.Second},
		{"third", 3, 4 * time.Second},
		{"ninth", 9, 256 * time.Second},
		{"capped", 10, 5 * time.Minute},
		{"far past the cap", 1000, 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := backoffCap(tt.attempt, time.Second, 5*time.Minute); got != tt.want {
				t.Errorf("backoffCap(%d) = %s, want %s", tt.attempt, got, tt.want)
			}
		})
	}
}

func TestRetryDelayFullJitter(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	base, limit := 100*time.Millisecond, 2*time.Second
	for attempt := 1; attempt <= 8; attempt++ {
		c := backoffCap(attempt, base, limit)
		var lo, hi, sum time.Duration = c, 0, 0
		const n = 2000
		for range n {
			d := retryDelay(attempt, base, limit, 0, r.Int64N)
			if d < 0 || d > c {
				t.Fatalf("attempt %d: delay %s outside [0, %s]", attempt, d, c)
			}
			lo, hi, sum = min(lo, d), max(hi, d), sum+d
		}
		// Full jitter spreads over the whole range, averaging half the cap.
		if mean := sum / n; mean < c*4/10 || mean > c*6/10 || lo > c/10 || hi < c*9/10 {
			t.Errorf("attempt %d: delays in [%s, %s], mean %s; want spread over [0, %s]", attempt, lo, hi, mean, c)
		}
	}
}

func TestRetryDelayHonoursRetryAfter(t *testing.T) {
	zero := func(int64) int64 { return 0 }
	tests := []struct {
		name       string
		retryAfter time.Duration
		want       time.Duration
	}{
		{"none", 0, 0},
		{"within max_backoff", 3 * time.Second, 3 * time.Second},
		{"bounded by max_backoff", time.Hour, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retryDelay(1, time.Second, time.Minute, tt.retryAfter, zero); got != tt.want {
				t.Errorf("retryDelay with Retry-After %s = %s, want %s", tt.retryAfter, got, tt.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name, value string
		want        time.Duration
	}{
		{"absent", "", 0},
		{"seconds", "120", 2 * time.Minute},
		{"spaces", " 5 ", 5 * time.Second},
		{"zero", "0", 0},
		{"negative", "-3", 0},
		{"HTTP date", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"date in the past", now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"huge", "99999999999999", maxRetryAfter},
		{"garbage", "soon", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseRetryAfter(tt.value, now); got != tt.want {
				t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.value, got, tt.want)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	secret := []byte("0123456789abcdef-secret")
	body := []byte(`{"delivery_id":1}`)
	now := time.Unix(1_740_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	good := Sign(secret, ts, body)
	tests := []struct {
		name      string
		secret    []byte
		timestamp string
		signature string
		body      []byte
		want      error
	}{
		{"valid", secret, ts, good, body, nil},
		{"other secret", []byte("another-secret-of-16"), ts, good, body, ErrSignature},
		{"no secret", nil, ts, good, body, ErrSignature},
		{"body changed", secret, ts, good, []byte(`{"delivery_id":2}`), ErrSignature},
		{"timestamp changed", secret, strconv.FormatInt(now.Unix()-1, 10), good, body, ErrSignature},
		{"stale (replay)", secret, strconv.FormatInt(now.Unix()-600, 10), Sign(secret, strconv.FormatInt(now.Unix()-600, 10), body), body, ErrTimestamp},
		{"from the future", secret, strconv.FormatInt(now.Unix()+600, 10), Sign(secret, strconv.FormatInt(now.Unix()+600, 10), body), body, ErrTimestamp},
		{"timestamp missing", secret, "", good, body, ErrTimestamp},
		{"timestamp not a number", secret, "yesterday", good, body, ErrTimestamp},
		{"no prefix", secret, ts, good[len("sha256="):], body, ErrSignature},
		{"not hex", secret, ts, "sha256=zz", body, ErrSignature},
		{"truncated", secret, ts, good[:len(good)-2], body, ErrSignature},
		{"empty", secret, ts, "", body, ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.secret, tt.timestamp, tt.signature, tt.body, 5*time.Minute, now)
			if (tt.want == nil && err != nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestBodyJSON(t *testing.T) {
	d := store.Delivery{
		ID: 42, EventID: uuid.MustParse("5c0e0000-0000-4000-8000-000000000001"), Type: "alert.raised",
		AlertID:    uuid.MustParse("9b1f0000-0000-4000-8000-000000000002"),
		OccurredAt: time.Date(2025, 3, 1, 11, 15, 0, 0, time.FixedZone("CET", 3600)),
		RecordedAt: time.Date(2025, 3, 1, 10, 15, 2, 123456000, time.UTC),
		PatientID:  "123456", PatientKey: "HOSP/123456", Payload: []byte(`{"total": 7}`),
	}
	got, err := json.Marshal(newBody(d))
	if err != nil {
		t.Fatal(err)
	}
	// The contract documented in doc.go: every key present, times in UTC,
	// encounter_id null when there is none, payload verbatim.
	want := `{"delivery_id":42,"event_id":"5c0e0000-0000-4000-8000-000000000001","type":"alert.raised",` +
		`"alert_id":"9b1f0000-0000-4000-8000-000000000002","occurred_at":"2025-03-01T10:15:00Z",` +
		`"recorded_at":"2025-03-01T10:15:02.123456Z","patient_id":"123456","patient_key":"HOSP/123456",` +
		`"encounter_id":null,"payload":{"total":7}}`
	if string(got) != want {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
	d.EncounterID = "V1"
	var b map[string]any
	got, _ = json.Marshal(newBody(d))
	if err := json.Unmarshal(got, &b); err != nil || b["encounter_id"] != "V1" {
		t.Errorf("encounter_id = %v (%v), want V1", b["encounter_id"], err)
	}
}

func TestDestinationValidate(t *testing.T) {
	secret := []byte("0123456789abcdef")
	tests := []struct {
		name string
		d    Destination
		ok   bool
	}{
		{"webhook", Destination{Kind: KindWebhook, URL: "https://alerts.example/hook", Secret: secret}, true},
		{"http webhook", Destination{Kind: KindWebhook, URL: "http://127.0.0.1:8080/", Secret: secret}, true},
		{"log", Destination{Kind: KindLog}, true},
		{"no secret", Destination{Kind: KindWebhook, URL: "https://alerts.example/hook"}, false},
		{"short secret", Destination{Kind: KindWebhook, URL: "https://alerts.example/hook", Secret: []byte("short")}, false},
		{"relative URL", Destination{Kind: KindWebhook, URL: "/hook", Secret: secret}, false},
		{"other scheme", Destination{Kind: KindWebhook, URL: "ftp://alerts.example/", Secret: secret}, false},
		{"no kind", Destination{URL: "https://alerts.example/hook", Secret: secret}, false},
		{"notify kind", Destination{Kind: "notify"}, false},
		{"negative timeout", Destination{Kind: KindLog, Timeout: -time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.d.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestDestinationDefaults(t *testing.T) {
	got := Destination{Kind: KindLog, Backoff: 10 * time.Minute}.withDefaults()
	want := Destination{Kind: KindLog, Timeout: DefaultTimeout, MaxAttempts: DefaultMaxAttempts,
		Backoff: 10 * time.Minute, MaxBackoff: 10 * time.Minute}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("withDefaults = %+v, want %+v (max_backoff never below backoff)", got, want)
	}
}
