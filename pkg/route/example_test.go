package route_test

import (
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
