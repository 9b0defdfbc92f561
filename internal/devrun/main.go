// Command devrun is what `make run` and `make demo` execute: it finds
// PostgreSQL the way the README promises (DATABASE_URL, else
// 127.0.0.1:5432, else a throwaway cluster), makes sure the database
// exists, then runs the engine — the MLLP listener and the router, from
// the binaries in the directory given as its first argument — with
// DATABASE_URL set. Ctrl-C stops everything gracefully, then a throwaway
// cluster.
//
//	devrun BINDIR [listener flags]          make run: database aorta
//	devrun --demo BINDIR [hl7sim flags]     make demo
//
// With --demo (demo.go) it uses a database of its own, aorta_demo, emptied
// at each start, so that simulated patients never reach the development
// database; on a server given by DATABASE_URL it is that server's
// aorta_demo. Once the listener is ready it starts cmd/hl7sim against it
// and prints the events the engine writes, one line each, while the
// engine's logs go to BINDIR/demo.log (warnings and errors are shown too).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/aortahealth/aorta/internal/pgenv"
)

// devDatabase is created on a local or throwaway server; an explicit
// DATABASE_URL is used exactly as given.
const devDatabase = "aorta"

func main() {
	fs := flag.NewFlagSet("devrun", flag.ExitOnError)
	demo := fs.Bool("demo", false, "run the demo: database "+demoDatabase+", the simulated feed, and the events as they are written")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: devrun BINDIR [listener flags]\n       devrun --demo BINDIR [hl7sim flags]")
		fs.PrintDefaults()
	}
	fs.Parse(os.Args[1:])
	if fs.NArg() < 1 {
		fs.Usage()
		os.Exit(2)
	}
	name := "make run:"
	if *demo {
		name = "make demo:"
	}
	if err := run(fs.Arg(0), fs.Args()[1:], *demo); err != nil {
		fmt.Fprintln(os.Stderr, name, err)
		os.Exit(1)
	}
}

// proc is a process devrun started, and its exit.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once it has exited
}

// start starts cmd and reports its exit on exited; after (may be nil) runs
// once it has exited.
func start(name string, cmd *exec.Cmd, exited chan<- *proc, after func()) (*proc, error) {
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		cmd.Wait()
		if after != nil {
			after()
		}
		close(p.done)
		exited <- p
	}()
	return p, nil
}

// run runs the engine until Ctrl-C or until one of its processes stops;
// args are the listener's flags, or with demo hl7sim's.
func run(bin string, args []string, demo bool) error {
	began := time.Now()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	srv, err := pgenv.Ensure(ctx, log)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.Stop(sctx); err != nil {
			log.Error("stop throwaway cluster", "err", err)
		}
	}()
	dbURL := srv.URL
	switch {
	case demo:
		// Always a database of its own, even on a DATABASE_URL server.
		if err := pgenv.RecreateDatabase(ctx, srv.URL, demoDatabase); err != nil {
			return err
		}
		if dbURL, err = pgenv.WithDatabase(srv.URL, demoDatabase); err != nil {
			return err
		}
	case srv.Source != "DATABASE_URL":
		if err := pgenv.EnsureDatabase(ctx, srv.URL, devDatabase); err != nil {
			return err
		}
		if dbURL, err = pgenv.WithDatabase(srv.URL, devDatabase); err != nil {
			return err
		}
	}
	env := append(os.Environ(), "DATABASE_URL="+dbURL)

	listenerArgs, simArgs := args, []string(nil)
	var logs *demoLogs
	if demo {
		listenerArgs, simArgs = nil, args
		if logs, err = openDemoLogs(filepath.Join(bin, "demo.log"), os.Stderr); err != nil {
			return err
		}
		defer logs.Close()
	}

	// The listener migrates the database; the router starts once it is up.
	listener := exec.Command(filepath.Join(bin, "mllp-listener"), listenerArgs...)
	router := exec.Command(filepath.Join(bin, "router"))
	var ready chan string
	flush := map[*exec.Cmd]func(){}
	for _, c := range []*exec.Cmd{listener, router} {
		c.Env, c.Stdout, c.Stderr, c.SysProcAttr = env, os.Stdout, os.Stderr, childProcAttr()
	}
	if demo {
		ready = make(chan string, 1)
		lw := logs.writer("listener", listenerReady(ready))
		rw := logs.writer("router", nil)
		listener.Stdout, listener.Stderr, flush[listener] = lw, lw, lw.flush
		router.Stdout, router.Stderr, flush[router] = rw, rw, rw.flush
	}
	exited := make(chan *proc, 3)
	procs := []*proc{}
	// stopAll stops what still runs, gracefully, the simulated feed first
	// so that it sends nothing to a listener that is stopping.
	stopAll := func() {
		for i := len(procs) - 1; i >= 0; i-- {
			p := procs[i]
			p.cmd.Process.Signal(syscall.SIGTERM) // an error only means it has exited
			if i > 0 && p.name == "hl7sim" {
				<-p.done
			}
		}
		for _, p := range procs {
			<-p.done
		}
	}
	for _, pc := range []struct {
		name string
		cmd  *exec.Cmd
	}{{"listener", listener}, {"router", router}} {
		p, err := start(pc.name, pc.cmd, exited, flush[pc.cmd])
		if err != nil {
			stopAll()
			return err
		}
		procs = append(procs, p)
	}

	var tail *tailer
	if !demo {
		// A URL of the user's own may hold a password: refer to it, never
		// print it; the local and throwaway servers have none.
		tokenURL := "'" + dbURL + "'"
		if srv.Source == "DATABASE_URL" {
			tokenURL = `"$DATABASE_URL"`
		}
		fmt.Fprintf(os.Stderr, "\nAorta is running (PostgreSQL from %s).\n"+
			"  Send HL7 v2 over MLLP to 127.0.0.1:2575, e.g. mllp_send --loose --file msg.hl7 --port 2575 127.0.0.1\n"+
			"  Stored messages: table messages; clinical events: table events (routes from routes.yaml)\n"+
			"  Metrics: http://127.0.0.1:9575/metrics (listener), http://127.0.0.1:9576/metrics (router)\n"+
			"  HTTP API: http://127.0.0.1:8080/api/v1 with a token from:\n"+
			"    DATABASE_URL=%s bin/router token create --name you --role admin\n"+
			"  Ctrl-C stops both.\n\n", srv.Source, tokenURL)
	} else {
		// The feed goes to the address our own listener reported, never
		// to whatever else may answer on its port (a make run).
		var addr string
		select {
		case addr = <-ready:
		case p := <-exited:
			stopAll()
			return fmt.Errorf("%s stopped during start-up; see %s", p.name, logs.path)
		case <-ctx.Done():
			stopAll()
			return nil
		case <-time.After(readyTimeout):
			stopAll()
			return fmt.Errorf("listener not ready after %v; see %s", readyTimeout, logs.path)
		}
		if tail, err = newTailer(ctx, dbURL, os.Stdout, began); err != nil {
			stopAll()
			return err
		}
		defer tail.close()
		sw := logs.writer("hl7sim", nil)
		sim := exec.Command(filepath.Join(bin, "hl7sim"), append([]string{"--addr", addr}, simArgs...)...)
		sim.Env, sim.Stdout, sim.Stderr, sim.SysProcAttr = env, sw, sw, childProcAttr()
		p, err := start("hl7sim", sim, exited, sw.flush)
		if err != nil {
			stopAll()
			return err
		}
		procs = append(procs, p)
		demoBanner(os.Stdout, srv.Source, dbURL, addr, logs.path)
		tail.start(ctx)
	}

	var failed *proc
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case p := <-exited:
			if p.name == "hl7sim" && p.cmd.ProcessState.Success() {
				fmt.Fprintln(os.Stdout, "The simulated feed has finished; Aorta keeps running. Ctrl-C stops it.")
				continue
			}
			failed = p
			break wait
		}
	}
	stopAll()
	if tail != nil {
		tail.stop() // and show what was written while stopping
	}
	if failed != nil && ctx.Err() == nil {
		where := "its log above"
		if demo {
			where = logs.path
		}
		return errors.New(failed.name + " stopped unexpectedly; see " + where)
	}
	return nil
}

// readyTimeout bounds the wait for the demo's listener, which itself waits
// up to a minute for the database (its --db-wait).
const readyTimeout = 2 * time.Minute
