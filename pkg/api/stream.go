package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/aortahealth/aorta/pkg/store"
)

// Limits and timings of the event stream (GET /api/v1/events/stream).
const (
	// DefaultStreamPoll is how long a stream that has caught up waits
	// before it reads the events table again. A full page is followed at
	// once by the next.
	DefaultStreamPoll = 500 * time.Millisecond
	// DefaultStreamHeartbeat is how often a stream sends a comment
	// (": ping"), so that proxies keep an idle connection open and a
	// client that has gone is noticed by the failed write.
	DefaultStreamHeartbeat = 15 * time.Second
	// DefaultStreamWriteTimeout bounds one write to a stream's client,
	// flush included; a client that does not take it within this time is
	// dropped, so a stalled reader never holds a handler for long.
	DefaultStreamWriteTimeout = 10 * time.Second
	// DefaultMaxStreamsPerToken bounds the streams one token has open at
	// once; one more is answered 429.
	DefaultMaxStreamsPerToken = 4
	// streamPage is how many events one read of the table takes.
	streamPage = 200
	// streamRetryWait is how long a stream waits after a failed read of
	// the table before trying again (the database may be restarting).
	streamRetryWait = 5 * time.Second
	// streamPath is the stream's route; the per-request deadline does not
	// apply to it (see deadline).
	streamPath = "/api/v1/events/stream"
)

// errTooManyStreams is a 429: the token has its maximum of streams open.
var errTooManyStreams = errors.New("too many event streams open for this token; close one first")

// streamLimit counts the open streams of each token.
type streamLimit struct {
	max  int
	mu   sync.Mutex
	open map[string]int // token name -> open streams
}

// acquire takes a stream slot for the token; release gives it back.
func (l *streamLimit) acquire(token string) (release func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[token] >= l.max {
		return nil, false
	}
	l.open[token]++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.open[token]--; l.open[token] <= 0 {
			delete(l.open, token)
		}
	}, true
}

// streamEvents sends events as Server-Sent Events, in seq order, as they
// are written: each one as "id: <seq>", "event: <type>" and "data: " the
// JSON object GET /api/v1/events lists. It starts after the Last-Event-ID
// header (a reconnecting EventSource sends it), else after ?after=, else
// at the current end (only new events) or, with ?from=start, at the first
// event. Filters are those of GET /api/v1/events: type, patient,
// encounter.
//
// The stream polls the table (seq > last ORDER BY seq), so writers pay
// nothing for it. It ends when the client goes, when a write to it takes
// longer than the write timeout, or when the API's Done channel closes.
// Reading events is not audited: they are not message bodies.
func (a *API) streamEvents(w http.ResponseWriter, r *http.Request) {
	q, err := params(r, "type", "patient", "encounter", "after", "from")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	f := store.EventFilter{Type: q.Get("type"), Patient: q.Get("patient"), EncounterID: q.Get("encounter"), Limit: streamPage}
	after, hasAfter, err := streamStart(r, q.Get("after"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	from := q.Get("from")
	if from != "" && from != "start" && from != "end" {
		a.fail(w, r, badRequestf("from: give start or end"))
		return
	}
	if _, ok := w.(http.Flusher); !ok {
		a.fail(w, r, errors.New("event stream: the response writer cannot flush"))
		return
	}
	release, ok := a.streams.acquire(principalOf(r.Context()).name)
	if !ok {
		a.fail(w, r, errTooManyStreams)
		return
	}
	defer release()

	// Set-up reads are bounded like any request; the stream itself is not.
	setup, cancel := context.WithTimeout(r.Context(), a.timeout)
	var keys []string
	if f.Patient != "" {
		keys, err = a.store.PatientKeys(setup, f.Patient)
	}
	switch {
	case err != nil:
	case hasAfter:
	case from == "start":
		after = 0
	default:
		after, err = a.store.EventHead(setup)
	}
	cancel()
	if err != nil {
		a.fail(w, r, err)
		return
	}

	ctx, stop := context.WithCancel(r.Context())
	defer stop()
	if a.done != nil {
		// Ends with the stream (stop) or ends it (done).
		go func() {
			select {
			case <-a.done:
				stop()
			case <-ctx.Done():
			}
		}()
	}
	rc := http.NewResponseController(w)
	// The server's timeouts are for ordinary requests. A stream has
	// nothing more to read, so no read deadline (net/http clears it for
	// its background read today; this does not rely on that), and each
	// write gets a deadline of its own (send), replacing the server's
	// WriteTimeout, which would otherwise cut the stream.
	if err := rc.SetReadDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		a.log.Debug("event stream: clear read deadline", "err", err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	s := &eventStream{w: w, rc: rc, timeout: a.streamWriteTimeout}
	if err := s.send(); err != nil {
		return
	}

	heartbeat := time.NewTicker(a.streamHeartbeat)
	defer heartbeat.Stop()
	poll := time.NewTimer(0)
	defer poll.Stop()
	f.After = after
	for {
		select {
		case <-ctx.Done():
			return
		case <-heartbeat.C:
			s.buf.WriteString(": ping\n\n")
			if err := s.send(); err != nil {
				return
			}
		case <-poll.C:
			es, head, err := a.store.TailEvents(ctx, f, keys)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				a.log.Warn("event stream: read events", "token", principalOf(ctx).name, "err", err)
				poll.Reset(streamRetryWait)
				continue
			}
			for _, e := range es {
				if err := s.event(e); err != nil {
					a.log.Error("event stream: encode event", "seq", e.Seq, "err", err)
					return
				}
				f.After = e.Seq
			}
			if len(es) > 0 {
				if err := s.send(); err != nil {
					return
				}
			}
			if len(es) == f.Limit {
				poll.Reset(0)
				continue
			}
			// Caught up: nothing up to head matched, and nothing can
			// commit later below it.
			f.After = max(f.After, head)
			poll.Reset(a.streamPoll)
		}
	}
}

// streamStart reads where a stream resumes: the Last-Event-ID header, else
// ?after=.
func streamStart(r *http.Request, afterParam string) (after int64, ok bool, err error) {
	name, s := "Last-Event-ID", r.Header.Get("Last-Event-ID")
	if s == "" {
		name, s = "after", afterParam
	}
	if s == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, false, badRequestf("%s: give an event seq", name)
	}
	return n, true, nil
}

// eventStream writes Server-Sent Events: frames are gathered in buf and
// sent, with a deadline, by send.
type eventStream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	buf     bytes.Buffer
}

// event adds one event's frame. Its JSON holds no newline (json.Marshal
// compacts the payload too), so it is one data line.
func (s *eventStream) event(e store.Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	s.buf.WriteString("id: ")
	s.buf.WriteString(strconv.FormatInt(e.Seq, 10))
	s.buf.WriteString("\nevent: ")
	s.buf.WriteString(e.Type)
	s.buf.WriteString("\ndata: ")
	s.buf.Write(b)
	s.buf.WriteString("\n\n")
	return nil
}

// send writes what is gathered and flushes it, within the write timeout.
// An error means the client is gone or stalled: the stream ends.
func (s *eventStream) send() error {
	if err := s.rc.SetWriteDeadline(time.Now().Add(s.timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	_, err := s.w.Write(s.buf.Bytes())
	s.buf.Reset()
	if err == nil {
		err = s.rc.Flush()
	}
	return err
}
