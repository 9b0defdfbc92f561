package hl7

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read testdata: %v", err)
	}
	return b
}

func mustParse(t testing.TB, raw []byte) *Message {
	t.Helper()
	m, err := Parse(raw)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

func mustGet(t testing.TB, m *Message, loc string) string {
	t.Helper()
	v, err := m.Get(loc)
	if err != nil {
		t.Fatalf("Get(%q): %v", loc, err)
	}
	return v
}

func asError(t testing.TB, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	return e
}

func countSegments(m *Message) int {
	n := 0
	for range m.Segments() {
		n++
	}
	return n
}
