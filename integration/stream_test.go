package integration

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/aortahealth/aorta/pkg/mllp"
)

// A stream is a set of senders that behave like real MLLP senders: each
// keeps one connection, sends a message, waits for its ACK, and when no
// positive ACK comes (the connection closes, the wait times out, or the
// answer is a reject) reconnects and sends the same message again.
//
// Every exchange is recorded, so that the test can check afterwards that
// each AA it ever received is backed by a stored row.
type stream struct {
	cfg  streamConfig
	addr string

	stop   chan struct{} // closed: send no new messages, finish the current one
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	msgs []*tracked // every message any sender started, in start order

	acked atomic.Int64 // messages that got their AA
}

type streamConfig struct {
	// senders send generated messages until stop.
	senders int
	// first is the number of each sender's first message, so that a
	// second stream on the same database sends new control IDs.
	first int
	// pace is the pause between one sender's messages.
	pace time.Duration
	// attemptTimeout bounds the wait for one answer. It must exceed the
	// listener's store retry budget, or the sender gives up on frames the
	// listener is still trying to store.
	attemptTimeout time.Duration
	// messages, when set, are sent instead of generated ones: sender i
	// sends messages[i], then stops (senders and first are ignored).
	messages [][]*tracked
}

// tracked is one message and every attempt to deliver it.
type tracked struct {
	sender, seq int
	controlID   string
	raw         []byte

	mu       sync.Mutex
	attempts []attempt
}

// attempt is one frame written and what came back.
type attempt struct {
	start, end time.Time
	ack        []byte // the answer, nil when none came
	code       string // MSA-1 of ack
	msa2       string // MSA-2 of ack
	err        error  // why no answer came
}

func (m *tracked) record(a attempt) {
	m.mu.Lock()
	m.attempts = append(m.attempts, a)
	m.mu.Unlock()
}

func (m *tracked) history() []attempt {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]attempt(nil), m.attempts...)
}

// firstAA returns the first positive acknowledgement, if any.
func (m *tracked) firstAA() (attempt, bool) {
	for _, a := range m.history() {
		if a.code == "AA" {
			return a, true
		}
	}
	return attempt{}, false
}

// startStream starts cfg.senders senders against addr. They run until
// stop (or the end of their messages) or until ctx ends, which abandons
// the message in hand at once.
func startStream(ctx context.Context, addr string, cfg streamConfig) *stream {
	if cfg.attemptTimeout == 0 {
		cfg.attemptTimeout = 15 * time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &stream{cfg: cfg, addr: addr, stop: make(chan struct{}), cancel: cancel}
	n := cfg.senders
	if cfg.messages != nil {
		n = len(cfg.messages)
	}
	for i := range n {
		s.wg.Go(func() { s.run(ctx, i) })
	}
	return s
}

func (s *stream) run(ctx context.Context, sender int) {
	var c *mllp.Client
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for k := 0; ; k++ {
		var m *tracked
		if s.cfg.messages != nil {
			if k >= len(s.cfg.messages[sender]) {
				return
			}
			m = s.cfg.messages[sender][k]
		} else {
			n := s.cfg.first + k
			m = &tracked{sender: sender, seq: n, controlID: controlID(sender, n), raw: testMessage(sender, n)}
		}
		select {
		case <-s.stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		s.mu.Lock()
		s.msgs = append(s.msgs, m)
		s.mu.Unlock()
		if !s.deliver(ctx, &c, m) {
			return
		}
		if s.cfg.pace > 0 {
			select {
			case <-time.After(s.cfg.pace):
			case <-ctx.Done():
				return
			}
		}
	}
}

// deliver sends m until it gets its AA; false when ctx ended first.
func (s *stream) deliver(ctx context.Context, c **mllp.Client, m *tracked) bool {
	backoff := 10 * time.Millisecond
	pause := func() bool {
		select {
		case <-time.After(backoff):
			backoff = min(2*backoff, 250*time.Millisecond)
			return true
		case <-ctx.Done():
			return false
		}
	}
	for ctx.Err() == nil {
		if *c == nil {
			dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			nc, err := mllp.Dial(dctx, s.addr)
			cancel()
			if err != nil {
				if !pause() {
					return false
				}
				continue
			}
			*c = nc
		}
		actx, cancel := context.WithTimeout(ctx, s.cfg.attemptTimeout)
		a := attempt{start: time.Now()}
		ack, err := (*c).Send(actx, m.raw)
		cancel()
		a.end = time.Now()
		if err != nil {
			// The Client is unusable after an error: a late answer must
			// never be taken for the next message's.
			(*c).Close()
			*c = nil
			a.err = err
			m.record(a)
			if !pause() {
				return false
			}
			continue
		}
		a.ack = ack
		a.code, a.msa2 = msaOf(ack)
		m.record(a)
		if a.code == "AA" && a.msa2 == m.controlID {
			s.acked.Add(1)
			return true
		}
		// A reject (ERR 207 with --on-store-failure=reject) is re-sent.
		if !pause() {
			return false
		}
	}
	return false
}

// stopAndWait lets each sender finish its current message (get its AA)
// and waits up to d for them all. Senders still trying after d are
// stopped, and it returns false: the messages they held never got their
// AA, which the checks that follow report one by one.
func (s *stream) stopAndWait(t *testing.T, d time.Duration) bool {
	t.Helper()
	close(s.stop)
	return s.wait(t, d)
}

// wait waits up to d for every sender to return, then stops the ones
// still running and reports false.
func (s *stream) wait(t *testing.T, d time.Duration) bool {
	t.Helper()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
	}
	t.Errorf("senders still trying to deliver %v after being told to stop", d)
	s.cancel()
	select {
	case <-done:
	case <-time.After(ioTimeout):
		t.Fatalf("senders did not stop")
	}
	return false
}

// waitAcked waits until at least n messages got their AA.
func (s *stream) waitAcked(t *testing.T, n int64, d time.Duration) {
	t.Helper()
	eventually(t, d, fmt.Sprintf("%d ACKed messages", n), func() (bool, string) {
		got := s.acked.Load()
		return got >= n, fmt.Sprintf("%d ACKed", got)
	})
}

// waitAckedSince waits until at least n messages got an AA that arrived
// after since, proving that sending resumed.
func (s *stream) waitAckedSince(t *testing.T, since time.Time, n int, d time.Duration) {
	t.Helper()
	eventually(t, d, fmt.Sprintf("%d messages ACKed after %s", n, since.Format("15:04:05.000")), func() (bool, string) {
		got := 0
		for _, m := range s.all() {
			if a, ok := m.firstAA(); ok && a.end.After(since) {
				got++
			}
		}
		return got >= n, fmt.Sprintf("%d so far", got)
	})
}

// all returns every message started so far.
func (s *stream) all() []*tracked {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*tracked(nil), s.msgs...)
}

// bySender groups messages per sender, in sending order, to send them
// again in the same order.
func bySender(msgs []*tracked) [][]*tracked {
	var out [][]*tracked
	for _, m := range msgs {
		for len(out) <= m.sender {
			out = append(out, nil)
		}
		out[m.sender] = append(out[m.sender], &tracked{sender: m.sender, seq: m.seq, controlID: m.controlID, raw: m.raw})
	}
	for _, ms := range out {
		sort.Slice(ms, func(i, j int) bool { return ms[i].seq < ms[j].seq })
	}
	return out
}

// streamSummary counts what happened, for the test log.
type streamSummary struct {
	messages, acked, attempts, noAnswer, rejects int
}

func summarize(msgs []*tracked) streamSummary {
	var s streamSummary
	s.messages = len(msgs)
	for _, m := range msgs {
		if _, ok := m.firstAA(); ok {
			s.acked++
		}
		for _, a := range m.history() {
			s.attempts++
			switch {
			case a.err != nil:
				s.noAnswer++
			case a.code != "AA":
				s.rejects++
			}
		}
	}
	return s
}

func (s streamSummary) String() string {
	return fmt.Sprintf("%d messages, %d ACKed, %d frames sent, %d without answer, %d non-AA answers",
		s.messages, s.acked, s.attempts, s.noAnswer, s.rejects)
}

// checkAckedAreStored is the promise: every AA any sender received names
// its message (MSA-2), and that message is in messages byte for byte with
// its outbox row. It returns how many messages were ACKed.
func checkAckedAreStored(t *testing.T, db *pgxpool.Pool, msgs []*tracked) int {
	t.Helper()
	stored := storedByControlID(t, db)
	acked := 0
	for _, m := range msgs {
		for _, a := range m.history() {
			if a.code != "AA" {
				continue
			}
			if a.msa2 != m.controlID {
				t.Errorf("%s: AA names MSA-2 %q", m.controlID, a.msa2)
			}
		}
		if _, ok := m.firstAA(); !ok {
			continue
		}
		acked++
		rows := stored[m.controlID]
		found := false
		for _, r := range rows {
			if bytes.Equal(r.Raw, m.raw) {
				found = true
				if r.Status != "accepted" || r.Outbox != 1 {
					t.Errorf("%s: ACKed, stored with status %q and %d outbox rows, want accepted and 1", m.controlID, r.Status, r.Outbox)
				}
			}
		}
		if !found {
			t.Errorf("%s: ACKed (AA) but not in messages (%d rows with that control ID): an acknowledged message was lost", m.controlID, len(rows))
		}
	}
	return acked
}

// checkAllStoredOnce checks the end state after every message got its AA:
// exactly one row per message, byte for byte, each with one outbox row,
// and no other rows.
func checkAllStoredOnce(t *testing.T, db *pgxpool.Pool, msgs []*tracked) {
	t.Helper()
	stored := storedByControlID(t, db)
	want := map[string]bool{}
	for _, m := range msgs {
		want[m.controlID] = true
		if _, ok := m.firstAA(); !ok {
			h := m.history()
			t.Errorf("%s: never ACKed after %d attempts (last: %+v)", m.controlID, len(h), last(h))
			continue
		}
		rows := stored[m.controlID]
		if len(rows) != 1 {
			t.Errorf("%s: %d rows in messages, want 1 (a re-send must be de-duplicated)", m.controlID, len(rows))
			continue
		}
		if r := rows[0]; !bytes.Equal(r.Raw, m.raw) || r.Outbox != 1 || r.Status != "accepted" {
			t.Errorf("%s: stored raw equal=%v, outbox rows %d, status %q; want equal, 1, accepted", m.controlID, bytes.Equal(r.Raw, m.raw), r.Outbox, r.Status)
		}
	}
	for cid, rows := range stored {
		if !want[cid] {
			t.Errorf("%d unexpected rows with control ID %q", len(rows), cid)
		}
	}
}

// checkNoAckWhileDown checks that no frame written after down began got
// an AA before up: while the database is unreachable, nothing can be
// committed, so such an AA would be a lie.
func checkNoAckWhileDown(t *testing.T, msgs []*tracked, down, up time.Time) (sentWhileDown int) {
	t.Helper()
	for _, m := range msgs {
		for _, a := range m.history() {
			if a.start.Before(down) || !a.start.Before(up) {
				continue
			}
			sentWhileDown++
			if a.code == "AA" && a.end.Before(up) {
				t.Errorf("%s: sent at %s while the database was unreachable (%s to %s) and answered AA at %s",
					m.controlID, a.start.Format("15:04:05.000"), down.Format("15:04:05.000"), up.Format("15:04:05.000"), a.end.Format("15:04:05.000"))
			}
		}
	}
	return sentWhileDown
}

func last(as []attempt) any {
	if len(as) == 0 {
		return "none"
	}
	a := as[len(as)-1]
	if a.err != nil {
		return a.err
	}
	return fmt.Sprintf("answer %s/%s", a.code, a.msa2)
}
