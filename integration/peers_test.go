package integration

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aortahealth/aorta/internal/pgtest"
)

// The tests in this file are peers that break the rules: garbage outside
// frames, frames too large or never finished, frames sent back to back or
// a byte at a time, too many connections. Each is bounded, counted, and
// costs the other connections nothing.

// TestGarbageBytes: bytes outside frames are dropped and counted, a frame
// after them is still answered, and a peer that sends only garbage or
// speaks another protocol is closed within a bound.
func TestGarbageBytes(t *testing.T) {
	t.Parallel()
	const maxDiscard = 1024
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL, "--max-discard", fmt.Sprint(maxDiscard), "--idle-timeout", "2s")

	// Noise before a frame, and a line feed between frames (common
	// sender habits), cost nothing.
	noise := []byte("\r\n\n  \x00\xff stray bytes from a previous session \x1c\r")
	c := dialRaw(t, l.MLLPAddr)
	c.write(append(bytes.Clone(noise), frameOf(testMessage(1, 1))...))
	if code, msa2 := msaOf(c.readFrame()); code != "AA" || msa2 != controlID(1, 1) {
		t.Errorf("frame after garbage: MSA %s/%s, want AA/%s", code, msa2, controlID(1, 1))
	}
	c.write(append([]byte("\n"), frameOf(testMessage(1, 2))...))
	if code, msa2 := msaOf(c.readFrame()); code != "AA" || msa2 != controlID(1, 2) {
		t.Errorf("frame after a line feed: MSA %s/%s, want AA/%s", code, msa2, controlID(1, 2))
	}
	discardedOK := len(noise) + 1
	c.c.Close() // between frames: a normal close, not counted anywhere

	// More than max-discard bytes outside a frame: closed.
	garbage := bytes.Repeat([]byte("not an MLLP frame "), 2*maxDiscard/18+1)
	g := dialRaw(t, l.MLLPAddr)
	g.write(garbage)
	if took, err := g.waitClosed(ioTimeout); err != nil {
		t.Errorf("%d bytes of garbage: %v", len(garbage), err)
	} else {
		t.Logf("garbage connection closed after %v", took.Round(time.Millisecond))
	}

	// An HTTP request (a health checker or a browser pointed at the wrong
	// port): no answer, closed by the idle timeout.
	req := []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: probe\r\n\r\n")
	h := dialRaw(t, l.MLLPAddr)
	h.write(req)
	if took, err := h.waitClosed(ioTimeout); err != nil {
		t.Errorf("HTTP request: %v", err)
	} else {
		t.Logf("HTTP connection closed after %v", took.Round(time.Millisecond))
	}

	m := scrape(t, l.HTTPAddr)
	minDiscarded := float64(discardedOK + maxDiscard + 1 + len(req))
	maxDiscarded := float64(discardedOK + len(garbage) + len(req))
	if got := m.sum("aorta_mllp_discarded_bytes_total"); got < minDiscarded || got > maxDiscarded {
		t.Errorf("aorta_mllp_discarded_bytes_total = %v, want %v to %v", got, minDiscarded, maxDiscarded)
	}
	if got := m.sum("aorta_mllp_garbage_closed_total"); got != 1 {
		t.Errorf("aorta_mllp_garbage_closed_total = %v, want 1", got)
	}
	if got := m.sum("aorta_mllp_idle_timeouts_total"); got != 1 {
		t.Errorf("aorta_mllp_idle_timeouts_total = %v, want 1 (the HTTP request)", got)
	}
	if n := count(t, db, `SELECT count(*) FROM messages`); n != 2 {
		t.Errorf("messages has %d rows, want the 2 real frames", n)
	}
}

// sizedMessage returns a valid message of exactly size bytes, padded in an
// NTE segment.
func sizedMessage(t *testing.T, cid string, size int) []byte {
	t.Helper()
	head := fmt.Sprintf("MSH|^~\\&|LAB|HOSP|AORTA|HOSP|20261126120000||ORU^R01^ORU_R01|%s|P|2.5.1\r"+
		"PID|1||MRN9^^^HOSP^MR||DOE^JANE\rOBX|1|NM|8867-4^Heart rate^LN||88|/min|||||F\rNTE|1||", cid)
	pad := size - len(head) - 1
	if pad < 0 {
		t.Fatalf("message cannot be as small as %d bytes", size)
	}
	text := strings.Repeat("Patient resting comfortably. ", pad/29+1)[:pad]
	return []byte(head + text + "\r")
}

// TestOversizeFrame: a frame over --max-frame-size closes the connection
// unanswered and stores nothing; one exactly at the limit is accepted.
func TestOversizeFrame(t *testing.T) {
	t.Parallel()
	const limit = 4096
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL, "--max-frame-size", fmt.Sprint(limit))

	tooLarge := 0.0
	for _, tt := range []struct {
		name   string
		size   int
		accept bool
	}{
		{"10 kB", 10 << 10, false},
		{"one byte over", limit + 1, false},
		{"exactly the limit", limit, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cid := "BIG-" + fmt.Sprint(tt.size)
			frame := sizedMessage(t, cid, tt.size)
			c := dialRaw(t, l.MLLPAddr)
			c.writeFrame(frame)
			if tt.accept {
				if code, msa2 := msaOf(c.readFrame()); code != "AA" || msa2 != cid {
					t.Errorf("%d-byte frame: MSA %s/%s, want AA/%s", tt.size, code, msa2, cid)
				}
				if row := waitForRaw(t, db, frame); row.ControlID != cid {
					t.Errorf("stored control ID %q, want %s", row.ControlID, cid)
				}
				return
			}
			if _, err := c.waitClosed(ioTimeout); err != nil {
				t.Errorf("%d-byte frame: %v", tt.size, err)
			}
			tooLarge++
			if got := scrape(t, l.HTTPAddr).sum("aorta_mllp_frames_too_large_total"); got != tooLarge {
				t.Errorf("aorta_mllp_frames_too_large_total = %v, want %v", got, tooLarge)
			}
		})
	}
	// The accepted frame was answered after the rejected ones closed, and
	// a closed frame never reaches the handler: only one row may exist.
	if n := count(t, db, `SELECT count(*) FROM messages`); n != 1 {
		t.Errorf("messages has %d rows, want only the frame at the limit", n)
	}
}

// TestStalledFrame: a peer that starts a frame and stops sending is closed
// after --frame-timeout, nothing of it is stored, and other connections
// are served meanwhile.
func TestStalledFrame(t *testing.T) {
	t.Parallel()
	const frameTimeout = 500 * time.Millisecond
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL, "--frame-timeout", frameTimeout.String())

	stalled := frameOf(testMessage(1, 1))
	c := dialRaw(t, l.MLLPAddr)
	start := time.Now()
	c.write(stalled[:len(stalled)/2])

	// Another sender is not held up.
	ack := send(t, l.MLLPAddr, testMessage(2, 1))
	if code, msa2 := msaOf(ack); code != "AA" || msa2 != controlID(2, 1) {
		t.Errorf("other connection: MSA %s/%s, want AA/%s", code, msa2, controlID(2, 1))
	}
	served := time.Since(start)

	if _, err := c.waitClosed(ioTimeout); err != nil {
		t.Fatalf("stalled connection: %v", err)
	}
	closed := time.Since(start)
	if closed < frameTimeout-50*time.Millisecond {
		t.Errorf("stalled connection closed after %v, before the %v frame timeout", closed, frameTimeout)
	}
	if served > closed {
		t.Errorf("the other connection was answered after %v, only after the stalled one closed (%v)", served, closed)
	}
	t.Logf("other connection answered after %v; stalled connection closed after %v", served.Round(time.Millisecond), closed.Round(time.Millisecond))
	if got := scrape(t, l.HTTPAddr).sum("aorta_mllp_frame_timeouts_total"); got != 1 {
		t.Errorf("aorta_mllp_frame_timeouts_total = %v, want 1", got)
	}
	if n := count(t, db, `SELECT count(*) FROM messages`); n != 1 {
		t.Errorf("messages has %d rows, want only the other connection's", n)
	}
}

// TestFraming: frames sent back to back without waiting are answered in
// order; a frame trickling in one byte per write is reassembled; framing
// bytes that do not end a frame (a lone 0x1C, a second 0x0B) are payload
// and kept in raw.
func TestFraming(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)

	t.Run("pipelined", func(t *testing.T) {
		c := dialRaw(t, l.MLLPAddr)
		var burst []byte
		for n := range 5 {
			burst = append(burst, frameOf(testMessage(1, n))...)
		}
		c.write(burst)
		for n := range 5 {
			if code, msa2 := msaOf(c.readFrame()); code != "AA" || msa2 != controlID(1, n) {
				t.Errorf("answer %d: MSA %s/%s, want AA/%s (in sending order)", n, code, msa2, controlID(1, n))
			}
		}
	})
	t.Run("one byte per write", func(t *testing.T) {
		c := dialRaw(t, l.MLLPAddr)
		for _, b := range frameOf(testMessage(2, 1)) {
			c.write([]byte{b})
		}
		if code, msa2 := msaOf(c.readFrame()); code != "AA" || msa2 != controlID(2, 1) {
			t.Errorf("MSA %s/%s, want AA/%s", code, msa2, controlID(2, 1))
		}
	})
	t.Run("framing bytes inside the payload", func(t *testing.T) {
		frame := append(testMessageWithID("FRAMING-1", 3, 1), "NTE|1||lone \x1c and \x0b bytes\r"...)
		c := dialRaw(t, l.MLLPAddr)
		c.writeFrame(frame)
		if code, msa2 := msaOf(c.readFrame()); code != "AA" || msa2 != "FRAMING-1" {
			t.Errorf("MSA %s/%s, want AA/FRAMING-1", code, msa2)
		}
		waitForRaw(t, db, frame)
	})
}

// TestMaxConnections: a connection beyond --max-connections is closed at
// once and counted; once a slot is free, a new connection is served.
func TestMaxConnections(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	l := startListener(t, dbURL, "--max-connections", "2")

	held := []*rawConn{dialRaw(t, l.MLLPAddr), dialRaw(t, l.MLLPAddr)}
	eventually(t, ioTimeout, "2 open connections", func() (bool, string) {
		v := scrape(t, l.HTTPAddr).sum("aorta_mllp_open_connections")
		return v == 2, fmt.Sprintf("%v open", v)
	})
	extra := dialRaw(t, l.MLLPAddr)
	if _, err := extra.waitClosed(ioTimeout); err != nil {
		t.Errorf("third connection: %v", err)
	}
	if got := scrape(t, l.HTTPAddr).sum("aorta_mllp_connections_refused_total"); got != 1 {
		t.Errorf("aorta_mllp_connections_refused_total = %v, want 1", got)
	}
	// The held connections still work.
	held[0].writeFrame(testMessage(1, 1))
	if code, msa2 := msaOf(held[0].readFrame()); code != "AA" || msa2 != controlID(1, 1) {
		t.Errorf("held connection: MSA %s/%s, want AA/%s", code, msa2, controlID(1, 1))
	}
	held[1].c.Close()
	eventually(t, ioTimeout, "a free slot", func() (bool, string) {
		v := scrape(t, l.HTTPAddr).sum("aorta_mllp_open_connections")
		return v == 1, fmt.Sprintf("%v open", v)
	})
	if code, msa2 := msaOf(send(t, l.MLLPAddr, testMessage(1, 2))); code != "AA" || msa2 != controlID(1, 2) {
		t.Errorf("new connection after a slot freed: MSA %s/%s, want AA/%s", code, msa2, controlID(1, 2))
	}
}
