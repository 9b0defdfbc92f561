package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"

	"github.com/aortahealth/aorta/pkg/route"
	"github.com/aortahealth/aorta/pkg/store"
)

// Limits on requests. Over a limit the request is answered with an error
// and nothing else is done.
const (
	// DefaultRequestTimeout bounds one request, database work included;
	// a request that runs out answers 503.
	DefaultRequestTimeout = 30 * time.Second
	// maxJSONBody bounds JSON request bodies (413 beyond).
	maxJSONBody = 64 << 10
	// maxRoutesBody bounds a candidate routes file for validation; the
	// same as the largest routes file the router loads.
	maxRoutesBody = 1 << 20
	// defaultPageSize and maxPageSize bound list pages (?limit=).
	defaultPageSize = 50
	maxPageSize     = 500
	// maxIDs bounds the message IDs of one reprocess request.
	maxIDs = 1000
)

// Router is what the API needs of the running router (pkg/router.Router).
type Router interface {
	// Routes returns the routes in use.
	Routes() *route.Config
	// Acknowledge records an alert acknowledgement with its event and
	// deliveries.
	Acknowledge(ctx context.Context, id uuid.UUID, actor string, at time.Time) (a *store.Alert, already bool, err error)
}

// Config configures the API.
type Config struct {
	Store  *store.Store
	Router Router
	// Reload reloads the routes file the router runs, as SIGHUP does; an
	// error means the file was refused and the running routes stay.
	Reload func(reason string) error
	// Registry names what a routes file may refer to, for validation.
	Registry route.Registry
	// Logger receives one debug line per request (route pattern, status,
	// token name; never a path, which may hold a patient identifier) and
	// the errors behind 5xx answers. Nil discards.
	Logger *slog.Logger
	// RequestTimeout bounds each request; zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// AuthLimiter throttles clients whose bearer tokens keep being
	// refused. Share one with the console (console.Config.AuthLimiter) so
	// that failures on either count together. Nil means one of the API's
	// own with the defaults, on Logger and Now.
	AuthLimiter *AuthLimiter

	// StreamPoll is how long a caught-up event stream waits before
	// reading the table again; zero means DefaultStreamPoll.
	StreamPoll time.Duration
	// StreamHeartbeat is how often an event stream sends ": ping"; zero
	// means DefaultStreamHeartbeat.
	StreamHeartbeat time.Duration
	// StreamWriteTimeout bounds each write to an event stream's client;
	// zero means DefaultStreamWriteTimeout.
	StreamWriteTimeout time.Duration
	// MaxStreamsPerToken bounds the event streams one token has open;
	// zero means DefaultMaxStreamsPerToken.
	MaxStreamsPerToken int
	// Done, once closed, ends every event stream. http.Server.Shutdown
	// does not wait for them otherwise (a stream is never idle): close it
	// from the server's RegisterOnShutdown. Nil: streams end only with
	// their clients.
	Done <-chan struct{}
}

// API serves /api/v1.
type API struct {
	store    *store.Store
	router   Router
	reload   func(string) error
	registry route.Registry
	log      *slog.Logger
	timeout  time.Duration
	now      func() time.Time
	limit    *AuthLimiter // nil but in Handler's API, which authenticates

	streamPoll         time.Duration
	streamHeartbeat    time.Duration
	streamWriteTimeout time.Duration
	streams            *streamLimit
	done               <-chan struct{}
}

func orDefault[T time.Duration | int](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func newAPI(cfg Config) *API {
	a := &API{store: cfg.Store, router: cfg.Router, reload: cfg.Reload, registry: cfg.Registry,
		log: cfg.Logger, timeout: cfg.RequestTimeout, now: cfg.Now,
		streamPoll:         orDefault(cfg.StreamPoll, DefaultStreamPoll),
		streamHeartbeat:    orDefault(cfg.StreamHeartbeat, DefaultStreamHeartbeat),
		streamWriteTimeout: orDefault(cfg.StreamWriteTimeout, DefaultStreamWriteTimeout),
		streams:            &streamLimit{max: orDefault(cfg.MaxStreamsPerToken, DefaultMaxStreamsPerToken), open: map[string]int{}},
		done:               cfg.Done}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.timeout <= 0 {
		a.timeout = DefaultRequestTimeout
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a
}

// Handler returns the API's routes, every one behind authentication.
func Handler(cfg Config) chi.Router {
	a := newAPI(cfg)
	if a.limit = cfg.AuthLimiter; a.limit == nil {
		a.limit = NewAuthLimiter(AuthLimiterConfig{Logger: a.log, Now: a.now})
	}
	r := chi.NewRouter()
	r.Use(middleware.Recoverer, a.logRequests, a.deadline, auditClient(a.limit))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { a.fail(w, r, errNoRoute) })
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) { a.fail(w, r, errNoMethod) })
	r.Route("/api/v1", func(r chi.Router) {
		r.Use(a.authenticate)
		read, body, analyse, clinical := a.require(PermRead), a.require(PermBody), a.require(PermAnalyse), a.require(PermClinical)

		// A routes file may be larger than any JSON body; limits nest (the
		// smaller wins), so it is outside the JSON group.
		r.With(analyse, limitBody(maxRoutesBody)).Post("/routes/validate", a.validateRoutes)

		r.Group(func(r chi.Router) {
			r.Use(limitBody(maxJSONBody))
			r.With(read).Get("/routes", a.getRoutes)
			r.With(analyse).Post("/routes/reload", a.reloadRoutes)

			r.With(read).Get("/alerts", a.listAlerts)
			r.With(clinical).Post("/alerts/{id}/ack", a.ackAlert)
			r.With(read).Get("/patients/{patient_id}/scores", a.patientScores)
			r.With(clinical).Put("/patients/{patient_id}/spo2-scale", a.setSpO2Scale)

			r.With(read).Get("/messages", a.listMessages)
			r.With(analyse).Post("/messages/reprocess", a.reprocessMessages)
			r.With(read).Get("/messages/{id}", a.getMessage)
			r.With(body).Get("/messages/{id}/body", a.getMessageBody)
			r.With(analyse).Post("/messages/{id}/reprocess", a.reprocessMessage)

			r.With(read).Get("/events", a.listEvents)
			// Lasts as long as its client: exempt from the request deadline
			// (see deadline), bounded per write instead.
			r.With(read).Get("/events/stream", a.streamEvents)

			r.With(read).Get("/ops/summary", a.opsSummary)

			r.With(read).Get("/dead-letters", a.listDeadLetters)
			r.With(analyse).Post("/dead-letters/{id}/resolve", a.resolveDeadLetter)
			r.With(analyse).Post("/dead-letters/{id}/discard", a.discardDeadLetter)
		})
	})
	return r
}

// StreamHandler returns the event stream (GET /api/v1/events/stream, its
// query parameters and answers) without the API's authentication, for a
// front end that authenticates its requests itself and puts the token in
// the context with WithPrincipal (pkg/console). It has no request
// deadline, as in the API. Its per-token stream limit is its own, apart
// from the API's.
func StreamHandler(cfg Config) http.Handler {
	return http.HandlerFunc(newAPI(cfg).streamEvents)
}

// deadline gives every request the API's timeout, but the event stream,
// which lasts as long as its client wants it: it bounds its set-up reads
// by the same timeout, and each write to the client by a timeout of its
// own. The exemption is by exact path because this runs before chi has
// routed the request; authenticate bounds its token lookup itself.
func (a *API) deadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == streamPath {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// limitBody bounds the request body; reading past n fails, and fail
// answers 413.
func limitBody(n int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Body = http.MaxBytesReader(w, r.Body, n)
			next.ServeHTTP(w, r)
		})
	}
}

// logRequests writes one debug line per request: the route pattern, never
// the path (it may name a patient), the status and the token name.
func (a *API) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		a.log.Debug("api request", "method", r.Method, "route", routePattern(r), "status", ww.Status(),
			"duration", time.Since(start), "token", principalOf(r.Context()).name)
	})
}

// routePattern is the request's chi route pattern, such as
// /api/v1/messages/{id}: what may be logged of its path.
func routePattern(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil {
		return rc.RoutePattern()
	}
	return ""
}

// Errors the handlers return for fail to map.
var (
	errNoRoute  = errors.New("no such endpoint")
	errNoMethod = errors.New("method not allowed")
)

// badRequest is a 400: the request itself is wrong.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func badRequestf(format string, args ...any) error { return &badRequest{fmt.Sprintf(format, args...)} }

// fail answers with the status err maps to and {"error": "..."}: the one
// place errors become HTTP statuses. Errors behind a 5xx are logged (they
// never hold patient data: store errors name the statement, not values)
// and not shown.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var (
		bad       *badRequest
		forbidden *forbiddenError
		tooLarge  *http.MaxBytesError
		throttled *throttledError
	)
	code, msg := http.StatusInternalServerError, "internal error"
	switch {
	case errors.Is(err, errNoToken), errors.Is(err, errInvalidToken), errors.Is(err, errRevokedToken):
		w.Header().Set("WWW-Authenticate", `Bearer realm="aorta"`)
		code, msg = http.StatusUnauthorized, err.Error()
	case errors.As(err, &throttled):
		w.Header().Set("Retry-After", strconv.Itoa(int(throttled.retryAfter/time.Second)))
		code, msg = http.StatusTooManyRequests, err.Error()
	case errors.As(err, &forbidden):
		code, msg = http.StatusForbidden, err.Error()
	case errors.As(err, &bad):
		code, msg = http.StatusBadRequest, err.Error()
	case errors.As(err, &tooLarge):
		code, msg = http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", tooLarge.Limit)
	case errors.Is(err, errTooManyStreams):
		w.Header().Set("Retry-After", "10")
		code, msg = http.StatusTooManyRequests, err.Error()
	case errors.Is(err, errNoRoute):
		code, msg = http.StatusNotFound, err.Error()
	case errors.Is(err, errNoMethod):
		code, msg = http.StatusMethodNotAllowed, err.Error()
	default:
		if c, m, ok := StoreStatus(err); ok {
			code, msg = c, m
		}
	}
	if code >= 500 {
		a.log.Error("api request failed", "method", r.Method, "route", routePattern(r), "status", code, "err", err)
	}
	writeJSON(w, code, map[string]string{"error": msg})
}

// StoreStatus maps what the store's reads and actions fail with to an
// HTTP status and a message that may be shown (never the error itself,
// which may name a statement): the part of the error mapping the API and
// the web console share. ok is false for any other error.
func StoreStatus(err error) (code int, msg string, ok bool) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "not found", true
	case errors.Is(err, store.ErrAmbiguous):
		return http.StatusConflict, "patient identifier used by several assigning authorities; give authority/id", true
	case errors.Is(err, store.ErrAlreadyResolved):
		return http.StatusConflict, "dead letter already resolved", true
	case errors.Is(err, store.ErrNotRoutable):
		return http.StatusConflict, "message was rejected or ignored when received, so it is never routed", true
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "request timed out; try again or narrow it", true
	case errors.Is(err, context.Canceled):
		return 499, "request cancelled", true // the client has gone; nobody reads this
	case store.IsTransient(err):
		return http.StatusServiceUnavailable, "database unavailable; try again", true
	}
	return 0, "", false
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// decodeJSON reads a JSON body strictly: unknown fields and trailing data
// are errors. An empty body is allowed when empty is true.
func decodeJSON(r *http.Request, v any, empty bool) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			return err
		case errors.Is(err, io.EOF) && empty:
			return nil
		}
		return badRequestf("body: %v", err)
	}
	if dec.More() {
		return badRequestf("body: more than one JSON value")
	}
	return nil
}

// params checks a request's query parameters against those the endpoint
// knows: a misspelt filter is an error, not a silent "everything".
func params(r *http.Request, known ...string) (url.Values, error) {
	q := r.URL.Query()
	for k, vs := range q {
		if !slices.Contains(known, k) {
			return nil, badRequestf("unknown query parameter %q; this endpoint takes %s", k, strings.Join(known, ", "))
		}
		if len(vs) > 1 {
			return nil, badRequestf("query parameter %q given %d times", k, len(vs))
		}
	}
	return q, nil
}

// pageLimit reads ?limit=, defaultPageSize when absent, at most
// maxPageSize.
func pageLimit(q url.Values) (int, error) {
	s := q.Get("limit")
	if s == "" {
		return defaultPageSize, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, badRequestf("limit: give a whole number from 1 to %d", maxPageSize)
	}
	return min(n, maxPageSize), nil
}

func timeParam(q url.Values, name string) (time.Time, error) {
	s := q.Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, badRequestf("%s: give an RFC 3339 time such as 2026-11-26T08:00:00Z", name)
	}
	return t, nil
}

// timeCursor is the keyset position of lists ordered by a time and an ID,
// newest first; clients treat it as opaque.
type timeCursor struct {
	T  time.Time `json:"t"`
	ID uuid.UUID `json:"id"`
}

func encodeCursor(c timeCursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (*timeCursor, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	var c timeCursor
	if err != nil || json.Unmarshal(b, &c) != nil || c.T.IsZero() {
		return nil, badRequestf("cursor: not a cursor this list returned")
	}
	return &c, nil
}

// page is a list answer: the items and, when more may follow, the cursor
// that fetches them.
type page struct {
	Items      any     `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

// nextPage trims a keyset page read with one row more than asked for
// (limit counts it): that row only says a next page exists, whose cursor
// is the last row kept.
func nextPage[T any](items []T, limit int, cursor func(T) string) ([]T, *string) {
	if len(items) < limit {
		return items, nil
	}
	items = items[:limit-1]
	next := cursor(items[len(items)-1])
	return items, &next
}

// idOnly reads the {id} of a request that takes no query parameters,
// answering the error itself when either is wrong.
func (a *API) idOnly(w http.ResponseWriter, r *http.Request) (uuid.UUID, bool) {
	if _, err := params(r); err != nil {
		a.fail(w, r, err)
		return uuid.Nil, false
	}
	id, err := pathUUID(r, "id")
	if err != nil {
		a.fail(w, r, err)
		return uuid.Nil, false
	}
	return id, true
}

func pathUUID(r *http.Request, name string) (uuid.UUID, error) {
	id, err := uuid.Parse(chi.URLParam(r, name))
	if err != nil {
		return uuid.Nil, badRequestf("%s: not a UUID", name)
	}
	return id, nil
}

// patientParam reads {patient_id}: "authority/id" URL-encoded
// (HOSP%2F123456) or an identifier that names one patient.
func patientParam(r *http.Request) (string, error) {
	ref, err := url.PathUnescape(chi.URLParam(r, "patient_id"))
	if err != nil || ref == "" {
		return "", badRequestf("patient_id: give authority/id (URL-encoded) or an unambiguous ID")
	}
	return ref, nil
}

// AuditClient returns middleware that puts the address each request came
// from (past the trusted proxies of l) in its context, for the audit rows
// written while serving it (store.WithAuditClient). The console uses it
// too.
func AuditClient(l *AuthLimiter) func(http.Handler) http.Handler { return auditClient(l) }

func auditClient(l *AuthLimiter) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(store.WithAuditClient(r.Context(), l.Client(r))))
		})
	}
}

// audit records a read or an action outside the database; actions that
// change data are audited by pkg/store in their own transaction.
func (a *API) audit(ctx context.Context, action, target string, details map[string]any) error {
	var b []byte
	if details != nil {
		var err error
		if b, err = json.Marshal(details); err != nil {
			return err
		}
	}
	return a.store.Audit(ctx, principalOf(ctx).name, action, target, b)
}
