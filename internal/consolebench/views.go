package consolebench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aortahealth/aorta/internal/loadgen"
	"github.com/aortahealth/aorta/pkg/store"
)

// view is one page or API answer a person waits for.
type view struct {
	Name    string
	Path    string // with its query
	Console bool   // a console page: the session cookie, not the bearer token
	// Store makes the store calls the API handler makes for this view,
	// so that their statements can be EXPLAINed; nil for console pages
	// (their statements are the same store calls, through pkg/console).
	Store func(ctx context.Context, st *store.Store) error
}

// samples are the values the filtered views search for, read from the
// seeded database so that every search finds something.
type samples struct {
	End        time.Time // the newest message
	MessageID  string    // a routed message with events, some days old
	ControlID  string
	PatientID  string // bare identifier of a patient with a score
	PatientKey string
	Sender     string // MSH-3 of a feed
	Cursor     store.MessageCursor
	CursorText string // the API's next_cursor after the first page
}

// apiPage is the API's default page plus the one more row that tells
// whether another page follows.
const apiPage = 51

// apiViews are the API's main reads, with the store calls behind them.
func apiViews(s samples) []view {
	mid := s.End.Add(-4 * 24 * time.Hour).Truncate(time.Hour)
	q := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return "?" + v.Encode()
	}
	msgs := func(f store.MessageFilter) func(context.Context, *store.Store) error {
		f.Limit = apiPage
		return func(ctx context.Context, st *store.Store) error { _, err := st.MessageSearch(ctx, f); return err }
	}
	return []view{
		{Name: "ops summary", Path: "/api/v1/ops/summary",
			Store: func(ctx context.Context, st *store.Store) error { _, err := st.OpsSummary(ctx, time.Now()); return err }},
		{Name: "messages", Path: "/api/v1/messages", Store: msgs(store.MessageFilter{})},
		{Name: "messages by control ID", Path: "/api/v1/messages" + q("control_id", s.ControlID), Store: msgs(store.MessageFilter{ControlID: s.ControlID})},
		{Name: "messages by sender", Path: "/api/v1/messages" + q("sender", s.Sender), Store: msgs(store.MessageFilter{SendingApplication: s.Sender})},
		{Name: "messages of the idle feed", Path: "/api/v1/messages" + q("sender", idleSender.App, "facility", idleSender.Facility),
			Store: msgs(store.MessageFilter{SendingApplication: idleSender.App, SendingFacility: idleSender.Facility})},
		{Name: "messages by patient", Path: "/api/v1/messages" + q("patient", s.PatientID), Store: msgs(store.MessageFilter{Patient: s.PatientID})},
		{Name: "messages rejected", Path: "/api/v1/messages" + q("status", "rejected"), Store: msgs(store.MessageFilter{Status: "rejected"})},
		{Name: "messages dead-lettered", Path: "/api/v1/messages" + q("status", "dead_lettered"), Store: msgs(store.MessageFilter{Status: "dead_lettered"})},
		{Name: "messages duplicate", Path: "/api/v1/messages" + q("status", "duplicate"), Store: msgs(store.MessageFilter{Status: "duplicate"})},
		{Name: "messages by ACK code AE", Path: "/api/v1/messages" + q("ack_code", "AE"), Store: msgs(store.MessageFilter{AckCode: "AE"})},
		{Name: "messages by type ADT^A03", Path: "/api/v1/messages" + q("type", "ADT", "trigger", "A03"), Store: msgs(store.MessageFilter{MessageType: "ADT", TriggerEvent: "A03"})},
		{Name: "messages by facility", Path: "/api/v1/messages" + q("facility", "COMMUNITY"), Store: msgs(store.MessageFilter{SendingFacility: "COMMUNITY"})},
		{Name: "messages, 1 h four days back", Path: "/api/v1/messages" + q("since", mid.Format(time.RFC3339), "until", mid.Add(time.Hour).Format(time.RFC3339)),
			Store: msgs(store.MessageFilter{Since: mid, Until: mid.Add(time.Hour)})},
		{Name: "messages, second page", Path: "/api/v1/messages" + q("cursor", s.CursorText), Store: msgs(store.MessageFilter{After: &s.Cursor})},
		{Name: "message detail", Path: "/api/v1/messages/" + s.MessageID,
			Store: func(ctx context.Context, st *store.Store) error {
				id, err := parseUUID(s.MessageID)
				if err != nil {
					return err
				}
				_, err = st.Message(ctx, id)
				return err
			}},
		{Name: "events", Path: "/api/v1/events",
			Store: func(ctx context.Context, st *store.Store) error {
				_, err := st.Events(ctx, store.EventFilter{Limit: apiPage})
				return err
			}},
		{Name: "events by patient", Path: "/api/v1/events" + q("patient", s.PatientID),
			Store: func(ctx context.Context, st *store.Store) error {
				_, err := st.Events(ctx, store.EventFilter{Patient: s.PatientID, Limit: apiPage})
				return err
			}},
		{Name: "dead letters (open)", Path: "/api/v1/dead-letters",
			Store: func(ctx context.Context, st *store.Store) error {
				_, err := st.DeadLetters(ctx, store.DeadLetterFilter{Status: store.DeadLetterOpen, Limit: apiPage})
				return err
			}},
		{Name: "alerts", Path: "/api/v1/alerts",
			Store: func(ctx context.Context, st *store.Store) error {
				_, err := st.Alerts(ctx, store.AlertFilter{Limit: apiPage})
				return err
			}},
		{Name: "alerts open", Path: "/api/v1/alerts" + q("status", "open"),
			Store: func(ctx context.Context, st *store.Store) error {
				_, err := st.Alerts(ctx, store.AlertFilter{Status: "open", Limit: apiPage})
				return err
			}},
		{Name: "patient scores", Path: "/api/v1/patients/" + url.PathEscape(s.PatientID) + "/scores",
			Store: func(ctx context.Context, st *store.Store) error {
				_, err := st.PatientScores(ctx, s.PatientID)
				return err
			}},
	}
}

// consoleViews are the web console's pages (pkg/console).
func consoleViews(s samples) []view {
	return []view{
		{Name: "console dashboard", Path: "/console/", Console: true},
		{Name: "console messages", Path: "/console/messages", Console: true},
		{Name: "console messages of the idle feed", Path: "/console/messages?sender=" + url.QueryEscape(idleSender.App) + "&facility=" + url.QueryEscape(idleSender.Facility), Console: true},
		{Name: "console messages by control ID", Path: "/console/messages?control_id=" + url.QueryEscape(s.ControlID), Console: true},
		{Name: "console message detail", Path: "/console/messages/" + s.MessageID, Console: true},
		{Name: "console dead letters", Path: "/console/dead-letters", Console: true},
		{Name: "console alerts", Path: "/console/alerts", Console: true},
		{Name: "console events", Path: "/console/events", Console: true},
		{Name: "console routes", Path: "/console/routes", Console: true},
	}
}

// client requests the API with a bearer token, and the console with the
// session cookie its login set.
type client struct {
	base    string
	token   string
	api     *http.Client
	console *http.Client
}

// requestTimeout bounds one request: the API's own deadline is 30 s.
const requestTimeout = 45 * time.Second

func newClient(addr, token string) *client {
	tr := &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: time.Minute}
	jar, _ := cookiejar.New(nil) // never fails without options
	return &client{base: "http://" + addr, token: token,
		api:     &http.Client{Transport: tr, Timeout: requestTimeout},
		console: &http.Client{Transport: tr, Timeout: requestTimeout, Jar: jar}}
}

// get requests path and reads the whole answer: the time is until the
// last byte, as a person waits for it.
func (c *client) get(ctx context.Context, v view) (time.Duration, int, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+v.Path, nil)
	if err != nil {
		return 0, 0, 0, err
	}
	hc := c.console
	if !v.Console {
		req.Header.Set("Authorization", "Bearer "+c.token)
		hc = c.api
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("GET %s: %w", v.Name, err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("GET %s: read: %w", v.Name, err)
	}
	return d, resp.StatusCode, int(n), nil
}

// hiddenInput finds the hidden fields of a form (a CSRF token, say), in
// either attribute order.
var hiddenInput = regexp.MustCompile(`<input[^>]*type="hidden"[^>]*>`)
var attr = regexp.MustCompile(`(name|value)="([^"]*)"`)

// loginConsole logs in to the console with the token: it reads the login
// form first so that any hidden field (CSRF) goes back with the token,
// then posts it. ok is false when the router serves no console.
func (c *client) loginConsole(ctx context.Context) (ok bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/console/login", nil)
	if err != nil {
		return false, err
	}
	resp, err := c.console.Do(req)
	if err != nil {
		return false, fmt.Errorf("console login form: %w", err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return false, fmt.Errorf("console login form: %w", err)
	}
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusUnauthorized {
		return false, nil // no console on this router (the API answers 401/404 for unknown paths)
	}
	form := url.Values{}
	for _, in := range hiddenInput.FindAll(body, -1) {
		var name, value string
		for _, m := range attr.FindAllSubmatch(in, -1) {
			if string(m[1]) == "name" {
				name = string(m[2])
			} else {
				value = htmlUnescape(string(m[2]))
			}
		}
		if name != "" {
			form.Set(name, value)
		}
	}
	form.Set("token", c.token)
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/console/login", strings.NewReader(form.Encode()))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", c.base)
	resp, err = c.console.Do(req)
	if err != nil {
		return false, fmt.Errorf("console login: %w", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	u, _ := url.Parse(c.base + "/console/")
	if resp.StatusCode >= 400 || len(c.console.Jar.Cookies(u)) == 0 {
		return false, fmt.Errorf("console login answered %s and set no session cookie", resp.Status)
	}
	return true, nil
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&quot;", `"`).Replace(s)
}

// timing is one view's latencies: sequential, then clients at once.
type timing struct {
	Sequential loadgen.Summary `json:"sequential"`
	Concurrent loadgen.Summary `json:"concurrent"`
	Status     int             `json:"status"`
	Bytes      int             `json:"bytes"`
}

// measure requests v warmup times, then n times one after another, then
// n times from clients goroutines at once (n/clients each). Any answer
// but 200 is an error: a fast 500 is no figure.
func (c *client) measure(ctx context.Context, v view, warmup, n, clients int) (timing, error) {
	var t timing
	one := func() (time.Duration, error) {
		d, status, size, err := c.get(ctx, v)
		if err != nil {
			return 0, err
		}
		t.Status, t.Bytes = status, size
		if status != http.StatusOK {
			return 0, fmt.Errorf("GET %s (%s): status %d", v.Name, v.Path, status)
		}
		return d, nil
	}
	for range warmup {
		if _, err := one(); err != nil {
			return t, err
		}
	}
	seq := make([]time.Duration, 0, n)
	for range n {
		d, err := one()
		if err != nil {
			return t, err
		}
		seq = append(seq, d)
	}
	t.Sequential = loadgen.Summarize(seq)
	var mu sync.Mutex
	var conc []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	per := (n + clients - 1) / clients
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				d, status, _, err := c.get(ctx, v)
				mu.Lock()
				if err == nil && status != http.StatusOK {
					err = fmt.Errorf("GET %s: status %d with %d clients", v.Name, status, clients)
				}
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				conc = append(conc, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Concurrent = loadgen.Summarize(conc)
	return t, firstErr
}
