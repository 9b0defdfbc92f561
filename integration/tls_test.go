package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/internal/testpki"
	"github.com/aortahealth/aorta/pkg/mllp"
)

// The tests in this file are transport security: MLLP over TLS and mutual
// TLS with certificates made by the test and given to the real binary as
// PEM files, certificate reload, the allow-list of sender addresses, and
// the per-sender connection and rate limits.

// tlsServerFiles writes a server certificate for 127.0.0.1 signed by ca
// into dir and returns the listener arguments that serve it, with the
// certificate.
func tlsServerFiles(t *testing.T, ca *testpki.CA, dir string) ([]string, *testpki.Cert) {
	t.Helper()
	cert := ca.Server(t, "aorta-listener", "127.0.0.1")
	certFile, keyFile := cert.WriteFiles(t, dir)
	return []string{"--tls-cert", certFile, "--tls-key", keyFile}, cert
}

// sendTLS delivers one frame on a new TLS connection and returns the
// answer, or the error of the dial or of the exchange: with TLS 1.3 a
// refused client certificate shows only when the client reads.
func sendTLS(addr string, cfg *tls.Config, frame []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	c, err := mllp.DialTLS(ctx, addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Send(ctx, frame)
}

// presentedSerial returns the serial number of the certificate the
// listener presents.
func presentedSerial(t *testing.T, addr string, cfg *tls.Config) string {
	t.Helper()
	d := tls.Dialer{Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// TestTLSListener: with --tls-cert and --tls-key the listener speaks MLLP
// over TLS: a message sent over TLS is stored and answered AA; a sender
// speaking plain MLLP to it gets no answer, stores nothing, and is counted
// as a failed handshake.
func TestTLSListener(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	ca := testpki.NewCA(t, "Aorta test CA")
	args, cert := tlsServerFiles(t, ca, t.TempDir())
	l := startListener(t, dbURL, args...)
	client := &tls.Config{RootCAs: ca.Pool()}

	if got := presentedSerial(t, l.MLLPAddr, client); got != cert.Leaf.SerialNumber.String() {
		t.Errorf("listener presents certificate %s, want %s", got, cert.Leaf.SerialNumber)
	}
	for _, tc := range []struct {
		name string
		max  uint16
		n    int
	}{
		{name: "TLS 1.3", max: 0, n: 1},
		{name: "TLS 1.2", max: tls.VersionTLS12, n: 2},
	} {
		msg := testMessage(1, tc.n)
		ack, err := sendTLS(l.MLLPAddr, &tls.Config{RootCAs: ca.Pool(), MaxVersion: tc.max}, msg)
		if err != nil {
			t.Fatalf("%s: send: %v", tc.name, err)
		}
		if code, msa2 := msaOf(ack); code != "AA" || msa2 != controlID(1, tc.n) {
			t.Errorf("%s: MSA %s/%s, want AA/%s", tc.name, code, msa2, controlID(1, tc.n))
		}
		row := waitForRaw(t, db, msg)
		if row.Status == "rejected" || row.AckCode != "AA" || row.Outbox != 1 {
			t.Errorf("%s: stored row status %s, ack %s, outbox rows %d; want accepted, AA, 1", tc.name, row.Status, row.AckCode, row.Outbox)
		}
		t.Logf("%s: sent %s (%d bytes) over TLS, got AA, row stored with status %s", tc.name, controlID(1, tc.n), len(msg), row.Status)
	}

	// A legacy sender pointed at the TLS port.
	plain := dialRaw(t, l.MLLPAddr)
	plain.writeFrame(testMessage(2, 1))
	if _, err := plain.waitClosed(ioTimeout); err != nil {
		t.Errorf("plain MLLP to the TLS port: %v", err)
	}
	eventually(t, ioTimeout, "the failed handshake in /metrics", func() (bool, string) {
		v := scrape(t, l.HTTPAddr).sum("aorta_mllp_tls_handshake_errors_total")
		return v == 1, fmt.Sprintf("aorta_mllp_tls_handshake_errors_total = %v", v)
	})
	if n := count(t, db, `SELECT count(*) FROM messages`); n != 2 {
		t.Errorf("messages has %d rows, want the 2 sent over TLS", n)
	}
	if l.log.contains(controlID(2, 1)) || l.log.contains("MRN00201") {
		t.Error("the listener logged content of the plain-MLLP frame")
	}
	t.Logf("plain MLLP frame to the TLS port: closed unanswered, counted, not stored")
}

// TestTLSMutual: with --tls-client-ca only senders presenting a
// certificate signed by that CA are served; one without a certificate,
// or with one from another CA, is refused during the handshake, counted,
// logged without message content, and nothing of it is stored.
func TestTLSMutual(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	ca := testpki.NewCA(t, "Aorta test CA")
	senders := testpki.NewCA(t, "Sender CA")
	stranger := testpki.NewCA(t, "Some other CA")
	dir := t.TempDir()
	args, _ := tlsServerFiles(t, ca, dir)
	caFile := filepath.Join(dir, "senders.pem")
	testpki.WriteFile(t, caFile, senders.PEM)
	l := startListener(t, dbURL, append(args, "--tls-client-ca", caFile)...)

	tests := []struct {
		name  string
		cert  *testpki.Cert
		max   uint16
		n     int
		serve bool
	}{
		{name: "certificate from the sender CA", cert: senders.Client(t, "LAB-1"), n: 1, serve: true},
		{name: "certificate from the sender CA, TLS 1.2", cert: senders.Client(t, "LAB-2"), max: tls.VersionTLS12, n: 2, serve: true},
		{name: "no certificate", cert: nil, n: 3},
		{name: "no certificate, TLS 1.2", cert: nil, max: tls.VersionTLS12, n: 4},
		{name: "certificate from another CA", cert: stranger.Client(t, "LAB-1"), n: 5},
		{name: "certificate from another CA, TLS 1.2", cert: stranger.Client(t, "LAB-1"), max: tls.VersionTLS12, n: 6},
	}
	refused := 0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &tls.Config{RootCAs: ca.Pool(), MaxVersion: tc.max}
			if tc.cert != nil {
				// Presented whatever CAs the listener names, so that the
				// listener, not the client, refuses a stranger's.
				cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tc.cert.TLS, nil }
			}
			msg := testMessage(3, tc.n)
			ack, err := sendTLS(l.MLLPAddr, cfg, msg)
			if !tc.serve {
				refused++
				if err == nil {
					t.Fatalf("sent %s: answered %q, want the handshake refused", controlID(3, tc.n), ack)
				}
				t.Logf("sent %s: refused: %v", controlID(3, tc.n), err)
				return
			}
			if err != nil {
				t.Fatalf("send: %v", err)
			}
			if code, msa2 := msaOf(ack); code != "AA" || msa2 != controlID(3, tc.n) {
				t.Errorf("MSA %s/%s, want AA/%s", code, msa2, controlID(3, tc.n))
			}
			waitForRaw(t, db, msg)
			t.Logf("sent %s with client certificate %s: AA, stored", controlID(3, tc.n), tc.cert.Leaf.Subject.CommonName)
		})
	}
	eventually(t, ioTimeout, "every refusal in /metrics", func() (bool, string) {
		v := scrape(t, l.HTTPAddr).sum("aorta_mllp_tls_handshake_errors_total")
		return v == float64(refused), fmt.Sprintf("aorta_mllp_tls_handshake_errors_total = %v, want %d", v, refused)
	})
	stored := storedByControlID(t, db)
	if len(stored) != 2 || len(stored[controlID(3, 1)]) != 1 || len(stored[controlID(3, 2)]) != 1 {
		t.Errorf("stored control IDs %v, want only %s and %s", keys(stored), controlID(3, 1), controlID(3, 2))
	}
	if recs := l.log.records("mllp: TLS handshake failed"); len(recs) != refused {
		t.Errorf("%d handshake failures logged, want %d", len(recs), refused)
	} else {
		for _, r := range recs {
			t.Logf("logged at %v: %v", r["level"], r["err"])
		}
	}
	for _, n := range []int{3, 4, 5, 6} {
		if l.log.contains(controlID(3, n)) {
			t.Errorf("the listener logged %s, sent by a refused client", controlID(3, n))
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestTLSCertificateReload: replacing the certificate and key files while
// the listener runs makes the next handshakes present the new
// certificate, without a restart; a bad file is logged and counted and
// the previous certificate stays.
func TestTLSCertificateReload(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	ca := testpki.NewCA(t, "Aorta test CA")
	dir := t.TempDir()
	args, first := tlsServerFiles(t, ca, dir)
	l := startListener(t, dbURL, args...)
	client := &tls.Config{RootCAs: ca.Pool()}
	if got := presentedSerial(t, l.MLLPAddr, client); got != first.Leaf.SerialNumber.String() {
		t.Fatalf("listener presents %s, want %s", got, first.Leaf.SerialNumber)
	}

	// A broken certificate file: still the first certificate.
	testpki.WriteFile(t, filepath.Join(dir, "cert.pem"), []byte("-----BEGIN CERTIFICATE-----\ntruncated"))
	eventually(t, ioTimeout, "the bad file to be noticed", func() (bool, string) {
		got := presentedSerial(t, l.MLLPAddr, client)
		if got != first.Leaf.SerialNumber.String() {
			return false, "presented " + got + " after a bad file"
		}
		v := scrape(t, l.HTTPAddr).sum("aorta_mllp_tls_reload_errors_total")
		return v == 1, fmt.Sprintf("aorta_mllp_tls_reload_errors_total = %v", v)
	})

	renewed := ca.Server(t, "aorta-listener-renewed", "127.0.0.1")
	renewed.WriteFiles(t, dir)
	eventually(t, ioTimeout, "the renewed certificate to be presented", func() (bool, string) {
		got := presentedSerial(t, l.MLLPAddr, client)
		return got == renewed.Leaf.SerialNumber.String(), "presented " + got
	})
	if got := scrape(t, l.HTTPAddr).sum("aorta_mllp_tls_reloads_total"); got != 1 {
		t.Errorf("aorta_mllp_tls_reloads_total = %v, want 1", got)
	}
	msg := testMessage(4, 1)
	ack, err := sendTLS(l.MLLPAddr, client, msg)
	if err != nil {
		t.Fatalf("send after the reload: %v", err)
	}
	if code, _ := msaOf(ack); code != "AA" {
		t.Errorf("after the reload: MSA %s, want AA", code)
	}
	waitForRaw(t, db, msg)
	if len(l.log.records("mllp: TLS files changed but cannot be loaded")) != 1 || len(l.log.records("mllp: TLS certificate reloaded")) != 1 {
		t.Error("the log lacks the refused and the applied reload")
	}
	t.Logf("bad file kept certificate %s; renewed certificate %s presented without restart; %s stored over it",
		first.Leaf.SerialNumber, renewed.Leaf.SerialNumber, controlID(4, 1))
}

// TestAllowCIDR: a listener whose allow-list excludes 127.0.0.1 closes
// its connections at once, before reading, counts them under
// reason="not_allowed" and logs a warning with the remote address; one
// whose list includes it serves it.
func TestAllowCIDR(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		allow string
		serve bool
	}{
		{name: "10/8 excludes 127.0.0.1", allow: "10.0.0.0/8", serve: false},
		{name: "IPv6 only excludes 127.0.0.1", allow: "2001:db8::/32,::1/128", serve: false},
		{name: "10/8 and 127.0.0.1 admit 127.0.0.1", allow: "10.0.0.0/8,127.0.0.1", serve: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dbURL := pgtest.NewDatabase(t)
			db := openDB(t, dbURL)
			l := startListener(t, dbURL, "--allow-cidr", tc.allow)
			c := dialRaw(t, l.MLLPAddr)
			c.writeFrame(testMessage(5, 1))
			m := func() metrics { return scrape(t, l.HTTPAddr) }
			if tc.serve {
				if code, _ := msaOf(c.readFrame()); code != "AA" {
					t.Errorf("--allow-cidr %s: MSA %s, want AA", tc.allow, code)
				}
				if got := m().sum("aorta_mllp_connections_refused_total"); got != 0 {
					t.Errorf("aorta_mllp_connections_refused_total = %v, want 0", got)
				}
				t.Logf("--allow-cidr %s: %s from 127.0.0.1 answered AA", tc.allow, controlID(5, 1))
				return
			}
			took, err := c.waitClosed(ioTimeout)
			if err != nil {
				t.Fatalf("--allow-cidr %s: %v", tc.allow, err)
			}
			series := `aorta_mllp_connections_refused_total{reason="not_allowed"}`
			if got := m()[series]; got != 1 {
				t.Errorf("%s = %v, want 1", series, got)
			}
			if got := m().sum("aorta_mllp_connections_accepted_total"); got != 0 {
				t.Errorf("aorta_mllp_connections_accepted_total = %v, want 0", got)
			}
			if got := m().sum("aorta_mllp_frames_read_total"); got != 0 {
				t.Errorf("aorta_mllp_frames_read_total = %v, want 0: nothing may be read", got)
			}
			if n := count(t, db, `SELECT count(*) FROM messages`); n != 0 {
				t.Errorf("messages has %d rows, want 0", n)
			}
			remote := c.c.LocalAddr().String()
			eventually(t, ioTimeout, "a warning naming "+remote, func() (bool, string) {
				for _, r := range l.log.records("mllp: connection refused: address not allowed") {
					if r["level"] == "WARN" && r["remote"] == remote {
						return true, ""
					}
				}
				return false, "no such log record"
			})
			t.Logf("--allow-cidr %s: connection from %s closed after %v, counted as %s, logged at warn, nothing stored",
				tc.allow, remote, took.Round(time.Millisecond), series)
		})
	}
}

// TestPerIPConnectionLimit: with --max-conns-per-ip 2, a third connection
// from 127.0.0.1 is closed at once and counted under
// reason="max_conns_per_ip"; the two open ones keep working, and a
// connection is served again once one of them closes.
func TestPerIPConnectionLimit(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL, "--max-conns-per-ip", "2")

	held := []*rawConn{dialRaw(t, l.MLLPAddr), dialRaw(t, l.MLLPAddr)}
	eventually(t, ioTimeout, "2 open connections", func() (bool, string) {
		v := scrape(t, l.HTTPAddr).sum("aorta_mllp_open_connections")
		return v == 2, fmt.Sprintf("%v open", v)
	})
	extra := dialRaw(t, l.MLLPAddr)
	extra.writeFrame(testMessage(6, 9))
	if _, err := extra.waitClosed(ioTimeout); err != nil {
		t.Errorf("third connection: %v", err)
	}
	series := `aorta_mllp_connections_refused_total{reason="max_conns_per_ip"}`
	if got := scrape(t, l.HTTPAddr)[series]; got != 1 {
		t.Errorf("%s = %v, want 1", series, got)
	}
	for i, c := range held {
		c.writeFrame(testMessage(6, i))
		if code, msa2 := msaOf(c.readFrame()); code != "AA" || msa2 != controlID(6, i) {
			t.Errorf("held connection %d: MSA %s/%s, want AA/%s", i, code, msa2, controlID(6, i))
		}
	}
	held[1].c.Close()
	eventually(t, ioTimeout, "a free slot", func() (bool, string) {
		v := scrape(t, l.HTTPAddr).sum("aorta_mllp_open_connections")
		return v == 1, fmt.Sprintf("%v open", v)
	})
	if code, msa2 := msaOf(send(t, l.MLLPAddr, testMessage(6, 2))); code != "AA" || msa2 != controlID(6, 2) {
		t.Errorf("connection after a slot freed: MSA %s/%s, want AA/%s", code, msa2, controlID(6, 2))
	}
	if stored := storedByControlID(t, db); len(stored) != 3 || stored[controlID(6, 9)] != nil {
		t.Errorf("stored control IDs %v, want the 3 sent on served connections", keys(stored))
	}
	t.Logf("2 connections held, the third closed and counted as %s; a slot freed serves again", series)
}

// TestRateLimitBackPressure: a sender faster than --rate-limit is slowed,
// never refused: frames sent back to back on one connection, and on a
// connection each, are all stored and answered AA, in order, no sooner
// than the rate allows, and the delays are counted.
func TestRateLimitBackPressure(t *testing.T) {
	t.Parallel()
	const (
		rate   = 10 // per second
		burst  = 2
		frames = 6
	)
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL, "--rate-limit", fmt.Sprint(rate), "--rate-burst", fmt.Sprint(burst))
	minTook := time.Duration(frames-burst) * time.Second / rate

	t.Run("pipelined on one connection", func(t *testing.T) {
		c := dialRaw(t, l.MLLPAddr)
		var all []byte
		for n := range frames {
			all = append(all, frameOf(testMessage(7, n))...)
		}
		start := time.Now()
		c.write(all)
		for n := range frames {
			if code, msa2 := msaOf(c.readFrame()); code != "AA" || msa2 != controlID(7, n) {
				t.Errorf("answer %d: MSA %s/%s, want AA/%s", n, code, msa2, controlID(7, n))
			}
		}
		took := time.Since(start)
		if took < minTook-20*time.Millisecond {
			t.Errorf("%d frames answered in %v, want at least %v at %d/s with burst %d", frames, took, minTook, rate, burst)
		}
		t.Logf("%d frames written at once, answered AA in order over %v (rate %d/s, burst %d)", frames, took.Round(time.Millisecond), rate, burst)
	})
	// The burst has been spent; let it refill so the next case starts
	// from the same state.
	time.Sleep(time.Duration(burst) * time.Second / rate)

	t.Run("a connection per message", func(t *testing.T) {
		start := time.Now()
		for n := range frames {
			if code, msa2 := msaOf(send(t, l.MLLPAddr, testMessage(8, n))); code != "AA" || msa2 != controlID(8, n) {
				t.Errorf("message %d: MSA %s/%s, want AA/%s", n, code, msa2, controlID(8, n))
			}
		}
		took := time.Since(start)
		if took < minTook-20*time.Millisecond {
			t.Errorf("%d messages answered in %v, want at least %v: the limit must survive reconnecting", frames, took, minTook)
		}
		t.Logf("%d messages on a connection each answered AA over %v", frames, took.Round(time.Millisecond))
	})

	if n := count(t, db, `SELECT count(*) FROM messages`); n != 2*frames {
		t.Errorf("messages has %d rows, want %d: none may be lost", n, 2*frames)
	}
	m := scrape(t, l.HTTPAddr)
	if got := m.sum("aorta_mllp_rate_limited_frames_total"); got < 2*(frames-burst) {
		t.Errorf("aorta_mllp_rate_limited_frames_total = %v, want at least %d", got, 2*(frames-burst))
	}
	if got := m.sum("aorta_mllp_rate_limit_closed_total"); got != 0 {
		t.Errorf("aorta_mllp_rate_limit_closed_total = %v, want 0", got)
	}
	t.Logf("delayed frames %v, waited %.3fs in all, none closed or lost",
		m.sum("aorta_mllp_rate_limited_frames_total"), m.sum("aorta_mllp_rate_limit_wait_seconds_total"))
	if strings.Contains(l.log.tail(logTailLines), "rate limit would delay") {
		t.Error("a frame hit the rate-limit wait bound")
	}
}

// TestTLSBadFilesFailStart: a listener told to serve TLS from files it
// cannot load refuses to start, at once and naming the file, rather than
// waiting for the database first or falling back to plain MLLP.
func TestTLSBadFilesFailStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testpki.NewCA(t, "Aorta test CA")
	certFile, keyFile := ca.Server(t, "aorta-listener", "127.0.0.1").WriteFiles(t, dir)
	otherKey := filepath.Join(dir, "other.key")
	testpki.WriteFile(t, otherKey, ca.Server(t, "other", "127.0.0.1").KeyPEM)
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "missing certificate", args: []string{"--tls-cert", filepath.Join(dir, "absent.pem"), "--tls-key", keyFile}, wantErr: "absent.pem"},
		{name: "key of another certificate", args: []string{"--tls-cert", certFile, "--tls-key", otherKey}, wantErr: "private key does not match"},
		{name: "key without certificate", args: []string{"--tls-key", keyFile}, wantErr: "--tls-cert"},
		{name: "bad allow-list", args: []string{"--allow-cidr", "10.0.0.0/40"}, wantErr: "10.0.0.0/40"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
			defer cancel()
			// Nothing listens on port 1: a listener that waited for the
			// database would still be waiting when ctx ends.
			args := append([]string{"--mllp-addr", "127.0.0.1:0", "--http-addr", "", "--db-wait", "1m"}, tc.args...)
			cmd := exec.CommandContext(ctx, listenerBin, args...)
			cmd.Env = listenerEnv("postgres://aorta@127.0.0.1:1/none?connect_timeout=1")
			start := time.Now()
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("listener %v still running after %v; output:\n%s", tc.args, ioTimeout, out)
			}
			if err == nil || !strings.Contains(string(out), tc.wantErr) {
				t.Fatalf("listener %v: exit %v, want a failure naming %q; output:\n%s", tc.args, err, tc.wantErr, out)
			}
			t.Logf("listener %v refused to start after %v: %s", tc.args, time.Since(start).Round(time.Millisecond), strings.TrimSpace(lastLine(string(out))))
		})
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}
