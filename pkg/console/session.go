package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aortahealth/aorta/pkg/api"
	"github.com/aortahealth/aorta/pkg/store"
)

// Sessions. Logging in takes an API token once; the browser then holds a
// random 32-byte session ID in an HttpOnly cookie, and the database keeps
// only its SHA-256 (console_sessions). Each request reads the session and
// its token together, so the token's role is enforced exactly as in the
// API and revoking the token ends the session at the next request.

const (
	// cookieName is the session cookie; Path /console, HttpOnly,
	// SameSite=Strict, Secure when the request came over TLS.
	cookieName = "aorta_console"
	// sessionIDBytes is the random part of a session ID.
	sessionIDBytes = 32
	// csrfField is the form field every POST carries.
	csrfField = "csrf"
	// Domain prefixes keep the stored hash and the CSRF token, both
	// derived from the session ID, unrelated to each other.
	hashDomain = "aorta-console-session\x00"
	csrfDomain = "aorta-console-csrf\x00"
)

// session is the logged-in token behind a request.
type session struct {
	name string
	role api.Role
	csrf string
	hash []byte
}

type sessionKey struct{}

func sessionOf(ctx context.Context) (*session, bool) {
	s, ok := ctx.Value(sessionKey{}).(*session)
	return s, ok
}

func sessionHash(id []byte) []byte {
	h := sha256.Sum256(append([]byte(hashDomain), id...))
	return h[:]
}

// csrfToken is tied to the session: it is derived from its secret ID, so
// only a page served to that session can hold it, and it needs no storage.
func csrfToken(id []byte) string {
	h := sha256.Sum256(append([]byte(csrfDomain), id...))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// sessionID reads the session cookie: the ID, or nil when there is none
// or it is malformed.
func sessionID(r *http.Request) []byte {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	id, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil || len(id) != sessionIDBytes {
		return nil
	}
	return id
}

func setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: value, Path: basePath, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
}

// authenticate finds the request's session and puts it in the context.
// Without a live one, a page request is sent to the login page (and back
// afterwards); the live view's stream and any POST get 401.
func (c *Console) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := sessionID(r)
		var err error
		var cs store.ConsoleSession
		if id == nil {
			err = store.ErrNotFound
		} else {
			// A session cookie is a credential too: an address that has
			// had too many refused is not looked up, and a cookie naming
			// no session counts as a refusal. An expired or revoked one
			// does not: that is a real user's cookie.
			if wait, ok := c.limit.Check(r); !ok {
				c.throttled(w, r, nextPage(r.URL.RequestURI()), wait)
				return
			}
			cs, err = c.store.ConsoleSessionByHash(r.Context(), sessionHash(id), c.now(), c.idle)
			if errors.Is(err, store.ErrNotFound) {
				c.limit.Fail(r)
			}
		}
		switch {
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrSessionExpired), errors.Is(err, store.ErrTokenRevoked):
			if id != nil {
				setCookie(w, r, "", -1)
			}
			if r.Method == http.MethodGet && r.URL.Path != streamPath {
				http.Redirect(w, r, basePath+"/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.fail(w, r, errNoSession)
			return
		case err != nil:
			c.fail(w, r, err)
			return
		}
		s := &session{name: cs.TokenName, role: api.Role(cs.Role), csrf: csrfToken(id), hash: sessionHash(id)}
		if ref, ok := r.Context().Value(sessionRefKey{}).(*sessionRef); ok {
			ref.name = s.name
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)))
	})
}

// sameOrigin refuses a POST that a browser says came from another site:
// Sec-Fetch-Site other than same-origin (or none: typed by the user), or
// an Origin that is not this host. SameSite=Strict already keeps the
// cookie off such requests; this covers the login form, which has no
// session yet, and browsers without SameSite.
func sameOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
			failPlain(w, errCrossSite)
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" {
			u, err := url.Parse(origin)
			if err != nil || u.Host != r.Host {
				failPlain(w, errCrossSite)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// failPlain answers 403 without a page: for requests refused before
// anything about them is trusted.
func failPlain(w http.ResponseWriter, err error) {
	http.Error(w, err.Error(), http.StatusForbidden)
}

// checkCSRF refuses a POST whose csrf field is not the session's token.
func (c *Console) checkCSRF(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := sessionOf(r.Context())
		if err := r.ParseForm(); err != nil {
			c.fail(w, r, formError(err))
			return
		}
		got := r.PostForm.Get(csrfField)
		if s == nil || subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
			c.fail(w, r, errCSRF)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// formError keeps a body over the limit recognisable for fail (413) and
// makes any other form error a 400.
func formError(err error) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return err
	}
	return badRequestf("form: %v", err)
}

// require lets through only sessions whose role has the permission: the
// API's roles and permissions (api.Role.May), enforced on the server
// whatever the page showed.
func (c *Console) require(p api.Permission) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s, _ := sessionOf(r.Context())
			if s == nil {
				c.fail(w, r, errNoSession)
				return
			}
			if !s.role.May(p) {
				c.fail(w, r, &forbidden{role: s.role, perm: p})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// loginPage shows the login form; a live session goes straight on.
func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if id := sessionID(r); id != nil {
		if _, ok := c.limit.Check(r); ok {
			_, err := c.store.ConsoleSessionByHash(r.Context(), sessionHash(id), c.now(), c.idle)
			if err == nil {
				http.Redirect(w, r, nextPage(r.URL.Query().Get("next")), http.StatusSeeOther)
				return
			}
			if errors.Is(err, store.ErrNotFound) {
				c.limit.Fail(r)
			}
		}
	}
	v := &view{Title: "Log in", Next: nextPage(r.URL.Query().Get("next"))}
	if r.URL.Query().Get("ok") == "logged-out" {
		v.Flash = "Logged out."
	}
	c.render(w, r, http.StatusOK, "login", v)
}

// login checks the token as the API does and opens a session for it.
// Failed logins count towards the API's throttling of the client's
// address (api.AuthLimiter); a throttled address gets the login page
// again with 429 and Retry-After, its token neither hashed nor looked up.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, formError(err))
		return
	}
	token := strings.TrimSpace(r.PostForm.Get("token"))
	next := nextPage(r.PostForm.Get("next"))
	if wait, ok := c.limit.Check(r); !ok {
		c.throttled(w, r, next, wait)
		return
	}
	refuse := func() {
		c.limit.Fail(r)
		c.render(w, r, http.StatusUnauthorized, "login", &view{Title: "Log in", Next: next, Error: errBadToken.Error()})
	}
	if !api.LooksLikeToken(token) {
		refuse()
		return
	}
	t, err := c.store.Authenticate(r.Context(), api.HashToken(token))
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrTokenRevoked) {
		refuse()
		return
	}
	if err != nil {
		c.fail(w, r, err)
		return
	}
	id := make([]byte, sessionIDBytes)
	if _, err := rand.Read(id); err != nil {
		c.fail(w, r, fmt.Errorf("new session ID: %w", err))
		return
	}
	err = c.store.CreateConsoleSession(r.Context(), sessionHash(id), t.ID, c.now(), c.lifetime, c.idle)
	if errors.Is(err, store.ErrTokenRevoked) {
		refuse()
		return
	}
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if ref, ok := r.Context().Value(sessionRefKey{}).(*sessionRef); ok {
		ref.name = t.Name
	}
	// A session cookie (no Max-Age): it goes when the browser closes; the
	// server ends it after the idle timeout or its lifetime anyway.
	setCookie(w, r, base64.RawURLEncoding.EncodeToString(id), 0)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// throttled answers a client whose address has had too many tokens or
// session cookies refused: the login page, with 429 and Retry-After.
func (c *Console) throttled(w http.ResponseWriter, r *http.Request, next string, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)))
	c.render(w, r, http.StatusTooManyRequests, "login", &view{Title: "Log in", Next: next,
		Error: "Too many failed log-ins from this address. Try again in " + waitText(wait) + "."})
}

// waitText says how long a throttled client waits, in words.
func waitText(d time.Duration) string {
	switch s := int(d / time.Second); {
	case s <= 1:
		return "1 second"
	case s < 120:
		return strconv.Itoa(s) + " seconds"
	}
	return strconv.Itoa(int((d+time.Minute-1)/time.Minute)) + " minutes"
}

// logout ends the session on the server and clears the cookie.
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r.Context())
	if err := c.store.EndConsoleSession(r.Context(), s.hash, s.name); err != nil {
		c.fail(w, r, err)
		return
	}
	setCookie(w, r, "", -1)
	http.Redirect(w, r, basePath+"/login?ok=logged-out", http.StatusSeeOther)
}

// nextPage is where to go after logging in: a console page, never another
// site (an open redirect would lend the console's name to phishing).
func nextPage(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || u.Scheme != "" || u.Host != "" || strings.HasPrefix(next, "//") ||
		strings.Contains(next, "\\") || !strings.HasPrefix(u.Path, basePath+"/") ||
		strings.HasPrefix(u.Path, basePath+"/login") || u.Path == streamPath {
		return basePath + "/"
	}
	return next
}

// can says which actions a page may offer the session's role; the
// handlers check the same permissions again.
type can struct {
	Body, Analyse, Clinical bool
}

func permissions(r api.Role) can {
	return can{Body: r.May(api.PermBody), Analyse: r.May(api.PermAnalyse), Clinical: r.May(api.PermClinical)}
}
