package console

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/internal/storetest"
	"github.com/aortahealth/aorta/pkg/api"
	"github.com/aortahealth/aorta/pkg/event"
	"github.com/aortahealth/aorta/pkg/route"
	"github.com/aortahealth/aorta/pkg/router"
	"github.com/aortahealth/aorta/pkg/score"
	"github.com/aortahealth/aorta/pkg/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Markers in the seeded messages: text that is only in a raw body, so a
// page that shows it has shown the body.
const (
	bodyMarker = "ZZBODYMARKER"  // a patient's surname (PID-5.1)
	escapedRaw = `SMITH\F\JONES` // PID-5.1 of the escaped message, as sent
	escapedVal = "SMITH|JONES"   // ... and decoded
)

// Seeded messages by name.
const (
	msgAdmit      = "admit"      // ADT A01 for HOSP/P1, routed
	msgVitalsBad  = "vitals-bad" // NEWS2 >= 7 for HOSP/P1: an open emergency alert
	msgEscaped    = "escaped"    // ADT A08 for HOSP/P2 with an escaped name
	msgNoPatient  = "no-pid"     // ADT without PID-3: dead-lettered
	msgRejected   = "rejected"   // AR at the door
	seededRouting = 4            // messages the router routes
)

// fixture is a console on its own database, seeded through the real
// router, with a token of each role and a clock the test moves.
type fixture struct {
	t      *testing.T
	st     *store.Store
	url    string
	srv    *httptest.Server
	tokens map[api.Role]string
	msgs   map[string]uuid.UUID
	alert  uuid.UUID

	mu  sync.Mutex
	now time.Time
}

func registry() route.Registry {
	scores := []string{score.NameNEWS2, score.NameQSOFA, score.NameSIRS}
	return route.Registry{Mappings: event.Mappings(), Handlers: scores, Scores: scores}
}

func nursing(cid, mrn, at string) string {
	s := fmt.Sprintf("MSH|^~\\&|EOBS|WARD|AORTA|HOSP|%s+0000||ORU^R01|%s|P|2.5\r", at, cid) +
		fmt.Sprintf("PID|||%s^^^HOSP^MR||%s^JANE||19600101\r", mrn, bodyMarker) +
		"PV1|1|I|WARD7^12^B\r" + fmt.Sprintf("OBR|1|||NEWS2|||%s+0000\r", at)
	n := 0
	obx := func(code, typ, value, unit string) {
		n++
		s += fmt.Sprintf("OBX|%d|%s|%s^^LN||%s|%s|||||F|||%s+0000\r", n, typ, code, value, unit, at)
	}
	// NEWS2 >= 7: rr 25, SpO2 91, sbp 95, hr 125, confused, 39.5 °C.
	obx("9279-1", "NM", "25", "/min")
	obx("2708-6", "NM", "91", "%")
	obx("3151-8", "NM", "0", "L/min")
	obx("8480-6", "NM", "95", "mm[Hg]")
	obx("8867-4", "NM", "125", "/min")
	obx("67775-7", "ST", "C", "")
	obx("8310-5", "NM", "39.5", "Cel")
	return s
}

// newMessage is a stored message as the listener would write it.
func newMessage(t *testing.T, raw string, receivedAt time.Time) *store.Message {
	return storetest.Message(t, raw, receivedAt)
}

// newFixture seeds a database, routes it with a real router (stopped
// afterwards, so that reprocessed messages stay in the outbox for the
// tests to see) and serves the console on it.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, dbURL := pgtest.NewStore(t)
	routes, err := route.Load("../../routes.yaml", registry())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, st: st, url: dbURL, tokens: map[api.Role]string{}, msgs: map[string]uuid.UUID{},
		now: time.Now().UTC()}
	ctx := context.Background()
	base := f.now.Add(-time.Hour)
	raws := []struct{ name, raw string }{
		{msgAdmit, "MSH|^~\\&|PAS|HOSP|AORTA|HOSP|20261126070000+0000||ADT^A01^ADT_A01|ADM1|P|2.5\r" +
			"EVN|A01|20261126070000+0000\rPID|||P1^^^HOSP^MR||" + bodyMarker + "^JANE||19600101\rPV1|1|I|WARD7^12^B||||||||||||||||VP1\r"},
		{msgVitalsBad, nursing("OBS1", "P1", "20261126080000")},
		{msgEscaped, "MSH|^~\\&|PAS|HOSP|AORTA|HOSP|20261126090000+0000||ADT^A08|ESC1|P|2.5\r" +
			"EVN|A08|20261126090000+0000\rPID|||P2^^^HOSP^MR||" + escapedRaw + "^JOHN||19700101\r"},
		{msgNoPatient, "MSH|^~\\&|PAS|HOSP|AORTA|HOSP|20261126090000+0000||ADT^A08|NOPID1|P|2.5\rEVN|A08|20261126090000+0000\rPID|||\r"},
	}
	var units []store.Unit
	for i, r := range raws {
		m := newMessage(t, r.raw, base.Add(time.Duration(i)*time.Minute))
		f.msgs[r.name] = m.ID
		units = append(units, store.Unit{Message: m})
	}
	rej := newMessage(t, "MSH|^~\\&|LAB|HOSP|AORTA|HOSP|20261126100000+0000||ORU^R01|REJ1|P|2.5\rPID|||P3^^^HOSP^MR\r", base.Add(10*time.Minute))
	rej.Status, rej.AckCode, rej.ErrorCode, rej.ErrorLocation, rej.Error, rej.Outbox = store.StatusRejected, "AR", 207, "MSH-9", "message type not accepted", nil
	f.msgs[msgRejected] = rej.ID
	units = append(units, store.Unit{Message: rej})
	if _, err := st.Save(ctx, units, time.Hour); err != nil {
		t.Fatal(err)
	}

	rt := router.New(st, routes, router.Config{ID: "seed", DatabaseURL: dbURL, PollInterval: 50 * time.Millisecond, LeaseTTL: 3 * time.Second})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- rt.Run(rctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if f.count(`SELECT count(*) FROM outbox`) == 0 && f.count(`SELECT count(*) FROM message_routing`) == seededRouting {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("seeding: the router did not route the %d messages within 30 s", seededRouting)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("seeding router: %v", err)
	}
	f.query(`SELECT id FROM alerts WHERE status = 'open' AND rule = 'news2'`, nil, &f.alert)

	h, err := Handler(Config{Store: st, Router: router.New(st, routes, router.Config{ID: "console", DatabaseURL: dbURL}),
		RequestTimeout: 10 * time.Second, StreamPoll: 50 * time.Millisecond, Now: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	for _, role := range api.Roles {
		f.tokens[role] = f.newToken(string(role)+"-token", role)
	}
	return f
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// newToken creates a token as `router token create` does.
func (f *fixture) newToken(name string, role api.Role) string {
	return storetest.Token(f.t, f.st, name, role)
}

func (f *fixture) query(sql string, args []any, dest ...any) {
	f.t.Helper()
	storetest.QueryRow(f.t, f.url, sql, args, dest...)
}

func (f *fixture) count(sql string, args ...any) int {
	f.t.Helper()
	return storetest.Count(f.t, f.url, sql, args...)
}

// answer is a console response, read whole.
type answer struct {
	code   int
	header http.Header
	body   string
	resp   *http.Response
}

// do sends a request with the session cookie (none when empty), never
// following redirects, so that the test sees them.
func (f *fixture) do(method, path, cookie string, form url.Values, header map[string]string) answer {
	f.t.Helper()
	var rd io.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: cookieName, Value: cookie})
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return answer{code: resp.StatusCode, header: resp.Header, body: string(b), resp: resp}
}

func (f *fixture) get(path, cookie string) answer {
	return f.do(http.MethodGet, path, cookie, nil, nil)
}

// post sends a form with the session's CSRF token.
func (f *fixture) post(path, cookie string, form url.Values) answer {
	f.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if form.Get(csrfField) == "" {
		form.Set(csrfField, csrfOf(f.t, cookie))
	}
	return f.do(http.MethodPost, path, cookie, form, nil)
}

// csrfOf is the CSRF token of the session whose cookie is cookie.
func csrfOf(t *testing.T, cookie string) string {
	t.Helper()
	id, err := base64.RawURLEncoding.DecodeString(cookie)
	if err != nil {
		t.Fatalf("cookie %q: %v", cookie, err)
	}
	return csrfToken(id)
}

// login logs in with a token and returns the session cookie's value.
func (f *fixture) login(token string) string {
	f.t.Helper()
	a := f.do(http.MethodPost, "/console/login", "", url.Values{"token": {token}}, nil)
	if a.code != http.StatusSeeOther {
		f.t.Fatalf("login: %d, want 303:\n%s", a.code, a.body)
	}
	for _, c := range a.resp.Cookies() {
		if c.Name == cookieName && c.Value != "" {
			return c.Value
		}
	}
	f.t.Fatalf("login set no %s cookie: %v", cookieName, a.header["Set-Cookie"])
	return ""
}

func (f *fixture) loginAs(role api.Role) string { f.t.Helper(); return f.login(f.tokens[role]) }
