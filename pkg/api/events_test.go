package api_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/aortahealth/aorta/pkg/api"
	"github.com/aortahealth/aorta/pkg/store"
)

func TestEvents(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var all list[store.Event]
	f.call(api.RoleViewer, http.MethodGet, "/api/v1/events?limit=500", "", http.StatusOK, &all)
	total := f.count(`SELECT count(*) FROM events`)
	if len(all.Items) != total || all.NextCursor != nil {
		t.Fatalf("%d events listed, want all %d", len(all.Items), total)
	}
	for i := 1; i < len(all.Items); i++ {
		if all.Items[i].Seq <= all.Items[i-1].Seq {
			t.Fatalf("events out of seq order at %d", i)
		}
	}
	mid := all.Items[len(all.Items)/2].Seq
	tests := []struct {
		query string
		want  string // a count query
	}{
		{"type=observation.recorded", `SELECT count(*) FROM events WHERE type = 'observation.recorded'`},
		{"type=patient.*", `SELECT count(*) FROM events WHERE type LIKE 'patient.%'`},
		{"type=observation.*&patient=P1", `SELECT count(*) FROM events WHERE type LIKE 'observation.%' AND patient_key = 'HOSP/P1'`},
		{"patient=HOSP%2FP1", `SELECT count(*) FROM events WHERE patient_key = 'HOSP/P1'`},
		{"patient=P2", `SELECT count(*) FROM events WHERE patient_key = 'HOSP/P2'`},
		{"encounter=VP1", `SELECT count(*) FROM events WHERE encounter_id = 'VP1'`},
		{"message_id=" + f.msgs[msgVitalsOK].String(), `SELECT count(*) FROM events WHERE message_id = '` + f.msgs[msgVitalsOK].String() + `'`},
		{"since=2026-11-26T07:30:00Z&until=2026-11-26T09:00:00Z", `SELECT count(*) FROM events WHERE occurred_at >= '2026-11-26T07:30:00Z' AND occurred_at < '2026-11-26T09:00:00Z'`},
		{"after=" + strconv.FormatInt(mid, 10), `SELECT count(*) FROM events WHERE seq > ` + strconv.FormatInt(mid, 10)},
		{"type=patient.admitted&patient=P1", `SELECT count(*) FROM events WHERE type = 'patient.admitted' AND patient_key = 'HOSP/P1'`},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			var got list[store.Event]
			f.call(api.RoleViewer, http.MethodGet, "/api/v1/events?limit=500&"+tt.query, "", http.StatusOK, &got)
			if want := f.count(tt.want); len(got.Items) != want || want == 0 {
				t.Errorf("%d events, want %d (and more than none)", len(got.Items), want)
			}
		})
	}
	// Tailing by seq, three at a time, sees every event once.
	seen, path := 0, "/api/v1/events?limit=3"
	var last int64
	for {
		var p list[store.Event]
		f.call(api.RoleViewer, http.MethodGet, path, "", http.StatusOK, &p)
		for _, e := range p.Items {
			if e.Seq <= last {
				t.Fatalf("seq %d after %d", e.Seq, last)
			}
			last = e.Seq
			seen++
		}
		if p.NextCursor == nil {
			break
		}
		path = "/api/v1/events?limit=3&cursor=" + *p.NextCursor
	}
	if seen != total {
		t.Errorf("tailing saw %d events, want %d", seen, total)
	}
	var e list[store.Event]
	f.call(api.RoleViewer, http.MethodGet, "/api/v1/events?type=patient.admitted", "", http.StatusOK, &e)
	if len(e.Items) != 1 || !strings.Contains(string(e.Items[0].Payload), `"location"`) || e.Items[0].PatientKey == nil {
		t.Errorf("patient.admitted %+v, want the event with its payload", e.Items)
	}
	for _, bad := range []string{"after=-1", "after=x", "message_id=x", "until=tomorrow"} {
		f.call(api.RoleViewer, http.MethodGet, "/api/v1/events?"+bad, "", http.StatusBadRequest, nil)
	}
}

func TestDeadLetters(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var open list[store.DeadLetter]
	f.call(api.RoleViewer, http.MethodGet, "/api/v1/dead-letters", "", http.StatusOK, &open)
	if len(open.Items) != 1 || open.Items[0].MessageID != f.msgs[msgNoPatient] || open.Items[0].ControlID != "NOPID1" || open.Items[0].Route == nil || *open.Items[0].Route != "adt" {
		t.Fatalf("open dead letters %+v, want the ADT without PID-3", open.Items)
	}
	id := strconv.FormatInt(open.Items[0].ID, 10)
	var d store.DeadLetter
	f.call(api.RoleAnalyst, http.MethodPost, "/api/v1/dead-letters/"+id+"/resolve", `{"reason": "sender fixed PID-3 mapping"}`, http.StatusOK, &d)
	if d.Resolution == nil || *d.Resolution != "reprocessed" || d.ResolvedBy == nil || *d.ResolvedBy != "analyst-token" || d.ResolvedAt == nil {
		t.Errorf("resolved %+v, want reprocessed by analyst-token", d)
	}
	if n := f.count(`SELECT count(*) FROM outbox WHERE message_id = $1 AND replay`, f.msgs[msgNoPatient]); n != 1 {
		t.Errorf("%d outbox rows for the resolved dead letter's message, want 1 (queued again)", n)
	}
	f.call(api.RoleAnalyst, http.MethodPost, "/api/v1/dead-letters/"+id+"/discard", "", http.StatusConflict, nil)
	f.call(api.RoleViewer, http.MethodGet, "/api/v1/dead-letters", "", http.StatusOK, &open)
	if len(open.Items) != 0 {
		t.Errorf("%d open dead letters after resolving, want 0", len(open.Items))
	}
	var resolved list[store.DeadLetter]
	f.call(api.RoleViewer, http.MethodGet, "/api/v1/dead-letters?status=resolved&route=adt", "", http.StatusOK, &resolved)
	if len(resolved.Items) != 1 {
		t.Errorf("%d resolved dead letters, want 1", len(resolved.Items))
	}

	// A second dead letter, discarded: nothing is queued.
	f.query(`DELETE FROM outbox RETURNING 1`, nil, new(int))
	var second int64
	f.query(`INSERT INTO dead_letters (message_id, route, error, attempts) VALUES ($1, 'adt', 'no PID-3', 1) RETURNING id`, []any{f.msgs[msgNoPatient]}, &second)
	f.call(api.RoleAdmin, http.MethodPost, "/api/v1/dead-letters/"+strconv.FormatInt(second, 10)+"/discard", "", http.StatusOK, &d)
	if *d.Resolution != "discarded" || *d.ResolvedBy != "admin-token" || f.count(`SELECT count(*) FROM outbox`) != 0 {
		t.Errorf("discarded %+v with %d outbox rows, want discarded by admin-token and nothing queued", d, f.count(`SELECT count(*) FROM outbox`))
	}
	var all list[store.DeadLetter]
	f.call(api.RoleViewer, http.MethodGet, "/api/v1/dead-letters?status=all&limit=1", "", http.StatusOK, &all)
	if len(all.Items) != 1 || all.Items[0].ID != second || all.NextCursor == nil {
		t.Fatalf("first page %+v, want the newest and a cursor", all)
	}
	f.call(api.RoleViewer, http.MethodGet, "/api/v1/dead-letters?status=all&limit=1&cursor="+*all.NextCursor, "", http.StatusOK, &all)
	if len(all.Items) != 1 || all.Items[0].ID == second || all.NextCursor != nil {
		t.Errorf("second page %+v, want the older one and no cursor", all)
	}
	var audits []string
	f.query(`SELECT array_agg(action || ' ' || actor || ' ' || coalesce(details->>'reason', '-') ORDER BY id) FROM audit_log WHERE action LIKE 'dead_letter.%'`, nil, &audits)
	if strings.Join(audits, "; ") != "dead_letter.reprocessed analyst-token sender fixed PID-3 mapping; dead_letter.discarded admin-token -" {
		t.Errorf("audit %q", audits)
	}
	f.call(api.RoleAnalyst, http.MethodPost, "/api/v1/dead-letters/x/resolve", "", http.StatusBadRequest, nil)
	f.call(api.RoleAnalyst, http.MethodPost, "/api/v1/dead-letters/1/resolve", `{"reason": "`+strings.Repeat("x", 600)+`"}`, http.StatusBadRequest, nil)
	f.call(api.RoleViewer, http.MethodGet, "/api/v1/dead-letters?status=closed", "", http.StatusBadRequest, nil)
}
