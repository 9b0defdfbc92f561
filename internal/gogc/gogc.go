// Package gogc sets the garbage collector's target for Aorta's processes
// unless the operator chose one.
//
// Both processes keep a small live heap and allocate every message's
// parse, ACK, events and statements anew; at Go's default (GOGC=100) the
// collector ran many times a second under load. In make bench, GOGC=400
// cut the listener's CPU per message by about 30 % and the router's by
// about 25 %, for a heap a few MiB (listener) to a few tens of MiB
// (router) larger. The heap stays bounded by the processes' own limits
// (frame size, connections, batch size), and GOMEMLIMIT, when set, still
// caps it.
package gogc

import (
	"os"
	"runtime/debug"
)

// Default is the GOGC the processes run with when none is set.
const Default = 400

// SetDefault applies Default unless the GOGC environment variable is set.
func SetDefault() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(Default)
	}
}
