package logline

import "testing"

func TestFirstString(t *testing.T) {
	for _, tc := range []struct{ line, key, want string }{
		{`{"msg":"ready","mllp_addr":"127.0.0.1:2575"}`, "mllp_addr", "127.0.0.1:2575"},
		{`{"mllp_addr":"127.0.0.1:41000","mllp_addr":"127.0.0.1:0"}`, "mllp_addr", "127.0.0.1:41000"},
		{`{"nested":{"mllp_addr":"x"}}`, "mllp_addr", ""},
		{`{"mllp_addr":5,"mllp_addr":"y"}`, "mllp_addr", "y"},
		{`{"msg":"ready"}`, "mllp_addr", ""},
		{`not json`, "mllp_addr", ""},
		{`["mllp_addr","x"]`, "mllp_addr", ""},
		{`{"mllp_addr":"x"`, "mllp_addr", "x"},
	} {
		if got := FirstString([]byte(tc.line), tc.key); got != tc.want {
			t.Errorf("FirstString(%s, %q) = %q, want %q", tc.line, tc.key, got, tc.want)
		}
	}
}
