package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"regexp"
	"text/tabwriter"
	"time"

	"github.com/aortahealth/aorta/internal/envflag"
	"github.com/aortahealth/aorta/pkg/api"
	"github.com/aortahealth/aorta/pkg/store"
)

// runToken manages the HTTP API's bearer tokens: create (the token is
// printed once and only its hash is stored), list and revoke. Creation and
// revocation are audited with the operating-system user as the actor.
func runToken(ctx context.Context, args []string) error {
	return tokenCommand(ctx, args, os.Stdout, os.Stderr)
}

func tokenCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := "Usage:\n  router token create --name NAME --role viewer|analyst|clinician|admin\n  router token list\n  router token revoke --name NAME\n\nEach command takes the database flags too (-h lists them).\n"
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitCode(2)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("router token "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	f := envflag.New(fs)
	var d dbFlags
	d.declare(f)
	var name, role string
	switch sub {
	case "create":
		fs.StringVar(&name, "name", "", "who or what holds the token (a person or a service); recorded as the actor in audit_log")
		fs.StringVar(&role, "role", "", "viewer, analyst, clinician or admin (docs/api.md)")
	case "revoke":
		fs.StringVar(&name, "name", "", "name of the token to revoke")
	case "list":
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "router token: unknown command %q\n\n%s", sub, usage)
		return exitCode(2)
	}
	if err := f.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if sub != "list" && name == "" {
		return errors.New("--name is required")
	}
	if sub == "create" && !tokenName.MatchString(name) {
		return fmt.Errorf("--name %q: use letters, digits and . _ @ - (at most 100, starting with a letter or digit)", name)
	}
	var r api.Role
	if sub == "create" {
		var err error
		if r, err = api.ParseRole(role); err != nil {
			return fmt.Errorf("--role: %w", err)
		}
	}
	st, _, err := d.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	switch sub {
	case "create":
		token, hash, err := api.NewToken()
		if err != nil {
			return err
		}
		if _, err := st.CreateAPIToken(ctx, name, string(r), hash, cliActor()); err != nil {
			if errors.Is(err, store.ErrTokenExists) {
				return fmt.Errorf("a token named %q exists (names are not reused, even after revocation)", name)
			}
			return err
		}
		fmt.Fprintf(stderr, "token %q created with role %s; it is shown once, here:\n", name, r)
		fmt.Fprintln(stdout, token)
	case "revoke":
		t, already, err := st.RevokeAPIToken(ctx, name, cliActor())
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no token named %q", name)
		}
		if err != nil {
			return err
		}
		if already {
			fmt.Fprintf(stdout, "token %q was already revoked at %s\n", name, t.RevokedAt.UTC().Format(time.RFC3339))
		} else {
			fmt.Fprintf(stdout, "token %q revoked\n", name)
		}
	case "list":
		ts, err := st.APITokens(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tCREATED\tCREATED BY\tLAST USED\tREVOKED")
		for _, t := range ts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Role, stamp(t.CreatedAt), t.CreatedBy, stamp(t.LastUsedAt), stamp(t.RevokedAt))
		}
		tw.Flush()
	}
	return nil
}

// tokenName is what api_tokens.name accepts (its CHECK constraint).
var tokenName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$`)

// cliActor names whoever runs the command, for created_by and audit_log.
func cliActor() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if name == "" {
		name = "unknown"
	}
	return "cli:" + name
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
