// Command router consumes the outbox written by mllp-listener, runs each
// stored message through routes.yaml and writes clinical events, their
// per-patient state and the outbox completion in one transaction.
//
// Usage:
//
//	router [serve] [flags]            run the router (the default)
//	router check [routes.yaml]        lint a routes file; exit 1 on errors
//	router test [routes.test.yaml]    run route tests; exit 1 on failures
//	router replay [filters] [flags]   queue stored messages to be routed again
//	router migrate [flags]            apply database migrations and exit
//	router token create|list|revoke   manage the HTTP API's bearer tokens
//	router retention [--dry-run]      delete old messages, events, audit rows and finished alerts now
//
// Every flag has an environment variable; run `router <command> -h`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		var code exitCode
		switch {
		case errors.Is(err, flag.ErrHelp):
			os.Exit(0)
		case errors.As(err, &code):
			os.Exit(int(code))
		}
		fmt.Fprintln(os.Stderr, "router:", err)
		os.Exit(1)
	}
}

// exitCode ends the process with a status after the command has printed
// its own report (check and test).
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

func run(args []string) error {
	cmd := "serve"
	if len(args) > 0 {
		switch args[0] {
		case "serve", "check", "test", "replay", "migrate", "token", "retention":
			cmd, args = args[0], args[1:]
		}
	}
	ctx := context.Background()
	switch cmd {
	case "check":
		return runCheck(args)
	case "test":
		return runTest(args)
	case "replay":
		return runReplay(ctx, args)
	case "migrate":
		return runMigrate(ctx, args)
	case "token":
		return runToken(ctx, args)
	case "retention":
		return runRetention(ctx, args)
	}
	return runServe(ctx, args)
}
