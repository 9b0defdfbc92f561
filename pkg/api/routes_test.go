package api_test

import (
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/aortahealth/aorta/pkg/api"
)

func TestRoutesShowAndReload(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var summary struct {
		File   string `json:"file"`
		Routes []struct {
			Name string `json:"name"`
		} `json:"routes"`
	}
	f.call(api.RoleViewer, http.MethodGet, "/api/v1/routes", "", http.StatusOK, &summary)
	if len(summary.Routes) != 5 || summary.Routes[1].Name != "adt" || !strings.HasSuffix(summary.File, "routes.yaml") {
		t.Errorf("routes %+v, want the five shipped routes", summary)
	}

	var ok struct {
		Reloaded bool `json:"reloaded"`
		Routes   int  `json:"routes"`
	}
	f.call(api.RoleAnalyst, http.MethodPost, "/api/v1/routes/reload", "", http.StatusOK, &ok)
	if !ok.Reloaded || ok.Routes != 5 {
		t.Errorf("reload: %+v", ok)
	}
	f.mu.Lock()
	f.reloadErr = errors.New("routes.yaml:9:5: unknown key \"mach\" in route")
	f.mu.Unlock()
	var refused struct {
		Reloaded bool   `json:"reloaded"`
		Error    string `json:"error"`
	}
	f.call(api.RoleAdmin, http.MethodPost, "/api/v1/routes/reload", "", http.StatusUnprocessableEntity, &refused)
	if refused.Reloaded || !strings.Contains(refused.Error, "routes.yaml:9:5") {
		t.Errorf("refused reload: %+v, want the problem with its position", refused)
	}
	f.mu.Lock()
	reasons := strings.Join(f.reloads, ",")
	f.mu.Unlock()
	if reasons != "api:analyst-token,api:admin-token" {
		t.Errorf("reloads triggered as %q", reasons)
	}
	var audits []string
	f.query(`SELECT array_agg(actor || ' ' || (details->>'reloaded') ORDER BY id) FROM audit_log WHERE action = 'routes.reload'`, nil, &audits)
	if strings.Join(audits, ",") != "analyst-token true,admin-token false" {
		t.Errorf("audit %q, want both reloads with their outcome", audits)
	}
}

func TestRoutesValidate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	shipped, err := os.ReadFile(shippedRoutes)
	if err != nil {
		t.Fatal(err)
	}
	// The shipped file with a webhook whose secret is in an unset
	// variable: validation does not read secrets, as router check.
	withHook := strings.Replace(string(shipped), "destinations:\n  database:",
		"destinations:\n  hook:\n    webhook: {url: 'https://example.org/h', secret_env: AORTA_TEST_NOT_SET}\n  database:", 1)
	withHook = strings.Replace(withHook, "destinations: [database, log]", "destinations: [database, log, hook]", 1)
	if !strings.Contains(withHook, "AORTA_TEST_NOT_SET") || !strings.Contains(withHook, "log, hook]") {
		t.Fatal("could not add a webhook to the shipped routes")
	}
	type problem struct {
		Line    int    `json:"line"`
		Column  int    `json:"column"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	}
	type result struct {
		Valid    bool      `json:"valid"`
		Problems []problem `json:"problems"`
		Routes   int       `json:"routes"`
	}
	tests := []struct {
		name      string
		body      string
		valid     bool
		line, col int
		reason    string
	}{
		{"shipped", string(shipped), true, 0, 0, ""},
		{"larger than a JSON body", string(shipped) + strings.Repeat("# a long comment line, padding the file past 64 KiB\n", 3000), true, 0, 0, ""},
		{"unknown key", "version: 1\nroutes:\n  - name: adt\n    mach: {message_type: ADT}\n    events: [adt]\n", false, 4, 5, `unknown key "mach"`},
		{"unknown mapping", "version: 1\nroutes:\n  - name: adt\n    match: {message_type: ADT}\n    events: [adtt]\n", false, 5, 14, "adtt"},
		{"not YAML", "routes: [\n", false, 0, 0, ""},
		{"webhook secret not read", withHook, true, 0, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got result
			f.call(api.RoleAnalyst, http.MethodPost, "/api/v1/routes/validate", tt.body, http.StatusOK, &got)
			if got.Valid != tt.valid {
				t.Fatalf("valid %v, want %v: %+v", got.Valid, tt.valid, got.Problems)
			}
			if tt.valid {
				if len(got.Problems) != 0 || got.Routes == 0 {
					t.Errorf("valid file: %+v", got)
				}
				return
			}
			if len(got.Problems) == 0 {
				t.Fatal("invalid without problems")
			}
			if tt.line == 0 {
				return
			}
			for _, p := range got.Problems {
				if p.Line == tt.line && p.Column == tt.col && strings.Contains(p.Reason, tt.reason) && strings.HasPrefix(p.Message, "routes.yaml:") {
					return
				}
			}
			t.Errorf("problems %+v, want one at %d:%d saying %q", got.Problems, tt.line, tt.col, tt.reason)
		})
	}
	// The running routes are untouched by validation.
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reloads) != 0 {
		t.Errorf("validation reloaded the routes")
	}
}

// Bodies over the limits are refused with 413 before being read whole.
func TestBodyLimits(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	big := strings.Repeat("#", 1<<20+1)
	code, b := f.do(http.MethodPost, "/api/v1/routes/validate", f.tokens[api.RoleAnalyst], big)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), `"error"`) {
		t.Errorf("1 MiB + 1 routes file: %d %s, want 413", code, b)
	}
	json := `{"scale": 2, "pad": "` + strings.Repeat("x", 70<<10) + `"}`
	if code, b := f.do(http.MethodPut, "/api/v1/patients/P1/spo2-scale", f.tokens[api.RoleClinician], json); code != http.StatusRequestEntityTooLarge {
		t.Errorf("70 KiB JSON body: %d %s, want 413", code, b)
	}
}
