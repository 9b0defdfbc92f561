// Package api serves Aorta's HTTP API (/api/v1) from the router process,
// on an address of its own (router --api-addr), apart from the open admin
// endpoints.
//
// Every request carries a bearer token (Authorization: Bearer aorta_...)
// created with `router token create`; the token's role decides what it may
// do (see Role). Without a valid token the answer is 401, with a role that
// may not do it 403. The token's name is the actor recorded in audit_log
// for everything that changes data or reads a raw message body. A client
// address with too many refused tokens lately gets 429 before its token
// is looked up (AuthLimiter, shared with the console's logins).
//
// Handlers here hold no SQL: they parse and check the request, call
// pkg/store, and map its errors to an HTTP status and a JSON body
// {"error": "..."} in one place (see fail). Request bodies are bounded,
// every request has a deadline (but the event stream, which bounds each
// write instead and ends with its client or Config.Done), and lists are
// paged by keyset cursors.
//
// The API is described by api/openapi.yaml; a test walks the router and
// fails when the two disagree.
package api
