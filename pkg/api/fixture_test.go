package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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

// shippedRoutes are the routes Aorta ships: ADT, nursing vitals scored by
// NEWS2 with the shipped alert rules.
const shippedRoutes = "../../routes.yaml"

func registry() route.Registry {
	scores := []string{score.NameNEWS2, score.NameQSOFA, score.NameSIRS}
	return route.Registry{Mappings: event.Mappings(), Handlers: scores, Scores: scores}
}

// fixture is an API on its own database, seeded with routed messages, a
// tokens for each role, and a fake reload.
type fixture struct {
	t      *testing.T
	st     *store.Store
	url    string
	srv    *httptest.Server
	tokens map[api.Role]string

	mu        sync.Mutex
	reloads   []string
	reloadErr error

	// Seeded messages by name, and the open alert.
	msgs  map[string]uuid.UUID
	alert uuid.UUID
}

// Message names in the seeded data.
const (
	msgAdmit      = "admit"      // ADT A01 for HOSP/P1: routed
	msgVitalsBad  = "vitals-bad" // NEWS2 >= 7 for HOSP/P1: routed, emergency alert
	msgVitalsOK   = "vitals-ok"  // HOSP/P2, normal: routed
	msgOrder      = "order"      // ORM: unrouted
	msgNoPatient  = "no-pid"     // ADT without PID-3: dead-lettered
	msgRejected   = "rejected"   // AR at the door
	msgDuplicated = "duplicated" // ADT A08 for HOSP/P2 re-sent once
)

func admit(cid, mrn string) string {
	return fmt.Sprintf("MSH|^~\\&|PAS|HOSP|AORTA|HOSP|20261126070000+0000||ADT^A01^ADT_A01|%s|P|2.5\r"+
		"EVN|A01|20261126070000+0000\rPID|||%s^^^HOSP^MR||DOE^JANE||19600101\rPV1|1|I|WARD7^12^B||||||||||||||||V%s\r", cid, mrn, mrn)
}

func nursing(cid, mrn, at string, rr, spo2, sbp, hr, acvpu, temp string) string {
	s := fmt.Sprintf("MSH|^~\\&|EOBS|WARD|AORTA|HOSP|%s+0000||ORU^R01|%s|P|2.5\r", at, cid) +
		fmt.Sprintf("PID|||%s^^^HOSP^MR||DOE^JANE||19600101\r", mrn) +
		"PV1|1|I|WARD7^12^B\r" + fmt.Sprintf("OBR|1|||NEWS2|||%s+0000\r", at)
	n := 0
	obx := func(code, typ, value, unit string) {
		n++
		s += fmt.Sprintf("OBX|%d|%s|%s^^LN||%s|%s|||||F|||%s+0000\r", n, typ, code, value, unit, at)
	}
	obx("9279-1", "NM", rr, "/min")
	obx("2708-6", "NM", spo2, "%")
	obx("3151-8", "NM", "0", "L/min")
	obx("8480-6", "NM", sbp, "mm[Hg]")
	obx("8867-4", "NM", hr, "/min")
	obx("67775-7", "ST", acvpu, "")
	obx("8310-5", "NM", temp, "Cel")
	return s
}

// newMessage is a stored message as the listener would write it.
func newMessage(t *testing.T, raw string, receivedAt time.Time) *store.Message {
	return storetest.Message(t, raw, receivedAt)
}

// newFixture seeds a database through the real router and serves the API
// on it.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, url := pgtest.NewStore(t)
	routes, err := route.Load(shippedRoutes, registry())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, st: st, url: url, tokens: map[api.Role]string{}, msgs: map[string]uuid.UUID{}}
	ctx := context.Background()

	base := time.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC)
	raws := []struct{ name, raw string }{
		{msgAdmit, admit("ADM1", "P1")},
		{msgVitalsBad, nursing("OBS1", "P1", "20261126080000", "25", "91", "95", "125", "C", "39.5")},
		{msgVitalsOK, nursing("OBS2", "P2", "20261126080000", "16", "97", "125", "75", "A", "37.0")},
		{msgOrder, "MSH|^~\\&|OE|HOSP|AORTA|HOSP|20261126090000+0000||ORM^O01|ORD1|P|2.5\rPID|||P1^^^HOSP^MR\r"},
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
	// A re-send of the same bytes is a duplicate of the first.
	dupRaw := "MSH|^~\\&|PAS|HOSP|AORTA|HOSP|20261126110000+0000||ADT^A08|UPD1|P|2.5\rEVN|A08|20261126110000+0000\rPID|||P2^^^HOSP^MR||DOE^JOHN\r"
	dup := newMessage(t, dupRaw, base.Add(11*time.Minute))
	f.msgs[msgDuplicated] = dup.ID
	if _, err := st.Save(ctx, []store.Unit{{Message: dup}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	again := newMessage(t, dupRaw, base.Add(12*time.Minute))
	if out, err := st.Save(ctx, []store.Unit{{Message: again}}, time.Hour); err != nil || !out[0][0].Duplicate {
		t.Fatalf("re-send: %v %v, want a duplicate", out, err)
	}

	// Route everything with a real router, then stop it.
	rt := router.New(st, routes, router.Config{ID: "seed", DatabaseURL: url, PollInterval: 50 * time.Millisecond, LeaseTTL: 3 * time.Second})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- rt.Run(rctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var outbox, routed int
		f.query(`SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM message_routing)`, nil, &outbox, &routed)
		if outbox == 0 && routed == 6 {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("seeding: outbox %d, routed %d of 6", outbox, routed)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("seeding router: %v", err)
	}
	f.query(`SELECT id FROM alerts WHERE status = 'open' AND rule = 'news2'`, nil, &f.alert)

	// The API's router is not running: acknowledgements need only its
	// routes, and reprocessed messages stay in the outbox for the tests
	// to see.
	apiRouter := router.New(st, routes, router.Config{ID: "api", DatabaseURL: url})
	h := api.Handler(api.Config{Store: st, Router: apiRouter, Registry: registry(), RequestTimeout: 10 * time.Second,
		Reload: func(reason string) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.reloads = append(f.reloads, reason)
			return f.reloadErr
		}})
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	for _, role := range api.Roles {
		f.tokens[role] = f.newToken(string(role)+"-token", role)
	}
	return f
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

// do sends a request with a token (none when empty) and returns the
// status and the raw answer.
func (f *fixture) do(method, path, token, body string) (int, []byte) {
	f.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		f.t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	return resp.StatusCode, b
}

// call is do as a role, decoding the JSON answer into out (when not nil)
// and failing unless the status is want.
func (f *fixture) call(role api.Role, method, path, body string, want int, out any) {
	f.t.Helper()
	code, b := f.do(method, path, f.tokens[role], body)
	if code != want {
		f.t.Fatalf("%s %s as %s: %d %s, want %d", method, path, role, code, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			f.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

// list is a page of a list endpoint.
type list[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
}
