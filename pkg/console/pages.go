package console

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/aortahealth/aorta/pkg/api"
	"github.com/aortahealth/aorta/pkg/store"
)

// Pages. Each handler reads through the same pkg/store methods as the
// API, so every page is the API's indexed query (migrations/00004_api.sql)
// and every action is audited as the API audits it, under the session's
// token name.

// view is what every page template gets.
type view struct {
	Title   string
	Page    string // template name, for the navigation
	Session *session
	User    string // the token name
	Role    string
	CSRF    string
	Can     can
	Flash   string // a confirmation of the last action
	Error   string
	Status  int
	Next    string // login: where to go afterwards
	Data    any    // the page's own
}

// pageNames are the templates, each rendered inside layout.html.
var pageNames = []string{"login", "error", "dashboard", "messages", "message", "dead-letters", "events", "alerts", "routes"}

func parsePages() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: parse template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// isoTime is how the console shows every time: ISO 8601 in UTC, to the
// millisecond, so that times from different feeds line up.
const isoTime = "2006-01-02T15:04:05.000Z"

var funcs = template.FuncMap{
	"ts": func(v any) string {
		switch t := v.(type) {
		case time.Time:
			if !t.IsZero() {
				return t.UTC().Format(isoTime)
			}
		case *time.Time:
			if t != nil && !t.IsZero() {
				return t.UTC().Format(isoTime)
			}
		}
		return "—"
	},
	"str": func(v any) string {
		switch s := v.(type) {
		case string:
			return s
		case *string:
			if s != nil {
				return *s
			}
		case *int:
			if s != nil {
				return strconv.Itoa(*s)
			}
		}
		return ""
	},
	"age": func(secs *float64) string {
		if secs == nil {
			return "—"
		}
		return (time.Duration(*secs) * time.Second).Round(time.Second).String()
	},
	"rate":     func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
	"outcome":  outcomeClass,
	"severity": severityClass,
	"join":     strings.Join,
	"list":     func(s ...string) []string { return s },
}

// outcomeClass colours a message outcome or a routing status.
func outcomeClass(s string) string {
	switch s {
	case store.Routed, "AA", "CA":
		return "ok"
	case store.DeadLettered, store.OutcomeRejected, "AR", "AE", "CR", "CE":
		return "bad"
	case store.OutcomePending:
		return "warn"
	}
	return "muted"
}

// severityClass colours an alert severity or status.
func severityClass(s string) string {
	switch s {
	case "emergency", "high", "open":
		return "bad"
	case "urgent", "medium", "low-medium", "sepsis-screen":
		return "warn"
	case "resolved":
		return "ok"
	}
	return "muted"
}

// flashes are the confirmations an action redirects to (?ok=); a fixed
// list, so that a link cannot make the console say anything else.
var flashes = map[string]string{
	"reprocessed":          "Queued for reprocessing: the router will route it again through the current routes.",
	"already-queued":       "Already waiting in the outbox: the router will route it shortly.",
	"resolved":             "Dead letter resolved: its message is queued for reprocessing.",
	"discarded":            "Dead letter discarded.",
	"acknowledged":         "Alert acknowledged.",
	"already-acknowledged": "That alert was acknowledged already.",
}

// newView starts a page's view for the request's session.
func newView(r *http.Request, title string, data any) *view {
	s, _ := sessionOf(r.Context())
	return &view{Title: title, Session: s, Flash: flashes[r.URL.Query().Get("ok")], Data: data}
}

func (c *Console) page(w http.ResponseWriter, r *http.Request, name string, v *view) {
	c.render(w, r, http.StatusOK, name, v)
}

// --- dashboard ---

type dashboardData struct {
	Ops        *store.OpsSummary
	Alerts     []store.Alert
	MoreAlerts bool
}

// dashboardAlerts is how many open alerts the dashboard lists.
const dashboardAlerts = 20

func (c *Console) dashboard(w http.ResponseWriter, r *http.Request) {
	o, err := c.store.OpsSummary(r.Context(), c.now())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	alerts, err := c.store.Alerts(r.Context(), store.AlertFilter{Status: "open", Limit: dashboardAlerts + 1})
	if err != nil {
		c.fail(w, r, err)
		return
	}
	d := &dashboardData{Ops: o, Alerts: alerts}
	if len(alerts) > dashboardAlerts {
		d.Alerts, d.MoreAlerts = alerts[:dashboardAlerts], true
	}
	c.page(w, r, "dashboard", newView(r, "Dashboard", d))
}

// --- messages ---

// messageFilters are the message browser's query parameters: those of
// GET /api/v1/messages.
var messageFilters = []string{"since", "until", "sender", "facility", "type", "trigger", "control_id", "ack_code", "status", "patient"}

var ackCodes = []string{"AA", "AE", "AR", "CA", "CE", "CR"}

type messagesData struct {
	Form     url.Values
	Statuses []string
	AckCodes []string
	Messages []store.MessageSummary
	Older    string // the next page's URL; "" on the last page
}

func (c *Console) messages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.MessageFilter{SendingApplication: q.Get("sender"), SendingFacility: q.Get("facility"),
		MessageType: strings.ToUpper(q.Get("type")), TriggerEvent: strings.ToUpper(q.Get("trigger")),
		ControlID: q.Get("control_id"), AckCode: q.Get("ack_code"), Status: q.Get("status"), Patient: q.Get("patient"),
		Limit: pageSize + 1}
	var err error
	if f.Status != "" && !slices.Contains(store.MessageStatuses, f.Status) {
		err = badRequestf("status: give one of %s", strings.Join(store.MessageStatuses, ", "))
	} else if f.AckCode != "" && !slices.Contains(ackCodes, f.AckCode) {
		err = badRequestf("ACK code: give one of %s", strings.Join(ackCodes, ", "))
	}
	if err == nil {
		f.Since, err = formTime(q, "since")
	}
	if err == nil {
		f.Until, err = formTime(q, "until")
	}
	var after *timeCursor
	if err == nil {
		after, err = parseCursor(q.Get("cursor"))
	}
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if after != nil {
		f.After = &store.MessageCursor{ReceivedAt: after.t, ID: after.id}
	}
	ms, err := c.store.MessageSearch(r.Context(), f)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	d := &messagesData{Form: q, Statuses: store.MessageStatuses, AckCodes: ackCodes, Messages: ms}
	if len(ms) > pageSize {
		d.Messages = ms[:pageSize]
		last := d.Messages[pageSize-1]
		d.Older = olderURL(r, messageFilters, timeCursor{last.ReceivedAt, last.ID}.String())
	}
	c.page(w, r, "messages", newView(r, "Messages", d))
}

// formTime reads a time filter: RFC 3339, or a date and time without a
// zone (what a person types, and what datetime-local inputs send), which
// is taken as UTC like every time the console shows.
func formTime(q url.Values, name string) (time.Time, error) {
	s := strings.TrimSpace(q.Get(name))
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, badRequestf("%s: give a time such as 2026-11-26T08:00 (UTC) or 2026-11-26T08:00:00+01:00", name)
}

// timeCursor is a keyset position in a list ordered by a time and an ID,
// newest first.
type timeCursor struct {
	t  time.Time
	id uuid.UUID
}

func (c timeCursor) String() string { return c.t.UTC().Format(time.RFC3339Nano) + "_" + c.id.String() }

func parseCursor(s string) (*timeCursor, error) {
	if s == "" {
		return nil, nil
	}
	ts, ids, ok := strings.Cut(s, "_")
	t, terr := time.Parse(time.RFC3339Nano, ts)
	id, ierr := uuid.Parse(ids)
	if !ok || terr != nil || ierr != nil {
		return nil, badRequestf("cursor: not a position this list gave")
	}
	return &timeCursor{t, id}, nil
}

// olderURL is the request's page with the same filters and cursor set.
func olderURL(r *http.Request, filters []string, cursor string) string {
	q := url.Values{}
	for _, k := range filters {
		if v := r.URL.Query().Get(k); v != "" {
			q.Set(k, v)
		}
	}
	q.Set("cursor", cursor)
	return r.URL.Path + "?" + q.Encode()
}

type messageData struct {
	M          *store.MessageDetail
	ShowBody   bool
	Raw        string
	Segments   []segmentRow
	ParseError string
}

// message shows one message: metadata, the ACK sent, routing and its
// error, dead letters, events; and, for roles that may read bodies, its
// segments as a table beside the raw text. Reading the body is audited
// (message.view_raw) by the store in the transaction that reads it, as
// GET /api/v1/messages/{id}/body is; other roles never get it read.
func (c *Console) message(w http.ResponseWriter, r *http.Request) {
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		c.fail(w, r, errNoPage)
		return
	}
	m, err := c.store.Message(r.Context(), id)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	d := &messageData{M: m}
	s, _ := sessionOf(r.Context())
	if s.role.May(api.PermBody) {
		raw, err := c.store.MessageBody(r.Context(), id, s.name)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		d.ShowBody = true
		d.Raw = strings.ToValidUTF8(strings.ReplaceAll(strings.ReplaceAll(string(raw), "\r\n", "\r"), "\r", "\n"), "\uFFFD")
		d.Segments, d.ParseError = segmentTable(raw)
	}
	c.page(w, r, "message", newView(r, "Message "+m.ControlID, d))
}

// reprocess queues the message to be routed again (the replay path), as
// POST /api/v1/messages/{id}/reprocess does, audited by the store.
func (c *Console) reprocess(w http.ResponseWriter, r *http.Request) {
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		c.fail(w, r, errNoPage)
		return
	}
	s, _ := sessionOf(r.Context())
	queued, err := c.store.ReprocessMessage(r.Context(), id, s.name)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	ok := "reprocessed"
	if !queued {
		ok = "already-queued"
	}
	http.Redirect(w, r, basePath+"/messages/"+id.String()+"?ok="+ok, http.StatusSeeOther)
}

// --- dead letters ---

type deadLettersData struct {
	Form        url.Values
	DeadLetters []store.DeadLetter
	Older       string
}

func (c *Console) deadLetters(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.DeadLetterFilter{Status: q.Get("status"), Route: q.Get("route"), Limit: pageSize + 1}
	if f.Status == "" {
		f.Status = store.DeadLetterOpen
	}
	if !slices.Contains([]string{store.DeadLetterOpen, store.DeadLetterResolved, store.DeadLetterAll}, f.Status) {
		c.fail(w, r, badRequestf("status: give open, resolved or all"))
		return
	}
	if s := q.Get("cursor"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			c.fail(w, r, badRequestf("cursor: not a position this list gave"))
			return
		}
		f.After = n
	}
	ds, err := c.store.DeadLetters(r.Context(), f)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	d := &deadLettersData{Form: q, DeadLetters: ds}
	if len(ds) > pageSize {
		d.DeadLetters = ds[:pageSize]
		d.Older = olderURL(r, []string{"status", "route"}, strconv.FormatInt(d.DeadLetters[pageSize-1].ID, 10))
	}
	c.page(w, r, "dead-letters", newView(r, "Dead letters", d))
}

func (c *Console) resolveDeadLetter(w http.ResponseWriter, r *http.Request) {
	c.settleDeadLetter(w, r, store.ResolveReprocessed, "resolved")
}

func (c *Console) discardDeadLetter(w http.ResponseWriter, r *http.Request) {
	c.settleDeadLetter(w, r, store.ResolveDiscarded, "discarded")
}

// settleDeadLetter resolves a dead letter as the API's resolve and
// discard do, audited by the store with the optional reason.
func (c *Console) settleDeadLetter(w http.ResponseWriter, r *http.Request, resolution, ok string) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		c.fail(w, r, errNoPage)
		return
	}
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	if len(reason) > maxReason {
		c.fail(w, r, badRequestf("reason: at most %d bytes", maxReason))
		return
	}
	s, _ := sessionOf(r.Context())
	if _, err := c.store.ResolveDeadLetter(r.Context(), id, resolution, reason, s.name); err != nil {
		c.fail(w, r, err)
		return
	}
	http.Redirect(w, r, back(r, basePath+"/dead-letters", ok), http.StatusSeeOther)
}

// back is the page a POST came from (its form's "back" field, a console
// page only) with ?ok= set, else fallback.
func back(r *http.Request, fallback, ok string) string {
	target := nextPage(r.PostForm.Get("back"))
	if target == basePath+"/" {
		target = fallback
	}
	u, _ := url.Parse(target)
	q := u.Query()
	q.Set("ok", ok)
	u.RawQuery = q.Encode()
	return u.String()
}

// --- events ---

type eventsData struct {
	Type, Patient string
	StreamURL     string
}

// liveBackfill is how many of the latest events (by seq, before filters)
// the live view starts from.
const liveBackfill = 100

// events is the live view's page; its script follows eventStream.
func (c *Console) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	head, err := c.store.EventHead(r.Context())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	sq := url.Values{}
	sq.Set("after", strconv.FormatInt(max(0, head-liveBackfill), 10))
	d := &eventsData{Type: strings.TrimSpace(q.Get("type")), Patient: strings.TrimSpace(q.Get("patient"))}
	if d.Type != "" {
		sq.Set("type", d.Type)
	}
	if d.Patient != "" {
		sq.Set("patient", d.Patient)
	}
	d.StreamURL = streamPath + "?" + sq.Encode()
	c.page(w, r, "events", newView(r, "Live events", d))
}

// eventStream serves the live view: the API's event stream (the same
// code, filters, resumption and limits as GET /api/v1/events/stream) for
// the session's token.
func (c *Console) eventStream(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r.Context())
	c.stream.ServeHTTP(w, r.WithContext(api.WithPrincipal(r.Context(), s.name, s.role)))
}

// --- alerts ---

var alertFilters = []string{"status", "rule", "severity", "patient"}

type alertsData struct {
	Form   url.Values
	Alerts []store.Alert
	Older  string
}

func (c *Console) alerts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.AlertFilter{Status: q.Get("status"), Rule: q.Get("rule"), Severity: q.Get("severity"),
		Patient: strings.TrimSpace(q.Get("patient")), Limit: pageSize + 1}
	// Open alerts unless asked otherwise: what a clinician acts on.
	switch f.Status {
	case "":
		f.Status = "open"
	case "all":
		f.Status = ""
	case "open", "resolved":
	default:
		c.fail(w, r, badRequestf("status: give open, resolved or all"))
		return
	}
	after, err := parseCursor(q.Get("cursor"))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if after != nil {
		f.After = &store.AlertCursor{RaisedAt: after.t, ID: after.id}
	}
	as, err := c.store.Alerts(r.Context(), f)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	d := &alertsData{Form: q, Alerts: as}
	if len(as) > pageSize {
		d.Alerts = as[:pageSize]
		last := d.Alerts[pageSize-1]
		d.Older = olderURL(r, alertFilters, timeCursor{last.RaisedAt, last.ID}.String())
	}
	c.page(w, r, "alerts", newView(r, "Alerts", d))
}

// ackAlert acknowledges an alert through the router, the path
// POST /api/v1/alerts/{id}/ack takes: the alert, its alert.acknowledged
// event and deliveries, and the audit, under the session's token name.
func (c *Console) ackAlert(w http.ResponseWriter, r *http.Request) {
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		c.fail(w, r, errNoPage)
		return
	}
	s, _ := sessionOf(r.Context())
	_, already, err := c.router.Acknowledge(r.Context(), id, s.name, c.now())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	ok := "acknowledged"
	if already {
		ok = "already-acknowledged"
	}
	http.Redirect(w, r, back(r, basePath+"/alerts", ok), http.StatusSeeOther)
}

// --- routes ---

type routesData struct {
	File       string
	Routes     []routeRow
	Parameters []string
}

type routeRow struct {
	Name, Description  string
	Events, Handlers   []string
	OnInvalid          string
	Continue           bool
	Preliminary        bool
	Line               int
	ParametersAsListed []string
}

func (c *Console) routes(w http.ResponseWriter, r *http.Request) {
	cfg := c.router.Routes()
	d := &routesData{File: cfg.File, Parameters: cfg.Parameters.Names()}
	for _, rt := range cfg.Routes {
		d.Routes = append(d.Routes, routeRow{Name: rt.Name, Description: rt.Description, Events: rt.Events,
			Handlers: rt.Handlers, OnInvalid: string(rt.OnInvalid), Continue: rt.Continue, Preliminary: rt.Preliminary,
			Line: rt.Line, ParametersAsListed: rt.Parameters})
	}
	c.page(w, r, "routes", newView(r, "Routes", d))
}
