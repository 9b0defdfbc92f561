package api

import (
	"errors"
	"io"
	"net/http"

	"github.com/aortahealth/aorta/pkg/route"
)

// candidateFile is the file name validation reports problems against.
const candidateFile = "routes.yaml"

// getRoutes describes the active routes.
func (a *API) getRoutes(w http.ResponseWriter, r *http.Request) {
	if _, err := params(r); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, routesSummary(a.router.Routes()))
}

// routesSummary describes routes for the API; webhook secrets are never
// part of it.
func routesSummary(c *route.Config) map[string]any {
	routes := make([]map[string]any, 0, len(c.Routes))
	for _, r := range c.Routes {
		routes = append(routes, map[string]any{
			"name": r.Name, "description": r.Description, "events": r.Events, "handlers": r.Handlers,
			"on_invalid": r.OnInvalid, "continue": r.Continue,
		})
	}
	return map[string]any{"file": c.File, "routes": routes, "parameters": c.Parameters.Names()}
}

// reloadRoutes reloads the routes file as SIGHUP does, and audits who did
// it and with what result. A refused file answers 422 with its problems;
// the running routes stay.
func (a *API) reloadRoutes(w http.ResponseWriter, r *http.Request) {
	if _, err := params(r); err != nil {
		a.fail(w, r, err)
		return
	}
	err := a.reload("api:" + principalOf(r.Context()).name)
	details := map[string]any{"reloaded": err == nil}
	file := a.router.Routes().File
	if err == nil {
		details["routes"] = len(a.router.Routes().Routes)
	}
	// The reload has happened (or been refused) by now; an audit failure
	// is logged rather than reported as if the reload had failed.
	if aerr := a.audit(r.Context(), "routes.reload", file, details); aerr != nil {
		a.log.Error("could not audit a routes reload", "token", principalOf(r.Context()).name, "err", aerr)
	}
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"reloaded": false, "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"reloaded": true, "routes": len(a.router.Routes().Routes)})
}

// problem is one lint finding; line 0 concerns the whole file.
type problem struct {
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// validateRoutes lints a candidate routes file sent as the body, as
// `router check` does (webhook secrets are not read), without touching the
// running routes. A lint that finds problems is still a 200: valid says
// which.
func (a *API) validateRoutes(w http.ResponseWriter, r *http.Request) {
	if _, err := params(r); err != nil {
		a.fail(w, r, err)
		return
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	c, err := route.ParseWith(candidateFile, data, a.registry, route.ParseOptions{SkipSecrets: true})
	if err != nil {
		writeJSON(w, http.StatusOK, map[string]any{"valid": false, "problems": problems(err)})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"valid": true, "problems": []problem{},
		"routes": len(c.Routes), "parameters": len(c.Parameters.Names())})
}

func problems(err error) []problem {
	var list route.Errors
	var one *route.Error
	switch {
	case errors.As(err, &list):
	case errors.As(err, &one):
		list = route.Errors{one}
	default:
		return []problem{{Reason: err.Error(), Message: err.Error()}}
	}
	out := make([]problem, 0, len(list))
	for _, e := range list {
		out = append(out, problem{Line: e.Line, Column: e.Column, Reason: e.Reason, Message: e.Error()})
	}
	return out
}
