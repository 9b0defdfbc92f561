package api

import (
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/aortahealth/aorta/pkg/hl7"
	"github.com/aortahealth/aorta/pkg/store"
)

// maxReason bounds the free-text reason given when settling a dead
// letter; it is kept in the audit log, so it must hold no patient data.
const maxReason = 500

var ackCodes = []string{"AA", "AE", "AR", "CA", "CE", "CR"}

// listMessages searches stored messages, newest first. Every filter is
// served by an index (migrations/00004_api.sql); bodies are never read.
func (a *API) listMessages(w http.ResponseWriter, r *http.Request) {
	q, err := params(r, "since", "until", "sender", "facility", "type", "trigger", "control_id", "ack_code", "status", "patient", "limit", "cursor")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	f := store.MessageFilter{SendingApplication: q.Get("sender"), SendingFacility: q.Get("facility"),
		MessageType: q.Get("type"), TriggerEvent: q.Get("trigger"), ControlID: q.Get("control_id"),
		AckCode: q.Get("ack_code"), Status: q.Get("status"), Patient: q.Get("patient")}
	if f.Status != "" && !slices.Contains(store.MessageStatuses, f.Status) {
		a.fail(w, r, badRequestf("status: give one of %s", strings.Join(store.MessageStatuses, ", ")))
		return
	}
	if f.AckCode != "" && !slices.Contains(ackCodes, f.AckCode) {
		a.fail(w, r, badRequestf("ack_code: give one of %s", strings.Join(ackCodes, ", ")))
		return
	}
	if f.Since, err = timeParam(q, "since"); err == nil {
		f.Until, err = timeParam(q, "until")
	}
	if err == nil {
		f.Limit, err = pageLimit(q)
	}
	var c *timeCursor
	if err == nil {
		c, err = decodeCursor(q.Get("cursor"))
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if c != nil {
		f.After = &store.MessageCursor{ReceivedAt: c.T, ID: c.ID}
	}
	f.Limit++
	ms, err := a.store.MessageSearch(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ms, next := nextPage(ms, f.Limit, func(m store.MessageSummary) string {
		return encodeCursor(timeCursor{T: m.ReceivedAt, ID: m.ID})
	})
	writeJSON(w, http.StatusOK, page{Items: ms, NextCursor: next})
}

// getMessage shows a message without its body: metadata, the ACK sent,
// the routing outcome and error, dead letters and the events it produced.
func (a *API) getMessage(w http.ResponseWriter, r *http.Request) {
	id, ok := a.idOnly(w, r)
	if !ok {
		return
	}
	m, err := a.store.Message(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

// segmentJSON is one segment of the parsed tree: its non-empty fields,
// each as repetitions of components of subcomponents, decoded.
type segmentJSON struct {
	Name   string      `json:"name"`
	Offset int         `json:"offset"`
	Fields []fieldJSON `json:"fields"`
}

type fieldJSON struct {
	Position    int          `json:"position"`
	Value       string       `json:"value"`
	Repetitions [][][]string `json:"repetitions"`
}

// getMessageBody returns a message's exact bytes and their parsed
// segment/field tree. Reading it is audited (message.view_raw) before
// anything is sent.
func (a *API) getMessageBody(w http.ResponseWriter, r *http.Request) {
	id, ok := a.idOnly(w, r)
	if !ok {
		return
	}
	raw, err := a.store.MessageBody(r.Context(), id, principalOf(r.Context()).name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := map[string]any{
		"id":          id,
		"raw":         strings.ToValidUTF8(string(raw), "\uFFFD"),
		"raw_base64":  base64.StdEncoding.EncodeToString(raw),
		"segments":    nil,
		"parse_error": nil,
	}
	if m, err := hl7.Parse(raw); err != nil {
		out["parse_error"] = err.Error() // positions and codes, never values
	} else {
		out["segments"] = tree(m)
	}
	writeJSON(w, http.StatusOK, out)
}

func tree(m *hl7.Message) []segmentJSON {
	segs := []segmentJSON{}
	for s := range m.Segments() {
		sj := segmentJSON{Name: s.Name(), Offset: s.Offset(), Fields: []fieldJSON{}}
		for n := 1; n <= s.NumFields(); n++ {
			f := s.Field(n)
			if f.IsEmpty() {
				continue
			}
			fj := fieldJSON{Position: n, Value: f.String(), Repetitions: [][][]string{}}
			for _, rep := range f.Repetitions() {
				comps := [][]string{}
				for _, c := range rep.Components() {
					subs := []string{}
					for _, sc := range c.Subcomponents() {
						subs = append(subs, sc.String())
					}
					comps = append(comps, subs)
				}
				fj.Repetitions = append(fj.Repetitions, comps)
			}
			sj.Fields = append(sj.Fields, fj)
		}
		segs = append(segs, sj)
	}
	return segs
}

// reprocessMessage queues one message to be routed again through the
// current routes (the replay path); its open dead letters are marked
// reprocessed.
func (a *API) reprocessMessage(w http.ResponseWriter, r *http.Request) {
	id, ok := a.idOnly(w, r)
	if !ok {
		return
	}
	queued, err := a.store.ReprocessMessage(r.Context(), id, principalOf(r.Context()).name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"message_id": id, "queued": queued})
}

// reprocessRequest selects the messages to reprocess; at least one field
// is required.
type reprocessRequest struct {
	Since    *time.Time  `json:"since"`
	Until    *time.Time  `json:"until"`
	Type     string      `json:"type"`
	Trigger  string      `json:"trigger"`
	Sender   string      `json:"sender"`
	Facility string      `json:"facility"`
	IDs      []uuid.UUID `json:"ids"`
}

// reprocessMessages queues the accepted messages matching a filter to be
// routed again, as `router replay` does.
func (a *API) reprocessMessages(w http.ResponseWriter, r *http.Request) {
	if _, err := params(r); err != nil {
		a.fail(w, r, err)
		return
	}
	var body reprocessRequest
	if err := decodeJSON(r, &body, false); err != nil {
		a.fail(w, r, err)
		return
	}
	if len(body.IDs) > maxIDs {
		a.fail(w, r, badRequestf("ids: at most %d per request", maxIDs))
		return
	}
	f := store.ReplayFilter{MessageType: body.Type, TriggerEvent: body.Trigger, SendingApplication: body.Sender,
		SendingFacility: body.Facility, IDs: body.IDs}
	if body.Since != nil {
		f.Since = *body.Since
	}
	if body.Until != nil {
		f.Until = *body.Until
	}
	if f.Since.IsZero() && f.Until.IsZero() && f.MessageType == "" && f.TriggerEvent == "" &&
		f.SendingApplication == "" && f.SendingFacility == "" && len(f.IDs) == 0 {
		a.fail(w, r, badRequestf("give at least one of since, until, type, trigger, sender, facility, ids"))
		return
	}
	n, err := a.store.Reprocess(r.Context(), f, principalOf(r.Context()).name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"queued": n})
}

// listEvents lists events in seq order, after a position: a consumer
// tails the table by passing the last seq it saw.
func (a *API) listEvents(w http.ResponseWriter, r *http.Request) {
	q, err := params(r, "type", "patient", "encounter", "message_id", "since", "until", "after", "limit", "cursor")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	f := store.EventFilter{Type: q.Get("type"), Patient: q.Get("patient"), EncounterID: q.Get("encounter")}
	if s := q.Get("message_id"); s != "" {
		if f.MessageID, err = uuid.Parse(s); err != nil {
			a.fail(w, r, badRequestf("message_id: not a UUID"))
			return
		}
	}
	if f.Since, err = timeParam(q, "since"); err == nil {
		f.Until, err = timeParam(q, "until")
	}
	if err == nil {
		f.Limit, err = pageLimit(q)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	for _, name := range []string{"after", "cursor"} {
		if s := q.Get(name); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				a.fail(w, r, badRequestf("%s: give an event seq", name))
				return
			}
			f.After = max(f.After, n)
		}
	}
	f.Limit++
	es, err := a.store.Events(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	es, next := nextPage(es, f.Limit, func(e store.Event) string { return strconv.FormatInt(e.Seq, 10) })
	writeJSON(w, http.StatusOK, page{Items: es, NextCursor: next})
}

// listDeadLetters lists dead letters, newest first; open ones by default.
func (a *API) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	q, err := params(r, "status", "route", "message_id", "limit", "cursor")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	f := store.DeadLetterFilter{Status: q.Get("status"), Route: q.Get("route")}
	if f.Status == "" {
		f.Status = store.DeadLetterOpen
	}
	if !slices.Contains([]string{store.DeadLetterOpen, store.DeadLetterResolved, store.DeadLetterAll}, f.Status) {
		a.fail(w, r, badRequestf("status: give open, resolved or all"))
		return
	}
	if s := q.Get("message_id"); s != "" {
		if f.MessageID, err = uuid.Parse(s); err != nil {
			a.fail(w, r, badRequestf("message_id: not a UUID"))
			return
		}
	}
	if f.Limit, err = pageLimit(q); err != nil {
		a.fail(w, r, err)
		return
	}
	if s := q.Get("cursor"); s != "" {
		if f.After, err = strconv.ParseInt(s, 10, 64); err != nil || f.After <= 0 {
			a.fail(w, r, badRequestf("cursor: not a cursor this list returned"))
			return
		}
	}
	f.Limit++
	ds, err := a.store.DeadLetters(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ds, next := nextPage(ds, f.Limit, func(d store.DeadLetter) string { return strconv.FormatInt(d.ID, 10) })
	writeJSON(w, http.StatusOK, page{Items: ds, NextCursor: next})
}

// resolveDeadLetter reprocesses a dead letter's message through the
// current routes (the replay path) and marks it reprocessed.
func (a *API) resolveDeadLetter(w http.ResponseWriter, r *http.Request) {
	a.settleDeadLetter(w, r, store.ResolveReprocessed)
}

// discardDeadLetter marks a dead letter discarded: nothing is routed.
func (a *API) discardDeadLetter(w http.ResponseWriter, r *http.Request) {
	a.settleDeadLetter(w, r, store.ResolveDiscarded)
}

func (a *API) settleDeadLetter(w http.ResponseWriter, r *http.Request, resolution string) {
	if _, err := params(r); err != nil {
		a.fail(w, r, err)
		return
	}
	var body struct {
		Reason string `json:"reason"`
	}
	if err := decodeJSON(r, &body, true); err != nil {
		a.fail(w, r, err)
		return
	}
	if len(body.Reason) > maxReason {
		a.fail(w, r, badRequestf("reason: at most %d bytes", maxReason))
		return
	}
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		a.fail(w, r, badRequestf("id: not a dead letter ID"))
		return
	}
	d, err := a.store.ResolveDeadLetter(r.Context(), id, resolution, body.Reason, principalOf(r.Context()).name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}
