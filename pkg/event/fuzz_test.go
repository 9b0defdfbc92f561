package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aortahealth/aorta/internal/testcorpus"
	"github.com/aortahealth/aorta/pkg/hl7"
)

// FuzzMap checks that Map never panics on a parseable message, whatever
// the options, that it fails only with an *InvalidError, and that its
// output is deterministic and well formed.
func FuzzMap(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.hl7"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no testdata messages: %v", err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(0))
	}
	for _, c := range testcorpus.Cases(f) {
		if b, err := os.ReadFile(c.Path); err == nil {
			f.Add(b, uint8(3))
		}
	}
	f.Add([]byte("MSH|^~\\&|A|B|||20260101||ORU^R01|1|P|2.5\rPID|||1\rOBR|1\rOBX|1|SN|8867-4^^LN|1.0.0.0.|^<^:^|||||F|||2026\r"), uint8(7))
	f.Add([]byte("MSH|^~\\&|A|B|||20260101||ADT^A40|1|P|2.5\rPID|||1\rMRG|\rPID|||2\r"), uint8(1))

	tab := defaultTable(f)
	newYork := zone(f, "America/New_York")
	id := uuid.MustParse("01960000-0000-7000-8000-000000000f0f")
	f.Fuzz(func(t *testing.T, raw []byte, flags uint8) {
		m, err := hl7.Parse(raw)
		if err != nil {
			return
		}
		opt := Options{Route: "fuzz", Mappings: []string{MappingADT, MappingObservations}}
		switch flags % 3 {
		case 1:
			opt.Mappings = []string{MappingADT}
		case 2:
			opt.Mappings = []string{MappingObservations}
		}
		if flags&4 != 0 {
			opt.OnInvalid = OnInvalidSkip
		}
		if flags&8 != 0 {
			opt.Preliminary = true
		}
		if flags&16 == 0 {
			opt.Parameters = tab
		}
		if flags&32 != 0 {
			opt.Location = newYork
		}
		msg := Message{ID: id, Parsed: m, Header: m.Header()}
		res, err := Map(msg, opt)
		if err != nil {
			var ie *InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v is not an *InvalidError", err)
			}
			if ie.Reason == "" || len(res.Events) != 0 {
				t.Fatalf("invalid result: %q with %d events", ie.Reason, len(res.Events))
			}
			return
		}
		again, err := Map(msg, opt)
		if err != nil || !bytes.Equal(render(t, res, nil), render(t, again, nil)) {
			t.Fatalf("mapping twice differs (second error %v)", err)
		}
		seen := map[uuid.UUID]bool{}
		for _, e := range res.Events {
			if seen[e.ID] {
				t.Fatalf("duplicate event ID %s", e.ID)
			}
			seen[e.ID] = true
			if !json.Valid(e.Payload) || e.SchemaVersion != SchemaVersion || e.PatientKey == "" || e.OccurredAt.Location() != time.UTC {
				t.Fatalf("malformed event %+v", e)
			}
			if strings.ContainsRune(e.PatientID+e.PatientKey+e.EncounterID+e.Source, 0) || bytes.Contains(jsonWithoutNUL(e.Payload), []byte{0}) {
				t.Fatalf("NUL in a stored string")
			}
			if bytes.Contains(bytes.ReplaceAll(e.Payload, []byte(`\\`), nil), []byte(`\u0000`)) {
				t.Fatalf("payload carries \\u0000, which jsonb rejects: %s", e.Payload)
			}
			isObs := strings.HasPrefix(e.Type, "observation.")
			if isObs != (e.Observation != nil) || (e.Type == PatientMerged) != (e.Merge != nil) {
				t.Fatalf("%s: side data %v %v", e.Type, e.Observation, e.Merge)
			}
			if isObs && e.Type != ObservationRecorded {
				c := e
				if err := c.SetReplaces(id); err != nil || !json.Valid(c.Payload) {
					t.Fatalf("SetReplaces: %v", err)
				}
			}
		}
	})
}
