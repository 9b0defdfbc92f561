package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/aortahealth/aorta/pkg/event"
	"github.com/aortahealth/aorta/pkg/route"
	"github.com/aortahealth/aorta/pkg/router"
	"github.com/aortahealth/aorta/pkg/score"
)

// registry names what routes.yaml may refer to: the event mappings, and
// the scores, which are both the handlers a route may run and what alert
// rules read.
func registry() route.Registry {
	scores := []string{score.NameNEWS2, score.NameQSOFA, score.NameSIRS}
	return route.Registry{Mappings: event.Mappings(), Handlers: scores, Scores: scores}
}

// runCheck lints a routes file: every problem with file, line, column and
// reason on stderr, exit status 1 when there is one.
func runCheck(args []string) error {
	fs := flag.NewFlagSet("router check", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: router check [routes.yaml]\n\nLints a routes file (default $ROUTES_FILE, else routes.yaml) and exits 1 on errors.\n")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	file := fs.Arg(0)
	if file == "" {
		file = os.Getenv("ROUTES_FILE")
	}
	if file == "" {
		file = "routes.yaml"
	}
	// A lint (in CI, say) need not hold the production webhook secrets.
	c, err := route.LoadWith(file, registry(), route.ParseOptions{SkipSecrets: true})
	if err != nil {
		printErrors(err)
		return exitCode(1)
	}
	fmt.Printf("%s: ok (%d routes, %d parameters)\n", file, len(c.Routes), len(c.Parameters.Names()))
	return nil
}

// runTest runs a route test file against the routes it names.
func runTest(args []string) error {
	fs := flag.NewFlagSet("router test", flag.ContinueOnError)
	verbose := fs.Bool("v", false, "list passing tests too")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: router test [-v] [routes.test.yaml]\n\nRuns sample messages through the routes the test file names and compares the\nevents produced with the expected ones. Exits 1 on any failure. No database is used.\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	file := fs.Arg(0)
	if file == "" {
		file = "routes.test.yaml"
	}
	tf, err := route.LoadTests(file)
	if err != nil {
		printErrors(err)
		return exitCode(1)
	}
	routes, err := route.LoadWith(tf.Routes, registry(), route.ParseOptions{SkipSecrets: true})
	if err != nil {
		printErrors(err)
		return exitCode(1)
	}
	if err := tf.Validate(routes); err != nil {
		printErrors(err)
		return exitCode(1)
	}
	failed := 0
	for _, r := range router.RunTests(tf, routes) {
		if len(r.Failures) == 0 {
			if *verbose {
				fmt.Printf("ok    %s\n", r.Name)
			}
			continue
		}
		failed++
		fmt.Printf("FAIL  %s (%s:%d)\n", r.Name, filepath.Base(file), r.Line)
		for _, f := range r.Failures {
			fmt.Printf("      %s\n", f)
		}
	}
	if failed > 0 {
		fmt.Printf("%s: %d of %d tests failed\n", file, failed, len(tf.Tests))
		return exitCode(1)
	}
	fmt.Printf("%s: ok (%d tests against %s)\n", file, len(tf.Tests), tf.Routes)
	return nil
}

func printErrors(err error) {
	var list route.Errors
	if errors.As(err, &list) {
		for _, e := range list {
			fmt.Fprintln(os.Stderr, e)
		}
		return
	}
	fmt.Fprintln(os.Stderr, err)
}
