package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aortahealth/aorta/internal/envflag"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		check   func(c config) string // returns a complaint, or ""
		wantErr string
	}{
		{name: "defaults", env: map[string]string{"DATABASE_URL": "postgres://x@h/db"},
			check: func(c config) string {
				if c.MLLPAddr != "127.0.0.1:2575" || c.DedupWindow != 24*time.Hour || c.OnStoreFailure != "close" || !c.AutoMigrate {
					return "defaults not applied"
				}
				return ""
			}},
		{name: "environment over default", env: map[string]string{"DATABASE_URL": "postgres://x@h/db", "MLLP_ADDR": "0.0.0.0:6661", "DEDUP_WINDOW": "5m", "AUTO_MIGRATE": "false"},
			check: func(c config) string {
				if c.MLLPAddr != "0.0.0.0:6661" || c.DedupWindow != 5*time.Minute || c.AutoMigrate {
					return "environment ignored"
				}
				return ""
			}},
		{name: "flag over environment", env: map[string]string{"DATABASE_URL": "postgres://x@h/db", "MLLP_ADDR": "0.0.0.0:6661"}, args: []string{"--mllp-addr", "127.0.0.1:7000", "--database-url", "postgres://y@h/db"},
			check: func(c config) string {
				if c.MLLPAddr != "127.0.0.1:7000" || c.DatabaseURL != "postgres://y@h/db" {
					return "flag did not win"
				}
				return ""
			}},
		{name: "no database", wantErr: "no database"},
		{name: "bad duration in environment", env: map[string]string{"DATABASE_URL": "postgres://x@h/db", "MLLP_IDLE_TIMEOUT": "soon"}, wantErr: "MLLP_IDLE_TIMEOUT"},
		{name: "bad log level", env: map[string]string{"DATABASE_URL": "postgres://x@h/db"}, args: []string{"--log-level", "chatty"}, wantErr: "log level"},

		{name: "plain MLLP and no sender limits by default", env: map[string]string{"DATABASE_URL": "postgres://x@h/db"},
			check: func(c config) string {
				if c.TLSCert != "" || len(c.AllowedNets) != 0 || c.MaxConnsPerIP != 0 || c.RateLimit != 0 {
					return fmt.Sprintf("defaults: tls %q, allow %v, per-IP %d, rate %v", c.TLSCert, c.AllowedNets, c.MaxConnsPerIP, c.RateLimit)
				}
				return ""
			}},
		{name: "TLS and sender limits from the environment",
			env: map[string]string{"DATABASE_URL": "postgres://x@h/db", "MLLP_TLS_CERT": "/etc/aorta/cert.pem", "MLLP_TLS_KEY": "/etc/aorta/key.pem",
				"MLLP_TLS_CLIENT_CA": "/etc/aorta/ca.pem", "MLLP_ALLOW_CIDRS": "10.0.0.0/8, 2001:db8::/32,192.0.2.7",
				"MLLP_MAX_CONNS_PER_IP": "4", "MLLP_RATE_LIMIT": "50.5", "MLLP_RATE_BURST": "10"},
			check: func(c config) string {
				got := fmt.Sprint(c.TLSCert, " ", c.TLSKey, " ", c.TLSClientCA, " ", c.AllowedNets, " ", c.MaxConnsPerIP, " ", c.RateLimit, " ", c.RateBurst)
				want := "/etc/aorta/cert.pem /etc/aorta/key.pem /etc/aorta/ca.pem [10.0.0.0/8 2001:db8::/32 192.0.2.7/32] 4 50.5 10"
				if got != want {
					return fmt.Sprintf("got %s, want %s", got, want)
				}
				return ""
			}},
		{name: "allow-cidr flag over environment", env: map[string]string{"DATABASE_URL": "postgres://x@h/db", "MLLP_ALLOW_CIDRS": "10.0.0.0/8"}, args: []string{"--allow-cidr", "::1"},
			check: func(c config) string {
				if fmt.Sprint(c.AllowedNets) != "[::1/128]" {
					return fmt.Sprintf("allowed nets %v, want [::1/128]", c.AllowedNets)
				}
				return ""
			}},
		{name: "certificate without key", env: map[string]string{"DATABASE_URL": "postgres://x@h/db"}, args: []string{"--tls-cert", "/c.pem"}, wantErr: "both --tls-cert and --tls-key"},
		{name: "client CA without TLS", env: map[string]string{"DATABASE_URL": "postgres://x@h/db"}, args: []string{"--tls-client-ca", "/ca.pem"}, wantErr: "needs TLS"},
		{name: "bad CIDR", env: map[string]string{"DATABASE_URL": "postgres://x@h/db"}, args: []string{"--allow-cidr", "10.0.0.0/8,10.0.0.0/33"}, wantErr: "10.0.0.0/33"},
		{name: "bad address", env: map[string]string{"DATABASE_URL": "postgres://x@h/db"}, args: []string{"--allow-cidr", "lab.example"}, wantErr: "lab.example"},
		{name: "negative rate", env: map[string]string{"DATABASE_URL": "postgres://x@h/db"}, args: []string{"--rate-limit", "-1"}, wantErr: "--rate-limit"},
		{name: "rate not a number", env: map[string]string{"DATABASE_URL": "postgres://x@h/db", "MLLP_RATE_LIMIT": "fast"}, wantErr: "MLLP_RATE_LIMIT"},
		{name: "negative per-IP limit", env: map[string]string{"DATABASE_URL": "postgres://x@h/db"}, args: []string{"--max-conns-per-ip", "-2"}, wantErr: "--max-conns-per-ip"},
		{name: "commit failure hold reaches the ingester", env: map[string]string{"DATABASE_URL": "postgres://x@h/db", "COMMIT_FAILURE_HOLD": "10s"},
			check: func(c config) string {
				if got := c.ingestConfig().CommitFailureHold; got != 10*time.Second {
					return fmt.Sprintf("ingest CommitFailureHold %v, want 10s", got)
				}
				return ""
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"DATABASE_URL", "MLLP_ADDR", "DEDUP_WINDOW", "AUTO_MIGRATE", "MLLP_IDLE_TIMEOUT",
				"MLLP_TLS_CERT", "MLLP_TLS_KEY", "MLLP_TLS_CLIENT_CA", "MLLP_ALLOW_CIDRS", "MLLP_MAX_CONNS_PER_IP", "MLLP_RATE_LIMIT", "MLLP_RATE_BURST"} {
				t.Setenv(k, "")
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			c, err := parseConfig(fs, tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := tt.check(c); msg != "" {
				t.Error(msg)
			}
		})
	}
}

// TestRedactURL covers every place pgx reads a password from: the URL's
// user information, its query, and the keyword/value form.
func TestRedactURL(t *testing.T) {
	tests := []struct{ name, url, want string }{
		{"user information", "postgres://aorta:s3cret@db:5432/aorta", "postgres://aorta:xxxxx@db:5432/aorta"},
		{"escaped", "postgres://aorta:s3cret%40x@db/aorta", "postgres://aorta:xxxxx@db/aorta"},
		{"several hosts", "postgres://aorta:s3cret@db1:5432,db2:5432/aorta", "postgres://aorta:xxxxx@db1:5432,db2:5432/aorta"},
		{"query", "postgres://aorta@db/aorta?sslmode=require&password=s3cret", "postgres://aorta@db/aorta?password=xxxxx&sslmode=require"},
		{"query, key case", "postgresql:///aorta?host=/run/postgresql&PassWord=s3cret", "postgresql:///aorta?PassWord=xxxxx&host=%2Frun%2Fpostgresql"},
		{"client key password", "postgres://db/aorta?sslkey=/k.pem&sslpassword=s3cret", "postgres://db/aorta?sslkey=%2Fk.pem&sslpassword=xxxxx"},
		{"no secret", "postgres://aorta@db/aorta?sslmode=disable", "postgres://aorta@db/aorta?sslmode=disable"},
		{"keywords", "host=db user=aorta password=s3cret dbname=aorta", "host=db user=aorta password=xxxxx dbname=aorta"},
		{"keywords, quoted", "host=db password = 's3 \\'cret' sslpassword=s3cret dbname=aorta", "host=db password = xxxxx sslpassword=xxxxx dbname=aorta"},
		{"keywords, open quote", "host=db password='s3 cret", "host=db password=xxxxx"},
		{"bad query", "postgres://aorta@db/aorta?password=s3cret%zz", "(unparseable)"},
		{"bad URL", "postgres://aorta:s3cret@db:port/aorta", "(unparseable)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := envflag.RedactURL(tt.url)
			if got != tt.want {
				t.Errorf("RedactURL(%q) = %q, want %q", tt.url, got, tt.want)
			}
			if strings.Contains(got, "s3") {
				t.Errorf("RedactURL(%q) leaked the password: %s", tt.url, got)
			}
		})
	}
}

// TestStartupLineHidesPassword logs the effective configuration as the
// ready line does and looks for the password in it.
func TestStartupLineHidesPassword(t *testing.T) {
	for _, u := range []string{
		"postgres://aorta:s3cret-pw@db/aorta",
		"postgres://aorta@db/aorta?password=s3cret-pw",
		"host=db user=aorta password=s3cret-pw",
	} {
		t.Setenv("DATABASE_URL", u)
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c, err := parseConfig(fs, nil)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		slog.New(slog.NewJSONHandler(&b, nil)).Info("mllp-listener ready", c.logAttrs()...)
		if strings.Contains(b.String(), "s3cret") || !strings.Contains(b.String(), `"database_url":`) {
			t.Errorf("DATABASE_URL %s: start-up line %s", u, b.String())
		}
	}
}
