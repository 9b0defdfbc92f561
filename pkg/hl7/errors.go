package hl7

import (
	"strconv"
	"strings"
)

// ErrorCode is a value of HL7 table 0357 (message error condition codes).
// It is what an ERR segment reports, so parse failures carry one directly and
// the ACK builder never has to guess a mapping.
type ErrorCode int

// HL7 table 0357.
const (
	MessageAccepted          ErrorCode = 0
	SegmentSequenceError     ErrorCode = 100
	RequiredFieldMissing     ErrorCode = 101
	DataTypeError            ErrorCode = 102
	TableValueNotFound       ErrorCode = 103
	ValueTooLong             ErrorCode = 104
	UnsupportedMessageType   ErrorCode = 200
	UnsupportedEventCode     ErrorCode = 201
	UnsupportedProcessingID  ErrorCode = 202
	UnsupportedVersionID     ErrorCode = 203
	UnknownKeyIdentifier     ErrorCode = 204
	DuplicateKeyIdentifier   ErrorCode = 205
	ApplicationRecordLocked  ErrorCode = 206
	ApplicationInternalError ErrorCode = 207
)

var errorCodeText = map[ErrorCode]string{
	MessageAccepted:          "Message accepted",
	SegmentSequenceError:     "Segment sequence error",
	RequiredFieldMissing:     "Required field missing",
	DataTypeError:            "Data type error",
	TableValueNotFound:       "Table value not found",
	ValueTooLong:             "Value too long",
	UnsupportedMessageType:   "Unsupported message type",
	UnsupportedEventCode:     "Unsupported event code",
	UnsupportedProcessingID:  "Unsupported processing id",
	UnsupportedVersionID:     "Unsupported version id",
	UnknownKeyIdentifier:     "Unknown key identifier",
	DuplicateKeyIdentifier:   "Duplicate key identifier",
	ApplicationRecordLocked:  "Application record locked",
	ApplicationInternalError: "Application internal error",
}

// String returns the description HL7 table 0357 gives the code, as written
// in the text component of ERR-3.
func (c ErrorCode) String() string {
	if s, ok := errorCodeText[c]; ok {
		return s
	}
	return "Error " + strconv.Itoa(int(c))
}

// Severity is a value of HL7 table 0516 (error severity), used in ERR-4.
type Severity string

// HL7 table 0516.
const (
	SeverityError       Severity = "E"
	SeverityWarning     Severity = "W"
	SeverityInformation Severity = "I"
	SeverityFatal       Severity = "F"
)

// Error is a problem found in a message, positioned by HL7 location and by
// byte offset into the input so that a reject ACK and a log line can both
// point at it.
//
// Reason describes the problem without quoting any value from the message:
// values are patient data and errors end up in logs.
type Error struct {
	Code     ErrorCode
	Location Location // zero when the problem is not tied to one place
	Offset   int      // byte offset into the input; -1 when unknown
	Severity Severity
	Reason   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("hl7: ")
	if loc := e.Location.String(); loc != "" {
		b.WriteString(loc)
		if e.Offset >= 0 {
			b.WriteString(" at byte ")
			b.WriteString(strconv.Itoa(e.Offset))
		}
		b.WriteString(": ")
	} else if e.Offset >= 0 {
		b.WriteString("at byte ")
		b.WriteString(strconv.Itoa(e.Offset))
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	b.WriteString(" (")
	b.WriteString(strconv.Itoa(int(e.Code)))
	b.WriteString(" ")
	b.WriteString(strings.ToLower(e.Code.String()))
	b.WriteString(")")
	return b.String()
}

func newError(code ErrorCode, loc Location, offset int, reason string) *Error {
	return &Error{Code: code, Location: loc, Offset: offset, Severity: SeverityError, Reason: reason}
}
