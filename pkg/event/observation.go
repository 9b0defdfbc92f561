package event

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aortahealth/aorta/pkg/clinical"
	"github.com/aortahealth/aorta/pkg/hl7"
)

// Payload value types (value_type).
const (
	ValueNumber     = "number"     // exact decimal as text
	ValueComparison = "comparison" // SN with a comparator: comparator + value
	ValueRange      = "range"      // SN num1-num2: value and value_2
	ValueRatio      = "ratio"      // SN num1:num2 or num1/num2: value and value_2
	ValueCode       = "code"       // coded answer: value is the code, value_coding the coding as sent
	ValueText       = "text"       // ST, TX, FT and anything without a typed form
	ValueDateTime   = "datetime"   // TS, DTM, DT: RFC 3339 in UTC
	ValueEmbedded   = "embedded"   // ED: value is null; the raw message holds the data
	ValueNone       = "none"       // no value (a retraction without one)
)

// Sources of observed_at.
const (
	timeFromOBX    = "obx_14"
	timeFromParent = "enclosing_obx_14"
	timeFromOBR    = "obr_7"
	timeFromMSH    = "msh_7"
)

// order is an OBR with its results and notes.
type order struct {
	pos     int // OBR position
	pid     int // position of the PID it belongs to, -1 if none
	notes   []string
	results []*result
	// byPath indexes results by sub-ID path (the first result of each),
	// so that finding a result's ancestors costs its depth, not the
	// size of the order.
	byPath  map[string]*result
	payload *orderJSON // built once per order
}

// result is one OBX.
type result struct {
	pos   int
	subID string // OBX-4 as written
	path  string // OBX-4 without trailing ".0" parts: "1.1.1.0" -> "1.1.1"
	notes []string
}

// observations maps every OBX under an OBR.
func (mp *mapper) observations() error {
	subjects := map[int]*subject{}
	// subjectOf resolves the patient of an order when its first event is
	// about to be written: an order whose rows produce no event (device
	// grouping rows only) needs no patient.
	subjectOf := func(o *order) (*subject, error) {
		if s, ok := subjects[o.pid]; ok {
			return s, nil
		}
		s, err := mp.patientAt(o.pid)
		if err != nil {
			return nil, err
		}
		s.encounterID = mp.encounterID(mp.visitAfter(o.pid))
		subjects[o.pid] = &s
		return &s, nil
	}
	for _, o := range mp.orders() {
		for _, r := range o.results {
			if err := mp.result(o, r, subjectOf); err != nil {
				return err
			}
		}
	}
	return nil
}

// orders groups OBX and NTE segments under their OBR, and each OBR under
// the PID before it (a message may carry results for several patients).
// NTE segments belong to the OBR or OBX they follow; any other segment
// (ORC, SPM, ...) ends the run, so notes on a specimen are not taken for
// notes on a result.
func (mp *mapper) orders() []*order {
	var (
		out   []*order
		cur   *order
		notes *[]string
		pid   = mp.first("PID") // results before any PID: the message's patient
	)
	for i, s := range mp.segs {
		switch s.Name() {
		case "PID":
			pid, cur, notes = i, nil, nil
		case "OBR":
			cur = &order{pos: i, pid: pid, byPath: map[string]*result{}}
			out = append(out, cur)
			notes = &cur.notes
		case "OBX":
			if cur == nil {
				notes = nil
				continue
			}
			r := &result{pos: i, subID: strings.TrimSpace(s.Field(4).String())}
			r.path = subIDPath(r.subID)
			cur.results = append(cur.results, r)
			if _, dup := cur.byPath[r.path]; r.path != "" && !dup {
				cur.byPath[r.path] = r
			}
			notes = &r.notes
		case "NTE":
			if notes != nil {
				*notes = append(*notes, noteText(s)...)
			}
		case "ORC":
			cur, notes = nil, nil
		default:
			notes = nil
		}
	}
	return out
}

// noteText returns the non-empty repetitions of NTE-3, decoded.
func noteText(nte *hl7.Segment) []string {
	var out []string
	for _, r := range nte.Field(3).Repetitions() {
		if t := r.String(); t != "" && t != `""` {
			out = append(out, t)
		}
	}
	return out
}

// subIDPath normalises an IHE PCD-01 OBX-4 sub-ID (MDS.VMD.channel.metric)
// for ancestry: trailing ".0" parts are dropped, so the channel "1.1.1.0"
// becomes "1.1.1", an ancestor of the metric "1.1.1.150021".
func subIDPath(s string) string {
	parts := strings.Split(s, ".")
	for len(parts) > 0 && strings.TrimLeft(parts[len(parts)-1], "0") == "" {
		parts = parts[:len(parts)-1]
	}
	return strings.Join(parts, ".")
}

// ancestors returns the results of o that enclose r in the sub-ID
// hierarchy, outermost first: for "1.1.1.150021" the rows whose paths are
// "1", "1.1" and "1.1.1".
func (o *order) ancestors(r *result) []*result {
	var out []*result
	for p := r.path; ; {
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			break
		}
		p = p[:i]
		if a := o.byPath[p]; a != nil && a != r {
			out = append(out, a)
		}
	}
	slices.Reverse(out)
	return out
}

// result maps one OBX.
func (mp *mapper) result(o *order, r *result, subjectOf func(*order) (*subject, error)) error {
	obx := mp.segs[r.pos]
	status := strings.ToUpper(strings.TrimSpace(obx.Field(11).Component(1).String()))
	if status == "X" {
		return nil // a device or grouping row, or a value that cannot be obtained
	}
	value := obx.Field(5)
	retract := status == "D" || status == "W"
	if (value.IsEmpty() || value.IsNull()) && !retract {
		return nil // PCD-01 MDS/VMD/channel rows carry no value
	}
	var typ string
	switch {
	case retract:
		typ = ObservationRetracted
	case status == "C":
		typ = ObservationCorrected
	case status == "F", status == "R":
		typ = ObservationRecorded
	case status == "P":
		if !mp.opt.Preliminary {
			return nil
		}
		typ = ObservationRecorded
	case status == "":
		mp.warn(mp.at(r.pos, 11), "OBX-11 result status is empty; no event")
		return nil
	default:
		mp.warn(mp.at(r.pos, 11), fmt.Sprintf("OBX-11 result status %s produces no event", safeCode(status)))
		return nil
	}

	s, err := subjectOf(o)
	if err != nil {
		return err // no patient: the message is invalid whatever on_invalid says
	}
	observed, source, err := mp.observedAt(o, r)
	if err != nil {
		return mp.invalid(err)
	}

	ident := obx.Field(3)
	primary := clinical.Code{System: leaf(ident.Component(3)), Code: leaf(ident.Component(1))}
	alternate := clinical.Code{System: leaf(ident.Component(6)), Code: leaf(ident.Component(4))}
	code := primary
	if code.Code == "" {
		code = alternate
	}
	var param *clinical.Parameter
	if p, ok := mp.opt.Parameters.Lookup(primary); ok && primary.Code != "" {
		param, code = p, primary
	} else if p, ok := mp.opt.Parameters.Lookup(alternate); ok && alternate.Code != "" {
		param, code = p, alternate
	}

	pl := observationPayload{
		Code:             opt(leaf(ident.Component(1))),
		CodingSystem:     opt(leaf(ident.Component(3))),
		Display:          opt(leaf(ident.Component(2))),
		AlternateCode:    codingAt(ident, 4),
		ReferenceRange:   opt(obx.Field(7).String()),
		AbnormalFlags:    []string{},
		Status:           status,
		ObservedAt:       timeText(observed),
		ObservedAtSource: source,
		SetID:            opt(leaf(obx.Field(1))),
		SubID:            opt(r.subID),
		Order:            mp.orderPayload(o),
		Device:           mp.devicePayload(o, r),
		Notes:            joinNotes(r.notes),
		Patient:          identifierOf(s.primary),
	}
	for _, f := range obx.Field(8).Repetitions() {
		if t := leaf(f); t != "" && t != `""` {
			pl.AbnormalFlags = append(pl.AbnormalFlags, t)
		}
	}
	if param != nil {
		pl.Parameter = &param.Name
	}

	ob := &Observation{
		Code:       code.Normalized(),
		Status:     status,
		ObservedAt: observed.UTC(),
	}
	raw := mp.rawValue(obx)
	raw.fill(&pl)
	if param != nil && !(retract && raw.valueType == ValueNone) {
		v, w, err := mp.normalize(param, r.pos)
		switch {
		case err == nil:
			showNormalized(&pl, v, w)
			if !retract {
				ob.Value = v // a retraction is never scored
			}
		case !retract:
			return mp.invalid(err)
		}
		// A retraction whose value cannot be normalised shows it as sent.
	}
	if param != nil {
		ob.Parameter = param.Name
	}
	if pl.Value != nil {
		ob.ValueText = *pl.Value
	}
	ob.ValueType = pl.ValueType
	if pl.Unit != nil {
		ob.Unit = *pl.Unit
	}
	ob.Key = mp.observationKey(o, r, primary, alternate, observed)
	pl.ObservationKey = ob.Key

	return mp.emit(r.pos, fmt.Sprintf("obx/%d", r.pos+1), Event{
		Type:        typ,
		OccurredAt:  observed,
		PatientID:   s.primary.ID,
		PatientKey:  s.key,
		EncounterID: s.encounterID,
		Observation: ob,
	}, pl)
}

// showNormalized puts a parameter's normalised value in the payload, with
// the value and unit as sent when a unit was sent and translated (an MDC
// unit code, °F, mg/dL...).
func showNormalized(pl *observationPayload, v clinical.Value, w written) {
	pl.Value = opt(v.String())
	if v.Kind == clinical.Numeric {
		pl.ValueType = ValueNumber
		pl.Comparator, pl.Value2, pl.ValueCoding = nil, nil, nil
		pl.Unit = opt(v.Unit)
		if u := strings.TrimSpace(w.unit); u != "" && u != v.Unit {
			pl.OriginalValue = opt(strings.TrimSpace(w.value))
			pl.OriginalUnit = opt(u)
		}
		return
	}
	pl.ValueType = ValueCode
	pl.Comparator, pl.Value2, pl.Unit = nil, nil, nil
	if sent := strings.TrimSpace(w.value); sent != v.Coded {
		pl.OriginalValue = opt(sent)
	}
}

// invalid applies on_invalid to an observation problem: under skip it
// becomes a warning and the OBX is dropped; otherwise the message fails.
func (mp *mapper) invalid(err error) error {
	var ie *InvalidError
	if !errors.As(err, &ie) {
		return err
	}
	if mp.opt.OnInvalid == OnInvalidSkip {
		mp.warn(ie.Location, ie.Reason+"; OBX skipped")
		return nil
	}
	return ie
}

// observedAt is the observation's clinical time: OBX-14, else the OBX-14
// of the closest enclosing row by sub-ID (the device, VMD or channel of
// an IHE PCD-01 metric; the isolate of a susceptibility), else OBR-7, else
// MSH-7. The first present decides; an unreadable one makes
// the observation invalid rather than dated by a guess.
func (mp *mapper) observedAt(o *order, r *result) (time.Time, string, error) {
	read := func(pos, field int, src string) (time.Time, string, error) {
		t, err := mp.readTime(mp.segs[pos].Field(field).Component(1).String())
		if err != nil {
			return time.Time{}, "", &InvalidError{Location: mp.at(pos, field), Reason: fmt.Sprintf("%s-%d observation time unreadable", mp.segs[pos].Name(), field)}
		}
		return t, src, nil
	}
	has := func(pos, field int) bool {
		s := mp.segs[pos].Field(field).Component(1).String()
		return s != "" && s != `""`
	}
	if has(r.pos, 14) {
		return read(r.pos, 14, timeFromOBX)
	}
	anc := o.ancestors(r)
	for i := len(anc) - 1; i >= 0; i-- {
		if has(anc[i].pos, 14) {
			return read(anc[i].pos, 14, timeFromParent)
		}
	}
	if has(o.pos, 7) {
		return read(o.pos, 7, timeFromOBR)
	}
	t, err := mp.headerTime()
	return t, timeFromMSH, err
}

// written is the value and unit an observation was normalised from.
type written struct{ value, unit string }

// normalize reads OBX-5 (and OBX-6) of the OBX at pos for a parameter:
// the value (for a coded parameter the code in OBX-5.1, else the
// alternate code in OBX-5.4) and the unit (OBX-6.1, else the alternate
// OBX-6.4). Errors are *InvalidError located at OBX-5 or OBX-6.
func (mp *mapper) normalize(p *clinical.Parameter, pos int) (clinical.Value, written, error) {
	obx := mp.segs[pos]
	reps := obx.Field(5).Repetitions()
	if len(reps) > 1 {
		return clinical.Value{}, written{}, &InvalidError{Location: mp.at(pos, 5), Reason: fmt.Sprintf("OBX-5 repeats; parameter %s takes one value", p.Name)}
	}
	rep := reps[0]
	valueType := strings.ToUpper(strings.TrimSpace(obx.Field(2).Component(1).String()))
	var try []written
	switch {
	case p.Kind == clinical.Numeric:
		v := rep.String()
		if valueType == "SN" {
			v = snAsNumber(rep)
		}
		try = append(try, written{v, leaf(obx.Field(6).Component(1))})
		if alt := leaf(obx.Field(6).Component(4)); alt != "" {
			try = append(try, written{v, alt})
		}
	case isCoded(valueType):
		try = append(try, written{value: leaf(rep.Component(1))})
		if alt := leaf(rep.Component(4)); alt != "" {
			try = append(try, written{value: alt})
		}
	default:
		try = append(try, written{value: rep.String()})
	}
	var firstErr error
	for _, w := range try {
		val, err := p.Normalize(w.value, w.unit)
		if err == nil {
			return val, w, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if errors.Is(err, clinical.ErrNotNumber) || errors.Is(err, clinical.ErrComparator) {
			break // the alternate unit cannot help a value that is not a number
		}
	}
	return clinical.Value{}, written{}, mp.valueProblem(pos, p, firstErr)
}

// valueProblem turns a normalisation error into an InvalidError at the
// field to blame. Reasons never quote the value.
func (mp *mapper) valueProblem(pos int, p *clinical.Parameter, err error) error {
	var ve *clinical.ValueError
	if !errors.As(err, &ve) {
		return &InvalidError{Location: mp.at(pos, 5), Reason: fmt.Sprintf("OBX-5 cannot be read for parameter %s", p.Name)}
	}
	switch {
	case errors.Is(err, clinical.ErrUnknownUnit):
		return &InvalidError{Location: mp.at(pos, 6), Reason: "OBX-6 " + strings.TrimPrefix(ve.Error(), "clinical: ")}
	case errors.Is(err, clinical.ErrComparator):
		return &InvalidError{Location: mp.at(pos, 5), Reason: fmt.Sprintf("OBX-5 is a comparison (such as <5), not a number parameter %s can use", p.Name)}
	case errors.Is(err, clinical.ErrNotNumber), errors.Is(err, clinical.ErrNoValue):
		return &InvalidError{Location: mp.at(pos, 5), Reason: fmt.Sprintf("OBX-5 is not a number, as parameter %s requires", p.Name)}
	case errors.Is(err, clinical.ErrUnknownAnswer):
		return &InvalidError{Location: mp.at(pos, 5), Reason: fmt.Sprintf("OBX-5 is not one of the answers parameter %s accepts", p.Name)}
	}
	return &InvalidError{Location: mp.at(pos, 5), Reason: fmt.Sprintf("parameter %s cannot normalise values (check its declaration)", p.Name)}
}

func isCoded(valueType string) bool {
	switch valueType {
	case "CWE", "CE", "CNE", "CF":
		return true
	}
	return false
}

// snAsNumber renders a structured numeric (comparator^num1^separator^num2)
// as the text Normalize should judge: the plain number when there is no
// comparator and no second number, otherwise the whole, which Normalize
// rejects (a comparison as ErrComparator).
func snAsNumber(rep hl7.Element) string {
	cmp := strings.TrimSpace(leaf(rep.Component(1)))
	n1 := leaf(rep.Component(2))
	sep := leaf(rep.Component(3))
	n2 := leaf(rep.Component(4))
	if len(rep.Components()) <= 1 {
		return rep.String() // written without components: "182"
	}
	if (cmp == "" || cmp == "=") && sep == "" && n2 == "" {
		return n1
	}
	return cmp + n1 + sep + n2
}

// rawValue is an OBX-5 typed by OBX-2, as the payload shows it for codes
// no parameter maps (and as the starting point for mapped ones).
type rawValue struct {
	value      *string
	valueType  string
	comparator *string
	value2     *string
	coding     *codingJSON
	unit       *string
}

func (v rawValue) fill(p *observationPayload) {
	p.Value, p.ValueType, p.Comparator, p.Value2, p.ValueCoding, p.Unit = v.value, v.valueType, v.comparator, v.value2, v.coding, v.unit
}

func (mp *mapper) rawValue(obx *hl7.Segment) rawValue {
	out := rawValue{valueType: ValueNone, unit: opt(leaf(obx.Field(6).Component(1)))}
	f := obx.Field(5)
	if f.IsEmpty() || f.IsNull() {
		return out
	}
	reps := f.Repetitions()
	text := func() rawValue {
		parts := make([]string, 0, len(reps))
		for _, r := range reps {
			parts = append(parts, r.String())
		}
		out.valueType, out.value = ValueText, opt(strings.Join(parts, "\n"))
		return out
	}
	valueType := strings.ToUpper(strings.TrimSpace(obx.Field(2).Component(1).String()))
	if valueType == "ED" {
		out.valueType = ValueEmbedded
		return out
	}
	if len(reps) != 1 {
		return text()
	}
	rep := reps[0]
	switch {
	case valueType == "NM":
		if d, err := clinical.ParseNumber(rep.String()); err == nil {
			out.valueType, out.value = ValueNumber, opt(clinical.DecimalText(d))
			return out
		}
	case valueType == "SN":
		if v, ok := structuredNumeric(rep); ok {
			v.unit = out.unit
			return v
		}
		// Not numbers (a categorical "2^+", a typo): show the parts
		// decoded and joined, as a reader would write them ("2+").
		if len(rep.Components()) > 1 {
			out.valueType, out.value = ValueText, opt(snAsNumber(rep))
			return out
		}
	case isCoded(valueType):
		c := codingAt(rep, 1)
		if c == nil || c.Code == nil {
			c = codingAt(rep, 4)
		}
		if c != nil {
			out.valueType, out.coding = ValueCode, c
			if c.Code != nil {
				out.value = opt(*c.Code)
			}
			return out
		}
	case valueType == "TS" || valueType == "DTM" || valueType == "DT":
		if t, err := mp.readTime(rep.Component(1).String()); err == nil {
			out.valueType, out.value = ValueDateTime, opt(timeText(t))
			return out
		}
	}
	return text()
}

// structuredNumeric reads an SN value.
func structuredNumeric(rep hl7.Element) (rawValue, bool) {
	cmp := strings.TrimSpace(leaf(rep.Component(1)))
	n1, sep, n2 := leaf(rep.Component(2)), strings.TrimSpace(leaf(rep.Component(3))), leaf(rep.Component(4))
	if len(rep.Components()) <= 1 {
		n1, cmp = rep.String(), ""
	}
	d1, err := clinical.ParseNumber(n1)
	if err != nil {
		return rawValue{}, false
	}
	v := rawValue{value: opt(clinical.DecimalText(d1))}
	switch {
	case sep == "" && n2 == "":
		switch cmp {
		case "", "=":
			v.valueType = ValueNumber
		case "<", ">", "<=", ">=", "<>":
			v.valueType, v.comparator = ValueComparison, opt(cmp)
		default:
			return rawValue{}, false
		}
		return v, true
	case sep == "-" || sep == ":" || sep == "/":
		d2, err := clinical.ParseNumber(n2)
		if err != nil {
			return rawValue{}, false
		}
		v.valueType, v.value2, v.comparator = ValueRatio, opt(clinical.DecimalText(d2)), opt(cmp)
		if sep == "-" {
			v.valueType = ValueRange
		}
		return v, true
	}
	return rawValue{}, false
}

func (mp *mapper) orderPayload(o *order) orderJSON {
	if o.payload != nil {
		return *o.payload
	}
	obr := mp.segs[o.pos]
	o.payload = &orderJSON{
		SetID:   opt(leaf(obr.Field(1))),
		Placer:  eiOf(obr.Field(2).Repetition(1)),
		Filler:  eiOf(obr.Field(3).Repetition(1)),
		Service: codingAt(obr.Field(4).Repetition(1), 1),
		Notes:   joinNotes(o.notes),
	}
	return *o.payload
}

// devicePayload describes the device that made the observation: its
// equipment identifiers (OBX-18, else those of the closest enclosing
// device row that has them) and, for IHE PCD-01, the device rows
// enclosing it (MDS, VMD, channel: rows coded in MDC). nil when neither is
// known. Enclosing rows of other coding systems (a microbiology isolate
// above its susceptibilities) are not devices and are not listed.
func (mp *mapper) devicePayload(o *order, r *result) *deviceJSON {
	var anc []*result
	for _, a := range o.ancestors(r) {
		sys := clinical.Code{System: leaf(mp.segs[a.pos].Field(3).Component(3))}.Normalized().System
		if sys == clinical.MDC {
			anc = append(anc, a)
		}
	}
	ids := eisOf(mp.segs[r.pos].Field(18))
	for i := len(anc) - 1; i >= 0 && len(ids) == 0; i-- {
		ids = eisOf(mp.segs[anc[i].pos].Field(18))
	}
	if len(ids) == 0 && len(anc) == 0 {
		return nil
	}
	d := &deviceJSON{Identifiers: ids, Hierarchy: []deviceLevelJSON{}}
	for _, a := range anc {
		seg := mp.segs[a.pos]
		ident := seg.Field(3)
		d.Hierarchy = append(d.Hierarchy, deviceLevelJSON{
			SubID:        a.subID,
			Code:         opt(leaf(ident.Component(1))),
			CodingSystem: opt(leaf(ident.Component(3))),
			Display:      opt(leaf(ident.Component(2))),
			Identifiers:  eisOf(seg.Field(18)),
		})
	}
	return d
}

func joinNotes(notes []string) *string {
	if len(notes) == 0 {
		return nil
	}
	s := strings.Join(notes, "\n")
	return &s
}

// observationKey computes Observation.Key: a hash of the patient key, the
// order number (filler, else placer, with its namespace), the observation
// code and sub-ID, and, for device streams (MDC codes, or no order
// number), the observation time. A correction or retraction resent for the
// same result has the same key.
func (mp *mapper) observationKey(o *order, r *result, primary, alternate clinical.Code, observed time.Time) string {
	obr := mp.segs[o.pos]
	orderKind, orderNumber := "", ""
	for _, f := range []struct {
		kind  string
		field int
	}{{"filler", 3}, {"placer", 2}} {
		ei := obr.Field(f.field).Repetition(1)
		if id := leaf(ei.Component(1)); id != "" && id != `""` {
			orderKind, orderNumber = f.kind, id+"^"+leaf(ei.Component(2))
			break
		}
	}
	code := primary
	if code.Code == "" {
		code = alternate
	}
	code = code.Normalized()
	// The patient is left out: state is keyed by (patient, observation), and
	// a correction sent under the surviving identifier after a merge must
	// find the result it corrects.
	parts := []string{"v1", orderKind, orderNumber, code.System, code.Code, r.subID}
	if code.System == clinical.MDC || orderNumber == "" {
		parts = append(parts, timeText(observed))
	}
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:16])
}
