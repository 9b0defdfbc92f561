package loadgen

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"
)

// Summary describes a set of latencies: how many, and their distribution.
// Percentiles use the nearest-rank method: P99 is the smallest value that
// at least 99% of the samples do not exceed, always one of the samples.
type Summary struct {
	Count int
	Min   time.Duration
	Mean  time.Duration
	P50   time.Duration
	P95   time.Duration
	P99   time.Duration
	Max   time.Duration
}

// summaryJSON is a Summary in JSON: milliseconds, which people read.
type summaryJSON struct {
	Count  int     `json:"count"`
	MinMS  float64 `json:"min_ms"`
	MeanMS float64 `json:"mean_ms"`
	P50MS  float64 `json:"p50_ms"`
	P95MS  float64 `json:"p95_ms"`
	P99MS  float64 `json:"p99_ms"`
	MaxMS  float64 `json:"max_ms"`
}

// MarshalJSON writes the durations in milliseconds.
func (s Summary) MarshalJSON() ([]byte, error) {
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Millisecond)*1000) / 1000 }
	return json.Marshal(summaryJSON{s.Count, ms(s.Min), ms(s.Mean), ms(s.P50), ms(s.P95), ms(s.P99), ms(s.Max)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Summary) UnmarshalJSON(b []byte) error {
	var j summaryJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	d := func(ms float64) time.Duration { return time.Duration(math.Round(ms * float64(time.Millisecond))) }
	*s = Summary{j.Count, d(j.MinMS), d(j.MeanMS), d(j.P50MS), d(j.P95MS), d(j.P99MS), d(j.MaxMS)}
	return nil
}

// Summarize returns the summary of samples, which it sorts in place. An
// empty set gives a zero Summary.
func Summarize(samples []time.Duration) Summary {
	if len(samples) == 0 {
		return Summary{}
	}
	slices.Sort(samples)
	var sum float64
	for _, d := range samples {
		sum += float64(d)
	}
	return Summary{
		Count: len(samples),
		Min:   samples[0],
		Mean:  time.Duration(sum / float64(len(samples))),
		P50:   Percentile(samples, 50),
		P95:   Percentile(samples, 95),
		P99:   Percentile(samples, 99),
		Max:   samples[len(samples)-1],
	}
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method; 0 for an empty slice.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// String is the summary on one line, in milliseconds.
func (s Summary) String() string {
	if s.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p95 %s  p99 %s  max %s  (n=%d)", Millis(s.P50), Millis(s.P95), Millis(s.P99), Millis(s.Max), s.Count)
}

// Millis formats d in milliseconds with a precision that suits its size:
// 0.42 ms, 3.1 ms, 27 ms; from 10 s on, in seconds: 61.3 s.
func Millis(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case math.Abs(ms) >= 10000:
		return fmt.Sprintf("%.1f s", ms/1000)
	case math.Abs(ms) < 1:
		return fmt.Sprintf("%.2f ms", ms)
	case math.Abs(ms) < 10:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.0f ms", ms)
	}
}
