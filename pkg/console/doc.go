// Package console serves Aorta's web console for interface analysts,
// operators and clinicians under /console/ on the router's API address
// (docs/console.md).
//
// Pages are rendered on the server with html/template; the CSS and the
// small script of the live events view are embedded. A person logs in
// with an API token once; the console then keeps a server-side session
// (console_sessions, of which the browser holds only the random ID in an
// HttpOnly, SameSite=Strict cookie) bound to that token, so the token's
// role decides what the session may do, exactly as in the API (api.Role),
// and revoking the token ends the session.
//
// Handlers hold no SQL: every page is a pkg/store read the API also uses,
// and every action (reprocessing, resolving a dead letter, acknowledging
// an alert) is the store or router call the API makes, audited there
// under the token's name. Errors become HTTP statuses and an error page in
// one place (fail). Every POST carries the session's CSRF token; pages
// forbid inline script, framing and caching (securityHeaders).
package console
