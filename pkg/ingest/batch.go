package ingest

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/aortahealth/aorta/pkg/hl7"
	"github.com/aortahealth/aorta/pkg/mllp"
	"github.com/aortahealth/aorta/pkg/store"
)

// serveBatch stores a batch file and answers with one batch
// acknowledgement holding the ACK of each member that asked for one. The
// batch acknowledgement itself is always sent, even when empty: the sender
// waits for one frame in return for its one frame, and an empty batch
// acknowledgement means "received, no errors" (HL7 v2.5 section 2.10.3).
func (in *Ingester) serveBatch(ctx context.Context, c mllp.ConnInfo, frame []byte, now, start time.Time) ([]byte, error) {
	remote := ""
	if c.RemoteAddr != nil {
		remote = c.RemoteAddr.String()
	}
	b, err := hl7.SplitBatch(frame)
	if err != nil {
		// Not a batch we can take apart: store and reject it as one message.
		in.cfg.Logger.Info("batch not splittable, rejecting as one message", "conn", c.ID, "bytes", len(frame), "err", err)
		p := in.prepare(frame, now, remote)
		in.countReceived(p)
		outcomes, err := in.submit(ctx, store.Unit{Message: p.msg})
		if err != nil {
			return in.storeFailed(c, []*prepared{p}, now, err)
		}
		resp := in.answer(p, outcomes[0])
		in.observeAck(p, outcomes[0], resp, start)
		return resp, nil
	}

	bt := &store.Batch{
		ID:         uuid.Must(uuid.NewV7()),
		ReceivedAt: now,
		Listener:   in.cfg.Listener,
		RemoteAddr: remote,
		Raw:        frame,
	}
	switch {
	case b.FileHeader != nil:
		bt.HeaderType, bt.ControlID = "FHS", b.FileHeader.ControlID
	case len(b.Sections) > 0 && b.Sections[0].Header != nil:
		bt.HeaderType, bt.ControlID = "BHS", b.Sections[0].Header.ControlID
	default:
		bt.HeaderType = "BHS"
	}
	ps := make([]*prepared, len(b.Messages))
	for i, bm := range b.Messages {
		ps[i] = in.prepare(bm.Raw, now, remote)
		bt.Messages = append(bt.Messages, ps[i].msg)
		in.countReceived(ps[i])
	}
	outcomes, err := in.submit(ctx, store.Unit{Batch: bt})
	if err != nil {
		return in.storeFailed(c, ps, now, err)
	}
	var acks [][]byte
	for i, p := range ps {
		resp := in.answer(p, outcomes[i])
		in.observeAck(p, outcomes[i], resp, start)
		if resp != nil {
			acks = append(acks, resp)
		}
	}
	if m := in.cfg.Metrics; m != nil {
		m.batches.Inc()
	}
	in.cfg.Logger.Debug("batch stored", "conn", c.ID, "batch_id", bt.ID, "control_id", bt.ControlID,
		"messages", len(ps), "acks", len(acks), "bytes", len(frame))
	return hl7.BuildBatchACK(b, acks, hl7.BatchACK{ControlID: ackControlID(bt.ID), Time: now}), nil
}
