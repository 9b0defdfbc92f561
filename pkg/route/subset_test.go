package route

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

func TestSubsetMatch(t *testing.T) {
	at := time.Date(2026, 11, 26, 11, 55, 0, 0, time.UTC)
	tests := []struct {
		name      string
		want, got any
		ok        bool
		diff      string
	}{
		{name: "equal strings", want: "ICU", got: "ICU", ok: true},
		{name: "different strings", want: "ICU", got: "CCU", diff: `value: want "ICU", got "CCU"`},
		{name: "subset of a mapping", want: map[string]any{"a": "x"}, got: map[string]any{"a": "x", "b": "y"}, ok: true},
		{name: "missing key", want: map[string]any{"a": "x", "c": "z"}, got: map[string]any{"a": "x"}, diff: `value: want key "c", which is missing`},
		{name: "null matches a missing key", want: map[string]any{"c": nil}, got: map[string]any{}, ok: true},
		{name: "null against a value", want: map[string]any{"c": nil}, got: map[string]any{"c": 1}, diff: `c: want null, got 1`},
		{name: "nested paths", want: map[string]any{"visit": map[string]any{"location": map[string]any{"point_of_care": "ICU"}}},
			got:  map[string]any{"visit": map[string]any{"location": map[string]any{"point_of_care": "CCU", "room": "1"}}},
			diff: `visit.location.point_of_care: want "ICU", got "CCU"`},
		{name: "every difference, sorted", want: map[string]any{"b": "1", "a": "2"}, got: map[string]any{"a": "x", "b": "y"},
			diff: "a: want \"2\", got \"x\"\nb: want \"1\", got \"y\""},
		{name: "lists item by item", want: []any{"a", map[string]any{"k": "v"}}, got: []any{"a", map[string]any{"k": "v", "x": 1}}, ok: true},
		{name: "list lengths", want: []any{"a"}, got: []any{"a", "b"}, diff: "value: want 1 items, got 2"},
		{name: "list item", want: []any{"a", "b"}, got: []string{"a", "c"}, diff: `value[1]: want "b", got "c"`},
		{name: "numbers numerically", want: json.Number("36.60"), got: 36.6, ok: true},
		{name: "number and numeric text", want: json.Number("36.6"), got: "36.60", ok: true},
		{name: "decimal and int", want: decimal.RequireFromString("5"), got: int64(5), ok: true},
		{name: "different numbers", want: json.Number("36.6"), got: 36.7, diff: "value: want 36.6, got 36.7"},
		{name: "two texts compare as text", want: "0123", got: "123", diff: `value: want "0123", got "123"`},
		{name: "times as instants", want: at, got: "2026-11-26T12:55:00+01:00", ok: true},
		{name: "time texts as instants", want: "2026-11-26T11:55:00Z", got: "2026-11-26T11:55:00.000+00:00", ok: true},
		{name: "different instants", want: at, got: at.Add(time.Second), diff: "value: want 2026-11-26T11:55:00Z, got 2026-11-26T11:55:01Z"},
		{name: "bools", want: true, got: true, ok: true},
		{name: "bool against text", want: true, got: "true", diff: `value: want true, got "true"`},
		{name: "mapping against text", want: map[string]any{"a": "b"}, got: "x", diff: `value: want a mapping, got "x"`},
		{name: "list against mapping", want: []any{}, got: map[string]any{}, diff: "value: want a list, got a mapping"},
		{name: "raw JSON", want: map[string]any{"value": json.Number("98.6")},
			got: json.RawMessage(`{"value": 98.60, "unit": "[degF]"}`), ok: true},
		{name: "typed Go maps", want: map[string]any{"a": json.Number("1")}, got: map[string]int{"a": 1}, ok: true},
		{name: "huge exponents compare as text", want: json.Number("1e999999999"), got: json.Number("1e999999999"), ok: true},
		{name: "nil against nil", want: nil, got: nil, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, diff := SubsetMatch(tt.want, tt.got)
			if ok != tt.ok || diff != tt.diff {
				t.Errorf("SubsetMatch = %v, %q; want %v, %q", ok, diff, tt.ok, tt.diff)
			}
		})
	}
}
