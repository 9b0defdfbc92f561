package hl7

import (
	"bytes"
)

// Batch is an HL7 batch file split into its envelope and its messages.
//
// The HL7 batch protocol wraps messages in an optional file header
// (FHS...FTS) holding one or more batches (BHS...BTS). Segments are
// recognised by their first three bytes at the start of a line, so a
// message's own delimiters never matter for splitting.
type Batch struct {
	FileHeader  *BatchHeader // FHS; nil when the input starts with BHS or MSH
	FileTrailer *Segment     // FTS; nil when absent
	Sections    []BatchSection
	Messages    []BatchMessage
}

// BatchSection is one BHS...BTS batch.
type BatchSection struct {
	Header  *BatchHeader
	Trailer *Segment // BTS; nil when the batch is not closed
}

// BatchMessage is one message of a batch, still unparsed.
type BatchMessage struct {
	// Offset is where Raw starts in the input given to SplitBatch.
	Offset int
	// Raw is the exact sub-slice of the input from the start of the
	// message's first segment up to and including the terminators before
	// the next MSH, BHS, BTS or FTS segment (or the end of the input). It
	// does not start with MSH when the batch holds segments outside any
	// message; Parse then rejects it, and the caller should too.
	Raw []byte
	// Section indexes Batch.Sections; -1 when the message is outside any
	// BHS batch.
	Section int
}

// BatchHeader is a decoded FHS or BHS segment; both share one layout.
type BatchHeader struct {
	*Segment                    // Raw, Offset, Field and Get give access to every field
	SendingApplication   HD     // FHS-3 / BHS-3
	SendingFacility      HD     // -4
	ReceivingApplication HD     // -5
	ReceivingFacility    HD     // -6
	DateTime             string // -7.1
	NameID               string // -9: file or batch name/ID/type
	Comment              string // -10
	ControlID            string // -11
	ReferenceControlID   string // -12
}

// IsBatch reports whether raw starts (after an optional byte-order mark and
// blank lines) with an FHS or BHS segment.
func IsBatch(raw []byte) bool {
	start := 0
	if bytes.HasPrefix(raw, bom) {
		start = len(bom)
	}
	sc := newLineScanner(raw, start)
	s, e, ok := sc.next()
	if !ok {
		return false
	}
	name := segName(raw[s:e])
	return name == "FHS" || name == "BHS"
}

func segName(line []byte) string {
	if len(line) < 3 {
		return ""
	}
	switch string(line[:3]) {
	case "FHS":
		return "FHS"
	case "FTS":
		return "FTS"
	case "BHS":
		return "BHS"
	case "BTS":
		return "BTS"
	case "MSH":
		return "MSH"
	}
	return ""
}

// SplitBatch splits a batch file into its messages without parsing them.
//
// Besides FHS/BHS envelopes it accepts plain concatenated messages that
// start with MSH, a common way of exchanging files of messages without the
// batch protocol. Envelope segments that do not fit where they appear (a
// second FHS, a BTS with no open batch, an FTS without FHS) are not dropped:
// they become BatchMessages of their own so the caller rejects them.
//
// SplitBatch fails only when the input is empty, does not start with FHS,
// BHS or MSH, or when an FHS or BHS has unusable delimiters.
func SplitBatch(raw []byte) (*Batch, error) {
	start := 0
	if bytes.HasPrefix(raw, bom) {
		start = len(bom)
	}
	sc := newLineScanner(raw, start)
	b := &Batch{}
	msgStart, msgSection := -1, -1
	open := -1 // index of the BHS batch still waiting for its BTS
	closeMsg := func(end int) {
		if msgStart >= 0 {
			b.Messages = append(b.Messages, BatchMessage{Offset: msgStart, Raw: raw[msgStart:end:end], Section: msgSection})
			msgStart = -1
		}
	}
	startMsg := func(at int) {
		msgStart, msgSection = at, open
	}
	first := true
	var fileDelims *Delimiters
	for {
		s, e, ok := sc.next()
		if !ok {
			break
		}
		line := raw[s:e]
		name := segName(line)
		if first {
			first = false
			if name != "FHS" && name != "BHS" && name != "MSH" {
				return nil, newError(SegmentSequenceError, Location{}, s, "batch does not start with FHS, BHS or MSH")
			}
			if name == "FHS" {
				h, err := parseBatchHeader(raw, s, e, "FHS")
				if err != nil {
					return nil, err
				}
				b.FileHeader = h
				d := h.m.delims
				fileDelims = &d
				continue
			}
		}
		switch name {
		case "BHS":
			closeMsg(s)
			h, err := parseBatchHeader(raw, s, e, "BHS")
			if err != nil {
				return nil, err
			}
			b.Sections = append(b.Sections, BatchSection{Header: h})
			open = len(b.Sections) - 1
		case "BTS":
			closeMsg(s)
			if open < 0 {
				startMsg(s)
				continue
			}
			d := b.Sections[open].Header.m.delims
			b.Sections[open].Trailer = trailerSegment(raw, s, e, d)
			open = -1
		case "FTS":
			closeMsg(s)
			if b.FileHeader == nil || b.FileTrailer != nil {
				startMsg(s)
				continue
			}
			open = -1
			b.FileTrailer = trailerSegment(raw, s, e, *fileDelims)
		case "MSH", "FHS":
			// Only the first segment may be an FHS; a later one starts a
			// message without MSH so that it gets rejected.
			closeMsg(s)
			startMsg(s)
		default:
			if msgStart < 0 {
				startMsg(s)
			}
		}
	}
	if first {
		return nil, newError(SegmentSequenceError, Location{}, start, "empty batch")
	}
	closeMsg(len(raw))
	return b, nil
}

// parseBatchHeader reads an FHS or BHS, whose first two fields declare
// delimiters exactly as MSH does.
func parseBatchHeader(raw []byte, s, e int, name string) (*BatchHeader, error) {
	line := raw[s:e]
	d, perr := readDelimiters(line, s)
	if perr != nil {
		perr.Location.Segment = name
		return nil, perr
	}
	seg := envelopeSegment(raw, s, e, d)
	h := &BatchHeader{Segment: seg}
	hd := func(n int) HD {
		f := seg.Field(n)
		return HD{f.Component(1).String(), f.Component(2).String(), f.Component(3).String()}
	}
	h.SendingApplication = hd(3)
	h.SendingFacility = hd(4)
	h.ReceivingApplication = hd(5)
	h.ReceivingFacility = hd(6)
	h.DateTime = seg.Field(7).Component(1).String()
	h.NameID = seg.Field(9).String()
	h.Comment = seg.Field(10).String()
	h.ControlID = seg.Field(11).String()
	h.ReferenceControlID = seg.Field(12).String()
	return h, nil
}

func trailerSegment(raw []byte, s, e int, d Delimiters) *Segment {
	return envelopeSegment(raw, s, e, d)
}

// envelopeSegment wraps one envelope segment in a message of its own, so
// it shares the query API without copying the whole batch.
func envelopeSegment(raw []byte, s, e int, d Delimiters) *Segment {
	m := &Message{raw: raw, delims: d, cs: autoCharset}
	seg := &Segment{}
	m.initSegment(seg, string(raw[s:e]), s)
	m.segs = []*Segment{seg}
	return seg
}
