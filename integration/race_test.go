//go:build race

package integration

// raceEnabled is true when the tests run with -race; the listener is then
// built with the race detector too.
const raceEnabled = true
