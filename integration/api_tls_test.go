package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/internal/testpki"
)

// TestAPITLS serves the router's API over TLS with certificates made by
// the test: an HTTPS call with a token works and one without gets 401;
// plain HTTP to the port is answered with nothing but a 400; TLS 1.1 is
// refused; and a replaced certificate is served without a restart.
func TestAPITLS(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	ca := testpki.NewCA(t, "API test CA")
	dir := t.TempDir()
	first := ca.Server(t, "api-first", "127.0.0.1")
	certFile, keyFile := first.WriteFiles(t, dir)
	r := startRouter(t, dbURL, routesFile(t, "routes.yaml"), "--api-tls-cert", certFile, "--api-tls-key", keyFile)
	token := apiToken(t, dbURL, "tls-viewer", "viewer")
	if len(r.log.records("API over TLS")) != 1 {
		t.Errorf("no \"API over TLS\" line in the router's log")
	}

	client := &http.Client{Timeout: ioTimeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12},
		// A new connection per request, so each sees the current certificate.
		DisableKeepAlives: true,
	}}
	get := func(t *testing.T, c *http.Client, scheme, tok string) (int, string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+r.APIAddr+"/api/v1/ops/summary", nil)
		if err != nil {
			t.Fatal(err)
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, string(b), nil
	}

	tests := []struct {
		name     string
		client   *http.Client
		scheme   string
		token    string
		wantCode int
		wantBody string // part of the answer
	}{
		{"https with a token", client, "https", token, http.StatusOK, `"outbox"`},
		{"https without a token", client, "https", "", http.StatusUnauthorized, ""},
		{"plain http", &http.Client{Timeout: ioTimeout}, "http", token, http.StatusBadRequest, "HTTPS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, err := get(t, tt.client, tt.scheme, tt.token)
			if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
				t.Errorf("%d %q, want %d with %q", code, body, tt.wantCode, tt.wantBody)
			}
			if tt.scheme == "http" && strings.Contains(body, "outbox") {
				t.Errorf("plain HTTP was served the summary: %q", body)
			}
		})
	}

	t.Run("TLS 1.1 refused", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", r.APIAddr, ioTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(ioTimeout))
		tc := tls.Client(conn, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
		if err := tc.Handshake(); err == nil {
			t.Errorf("a TLS %s handshake succeeded", tls.VersionName(tc.ConnectionState().Version))
		}
	})

	t.Run("replaced certificate", func(t *testing.T) {
		presented := func() (string, error) {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: ioTimeout}, "tcp", r.APIAddr, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
			if err != nil {
				return "", err
			}
			defer conn.Close()
			return conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
		}
		if got, err := presented(); err != nil || got != first.Leaf.SerialNumber.String() {
			t.Fatalf("presents %s (%v), want the first certificate %s", got, err, first.Leaf.SerialNumber)
		}
		renewed := ca.Server(t, "api-renewed", "127.0.0.1")
		renewed.WriteFiles(t, dir)
		want := renewed.Leaf.SerialNumber.String()
		ok, why := poll(15*time.Second, func() (bool, string) {
			got, err := presented()
			return err == nil && got == want, fmt.Sprintf("presents %s (%v), want the renewed %s", got, err, want)
		})
		if !ok {
			t.Fatal(why)
		}
		if code, body, err := get(t, client, "https", token); err != nil || code != http.StatusOK {
			t.Errorf("after the renewal: %d %q %v, want 200", code, body, err)
		}
		ok, why = poll(10*time.Second, func() (bool, string) {
			n := len(r.log.records("api: TLS certificate reloaded"))
			return n >= 1, fmt.Sprintf("%d reload lines in the log, want at least 1", n)
		})
		if !ok {
			t.Error(why)
		}
	})
}
