//go:build !linux

package integration

import (
	"errors"
	"syscall"
)

func childProcAttr() *syscall.SysProcAttr { return nil }

// processMemory needs Linux's /proc; elsewhere the tests that measure a
// listener's memory fail with this error.
func processMemory(int) (rss, peak int64, err error) {
	return 0, 0, errors.New("reading a process's memory needs Linux /proc")
}
