// Command hl7sim sends a simulated ward's HL7 v2 feed to an MLLP listener,
// so that a newcomer can watch Aorta at work (make demo) and the
// integration tests can prove it end to end.
//
// It admits a handful of fictional patients (ADT^A01: MRNs SIM0001 ...,
// assigning authority and sending application AORTA_SIM, processing ID P),
// reports a white cell count for each (a laboratory ORU^R01, which SIRS
// needs), then charts LOINC-coded nursing vital signs for each (ORU^R01) every
// --interval, the patients spread evenly over it. The adults' values drift
// within the bands that score 0; patient 1 deteriorates and reaches
// NEWS2 ≥ 7 at its seventh reading (30 s at the default interval), so the
// shipped routes raise an emergency alert; it then recovers, and the
// cycle repeats every two minutes. The last patient is a child, whom
// adult scores skip. See internal/hl7sim for the messages and the script.
//
// Each message waits for its ACK, which must be AA or CA naming it; any
// other answer is logged and makes the exit status 1. A connection that
// fails is opened again and the message resent, for up to 30 s.
//
// Usage:
//
//	hl7sim [flags]
//
// Every flag has an environment variable; run with -h for the list.
// SIGINT or SIGTERM stops it after the exchange under way.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/aortahealth/aorta/internal/envflag"
	"github.com/aortahealth/aorta/internal/hl7sim"
	"github.com/aortahealth/aorta/pkg/hl7"
	"github.com/aortahealth/aorta/pkg/mllp"
)

// Defaults and bounds of the exchanges.
const (
	defaultAddr     = "127.0.0.1:2575" // the listener's default
	defaultPatients = 5
	defaultInterval = 5 * time.Second
	// dialTimeout bounds one connection attempt.
	dialTimeout = 5 * time.Second
	// ackTimeout bounds one exchange, from writing the frame to reading
	// the ACK.
	ackTimeout = 10 * time.Second
	// giveUpAfter is how long a message is retried while the listener
	// cannot be reached or does not answer, before hl7sim exits.
	giveUpAfter = 30 * time.Second
	// maxBackoff caps the pause between retries (doubling from 100 ms).
	maxBackoff = 2 * time.Second
)

// config is everything hl7sim can be told: flag > environment > default.
type config struct {
	Addr     string
	Patients int
	Interval time.Duration
	Count    int
	Duration time.Duration
	Seed     int
	Fast     bool
	Child    bool
	LogLevel string
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "hl7sim:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("hl7sim", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: hl7sim [flags]\n\n"+
			"Sends a simulated ward's HL7 v2 feed (fictional patients, ADT^A01 then\n"+
			"nursing vital signs; patient 1 deteriorates to NEWS2 >= 7) to an MLLP\n"+
			"listener. Flags override environment variables.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	cfg, err := parseConfig(fs, args)
	if err != nil {
		return err
	}
	level, _ := envflag.ParseLevel(cfg.LogLevel)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return simulate(ctx, cfg, log)
}

func parseConfig(fs *flag.FlagSet, args []string) (config, error) {
	var c config
	f := envflag.New(fs)
	f.String(&c.Addr, "addr", "HL7SIM_ADDR", defaultAddr, "MLLP address of the listener to send to")
	f.Int(&c.Patients, "patients", "HL7SIM_PATIENTS", defaultPatients, "number of patients (1 to 9999); patient 1 deteriorates")
	f.Duration(&c.Interval, "interval", "HL7SIM_INTERVAL", defaultInterval, "time between two readings of one patient (the patients are spread over it)")
	f.Int(&c.Count, "count", "HL7SIM_COUNT", 0, "readings per patient before exiting; 0 is no limit")
	f.Duration(&c.Duration, "duration", "HL7SIM_DURATION", 0, "run this long, then exit; 0 is no limit")
	f.Int(&c.Seed, "seed", "HL7SIM_SEED", 1, "seed of the stable patients' drift: the same seed gives the same values")
	f.Bool(&c.Fast, "fast", "HL7SIM_FAST", false, "send without pausing, dating readings --interval apart (for tests)")
	f.Bool(&c.Child, "child", "HL7SIM_CHILD", true, "make the last patient a child (with 3 patients or more), whom adult scores skip")
	f.String(&c.LogLevel, "log-level", "LOG_LEVEL", "info", "log level: debug (a line per message), info, warn or error")
	if err := f.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	case c.Patients < 1 || c.Patients > hl7sim.MaxPatients:
		return c, fmt.Errorf("--patients must be 1 to %d", hl7sim.MaxPatients)
	case c.Interval <= 0:
		return c, errors.New("--interval must be positive")
	case c.Count < 0 || c.Duration < 0:
		return c, errors.New("--count and --duration must not be negative")
	}
	if _, err := envflag.ParseLevel(c.LogLevel); err != nil {
		return c, err
	}
	return c, nil
}

// simulate admits the ward's patients and charts their vital signs until
// the count or duration is reached or ctx ends. It returns an error when a
// message could not be delivered or was not accepted.
func simulate(ctx context.Context, cfg config, log *slog.Logger) error {
	start := time.Now()
	ward, err := hl7sim.NewWard(hl7sim.Options{Patients: cfg.Patients, Seed: uint64(cfg.Seed), Child: cfg.Child, Now: start})
	if err != nil {
		return err
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	log.Info("hl7sim started", "addr", cfg.Addr, "patients", cfg.Patients, "interval", cfg.Interval,
		"count", cfg.Count, "duration", cfg.Duration, "seed", cfg.Seed, "fast", cfg.Fast, "child", cfg.Child)

	// Readings are dated as they are sent; with --fast, --interval apart
	// instead, ending about now when the count is known, so that no
	// reading is dated in the future.
	base := start
	if cfg.Fast && cfg.Count > 0 {
		base = start.Add(-time.Duration(cfg.Count) * cfg.Interval)
	}
	at := func(offset time.Duration) (time.Time, bool) {
		if cfg.Fast {
			return base.Add(offset), ctx.Err() == nil
		}
		if !sleep(ctx, time.Until(start.Add(offset))) {
			return time.Time{}, false
		}
		return time.Now(), true
	}
	// Control IDs are unique across runs: the start time, then a counter.
	prefix := "SIM" + strconv.FormatInt(start.Unix(), 36) + "-"
	seq := 0
	s := &sender{addr: cfg.Addr, log: log}
	defer s.close()
	deliver := func(kind string, p hl7sim.Patient, reading int, build func(controlID string, t time.Time) ([]byte, error), t time.Time) error {
		seq++
		cid := prefix + strconv.Itoa(seq)
		raw, err := build(cid, t)
		if err != nil {
			return err
		}
		if err := s.send(ctx, cid, raw); err != nil {
			return err
		}
		log.Debug("sent", "control_id", cid, "type", kind, "patient", p.Number, "reading", reading)
		return nil
	}

	patients := ward.Patients()
	err = func() error {
		for _, p := range patients {
			t, ok := at(0)
			if !ok {
				return nil
			}
			admit := func(cid string, t time.Time) ([]byte, error) { return hl7sim.Admission(p, cid, t) }
			if err := deliver("ADT^A01", p, 0, admit, t); err != nil {
				return err
			}
		}
		// The blood taken on admission, resulted a moment later.
		for _, p := range patients {
			t, ok := at(0)
			if !ok {
				return nil
			}
			lab := func(cid string, t time.Time) ([]byte, error) { return hl7sim.LabResult(p, p.AdmissionWBC, cid, t) }
			if err := deliver("ORU^R01 (lab)", p, 0, lab, t); err != nil {
				return err
			}
		}
		log.Info("patients admitted", "patients", len(patients))
		for k := 0; cfg.Count == 0 || k < cfg.Count; k++ {
			for i, p := range patients {
				offset := time.Duration(k)*cfg.Interval + time.Duration(i)*cfg.Interval/time.Duration(len(patients))
				t, ok := at(offset)
				if !ok {
					return nil
				}
				v := ward.Next(i)
				chart := func(cid string, t time.Time) ([]byte, error) { return hl7sim.VitalSigns(p, v, cid, t) }
				if err := deliver("ORU^R01", p, k, chart, t); err != nil {
					return err
				}
			}
			log.Debug("readings sent", "reading", k)
		}
		return nil
	}()
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		err = nil // stopped by a signal or --duration while retrying
	}
	log.Info("hl7sim stopped", "sent", s.sent, "accepted", s.accepted, "not_accepted", s.rejected,
		"elapsed", time.Since(start).Round(time.Millisecond))
	if err != nil {
		return err
	}
	if s.rejected > 0 {
		return fmt.Errorf("%d of %d messages were not accepted (see the log)", s.rejected, s.sent)
	}
	return nil
}

// sleep waits for d or until ctx ends, and reports whether it waited.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// sender delivers messages over one MLLP connection, opening a new one
// when it fails.
type sender struct {
	addr string
	log  *slog.Logger
	c    *mllp.Client

	sent, accepted, rejected int
}

// send delivers one message and checks its ACK. While the listener cannot
// be reached or does not answer it retries, on a new connection, for up to
// giveUpAfter: the message may then arrive twice, which the listener
// recognises as a duplicate. An ACK other than AA or CA is counted and
// logged, not retried: the listener has decided. The error is ctx's, or
// that of giving up.
func (s *sender) send(ctx context.Context, controlID string, raw []byte) error {
	var failingSince time.Time
	backoff := 100 * time.Millisecond
	for {
		var err error
		if s.c == nil {
			dctx, cancel := context.WithTimeout(ctx, dialTimeout)
			s.c, err = mllp.Dial(dctx, s.addr)
			cancel()
		}
		if s.c != nil {
			// An exchange under way is finished even after Ctrl-C, so
			// that the last message is acknowledged, not left in doubt.
			xctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
			var ack []byte
			ack, err = s.c.Send(xctx, raw)
			cancel()
			if err == nil {
				s.sent++
				s.check(controlID, ack)
				return nil
			}
			s.close()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if failingSince.IsZero() {
			failingSince = time.Now()
		} else if time.Since(failingSince) > giveUpAfter {
			return fmt.Errorf("message %s: no ACK from %s for %v: %w", controlID, s.addr, giveUpAfter, err)
		}
		s.log.Warn("MLLP exchange failed; retrying", "addr", s.addr, "control_id", controlID, "retry_in", backoff, "err", err)
		if !sleep(ctx, backoff) {
			return ctx.Err()
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// check counts an ACK as accepted when MSA-1 is AA or CA and MSA-2 names
// the message, and logs any other answer.
func (s *sender) check(controlID string, ack []byte) {
	var code, acked, text, errCode string
	m, err := hl7.Parse(ack)
	if err == nil {
		code, _ = m.Get("MSA-1")
		acked, _ = m.Get("MSA-2")
		text, _ = m.Get("MSA-3")
		errCode, _ = m.Get("ERR-3.1")
	}
	if (code == "AA" || code == "CA") && acked == controlID {
		s.accepted++
		return
	}
	s.rejected++
	attrs := []any{"control_id", controlID, "ack_code", code, "ack_control_id", acked, "text", text, "err_code", errCode}
	if err != nil {
		attrs = append(attrs, "ack_bytes", len(ack), "err", err)
	}
	s.log.Error("message not accepted", attrs...)
}

func (s *sender) close() {
	if s.c != nil {
		s.c.Close()
		s.c = nil
	}
}
