package gogc

import (
	"runtime/debug"
	"testing"
)

func TestSetDefault(t *testing.T) {
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)

	t.Setenv("GOGC", "")
	SetDefault()
	if got := debug.SetGCPercent(100); got != Default {
		t.Errorf("GOGC unset: collector target %d, want %d", got, Default)
	}
	t.Setenv("GOGC", "150")
	SetDefault()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC set: collector target changed to %d, want it left alone", got)
	}
}
