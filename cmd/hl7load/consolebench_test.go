package main

import (
	"io"
	"strings"
	"testing"
)

// Bad flags are refused before anything is started or dropped: the
// database is recreated only once the flags are known to be good.
func TestConsoleBenchRefuses(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--messages", "10"}, "--messages"},
		{[]string{"--days", "0"}, "--days"},
		{[]string{"--clients", "0"}, "--clients"},
		{[]string{"--workers", "100"}, "--workers"},
		{[]string{"--alerts", "-1"}, "--alerts"},
		{[]string{"extra"}, "unexpected"},
		{[]string{"--bin", t.TempDir(), "--messages", "1000"}, "builds the binaries first"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			err := runConsoleBench(tt.args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("runConsoleBench(%q) = %v, want an error naming %s", tt.args, err, tt.want)
			}
		})
	}
}
