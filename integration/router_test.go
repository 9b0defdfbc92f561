package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/pkg/event"
)

// The tests in this file run the real listener and router binaries on a
// database of their own, send real messages over MLLP, and check what the
// router wrote: the events (docs/events.md), the routing outcomes and the
// per-patient state (docs/router.md). They run in parallel; the heavier
// tests that kill or disconnect the router are in router_faults_test.go.

// wantEvent is an events row a message must produce.
type wantEvent struct {
	key         string // position key of the event ID: "adt", "obx/7"
	typ         string
	occurred    string // RFC 3339
	patientID   string
	patientKey  string
	encounterID string
	source      string
	route       string
	payload     string // a JSON subset of the payload
}

// familyCase is one message and everything it must produce.
type familyCase struct {
	name    string
	raw     []byte
	routing routing // Status, Routes, Events, Warnings are compared
	events  []wantEvent
}

// Patients of TestRouterMessageFamilies. Names and identifiers are
// distinctive so that the log check can find any leak of them.
const (
	fam1 = "GENHOSP/FAM1001"
	fam2 = "GENHOSP/FAM2002" // PID-3 without authority: MSH-4 qualifies it
	fam3 = "GENHOSP/FAM3003"
	fam4 = "GENHOSP/FAM4004" // survivor of the merge
	fam5 = "GENHOSP/FAM5005" // merged away
	fam6 = "GENHOSP/FAM6006" // the monitored patient
)

var famPHI = []string{"FAM1001", "FAM2002", "FAM3003", "FAM4004", "FAM5005", "FAM6006", "9434765919",
	"QUIXLEY", "MIRABEL", "VELLACOTT", "ORSINO", "TREGARTHEN", "ISOLDE", "PENHALIGON", "CASSIAN", "OTTO"}

const (
	pidFam1 = "PID|1||FAM1001^^^GENHOSP^MR~9434765919^^^NHS^NH||QUIXLEY^MIRABEL^J||19710402|F"
	// The identifiers and name of fam1 as every patient payload shows them.
	fam1Patient = `{"identifiers": [{"id": "FAM1001", "authority": "GENHOSP", "type": "MR"}, {"id": "9434765919", "authority": "NHS", "type": "NH"}],
		"name": {"family": "QUIXLEY", "given": "MIRABEL", "middle": "J", "suffix": null, "prefix": null}, "birth_date": "1971-04-02", "sex": "F"}`
	ward7 = `{"point_of_care": "WARD7", "room": "BAY2", "bed": "BED4", "facility": "GENHOSP", "building": null, "floor": null}`
	icu   = `{"point_of_care": "ICU", "room": "B3", "bed": "1", "facility": "GENHOSP", "building": null, "floor": null}`
)

func pv1Fam1(loc, prior, service string) string {
	s := withField(withField("PV1|1|I|"+loc, 6, prior), 7, "C123^SMITH^ALICE")
	return withField(withField(s, 10, service), 19, "V100")
}

func familyCases() []familyCase {
	adt := func(key, typ, occurred, payload string) wantEvent {
		return wantEvent{key, typ, occurred, "FAM1001", fam1, "V100", "PAS^GENHOSP", "adt", payload}
	}
	lab := func(key, occurred, payload string) wantEvent {
		return wantEvent{key, event.ObservationRecorded, occurred, "FAM1001", fam1, "V100", "LIMS^PATHLAB", "lab", payload}
	}
	vital := func(key, occurred, payload string) wantEvent {
		return wantEvent{key, event.ObservationRecorded, occurred, "FAM1001", fam1, "V100", "EOBS^WARD7", "vitals", payload}
	}
	device := func(key, occurred, payload string) wantEvent {
		return wantEvent{key, event.ObservationRecorded, occurred, "FAM6006", fam6, "", "GATEWAY^ICU", "monitors", payload}
	}
	routed := func(route string, n, warnings int) routing {
		return routing{Status: "routed", Routes: []string{route}, Events: n, Warnings: warnings}
	}
	const doctor = `{"id": "C123", "family": "SMITH", "given": "ALICE"}`
	labOrder1 := `{"set_id": "1", "placer": {"id": "PL55", "namespace": "EPR", "universal_id": null, "universal_id_type": null},
		"filler": {"id": "FL77", "namespace": "LIMS", "universal_id": null, "universal_id_type": null},
		"service": {"code": "24362-6", "display": "Renal function panel", "coding_system": "LN"}, "notes": "Sample slightly haemolysed"}`
	labOrder2 := `{"set_id": "2", "filler": {"id": "FL78", "namespace": "LIMS", "universal_id": null, "universal_id_type": null},
		"service": {"code": "57021-8", "display": "CBC", "coding_system": "LN"}, "notes": null}`
	vitalsOrder := `{"set_id": "1", "placer": {"id": "ORD1", "namespace": "EOBS", "universal_id": null, "universal_id_type": null},
		"filler": {"id": "OBS1", "namespace": "EOBS", "universal_id": null, "universal_id_type": null},
		"service": {"code": "NEWS2", "display": "NEWS2 observation set", "coding_system": "L"}, "notes": null}`
	fam1ID := `{"id": "FAM1001", "authority": "GENHOSP", "type": "MR"}`
	mds := `{"sub_id": "1.0.0.0", "code": "69837", "coding_system": "MDC", "display": "MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS",
		"identifiers": [{"id": "AABBCCDDEEFF0011", "namespace": "EUI-64", "universal_id": null, "universal_id_type": null}]}`
	eui := `[{"id": "AABBCCDDEEFF0011", "namespace": "EUI-64", "universal_id": null, "universal_id_type": null}]`
	bpDevice := `{"identifiers": ` + eui + `, "hierarchy": [` + mds + `,
		{"sub_id": "1.1.0.0", "code": "69854", "coding_system": "MDC", "display": "MDC_DEV_METER_PRESS_BLD_VMD", "identifiers": []},
		{"sub_id": "1.1.1.0", "code": "69855", "coding_system": "MDC", "display": "MDC_DEV_METER_PRESS_BLD_CHAN", "identifiers": []}]}`
	tempDevice := `{"identifiers": ` + eui + `, "hierarchy": [` + mds + `,
		{"sub_id": "1.2.0.0", "code": "69642", "identifiers": []}, {"sub_id": "1.2.1.0", "code": "69643", "identifiers": []}]}`

	return []familyCase{
		{
			name: "ADT^A05 pre-admission, time from EVN-6",
			raw: hl7Msg("MSH|^~\\&|PAS|GENHOSP|AORTA|AORTA|20260312080500+0000||ADT^A05^ADT_A05|FAM-A05|P|2.5.1",
				"EVN|A05|20260312080500+0000||PRE^Pre-admission^HL70062||20260312080000+0000",
				pidFam1,
				withField(withField("PV1|1|P|PREOP^1^2^GENHOSP", 10, "SUR"), 19, "V100")),
			routing: routed("adt", 1, 0),
			events: []wantEvent{adt("adt", event.PatientPreadmitted, "2026-03-12T08:00:00Z", `{"trigger": "A05",
				"event_reason": {"code": "PRE", "display": "Pre-admission", "coding_system": "HL70062"},
				"event_recorded_at": "2026-03-12T08:05:00Z", "patient": `+fam1Patient+`, "prior_patient": null,
				"visit": {"class": "P", "location": {"point_of_care": "PREOP", "room": "1", "bed": "2", "facility": "GENHOSP", "building": null, "floor": null},
					"prior_location": null, "attending_doctor": null, "hospital_service": "SUR", "visit_number": "V100",
					"admitted_at": null, "discharged_at": null}}`)},
		},
		{
			name: "ADT^A01 admission, times with an offset, from EVN-2",
			raw: hl7Msg("MSH|^~\\&|PAS|GENHOSP|AORTA|AORTA|20260312100100+0100||ADT^A01^ADT_A01|FAM-A01|P|2.5.1",
				"EVN|A01|20260312100000+0100",
				pidFam1,
				withField(pv1Fam1("WARD7^BAY2^BED4^GENHOSP", "", "MED"), 44, "20260312100000+0100")),
			routing: routed("adt", 1, 0),
			events: []wantEvent{adt("adt", event.PatientAdmitted, "2026-03-12T09:00:00Z", `{"trigger": "A01", "event_reason": null,
				"event_recorded_at": "2026-03-12T09:00:00Z", "patient": `+fam1Patient+`, "prior_patient": null,
				"visit": {"class": "I", "location": `+ward7+`, "prior_location": null, "attending_doctor": `+doctor+`,
					"hospital_service": "MED", "visit_number": "V100", "admitted_at": "2026-03-12T09:00:00Z", "discharged_at": null}}`)},
		},
		{
			name: "ADT^A02 transfer without EVN, time from MSH-7",
			raw: hl7Msg("MSH|^~\\&|PAS|GENHOSP|AORTA|AORTA|20260312100000+0000||ADT^A02^ADT_A02|FAM-A02|P|2.5.1",
				pidFam1,
				pv1Fam1("ICU^B3^1^GENHOSP", "WARD7^BAY2^BED4^GENHOSP", "MED")),
			routing: routed("adt", 1, 0),
			events: []wantEvent{adt("adt", event.PatientTransferred, "2026-03-12T10:00:00Z", `{"trigger": "A02", "event_reason": null,
				"event_recorded_at": null, "prior_patient": null,
				"visit": {"class": "I", "location": `+icu+`, "prior_location": `+ward7+`, "visit_number": "V100"}}`)},
		},
		{
			name: "ADT^A12 transfer cancelled",
			raw: hl7Msg("MSH|^~\\&|PAS|GENHOSP|AORTA|AORTA|20260312103000+0000||ADT^A12^ADT_A12|FAM-A12|P|2.5.1",
				"EVN|A12|20260312103000+0000",
				pidFam1,
				pv1Fam1("WARD7^BAY2^BED4^GENHOSP", "ICU^B3^1^GENHOSP", "MED")),
			routing: routed("adt", 1, 0),
			events: []wantEvent{adt("adt", event.PatientTransferCancelled, "2026-03-12T10:30:00Z", `{"trigger": "A12",
				"visit": {"location": `+ward7+`, "prior_location": `+icu+`}}`)},
		},
		{
			name: "ADT^A08 visit updated",
			raw: hl7Msg("MSH|^~\\&|PAS|GENHOSP|AORTA|AORTA|20260312110000+0000||ADT^A08^ADT_A01|FAM-A08|P|2.5.1",
				"EVN|A08|20260312110000+0000",
				pidFam1,
				pv1Fam1("WARD7^BAY2^BED4^GENHOSP", "", "CAR")),
			routing: routed("adt", 1, 0),
			events: []wantEvent{adt("adt", event.PatientUpdated, "2026-03-12T11:00:00Z", `{"trigger": "A08", "patient": `+fam1Patient+`,
				"visit": {"hospital_service": "CAR", "location": `+ward7+`}}`)},
		},
		{
			name: "ADT^A03 discharge",
			raw: hl7Msg("MSH|^~\\&|PAS|GENHOSP|AORTA|AORTA|20260312120000+0000||ADT^A03^ADT_A03|FAM-A03|P|2.5.1",
				"EVN|A03|20260312120000+0000",
				pidFam1,
				withField(pv1Fam1("WARD7^BAY2^BED4^GENHOSP", "", "CAR"), 45, "20260312120000+0000")),
			routing: routed("adt", 1, 0),
			events: []wantEvent{adt("adt", event.PatientDischarged, "2026-03-12T12:00:00Z", `{"trigger": "A03",
				"visit": {"discharged_at": "2026-03-12T12:00:00Z", "admitted_at": null}}`)},
		},
		{
			name: "ADT^A13 discharge cancelled",
			raw: hl7Msg("MSH|^~\\&|PAS|GENHOSP|AORTA|AORTA|20260312123000+0000||ADT^A13^ADT_A01|FAM-A13|P|2.5.1",
				"EVN|A13|20260312123000+0000",
				pidFam1,
				pv1Fam1("WARD7^BAY2^BED4^GENHOSP", "", "CAR")),
			routing: routed("adt", 1, 0),
			events:  []wantEvent{adt("adt", event.PatientDischargeCancelled, "2026-03-12T12:30:00Z", `{"trigger": "A13"}`)},
		},
		{
			name: "ADT^A04 registration, PID-3 without authority",
			raw: hl7Msg("MSH|^~\\&|EDIS|GENHOSP|AORTA|AORTA|20260312130500+0000||ADT^A04^ADT_A01|FAM-A04|P|2.5.1",
				"EVN|A04|20260312130000+0000",
				"PID|1||FAM2002^^^^MR||VELLACOTT^ORSINO||19850101|M",
				withField("PV1|1|E|ED^^^GENHOSP", 19, "V200")),
			routing: routed("adt", 1, 0),
			events: []wantEvent{{"adt", event.PatientRegistered, "2026-03-12T13:00:00Z", "FAM2002", fam2, "V200", "EDIS^GENHOSP", "adt",
				`{"trigger": "A04", "patient": {"identifiers": [{"id": "FAM2002", "authority": null, "type": "MR"}], "birth_date": "1985-01-01", "sex": "M"},
				"visit": {"class": "E", "location": {"point_of_care": "ED", "room": null, "bed": null, "facility": "GENHOSP", "building": null, "floor": null}}}`}},
		},
		{
			name: "ADT^A11 admission cancelled",
			raw: hl7Msg("MSH|^~\\&|EDIS|GENHOSP|AORTA|AORTA|20260312132000+0000||ADT^A11^ADT_A09|FAM-A11|P|2.5.1",
				"EVN|A11|20260312132000+0000",
				"PID|1||FAM2002^^^^MR||VELLACOTT^ORSINO||19850101|M",
				withField("PV1|1|E|ED^^^GENHOSP", 19, "V200")),
			routing: routed("adt", 1, 0),
			events:  []wantEvent{{"adt", event.PatientAdmissionCancelled, "2026-03-12T13:20:00Z", "FAM2002", fam2, "V200", "EDIS^GENHOSP", "adt", `{"trigger": "A11"}`}},
		},
		{
			name: "ADT^A31 person updated, no visit",
			raw: hl7Msg("MSH|^~\\&|MPI|GENHOSP|AORTA|AORTA|20260312140000+0000||ADT^A31^ADT_A05|FAM-A31|P|2.5.1",
				"EVN|A31|20260312140000+0000",
				"PID|1||FAM3003^^^GENHOSP^MR||TREGARTHEN^ISOLDE||1990|F"),
			routing: routed("adt", 1, 0),
			events: []wantEvent{{"adt", event.PatientUpdated, "2026-03-12T14:00:00Z", "FAM3003", fam3, "", "MPI^GENHOSP", "adt",
				`{"trigger": "A31", "patient": {"name": {"family": "TREGARTHEN", "given": "ISOLDE", "middle": null, "suffix": null, "prefix": null}, "birth_date": "1990"}, "visit": null, "prior_patient": null}`}},
		},
		{
			name: "ADT^A01 of the patient merged away below",
			raw: hl7Msg("MSH|^~\\&|PAS|GENHOSP|AORTA|AORTA|20260312070000+0000||ADT^A01^ADT_A01|FAM-A01B|P|2.5.1",
				"EVN|A01|20260312070000+0000",
				"PID|1||FAM5005^^^GENHOSP^MR||PENHALIGON^CASSIAN||19600101|M",
				withField("PV1|1|I|WARD9^1^1^GENHOSP", 19, "V500")),
			routing: routed("adt", 1, 0),
			events:  []wantEvent{{"adt", event.PatientAdmitted, "2026-03-12T07:00:00Z", "FAM5005", fam5, "V500", "PAS^GENHOSP", "adt", `{"trigger": "A01"}`}},
		},
		{
			name: "ADT^A40 merge",
			raw: hl7Msg("MSH|^~\\&|PAS|GENHOSP|AORTA|AORTA|20260312150000+0000||ADT^A40^ADT_A39|FAM-A40|P|2.5.1",
				"EVN|A40|20260312150000+0000",
				"PID|1||FAM4004^^^GENHOSP^MR||PENHALIGON^CASSIAN||19600101|M",
				"MRG|FAM5005^^^GENHOSP^MR||||V500"),
			routing: routed("adt", 1, 0),
			events: []wantEvent{{"adt", event.PatientMerged, "2026-03-12T15:00:00Z", "FAM4004", fam4, "", "PAS^GENHOSP", "adt",
				`{"trigger": "A40", "visit": null, "patient": {"identifiers": [{"id": "FAM4004", "authority": "GENHOSP", "type": "MR"}]},
				"prior_patient": {"identifiers": [{"id": "FAM5005", "authority": "GENHOSP", "type": "MR"}], "patient_key": "GENHOSP/FAM5005", "visit_number": "V500"}}`}},
		},
		{
			name: "ORU^R01 laboratory: two orders, order and result notes, units converted, preliminary mapped",
			raw: hl7Msg("MSH|^~\\&|LIMS|PATHLAB|AORTA|AORTA|20260312140000+0000||ORU^R01^ORU_R01|FAM-LAB|P|2.5.1",
				"PID|1||FAM1001^^^GENHOSP^MR||QUIXLEY^MIRABEL^J||19710402|F",
				withField("PV1|1|I|WARD7^BAY2^BED4^GENHOSP", 19, "V100"),
				"ORC|RE|PL55^EPR|FL77^LIMS",
				withField("OBR|1|PL55^EPR|FL77^LIMS|24362-6^Renal function panel^LN|||20260312090000+0000", 25, "F"),
				"NTE|1||Sample slightly haemolysed",
				"OBX|1|NM|2160-0^Creatinine^LN||1.20|mg/dL|0.6-1.1|H|||F|||20260312091500+0000",
				"NTE|1||Repeat requested",
				"NTE|2||Clinician informed",
				"OBX|2|SN|2524-7^Lactate^LN||=^2.4|mmol/L|0.5-2.2|H|||F",
				"OBX|3|SN|2951-2^Sodium^LN||>^150|mmol/L|133-146|H~A|||F",
				"ORC|RE|PL56^EPR|FL78^LIMS",
				"OBR|2|PL56^EPR|FL78^LIMS|57021-8^CBC^LN|||20260312090500+0000",
				"OBX|1|NM|26464-8^Leukocytes^LN||12.0|10*3/uL|4.0-11.0|H|||F",
				"OBX|2|NM|764-1^Band neutrophils^LN||11|%|0-5|H|||F",
				"OBX|3|NM|2019-8^pCO2^LN||31.9|mm[Hg]|35-45|L|||F",
				"OBX|4|NM|718-7^Hemoglobin^LN||135|g/L|||||F",
				"OBX|5|NM|2524-7^Lactate^LN||1.9|mmol/L|||||P"),
			routing: routed("lab", 8, 0),
			events: []wantEvent{
				lab("obx/7", "2026-03-12T09:15:00Z", `{"replaces": null, "code": "2160-0", "coding_system": "LN", "display": "Creatinine", "parameter": "creatinine",
					"value": "106.080", "value_type": "number", "unit": "umol/L", "original_value": "1.20", "original_unit": "mg/dL",
					"reference_range": "0.6-1.1", "abnormal_flags": ["H"], "status": "F", "observed_at": "2026-03-12T09:15:00Z", "observed_at_source": "obx_14",
					"set_id": "1", "sub_id": null, "order": `+labOrder1+`, "device": null, "notes": "Repeat requested\nClinician informed", "patient_identifier": `+fam1ID+`}`),
				lab("obx/10", "2026-03-12T09:00:00Z", `{"parameter": "lactate", "value": "2.4", "value_type": "number", "unit": "mmol/L", "original_value": null,
					"original_unit": null, "comparator": null, "status": "F", "observed_at_source": "obr_7", "notes": null, "order": `+labOrder1+`}`),
				lab("obx/11", "2026-03-12T09:00:00Z", `{"parameter": null, "code": "2951-2", "value": "150", "value_type": "comparison", "comparator": ">",
					"unit": "mmol/L", "abnormal_flags": ["H", "A"], "reference_range": "133-146"}`),
				lab("obx/14", "2026-03-12T09:05:00Z", `{"parameter": "wbc", "value": "12.0", "unit": "10*9/L", "original_value": "12.0", "original_unit": "10*3/uL",
					"observed_at_source": "obr_7", "order": `+labOrder2+`}`),
				lab("obx/15", "2026-03-12T09:05:00Z", `{"parameter": "bands", "value": "11", "unit": "%", "set_id": "2"}`),
				lab("obx/16", "2026-03-12T09:05:00Z", `{"parameter": "paco2", "value": "31.9", "unit": "mm[Hg]", "abnormal_flags": ["L"]}`),
				lab("obx/17", "2026-03-12T09:05:00Z", `{"parameter": null, "code": "718-7", "value": "135", "value_type": "number", "unit": "g/L", "original_value": null}`),
				lab("obx/18", "2026-03-12T09:05:00Z", `{"parameter": "lactate", "value": "1.9", "status": "P"}`),
			},
		},
		{
			name: "ORU^R01 nursing LOINC vitals in local time (Europe/London, summer)",
			raw: hl7Msg("MSH|^~\\&|EOBS|WARD7|AORTA|AORTA|20260701103000||ORU^R01^ORU_R01|FAM-VIT|P|2.5.1",
				"PID|1||FAM1001^^^GENHOSP^MR||QUIXLEY^MIRABEL^J||19710402|F",
				withField("PV1|1|I|WARD7^BAY2^BED4^GENHOSP", 19, "V100"),
				"OBR|1|ORD1^EOBS|OBS1^EOBS|NEWS2^NEWS2 observation set^L|||20260701102000",
				"OBX|1|NM|9279-1^Respiratory rate^LN||18|/min|||||F|||20260701102100",
				"OBX|2|NM|2708-6^Oxygen saturation^LN||95|%|||||F|||20260701102100",
				"OBX|3|NM|8867-4^Heart rate^LN||92|{beat}/min|||||F|||20260701102100",
				"OBX|4|NM|8480-6^Systolic blood pressure^LN||118|mm[Hg]|||||F|||20260701102100",
				"OBX|5|NM|8310-5^Body temperature^LN||100.4|[degF]|||||F|||20260701102100",
				"OBX|6|CWE|67775-7^Level of responsiveness^LN||248234008^Mentally alert^SCT||||||F|||20260701102100",
				"OBX|7|NM|3151-8^Inhaled oxygen flow rate^LN||2|L/min|||||F",
				"NTE|1||Nasal cannula",
				"OBX|8|NM|8462-4^Diastolic blood pressure^LN||72|mm[Hg]|||||P|||20260701102100",
				"OBX|9|NM|8867-4^Heart rate^LN|2|93|/min|||||S|||20260701102100"),
			routing: routed("vitals", 7, 1),
			events: []wantEvent{
				vital("obx/5", "2026-07-01T09:21:00Z", `{"parameter": "resp_rate", "value": "18", "unit": "/min", "original_value": null,
					"observed_at": "2026-07-01T09:21:00Z", "observed_at_source": "obx_14", "order": `+vitalsOrder+`, "device": null}`),
				vital("obx/6", "2026-07-01T09:21:00Z", `{"parameter": "spo2", "value": "95", "unit": "%"}`),
				vital("obx/7", "2026-07-01T09:21:00Z", `{"parameter": "heart_rate", "value": "92", "unit": "/min", "original_value": "92", "original_unit": "{beat}/min"}`),
				vital("obx/8", "2026-07-01T09:21:00Z", `{"parameter": "sbp", "value": "118", "unit": "mm[Hg]"}`),
				vital("obx/9", "2026-07-01T09:21:00Z", `{"parameter": "temperature", "value": "38.0", "unit": "Cel", "original_value": "100.4", "original_unit": "[degF]"}`),
				vital("obx/10", "2026-07-01T09:21:00Z", `{"parameter": "consciousness", "value": "A", "value_type": "code", "unit": null, "original_value": "248234008",
					"value_coding": {"code": "248234008", "display": "Mentally alert", "coding_system": "SCT"}}`),
				vital("obx/11", "2026-07-01T09:20:00Z", `{"parameter": "o2_flow", "value": "2", "unit": "L/min", "observed_at_source": "obr_7", "notes": "Nasal cannula"}`),
			},
		},
		{
			name: "ORU^R01 IHE PCD-01 device vitals: MDC codes, X grouping rows, inherited times, one unreadable metric skipped",
			raw: hl7Msg("MSH|^~\\&|GATEWAY^0011223344556677^EUI-64|ICU|AORTA|AORTA|20260312150010+0000||ORU^R01^ORU_R01|FAM-PCD|P|2.6",
				"PID|||FAM6006^^^GENHOSP^MR||QUIXLEY^OTTO",
				"PV1||I|ICU^^B3",
				"OBR|1|PL9^GATEWAY^0011223344556677^EUI-64|FL9^GATEWAY^0011223344556677^EUI-64|69837^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|||20260312150000+0000",
				"OBX|1||69837^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||20260312150005+0000||||AABBCCDDEEFF0011^EUI-64",
				"OBX|2||69854^MDC_DEV_METER_PRESS_BLD_VMD^MDC|1.1.0.0|||||||X",
				"OBX|3||69855^MDC_DEV_METER_PRESS_BLD_CHAN^MDC|1.1.1.0|||||||X|||20260312150001+0000",
				"OBX|4|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.1.1.150021|122|266016^MDC_DIM_MMHG^MDC|||||R",
				"OBX|5|NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC|1.1.1.150022|78|266016^MDC_DIM_MMHG^MDC|||||R",
				"OBX|6|NM|149546^MDC_PULS_RATE_NON_INV^MDC|1.1.1.149546|64|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R|||20260312150002+0000",
				"OBX|7||69642^MDC_DEV_METER_TEMP_VMD^MDC|1.2.0.0|||||||X",
				"OBX|8||69643^MDC_DEV_METER_TEMP_CHAN^MDC|1.2.1.0|||||||X",
				"OBX|9|NM|150364^MDC_TEMP_BODY^MDC|1.2.1.150364|98.6|266560^MDC_DIM_FAHR^MDC|||||R",
				"OBX|10|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.3.1.150456|97|262688^MDC_DIM_PERCENT^MDC|||||X",
				"OBX|11|NM|150023^MDC_PRESS_BLD_NONINV_MEAN^MDC|1.1.1.150023|93|266016^MDC_DIM_MMHG^MDC|||||R",
				"OBX|12|NM|151562^MDC_RESP_RATE^MDC|1.4.1.151562|fast|264928^MDC_DIM_RESP_PER_MIN^MDC|||||R|||20260312150003+0000"),
			routing: routed("monitors", 5, 1),
			events: []wantEvent{
				device("obx/8", "2026-03-12T15:00:01Z", `{"code": "150021", "coding_system": "MDC", "display": "MDC_PRESS_BLD_NONINV_SYS", "parameter": "sbp",
					"value": "122", "value_type": "number", "unit": "mm[Hg]", "original_value": "122", "original_unit": "266016", "status": "R",
					"observed_at": "2026-03-12T15:00:01Z", "observed_at_source": "enclosing_obx_14", "set_id": "4", "sub_id": "1.1.1.150021",
					"order": {"placer": {"id": "PL9", "namespace": "GATEWAY", "universal_id": "0011223344556677", "universal_id_type": "EUI-64"},
						"service": {"code": "69837", "display": "MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS", "coding_system": "MDC"}},
					"device": `+bpDevice+`, "patient_identifier": {"id": "FAM6006", "authority": "GENHOSP", "type": "MR"}}`),
				device("obx/9", "2026-03-12T15:00:01Z", `{"parameter": "dbp", "value": "78", "sub_id": "1.1.1.150022", "device": `+bpDevice+`}`),
				device("obx/10", "2026-03-12T15:00:02Z", `{"parameter": "heart_rate", "value": "64", "unit": "/min", "original_unit": "264864", "observed_at_source": "obx_14"}`),
				device("obx/13", "2026-03-12T15:00:05Z", `{"parameter": "temperature", "value": "37.0", "unit": "Cel", "original_value": "98.6", "original_unit": "266560",
					"observed_at_source": "enclosing_obx_14", "device": `+tempDevice+`}`),
				device("obx/15", "2026-03-12T15:00:01Z", `{"parameter": null, "code": "150023", "value": "93", "unit": "266016", "original_unit": null}`),
			},
		},
		{
			name:    "SIU^S12: no route matches",
			raw:     hl7Msg("MSH|^~\\&|SCHED|GENHOSP|AORTA|AORTA|20260312160000+0000||SIU^S12^SIU_S12|FAM-SIU|P|2.5.1", "SCH|1", pidFam1),
			routing: routing{Status: "unrouted", Routes: []string{}},
		},
		{
			name: "ADT^A08 in training (MSH-11 T): a route without events ignores it",
			raw: hl7Msg("MSH|^~\\&|PAS|GENHOSP|AORTA|AORTA|20260312170000+0000||ADT^A08^ADT_A01|FAM-TRN|T|2.5.1",
				"EVN|A08|20260312170000+0000", pidFam1, pv1Fam1("ICU^B3^1^GENHOSP", "", "MED")),
			routing: routed("not-production", 0, 0),
		},
	}
}

// TestRouterMessageFamilies sends one message of every family the routes
// map (ADT A01 A02 A03 A04 A05 A08 A11 A12 A13 A31 A40; laboratory
// results with several orders and notes; IHE PCD-01 device vitals;
// nursing LOINC vitals), plus an unrouted and a training message, through
// the real listener and router, and checks every event row column by
// column (ID, type, clinical time, patient, encounter, source, route,
// schema version, payload), every routing outcome, and the per-patient
// state they leave.
func TestRouterMessageFamilies(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)
	r := startRouter(t, dbURL, routesFile(t, "routes.yaml"))

	cases := familyCases()
	var raws [][]byte
	for _, c := range cases {
		raws = append(raws, c.raw)
	}
	sendAA(t, l.MLLPAddr, raws...)
	waitDrained(t, db, drainTimeout)

	totalEvents := 0
	for _, c := range cases {
		cid := controlIDOf(t, c.raw)
		msgID := messageID(t, db, cid)
		got := events(t, db, "m.control_id = $1", cid)
		rt := routingOf(t, db, cid)
		if rt.Status != c.routing.Status || strings.Join(rt.Routes, ",") != strings.Join(c.routing.Routes, ",") ||
			rt.Events != c.routing.Events || rt.Warnings != c.routing.Warnings || rt.Attempts != 1 || rt.Error != "" {
			t.Errorf("%s (%s): routing %+v, want %+v with 1 attempt and no error", c.name, cid, rt, c.routing)
		}
		if len(got) != len(c.events) {
			t.Errorf("%s (%s): %d events, want %d", c.name, cid, len(got), len(c.events))
			for _, e := range got {
				t.Logf("  got %s %s %s", e.Type, e.OccurredAt.UTC().Format(time.RFC3339), e.Payload)
			}
			continue
		}
		totalEvents += len(got)
		ok := true
		for i, w := range c.events {
			g := got[i]
			wantID := event.NewID(msgID, w.route, w.key)
			var diffs []string
			check := func(what string, got, want any) {
				if fmt.Sprint(got) != fmt.Sprint(want) {
					diffs = append(diffs, fmt.Sprintf("%s %v, want %v", what, got, want))
				}
			}
			check("id", g.ID, wantID)
			check("type", g.Type, w.typ)
			check("occurred_at", g.OccurredAt.UTC().Format(time.RFC3339), w.occurred)
			check("patient_id", g.PatientID, w.patientID)
			check("patient_key", g.PatientKey, w.patientKey)
			check("encounter_id", g.EncounterID, w.encounterID)
			check("source", g.Source, w.source)
			check("route", g.Route, w.route)
			check("schema_version", g.SchemaVersion, 1)
			diffs = append(diffs, payloadDiff(t, g.Payload, w.payload)...)
			if len(diffs) > 0 {
				ok = false
				t.Errorf("%s (%s) event %d (%s):\n  %s", c.name, cid, i+1, w.key, strings.Join(diffs, "\n  "))
			}
		}
		if ok {
			t.Logf("%s %s: %s %v, %d events, %d warnings: verified", cid, c.name, rt.Status, rt.Routes, len(got), rt.Warnings)
		}
	}
	if n := count(t, db, `SELECT count(*) FROM events`); n != totalEvents {
		t.Errorf("%d events in all, want %d", n, totalEvents)
	}
	if n := count(t, db, `SELECT count(*) FROM events e JOIN messages m ON m.id = e.message_id WHERE e.recorded_at < m.received_at`); n != 0 {
		t.Errorf("%d events recorded before their message was received", n)
	}

	// Per-patient state.
	adtEvent := func(cid string) string { return events(t, db, "m.control_id = $1", cid)[0].ID.String() }
	for _, tt := range []struct {
		key  string
		want patientRow
	}{
		// A13 reverses the discharge; the training A08 (ICU) changed nothing.
		{fam1, patientRow{PatientID: "FAM1001", EncounterID: "V100", Status: "admitted", Location: "WARD7^BAY2^BED4^GENHOSP",
			LastEventType: event.PatientDischargeCancelled, LastEventAt: time.Date(2026, 3, 12, 12, 30, 0, 0, time.UTC)}},
		{fam2, patientRow{PatientID: "FAM2002", EncounterID: "V200", Status: "admission_cancelled", Location: "ED^^^GENHOSP",
			LastEventType: event.PatientAdmissionCancelled, LastEventAt: time.Date(2026, 3, 12, 13, 20, 0, 0, time.UTC)}},
		{fam3, patientRow{PatientID: "FAM3003", LastEventType: event.PatientUpdated, LastEventAt: time.Date(2026, 3, 12, 14, 0, 0, 0, time.UTC)}},
		{fam4, patientRow{PatientID: "FAM4004", LastEventType: event.PatientMerged, LastEventAt: time.Date(2026, 3, 12, 15, 0, 0, 0, time.UTC)}},
		{fam5, patientRow{PatientID: "FAM5005", EncounterID: "V500", Status: "merged", Location: "WARD9^1^1^GENHOSP",
			LastEventType: event.PatientAdmitted, LastEventAt: time.Date(2026, 3, 12, 7, 0, 0, 0, time.UTC)}},
	} {
		got := patientOf(t, db, tt.key)
		lastID := got.LastEventID
		got.LastEventID, got.LastEventAt = tt.want.LastEventID, got.LastEventAt.UTC()
		if got != tt.want {
			t.Errorf("patients %s:\n  got  %+v\n  want %+v", tt.key, got, tt.want)
			continue
		}
		t.Logf("patients %s: %s %s at %s (last event %s): verified", tt.key, got.Status, got.Location, got.LastEventAt.Format(time.RFC3339), lastID)
	}
	if got, want := patientOf(t, db, fam1).LastEventID.String(), adtEvent("FAM-A13"); got != want {
		t.Errorf("patients %s last_event_id %s, want the A13 event %s", fam1, got, want)
	}
	var prior, surviving, linkEvent string
	queryRow(t, db, `SELECT prior_key, surviving_key, event_id::text FROM patient_links`, nil, &prior, &surviving, &linkEvent)
	if prior != fam5 || surviving != fam4 || linkEvent != adtEvent("FAM-A40") {
		t.Errorf("patient_links: %s -> %s by %s, want %s -> %s by the A40 event", prior, surviving, linkEvent, fam5, fam4)
	}

	obs := map[string]string{}
	for _, o := range observationsOf(t, db, fam1) {
		obs[o.Parameter+"/"+o.Code] = o.Value + " " + o.Unit + " " + o.Status + " " + o.ObservedAt.UTC().Format(time.RFC3339)
	}
	wantObs := map[string]string{
		"creatinine/2160-0": "106.080 umol/L F 2026-03-12T09:15:00Z", "lactate/2524-7": "2.4 mmol/L F 2026-03-12T09:00:00Z",
		"/2951-2": "150 mmol/L F 2026-03-12T09:00:00Z", "wbc/26464-8": "12.0 10*9/L F 2026-03-12T09:05:00Z",
		"bands/764-1": "11 % F 2026-03-12T09:05:00Z", "paco2/2019-8": "31.9 mm[Hg] F 2026-03-12T09:05:00Z",
		"/718-7": "135 g/L F 2026-03-12T09:05:00Z", "resp_rate/9279-1": "18 /min F 2026-07-01T09:21:00Z",
		"spo2/2708-6": "95 % F 2026-07-01T09:21:00Z", "heart_rate/8867-4": "92 /min F 2026-07-01T09:21:00Z",
		"sbp/8480-6": "118 mm[Hg] F 2026-07-01T09:21:00Z", "temperature/8310-5": "38.0 Cel F 2026-07-01T09:21:00Z",
		"consciousness/67775-7": "A  F 2026-07-01T09:21:00Z", "o2_flow/3151-8": "2 L/min F 2026-07-01T09:20:00Z",
	}
	// The preliminary lactate of the second order is its own observation.
	if n := count(t, db, `SELECT count(*) FROM observations WHERE patient_key = $1 AND parameter = 'lactate' AND status = 'P' AND value_numeric = 1.9`, fam1); n != 1 {
		t.Errorf("observations %s: %d preliminary lactate rows, want 1", fam1, n)
	}
	if len(obs) != len(wantObs) || count(t, db, `SELECT count(*) FROM observations WHERE patient_key = $1`, fam1) != len(wantObs)+1 {
		t.Errorf("observations %s: %d distinct rows %v, want %d and the preliminary lactate", fam1, len(obs), obs, len(wantObs))
	}
	for k, w := range wantObs {
		if obs[k] != w {
			t.Errorf("observations %s %s: %q, want %q", fam1, k, obs[k], w)
		}
	}
	dev := observationsOf(t, db, fam6)
	if len(dev) != 5 {
		t.Errorf("observations %s: %d rows, want 5", fam6, len(dev))
	}
	t.Logf("observations: %s %d rows, %s %d rows: verified", fam1, len(wantObs)+1, fam6, len(dev))
	if n := count(t, db, `SELECT count(*) FROM dead_letters`); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
	t.Logf("%d messages sent, %d events verified column by column", len(cases), totalEvents)
	checkNoPHI(t, "router", r.log, famPHI...)
}
