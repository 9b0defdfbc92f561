package clinical

import (
	"errors"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

func defaultTable(t testing.TB) *Table {
	t.Helper()
	tab, err := NewTable(DefaultParameters())
	if err != nil {
		t.Fatalf("NewTable(DefaultParameters()): %v", err)
	}
	return tab
}

func param(t testing.TB, name string) *Parameter {
	t.Helper()
	p, ok := defaultTable(t).Parameter(name)
	if !ok {
		t.Fatalf("no parameter %q", name)
	}
	return p
}

func TestNormalizeNumeric(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		param     string
		value     string
		unit      string
		want      string // exact decimal text, scale kept
		wantUnit  string
		wantErr   error
		errSubstr string
	}{
		{"celsius kept exactly", Temperature, "35.05", "Cel", "35.05", "Cel", nil, ""},
		{"celsius by MDC unit code", Temperature, "36.6", "268192", "36.6", "Cel", nil, ""},
		{"trailing zero scale kept", Temperature, "38.0", "Cel", "38.0", "Cel", nil, ""},
		{"fahrenheit 100.4 is 38.0", Temperature, "100.4", "[degF]", "38.0", "Cel", nil, ""},
		{"fahrenheit 96.9 is 36.0555... rounds up to 36.1", Temperature, "96.9", "[degF]", "36.1", "Cel", nil, ""},
		{"fahrenheit 96.8 is exactly 36.0", Temperature, "96.8", "[degF]", "36.0", "Cel", nil, ""},
		{"fahrenheit exact tie 96.89 is 36.05 rounds half-up to 36.1", Temperature, "96.89", "[degF]", "36.1", "Cel", nil, ""},
		{"fahrenheit just below a tie rounds down", Temperature, "96.88", "[degF]", "36.0", "Cel", nil, ""},
		{"fahrenheit by MDC unit code", Temperature, "98.6", "266560", "37.0", "Cel", nil, ""},
		{"fahrenheit unit case-insensitive", Temperature, "102.2", "[DEGF]", "39.0", "Cel", nil, ""},
		{"fahrenheit 95 is 35.0", Temperature, "95", "[degF]", "35.0", "Cel", nil, ""},
		{"fahrenheit below freezing rounds towards +inf on a tie", Temperature, "31.91", "[degF]", "0.0", "Cel", nil, ""},
		{"spo2 between bands", SpO2, "95.5", "%", "95.5", "%", nil, ""},
		{"spo2 by MDC percent", SpO2, "97", "262688", "97", "%", nil, ""},
		{"leading plus accepted", HeartRate, "+72", "/min", "72", "/min", nil, ""},
		{"blanks around value and unit", HeartRate, " 72 ", " {beat}/min ", "72", "/min", nil, ""},
		{"heart rate MDC unit", HeartRate, "60", "264864", "60", "/min", nil, ""},
		{"zero is a reading", RespiratoryRate, "0", "/min", "0", "/min", nil, ""},
		{"leading decimal point", Lactate, ".5", "mmol/L", "0.5", "mmol/L", nil, ""},
		{"trailing decimal point", Lactate, "2.", "mmol/L", "2", "mmol/L", nil, ""},
		{"negative number parses", Lactate, "-1.5", "mmol/L", "-1.5", "mmol/L", nil, ""},
		{"creatinine mg/dL to umol/L", Creatinine, "1.2", "mg/dL", "106.08", "umol/L", nil, ""},
		{"creatinine mg/dl lower case", Creatinine, "1", "mg/dl", "88.4", "umol/L", nil, ""},
		{"creatinine micro sign", Creatinine, "97", "\u00b5mol/L", "97", "umol/L", nil, ""},
		{"creatinine greek mu", Creatinine, "97", "\u03bcmol/L", "97", "umol/L", nil, ""},
		{"wbc cells per microlitre scaled", WBC, "105600", "{cells}/uL", "105.600", "10*9/L", nil, ""},
		{"wbc 10*3/uL same", WBC, "12.0", "10*3/uL", "12.0", "10*9/L", nil, ""},
		{"gcs without unit", GCS, "15", "", "15", "{score}", nil, ""},
		{"bp by MDC unit", SystolicBP, "120", "266016", "120", "mm[Hg]", nil, ""},
		{"paco2 UCUM", PaCO2, "31.9", "mm[Hg]", "31.9", "mm[Hg]", nil, ""},
		{"o2 flow MDC unit", O2Flow, "2", "265216", "2", "L/min", nil, ""},
		{"fio2 percent", FiO2, "21", "%", "21", "%", nil, ""},

		{"comparator less than", Lactate, "<5", "mmol/L", "", "", ErrComparator, "comparison"},
		{"comparator greater than", SystolicBP, ">100", "mm[Hg]", "", "", ErrComparator, "comparison"},
		{"comparator less or equal", SystolicBP, "<=90", "mm[Hg]", "", "", ErrComparator, ""},
		{"empty value", HeartRate, "", "/min", "", "", ErrNoValue, "no value"},
		{"text is not a number", HeartRate, "seventy", "/min", "", "", ErrNotNumber, "not a number"},
		{"NaN rejected", HeartRate, "NaN", "/min", "", "", ErrNotNumber, ""},
		{"Inf rejected", HeartRate, "Inf", "/min", "", "", ErrNotNumber, ""},
		{"exponent rejected", HeartRate, "7e1", "/min", "", "", ErrNotNumber, ""},
		{"two points rejected", Temperature, "37.2.1", "Cel", "", "", ErrNotNumber, ""},
		{"thousands separator rejected", WBC, "1,000", "/uL", "", "", ErrNotNumber, ""},
		{"sign alone rejected", HeartRate, "+", "/min", "", "", ErrNotNumber, ""},
		{"point alone rejected", HeartRate, ".", "/min", "", "", ErrNotNumber, ""},
		{"huge number rejected", HeartRate, strings.Repeat("9", 200), "/min", "", "", ErrNotNumber, ""},
		{"unknown unit", SystolicBP, "120", "mmHg", "", "", ErrUnknownUnit, `unit "mmHg" not accepted`},
		{"wrong dimension", Temperature, "37", "mm[Hg]", "", "", ErrUnknownUnit, "accepted:"},
		{"empty unit not declared", HeartRate, "72", "", "", "", ErrUnknownUnit, "empty unit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := param(t, tt.param)
			got, err := p.Normalize(tt.value, tt.unit)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Normalize(%q, %q) error = %v, want %v", tt.value, tt.unit, err, tt.wantErr)
				}
				var ve *ValueError
				if !errors.As(err, &ve) {
					t.Fatalf("error %T is not a *ValueError", err)
				}
				if !strings.Contains(err.Error(), tt.errSubstr) {
					t.Errorf("error %q does not mention %q", err, tt.errSubstr)
				}
				if tt.value != "" && len(tt.value) > 1 && strings.Contains(err.Error(), tt.value) {
					t.Errorf("error %q echoes the value", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Normalize(%q, %q): %v", tt.value, tt.unit, err)
			}
			if got.Kind != Numeric || got.String() != tt.want || got.Unit != tt.wantUnit {
				t.Errorf("Normalize(%q, %q) = %s %q (%s), want %s %q", tt.value, tt.unit, got, got.Unit, got.Kind, tt.want, tt.wantUnit)
			}
			if !got.Numeric.Equal(decimal.RequireFromString(tt.want)) {
				t.Errorf("decimal %s != %s", got.Numeric, tt.want)
			}
		})
	}
}

// TestExactComparisons pins the decimal behaviour NEWS2 banding relies on:
// values between printed bands compare exactly, without float surprises.
func TestExactComparisons(t *testing.T) {
	t.Parallel()
	temp := param(t, Temperature)
	v, err := temp.Normalize("35.05", "Cel")
	if err != nil {
		t.Fatal(err)
	}
	if !v.Numeric.GreaterThan(decimal.RequireFromString("35.0")) || !v.Numeric.LessThan(decimal.RequireFromString("35.1")) {
		t.Errorf("35.05 is not strictly between 35.0 and 35.1: %s", v)
	}
	spo2 := param(t, SpO2)
	v, err = spo2.Normalize("95.5", "%")
	if err != nil {
		t.Fatal(err)
	}
	if !v.Numeric.GreaterThan(decimal.NewFromInt(95)) || !v.Numeric.LessThan(decimal.NewFromInt(96)) {
		t.Errorf("95.5 is not strictly between 95 and 96: %s", v)
	}
	// 96.9 °F is 36.0555… °C: rounded half-up to 0.1 it is 36.1, which
	// scores 0 in NEWS2 where 36.0 would score 1.
	exact := decimal.RequireFromString("96.9").Sub(decimal.NewFromInt(32)).Mul(decimal.NewFromInt(5)).Div(decimal.NewFromInt(9))
	if !strings.HasPrefix(exact.String(), "36.0555") {
		t.Fatalf("test arithmetic: %s", exact)
	}
	v, err = temp.Normalize("96.9", "[degF]")
	if err != nil {
		t.Fatal(err)
	}
	if !v.Numeric.Equal(decimal.RequireFromString("36.1")) {
		t.Errorf("96.9 °F = %s °C, want 36.1", v)
	}
	// 0.1 + 0.2 = 0.3 exactly, unlike float64.
	a, _ := ParseNumber("0.1")
	b, _ := ParseNumber("0.2")
	if !a.Add(b).Equal(decimal.RequireFromString("0.3")) {
		t.Error("0.1 + 0.2 != 0.3")
	}
}

func TestFahrenheitHalfUpEveryHundredth(t *testing.T) {
	t.Parallel()
	// Compare the exact rational rounding with an independent integer
	// computation over the clinical range: hundredths of a degree F from
	// 80.00 to 113.00. c*10 = (F-32)*50/9 = (h-3200)*50/900 with h the
	// hundredths of F; half-up: floor((2*(h-3200)*50 + 900) / 1800).
	temp := param(t, Temperature)
	for h := int64(8000); h <= 11300; h++ {
		f := decimal.New(h, -2)
		got, err := temp.Normalize(f.StringFixed(2), "[degF]")
		if err != nil {
			t.Fatal(err)
		}
		num := 2*(h-3200)*50 + 900
		tenths := num / 1800
		if num%1800 < 0 {
			tenths--
		}
		want := decimal.New(tenths, -1)
		if !got.Numeric.Equal(want) {
			t.Fatalf("%s °F = %s °C, want %s", f.StringFixed(2), got, want)
		}
	}
}

func TestNormalizeCoded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		param   string
		value   string
		want    string
		wantErr error
	}{
		{"SNOMED alert", Consciousness, "248234008", Alert, nil},
		{"SNOMED new confusion", Consciousness, "130987000", NewConfusion, nil},
		{"SNOMED voice", Consciousness, "255373000", Voice, nil},
		{"SNOMED pain", Consciousness, "450847001", Pain, nil},
		{"SNOMED unresponsive", Consciousness, "422768004", Unresponsive, nil},
		{"letter A", Consciousness, "A", Alert, nil},
		{"letter c lower case", Consciousness, "c", NewConfusion, nil},
		{"letter v lower case", Consciousness, "v", Voice, nil},
		{"letter P", Consciousness, "P", Pain, nil},
		{"letter u lower case with blanks", Consciousness, " u ", Unresponsive, nil},
		{"unit ignored for coded", Consciousness, "A", Alert, nil},
		{"unknown answer", Consciousness, "X", "", ErrUnknownAnswer},
		{"word not accepted", Consciousness, "Alert", "", ErrUnknownAnswer},
		{"empty answer", Consciousness, "", "", ErrNoValue},
		{"on oxygen", OnOxygen, "371825009", OnOxygenYes, nil},
		{"room air", OnOxygen, "722742002", OnAir, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := param(t, tt.param).Normalize(tt.value, "ignored")
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error = %v, want %v", err, tt.wantErr)
				}
				if tt.value != "" && strings.Contains(err.Error(), tt.value) {
					t.Errorf("error %q echoes the value", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Kind != Coded || got.Coded != tt.want || got.String() != tt.want {
				t.Errorf("got %+v, want %q", got, tt.want)
			}
		})
	}
}

func TestParameterValidate(t *testing.T) {
	t.Parallel()
	one := decimal.NewFromInt(1)
	tests := []struct {
		name    string
		p       Parameter
		wantErr string
	}{
		{"valid numeric", Parameter{Name: "x", Kind: Numeric, Unit: "u", Units: map[string]Conversion{"u": {}}}, ""},
		{"valid coded", Parameter{Name: "x", Kind: Coded, Answers: map[string]string{"a": "A"}}, ""},
		{"no name", Parameter{Kind: Coded, Answers: map[string]string{"a": "A"}}, "without a name"},
		{"no kind", Parameter{Name: "x"}, "kind must be"},
		{"no canonical unit", Parameter{Name: "x", Kind: Numeric, Units: map[string]Conversion{"u": {}}}, "canonical unit"},
		{"no units", Parameter{Name: "x", Kind: Numeric, Unit: "u"}, "at least one accepted unit"},
		{"unknown func", Parameter{Name: "x", Kind: Numeric, Unit: "u", Units: map[string]Conversion{"u": {Func: "kelvin"}}}, "unknown conversion function"},
		{"func with a factor", Parameter{Name: "x", Kind: Numeric, Unit: "u", Units: map[string]Conversion{"u": {Func: Fahrenheit, Factor: decimal.NewFromInt(2)}}}, "cannot be combined"},
		{"func with an offset", Parameter{Name: "x", Kind: Numeric, Unit: "u", Units: map[string]Conversion{"u": {Func: Fahrenheit, Offset: one}}}, "cannot be combined"},
		{"func with the identity factor", Parameter{Name: "x", Kind: Numeric, Unit: "u", Units: map[string]Conversion{"u": {Func: Fahrenheit, Factor: one}}}, ""},
		{"case variants differ", Parameter{Name: "x", Kind: Numeric, Unit: "u", Units: map[string]Conversion{"mg": {}, "MG": {Factor: decimal.NewFromInt(2)}}}, "differ only in letter case"},
		{"case variants agree", Parameter{Name: "x", Kind: Numeric, Unit: "u", Units: map[string]Conversion{"mg": {}, "MG": {Factor: one}}}, ""},
		{"coded without answers", Parameter{Name: "x", Kind: Coded}, "at least one answer"},
		{"code without system", Parameter{Name: "x", Kind: Coded, Answers: map[string]string{"a": "A"}, Codes: []Code{{Code: "1"}}}, "coding system and a code"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.p.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNormalizeMisconfiguredParameter(t *testing.T) {
	t.Parallel()
	p := &Parameter{Name: "x", Kind: Numeric, Unit: "u", Units: map[string]Conversion{"u": {Func: "kelvin"}}}
	if _, err := p.Normalize("1", "u"); !errors.Is(err, ErrParameter) {
		t.Errorf("unknown func: error = %v, want ErrParameter", err)
	}
	p = &Parameter{Name: "x"}
	if _, err := p.Normalize("1", "u"); !errors.Is(err, ErrParameter) {
		t.Errorf("no kind: error = %v, want ErrParameter", err)
	}
}

func TestLinearConversionWithOffset(t *testing.T) {
	t.Parallel()
	p := &Parameter{Name: "x", Kind: Numeric, Unit: "Cel", Units: map[string]Conversion{
		"K": {Offset: decimal.RequireFromString("-273.15")},
	}}
	v, err := p.Normalize("310.15", "K")
	if err != nil {
		t.Fatal(err)
	}
	if v.String() != "37.00" {
		t.Errorf("310.15 K = %s, want 37.00", v)
	}
}

func TestUnitErrorQuotesLongUnitsShortly(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("\u00b5", 60)
	_, err := param(t, HeartRate).Normalize("72", long)
	if !errors.Is(err, ErrUnknownUnit) {
		t.Fatal(err)
	}
	if strings.Contains(err.Error(), long) || !strings.Contains(err.Error(), "…") {
		t.Errorf("long unit not shortened: %q", err)
	}
}
