// Command hl7load is an MLLP load generator: it sends a realistic mix of
// HL7 v2 messages (internal/loadgen: ADT admissions and updates,
// laboratory reports, IHE PCD-01 monitor results, nursing vital signs,
// for many fictional patients) over a number of connections, each waiting
// for its ACK before sending the next as real senders do, and reports the
// throughput, the ACK latency percentiles, the ACK codes and the errors.
// Given the database (--database-url) while a router runs, it also
// reports how long after each ACK the router wrote the message's first
// event and its alerts.
//
// Usage:
//
//	hl7load [flags]         send load to a listener (127.0.0.1:2575)
//	hl7load bench [flags]   what make bench runs (internal/benchrun)
//	hl7load consolebench [flags]
//	                        what make bench-console runs (internal/consolebench)
//
// It sends to loopback only unless --allow-remote, and always stops by
// itself: after --count messages (10,000 when neither --count nor
// --duration is given) or --duration. Ctrl-C stops it early and prints
// the partial report. Every flag has an environment variable; run with -h
// for the list.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/aortahealth/aorta/internal/envflag"
	"github.com/aortahealth/aorta/internal/loadgen"
)

const (
	defaultAddr       = "127.0.0.1:2575" // the listener's default
	defaultRouterWait = time.Minute
	// maxCount and maxDuration bound a run, so that a typo does not run
	// a load for days.
	maxCount    = 100_000_000
	maxDuration = 24 * time.Hour
	maxConns    = 10000
)

func main() {
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "bench":
		err = runBench(os.Args[2:], os.Stdout, os.Stderr)
	case len(os.Args) > 1 && os.Args[1] == "consolebench":
		err = runConsoleBench(os.Args[2:], os.Stdout, os.Stderr)
	default:
		err = run(os.Args[1:], os.Stdout, os.Stderr)
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "hl7load:", err)
		os.Exit(1)
	}
}

// config is everything hl7load can be told: flag > environment > default.
type config struct {
	Addr        string
	AllowRemote bool
	Conns       int
	Count       int
	Duration    time.Duration
	Rate        float64
	Mix         string
	Patients    int
	Seed        int
	AckTimeout  time.Duration
	DatabaseURL string
	RouterWait  time.Duration
	JSON        bool

	mix loadgen.Mix
}

func parseConfig(fs *flag.FlagSet, args []string) (config, error) {
	var c config
	f := envflag.New(fs)
	f.String(&c.Addr, "addr", "HL7LOAD_ADDR", defaultAddr, "MLLP address of the listener (loopback only unless --allow-remote)")
	f.Bool(&c.AllowRemote, "allow-remote", "HL7LOAD_ALLOW_REMOTE", false, "allow an --addr that is not a loopback address: never aim a load at a production listener")
	f.Int(&c.Conns, "conns", "HL7LOAD_CONNS", loadgen.DefaultConns, "connections sending at once, each waiting for its ACK before the next message")
	f.Int(&c.Count, "count", "HL7LOAD_COUNT", 0, fmt.Sprintf("messages to send in all (%d when neither --count nor --duration is given)", loadgen.DefaultCount))
	f.Duration(&c.Duration, "duration", "HL7LOAD_DURATION", 0, "send for this long (with --count: whichever comes first)")
	f.Float64(&c.Rate, "rate", "HL7LOAD_RATE", 0, "offered load in messages per second across all connections; 0 sends as fast as the ACKs come")
	f.String(&c.Mix, "mix", "HL7LOAD_MIX", loadgen.DefaultMix.String(), "share of each kind of message, kind=weight,... (kinds: adt-a01, adt-a08, lab, monitor, nursing)")
	f.Int(&c.Patients, "patients", "HL7LOAD_PATIENTS", loadgen.DefaultPatients, "distinct fictional patients (MRNs LD0000001 ...); one in 20 deteriorates and raises alerts")
	f.Int(&c.Seed, "seed", "HL7LOAD_SEED", 1, "seed of the mix: the same seed sends the same messages (control IDs and times aside)")
	f.Duration(&c.AckTimeout, "ack-timeout", "HL7LOAD_ACK_TIMEOUT", loadgen.DefaultAckTimeout, "longest wait for one ACK; a timed-out exchange is an error and its connection is opened again")
	f.String(&c.DatabaseURL, "database-url", "HL7LOAD_DATABASE_URL", "", "the listener's database: with a router running, also report ACK->event and ACK->alert latency")
	f.Duration(&c.RouterWait, "router-wait", "HL7LOAD_ROUTER_WAIT", defaultRouterWait, "with --database-url, how long to wait for the router to finish the run's messages")
	f.Bool(&c.JSON, "json", "HL7LOAD_JSON", false, "print the report as JSON instead of text")
	if err := f.Parse(args); err != nil {
		return c, err
	}
	var err error
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	case c.Conns < 1 || c.Conns > maxConns:
		return c, fmt.Errorf("--conns must be 1 to %d", maxConns)
	case c.Count < 0 || c.Count > maxCount:
		return c, fmt.Errorf("--count must be 0 to %d", maxCount)
	case c.Duration < 0 || c.Duration > maxDuration:
		return c, fmt.Errorf("--duration must be 0 to %v", maxDuration)
	case c.Rate < 0:
		return c, errors.New("--rate must not be negative")
	case c.AckTimeout <= 0 || c.RouterWait < 0:
		return c, errors.New("--ack-timeout must be positive and --router-wait not negative")
	}
	if c.mix, err = loadgen.ParseMix(c.Mix); err != nil {
		return c, err
	}
	if err := checkLoopback(c.Addr, c.AllowRemote); err != nil {
		return c, err
	}
	return c, nil
}

// checkLoopback refuses an address whose host is not a loopback address
// (a name must resolve to loopback addresses only), unless allowRemote.
func checkLoopback(addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", addr, err)
	}
	if allowRemote {
		return nil
	}
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return fmt.Errorf("--addr %q: %w", addr, err)
		}
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("--addr %s is not a loopback address: a load generator aimed at a real listener floods a real database; pass --allow-remote if you mean it", addr)
		}
	}
	return nil
}

// report is the JSON output.
type report struct {
	*loadgen.Result
	Router *loadgen.RouterResult `json:"router,omitempty"`
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hl7load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: hl7load [flags]\n       hl7load bench [flags]   (make bench; hl7load bench -h)\n       hl7load consolebench [flags]   (make bench-console; hl7load consolebench -h)\n\n"+
			"Sends a realistic mix of HL7 v2 messages for fictional patients to an MLLP\n"+
			"listener over --conns connections, each waiting for its ACK, and reports\n"+
			"messages/s, ACK latency, ACK codes and errors. Ctrl-C prints the partial\n"+
			"report. Flags override environment variables.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	cfg, err := parseConfig(fs, args)
	if err != nil {
		return err
	}
	gen, err := loadgen.NewGenerator(loadgen.GeneratorOptions{Mix: cfg.mix, Patients: cfg.Patients, Seed: uint64(cfg.Seed)})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if !cfg.JSON {
		fmt.Fprintf(stderr, "hl7load: sending to %s over %d connections (run %s, mix %s); Ctrl-C stops early\n",
			cfg.Addr, cfg.Conns, gen.RunID(), cfg.mix)
	}
	res, err := loadgen.Run(ctx, loadgen.Config{
		Addr: cfg.Addr, Conns: cfg.Conns, Count: cfg.Count, Duration: cfg.Duration, Rate: cfg.Rate,
		Generator: gen, AckTimeout: cfg.AckTimeout, KeepRecords: cfg.DatabaseURL != "",
	})
	if err != nil {
		return err
	}
	stop() // a second Ctrl-C now ends the process
	out := report{Result: res}
	var routerErr error
	if cfg.DatabaseURL != "" && !res.Interrupted {
		rctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		out.Router, routerErr = loadgen.RouterLatency(rctx, cfg.DatabaseURL, res.Records, cfg.RouterWait)
		cancel()
	}
	if cfg.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		res.WriteText(stdout)
		if out.Router != nil {
			out.Router.WriteText(stdout)
		}
	}
	if routerErr != nil {
		return fmt.Errorf("router latency: %w", routerErr)
	}
	if res.Acked == 0 && res.Sent+res.ErrorCount() > 0 {
		return errors.New("no message was acknowledged: " + strings.TrimSpace(fmt.Sprint(res.Errors)))
	}
	return nil
}
