package hl7sim

import (
	"fmt"
	"strconv"
	"time"

	"github.com/aortahealth/aorta/pkg/hl7"
)

// Version is MSH-12 of every message.
const Version = "2.5.1"

// Observation codes, as the shipped routes.yaml maps them (parameters, and
// the nursing-vitals and lab-results routes).
const (
	codeRespiratoryRate = "9279-1"
	codeSpO2            = "59408-5"
	codeO2Flow          = "3151-8"
	codeSystolic        = "8480-6"
	codeDiastolic       = "8462-4"
	codeHeartRate       = "8867-4"
	codeACVPU           = "67775-7"
	codeTemperature     = "8310-5"
	codeWBC             = "6690-2"
	// SNOMED CT findings charted as both the observation and its answer.
	findingOnOxygen = "371825009"
	findingRoomAir  = "722742002"
)

// acvpuAnswers are the SNOMED CT answers of the ACVPU levels.
var acvpuAnswers = map[string][2]string{
	"A": {"248234008", "Mentally alert"},
	"C": {"130987000", "Acute confusion"},
	"V": {"255373000", "Responds to voice"},
	"P": {"450847001", "Responds to pain"},
	"U": {"422768004", "Unresponsive"},
}

// Time formats an HL7 time to the second, with its offset, so that no
// receiver has to guess the zone.
func Time(t time.Time) string { return t.Format("20060102150405-0700") }

// builder sets values in a new message, remembering the first error.
type builder struct {
	m   *hl7.Message
	err error
}

func newBuilder() *builder {
	m, err := hl7.NewMessage(hl7.StandardDelimiters)
	return &builder{m: m, err: err}
}

// set stores pairs of location and value.
func (b *builder) set(pairs ...string) {
	for i := 0; i+1 < len(pairs) && b.err == nil; i += 2 {
		b.err = b.m.Set(pairs[i], pairs[i+1])
	}
}

func (b *builder) encode() ([]byte, error) {
	if b.err != nil {
		return nil, fmt.Errorf("build message: %w", b.err)
	}
	return b.m.Encode(), nil
}

// header writes MSH.
func (b *builder) header(typ, trigger, structure, controlID string, at time.Time) {
	b.set("MSH-3", Application, "MSH-4", Facility, "MSH-5", "AORTA", "MSH-6", "AORTA",
		"MSH-7", Time(at), "MSH-9.1", typ, "MSH-9.2", trigger, "MSH-9.3", structure,
		"MSH-10", controlID, "MSH-11", "P", "MSH-12", Version)
}

// patient writes PID and PV1.
func (b *builder) patient(p Patient) {
	b.set("PID-1", "1", "PID-3.1", p.MRN, "PID-3.4", Authority, "PID-3.5", "MR",
		"PID-5.1", p.Family, "PID-5.2", p.Given, "PID-7", p.BirthDate.Format("20060102"), "PID-8", p.Sex)
	b.set("PV1-1", "1", "PV1-2", "I", "PV1-3.1", p.Ward, "PV1-3.2", p.Room, "PV1-3.3", p.Bed,
		"PV1-3.4", Facility, "PV1-19", p.VisitNumber)
}

// Admission returns an ADT^A01 admitting p at time at.
func Admission(p Patient, controlID string, at time.Time) ([]byte, error) {
	b := newBuilder()
	b.header("ADT", "A01", "ADT_A01", controlID, at)
	b.set("EVN-1", "A01", "EVN-2", Time(at))
	b.patient(p)
	b.set("PV1-44", Time(at))
	return b.encode()
}

// VitalSigns returns an ORU^R01 charting v for p, observed at time at:
// one OBR (its filler order number is the control ID, so each set is an
// observation of its own) and one OBX per parameter, final (F), each with
// OBX-14.
func VitalSigns(p Patient, v Vitals, controlID string, at time.Time) ([]byte, error) {
	b := newBuilder()
	ts := Time(at)
	b.header("ORU", "R01", "ORU_R01", controlID, at)
	b.patient(p)
	b.set("OBR-1", "1", "OBR-3.1", controlID, "OBR-3.2", Application,
		"OBR-4.1", "NEWS2", "OBR-4.2", "NEWS2 observation set", "OBR-4.3", "L", "OBR-7", ts)
	n := 0
	obx := func(valueType, code, display, system, value, unit string) {
		n++
		seg := "OBX[" + strconv.Itoa(n) + "]-"
		b.set(seg+"1", strconv.Itoa(n), seg+"2", valueType,
			seg+"3.1", code, seg+"3.2", display, seg+"3.3", system,
			seg+"5", value, seg+"6", unit, seg+"11", "F", seg+"14", ts)
	}
	coded := func(code, display, system, answer, answerDisplay string) {
		obx("CWE", code, display, system, "", "")
		seg := "OBX[" + strconv.Itoa(n) + "]-"
		b.set(seg+"5.1", answer, seg+"5.2", answerDisplay, seg+"5.3", "SCT")
	}
	num := strconv.Itoa

	obx("NM", codeRespiratoryRate, "Respiratory rate", "LN", num(v.RespiratoryRate), "/min")
	obx("NM", codeSpO2, "Oxygen saturation by pulse oximetry", "LN", num(v.SpO2), "%")
	if v.OnOxygen() {
		coded(findingOnOxygen, "Patient on oxygen", "SCT", findingOnOxygen, "Patient on oxygen")
		obx("NM", codeO2Flow, "Inhaled oxygen flow rate", "LN", num(v.O2Flow), "L/min")
	} else {
		coded(findingRoomAir, "Breathing room air", "SCT", findingRoomAir, "Breathing room air")
	}
	obx("NM", codeSystolic, "Systolic blood pressure", "LN", num(v.Systolic), "mm[Hg]")
	obx("NM", codeDiastolic, "Diastolic blood pressure", "LN", num(v.Diastolic), "mm[Hg]")
	obx("NM", codeHeartRate, "Heart rate", "LN", num(v.HeartRate), "/min")
	answer, ok := acvpuAnswers[v.ACVPU]
	if !ok {
		return nil, fmt.Errorf("build message: unknown ACVPU level %q", v.ACVPU)
	}
	coded(codeACVPU, "Level of consciousness (ACVPU)", "LN", answer[0], answer[1])
	obx("NM", codeTemperature, "Body temperature", "LN", fmt.Sprintf("%d.%d", v.Temperature/10, v.Temperature%10), "Cel")
	return b.encode()
}

// LabResult returns an ORU^R01 from the laboratory reporting p's white
// cell count (wbc, in tenths of 10^9/L) of blood taken at time at, as the
// shipped lab-results route reads it. SIRS uses it for 24 hours.
func LabResult(p Patient, wbc int, controlID string, at time.Time) ([]byte, error) {
	b := newBuilder()
	ts := Time(at)
	b.header("ORU", "R01", "ORU_R01", controlID, at)
	b.patient(p)
	b.set("OBR-1", "1", "OBR-3.1", controlID, "OBR-3.2", Application,
		"OBR-4.1", "FBC", "OBR-4.2", "Full blood count", "OBR-4.3", "L", "OBR-7", ts)
	b.set("OBX-1", "1", "OBX-2", "NM", "OBX-3.1", codeWBC, "OBX-3.2", "Leukocytes in blood", "OBX-3.3", "LN",
		"OBX-5", fmt.Sprintf("%d.%d", wbc/10, wbc%10), "OBX-6", "10*9/L", "OBX-7", "4.0-11.0",
		"OBX-11", "F", "OBX-14", ts)
	return b.encode()
}
