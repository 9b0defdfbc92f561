package event

import (
	"testing"

	"github.com/aortahealth/aorta/internal/testcorpus"
)

// BenchmarkMapLab maps the largest corpus result message (newborn
// screening, ~150 OBX across 20 orders).
func BenchmarkMapLab(b *testing.B) {
	m := parse(b, testcorpus.Read(b, "57_oru-r01-utf8-micro-no-msh18-prs.hl7"))
	opt := Options{Route: "bench", Mappings: []string{MappingObservations}, Parameters: defaultTable(b)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Map(m, opt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMapDevice maps an IHE PCD-01 device message.
func BenchmarkMapDevice(b *testing.B) {
	m := parse(b, readTestdata(b, "oru_pcd01.hl7"))
	opt := Options{Route: "bench", Mappings: []string{MappingObservations}, Parameters: defaultTable(b)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Map(m, opt); err != nil {
			b.Fatal(err)
		}
	}
}
