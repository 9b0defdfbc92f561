package patient

import (
	"testing"

	"github.com/aortahealth/aorta/pkg/hl7"
)

func TestPrimary(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		pid     string
		wantOK  bool
		wantKey string
	}{
		{"first repetition with authority", "PID|||123^^^HOSP^MR~999^^^SSA^SS", true, "HOSP/123"},
		{"authority as universal id", "PID|||123^^^&1.2.3&ISO^MR", true, "1.2.3/123"},
		{"no authority falls back to the sending facility", "PID|||123", true, "FAC/123"},
		{"empty first repetition skipped", "PID|||~456^^^LAB", true, "LAB/456"},
		{"no identifier", "PID|||", false, ""},
		{"no PID", "", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw := "MSH|^~\\&|APP|FAC|||20260101||ADT^A01|1|P|2.5\r"
			if tt.pid != "" {
				raw += tt.pid + "\r"
			}
			m, err := hl7.Parse([]byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			id, ok := Primary(m)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if ok && id.Key("FAC") != tt.wantKey {
				t.Errorf("key = %q, want %q", id.Key("FAC"), tt.wantKey)
			}
		})
	}
}

func TestPartitionIsStableAndNonNegative(t *testing.T) {
	t.Parallel()
	for _, k := range []string{"", "HOSP/123", "x/\u00fc", "a very long key with many characters"} {
		a, b := Partition(k), Partition(k)
		if a != b || a < 0 {
			t.Errorf("Partition(%q) = %d then %d", k, a, b)
		}
	}
	// Pinned: the outbox stores these values, so the hash must never change.
	if got := Partition("HOSP/123"); got != 1336716508 {
		t.Errorf("Partition(HOSP/123) = %d; the FNV-1a partition hash changed, which breaks the outbox contract", got)
	}
	if Partition("HOSP/123") == Partition("HOSP/124") {
		t.Error("neighbouring patients share a partition key; the hash spreads nothing")
	}
}
