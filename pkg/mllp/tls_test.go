package mllp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aortahealth/aorta/internal/testpki"
)

// tlsFiles writes a server certificate for 127.0.0.1, signed by ca, and,
// when clientCA is set, that CA bundle, into a new directory, and returns
// the files.
func tlsFiles(t *testing.T, ca *testpki.CA, clientCA *testpki.CA) TLSFiles {
	t.Helper()
	dir := t.TempDir()
	f := TLSFiles{CheckInterval: -1} // look at every handshake
	f.CertFile, f.KeyFile = ca.Server(t, "mllp-test-server", "127.0.0.1").WriteFiles(t, dir)
	if clientCA != nil {
		f.ClientCAFile = filepath.Join(dir, "client-ca.pem")
		testpki.WriteFile(t, f.ClientCAFile, clientCA.PEM)
	}
	return f
}

// newReloader loads f, failing the test if it cannot.
func newReloader(t *testing.T, f TLSFiles) *TLSReloader {
	t.Helper()
	r, err := NewTLSReloader(f)
	if err != nil {
		t.Fatalf("NewTLSReloader: %v", err)
	}
	return r
}

// clientTLS is a client configuration trusting ca, presenting cert if it
// is not nil, limited to TLS versions from min to max (0: Go's defaults).
// The certificate is presented whatever CAs the server names, so that the
// server, not the client, is what refuses one from an unknown CA.
func clientTLS(ca *testpki.CA, cert *testpki.Cert, min, max uint16) *tls.Config {
	c := &tls.Config{RootCAs: ca.Pool(), MinVersion: min, MaxVersion: max}
	if cert != nil {
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert.TLS, nil }
	}
	return c
}

// exchangeTLS dials addr with cfg and sends payload, returning the
// response or the error of whichever step failed. With TLS 1.3 a refused
// client certificate shows only at the first read, so both steps count.
func exchangeTLS(addr string, cfg *tls.Config, payload string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	c, err := DialTLS(ctx, addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	resp, err := c.Send(ctx, []byte(payload))
	return string(resp), err
}

// presented returns the serial number of the certificate the server at
// addr presents.
func presented(t *testing.T, addr string, cfg *tls.Config) string {
	t.Helper()
	d := tls.Dialer{Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// tlsInfo answers every frame with what the handler learnt of the
// connection's TLS state: "version client-CN".
var tlsInfo = HandlerFunc(func(_ context.Context, ci ConnInfo, frame []byte) ([]byte, error) {
	if ci.TLS == nil {
		return []byte("plain"), nil
	}
	cn := "-"
	if len(ci.TLS.PeerCertificates) > 0 {
		cn = ci.TLS.PeerCertificates[0].Subject.CommonName
	}
	return fmt.Appendf(nil, "%s %s", tls.VersionName(ci.TLS.Version), cn), nil
})

// TestTLSExchange: a frame sent over TLS is handled and answered, and the
// handler sees the connection's TLS state.
func TestTLSExchange(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	s := &Server{Handler: tlsInfo, TLSConfig: newReloader(t, tlsFiles(t, ca, nil)).Config()}
	addr := startServer(t, s)
	for _, tc := range []struct {
		name     string
		max      uint16
		wantResp string
	}{
		{name: "TLS 1.3", max: 0, wantResp: "TLS 1.3 -"},
		{name: "TLS 1.2", max: tls.VersionTLS12, wantResp: "TLS 1.2 -"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := exchangeTLS(addr, clientTLS(ca, nil, 0, tc.max), "MSH|")
			if err != nil || resp != tc.wantResp {
				t.Errorf("exchange = %q, %v; want %q", resp, err, tc.wantResp)
			}
		})
	}
	waitFor(t, "both responses to be counted", func() bool { return s.Stats().ResponsesWritten == 2 })
	if st := s.Stats(); st.TLSHandshakeErrors != 0 {
		t.Errorf("Stats.TLSHandshakeErrors = %d, want 0", st.TLSHandshakeErrors)
	}
}

// TestTLSClientCertificates: with a client CA, only clients presenting a
// certificate it signed are served; the others fail the handshake, are
// counted, and never reach the handler.
func TestTLSClientCertificates(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	clientCA := testpki.NewCA(t, "client CA")
	otherCA := testpki.NewCA(t, "another CA")
	trusted := clientCA.Client(t, "LAB-ANALYSER-1")
	untrusted := otherCA.Client(t, "LAB-ANALYSER-1")

	var handled atomic.Int64
	h := HandlerFunc(func(ctx context.Context, ci ConnInfo, frame []byte) ([]byte, error) {
		handled.Add(1)
		return tlsInfo(ctx, ci, frame)
	})
	s := &Server{Handler: h, TLSConfig: newReloader(t, tlsFiles(t, ca, clientCA)).Config()}
	addr := startServer(t, s)

	tests := []struct {
		name     string
		cert     *testpki.Cert
		max      uint16
		wantResp string // "" for refused
	}{
		{name: "trusted certificate, TLS 1.3", cert: trusted, wantResp: "TLS 1.3 LAB-ANALYSER-1"},
		{name: "trusted certificate, TLS 1.2", cert: trusted, max: tls.VersionTLS12, wantResp: "TLS 1.2 LAB-ANALYSER-1"},
		{name: "no certificate, TLS 1.3", cert: nil},
		{name: "no certificate, TLS 1.2", cert: nil, max: tls.VersionTLS12},
		{name: "certificate from another CA, TLS 1.3", cert: untrusted},
		{name: "certificate from another CA, TLS 1.2", cert: untrusted, max: tls.VersionTLS12},
	}
	var refused uint64
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := handled.Load()
			resp, err := exchangeTLS(addr, clientTLS(ca, tc.cert, 0, tc.max), "MSH|")
			if tc.wantResp != "" {
				if err != nil || resp != tc.wantResp {
					t.Errorf("exchange = %q, %v; want %q", resp, err, tc.wantResp)
				}
				return
			}
			refused++
			if err == nil {
				t.Fatalf("exchange = %q, want the handshake refused", resp)
			}
			t.Logf("refused: %v", err)
			if handled.Load() != before {
				t.Error("the handler was called for a refused client")
			}
			waitFor(t, "the failed handshake to be counted", func() bool { return s.Stats().TLSHandshakeErrors == refused })
		})
	}
	if st := s.Stats(); st.FramesRead != 2 {
		t.Errorf("Stats.FramesRead = %d, want only the 2 trusted clients' frames", st.FramesRead)
	}
}

// TestTLSVersions: versions below TLS 1.2 are refused, whether the Server
// was given a TLSReloader's configuration or a caller's that allows them.
func TestTLSVersions(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	cert := ca.Server(t, "mllp-test-server", "127.0.0.1")
	configs := map[string]*tls.Config{
		"reloader": newReloader(t, tlsFiles(t, ca, nil)).Config(),
		"caller's config allowing TLS 1.0": {
			MinVersion: tls.VersionTLS10, Certificates: []tls.Certificate{cert.TLS},
		},
		"caller's GetConfigForClient allowing TLS 1.0": {
			GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
				return &tls.Config{MinVersion: tls.VersionTLS10, Certificates: []tls.Certificate{cert.TLS}}, nil
			},
		},
	}
	versions := []struct {
		name    string
		version uint16
		ok      bool
	}{
		{"TLS 1.0", tls.VersionTLS10, false},
		{"TLS 1.1", tls.VersionTLS11, false},
		{"TLS 1.2", tls.VersionTLS12, true},
		{"TLS 1.3", tls.VersionTLS13, true},
	}
	for name, cfg := range configs {
		t.Run(name, func(t *testing.T) {
			s := &Server{Handler: echo, TLSConfig: cfg}
			addr := startServer(t, s)
			var refused uint64
			for _, v := range versions {
				resp, err := exchangeTLS(addr, clientTLS(ca, nil, v.version, v.version), "x")
				switch {
				case v.ok && (err != nil || resp != "ACK:x"):
					t.Errorf("%s: exchange = %q, %v; want ACK:x", v.name, resp, err)
				case !v.ok && err == nil:
					t.Errorf("%s: exchange = %q, want the handshake refused", v.name, resp)
				case !v.ok:
					refused++
					t.Logf("%s refused: %v", v.name, err)
				}
			}
			waitFor(t, "failed handshakes to be counted", func() bool { return s.Stats().TLSHandshakeErrors == refused })
		})
	}
}

// TestTLSHandshakeFailures: a peer that speaks plain MLLP to a TLS
// listener, or says nothing, is closed unanswered and counted, and no
// payload reaches the log.
func TestTLSHandshakeFailures(t *testing.T) {
	const timeout = 150 * time.Millisecond
	ca := testpki.NewCA(t, "test CA")
	tests := []struct {
		name    string
		send    string
		minWait time.Duration
		wantLog string
	}{
		{name: "plain MLLP frame", send: frame("MSH|^~\\&|LAB|HOSP\rPID|1||SECRET-MRN\r"), wantLog: "TLS handshake failed"},
		{name: "silent peer", minWait: timeout, wantLog: "TLS handshake failed"},
		{name: "half a client hello", send: "\x16\x03\x01\x02\x00\x01", minWait: timeout, wantLog: "TLS handshake failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuffer
			s := &Server{
				Handler:          echo,
				TLSConfig:        newReloader(t, tlsFiles(t, ca, nil)).Config(),
				HandshakeTimeout: timeout,
				Logger:           slog.New(slog.NewJSONHandler(&logs, nil)),
			}
			c := dial(t, startServer(t, s))
			start := time.Now()
			if tc.send != "" {
				write(t, c, tc.send)
			}
			c.SetReadDeadline(start.Add(testWait))
			got, err := io.ReadAll(c)
			took := time.Since(start)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection still open after %v", testWait)
			}
			if bytes.Contains(got, []byte("ACK:")) {
				t.Errorf("server answered %q", got)
			}
			if took < tc.minWait-10*time.Millisecond {
				t.Errorf("closed after %v, want at least %v", took, tc.minWait)
			}
			waitFor(t, "the failure to be counted", func() bool { return s.Stats().TLSHandshakeErrors == 1 })
			waitFor(t, "the connection to be forgotten", func() bool { return s.Stats().Open == 0 })
			if st := s.Stats(); st.FramesRead != 0 {
				t.Errorf("Stats.FramesRead = %d, want 0", st.FramesRead)
			}
			// The warning is written just after the count.
			waitFor(t, "a log line saying "+tc.wantLog, func() bool { return strings.Contains(logs.String(), tc.wantLog) })
			if strings.Contains(logs.String(), "SECRET-MRN") {
				t.Errorf("log holds payload:\n%s", logs.String())
			}
			for _, line := range strings.Split(logs.String(), "\n") {
				if strings.Contains(line, tc.wantLog) {
					t.Logf("closed after %v; logged: %s", took.Round(time.Millisecond), line)
				}
			}
		})
	}
}

// TestTLSReload: a replaced certificate is presented from the next
// handshake; connections already open keep working; a bad file is
// counted and the previous certificate stays; with a long CheckInterval
// the files are not looked at again before it has passed.
func TestTLSReload(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	var logs syncBuffer
	f := tlsFiles(t, ca, nil)
	f.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	r := newReloader(t, f)
	s := &Server{Handler: echo, TLSConfig: r.Config()}
	addr := startServer(t, s)
	client := clientTLS(ca, nil, 0, 0)

	first := presented(t, addr, client)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	open, err := DialTLS(ctx, addr, client)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()

	dir := filepath.Dir(f.CertFile)
	steps := []struct {
		name         string
		write        func(t *testing.T) string // returns the serial now expected, "" for unchanged
		wantReloads  uint64
		wantFailures uint64
	}{
		{name: "new certificate and key", wantReloads: 1, write: func(t *testing.T) string {
			c := ca.Server(t, "renewed", "127.0.0.1")
			c.WriteFiles(t, dir)
			return c.Leaf.SerialNumber.String()
		}},
		{name: "certificate replaced by garbage", wantReloads: 1, wantFailures: 1, write: func(t *testing.T) string {
			testpki.WriteFile(t, f.CertFile, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n"))
			return ""
		}},
		{name: "certificate without its new key", wantReloads: 1, wantFailures: 2, write: func(t *testing.T) string {
			c := ca.Server(t, "half-written", "127.0.0.1")
			testpki.WriteFile(t, f.CertFile, c.CertPEM)
			return ""
		}},
		{name: "key file removed", wantReloads: 1, wantFailures: 3, write: func(t *testing.T) string {
			if err := os.Remove(f.KeyFile); err != nil {
				t.Fatal(err)
			}
			return ""
		}},
		{name: "good files again", wantReloads: 2, wantFailures: 3, write: func(t *testing.T) string {
			c := ca.Server(t, "fixed", "127.0.0.1")
			c.WriteFiles(t, dir)
			return c.Leaf.SerialNumber.String()
		}},
	}
	want := first
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if serial := st.write(t); serial != "" {
				want = serial
			}
			if got := presented(t, addr, client); got != want {
				t.Errorf("presented serial %s, want %s", got, want)
			}
			if rs := r.Stats(); rs.Reloads != st.wantReloads || rs.Failures != st.wantFailures {
				t.Errorf("Stats Reloads, Failures = %d, %d; want %d, %d", rs.Reloads, rs.Failures, st.wantReloads, st.wantFailures)
			}
			if resp, err := open.Send(ctx, []byte("still here")); err != nil || string(resp) != "ACK:still here" {
				t.Errorf("connection opened before the change: %q, %v", resp, err)
			}
		})
	}
	if !strings.Contains(logs.String(), "cannot be loaded") || !strings.Contains(logs.String(), "TLS certificate reloaded") {
		t.Errorf("log lacks the failed and the successful reloads:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "PRIVATE KEY") {
		t.Errorf("log holds key material:\n%s", logs.String())
	}

	t.Run("not looked at before CheckInterval", func(t *testing.T) {
		f := tlsFiles(t, ca, nil)
		f.CheckInterval = time.Hour
		s := &Server{Handler: echo, TLSConfig: newReloader(t, f).Config()}
		addr := startServer(t, s)
		before := presented(t, addr, client)
		ca.Server(t, "too soon", "127.0.0.1").WriteFiles(t, filepath.Dir(f.CertFile))
		if got := presented(t, addr, client); got != before {
			t.Errorf("presented serial %s, want the first one %s until an hour has passed", got, before)
		}
	})
}

// TestTLSReloadClientCA: a replaced client CA bundle applies from the next
// handshake.
func TestTLSReloadClientCA(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	oldCA, newCA := testpki.NewCA(t, "old client CA"), testpki.NewCA(t, "new client CA")
	oldClient, newClient := oldCA.Client(t, "SENDER-OLD"), newCA.Client(t, "SENDER-NEW")
	f := tlsFiles(t, ca, oldCA)
	s := &Server{Handler: tlsInfo, TLSConfig: newReloader(t, f).Config()}
	addr := startServer(t, s)

	steps := []struct {
		name      string
		bundle    []byte
		oldServed bool
		newServed bool
	}{
		{name: "old CA", bundle: nil, oldServed: true},
		{name: "new CA only", bundle: newCA.PEM, newServed: true},
		{name: "both CAs", bundle: append(bytes.Clone(oldCA.PEM), newCA.PEM...), oldServed: true, newServed: true},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.bundle != nil {
				testpki.WriteFile(t, f.ClientCAFile, st.bundle)
			}
			for _, c := range []struct {
				cert *testpki.Cert
				want bool
			}{{oldClient, st.oldServed}, {newClient, st.newServed}} {
				resp, err := exchangeTLS(addr, clientTLS(ca, c.cert, 0, 0), "x")
				cn := c.cert.Leaf.Subject.CommonName
				if served := err == nil; served != c.want {
					t.Errorf("%s: exchange = %q, %v; want served %v", cn, resp, err, c.want)
				}
			}
		})
	}
}

func TestNewTLSReloaderErrors(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	good := tlsFiles(t, ca, nil)
	other := ca.Server(t, "other", "127.0.0.1")
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		testpki.WriteFile(t, p, data)
		return p
	}
	tests := []struct {
		name    string
		files   TLSFiles
		wantErr string
	}{
		{name: "no key file named", files: TLSFiles{CertFile: good.CertFile}, wantErr: "both a certificate file and a key file"},
		{name: "missing certificate file", files: TLSFiles{CertFile: filepath.Join(dir, "absent.pem"), KeyFile: good.KeyFile}, wantErr: "absent.pem"},
		{name: "key of another certificate", files: TLSFiles{CertFile: good.CertFile, KeyFile: write("other-key.pem", other.KeyPEM)}, wantErr: "private key does not match"},
		{name: "not PEM", files: TLSFiles{CertFile: write("junk.pem", []byte("junk")), KeyFile: good.KeyFile}, wantErr: "load TLS certificate"},
		{name: "client CA file without a certificate", files: TLSFiles{CertFile: good.CertFile, KeyFile: good.KeyFile, ClientCAFile: write("empty-ca.pem", []byte("# nothing\n"))}, wantErr: "holds no PEM certificate"},
		{name: "client CA file missing", files: TLSFiles{CertFile: good.CertFile, KeyFile: good.KeyFile, ClientCAFile: filepath.Join(dir, "no-ca.pem")}, wantErr: "client CA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewTLSReloader(tc.files)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("NewTLSReloader = %v, want an error mentioning %q", err, tc.wantErr)
			}
		})
	}
}
