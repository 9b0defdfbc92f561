package hl7

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// code implements encoding.TextUnmarshaler.
type code struct{ system, value string }

func (c *code) UnmarshalText(b []byte) error {
	s := string(b)
	if !strings.Contains(s, ":") {
		return fmt.Errorf("code %q has no system", s)
	}
	c.system, c.value, _ = strings.Cut(s, ":")
	return nil
}

const unmarshalMsg = "MSH|^~\\&|A|B|C|D|20240301101500||ORU^R01|C1|P|2.5\r" +
	"PID|1||MRN1~MRN2~~MRN4||Doe^Jane||19800215^D|F||||||||||||||||||||||Y\r" +
	"PV1|1|I|||||||||||||||||42|||||||||||||||||||||||||||||||+12.5\r" +
	"OBX|1|NM|A^Alpha||7|||||||||20240301101500.25-0500\r" +
	"OBX|2|ST|B^Beta||LN:1234-5\r" +
	"OBX|3|NM|C^Gamma||\"\"\r"

func TestUnmarshal(t *testing.T) {
	type result struct {
		Code  string     `hl7:"3.1"`
		Name  string     `hl7:"OBX-3.2"`
		Value string     `hl7:"5"`
		When  *time.Time `hl7:"14"`
	}
	type visit struct {
		Class  string  `hl7:"2"`
		Number int64   `hl7:"19"`
		Total  float64 `hl7:"PV1-50"`
	}
	type target struct {
		Type      string     `hl7:"MSH-9.1"`
		Sent      time.Time  `hl7:"MSH-7"`
		MRN       string     `hl7:"PID-3"`
		MRNs      []string   `hl7:"PID-3"`
		Second    []string   `hl7:"PID-3[2]"`
		Family    string     `hl7:"PID-5.1"`
		Birth     time.Time  `hl7:"PID-7"`
		BirthPtr  *time.Time `hl7:"PID-7.1"`
		Dead      bool       `hl7:"PID-30"`
		DeadPtr   *bool      `hl7:"PID-30"`
		Missing   *string    `hl7:"PID-31"`
		SetID     uint8      `hl7:"PID-1"`
		Visit     visit      `hl7:"PV1"`
		VisitPtr  *visit     `hl7:"PV1"`
		NoVisit   *visit     `hl7:"PV2"`
		Results   []result   `hl7:"OBX"`
		ResultPtr []*result  `hl7:"OBX"`
		FirstNum  *int       `hl7:"OBX-5"`
		NullNum   *int       `hl7:"OBX[3]-5"`
		Coded     code       `hl7:"OBX[2]-5"`
		CodedPtr  *code      `hl7:"OBX[2]-5"`
		Ignored   string
		Skipped   string `hl7:"-"`
	}
	m := mustParse(t, []byte(unmarshalMsg))
	var got target
	if err := Unmarshal(m, &got); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if got.Type != "ORU" || got.MRN != "MRN1~MRN2~~MRN4" || got.Family != "Doe" || got.SetID != 1 {
		t.Errorf("simple fields: %+v", got)
	}
	if want := []string{"MRN1", "MRN2", "", "MRN4"}; !slices.Equal(got.MRNs, want) {
		t.Errorf("MRNs = %q, want %q", got.MRNs, want)
	}
	if !slices.Equal(got.Second, []string{"MRN2"}) {
		t.Errorf("Second = %q", got.Second)
	}
	if want := time.Date(2024, 3, 1, 10, 15, 0, 0, time.UTC); !got.Sent.Equal(want) {
		t.Errorf("Sent = %v", got.Sent)
	}
	if want := time.Date(1980, 2, 15, 0, 0, 0, 0, time.UTC); !got.Birth.Equal(want) || got.BirthPtr == nil || !got.BirthPtr.Equal(want) {
		t.Errorf("Birth = %v, BirthPtr = %v (TS with precision component)", got.Birth, got.BirthPtr)
	}
	if !got.Dead || got.DeadPtr == nil || !*got.DeadPtr || got.Missing != nil {
		t.Errorf("Dead = %v, DeadPtr = %v, Missing = %v", got.Dead, got.DeadPtr, got.Missing)
	}
	wantVisit := visit{Class: "I", Number: 42, Total: 12.5}
	if got.Visit != wantVisit || got.VisitPtr == nil || *got.VisitPtr != wantVisit || got.NoVisit != nil {
		t.Errorf("Visit = %+v, VisitPtr = %+v, NoVisit = %+v", got.Visit, got.VisitPtr, got.NoVisit)
	}
	if len(got.Results) != 3 || len(got.ResultPtr) != 3 {
		t.Fatalf("%d results, %d result pointers, want 3", len(got.Results), len(got.ResultPtr))
	}
	r := got.Results[0]
	if got.FirstNum == nil || *got.FirstNum != 7 || got.NullNum != nil {
		t.Errorf("FirstNum = %v, NullNum = %v", got.FirstNum, got.NullNum)
	}
	if r.Code != "A" || r.Name != "Alpha" || r.Value != "7" || r.When == nil {
		t.Errorf("result 0 = %+v", r)
	} else if want := time.Date(2024, 3, 1, 15, 15, 0, 250_000_000, time.UTC); !r.When.Equal(want) {
		t.Errorf("result 0 time = %v, want %v", r.When, want)
	}
	if r := got.Results[2]; r.Value != "" || r.When != nil {
		t.Errorf("explicit null: %+v", r)
	}
	if got.ResultPtr[1].Name != "Beta" {
		t.Errorf("result pointer 1 = %+v", got.ResultPtr[1])
	}
	if got.Coded != (code{"LN", "1234-5"}) || got.CodedPtr == nil || *got.CodedPtr != got.Coded {
		t.Errorf("Coded = %+v, CodedPtr = %+v", got.Coded, got.CodedPtr)
	}
}

func TestUnmarshalNumericKinds(t *testing.T) {
	m := mustParse(t, []byte("MSH|^~\\&|A\rZNM|-5|250|65535|3.25|-0.5|+7|.5\r"))
	var v struct {
		I   int     `hl7:"ZNM-1"`
		I8  int8    `hl7:"ZNM-1"`
		I16 int16   `hl7:"ZNM-2"`
		I32 int32   `hl7:"ZNM-3"`
		I64 int64   `hl7:"ZNM-6"`
		U   uint    `hl7:"ZNM-2"`
		U8  uint8   `hl7:"ZNM-2"`
		U16 uint16  `hl7:"ZNM-3"`
		U32 uint32  `hl7:"ZNM-6"`
		U64 uint64  `hl7:"ZNM-3"`
		F32 float32 `hl7:"ZNM-4"`
		F64 float64 `hl7:"ZNM-5"`
		F   float64 `hl7:"ZNM-7"`
		P   *int    `hl7:"ZNM-6"`
		S   []int   `hl7:"ZNM-1"`
	}
	if err := Unmarshal(m, &v); err != nil {
		t.Fatal(err)
	}
	if v.I != -5 || v.I8 != -5 || v.I16 != 250 || v.I32 != 65535 || v.I64 != 7 || v.U != 250 || v.U8 != 250 ||
		v.U16 != 65535 || v.U32 != 7 || v.U64 != 65535 || v.F32 != 3.25 || v.F64 != -0.5 || v.F != 0.5 ||
		v.P == nil || *v.P != 7 || !slices.Equal(v.S, []int{-5}) {
		t.Errorf("got %+v", v)
	}
}

func TestUnmarshalErrors(t *testing.T) {
	m := mustParse(t, []byte("MSH|^~\\&|A\rZBD|abc|300|-1|NaN|maybe|2024-01-01|1e5|0x10|SECRET\r"))
	tests := []struct {
		name   string
		target any
		loc    string
	}{
		{"int syntax", &struct {
			V int `hl7:"ZBD-1"`
		}{}, "ZBD-1"},
		{"int8 overflow", &struct {
			V int8 `hl7:"ZBD-2"`
		}{}, "ZBD-2"},
		{"negative uint", &struct {
			V uint `hl7:"ZBD-3"`
		}{}, "ZBD-3"},
		{"NaN float", &struct {
			V float64 `hl7:"ZBD-4"`
		}{}, "ZBD-4"},
		{"exponent float", &struct {
			V float64 `hl7:"ZBD-7"`
		}{}, "ZBD-7"},
		{"hex int", &struct {
			V int `hl7:"ZBD-8"`
		}{}, "ZBD-8"},
		{"bool", &struct {
			V bool `hl7:"ZBD-5"`
		}{}, "ZBD-5"},
		{"time", &struct {
			V time.Time `hl7:"ZBD-6"`
		}{}, "ZBD-6"},
		{"time pointer", &struct {
			V *time.Time `hl7:"ZBD-6"`
		}{}, "ZBD-6"},
		{"int slice", &struct {
			V []int `hl7:"ZBD-1"`
		}{}, "ZBD-1[1]"},
		{"text unmarshaler", &struct {
			V code `hl7:"ZBD-9"`
		}{}, "ZBD-9"},
		{"unsupported map", &struct {
			V map[string]string `hl7:"ZBD-1"`
		}{}, "ZBD-1"},
		{"unsupported interface", &struct {
			V any `hl7:"ZBD-1"`
		}{}, "ZBD-1"},
		{"unsupported nested slice", &struct {
			V [][]string `hl7:"ZBD-1"`
		}{}, "ZBD-1"},
		{"unsupported chan", &struct {
			V chan int `hl7:"ZBD-1"`
		}{}, "ZBD-1"},
		{"bad tag", &struct {
			V string `hl7:"zbd-1"`
		}{}, ""},
		{"tag without field", &struct {
			V string `hl7:"ZBD"`
		}{}, "ZBD"},
		{"struct with field tag", &struct {
			V struct {
				X string `hl7:"1"`
			} `hl7:"ZBD-1"`
		}{}, "ZBD-1"},
		{"unexported", &struct {
			v string `hl7:"ZBD-1"`
		}{}, ""},
		{"nested segment struct", &struct {
			V struct {
				W struct {
					X string `hl7:"1"`
				} `hl7:"PID"`
			} `hl7:"ZBD"`
		}{}, ""},
		{"indexed slice of segments", &struct {
			V []struct {
				X string `hl7:"1"`
			} `hl7:"ZBD[1]"`
		}{}, "ZBD[1]"},
		{"relative tag naming another segment", &struct {
			V struct {
				X string `hl7:"PID-1"`
			} `hl7:"ZBD"`
		}{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("Unmarshal panicked: %v", r)
					}
				}()
				err = Unmarshal(m, tt.target)
			}()
			if err == nil {
				t.Fatal("no error")
			}
			var u *UnmarshalError
			if !errors.As(err, &u) {
				t.Fatalf("error %v (%T) is not an *UnmarshalError", err, err)
			}
			if got := u.Location.String(); got != tt.loc {
				t.Errorf("Location = %q, want %q (%v)", got, tt.loc, err)
			}
			for _, value := range []string{"abc", "SECRET", "maybe", "2024-01-01", "NaN"} {
				if strings.Contains(err.Error(), value) {
					t.Errorf("error %q quotes the value", err)
				}
			}
			if u.Field == "" || !strings.Contains(err.Error(), u.Field) {
				t.Errorf("error %q does not name the struct field", err)
			}
		})
	}
}

func TestUnmarshalTargets(t *testing.T) {
	m := mustParse(t, []byte("MSH|^~\\&|A\r"))
	var s struct{}
	var n int
	for name, target := range map[string]any{"nil": nil, "non-pointer": s, "nil pointer": (*struct{})(nil), "pointer to int": &n} {
		if err := Unmarshal(m, target); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := Unmarshal(nil, &s); err == nil {
		t.Errorf("nil message: no error")
	}
	// Huge values must not wrap around.
	big := mustParse(t, []byte("MSH|^~\\&|A\rZZZ|99999999999999999999999|1"+strings.Repeat("0", 400)+"\r"))
	var v struct {
		I int64   `hl7:"ZZZ-1"`
		F float64 `hl7:"ZZZ-2"`
	}
	err := Unmarshal(big, &v)
	if err == nil {
		t.Errorf("overflowing int: no error")
	}
	var w struct {
		F float32 `hl7:"ZZZ-2"`
	}
	if err := Unmarshal(big, &w); err == nil && !math.IsInf(float64(w.F), 0) {
		t.Errorf("overflowing float: no error and %v", w.F)
	}
}

func TestUnmarshalResetsAbsentValues(t *testing.T) {
	m := mustParse(t, []byte("MSH|^~\\&|A\rPID|1\r"))
	type seg struct {
		X string `hl7:"1"`
	}
	one := 1
	v := struct {
		S    string   `hl7:"PID-5"`
		N    *int     `hl7:"ZZZ-1"`
		L    []string `hl7:"ZZZ-1"`
		Seg  seg      `hl7:"ZZZ"`
		SegP *seg     `hl7:"ZZZ"`
		Segs []seg    `hl7:"ZZZ"`
	}{"old", &one, []string{"old"}, seg{"old"}, &seg{"old"}, []seg{{"old"}}}
	if err := Unmarshal(m, &v); err != nil {
		t.Fatal(err)
	}
	if v.S != "" || v.N != nil || v.L != nil || v.Seg.X != "" || v.SegP != nil || v.Segs != nil {
		t.Errorf("absent values kept old contents: %+v", v)
	}
}
