package hl7

import (
	"strconv"
	"time"
)

// BatchACK describes the envelope BuildBatchACK writes around ACKs.
type BatchACK struct {
	ControlID string    // FHS-11 and BHS-11 of the acknowledgement batch
	Time      time.Time // FHS-7 and BHS-7; the current time when zero
}

// BuildBatchACK answers a batch file with one acknowledgement batch: the
// envelope of in mirrored (an FHS only when in had one), sending and
// receiving application and facility swapped, FHS-12/BHS-12 referring to
// the inbound FHS-11/BHS-11, then acks (complete ACK messages, as built by
// BuildACK) and BTS/FTS with the counts. With no acks it is the empty
// batch that means "received, no errors" (HL7 v2.5 section 2.10.3).
//
// The envelope uses the standard delimiters; each ACK inside keeps its own
// MSH, as every message in a batch declares its own.
func BuildBatchACK(in *Batch, acks [][]byte, a BatchACK) []byte {
	w := ackWriter{d: StandardDelimiters, enc: StandardDelimiters.EncodingCharacters(), cs: autoCharset}
	ts := a.Time
	if ts.IsZero() {
		ts = time.Now()
	}
	var file, batch *BatchHeader
	if in != nil {
		file = in.FileHeader
		if len(in.Sections) > 0 {
			batch = in.Sections[0].Header
		}
	}
	header := func(name string, h *BatchHeader) {
		var recvApp, recvFac, sendApp, sendFac HD
		var ref string
		if h != nil {
			recvApp, recvFac, sendApp, sendFac, ref = h.ReceivingApplication, h.ReceivingFacility, h.SendingApplication, h.SendingFacility, h.ControlID
		}
		hd := func(v HD) string { return w.components(v.NamespaceID, v.UniversalID, v.UniversalIDType) }
		w.segment(name, w.enc, hd(recvApp), hd(recvFac), hd(sendApp), hd(sendFac),
			formatACKTime(ts, &w.d), "", "", "", w.text(a.ControlID), w.text(ref))
	}
	if file != nil {
		header("FHS", file)
	}
	if batch == nil {
		batch = file
	}
	header("BHS", batch)
	for _, ack := range acks {
		w.b.Write(ack)
	}
	w.segment("BTS", strconv.Itoa(len(acks)))
	if file != nil {
		w.segment("FTS", "1")
	}
	return []byte(w.b.String())
}
