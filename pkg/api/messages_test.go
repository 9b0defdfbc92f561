package api_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/aortahealth/aorta/pkg/api"
	"github.com/aortahealth/aorta/pkg/store"
)

func TestMessageSearch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name  string
		query string
		want  []string // message names, newest first
	}{
		{"everything", "", []string{msgDuplicated, msgRejected, msgNoPatient, msgOrder, msgVitalsOK, msgVitalsBad, msgAdmit}},
		{"time range", "since=2026-11-26T07:01:00Z&until=2026-11-26T07:04:00Z", []string{msgOrder, msgVitalsOK, msgVitalsBad}},
		{"sender application", "sender=EOBS", []string{msgVitalsOK, msgVitalsBad}},
		{"sender facility", "facility=WARD", []string{msgVitalsOK, msgVitalsBad}},
		{"type", "type=ADT", []string{msgDuplicated, msgNoPatient, msgAdmit}},
		{"type and trigger", "type=ADT&trigger=A08", []string{msgDuplicated, msgNoPatient}},
		{"control ID", "control_id=OBS2", []string{msgVitalsOK}},
		{"ACK code", "ack_code=AR", []string{msgRejected}},
		{"routed", "status=routed", []string{msgDuplicated, msgVitalsOK, msgVitalsBad, msgAdmit}},
		{"unrouted", "status=unrouted", []string{msgOrder}},
		{"dead-lettered", "status=dead_lettered", []string{msgNoPatient}},
		{"rejected", "status=rejected", []string{msgRejected}},
		{"duplicate", "status=duplicate", []string{msgDuplicated}},
		{"pending", "status=pending", nil},
		{"patient key", "patient=" + url.QueryEscape("HOSP/P1"), []string{msgOrder, msgVitalsBad, msgAdmit}},
		{"bare patient ID", "patient=P2", []string{msgDuplicated, msgVitalsOK}},
		{"unknown patient", "patient=NOBODY", nil},
		{"filters combine", "type=ORU&status=routed&patient=P1", []string{msgVitalsBad}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got list[store.MessageSummary]
			f.call(api.RoleViewer, http.MethodGet, "/api/v1/messages?"+tt.query, "", http.StatusOK, &got)
			if names := f.names(got.Items); !slices.Equal(names, tt.want) {
				t.Errorf("got %v, want %v", names, tt.want)
			}
			if got.NextCursor != nil {
				t.Errorf("next_cursor %q on a short list, want null", *got.NextCursor)
			}
		})
	}

	var one list[store.MessageSummary]
	f.call(api.RoleViewer, http.MethodGet, "/api/v1/messages?control_id=REJ1", "", http.StatusOK, &one)
	if m := one.Items[0]; m.Status != "rejected" || m.Outcome != "rejected" || *m.AckCode != "AR" || *m.ErrorCode != 207 || *m.ErrorLocation != "MSH-9" {
		t.Errorf("rejected message summary %+v, want status and outcome rejected, AR, 207 at MSH-9", m)
	}
	f.call(api.RoleViewer, http.MethodGet, "/api/v1/messages?control_id=UPD1", "", http.StatusOK, &one)
	if m := one.Items[0]; m.DuplicateCount != 1 || m.LastDuplicateAt == nil || m.Outcome != "routed" {
		t.Errorf("duplicated message summary %+v, want one duplicate and routed", m)
	}

	for _, bad := range []string{"status=lost", "ack_code=XX", "since=yesterday", "limit=0", "limit=x", "cursor=garbage", "colour=red", "type=ADT&type=ORU"} {
		if code, body := f.do(http.MethodGet, "/api/v1/messages?"+bad, f.tokens[api.RoleViewer], ""); code != http.StatusBadRequest || !strings.Contains(string(body), `"error"`) {
			t.Errorf("?%s: %d %s, want 400 with an error", bad, code, body)
		}
	}
}

// names maps summaries back to the fixture's message names.
func (f *fixture) names(ms []store.MessageSummary) []string {
	var out []string
	for _, m := range ms {
		name := m.ID.String()
		for n, id := range f.msgs {
			if id == m.ID {
				name = n
			}
		}
		out = append(out, name)
	}
	return out
}

// Walking a list page by page visits every row once, in order, whatever
// the page size.
func TestMessagePagination(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var all list[store.MessageSummary]
	f.call(api.RoleViewer, http.MethodGet, "/api/v1/messages", "", http.StatusOK, &all)
	for _, size := range []int{1, 2, 3, 7} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			var seen []uuid.UUID
			path := fmt.Sprintf("/api/v1/messages?limit=%d", size)
			for pages := 0; ; pages++ {
				if pages > 10 {
					t.Fatal("more pages than rows")
				}
				var p list[store.MessageSummary]
				f.call(api.RoleViewer, http.MethodGet, path, "", http.StatusOK, &p)
				if len(p.Items) > size {
					t.Fatalf("page of %d with limit %d", len(p.Items), size)
				}
				for _, m := range p.Items {
					seen = append(seen, m.ID)
				}
				if p.NextCursor == nil {
					break
				}
				path = fmt.Sprintf("/api/v1/messages?limit=%d&cursor=%s", size, *p.NextCursor)
			}
			var want []uuid.UUID
			for _, m := range all.Items {
				want = append(want, m.ID)
			}
			if !slices.Equal(seen, want) {
				t.Errorf("pages of %d visited %v, want %v", size, seen, want)
			}
		})
	}
}

func TestMessageDetail(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var d store.MessageDetail
	f.call(api.RoleViewer, http.MethodGet, "/api/v1/messages/"+f.msgs[msgVitalsBad].String(), "", http.StatusOK, &d)
	if d.ControlID != "OBS1" || d.SendingApplication != "EOBS" || d.MessageType != "ORU" || d.Outcome != "routed" {
		t.Errorf("metadata %+v, want OBS1 from EOBS, ORU, routed", d.MessageSummary)
	}
	if d.ACK == nil || !strings.Contains(*d.ACK, "MSA|AA|OBS1") {
		t.Errorf("ack %v, want the ACK sent", d.ACK)
	}
	if d.Routing == nil || d.Routing.Status != "routed" || !slices.Equal(d.Routing.Routes, []string{"nursing-vitals"}) || d.Routing.Events == 0 {
		t.Errorf("routing %+v, want routed by nursing-vitals with events", d.Routing)
	}
	types := map[string]int{}
	for _, e := range d.Events {
		types[e.Type]++
		if e.MessageID != f.msgs[msgVitalsBad] {
			t.Errorf("event %s of message %s", e.ID, e.MessageID)
		}
	}
	if types["observation.recorded"] != 7 || types["score.calculated"] == 0 || types["alert.raised"] != 2 {
		t.Errorf("event types %v, want 7 observations, scores, and alerts raised by news2 and sepsis-screen", types)
	}
	// The viewer's detail holds no body: neither raw bytes nor values.
	for _, field := range []string{`"raw"`, `"segments"`, "DOE^JANE"} {
		_, b := f.do(http.MethodGet, "/api/v1/messages/"+f.msgs[msgAdmit].String(), f.tokens[api.RoleViewer], "")
		if strings.Contains(string(b), field) {
			t.Errorf("message detail holds %s", field)
		}
	}

	f.call(api.RoleViewer, http.MethodGet, "/api/v1/messages/"+f.msgs[msgNoPatient].String(), "", http.StatusOK, &d)
	if d.Outcome != "dead_lettered" || d.Routing == nil || d.Routing.Error == nil || len(d.DeadLetters) != 1 || len(d.Events) != 0 {
		t.Errorf("dead-lettered detail: outcome %s, routing %+v, dead letters %v, events %d; want the error and one dead letter",
			d.Outcome, d.Routing, d.DeadLetters, len(d.Events))
	}
	f.call(api.RoleViewer, http.MethodGet, "/api/v1/messages/"+f.msgs[msgRejected].String(), "", http.StatusOK, &d)
	if d.Routing != nil || d.Error == nil || *d.Error != "message type not accepted" {
		t.Errorf("rejected detail: routing %+v, error %v; want no routing and the reason", d.Routing, d.Error)
	}
	f.call(api.RoleViewer, http.MethodGet, "/api/v1/messages/"+uuid.NewString(), "", http.StatusNotFound, nil)
	f.call(api.RoleViewer, http.MethodGet, "/api/v1/messages/not-a-uuid", "", http.StatusBadRequest, nil)
}

// The body (exact bytes and parsed tree) goes only to analysts and admins,
// and every read is audited with the token's name; a viewer gets 403 and
// leaves no audit row.
func TestMessageBody(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.msgs[msgAdmit]
	path := "/api/v1/messages/" + id.String() + "/body"
	for _, role := range []api.Role{api.RoleViewer, api.RoleClinician} {
		code, b := f.do(http.MethodGet, path, f.tokens[role], "")
		if code != http.StatusForbidden || strings.Contains(string(b), "DOE") {
			t.Errorf("%s: %d %s, want 403 without the body", role, code, b)
		}
	}
	if n := f.count(`SELECT count(*) FROM audit_log WHERE action = 'message.view_raw'`); n != 0 {
		t.Fatalf("%d raw views audited after refusals, want 0", n)
	}
	var body struct {
		ID         uuid.UUID `json:"id"`
		Raw        string    `json:"raw"`
		RawBase64  string    `json:"raw_base64"`
		ParseError *string   `json:"parse_error"`
		Segments   []struct {
			Name   string `json:"name"`
			Offset int    `json:"offset"`
			Fields []struct {
				Position    int          `json:"position"`
				Value       string       `json:"value"`
				Repetitions [][][]string `json:"repetitions"`
			} `json:"fields"`
		} `json:"segments"`
	}
	f.call(api.RoleAnalyst, http.MethodGet, path, "", http.StatusOK, &body)
	want := admit("ADM1", "P1")
	if body.Raw != want {
		t.Errorf("raw %q, want %q", body.Raw, want)
	}
	if b, _ := base64.StdEncoding.DecodeString(body.RawBase64); string(b) != want {
		t.Errorf("raw_base64 decodes to %q, want the exact bytes", b)
	}
	if body.ParseError != nil || len(body.Segments) != 4 || body.Segments[2].Name != "PID" {
		t.Fatalf("segments %+v (parse error %v), want MSH EVN PID PV1", body.Segments, body.ParseError)
	}
	var pid3, pid5 [][][]string
	for _, fl := range body.Segments[2].Fields {
		switch fl.Position {
		case 3:
			pid3 = fl.Repetitions
		case 5:
			pid5 = fl.Repetitions
		}
	}
	if fmt.Sprint(pid3) != "[[[P1] [] [] [HOSP] [MR]]]" || fmt.Sprint(pid5) != "[[[DOE] [JANE]]]" {
		t.Errorf("PID-3 %v, PID-5 %v; want the parsed components", pid3, pid5)
	}
	if msh := body.Segments[0]; msh.Fields[0].Position != 1 || msh.Fields[0].Value != "|" || msh.Fields[1].Value != `^~\&` {
		t.Errorf("MSH-1, MSH-2 %+v, want the delimiters as written", msh.Fields[:2])
	}
	f.call(api.RoleAdmin, http.MethodGet, path, "", http.StatusOK, nil)
	var actors []string
	f.query(`SELECT array_agg(actor ORDER BY id) FROM audit_log WHERE action = 'message.view_raw' AND target = $1`, []any{id.String()}, &actors)
	if !slices.Equal(actors, []string{"analyst-token", "admin-token"}) {
		t.Errorf("raw views audited for %v, want analyst-token then admin-token", actors)
	}
	f.call(api.RoleAnalyst, http.MethodGet, "/api/v1/messages/"+uuid.NewString()+"/body", "", http.StatusNotFound, nil)
}

func TestReprocess(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var got struct {
		MessageID uuid.UUID `json:"message_id"`
		Queued    bool      `json:"queued"`
	}
	// The dead letter's message: queued again, its dead letter resolved.
	id := f.msgs[msgNoPatient]
	f.call(api.RoleAnalyst, http.MethodPost, "/api/v1/messages/"+id.String()+"/reprocess", "", http.StatusAccepted, &got)
	if !got.Queued || f.count(`SELECT count(*) FROM outbox WHERE message_id = $1 AND replay`, id) != 1 {
		t.Errorf("reprocess: %+v, want queued in the outbox", got)
	}
	if n := f.count(`SELECT count(*) FROM dead_letters WHERE message_id = $1 AND resolution = 'reprocessed' AND resolved_by = 'analyst-token'`, id); n != 1 {
		t.Errorf("%d dead letters resolved as reprocessed by analyst-token, want 1", n)
	}
	// Again while it waits: nothing more is queued.
	f.call(api.RoleAnalyst, http.MethodPost, "/api/v1/messages/"+id.String()+"/reprocess", "", http.StatusAccepted, &got)
	if got.Queued {
		t.Errorf("second reprocess queued it again")
	}
	f.call(api.RoleAnalyst, http.MethodPost, "/api/v1/messages/"+f.msgs[msgRejected].String()+"/reprocess", "", http.StatusConflict, nil)
	f.call(api.RoleAnalyst, http.MethodPost, "/api/v1/messages/"+uuid.NewString()+"/reprocess", "", http.StatusNotFound, nil)

	var bulk struct {
		Queued int `json:"queued"`
	}
	f.call(api.RoleAdmin, http.MethodPost, "/api/v1/messages/reprocess", `{"type": "ORU", "since": "2026-11-26T07:00:00Z"}`, http.StatusAccepted, &bulk)
	if bulk.Queued != 2 { // the two nursing sets; the rejected ORU is never routed
		t.Errorf("bulk reprocess queued %d, want the 2 accepted ORU", bulk.Queued)
	}
	for _, body := range []string{``, `{}`, `{"colour": "red"}`, `{"since": "yesterday"}`, `{"type": "ADT"} {}`} {
		f.call(api.RoleAnalyst, http.MethodPost, "/api/v1/messages/reprocess", body, http.StatusBadRequest, nil)
	}
	var audits []string
	f.query(`SELECT array_agg(actor || ' ' || target || ' ' || (details->>'queued') ORDER BY id) FROM audit_log WHERE action = 'message.reprocess'`, nil, &audits)
	want := []string{"analyst-token " + id.String() + " 1", "analyst-token " + id.String() + " 0", "admin-token messages 2"}
	if !slices.Equal(audits, want) {
		t.Errorf("audit %q, want %q", audits, want)
	}
}
