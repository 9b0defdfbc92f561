package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/aortahealth/aorta/pkg/api"
	"github.com/aortahealth/aorta/pkg/store"
)

// Defaults and limits. Over a limit the request is answered with an error
// page and nothing else is done.
const (
	// DefaultSessionIdle ends a session that made no request for this
	// long: a console left open on a ward PC locks itself.
	DefaultSessionIdle = 30 * time.Minute
	// DefaultSessionLifetime ends every session this long after login,
	// however active: a shift, with margin.
	DefaultSessionLifetime = 12 * time.Hour
	// maxFormBody bounds a POSTed form (a token, a CSRF token, a reason).
	maxFormBody = 16 << 10
	// pageSize is how many rows a list page shows; one more is read to
	// know whether an "older" link is needed.
	pageSize = 50
	// maxReason bounds the reason given when settling a dead letter; it
	// is kept in the audit log (as in the API).
	maxReason = 500
	// basePath is where the console is mounted.
	basePath = "/console"
	// streamPath is the live view's event stream; it has no request
	// deadline (the API's stream code bounds each write instead).
	streamPath = basePath + "/events/stream"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config configures the console.
type Config struct {
	Store *store.Store
	// Router is the running router: its routes (the routes page) and
	// alert acknowledgement, the same path POST /api/v1/alerts/{id}/ack
	// takes.
	Router api.Router
	// Logger receives one debug line per request (route pattern, status,
	// token name; never a path or a query, which may name a patient) and
	// the errors behind 5xx answers. Nil discards.
	Logger *slog.Logger
	// RequestTimeout bounds each request but the live view's stream; zero
	// means api.DefaultRequestTimeout.
	RequestTimeout time.Duration
	// SessionIdle and SessionLifetime end sessions; zero means
	// DefaultSessionIdle and DefaultSessionLifetime.
	SessionIdle     time.Duration
	SessionLifetime time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// AuthLimiter throttles client addresses whose logins keep failing:
	// the API's (api.Config.AuthLimiter), so that failed logins and
	// refused bearer tokens count together. Nil means one of the
	// console's own with the defaults, on Logger and Now.
	AuthLimiter *api.AuthLimiter
	// StreamPoll is how often a caught-up live view reads the events
	// table; zero means api.DefaultStreamPoll.
	StreamPoll time.Duration
	// Done, once closed, ends every live view's stream, as api.Config.Done
	// does for the API's (close it from the server's RegisterOnShutdown).
	Done <-chan struct{}
}

// Console serves the web console.
type Console struct {
	store    *store.Store
	router   api.Router
	log      *slog.Logger
	timeout  time.Duration
	idle     time.Duration
	lifetime time.Duration
	now      func() time.Time
	limit    *api.AuthLimiter
	stream   http.Handler
	pages    map[string]*template.Template
}

// Handler returns the console's routes, all under /console/: mount it
// there on the API's server.
func Handler(cfg Config) (http.Handler, error) {
	c := &Console{store: cfg.Store, router: cfg.Router, log: cfg.Logger, timeout: cfg.RequestTimeout,
		idle: cfg.SessionIdle, lifetime: cfg.SessionLifetime, now: cfg.Now}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.timeout <= 0 {
		c.timeout = api.DefaultRequestTimeout
	}
	if c.idle <= 0 {
		c.idle = DefaultSessionIdle
	}
	if c.lifetime <= 0 {
		c.lifetime = DefaultSessionLifetime
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.limit = cfg.AuthLimiter; c.limit == nil {
		c.limit = api.NewAuthLimiter(api.AuthLimiterConfig{Logger: c.log, Now: c.now})
	}
	// The live view is the API's own stream code, behind the console's
	// session instead of a bearer token.
	c.stream = api.StreamHandler(api.Config{Store: cfg.Store, Logger: cfg.Logger, RequestTimeout: c.timeout,
		StreamPoll: cfg.StreamPoll, Done: cfg.Done, Now: c.now})
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("console: static files: %w", err)
	}

	r := chi.NewRouter()
	r.Use(middleware.Recoverer, c.logRequests, securityHeaders, c.deadline, slashRoot, api.AuditClient(c.limit))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { c.fail(w, r, errNoPage) })
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) { c.fail(w, r, errNoMethod) })
	r.Route(basePath, func(r chi.Router) {
		r.Handle("/static/*", http.StripPrefix(basePath+"/static/", staticFiles(http.FileServerFS(static))))
		r.Get("/login", c.loginPage)
		r.With(sameOrigin, limitForm).Post("/login", c.login)

		r.Group(func(r chi.Router) {
			r.Use(c.authenticate)
			r.Get("/", c.dashboard)
			r.Get("/messages", c.messages)
			r.Get("/messages/{id}", c.message)
			r.Get("/dead-letters", c.deadLetters)
			r.Get("/events", c.events)
			r.Get("/events/stream", c.eventStream)
			r.Get("/alerts", c.alerts)
			r.Get("/routes", c.routes)

			// Every POST: same origin, a bounded form, the session's CSRF
			// token, then the role's permission.
			r.Group(func(r chi.Router) {
				r.Use(sameOrigin, limitForm, c.checkCSRF)
				r.Post("/logout", c.logout)
				r.With(c.require(api.PermAnalyse)).Post("/messages/{id}/reprocess", c.reprocess)
				r.With(c.require(api.PermAnalyse)).Post("/dead-letters/{id}/resolve", c.resolveDeadLetter)
				r.With(c.require(api.PermAnalyse)).Post("/dead-letters/{id}/discard", c.discardDeadLetter)
				r.With(c.require(api.PermClinical)).Post("/alerts/{id}/ack", c.ackAlert)
			})
		})
	})
	return r, nil
}

// contentSecurityPolicy allows the console's own scripts, styles and
// connections and nothing else: no inline script or style, no framing, no
// form posted elsewhere.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// securityHeaders sets the headers every console answer carries. Pages
// are never cached (they show patient data); the static files set their
// own Cache-Control (staticFiles).
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		// Console URLs can hold a patient identifier (a filter): never
		// send them to another site. Not no-referrer: browsers then send
		// "Origin: null" with the console's own forms, which sameOrigin
		// must refuse.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// staticFiles lets the browser keep the embedded CSS and JavaScript for
// an hour; they hold no patient data.
func staticFiles(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private, max-age=3600")
		next.ServeHTTP(w, r)
	})
}

// deadline bounds every request but the live view's stream, which lasts
// as long as its page is open (the API's stream code bounds its set-up
// reads and each write itself).
func (c *Console) deadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == streamPath {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), c.timeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// slashRoot sends /console to /console/, the dashboard.
func slashRoot(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == basePath {
			http.Redirect(w, r, basePath+"/", http.StatusFound)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// limitForm bounds a POSTed form; reading past it fails and fail answers
// 413.
func limitForm(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
		next.ServeHTTP(w, r)
	})
}

// logRequests writes one debug line per request: the route pattern,
// never the path or query (they may name a patient), the status and the
// token name.
func (c *Console) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		// The session is found further in; it reports back through this.
		var who sessionRef
		next.ServeHTTP(ww, r.WithContext(context.WithValue(r.Context(), sessionRefKey{}, &who)))
		c.log.Debug("console request", "method", r.Method, "route", routePattern(r), "status", ww.Status(),
			"duration", time.Since(start), "token", who.name)
	})
}

// sessionRef carries the token name of a request's session back to
// logRequests.
type sessionRef struct{ name string }

type sessionRefKey struct{}

func routePattern(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil {
		return rc.RoutePattern()
	}
	return ""
}

// Errors the handlers return for fail to map.
var (
	errNoPage     = errors.New("no such page")
	errNoMethod   = errors.New("method not allowed")
	errNoSession  = errors.New("not logged in, or the session has ended: log in again")
	errCSRF       = errors.New("the form is stale or did not come from this console: reload the page and try again")
	errCrossSite  = errors.New("cross-site request refused")
	errBadToken   = errors.New("invalid or revoked token")
	errNoStreamer = errors.New("the live view cannot stream through this server")
)

// badRequest is a 400: the request itself is wrong.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func badRequestf(format string, args ...any) error { return &badRequest{fmt.Sprintf(format, args...)} }

// forbidden is a 403: the session's role may not do this.
type forbidden struct {
	role api.Role
	perm api.Permission
}

func (e *forbidden) Error() string { return fmt.Sprintf("role %s may not %s", e.role, e.perm) }

// fail answers with the error page err maps to: the one place the
// console turns errors into HTTP statuses. Errors behind a 5xx are logged
// (store errors name the statement, never values) and not shown.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error) {
	var (
		bad      *badRequest
		denied   *forbidden
		tooLarge *http.MaxBytesError
	)
	code, msg := http.StatusInternalServerError, "Something went wrong on the server; the error is logged."
	switch {
	case errors.Is(err, errNoSession), errors.Is(err, errBadToken):
		code, msg = http.StatusUnauthorized, err.Error()
	case errors.Is(err, errCSRF), errors.Is(err, errCrossSite):
		code, msg = http.StatusForbidden, err.Error()
	case errors.As(err, &denied):
		code, msg = http.StatusForbidden, err.Error()
	case errors.As(err, &bad):
		code, msg = http.StatusBadRequest, err.Error()
	case errors.As(err, &tooLarge):
		code, msg = http.StatusRequestEntityTooLarge, fmt.Sprintf("form larger than %d bytes", tooLarge.Limit)
	case errors.Is(err, errNoPage):
		code, msg = http.StatusNotFound, err.Error()
	case errors.Is(err, errNoMethod):
		code, msg = http.StatusMethodNotAllowed, err.Error()
	default:
		if sc, m, ok := api.StoreStatus(err); ok {
			code, msg = sc, m
		}
	}
	if code >= 500 {
		c.log.Error("console request failed", "method", r.Method, "route", routePattern(r), "status", code, "err", err)
	}
	s, _ := sessionOf(r.Context())
	c.render(w, r, code, "error", &view{Title: http.StatusText(code), Session: s, Error: msg, Status: code})
}

// render executes a page into a buffer first, so that a template error is
// an error page and never half a page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, code int, page string, v *view) {
	t, ok := c.pages[page]
	if !ok {
		c.log.Error("console: no such template", "page", page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	v.Page = page
	if v.Session != nil {
		v.CSRF, v.Can = v.Session.csrf, permissions(v.Session.role)
		v.User, v.Role = v.Session.name, string(v.Session.role)
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", v); err != nil {
		c.log.Error("console: render page", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write([]byte(b.String()))
}
