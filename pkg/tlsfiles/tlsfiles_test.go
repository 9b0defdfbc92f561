package tlsfiles_test

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aortahealth/aorta/internal/testpki"
	"github.com/aortahealth/aorta/pkg/tlsfiles"
)

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serial makes one TLS handshake with a server using cfg and returns the
// serial number of the certificate it presented.
func serial(t *testing.T, cfg *tls.Config, ca *testpki.CA) string {
	t.Helper()
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	go func() {
		s := tls.Server(server, cfg)
		_ = s.Handshake()
		s.Close()
	}()
	client.SetDeadline(time.Now().Add(10 * time.Second))
	c := tls.Client(client, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
	if err := c.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// A replaced certificate is served at the next handshake; a change that
// cannot be loaded (a key of another certificate) keeps the previous one
// in service, is logged under the component's name, and counted.
func TestReload(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	dir := t.TempDir()
	first := ca.Server(t, "first", "127.0.0.1")
	certFile, keyFile := first.WriteFiles(t, dir)
	var logs syncBuffer
	r, err := tlsfiles.NewReloader(tlsfiles.Files{CertFile: certFile, KeyFile: keyFile, CheckInterval: -1,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Component: "api"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := r.Config()
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion %x, want TLS 1.2", cfg.MinVersion)
	}
	if got := serial(t, cfg, ca); got != first.Leaf.SerialNumber.String() {
		t.Fatalf("serves %s, want the first certificate %s", got, first.Leaf.SerialNumber)
	}
	second := ca.Server(t, "second", "127.0.0.1")
	other := ca.Server(t, "other", "127.0.0.1")
	steps := []struct {
		name         string
		write        func()
		want         string
		wantReloads  uint64
		wantFailures uint64
	}{
		{"unchanged", func() {}, first.Leaf.SerialNumber.String(), 0, 0},
		{"renewed", func() { second.WriteFiles(t, dir) }, second.Leaf.SerialNumber.String(), 1, 0},
		{"key of another certificate", func() { testpki.WriteFile(t, keyFile, other.KeyPEM) }, second.Leaf.SerialNumber.String(), 1, 1},
		{"fixed", func() { other.WriteFiles(t, dir) }, other.Leaf.SerialNumber.String(), 2, 1},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			// Modification times may not move within a coarse clock tick.
			time.Sleep(20 * time.Millisecond)
			st.write()
			if got := serial(t, cfg, ca); got != st.want {
				t.Errorf("serves %s, want %s", got, st.want)
			}
			if s := r.Stats(); s.Reloads != st.wantReloads || s.Failures != st.wantFailures {
				t.Errorf("stats %+v, want %d reloads, %d failures", s, st.wantReloads, st.wantFailures)
			}
		})
	}
	if !strings.Contains(logs.String(), `"api: TLS certificate reloaded"`) ||
		!strings.Contains(logs.String(), `"api: TLS files changed but cannot be loaded; still serving the previous certificate"`) {
		t.Errorf("log lacks the reload and the failure under the component's name:\n%s", logs.String())
	}
}

func TestNewReloaderErrors(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	dir := t.TempDir()
	certFile, keyFile := ca.Server(t, "good", "127.0.0.1").WriteFiles(t, dir)
	junk := filepath.Join(dir, "junk.pem")
	testpki.WriteFile(t, junk, []byte("junk"))
	tests := []struct {
		name    string
		files   tlsfiles.Files
		wantErr string
	}{
		{"no key file", tlsfiles.Files{CertFile: certFile}, "tls: TLS needs both a certificate file and a key file"},
		{"component named", tlsfiles.Files{CertFile: certFile, Component: "api"}, "api: TLS needs both"},
		{"missing certificate", tlsfiles.Files{CertFile: filepath.Join(dir, "absent.pem"), KeyFile: keyFile}, "absent.pem"},
		{"not PEM", tlsfiles.Files{CertFile: junk, KeyFile: keyFile}, "load TLS certificate"},
		{"client CA without a certificate", tlsfiles.Files{CertFile: certFile, KeyFile: keyFile, ClientCAFile: junk}, "holds no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tlsfiles.NewReloader(tt.files)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewReloader = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
