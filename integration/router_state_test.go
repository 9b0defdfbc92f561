package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/event"
	"github.com/aortahealth/aorta/pkg/patient"
	"github.com/aortahealth/aorta/pkg/store"
)

// Per-patient state under clinical time (promise 5) and merges: what the
// router keeps in observations, patients and patient_links when messages
// arrive late, out of order, corrected, retracted or merged.

// onlyEvent returns the one event of a message, failing the test if there
// is not exactly one.
func onlyEvent(t *testing.T, db *pgxpool.Pool, controlID string) eventRec {
	t.Helper()
	es := events(t, db, "m.control_id = $1", controlID)
	if len(es) != 1 {
		t.Fatalf("%s: %d events, want 1", controlID, len(es))
	}
	return es[0]
}

// TestRouterClinicalTime sends late, out-of-order, corrected and retracted
// observations and an out-of-order ADT, each message after the previous
// one is applied (arrival order is what the test controls), and checks the
// events and the state they leave.
func TestRouterClinicalTime(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)
	r := startRouter(t, dbURL, routesFile(t, "routes.yaml"))
	step := func(raw []byte) eventRec {
		t.Helper()
		sendAA(t, l.MLLPAddr, raw)
		eventually(t, drainTimeout, "the router to apply "+controlIDOf(t, raw), func() (bool, string) { return drained(t, db) })
		return onlyEvent(t, db, controlIDOf(t, raw))
	}
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}

	t.Run("late observation keeps its time and does not displace the newer one", func(t *testing.T) {
		newer := step(hrMsg("CT-LATE-1", "CT01", "V2", "20260312100000+0000", "88", "F"))
		late := step(hrMsg("CT-LATE-2", "CT01", "V1", "20260312090000+0000", "71", "F"))
		if !late.OccurredAt.Equal(at("2026-03-12T09:00:00Z")) || late.Seq <= newer.Seq {
			t.Errorf("late event: occurred_at %v seq %d, want 09:00 and after seq %d", late.OccurredAt, late.Seq, newer.Seq)
		}
		obs := observationsOf(t, db, "GENHOSP/CT01")
		if len(obs) != 2 || obs[0].Value != "88" || obs[0].EventID != newer.ID || !obs[0].ObservedAt.Equal(at("2026-03-12T10:00:00Z")) ||
			obs[1].Value != "71" || obs[1].EventID != late.ID {
			t.Fatalf("observations %+v, want 88 at 10:00 (latest) then 71 at 09:00", obs)
		}
		// A device stream repeats code and sub-ID in every message: the
		// time is part of the observation's identity.
		dNew := step(deviceHRMsg("CT-LATE-3", "CT01", "20260312150500+0000", "101"))
		dLate := step(deviceHRMsg("CT-LATE-4", "CT01", "20260312150000+0000", "99"))
		var latest string
		queryRow(t, db, `SELECT value_numeric::text FROM observations WHERE patient_key = 'GENHOSP/CT01' AND code = '149546'
			ORDER BY observed_at DESC LIMIT 1`, nil, &latest)
		if dLate.payloadString("observation_key") == dNew.payloadString("observation_key") || latest != "101" ||
			!dLate.OccurredAt.Equal(at("2026-03-12T15:00:00Z")) {
			t.Errorf("late device reading: same key %v, latest %s, occurred %v; want distinct keys, latest 101, 15:00",
				dLate.payloadString("observation_key") == dNew.payloadString("observation_key"), latest, dLate.OccurredAt)
		}
		t.Logf("late nursing and device observations: kept at 09:00 and 15:00, latest by observed_at still 88 and 101")
	})

	t.Run("correction replaces the value and names the event it replaces", func(t *testing.T) {
		orig := step(lactateMsg("CT-CORR-1", "CT02", "L9", "20260312090000+0000", "2.0", "F"))
		corr := step(lactateMsg("CT-CORR-2", "CT02", "L9", "20260312090000+0000", "2.4", "C"))
		if corr.Type != event.ObservationCorrected || corr.payloadString("replaces") != orig.ID.String() ||
			corr.payloadString("observation_key") != orig.payloadString("observation_key") || !corr.OccurredAt.Equal(orig.OccurredAt) {
			t.Errorf("correction: %s replaces %q key %s at %v; want %s replacing %s, key %s, at %v", corr.Type, corr.payloadString("replaces"),
				corr.payloadString("observation_key"), corr.OccurredAt, event.ObservationCorrected, orig.ID, orig.payloadString("observation_key"), orig.OccurredAt)
		}
		if orig.payloadString("replaces") != "" {
			t.Errorf("observation.recorded has replaces %q, want null", orig.payloadString("replaces"))
		}
		obs := observationsOf(t, db, "GENHOSP/CT02")
		if len(obs) != 1 || obs[0].Value != "2.4" || obs[0].Status != "C" || obs[0].EventID != corr.ID {
			t.Fatalf("observations %+v, want one row 2.4 status C set by the correction %s", obs, corr.ID)
		}
		t.Logf("correction %s replaces %s; state 2.4 C", corr.ID, orig.ID)
	})

	t.Run("retraction marks the observation retracted", func(t *testing.T) {
		orig := step(hrMsg("CT-RETR-1", "CT03", "V5", "20260312110000+0000", "95", "F"))
		wrong := step(hrMsg("CT-RETR-2", "CT03", "V5", "20260312110000+0000", "", "W"))
		orig2 := step(hrMsg("CT-RETR-3", "CT03", "V6", "20260312111500+0000", "96", "F"))
		del := step(hrMsg("CT-RETR-4", "CT03", "V6", "20260312111500+0000", "96", "D"))
		for _, c := range []struct{ orig, retr eventRec }{{orig, wrong}, {orig2, del}} {
			if c.retr.Type != event.ObservationRetracted || c.retr.payloadString("replaces") != c.orig.ID.String() {
				t.Errorf("%s: %s replaces %q, want %s replacing %s", c.retr.ControlID, c.retr.Type, c.retr.payloadString("replaces"), event.ObservationRetracted, c.orig.ID)
			}
		}
		if vt := wrong.payloadString("value_type"); vt != "none" {
			t.Errorf("retraction without a value: value_type %q, want none", vt)
		}
		obs := observationsOf(t, db, "GENHOSP/CT03")
		if len(obs) != 2 || obs[0].Status != "D" || obs[0].EventID != del.ID || obs[1].Status != "W" || obs[1].EventID != wrong.ID {
			t.Fatalf("observations %+v, want V6 retracted (D) by %s and V5 retracted (W) by %s", obs, del.ID, wrong.ID)
		}
		t.Logf("W and D retractions replace %s and %s; state W and D", orig.ID, orig2.ID)
	})

	t.Run("an original arriving after its retraction does not bring it back", func(t *testing.T) {
		retr := step(hrMsg("CT-RESU-1", "CT04", "V7", "20260312120000+0000", "60", "D"))
		orig := step(hrMsg("CT-RESU-2", "CT04", "V7", "20260312120000+0000", "60", "F"))
		if retr.payloadString("replaces") != "" {
			t.Errorf("retraction of an unknown observation replaces %q, want null", retr.payloadString("replaces"))
		}
		if orig.Type != event.ObservationRecorded || orig.payloadString("observation_key") != retr.payloadString("observation_key") {
			t.Errorf("late original: %s with key %s, want %s with the retraction's key", orig.Type, orig.payloadString("observation_key"), event.ObservationRecorded)
		}
		obs := observationsOf(t, db, "GENHOSP/CT04")
		if len(obs) != 1 || obs[0].Status != "D" || obs[0].EventID != retr.ID {
			t.Fatalf("observations %+v, want one row still retracted (D) by %s", obs, retr.ID)
		}
		t.Logf("retraction first, original after: event recorded, state still D")
	})

	t.Run("an older ADT arriving late does not overwrite the patient", func(t *testing.T) {
		step(adtMsg("CT-ADT-1", "A01", "CT05", "20260312080000+0000", "WARD1^1^1"))
		dis := step(adtMsg("CT-ADT-2", "A03", "CT05", "20260312120000+0000", "WARD1^1^1"))
		tr := step(adtMsg("CT-ADT-3", "A02", "CT05", "20260312110000+0000", "WARD2^2^2"))
		if tr.Type != event.PatientTransferred || !tr.OccurredAt.Equal(at("2026-03-12T11:00:00Z")) {
			t.Errorf("late A02: %s at %v, want %s at 11:00", tr.Type, tr.OccurredAt, event.PatientTransferred)
		}
		p := patientOf(t, db, "GENHOSP/CT05")
		if p.Status != "discharged" || p.Location != "WARD1^1^1" || p.LastEventType != event.PatientDischarged ||
			!p.LastEventAt.Equal(at("2026-03-12T12:00:00Z")) || p.LastEventID != dis.ID {
			t.Fatalf("patients %+v, want discharged from WARD1^1^1 by the 12:00 A03 %s", p, dis.ID)
		}
		t.Logf("A03 at 12:00 then A02 at 11:00: state stays discharged at WARD1")
	})
	checkNoPHI(t, "router", r.log, "CT01", "CT02", "CT03", "CT04", "CT05")
}

// TestRouterCorrectionInSameBatch queues an original result and its
// correction while the router is stopped, so that they are applied in one
// batch, as happens whenever a lab sends both in quick succession. The
// correction's payload.replaces must name the original's event
// (docs/events.md: "the id of the latest earlier event with the same
// observation_key"), exactly as when they arrive far apart
// (TestRouterClinicalTime).
func TestRouterCorrectionInSameBatch(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)
	sendAA(t, l.MLLPAddr,
		lactateMsg("SB-1", "SB01", "L1", "20260312090000+0000", "2.0", "F"),
		lactateMsg("SB-2", "SB01", "L1", "20260312090000+0000", "2.4", "C"),
		hrMsg("SB-3", "SB01", "V1", "20260312100000+0000", "80", "F"),
		hrMsg("SB-4", "SB01", "V1", "20260312100000+0000", "", "W"))
	startRouter(t, dbURL, routesFile(t, "routes.yaml"))
	waitDrained(t, db, drainTimeout)

	for _, pair := range [][2]string{{"SB-1", "SB-2"}, {"SB-3", "SB-4"}} {
		orig, repl := onlyEvent(t, db, pair[0]), onlyEvent(t, db, pair[1])
		if got := repl.payloadString("replaces"); got != orig.ID.String() {
			t.Errorf("%s (%s) applied in the same batch as %s: payload.replaces = %q, want the original's event %s",
				pair[1], repl.Type, pair[0], got, orig.ID)
		} else {
			t.Logf("%s replaces %s: verified", pair[1], pair[0])
		}
	}
}

// TestRouterMerge checks A40 merges: the prior patient's observations
// move to the survivor, patient_links records the merge, later messages
// naming the prior identifier update the survivor's state; and a merge
// queued behind the prior patient's earlier messages (another lane) waits
// for them.
func TestRouterMerge(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)
	r := startRouter(t, dbURL, routesFile(t, "routes.yaml"))
	send := func(msgs ...[]byte) {
		t.Helper()
		sendAA(t, l.MLLPAddr, msgs...)
		eventually(t, drainTimeout, "the router to drain", func() (bool, string) { return drained(t, db) })
	}
	const prior, survivor = "GENHOSP/MRGP01", "GENHOSP/MRGS01"

	send(adtMsg("MG-P1-A01", "A01", "MRGP01", "20260312070000+0000", "WARD3^1^1"),
		hrMsg("MG-P1-HR1", "MRGP01", "OA1", "20260312080000+0000", "80", "F"),
		lactateMsg("MG-P1-LAC", "MRGP01", "L1", "20260312083000+0000", "2.0", "F"),
		adtMsg("MG-S1-A01", "A01", "MRGS01", "20260312073000+0000", "WARD4^1^1"),
		hrMsg("MG-S1-HR1", "MRGS01", "OB1", "20260312090000+0000", "90", "F"))
	priorKeys := map[string]bool{
		onlyEvent(t, db, "MG-P1-HR1").payloadString("observation_key"): true,
		onlyEvent(t, db, "MG-P1-LAC").payloadString("observation_key"): true,
	}
	merge := hl7Msg("MSH|^~\\&|PAS|GENHOSP|AORTA|AORTA|20260312100000+0000||ADT^A40^ADT_A39|MG-A40-1|P|2.5.1",
		"EVN|A40|20260312100000+0000", "PID|1||MRGS01^^^GENHOSP^MR", "MRG|MRGP01^^^GENHOSP^MR")
	send(merge)
	m := onlyEvent(t, db, "MG-A40-1")
	if m.Type != event.PatientMerged || m.PatientKey != survivor {
		t.Fatalf("merge event %s for %s, want %s for %s", m.Type, m.PatientKey, event.PatientMerged, survivor)
	}
	if n := len(observationsOf(t, db, prior)); n != 0 {
		t.Errorf("%d observations left under the prior patient %s", n, prior)
	}
	obs := observationsOf(t, db, survivor)
	moved := 0
	for _, o := range obs {
		if priorKeys[o.ObservationKey] {
			moved++
		}
	}
	if len(obs) != 3 || moved != 2 {
		t.Errorf("survivor %s has %d observations (%d from the prior patient), want 3 (2)", survivor, len(obs), moved)
	}
	var linkSurvivor, linkEvent string
	var mergedAt time.Time
	queryRow(t, db, `SELECT surviving_key, event_id::text, merged_at FROM patient_links WHERE prior_key = $1`, []any{prior}, &linkSurvivor, &linkEvent, &mergedAt)
	if linkSurvivor != survivor || linkEvent != m.ID.String() || !mergedAt.Equal(m.OccurredAt) {
		t.Errorf("patient_links %s -> %s by %s at %v, want -> %s by %s at %v", prior, linkSurvivor, linkEvent, mergedAt, survivor, m.ID, m.OccurredAt)
	}
	if p := patientOf(t, db, prior); p.Status != "merged" {
		t.Errorf("prior patient status %q, want merged", p.Status)
	}
	t.Logf("A40: 2 observations moved %s -> %s, patient_links written, prior marked merged", prior, survivor)

	// Later messages naming the prior identifier.
	send(hrMsg("MG-P1-HR2", "MRGP01", "OA2", "20260312103000+0000", "85", "F"),
		lactateMsg("MG-P1-LAC-C", "MRGP01", "L1", "20260312083000+0000", "2.4", "C"))
	hr2, corr := onlyEvent(t, db, "MG-P1-HR2"), onlyEvent(t, db, "MG-P1-LAC-C")
	if hr2.PatientKey != prior {
		t.Errorf("event of a message naming the prior identifier has patient_key %s, want %s as sent", hr2.PatientKey, prior)
	}
	if got, want := corr.payloadString("replaces"), onlyEvent(t, db, "MG-P1-LAC").ID.String(); got != want {
		t.Errorf("correction after the merge replaces %q, want the original lactate event %s", got, want)
	}
	if n := len(observationsOf(t, db, prior)); n != 0 {
		t.Errorf("%d observations under the prior patient after the merge, want 0 (they belong to %s)", n, survivor)
	}
	byEvent := map[string]observationRow{}
	for _, o := range observationsOf(t, db, survivor) {
		byEvent[o.EventID.String()] = o
	}
	if o, ok := byEvent[hr2.ID.String()]; !ok || o.Value != "85" {
		t.Errorf("survivor's state has no heart rate 85 from %s: %v", hr2.ID, byEvent)
	}
	if o, ok := byEvent[corr.ID.String()]; !ok || o.Value != "2.4" || o.Status != "C" {
		t.Errorf("survivor's state has no corrected lactate 2.4 from %s: %v", corr.ID, byEvent)
	}
	t.Logf("messages naming %s after the merge update %s's state", prior, survivor)

	// A merge queued behind the prior patient's earlier messages, in
	// another lane: it must wait for them. The router is stopped while
	// everything is queued, then applies one row per transaction, so the
	// prior patient's rows are still queued when the merge's lane reaches
	// it.
	prior2, survivor2 := "", "GENHOSP/MRGS02"
	for i := 2; prior2 == ""; i++ {
		k := fmt.Sprintf("GENHOSP/MRGP%02d", i)
		if patient.Partition(k)%store.Lanes != patient.Partition(survivor2)%store.Lanes {
			prior2 = k
		}
	}
	prior2MRN := prior2[len("GENHOSP/"):]
	r.stop(t)
	var queued [][]byte
	const priorMsgs = 15
	for i := range priorMsgs {
		queued = append(queued, hrMsg(fmt.Sprintf("MG-P2-HR%02d", i), prior2MRN, fmt.Sprintf("Q%02d", i),
			fmt.Sprintf("202603120%d%02d00+0000", 8+i/60, i%60), fmt.Sprint(60+i), "F"))
	}
	queued = append(queued, hl7Msg("MSH|^~\\&|PAS|GENHOSP|AORTA|AORTA|20260312110000+0000||ADT^A40^ADT_A39|MG-A40-2|P|2.5.1",
		"EVN|A40|20260312110000+0000", "PID|1||MRGS02^^^GENHOSP^MR", "MRG|"+prior2MRN+"^^^GENHOSP^MR"))
	for i := range 3 {
		queued = append(queued, hrMsg(fmt.Sprintf("MG-S2-HR%d", i), "MRGS02", fmt.Sprintf("S%d", i),
			fmt.Sprintf("2026031212%02d00+0000", i), fmt.Sprint(70+i), "F"))
	}
	sendAA(t, l.MLLPAddr, queued...)
	r2 := r.restart(t, "--batch-size", "1")
	waitDrained(t, db, drainTimeout)

	m2 := onlyEvent(t, db, "MG-A40-2")
	priorEvents := events(t, db, "e.patient_key = $1", prior2)
	after := events(t, db, "m.control_id LIKE 'MG-S2-%'")
	if len(priorEvents) != priorMsgs || len(after) != 3 {
		t.Fatalf("%d events of %s and %d later events of %s, want %d and 3", len(priorEvents), prior2, len(after), survivor2, priorMsgs)
	}
	for _, e := range priorEvents {
		if e.Seq > m2.Seq {
			t.Errorf("%s (prior patient, queued before the merge) has seq %d, after the merge's %d", e.ControlID, e.Seq, m2.Seq)
		}
	}
	for _, e := range after {
		if e.Seq < m2.Seq {
			t.Errorf("%s (survivor, queued after the merge) has seq %d, before the merge's %d", e.ControlID, e.Seq, m2.Seq)
		}
	}
	if n := len(observationsOf(t, db, prior2)); n != 0 {
		t.Errorf("%d observations left under %s after the merge waited for them", n, prior2)
	}
	if n := len(observationsOf(t, db, survivor2)); n != priorMsgs+3 {
		t.Errorf("%d observations under %s, want %d", n, survivor2, priorMsgs+3)
	}
	waits := scrape(t, r2.HTTPAddr).sum("aorta_router_apply_errors_total")
	t.Logf("merge %s <- %s (lanes %d and %d) queued behind %d prior messages: applied after them (seq %d > %d), all %d observations moved; %v batch attempts deferred",
		survivor2, prior2, patient.Partition(survivor2)%store.Lanes, patient.Partition(prior2)%store.Lanes, priorMsgs,
		m2.Seq, priorEvents[len(priorEvents)-1].Seq, priorMsgs+3, waits)
	checkNoPHI(t, "router", r2.log, "MRGP0", "MRGS0")
	checkNoPHI(t, "router", r.log, "MRGP0", "MRGS0")
}

// TestRouterMergeKeepsSurvivorIdentity: after an A40, an ADT naming the
// prior identifier updates the survivor's patients row (docs/router.md:
// "later messages naming the prior identifier update the survivor's
// state"). The row keyed by the survivor's patient_key must keep the
// survivor's patient_id: patient_key and patient_id must name the same
// patient.
func TestRouterMergeKeepsSurvivorIdentity(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)
	startRouter(t, dbURL, routesFile(t, "routes.yaml"))
	sendAA(t, l.MLLPAddr,
		adtMsg("MK-1", "A01", "MKS01", "20260312070000+0000", "WARD1^1^1"),
		hl7Msg("MSH|^~\\&|PAS|GENHOSP|AORTA|AORTA|20260312080000+0000||ADT^A40^ADT_A39|MK-2|P|2.5.1",
			"EVN|A40|20260312080000+0000", "PID|1||MKS01^^^GENHOSP^MR", "MRG|MKP01^^^GENHOSP^MR"))
	waitDrained(t, db, drainTimeout)
	// The prior patient's own system has not heard of the merge yet.
	sendAA(t, l.MLLPAddr, adtMsg("MK-3", "A02", "MKP01", "20260312090000+0000", "WARD2^2^2"))
	waitDrained(t, db, drainTimeout)
	p := patientOf(t, db, "GENHOSP/MKS01")
	if p.Location != "WARD2^2^2" || p.LastEventType != event.PatientTransferred {
		t.Errorf("survivor after an A02 naming the prior identifier: %+v, want moved to WARD2^2^2 by it", p)
	}
	if p.PatientID != "MKS01" {
		t.Errorf("patients row GENHOSP/MKS01 has patient_id %q, want MKS01: the prior patient's ID overwrote the survivor's", p.PatientID)
	}
}
