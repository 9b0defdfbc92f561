package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/aortahealth/aorta/pkg/store"
)

// Role is what a token may do. Roles are not ordered: analyst and
// clinician each add their own permissions to viewer's.
type Role string

// The roles. Every role reads everything but raw message bodies.
const (
	RoleViewer    Role = "viewer"    // reads everything but raw message bodies
	RoleAnalyst   Role = "analyst"   // + raw bodies and parsed trees, reprocessing, dead letters, routes reload and validate
	RoleClinician Role = "clinician" // + alert acknowledgement and SpO2 scales
	RoleAdmin     Role = "admin"     // everything
)

// Roles lists the roles in the order documentation gives them.
var Roles = []Role{RoleViewer, RoleAnalyst, RoleClinician, RoleAdmin}

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	if slices.Contains(Roles, Role(s)) {
		return Role(s), nil
	}
	return "", fmt.Errorf("unknown role %q: give viewer, analyst, clinician or admin", s)
}

// Permission is one thing a role may do. pkg/console enforces the same
// permissions as the API through Role.May.
type Permission string

const (
	PermRead     Permission = "read"        // metadata, events, alerts, scores, dead letters, routes
	PermBody     Permission = "read bodies" // raw message bodies and their parsed trees
	PermAnalyse  Permission = "reprocess"   // reprocess messages, resolve dead letters, reload and validate routes
	PermClinical Permission = "act clinically"
)

var rolePermissions = map[Role][]Permission{
	RoleViewer:    {PermRead},
	RoleAnalyst:   {PermRead, PermBody, PermAnalyse},
	RoleClinician: {PermRead, PermClinical},
	RoleAdmin:     {PermRead, PermBody, PermAnalyse, PermClinical},
}

// May reports whether the role has the permission.
func (r Role) May(p Permission) bool { return slices.Contains(rolePermissions[r], p) }

// Token format: a fixed prefix, so that a leaked token is recognisable (and
// secret scanners can find it), then 32 random bytes in unpadded base64url.
const (
	tokenPrefix   = "aorta_"
	tokenRandom   = 32
	tokenLength   = len(tokenPrefix) + 43 // base64.RawURLEncoding.EncodedLen(32)
	maxAuthHeader = 256                   // longer Authorization headers are refused unread
)

// NewToken returns a new random token and the SHA-256 to store for it.
func NewToken() (token string, hash []byte, err error) {
	b := make([]byte, tokenRandom)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("new token: %w", err)
	}
	token = tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token), nil
}

// HashToken is the SHA-256 of a token's text, as api_tokens keeps it.
// The token holds 256 random bits, so a fast unsalted hash is enough: the
// hash cannot be reversed by guessing.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// principal is the authenticated token behind a request.
type principal struct {
	name string
	role Role
}

type principalKey struct{}

func principalOf(ctx context.Context) principal {
	p, _ := ctx.Value(principalKey{}).(principal)
	return p
}

// WithPrincipal returns ctx carrying an authenticated token's name and
// role, as the API's own authentication leaves them. It is for another
// front end on the same tokens (pkg/console, which authenticates by a
// session cookie) serving an API handler such as StreamHandler.
func WithPrincipal(ctx context.Context, name string, role Role) context.Context {
	return context.WithValue(ctx, principalKey{}, principal{name: name, role: role})
}

// LooksLikeToken reports whether s has the form of a token (the prefix and
// the length), so that text that cannot be one is refused unhashed and
// unlooked-up.
func LooksLikeToken(s string) bool {
	return len(s) == tokenLength && strings.HasPrefix(s, tokenPrefix)
}

// Errors of authentication, mapped to 401 and 403 by fail.
var (
	errNoToken      = errors.New("authentication required: send Authorization: Bearer <token>")
	errInvalidToken = errors.New("invalid token")
	errRevokedToken = errors.New("token revoked")
)

// forbiddenError is a 403: the token is valid, its role may not do this.
type forbiddenError struct {
	role Role
	perm Permission
}

func (e *forbiddenError) Error() string {
	return fmt.Sprintf("role %s may not %s", e.role, e.perm)
}

// authenticate finds the request's token and puts its name and role in
// the context; requests without a valid, unrevoked token end here. A
// client address that has had too many tokens refused lately gets 429
// before its token is read (see AuthLimiter); each refusal of a token
// presented (malformed, unknown or revoked) counts towards that. A
// request without any Authorization header does not: nothing was
// guessed and nothing is looked up.
func (a *API) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wait, ok := a.limit.Check(r); !ok {
			a.fail(w, r, &throttledError{retryAfter: wait})
			return
		}
		h := r.Header.Get("Authorization")
		if h == "" {
			a.fail(w, r, errNoToken)
			return
		}
		scheme, token, ok := strings.Cut(h, " ")
		token = strings.TrimSpace(token)
		if !ok || !strings.EqualFold(scheme, "Bearer") || len(h) > maxAuthHeader ||
			len(token) != tokenLength || !strings.HasPrefix(token, tokenPrefix) {
			a.limit.Fail(r)
			a.fail(w, r, errInvalidToken)
			return
		}
		// Bounded on its own: the event stream has no request deadline.
		actx, cancel := context.WithTimeout(r.Context(), a.timeout)
		t, err := a.store.Authenticate(actx, HashToken(token))
		cancel()
		switch {
		case errors.Is(err, store.ErrNotFound):
			a.limit.Fail(r)
			err = errInvalidToken
		case errors.Is(err, store.ErrTokenRevoked):
			a.limit.Fail(r)
			err = errRevokedToken
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		p := principal{name: t.Name, role: Role(t.Role)}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// require lets through only requests whose role has the permission.
func (a *API) require(p Permission) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if pr := principalOf(r.Context()); !pr.role.May(p) {
				a.fail(w, r, &forbiddenError{role: pr.role, perm: p})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
