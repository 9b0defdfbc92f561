// Package logline reads the JSON log lines Aorta's binaries write, for the
// programs that start them (make run, make demo, the integration tests)
// and wait for what a line says, such as the address a listener bound.
package logline

import (
	"bytes"
	"encoding/json"
)

// FirstString returns the first top-level string value of key in a JSON
// object, "" when absent or not a string. The first, because a record may
// repeat a key (slog does not de-duplicate) and the binaries log the bound
// address before anything else under the same key.
func FirstString(obj []byte, key string) string {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return ""
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return ""
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return ""
		}
		var s string
		if k == key && json.Unmarshal(v, &s) == nil {
			return s
		}
	}
	return ""
}
