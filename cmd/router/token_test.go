package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/api"
	"github.com/aortahealth/aorta/pkg/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// router token create prints the token once (only its hash is stored),
// list shows it without the token, revoke revokes it; names are unique.
func TestTokenCommand(t *testing.T) {
	url := pgtest.NewDatabase(t)
	run := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := tokenCommand(context.Background(), append(args, "--database-url", url, "--db-max-conns", "2", "--log-level", "error"), &out, &errOut)
		return out.String(), errOut.String(), err
	}
	out, _, err := run("create", "--name", "dr.okafor", "--role", "clinician")
	token := strings.TrimSpace(out)
	if err != nil || !strings.HasPrefix(token, "aorta_") || len(token) != 49 {
		t.Fatalf("create: %q, %v; want one aorta_ token", out, err)
	}
	st, err := store.Open(context.Background(), url, store.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if tok, err := st.Authenticate(context.Background(), api.HashToken(token)); err != nil || tok.Role != "clinician" || !strings.HasPrefix(tok.CreatedBy, "cli:") {
		t.Fatalf("the printed token: %+v, %v; want it to authenticate as a clinician created from the CLI", tok, err)
	}
	if _, _, err := run("create", "--name", "dr.okafor", "--role", "viewer"); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("same name again: %v, want refused", err)
	}
	for _, args := range [][]string{{"create", "--name", "x"}, {"create", "--name", "x", "--role", "root"}, {"create", "--role", "viewer"}, {"create", "--name", "dr okafor", "--role", "viewer"}, {"revoke"}} {
		if _, _, err := run(args...); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
	if _, stderr, err := run("rotate"); !errors.As(err, new(exitCode)) || !strings.Contains(stderr, "unknown command") {
		t.Errorf("unknown subcommand: %v %q", err, stderr)
	}
	out, _, err = run("list")
	if err != nil || !strings.Contains(out, "dr.okafor") || !strings.Contains(out, "clinician") || strings.Contains(out, token) {
		t.Errorf("list: %q, %v; want the token's name and role, never the token", out, err)
	}
	if out, _, err = run("revoke", "--name", "dr.okafor"); err != nil || !strings.Contains(out, "revoked") {
		t.Errorf("revoke: %q, %v", out, err)
	}
	if out, _, err = run("revoke", "--name", "dr.okafor"); err != nil || !strings.Contains(out, "already revoked") {
		t.Errorf("revoke again: %q, %v", out, err)
	}
	if _, err := st.Authenticate(context.Background(), api.HashToken(token)); !errors.Is(err, store.ErrTokenRevoked) {
		t.Errorf("revoked token: %v, want ErrTokenRevoked", err)
	}
	if _, _, err = run("revoke", "--name", "nobody"); err == nil {
		t.Errorf("revoking an unknown name succeeded")
	}
}
