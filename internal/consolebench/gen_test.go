package consolebench

import (
	"bytes"
	"crypto/sha256"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aortahealth/aorta/internal/loadgen"
)

// The received times increase with the message number, stay inside the
// plan's days, and put the shares the dashboard's windows need in the
// last day and week.
func TestReceivedAtShape(t *testing.T) {
	end := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name           string
		days           int
		wantDay, wantW float64 // shares in the last day and the last 7 days
	}{
		{"30 days", 30, lastDayShare, lastDayShare + lastWeekShare},
		{"5 days", 5, lastDayShare, 1},
		{"1 day", 1, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Plan{Messages: 10_000, Days: tt.days, End: end}
			p.defaults()
			var prev time.Time
			day, week := 0, 0
			for i := range p.Messages {
				at := p.receivedAt(i)
				if at.Before(prev) {
					t.Fatalf("message %d at %v, before message %d at %v", i, at, i-1, prev)
				}
				if at.Before(end.Add(-time.Duration(tt.days)*24*time.Hour)) || at.After(end) {
					t.Fatalf("message %d at %v, outside the %d days before %v", i, at, tt.days, end)
				}
				if end.Sub(at) <= 24*time.Hour {
					day++
				}
				if end.Sub(at) <= 7*24*time.Hour {
					week++
				}
				prev = at
			}
			if got := float64(day) / float64(p.Messages); math.Abs(got-tt.wantDay) > 0.01 {
				t.Errorf("last day holds %.3f of the messages, want %.2f", got, tt.wantDay)
			}
			if got := float64(week) / float64(p.Messages); math.Abs(got-tt.wantW) > 0.01 {
				t.Errorf("last week holds %.3f of the messages, want %.2f", got, tt.wantW)
			}
		})
	}
}

// Messages are reproducible, consistent with their own raw text, and in
// the mix's proportions: what the seed stores must look like what the
// listener would have stored.
func TestMessagesAreConsistent(t *testing.T) {
	end := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	g, err := newGenerator(Plan{Messages: 20_000, End: end, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := g.message(123), g.message(123); !reflect.DeepEqual(a, b) {
		t.Fatalf("message 123 differs between two calls")
	}
	n := g.plan.Messages
	var rejected, routed, events, dead, alerts int
	sendersSeen := map[string]bool{}
	triggers := map[string]int{}
	prevID := g.message(0).ID
	for i := range n {
		m := g.message(i)
		if i > 0 && bytes.Compare(m.ID[:6], prevID[:6]) < 0 {
			t.Fatalf("message %d: id %v sorts before the previous %v (UUIDv7 time order)", i, m.ID, prevID)
		}
		prevID = m.ID
		if m.ID.Version() != 7 {
			t.Fatalf("message %d: id version %d, want 7", i, m.ID.Version())
		}
		if sum := sha256.Sum256(m.Raw); !bytes.Equal(sum[:], m.SHA256) {
			t.Fatalf("message %d: raw_sha256 is not the raw text's", i)
		}
		wantMSH := "MSH|^~\\&|" + m.Sender.App + "|" + m.Sender.Facility + "|"
		if !bytes.HasPrefix(m.Raw, []byte(wantMSH)) {
			t.Fatalf("message %d: raw begins %q, want %q", i, m.Raw[:40], wantMSH)
		}
		if !bytes.Contains(m.Raw, []byte("|"+m.Type+"^"+m.Trigger+"^"+m.Structure+"|"+m.ControlID+"|")) {
			t.Fatalf("message %d: MSH-9/MSH-10 of the raw text are not %s^%s^%s|%s", i, m.Type, m.Trigger, m.Structure, m.ControlID)
		}
		if !bytes.Contains(m.Raw, []byte("PID|1||"+m.PatientID+"^^^"+authority+"^MR")) {
			t.Fatalf("message %d: PID-3 is not %s", i, m.PatientKey)
		}
		sendersSeen[m.Sender.App+"^"+m.Sender.Facility] = true
		if m.Sender == idleSender && end.Sub(m.ReceivedAt) < idleFor {
			t.Fatalf("message %d: the idle feed sent at %v, within %v of the end", i, m.ReceivedAt, idleFor)
		}
		triggers[m.Type+"^"+m.Trigger]++
		switch {
		case m.Status == "rejected":
			rejected++
			if m.AckCode != "AR" && m.AckCode != "AE" || m.ErrorCode == 0 || m.Error == "" || !bytes.Contains(m.ACK, []byte("ERR|")) {
				t.Fatalf("message %d: rejected with ack %s, error %d %q", i, m.AckCode, m.ErrorCode, m.Error)
			}
			if len(m.Events) > 0 || m.Routing != "" || m.DeadLetter != nil {
				t.Fatalf("message %d: rejected but routed", i)
			}
		case m.Routing == "routed":
			routed++
			events += len(m.Events)
			if len(m.Events) == 0 || len(m.Routes) == 0 {
				t.Fatalf("message %d: routed with %d events, routes %v", i, len(m.Events), m.Routes)
			}
		case m.Routing == "dead_lettered":
			dead++
			if m.DeadLetter == nil || len(m.Events) > 0 {
				t.Fatalf("message %d: dead-lettered without its dead letter, or with events", i)
			}
		}
		if m.Alert != nil {
			alerts++
		}
	}
	share := func(k int) float64 { return float64(k) / float64(n) }
	if s := share(rejected); math.Abs(s-rejectedShare) > 0.006 {
		t.Errorf("%.3f rejected, want about %.2f", s, rejectedShare)
	}
	if per := float64(events) / float64(routed); per < 1.7 || per > 2.5 {
		t.Errorf("%.2f events per routed message, want about 2", per)
	}
	// Both are counts of the plan, whatever its size.
	if want := float64(g.plan.DeadLetters); math.Abs(float64(dead)-want) > want/10 {
		t.Errorf("%d dead-lettered, want about %.0f", dead, want)
	}
	if want := float64(g.plan.Alerts); float64(alerts) < want/3 || float64(alerts) > want*3 {
		t.Errorf("%d alerts, want about %.0f", alerts, want)
	}
	if len(sendersSeen) < 10 || len(sendersSeen) > 20 {
		t.Errorf("%d senders, want 10 to 20: %v", len(sendersSeen), sendersSeen)
	}
	for _, tr := range []string{"ADT^A01", "ADT^A02", "ADT^A03", "ADT^A08", "ORU^R01"} {
		if triggers[tr] == 0 {
			t.Errorf("no %s among %v", tr, triggers)
		}
	}
	if triggers["ORU^R01"] < n/2 {
		t.Errorf("%d ORU^R01 of %d, want most of them (monitors dominate)", triggers["ORU^R01"], n)
	}
}

// Each feed sends one kind of message, and a patient always comes from
// the same feed of a kind.
func TestSenderFor(t *testing.T) {
	for _, k := range loadgen.Kinds {
		for p := range 50 {
			if a, b := senderFor(k, p), senderFor(k, p); a != b {
				t.Fatalf("%s patient %d: %v then %v", k, p, a, b)
			}
		}
	}
	seen := map[sender]loadgen.Kind{}
	for _, k := range []loadgen.Kind{loadgen.Admit, loadgen.Lab, loadgen.Monitor, loadgen.Nursing} {
		for _, s := range senders[k] {
			if other, ok := seen[s]; ok {
				t.Errorf("sender %v sends both %s and %s", s, other, k)
			}
			seen[s] = k
		}
	}
}

func TestReadPlan(t *testing.T) {
	big := map[string]bool{"messages": true, "events": true}
	tests := []struct {
		name      string
		plan      string
		wantScans []string
		wantIdx   []string
	}{
		{"index only", `[{"Plan": {"Node Type": "Limit", "Plans": [{"Node Type": "Index Scan", "Relation Name": "messages", "Index Name": "messages_received_id_idx"}]}, "Execution Time": 0.5}]`,
			[]string{}, []string{"messages_received_id_idx"}},
		{"nested scan of a big table", `[{"Plan": {"Node Type": "Hash Join", "Plans": [{"Node Type": "Seq Scan", "Relation Name": "events"}, {"Node Type": "Hash", "Plans": [{"Node Type": "Bitmap Index Scan", "Index Name": "messages_control_id_idx"}]}]}, "Execution Time": 12}]`,
			[]string{"events"}, []string{"messages_control_id_idx"}},
		{"scan of a small table", `[{"Plan": {"Node Type": "Seq Scan", "Relation Name": "dead_letters"}, "Execution Time": 1}]`,
			[]string{}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pc, err := readPlan([]byte(tt.plan), big)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(pc.SeqScans, tt.wantScans) || !reflect.DeepEqual(pc.Indexes, tt.wantIdx) {
				t.Errorf("scans %v, indexes %v; want %v, %v", pc.SeqScans, pc.Indexes, tt.wantScans, tt.wantIdx)
			}
		})
	}
	if _, err := readPlan([]byte(`{}`), big); err == nil || !strings.Contains(err.Error(), "read plan") {
		t.Errorf("a plan that is no list: %v, want an error", err)
	}
}

func TestIsRead(t *testing.T) {
	for sql, want := range map[string]bool{
		"SELECT 1":                             true,
		"select * from messages":               true,
		"WITH c AS (SELECT 1) SELECT * FROM c": true,
		"WITH q AS (INSERT INTO outbox SELECT 1 RETURNING id) SELECT count(*) FROM q": false,
		"SELECT * FROM dead_letters WHERE id = $1 FOR UPDATE OF d":                    false,
		"UPDATE alerts SET status = 'resolved'":                                       false,
		"begin isolation level repeatable read read only":                             false,
	} {
		if got := isRead(sql); got != want {
			t.Errorf("isRead(%q) = %v, want %v", sql, got, want)
		}
	}
}
