package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/aortahealth/aorta/internal/envflag"
	"github.com/aortahealth/aorta/pkg/store"
)

// runReplay queues stored messages in the outbox again; a running router
// applies them through its current routes. Event IDs are deterministic, so
// events already written are not duplicated.
func runReplay(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("router replay", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: router replay [filters] [flags]\n\nQueues accepted messages to be routed again through the current routes.\nAt least one filter is required. Times are RFC 3339 (2026-11-26T08:00:00Z).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	f := envflag.New(fs)
	var d dbFlags
	d.declare(f)
	var since, until, ids string
	var filter store.ReplayFilter
	fs.StringVar(&since, "since", "", "messages received at or after this time")
	fs.StringVar(&until, "until", "", "messages received before this time")
	fs.StringVar(&filter.MessageType, "type", "", "message type (MSH-9.1), e.g. ORU")
	fs.StringVar(&filter.TriggerEvent, "trigger", "", "trigger event (MSH-9.2), e.g. R01")
	fs.StringVar(&filter.SendingApplication, "sender", "", "sending application (MSH-3)")
	fs.StringVar(&filter.SendingFacility, "facility", "", "sending facility (MSH-4)")
	fs.StringVar(&ids, "id", "", "comma-separated message IDs")
	if err := f.Parse(args); err != nil {
		return err
	}
	var err error
	if filter.Since, err = parseTime(since); err != nil {
		return fmt.Errorf("--since: %w", err)
	}
	if filter.Until, err = parseTime(until); err != nil {
		return fmt.Errorf("--until: %w", err)
	}
	for _, s := range strings.Split(ids, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		id, err := uuid.Parse(s)
		if err != nil {
			return fmt.Errorf("--id %q: %w", s, err)
		}
		filter.IDs = append(filter.IDs, id)
	}
	st, log, err := d.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	n, err := st.Replay(ctx, filter)
	if err != nil {
		return err
	}
	log.Info("messages queued for replay", "count", n)
	fmt.Printf("%d messages queued for replay\n", n)
	return nil
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339, s)
}
