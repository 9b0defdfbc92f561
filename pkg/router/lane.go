package router

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aortahealth/aorta/pkg/route"
	"github.com/aortahealth/aorta/pkg/store"
)

// applyLane applies a lane's ready rows, batch by batch, in id order.
func (r *Router) applyLane(ctx context.Context, lease store.Lease, rows []store.Work) {
	routes := r.routes.Load()
	for len(rows) > 0 {
		n := min(len(rows), r.cfg.BatchSize)
		batch, rest := rows[:n], rows[n:]
		rows = rest

		processed := make([]store.Processed, 0, len(batch))
		// A patient whose message failed must not have its later messages
		// applied before it: they wait for the retry (ReadyWork holds them
		// back while the failed one is in backoff).
		held := map[string]bool{}
		for _, w := range batch {
			if w.PatientKey != "" && held[w.PatientKey] {
				continue
			}
			p, err := r.process(routes, w)
			if err != nil {
				r.fail(ctx, w, err, p.ErrorRoute)
				if w.PatientKey != "" {
					held[w.PatientKey] = true
				}
				continue
			}
			processed = append(processed, p)
		}
		if err := r.applyBatch(ctx, lease, routes, processed); err != nil {
			if !errors.Is(err, errStop) {
				r.cfg.Logger.Warn("apply lane", "lane", lease.Lane, "err", err)
			}
			return
		}
	}
}

// applyBatch commits one batch, isolating failures so that one bad row
// costs only its own patient a retry.
func (r *Router) applyBatch(ctx context.Context, lease store.Lease, routes *route.Config, batch []store.Processed) error {
	if len(batch) == 0 {
		return nil
	}
	actx, cancel := context.WithTimeout(ctx, r.cfg.ApplyTimeout)
	start := time.Now()
	sc := newBatchScoring(routes, batch)
	err := r.store.Apply(actx, r.cfg.ID, lease, batch, laneOf, sc.work(r))
	cancel()
	r.cfg.Metrics.observeApply(len(batch), time.Since(start), err)
	var wait *store.MergeWaitError
	switch {
	case err == nil:
		r.observe(batch)
		for _, p := range batch {
			if p.Status == store.DeadLettered {
				// The reason names a location and a rule, never a value
				// (pkg/event's InvalidError); the message itself stays in
				// the database for an analyst.
				r.cfg.Logger.Warn("message dead-lettered", "message_id", p.Work.MessageID, "route", p.ErrorRoute, "reason", p.Error)
			}
		}
		sc.committed(r)
		return nil
	case errors.Is(err, store.ErrLeaseLost):
		r.cfg.Logger.Info("lane lease lost; another router takes over", "lane", lease.Lane)
		r.mu.Lock()
		delete(r.leases, lease.Lane)
		r.mu.Unlock()
		return errStop
	case errors.As(err, &wait):
		// Apply what came before the merge, let the merge wait for the
		// prior patient's earlier messages, and re-read the lane.
		i := 0
		for i < len(batch) && batch[i].Work.OutboxID != wait.OutboxID {
			i++
		}
		if perr := r.applyBatch(ctx, lease, routes, batch[:i]); perr != nil {
			return perr
		}
		if derr := r.store.Defer(ctx, wait.OutboxID, mergeRetryDelay); derr != nil {
			return derr
		}
		time.AfterFunc(mergeRetryDelay, r.signal) // no notification ends a wait
		return errStop
	case store.IsTransient(err):
		// The rows stay in the outbox; the next dispatch tries again.
		return fmt.Errorf("database unavailable: %w", err)
	case len(batch) > 1:
		r.cfg.Logger.Warn("batch failed on data; applying rows one by one", "lane", lease.Lane, "rows", len(batch), "err", err)
		held := map[string]bool{}
		for _, p := range batch {
			if k := p.Work.PatientKey; k != "" && held[k] {
				continue
			}
			if err := r.applyBatch(ctx, lease, routes, []store.Processed{p}); err != nil {
				if errors.Is(err, errStop) {
					return err
				}
				if k := p.Work.PatientKey; k != "" {
					held[k] = true
				}
			}
		}
		return nil
	default:
		r.fail(ctx, batch[0].Work, err, batch[0].ErrorRoute)
		return err
	}
}

// fail records a failed attempt with exponential backoff; the last one
// makes the message a dead letter.
func (r *Router) fail(ctx context.Context, w store.Work, cause error, route string) {
	backoff := r.cfg.RetryBackoff << min(w.Attempts, 16)
	dead, err := r.store.Fail(ctx, w, cause.Error(), route, backoff, r.cfg.MaxAttempts)
	if err != nil {
		r.cfg.Logger.Error("record failed attempt", "outbox_id", w.OutboxID, "err", err)
		return
	}
	r.cfg.Metrics.failed(dead)
	if dead {
		r.cfg.Logger.Error("message dead-lettered after retries", "message_id", w.MessageID, "attempts", w.Attempts+1, "err", cause)
		return
	}
	time.AfterFunc(backoff, r.signal) // no notification ends a backoff
	r.cfg.Logger.Warn("message failed; will retry", "message_id", w.MessageID, "attempt", w.Attempts+1, "retry_in", backoff, "err", cause)
}

// observe records metrics for a committed batch.
func (r *Router) observe(batch []store.Processed) {
	m := r.cfg.Metrics
	if m == nil {
		return
	}
	now := time.Now()
	for _, p := range batch {
		m.messages.WithLabelValues(p.Status).Inc()
		for _, e := range p.Events {
			m.events.WithLabelValues(e.Type, e.Route).Inc()
		}
		for range p.Warnings {
			m.warnings.Inc()
		}
		if !p.Work.Replay {
			m.ackToEvent.Observe(now.Sub(p.Work.ReceivedAt).Seconds())
		}
	}
}
