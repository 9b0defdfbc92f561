package loadgen

import (
	"encoding/json"
	"testing"
	"time"
)

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = ms(float64(i + 1)) // 1 .. 100 ms
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one sample is every percentile", []time.Duration{ms(3)}, 99, ms(3)},
		{"median of 1..100 is the 50th", hundred, 50, ms(50)},
		{"p95 of 1..100", hundred, 95, ms(95)},
		{"p99 of 1..100", hundred, 99, ms(99)},
		{"p100 is the max", hundred, 100, ms(100)},
		{"a tiny p is the min", hundred, 0.001, ms(1)},
		{"nearest rank rounds up: p50 of four is the second", []time.Duration{1, 2, 3, 4}, 50, 2},
		{"p99 of four is the fourth", []time.Duration{1, 2, 3, 4}, 99, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("Percentile(p%v) = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	if got := Summarize(nil); got != (Summary{}) {
		t.Errorf("Summarize(nil) = %+v, want zero", got)
	}
	// Unsorted input, with one outlier.
	in := []time.Duration{ms(5), ms(1), ms(3), ms(2), ms(4), ms(100), ms(6), ms(7), ms(8), ms(9)}
	s := Summarize(in)
	want := Summary{Count: 10, Min: ms(1), Mean: ms(14.5), P50: ms(5), P95: ms(100), P99: ms(100), Max: ms(100)}
	if s != want {
		t.Errorf("Summarize = %+v, want %+v", s, want)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"count":10,"min_ms":1,"mean_ms":14.5,"p50_ms":5,"p95_ms":100,"p99_ms":100,"max_ms":100}`; got != want {
		t.Errorf("JSON = %s, want %s", got, want)
	}
	var back Summary
	if err := json.Unmarshal(b, &back); err != nil || back != s {
		t.Errorf("JSON round trip = %+v, %v; want %+v", back, err, s)
	}
}

func TestMillis(t *testing.T) {
	for d, want := range map[time.Duration]string{
		420 * time.Microsecond: "0.42 ms",
		ms(3.14):               "3.1 ms",
		ms(27.4):               "27 ms",
		ms(9999):               "9999 ms",
		ms(61300):              "61.3 s",
	} {
		if got := Millis(d); got != want {
			t.Errorf("Millis(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestBacklogGrowth(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	series := func(rows ...int) Backlog {
		b := make(Backlog, len(rows))
		for i, r := range rows {
			b[i] = BacklogSample{At: t0.Add(time.Duration(i) * time.Second), Rows: r}
		}
		return b
	}
	tests := []struct {
		name    string
		b       Backlog
		want    float64
		wantErr bool
	}{
		{"steady", series(10, 12, 9, 11, 10, 12, 9, 11), 0, false},
		{"growing by 100 a second", series(0, 100, 200, 300, 400), 100, false},
		{"draining", series(400, 300, 200, 100, 0), -100, false},
		{"too few samples", series(1, 2), 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.b.Growth()
			if (err != nil) != tc.wantErr {
				t.Fatalf("Growth error = %v, want error %v", err, tc.wantErr)
			}
			if diff := got - tc.want; diff > 0.5 || diff < -0.5 {
				t.Errorf("Growth = %.2f rows/s, want %.2f", got, tc.want)
			}
		})
	}
	if got := series(3, 9, 4).Max(); got != 9 {
		t.Errorf("Max = %d, want 9", got)
	}
}
