// Package hl7 parses, queries, builds and acknowledges HL7 v2 messages.
//
// It is the parser on Aorta's ingest path, written to replace
// github.com/lenaten/hl7, and keeps a familiar shape: Parse a message,
// query values by location ("PID-5.1", "OBX[3]-5", "PID-3[2].1"), iterate
// over segments and segment groups, and Unmarshal into tagged structs.
// The package does no I/O; MLLP framing lives in pkg/mllp.
//
// # Reading
//
// Delimiters come from MSH-1 and MSH-2, so non-standard separators (a field
// separator of '^' or '$', three encoding characters, the v2.7 truncation
// character) work. Segments may end in CR, LF or CRLF. Parse indexes
// segment boundaries only; fields are located on first use and values are
// decoded when asked for, which keeps parsing cheap on the ingest hot path.
//
// Values come back as valid UTF-8 with escape sequences decoded (\F\ \S\
// \T\ \R\ \E\, \Xhh\ in the message character set, formatted-text commands
// such as \.br\ as plain text). MSH-18 selects the character set: ASCII,
// ISO 8859 parts 1-9 and 15, and UTF-8 are supported; with no MSH-18 each
// value is read as UTF-8 when valid and as Windows-1252 otherwise. The
// input bytes are never modified: Message.Raw returns them as received.
//
// # Errors
//
// Failures are *Error values carrying an HL7 table 0357 code, a location
// and a byte offset, ready for an ERR segment. Error texts never contain
// message values, which are patient data. Parse never panics, whatever the
// input; it is fuzzed to keep it that way.
//
// # Acknowledging
//
// AckFor applies the original and enhanced acknowledgment rules of MSH-15
// and MSH-16, and BuildACK writes the ACK with the sender's own delimiters
// and character set. When Parse fails, ParseHeader still recovers what it
// can of the header so the sender can be answered with a reject.
//
// # Batches
//
// SplitBatch cuts FHS/BHS batch files into unparsed messages, giving each
// one's exact bytes and offset so the caller can store them as received.
package hl7
