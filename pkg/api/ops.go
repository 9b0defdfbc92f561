package api

import "net/http"

// opsSummary answers the pipeline's state for operators: outbox depth and
// oldest age, open dead letters, per sender and per route the messages of
// the last hour and day, and the routes.yaml feeds with their idle state
// (pkg/store OpsSummary). Its cost does not grow with the number of stored
// messages: it reads the router's per-minute and per-hour counts.
func (a *API) opsSummary(w http.ResponseWriter, r *http.Request) {
	if _, err := params(r); err != nil {
		a.fail(w, r, err)
		return
	}
	o, err := a.store.OpsSummary(r.Context(), a.now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, o)
}
