package route

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// maxExponent bounds the decimal exponent of numbers SubsetMatch compares
// numerically; comparing 1e999999999 with 1 would need a billion-digit
// number. Larger exponents compare as text.
const maxExponent = 400

// SubsetMatch reports whether got contains want: every key of a wanted
// mapping must be in got's mapping with a matching value (got may have
// more keys; a wanted null also matches a missing key), lists must have
// the same length with matching items in order, numbers compare
// numerically (36.6, "36.60" and json.Number("36.6") are equal, so
// decimals serialised as JSON strings still match), times compare as
// instants (2026-11-26T11:55:00Z equals 2026-11-26T12:55:00+01:00, as
// time.Time or RFC 3339 text), and other values must be equal.
//
// Values may be what encoding/json produces (with or without UseNumber),
// Go maps with string keys, slices, time.Time, decimal.Decimal, or a
// json.RawMessage, which is decoded first. diff lists each difference on a
// line of its own, by path ("payload.visit.location.point_of_care: want
// "ICU", got "CCU""), in a stable order; it is "" when ok.
func SubsetMatch(want, got any) (ok bool, diff string) {
	var diffs []string
	subset(&diffs, "", want, got)
	if len(diffs) == 0 {
		return true, ""
	}
	return false, strings.Join(diffs, "\n")
}

func subset(diffs *[]string, path string, want, got any) {
	want, got = decodeRaw(want), decodeRaw(got)
	report := func(format string, args ...any) {
		p := path
		if p == "" {
			p = "value"
		}
		*diffs = append(*diffs, p+": "+fmt.Sprintf(format, args...))
	}
	if want == nil {
		if got != nil {
			report("want null, got %s", show(got))
		}
		return
	}
	if wm, ok := asMap(want); ok {
		gm, ok := asMap(got)
		if !ok {
			report("want a mapping, got %s", show(got))
			return
		}
		keys := make([]string, 0, len(wm))
		for k := range wm {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			gv, present := gm[k]
			if !present {
				if wm[k] != nil {
					report("want key %q, which is missing", k)
				}
				continue
			}
			subset(diffs, join(path, k), wm[k], gv)
		}
		return
	}
	if ws, ok := asSlice(want); ok {
		gs, ok := asSlice(got)
		if !ok {
			report("want a list, got %s", show(got))
			return
		}
		if len(ws) != len(gs) {
			report("want %d items, got %d", len(ws), len(gs))
		}
		base := path
		if base == "" {
			base = "value"
		}
		for i := range min(len(ws), len(gs)) {
			subset(diffs, base+"["+strconv.Itoa(i)+"]", ws[i], gs[i])
		}
		return
	}
	if wt, ok := asTime(want); ok {
		if gt, ok := asTime(got); ok {
			if !wt.Equal(gt) {
				report("want %s, got %s", wt.Format(time.RFC3339Nano), gt.Format(time.RFC3339Nano))
			}
			return
		}
	}
	// Numeric text compares numerically with a number, but two texts
	// compare as text: patient "0123" is not patient "123".
	_, wText := want.(string)
	_, gText := got.(string)
	if wn, ok := asNumber(want); ok && !(wText && gText) {
		if gn, ok := asNumber(got); ok {
			if !wn.Equal(gn) {
				report("want %s, got %s", show(want), show(got))
			}
			return
		}
	}
	if !scalarEqual(want, got) {
		report("want %s, got %s", show(want), show(got))
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// decodeRaw decodes JSON given as json.RawMessage, keeping numbers exact.
func decodeRaw(v any) any {
	raw, ok := v.(json.RawMessage)
	if !ok {
		return v
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return string(raw)
	}
	return out
}

func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case nil:
		return nil, false
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String {
		return nil, false
	}
	out := make(map[string]any, rv.Len())
	for it := rv.MapRange(); it.Next(); {
		out[it.Key().String()] = it.Value().Interface()
	}
	return out, true
}

func asSlice(v any) ([]any, bool) {
	switch s := v.(type) {
	case []any:
		return s, true
	case nil, []byte, string:
		return nil, false
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return nil, false
	}
	out := make([]any, rv.Len())
	for i := range out {
		out[i] = rv.Index(i).Interface()
	}
	return out, true
}

func asTime(v any) (time.Time, bool) {
	switch t := v.(type) {
	case time.Time:
		return t, true
	case *time.Time:
		if t != nil {
			return *t, true
		}
	case string:
		// Only text that is plainly a date and time, so that codes and
		// names never compare as instants by accident.
		if len(t) >= 20 && t[4] == '-' && t[10] == 'T' {
			if p, err := time.Parse(time.RFC3339Nano, t); err == nil {
				return p, true
			}
		}
	}
	return time.Time{}, false
}

// asNumber reads numbers and numeric text as exact decimals.
func asNumber(v any) (decimal.Decimal, bool) {
	switch n := v.(type) {
	case json.Number:
		return parseNumber(string(n))
	case string:
		return parseNumber(strings.TrimSpace(n))
	case decimal.Decimal:
		return n, true
	case *decimal.Decimal:
		if n != nil {
			return *n, true
		}
	case int:
		return decimal.NewFromInt(int64(n)), true
	case int8:
		return decimal.NewFromInt(int64(n)), true
	case int16:
		return decimal.NewFromInt(int64(n)), true
	case int32:
		return decimal.NewFromInt(int64(n)), true
	case int64:
		return decimal.NewFromInt(n), true
	case uint:
		return decimal.NewFromUint64(uint64(n)), true
	case uint8:
		return decimal.NewFromUint64(uint64(n)), true
	case uint16:
		return decimal.NewFromUint64(uint64(n)), true
	case uint32:
		return decimal.NewFromUint64(uint64(n)), true
	case uint64:
		return decimal.NewFromUint64(n), true
	case float32:
		return fromFloat(float64(n))
	case float64:
		return fromFloat(n)
	}
	return decimal.Decimal{}, false
}

func fromFloat(f float64) (decimal.Decimal, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return decimal.Decimal{}, false
	}
	// The shortest text that reads back as f: 36.6, not 36.600000000000001.
	return parseNumber(strconv.FormatFloat(f, 'g', -1, 64))
}

func parseNumber(s string) (decimal.Decimal, bool) {
	if s == "" || len(s) > 100 {
		return decimal.Decimal{}, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E') {
			return decimal.Decimal{}, false
		}
	}
	d, err := decimal.NewFromString(s)
	if err != nil || d.Exponent() > maxExponent || d.Exponent() < -maxExponent {
		return decimal.Decimal{}, false
	}
	return d, true
}

func scalarEqual(want, got any) bool {
	switch w := want.(type) {
	case string:
		g, ok := got.(string)
		return ok && g == w
	case bool:
		g, ok := got.(bool)
		return ok && g == w
	}
	return reflect.DeepEqual(want, got)
}

// show formats a value for a difference.
func show(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(x)
	case time.Time:
		return x.Format(time.RFC3339Nano)
	case json.Number:
		return string(x)
	case decimal.Decimal:
		return x.String()
	}
	if _, ok := asMap(v); ok {
		return "a mapping"
	}
	if s, ok := asSlice(v); ok {
		return fmt.Sprintf("a list of %d", len(s))
	}
	return fmt.Sprint(v)
}
