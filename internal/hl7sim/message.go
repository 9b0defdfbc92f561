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

// Update returns an ADT^A08 (update patient information) for p at time
// at: the same patient and visit as Admission, as a registration clerk's
// correction sends them.
func Update(p Patient, controlID string, at time.Time) ([]byte, error) {
	b := newBuilder()
	b.header("ADT", "A08", "ADT_A01", controlID, at)
	b.set("EVN-1", "A08", "EVN-2", Time(at))
	b.patient(p)
	return b.encode()
}

// LabTest is one laboratory result: a LOINC code and its value as the
// analyser reports it.
type LabTest struct {
	Code, Name  string // OBX-3.1, OBX-3.2 (coding system LN)
	Value, Unit string // OBX-5 (NM), OBX-6
	Range, Flag string // OBX-7, OBX-8 (empty: none)
}

// LabPanel is one order of a laboratory report (OBR) and its results.
type LabPanel struct {
	Code, Name string // OBR-4.1, OBR-4.2 (coding system LN)
	Tests      []LabTest
}

// LabReport returns an ORU^R01 from the laboratory with one OBR per panel,
// each followed by one OBX per test, final (F), for blood taken at time at
// (OBR-7, OBX-14). The filler order numbers are the control ID and the
// panel's position, so each panel is an order of its own.
func LabReport(p Patient, panels []LabPanel, controlID string, at time.Time) ([]byte, error) {
	b := newBuilder()
	ts := Time(at)
	b.header("ORU", "R01", "ORU_R01", controlID, at)
	b.patient(p)
	n := 0
	for i, panel := range panels {
		obr := "OBR[" + strconv.Itoa(i+1) + "]-"
		b.set(obr+"1", strconv.Itoa(i+1), obr+"3.1", controlID+"-"+strconv.Itoa(i+1), obr+"3.2", Application,
			obr+"4.1", panel.Code, obr+"4.2", panel.Name, obr+"4.3", "LN", obr+"7", ts, obr+"25", "F")
		for j, t := range panel.Tests {
			n++
			obx := "OBX[" + strconv.Itoa(n) + "]-"
			b.set(obx+"1", strconv.Itoa(j+1), obx+"2", "NM", obx+"3.1", t.Code, obx+"3.2", t.Name, obx+"3.3", "LN",
				obx+"5", t.Value, obx+"6", t.Unit, obx+"7", t.Range, obx+"8", t.Flag, obx+"11", "F", obx+"14", ts)
		}
	}
	return b.encode()
}

// MonitorSetup says what a bedside monitor measures besides ECG heart
// rate, respiration and pulse oximetry, which it always reports.
type MonitorSetup struct {
	NIBP        bool // a non-invasive blood pressure cycle: systolic, diastolic, mean, pulse rate
	Temperature bool // a temperature probe
	CO2         bool // capnography: end-tidal CO2
}

// MonitorOBX returns how many OBX segments MonitorResult writes for s.
func (s MonitorSetup) MonitorOBX() int {
	n := 10
	if s.NIBP {
		n += 6
	}
	if s.Temperature {
		n += 3
	}
	if s.CO2 {
		n += 3
	}
	return n
}

// MonitorResult returns an ORU^R01 from a bedside monitor as IHE PCD-01
// specifies it (HL7 2.6, MSH-15 NE, MSH-16 AL, MDC codes and units): the
// monitor (MDS), its devices (VMD) and channels, rows of OBX-11 X without
// a value, then the metrics of each channel, unverified (R), each with
// OBX-14 at. v gives the values; ACVPU and oxygen are not a monitor's and
// are left out, so a NEWS2 from monitor data alone is incomplete.
func MonitorResult(p Patient, v Vitals, s MonitorSetup, controlID string, at time.Time) ([]byte, error) {
	b := newBuilder()
	ts := Time(at)
	b.header("ORU", "R01", "ORU_R01", controlID, at)
	b.set("MSH-12", "2.6", "MSH-15", "NE", "MSH-16", "AL",
		"MSH-21.1", "IHE PCD ORU-R01 2006", "MSH-21.2", "HL7", "MSH-21.3", "1.3.6.1.4.1.19376.1.6.1.1.1", "MSH-21.4", "ISO")
	b.patient(p)
	b.set("OBR-1", "1", "OBR-3.1", controlID, "OBR-3.2", Application,
		"OBR-4.1", "69837", "OBR-4.2", "MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS", "OBR-4.3", "MDC", "OBR-7", ts)
	n := 0
	row := func(code, name, subID, valueType, value, unitCode, unitName, status string) {
		n++
		seg := "OBX[" + strconv.Itoa(n) + "]-"
		b.set(seg+"1", strconv.Itoa(n), seg+"2", valueType, seg+"3.1", code, seg+"3.2", name, seg+"3.3", "MDC",
			seg+"4", subID, seg+"5", value, seg+"11", status, seg+"14", ts)
		if unitCode != "" {
			b.set(seg+"6.1", unitCode, seg+"6.2", unitName, seg+"6.3", "MDC")
		}
	}
	device := func(code, name, subID string) { row(code, name, subID, "", "", "", "", "X") }
	metric := func(code, name, subID, value, unitCode, unitName string) {
		row(code, name, subID+"."+code, "NM", value, unitCode, unitName, "R")
	}
	num := strconv.Itoa
	device("69837", "MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS", "1")
	b.set("OBX[1]-18.1", "AORTASIM"+p.Bed, "OBX[1]-18.2", "EUI-64")
	device("69798", "MDC_DEV_ECG_VMD", "1.1")
	device("69799", "MDC_DEV_ECG_CHAN", "1.1.1")
	metric("147842", "MDC_ECG_HEART_RATE", "1.1.1", num(v.HeartRate), "264864", "MDC_DIM_BEAT_PER_MIN")
	metric("151562", "MDC_RESP_RATE", "1.1.1", num(v.RespiratoryRate), "264928", "MDC_DIM_RESP_PER_MIN")
	device("69710", "MDC_DEV_ANALY_SAT_O2_VMD", "1.2")
	device("69711", "MDC_DEV_ANALY_SAT_O2_CHAN", "1.2.1")
	metric("150456", "MDC_PULS_OXIM_SAT_O2", "1.2.1", num(v.SpO2), "262688", "MDC_DIM_PERCENT")
	metric("149530", "MDC_PULS_OXIM_PULS_RATE", "1.2.1", num(v.HeartRate), "264864", "MDC_DIM_BEAT_PER_MIN")
	metric("150488", "MDC_PULS_OXIM_PERF_REL", "1.2.1", "2.4", "262688", "MDC_DIM_PERCENT")
	if s.NIBP {
		device("69854", "MDC_DEV_METER_PRESS_BLD_VMD", "1.3")
		device("69855", "MDC_DEV_METER_PRESS_BLD_CHAN", "1.3.1")
		metric("150021", "MDC_PRESS_BLD_NONINV_SYS", "1.3.1", num(v.Systolic), "266016", "MDC_DIM_MMHG")
		metric("150022", "MDC_PRESS_BLD_NONINV_DIA", "1.3.1", num(v.Diastolic), "266016", "MDC_DIM_MMHG")
		metric("150023", "MDC_PRESS_BLD_NONINV_MEAN", "1.3.1", num((v.Systolic+2*v.Diastolic)/3), "266016", "MDC_DIM_MMHG")
		metric("149546", "MDC_PULS_RATE_NON_INV", "1.3.1", num(v.HeartRate), "264864", "MDC_DIM_BEAT_PER_MIN")
	}
	if s.Temperature {
		device("69642", "MDC_DEV_METER_TEMP_VMD", "1.4")
		device("69643", "MDC_DEV_METER_TEMP_CHAN", "1.4.1")
		metric("150364", "MDC_TEMP_BODY", "1.4.1", fmt.Sprintf("%d.%d", v.Temperature/10, v.Temperature%10), "268192", "MDC_DIM_DEGC")
	}
	if s.CO2 {
		device("70657", "MDC_DEV_ANALY_CONC_GAS_MULTI_PARAM_VMD", "1.5")
		device("70658", "MDC_DEV_ANALY_CONC_GAS_MULTI_PARAM_CHAN", "1.5.1")
		metric("151708", "MDC_AWAY_CO2_ET", "1.5.1", "38", "266016", "MDC_DIM_MMHG")
	}
	return b.encode()
}
