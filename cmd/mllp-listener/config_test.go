package main

import (
	"flag"
	"io"
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"DATABASE_URL", "MLLP_ADDR", "DEDUP_WINDOW", "AUTO_MIGRATE", "MLLP_IDLE_TIMEOUT"} {
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

func TestRedactURL(t *testing.T) {
	if got := envflag.RedactURL("postgres://aorta:s3cret@db:5432/aorta"); strings.Contains(got, "s3cret") {
		t.Errorf("redactURL leaked the password: %s", got)
	}
}
