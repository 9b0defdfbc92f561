package route

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/aortahealth/aorta/pkg/hl7"
)

// testRegistry is the registry the tests load routes with.
var testRegistry = Registry{
	Mappings: []string{"adt", "observations"},
	Handlers: []string{"news2", "qsofa", "sirs"},
	Scores:   []string{"news2", "qsofa", "sirs"},
}

// exampleSecretEnv is the variable testdata/example.yaml reads its
// rapid-response webhook key from; TestMain sets it.
const (
	exampleSecretEnv = "AORTA_RRT_WEBHOOK_SECRET"
	exampleSecret    = "example-rrt-hmac-key-0123456789"
)

func TestMain(m *testing.M) {
	os.Setenv(exampleSecretEnv, exampleSecret)
	os.Exit(m.Run())
}

// errorLines returns the lines of an error, or nil.
func errorLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

// message builds an HL7 message from segments.
func message(t testing.TB, segments ...string) *hl7.Message {
	t.Helper()
	m, err := hl7.Parse([]byte(strings.Join(segments, "\r") + "\r"))
	if err != nil {
		t.Fatalf("hl7.Parse: %v", err)
	}
	return m
}

// mustParse parses a routes file that must be valid.
func mustParse(t testing.TB, src string) *Config {
	t.Helper()
	c, err := Parse("routes.yaml", []byte(src), testRegistry)
	if err != nil {
		t.Fatalf("Parse: unexpected error:\n%v", err)
	}
	return c
}

// asErrors returns the problems of an error from Parse.
func asErrors(t testing.TB, err error) []*Error {
	t.Helper()
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	var e *Error
	if errors.As(err, &e) {
		return []*Error{e}
	}
	t.Fatalf("error %v (%T) is neither *Error nor Errors", err, err)
	return nil
}

// parseRaw parses raw message bytes.
func parseRaw(t testing.TB, raw []byte) *hl7.Message {
	t.Helper()
	m, err := hl7.Parse(raw)
	if err != nil {
		t.Fatalf("hl7.Parse: %v", err)
	}
	return m
}
