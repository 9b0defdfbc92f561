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
