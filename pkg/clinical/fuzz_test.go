package clinical

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

// quoted matches the quoted units in an error text.
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

func FuzzNormalize(f *testing.F) {
	for _, s := range []struct{ v, u string }{
		{"35.05", "Cel"}, {"100.4", "[degF]"}, {"96.9", "266560"}, {"+72", "/min"}, {"<5", "mmol/L"},
		{">100", "mm[Hg]"}, {"NaN", "%"}, {"1e9", "%"}, {"", ""}, {"A", ""}, {"248234008", ""},
		{"1.2", "mg/dl"}, {"-459.67", "[degF]"}, {"99999999999999999999999999999999999999", "[degF]"},
		{".", "%"}, {"+-1", "%"}, {"١٢", "%"}, {"12", "\u00b5mol/L"},
	} {
		f.Add(s.v, s.u)
	}
	params := DefaultParameters()
	f.Fuzz(func(t *testing.T, value, unit string) {
		for _, p := range params {
			v, err := p.Normalize(value, unit)
			if err != nil {
				var ve *ValueError
				if !errors.As(err, &ve) {
					t.Fatalf("%s: error %T is not a *ValueError", p.Name, err)
				}
				// Units are quoted in the message and may be listed; the
				// rest must never contain the value.
				msg := quoted.ReplaceAllString(err.Error(), "")
				msg = strings.ReplaceAll(msg, p.Name, "")
				if v := strings.TrimSpace(value); len(v) > 3 && strings.Contains(msg, v) {
					t.Fatalf("%s: error %q echoes the value", p.Name, err)
				}
				continue
			}
			switch p.Kind {
			case Numeric:
				if v.Kind != Numeric || v.Unit != p.Unit {
					t.Fatalf("%s: got %+v", p.Name, v)
				}
				// The text form parses back to the same number. (Not with
				// ParseNumber: a conversion may lengthen a number past the
				// input bound.)
				back, err := decimal.NewFromString(v.String())
				if err != nil || !back.Equal(v.Numeric) || strings.ContainsAny(v.String(), "eE") {
					t.Fatalf("%s: %q does not round-trip: %v", p.Name, v.String(), err)
				}
			case Coded:
				if v.Kind != Coded || v.Coded == "" {
					t.Fatalf("%s: got %+v", p.Name, v)
				}
			}
		}
	})
}
