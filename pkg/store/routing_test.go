package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/patient"
	"github.com/aortahealth/aorta/pkg/store"
)

// queue stores accepted messages for the given patients, in order, and
// returns them.
func queue(t *testing.T, s *store.Store, patients ...string) []*store.Message {
	t.Helper()
	var ms []*store.Message
	for i, p := range patients {
		m := newMessage(fmt.Sprintf("Q%d-%s", i, uuid.NewString()[:6]), fmt.Sprintf("raw %d", i))
		m.Outbox = &store.OutboxEntry{PartitionKey: patient.Partition(p), PatientKey: p}
		ms = append(ms, m)
	}
	if _, err := s.Save(context.Background(), single(ms...), window); err != nil {
		t.Fatal(err)
	}
	return ms
}

func laneOf(key string) int16 { return int16(patient.Partition(key) % store.Lanes) }

func allLanes() []int16 {
	var ls []int16
	for i := range store.Lanes {
		ls = append(ls, int16(i))
	}
	return ls
}

func leaseAll(t *testing.T, s *store.Store, owner string) map[int16]store.Lease {
	t.Helper()
	if _, err := s.RegisterRouter(context.Background(), owner, "test", time.Minute); err != nil {
		t.Fatal(err)
	}
	ls, err := s.BalanceLanes(context.Background(), owner, store.Lanes, time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := map[int16]store.Lease{}
	for _, l := range ls {
		m[l.Lane] = l
	}
	return m
}

func TestBalanceLanesSharesFairly(t *testing.T) {
	t.Parallel()
	s, _ := pgtest.NewStore(t)
	ctx := context.Background()
	a := leaseAll(t, s, "a")
	if len(a) != store.Lanes {
		t.Fatalf("a alone holds %d lanes, want all %d", len(a), store.Lanes)
	}
	// A second router arrives: a gives up half when it next balances, b takes them.
	if _, err := s.RegisterRouter(ctx, "b", "test", time.Minute); err != nil {
		t.Fatal(err)
	}
	heldA, err := s.BalanceLanes(ctx, "a", store.Lanes/2, time.Minute, map[int16]bool{0: true})
	if err != nil {
		t.Fatal(err)
	}
	heldB, err := s.BalanceLanes(ctx, "b", store.Lanes/2, time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(heldA) != store.Lanes/2 || len(heldB) != store.Lanes/2 {
		t.Fatalf("a holds %d, b holds %d; want %d each", len(heldA), len(heldB), store.Lanes/2)
	}
	seen := map[int16]bool{}
	for _, l := range append(heldA, heldB...) {
		if seen[l.Lane] {
			t.Fatalf("lane %d held twice", l.Lane)
		}
		seen[l.Lane] = true
	}
	if !slicesContainsLane(heldA, 0) {
		t.Error("a gave up lane 0 although it was busy")
	}
	if err := s.UnregisterRouter(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	heldB, err = s.BalanceLanes(ctx, "b", store.Lanes, time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(heldB) != store.Lanes {
		t.Errorf("after a unregistered, b holds %d lanes, want all", len(heldB))
	}
}

func slicesContainsLane(ls []store.Lease, lane int16) bool {
	for _, l := range ls {
		if l.Lane == lane {
			return true
		}
	}
	return false
}

func TestReadyWorkHoldsAPatientBehindItsBackoff(t *testing.T) {
	t.Parallel()
	s, _ := pgtest.NewStore(t)
	ctx := context.Background()
	ms := queue(t, s, "H/1", "H/2", "H/1", "H/1")
	work, err := s.ReadyWork(ctx, allLanes(), store.Lanes, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(work) != 4 {
		t.Fatalf("ready = %d rows, want 4", len(work))
	}
	// The first message of H/1 fails: H/1's later messages wait, H/2's do not.
	var first store.Work
	for _, w := range work {
		if w.MessageID == ms[0].ID {
			first = w
		}
	}
	if _, err := s.Fail(ctx, first, "boom", "r", time.Hour, 5); err != nil {
		t.Fatal(err)
	}
	work, err = s.ReadyWork(ctx, allLanes(), store.Lanes, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(work) != 1 || work[0].MessageID != ms[1].ID {
		t.Fatalf("ready after failure = %v, want only H/2's message", work)
	}
}

func TestApplyWritesEventsStateAndCompletesTheOutbox(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	ctx := context.Background()
	ms := queue(t, s, "H/1")
	leases := leaseAll(t, s, "r1")
	work, err := s.ReadyWork(ctx, allLanes(), store.Lanes, 10)
	if err != nil || len(work) != 1 {
		t.Fatalf("ready = %v, %v", work, err)
	}
	w := work[0]
	obsAt := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	ev := store.EventRow{
		ID: uuid.New(), Type: "observation.recorded", OccurredAt: obsAt, MessageID: ms[0].ID,
		PatientID: "1", PatientKey: "H/1", Source: "LAB^HOSP", Route: "vitals", SchemaVersion: 1,
		Payload: []byte(`{"code":"8867-4","replaces":null}`),
		Observation: &store.ObservationRow{Change: store.ObservationRecord, Key: "k1", Parameter: "heart_rate",
			CodeSystem: "LN", Code: "8867-4", Numeric: "88", Unit: "/min", Status: "F", ObservedAt: obsAt},
	}
	p := store.Processed{Work: w, Status: store.Routed, Routes: []string{"vitals"}, Events: []store.EventRow{ev}}
	if err := s.Apply(ctx, "r1", leases[w.Lane], []store.Processed{p}, laneOf, nil); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if n := count(t, url, "SELECT count(*) FROM outbox"); n != 0 {
		t.Errorf("outbox = %d rows after Apply, want 0", n)
	}
	if n := count(t, url, "SELECT count(*) FROM events WHERE id = $1 AND message_id = $2", ev.ID, ms[0].ID); n != 1 {
		t.Errorf("events = %d, want the one event", n)
	}
	if n := count(t, url, "SELECT count(*) FROM observations WHERE patient_key = 'H/1' AND value_numeric = 88 AND parameter = 'heart_rate'"); n != 1 {
		t.Errorf("observation state rows = %d, want 1", n)
	}
	if n := count(t, url, "SELECT count(*) FROM message_routing WHERE message_id = $1 AND status = 'routed' AND events = 1", ms[0].ID); n != 1 {
		t.Errorf("message_routing rows = %d, want 1", n)
	}

	// A correction replaces the value and points at what it replaces.
	ms2 := queue(t, s, "H/1")
	work, _ = s.ReadyWork(ctx, allLanes(), store.Lanes, 10)
	corr := ev
	corr.ID, corr.Type, corr.MessageID = uuid.New(), "observation.corrected", ms2[0].ID
	corr.Observation = &store.ObservationRow{Change: store.ObservationCorrect, Key: "k1", Parameter: "heart_rate",
		CodeSystem: "LN", Code: "8867-4", Numeric: "92", Unit: "/min", Status: "C", ObservedAt: obsAt}
	p = store.Processed{Work: work[0], Status: store.Routed, Events: []store.EventRow{corr}}
	if err := s.Apply(ctx, "r1", leases[work[0].Lane], []store.Processed{p}, laneOf, nil); err != nil {
		t.Fatalf("Apply correction: %v", err)
	}
	if n := count(t, url, "SELECT count(*) FROM observations WHERE patient_key = 'H/1' AND value_numeric = 92 AND status = 'C'"); n != 1 {
		t.Errorf("correction did not replace the value")
	}
	if n := count(t, url, "SELECT count(*) FROM events WHERE id = $1 AND payload->>'replaces' = $2", corr.ID, ev.ID.String()); n != 1 {
		t.Errorf("correction payload does not point at the event it replaces")
	}
}

func TestApplyRefusesALostLease(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	ctx := context.Background()
	queue(t, s, "H/1")
	leases := leaseAll(t, s, "r1")
	work, _ := s.ReadyWork(ctx, allLanes(), store.Lanes, 10)
	stale := leases[work[0].Lane]
	stale.Fence-- // the lease was lost and re-acquired since
	err := s.Apply(ctx, "r1", stale, []store.Processed{{Work: work[0], Status: store.Unrouted}}, laneOf, nil)
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("Apply with a stale fence: %v, want ErrLeaseLost", err)
	}
	if n := count(t, url, "SELECT count(*) FROM outbox"); n != 1 {
		t.Errorf("outbox = %d, want the row kept", n)
	}
}

func TestMergeWaitsForThePriorPatientsEarlierMessages(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	ctx := context.Background()
	ms := queue(t, s, "H/old", "H/new")
	leases := leaseAll(t, s, "r1")
	work, _ := s.ReadyWork(ctx, allLanes(), store.Lanes, 10)
	var mergeWork, priorWork store.Work
	for _, w := range work {
		if w.MessageID == ms[1].ID {
			mergeWork = w
		} else {
			priorWork = w
		}
	}
	merge := store.EventRow{ID: uuid.New(), Type: "patient.merged", OccurredAt: time.Now(), MessageID: ms[1].ID,
		PatientID: "new", PatientKey: "H/new", Source: "ADT^HOSP", Route: "adt", SchemaVersion: 1, Payload: []byte(`{}`),
		Merge: &store.MergeRow{PriorKey: "H/old", SurvivingKey: "H/new"}}
	err := s.Apply(ctx, "r1", leases[mergeWork.Lane], []store.Processed{{Work: mergeWork, Status: store.Routed, Events: []store.EventRow{merge}}}, laneOf, nil)
	var wait *store.MergeWaitError
	if !errors.As(err, &wait) || wait.OutboxID != mergeWork.OutboxID {
		t.Fatalf("merge before the prior patient's message: %v, want MergeWaitError", err)
	}
	// The prior patient's message lands first, with an observation.
	obs := store.EventRow{ID: uuid.New(), Type: "observation.recorded", OccurredAt: time.Now(), MessageID: ms[0].ID,
		PatientID: "old", PatientKey: "H/old", Source: "LAB^HOSP", Route: "vitals", SchemaVersion: 1, Payload: []byte(`{}`),
		Observation: &store.ObservationRow{Change: store.ObservationRecord, Key: "k", CodeSystem: "LN", Code: "8867-4", Numeric: "70", Status: "F", ObservedAt: time.Now()}}
	if err := s.Apply(ctx, "r1", leases[priorWork.Lane], []store.Processed{{Work: priorWork, Status: store.Routed, Events: []store.EventRow{obs}}}, laneOf, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, "r1", leases[mergeWork.Lane], []store.Processed{{Work: mergeWork, Status: store.Routed, Events: []store.EventRow{merge}}}, laneOf, nil); err != nil {
		t.Fatalf("merge after the prior patient's message: %v", err)
	}
	if n := count(t, url, "SELECT count(*) FROM observations WHERE patient_key = 'H/new'"); n != 1 {
		t.Errorf("the prior patient's observation did not move to the survivor")
	}
	if n := count(t, url, "SELECT count(*) FROM patient_links WHERE prior_key = 'H/old' AND surviving_key = 'H/new'"); n != 1 {
		t.Errorf("no patient link recorded")
	}
}

func TestFailDeadLettersAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	ctx := context.Background()
	ms := queue(t, s, "H/1")
	for attempt := range 3 {
		work, err := s.ReadyWork(ctx, allLanes(), store.Lanes, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(work) != 1 {
			t.Fatalf("attempt %d: ready = %d rows", attempt, len(work))
		}
		dead, err := s.Fail(ctx, work[0], "mapping exploded", "vitals", 0, 3)
		if err != nil {
			t.Fatal(err)
		}
		if dead != (attempt == 2) {
			t.Fatalf("attempt %d: dead = %v", attempt, dead)
		}
	}
	if n := count(t, url, "SELECT count(*) FROM dead_letters WHERE message_id = $1 AND attempts = 3 AND route = 'vitals'", ms[0].ID); n != 1 {
		t.Errorf("dead letters = %d, want 1", n)
	}
	if n := count(t, url, "SELECT count(*) FROM outbox"); n != 0 {
		t.Errorf("outbox = %d, want the row gone", n)
	}
	if n := count(t, url, "SELECT count(*) FROM message_routing WHERE status = 'dead_lettered'"); n != 1 {
		t.Errorf("routing outcome not recorded")
	}
}

func TestReplayQueuesMatchingMessagesOnce(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	ctx := context.Background()
	queue(t, s, "H/1", "H/2")
	if _, err := s.Replay(ctx, store.ReplayFilter{}); err == nil {
		t.Error("a replay without filters was accepted")
	}
	// Still queued: nothing added.
	n, err := s.Replay(ctx, store.ReplayFilter{MessageType: "ORU"})
	if err != nil || n != 0 {
		t.Fatalf("replay of queued messages = %d, %v; want 0", n, err)
	}
	c, _ := pgx.Connect(ctx, url)
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "DELETE FROM outbox"); err != nil {
		t.Fatal(err)
	}
	n, err = s.Replay(ctx, store.ReplayFilter{MessageType: "ORU", Since: time.Now().Add(-time.Hour)})
	if err != nil || n != 2 {
		t.Fatalf("replay = %d, %v; want 2", n, err)
	}
	if n := count(t, url, "SELECT count(*) FROM outbox WHERE replay AND patient_key IS NOT NULL"); n != 2 {
		t.Errorf("replayed rows = %d, want 2 with their patient keys", n)
	}
}

func TestFinalResultSupersedesPreliminary(t *testing.T) {
	t.Parallel()
	s, url := pgtest.NewStore(t)
	ctx := context.Background()
	leases := leaseAll(t, s, "r1")
	at := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	for i, step := range []struct{ status, value string }{{"P", "1.0"}, {"F", "1.4"}, {"F", "9.9"}} {
		ms := queue(t, s, "H/1")
		work, _ := s.ReadyWork(ctx, allLanes(), store.Lanes, 10)
		ev := store.EventRow{ID: uuid.New(), Type: "observation.recorded", OccurredAt: at, MessageID: ms[0].ID,
			PatientID: "1", PatientKey: "H/1", Source: "LAB^HOSP", Route: "lab", SchemaVersion: 1, Payload: []byte(`{}`),
			Observation: &store.ObservationRow{Change: store.ObservationRecord, Key: "lactate-1", Parameter: "lactate",
				CodeSystem: "LN", Code: "2524-7", Numeric: step.value, Unit: "mmol/L", Status: step.status, ObservedAt: at}}
		if err := s.Apply(ctx, "r1", leases[work[0].Lane], []store.Processed{{Work: work[0], Status: store.Routed, Events: []store.EventRow{ev}}}, laneOf, nil); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	// P is superseded by the first F; the second F (a plain resend) is not a
	// correction and changes nothing.
	if n := count(t, url, "SELECT count(*) FROM observations WHERE observation_key = 'lactate-1' AND value_numeric = 1.4 AND status = 'F'"); n != 1 {
		t.Error("the final result did not supersede the preliminary one, or a plain resend overwrote it")
	}
}

func TestReadyWorkServesTheOldestLaneFirst(t *testing.T) {
	t.Parallel()
	s, _ := pgtest.NewStore(t)
	ctx := context.Background()
	// Three patients in three different lanes, the quiet one's message oldest.
	keys := []string{}
	for i := 0; len(keys) < 3; i++ {
		k := fmt.Sprintf("H/%d", i)
		distinct := true
		for _, o := range keys {
			if laneOf(o) == laneOf(k) {
				distinct = false
			}
		}
		if distinct {
			keys = append(keys, k)
		}
	}
	quiet, busyA, busyB := keys[0], keys[1], keys[2]
	first := queue(t, s, quiet)
	var busy []string
	for range 20 {
		busy = append(busy, busyA, busyB)
	}
	queue(t, s, busy...)
	work, err := s.ReadyWork(ctx, allLanes(), 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(work) != 1 || work[0].MessageID != first[0].ID {
		t.Fatalf("with one lane allowed, got %d rows starting %v; want the quiet patient's older message", len(work), work)
	}
	work, err = s.ReadyWork(ctx, allLanes(), 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	perLane := map[int16]int{}
	for i, w := range work {
		perLane[w.Lane]++
		if i > 0 && work[i-1].Lane == w.Lane && work[i-1].OutboxID > w.OutboxID {
			t.Errorf("lane %d rows out of order", w.Lane)
		}
	}
	if len(perLane) != 3 || perLane[laneOf(busyA)] != 5 || perLane[laneOf(quiet)] != 1 {
		t.Errorf("rows per lane %v, want 3 lanes, up to 5 rows each", perLane)
	}
}
