package main

import (
	"context"
	"strings"
	"testing"
)

// A bad --api-trusted-proxies stops start-up with the flag and the entry,
// before the database is touched.
func TestServeRefusesBadTrustedProxies(t *testing.T) {
	err := runServe(context.Background(), []string{"--routes", "../../routes.yaml", "--api-trusted-proxies", "10.0.0.0/8, proxy.example"})
	if err == nil || !strings.Contains(err.Error(), "--api-trusted-proxies") || !strings.Contains(err.Error(), `"proxy.example"`) {
		t.Errorf("runServe with a host name among the trusted proxies: %v; want an error naming the flag and the entry", err)
	}
}
