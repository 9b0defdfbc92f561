package route_test

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/aortahealth/aorta/pkg/clinical"
	"github.com/aortahealth/aorta/pkg/hl7"
	"github.com/aortahealth/aorta/pkg/route"
)

func ExampleParse() {
	src := []byte(`version: 1
timezone: Europe/London
parameters:
  heart_rate:
    unit: /min
    codes: {LN: [8867-4], MDC: [147842]}
routes:
  - name: adt
    match:
      message_type: ADT
      trigger_event: [A01, A02, A03]
      where:
        - PID-3[*].5 == MR
    events: [adt]
    continue: true
  - name: everything
    match: all
`)
	reg := route.Registry{Mappings: []string{"adt", "observations"}}
	cfg, err := route.Parse("routes.yaml", src, reg)
	if err != nil {
		fmt.Println(err)
		return
	}
	m, _ := hl7.Parse([]byte("MSH|^~\\&|EPIC|HOSP|AORTA|HOSP|202611261200||ADT^A01|1|P|2.5\rPID|||123^^^HOSP^MR\r"))
	for _, r := range cfg.Match(m) {
		fmt.Println(r.Name, r.Events, r.Timezone)
	}
	p, _ := cfg.Parameters.Lookup(clinical.Code{System: "MDC", Code: "147842"})
	fmt.Println(p.Name, p.Unit)

	_, err = route.Parse("routes.yaml", []byte("version: 1\nroutes:\n  - name: adt\n    mach: all\n"), reg)
	fmt.Println(err)
	// Output:
	// adt [adt] Europe/London
	// everything [] Europe/London
	// heart_rate /min
	// routes.yaml:3:5: missing required key "match" in route "adt"
	// routes.yaml:4:5: unknown key "mach" in route (did you mean "match"?)
}

func ExampleSubsetMatch() {
	want := map[string]any{"visit": map[string]any{"location": map[string]any{"point_of_care": "ICU"}}}
	got := []byte(`{"visit": {"class": "I", "location": {"point_of_care": "CCU", "room": "01"}}}`)
	ok, diff := route.SubsetMatch(want, json.RawMessage(got))
	fmt.Println(ok)
	fmt.Println(diff)
	// Output:
	// false
	// visit.location.point_of_care: want "ICU", got "CCU"
}

func ExampleAlertRule_LevelFor() {
	src := []byte(`version: 1
routes:
  - {name: vitals, match: {message_type: ORU}, handlers: [news2]}
destinations:
  log: {log: true}
alerts:
  - name: news2
    score: news2
    levels:
      - {severity: emergency, when: total >= 7}
      - {severity: urgent, when: total >= 5}
      - {severity: low-medium, when: single_parameter_3}
    destinations: log
`)
	reg := route.Registry{Handlers: []string{"news2"}, Scores: []string{"news2", "qsofa", "sirs"}}
	cfg, err := route.Parse("routes.yaml", src, reg)
	if err != nil {
		fmt.Println(err)
		return
	}
	rule := cfg.AlertsFor("news2")[0]
	for _, f := range []route.ScoreFacts{
		{Total: 2, Risk: "low"},
		{Total: 3, Risk: "low-medium", SingleParameter3: true},
		{Total: 6, Risk: "medium"},
		{Total: 9, Risk: "high"},
	} {
		if l, ok := rule.LevelFor(f); ok {
			fmt.Printf("total %d: %s (rank %d, when %s)\n", f.Total, l.Severity, l.Rank, l.When)
		} else {
			fmt.Printf("total %d: no alert\n", f.Total)
		}
	}
	fmt.Println(cfg.Scoring.FreshnessOf("heart_rate"), cfg.Scoring.FreshnessOf("lactate"), cfg.Scoring.Statuses)

	_, err = route.Parse("routes.yaml", bytes.Replace(src, []byte("urgent, when: total >= 5"), []byte("urgent, when: total => 5"), 1), reg)
	fmt.Println(err)
	// Output:
	// total 2: no alert
	// total 3: low-medium (rank 1, when single_parameter_3)
	// total 6: urgent (rank 2, when total >= 5)
	// total 9: emergency (rank 3, when total >= 7)
	// 1h0m0s 24h0m0s [F C R]
	// routes.yaml:11:40: when "total => 5": write >= (not =>)
}
