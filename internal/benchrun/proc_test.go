package benchrun

import (
	"os"
	"testing"
	"time"
)

func TestParseStatus(t *testing.T) {
	in := "Name:\tmllp-listener\nVmPeak:\t 1283436 kB\nVmHWM:\t   48212 kB\nVmRSS:\t   30124 kB\nThreads:\t7\n"
	rss, peak, err := parseStatus([]byte(in))
	if err != nil || rss != 30124 || peak != 48212 {
		t.Errorf("parseStatus = %d, %d, %v; want 30124, 48212", rss, peak, err)
	}
	if _, _, err := parseStatus([]byte("Name:\tx\nVmRSS:\t1 kB\n")); err == nil {
		t.Error("parseStatus without VmHWM: no error")
	}
}

func TestParseStat(t *testing.T) {
	// A command name with a space and a parenthesis; utime 250, stime 50.
	in := "4242 (odd) name) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 100 0 0\n"
	got, err := parseStat([]byte(in))
	if err != nil || got != 3*time.Second {
		t.Errorf("parseStat = %v, %v; want 3s", got, err)
	}
	if _, err := parseStat([]byte("1 (x) S 1")); err == nil {
		t.Error("parseStat of a short line: no error")
	}
}

// TestProcSelf reads this test's own process, as the bench reads the
// listener's.
func TestProcSelf(t *testing.T) {
	rss, peak, err := procMem(os.Getpid())
	if err != nil || rss <= 0 || peak < rss {
		t.Errorf("procMem(self) = %d, %d, %v", rss, peak, err)
	}
	if _, err := procCPU(os.Getpid()); err != nil {
		t.Errorf("procCPU(self): %v", err)
	}
	if _, err := LoadAverage(); err != nil {
		t.Errorf("loadAverage: %v", err)
	}
}
