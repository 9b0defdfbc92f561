package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aortahealth/aorta/pkg/hl7"
	"github.com/aortahealth/aorta/pkg/mllp"
	"github.com/aortahealth/aorta/pkg/store"
)

// ErrNotStored is returned to the MLLP server when a frame could not be
// stored and the configured answer is to close the connection unanswered.
var ErrNotStored = errors.New("ingest: frame not stored, closing without acknowledgement")

// Ingester stores frames and acknowledges them; it is an mllp.Handler.
type Ingester struct {
	cfg   Config
	store *store.Store
	queue chan *job
	// commits is what the last commit attempt said about the database.
	commits commitState

	stop      context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New starts an Ingester's committers. Call Close after the MLLP server
// has stopped handing it frames.
func New(st *store.Store, cfg Config) (*Ingester, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &Ingester{
		cfg:   cfg,
		store: st,
		// Room for every committer's next group: a frame queued behind a
		// full buffer waits in its handler instead, bounded by connections.
		queue: make(chan *job, cfg.MaxGroup*cfg.Committers),
		stop:  cancel,
	}
	for range cfg.Committers {
		in.wg.Go(func() { in.commitLoop(ctx) })
	}
	return in, nil
}

// Close stops the committers and waits for them. Frames still waiting are
// answered with an error (never acknowledged). Close is idempotent.
func (in *Ingester) Close() {
	in.closeOnce.Do(func() {
		in.stop()
		in.wg.Wait()
		for {
			select {
			case j := <-in.queue:
				j.done <- result{err: errStopped}
			default:
				return
			}
		}
	})
}

// ServeMLLP stores one frame and returns the acknowledgement to send, nil
// when none is due, or an error when the connection must be closed without
// an answer. It returns an acknowledgement only after the commit.
func (in *Ingester) ServeMLLP(ctx context.Context, c mllp.ConnInfo, frame []byte) ([]byte, error) {
	start := time.Now()
	now := in.cfg.Now()
	remote := ""
	if c.RemoteAddr != nil {
		remote = c.RemoteAddr.String()
	}
	if hl7.IsBatch(frame) {
		return in.serveBatch(ctx, c, frame, now, start)
	}
	p := in.prepare(frame, now, remote)
	in.countReceived(p)
	outcomes, err := in.submit(ctx, store.Unit{Message: p.msg})
	if err != nil {
		return in.storeFailed(c, []*prepared{p}, now, err)
	}
	resp := in.answer(p, outcomes[0])
	in.observeAck(p, outcomes[0], resp, start)
	// Guarded: the arguments would be boxed for every message even with
	// debug logging off.
	if in.cfg.Logger.Enabled(ctx, slog.LevelDebug) {
		in.cfg.Logger.Debug("message stored",
			"conn", c.ID, "message_id", p.msg.ID, "control_id", p.msg.Header.ControlID,
			"type", p.msg.Header.MessageType, "trigger", p.msg.Header.TriggerEvent,
			"status", p.msg.Status, "ack", p.msg.AckCode, "duplicate", outcomes[0].Duplicate, "bytes", len(frame))
	}
	if p.msg.Status == store.StatusRejected {
		// Visible at the production log level: a sender whose messages are
		// all rejected must be noticed. Header identifiers and the HL7
		// error only (its reason never quotes content), no message body.
		in.cfg.Logger.Info("message rejected",
			"conn", c.ID, "message_id", p.msg.ID, "control_id", p.msg.Header.ControlID,
			"type", p.msg.Header.MessageType, "trigger", p.msg.Header.TriggerEvent,
			"error_code", p.msg.ErrorCode, "error_location", p.msg.ErrorLocation, "reason", p.msg.Error,
			"duplicate", outcomes[0].Duplicate, "bytes", len(frame))
	}
	return resp, nil
}

// submit queues a unit for the committers and waits for its commit.
func (in *Ingester) submit(ctx context.Context, u store.Unit) ([]store.Outcome, error) {
	j := &job{unit: u, done: make(chan result, 1)}
	select {
	case in.queue <- j:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-j.done:
		return r.outcomes, r.err
	case <-ctx.Done():
		// The commit may still succeed; without our ACK the sender re-sends
		// and de-duplication answers the re-send with the stored ACK.
		return nil, ctx.Err()
	}
}

// answer is the acknowledgement for a committed message.
func (in *Ingester) answer(p *prepared, o store.Outcome) []byte {
	if !p.answerable {
		return nil
	}
	if o.Duplicate {
		return o.OriginalAck
	}
	return p.msg.Ack
}

// storeFailed decides what the sender sees when its frame was not stored.
// It is never a positive acknowledgement.
func (in *Ingester) storeFailed(c mllp.ConnInfo, ps []*prepared, now time.Time, err error) ([]byte, error) {
	in.cfg.Logger.Warn("frame not stored, not acknowledged", "conn", c.ID, "messages", len(ps), "action", in.cfg.OnStoreFailure, "err", err)
	if in.cfg.OnStoreFailure == OnStoreFailureReject && len(ps) == 1 && ps[0].answerable {
		p := ps[0]
		detail := hl7.ErrorDetail{
			Code: hl7.ApplicationInternalError, Severity: hl7.SeverityError,
			Text: "message could not be stored; send it again",
		}
		if _, ack := in.buildAck(p.hdr, hl7.Rejected, p.msg.ID, now, []hl7.ErrorDetail{detail}); ack != nil {
			in.cfg.Metrics.storeFailure(string(OnStoreFailureReject))
			return ack, nil
		}
	}
	// A batch, an inbound ACK, or a sender who asked for no rejects: the
	// only honest answer left is the closed connection.
	in.cfg.Metrics.storeFailure(string(OnStoreFailureClose))
	return nil, fmt.Errorf("%w: %w", ErrNotStored, err)
}

func (in *Ingester) countReceived(p *prepared) {
	if m := in.cfg.Metrics; m != nil {
		m.received.WithLabelValues(typeLabel(p.msg.Header.MessageType)).Inc()
	}
}

func (in *Ingester) observeAck(p *prepared, o store.Outcome, resp []byte, start time.Time) {
	m := in.cfg.Metrics
	if m == nil {
		return
	}
	t := typeLabel(p.msg.Header.MessageType)
	switch {
	case o.Duplicate:
		m.duplicates.WithLabelValues(t).Inc()
	case p.msg.Status == store.StatusAccepted:
		m.stored.WithLabelValues(t).Inc()
	case p.msg.Status == store.StatusRejected:
		m.rejected.WithLabelValues(t, codeLabel(p.msg.ErrorCode)).Inc()
	case p.msg.Status == store.StatusIgnored:
		m.ignored.Inc()
	}
	if o.ControlIDReused {
		m.reused.Inc()
	}
	code := "none"
	if resp != nil {
		code = p.msg.AckCode
		if o.Duplicate {
			code = "duplicate"
		}
	}
	m.ackLatency.WithLabelValues(code).Observe(time.Since(start).Seconds())
}

func (m *Metrics) storeFailure(action string) {
	if m != nil {
		m.storeFailures.WithLabelValues(action).Inc()
	}
}
