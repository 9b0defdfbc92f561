package hl7

import (
	"testing"
	"time"

	"github.com/aortahealth/aorta/internal/testcorpus"
)

func BenchmarkParse(b *testing.B) {
	inputs := []struct {
		name string
		raw  []byte
	}{
		{"small-ADT", readTestdata(b, "adt_a01.hl7")},
		// A bedside monitor's IHE PCD-01 result, 20 MDC OBX, 2.3 kB:
		// the bulk of a ward's feed.
		{"ORU-20-OBX", readTestdata(b, "oru_r01_20obx.hl7")},
		{"corpus-57-25kB", testcorpus.Read(b, "57_oru-r01-utf8-micro-no-msh18-prs.hl7")},
	}
	for _, in := range inputs {
		b.Run(in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(in.raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIngest measures what the listener does per message: parse, read
// the header, build the ACK.
func BenchmarkIngest(b *testing.B) {
	raw := testcorpus.Read(b, "57_oru-r01-utf8-micro-no-msh18-prs.hl7")
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	now := time.Now()
	for b.Loop() {
		m, err := Parse(raw)
		if err != nil {
			b.Fatal(err)
		}
		h := m.Header()
		if _, err := BuildACK(h, ACK{Code: AA, ControlID: "A1", Time: now}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetAllOBX(b *testing.B) {
	raw := testcorpus.Read(b, "57_oru-r01-utf8-micro-no-msh18-prs.hl7")
	b.ReportAllocs()
	for b.Loop() {
		m, _ := Parse(raw)
		for s := range m.All("OBX") {
			_ = s.Field(5).String()
			_ = s.Field(6).String()
		}
	}
}

// BenchmarkBuildACK builds the listener's answers to the 20-OBX monitor
// result: the usual AA, and an AR with an ERR segment.
func BenchmarkBuildACK(b *testing.B) {
	m, err := Parse(readTestdata(b, "oru_r01_20obx.hl7"))
	if err != nil {
		b.Fatal(err)
	}
	h := m.Header()
	now := time.Now()
	loc, err := ParseLocation("MSH-12")
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ack  ACK
	}{
		{"AA", ACK{Code: AA, ControlID: "0190F3A1B2C3D4E5F6A7", Time: now}},
		{"AR-with-ERR", ACK{Code: AR, ControlID: "0190F3A1B2C3D4E5F6A7", Time: now, Text: "unsupported version",
			Errors: []ErrorDetail{{Location: loc, Code: UnsupportedVersionID, Text: "version 2.6 is not accepted"}}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := BuildACK(h, tc.ack); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
