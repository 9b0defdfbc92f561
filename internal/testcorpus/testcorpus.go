// Package testcorpus locates the shared third-party HL7 corpus for tests.
//
// The corpus belongs to its authors and is never copied into this
// repository; tests read it in place. AORTA_CORPUS_DIR overrides the
// location, otherwise the directory ../shared/corpus next to the module
// root is used. A test that needs the corpus fails loudly when it is
// missing, so a CI run can never pass by silently testing nothing.
package testcorpus

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// EnvVar names the environment variable that points at the corpus.
const EnvVar = "AORTA_CORPUS_DIR"

// Dir returns the corpus directory or fails the test.
func Dir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(EnvVar)
	if dir == "" {
		_, file, _, ok := runtime.Caller(0)
		if !ok {
			t.Fatalf("testcorpus: cannot locate source file; set %s", EnvVar)
		}
		// internal/testcorpus/testcorpus.go -> module root -> ../shared/corpus
		dir = filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "corpus")
	}
	if _, err := os.Stat(filepath.Join(dir, "expected.csv")); err != nil {
		t.Fatalf("testcorpus: HL7 corpus not found at %s (%v); set %s to the shared corpus directory", dir, err, EnvVar)
	}
	return dir
}

// Case is one row of expected.csv.
type Case struct {
	File        string
	MessageType string
	Trigger     string
	ControlID   string // several IDs are separated by ';' for batches
	ExpectedACK string // AA, AE, AR or none
	Notes       string
	Path        string
}

// Cases reads expected.csv and returns every corpus case.
func Cases(t testing.TB) []Case {
	t.Helper()
	dir := Dir(t)
	f, err := os.Open(filepath.Join(dir, "expected.csv"))
	if err != nil {
		t.Fatalf("testcorpus: %v", err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("testcorpus: parse expected.csv: %v", err)
	}
	if len(rows) < 2 {
		t.Fatalf("testcorpus: expected.csv has no cases")
	}
	var cases []Case
	for _, r := range rows[1:] {
		if len(r) < 6 {
			t.Fatalf("testcorpus: short row %q", r)
		}
		cases = append(cases, Case{
			File: r[0], MessageType: r[1], Trigger: r[2], ControlID: r[3],
			ExpectedACK: r[4], Notes: r[5], Path: filepath.Join(dir, r[0]),
		})
	}
	return cases
}

// Read returns the bytes of one corpus file or fails the test.
func Read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(Dir(t), name))
	if err != nil {
		t.Fatalf("testcorpus: %v", err)
	}
	return b
}
