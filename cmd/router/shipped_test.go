package main

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aortahealth/aorta/pkg/clinical"
	"github.com/aortahealth/aorta/pkg/route"
	"github.com/aortahealth/aorta/pkg/router"
	"github.com/aortahealth/aorta/pkg/store"
)

// The files Aorta ships at the root of the repository. CI runs these tests,
// so the default routes always lint, always pass their route tests and
// always carry the clinical reference tables.
const (
	shippedRoutes = "../../routes.yaml"
	shippedTests  = "../../routes.test.yaml"
)

// loadShipped loads the shipped routes.yaml as `router check` does, failing
// with every problem listed.
func loadShipped(t *testing.T) *route.Config {
	t.Helper()
	c, err := route.Load(shippedRoutes, registry())
	if err != nil {
		t.Fatalf("%s does not load:\n%s", shippedRoutes, problems(err))
	}
	return c
}

// problems renders a load error one problem per line.
func problems(err error) string {
	var list route.Errors
	if !errors.As(err, &list) || len(list) == 0 {
		return "  " + err.Error()
	}
	var b strings.Builder
	for _, e := range list {
		b.WriteString("  " + e.Error() + "\n")
	}
	return b.String()
}

func TestShippedRoutesCheck(t *testing.T) {
	c := loadShipped(t)
	if len(c.Routes) == 0 {
		t.Fatalf("%s has no routes", shippedRoutes)
	}
	// runCheck is what CI and analysts run; it must agree.
	if err := runCheck([]string{shippedRoutes}); err != nil {
		t.Errorf("router check %s: %v", shippedRoutes, err)
	}
}

// The shipped routes handle these families, in this order; a change here
// is a change of the defaults every site starts from, so make it on
// purpose.
func TestShippedRoutesOrder(t *testing.T) {
	c := loadShipped(t)
	var got []string
	for _, r := range c.Routes {
		got = append(got, r.Name)
		if r.Continue {
			t.Errorf("route %s continues: shipped routes map each message once", r.Name)
		}
	}
	want := []string{"not-production", "adt", "device-vitals", "nursing-vitals", "lab-results"}
	if !slices.Equal(got, want) {
		t.Errorf("routes %v, want %v", got, want)
	}
	if c.Timezone != time.UTC {
		t.Errorf("timezone %v, want UTC as the neutral shipped default", c.Timezone)
	}
}

// routes.yaml carries the reference tables of clinical.DefaultParameters:
// every parameter, equal (codes, units and conversions, answers), and
// nothing else.
func TestShippedParametersAreDefaults(t *testing.T) {
	c := loadShipped(t)
	want := clinical.DefaultParameters()
	var names []string
	for _, p := range want {
		names = append(names, p.Name)
		got, ok := c.Parameters.Parameter(p.Name)
		if !ok {
			t.Errorf("parameter %s is missing from %s", p.Name, shippedRoutes)
			continue
		}
		if !got.Equal(p) {
			t.Errorf("parameter %s differs from clinical.DefaultParameters():\n got  %s\n want %s", p.Name, describeParameter(got), describeParameter(p))
		}
	}
	for _, n := range c.Parameters.Names() {
		if !slices.Contains(names, n) {
			t.Errorf("parameter %s in %s is not in clinical.DefaultParameters()", n, shippedRoutes)
		}
	}
}

// describeParameter prints what Parameter.Equal compares, sorted, so a
// failure shows the difference.
func describeParameter(p *clinical.Parameter) string {
	var codes, units, answers []string
	for _, c := range p.Codes {
		n := c.Normalized()
		codes = append(codes, n.System+":"+n.Code)
	}
	for u, c := range p.Units {
		f := "1"
		if !c.Factor.IsZero() {
			f = c.Factor.String()
		}
		units = append(units, u+"="+f+"/"+c.Offset.String()+"/"+c.Func)
	}
	for k, v := range p.Answers {
		answers = append(answers, k+"="+v)
	}
	slices.Sort(codes)
	slices.Sort(units)
	slices.Sort(answers)
	return string(p.Kind) + " " + p.Unit + " codes=" + strings.Join(codes, ",") + " units=" + strings.Join(units, ",") + " answers=" + strings.Join(answers, ",")
}

// routes.test.yaml passes, every failure listed.
func TestShippedRouteTests(t *testing.T) {
	tf, err := route.LoadTests(shippedTests)
	if err != nil {
		t.Fatalf("%s does not load:\n%s", shippedTests, problems(err))
	}
	c, err := route.Load(tf.Routes, registry())
	if err != nil {
		t.Fatalf("%s (named by %s) does not load:\n%s", tf.Routes, shippedTests, problems(err))
	}
	if err := tf.Validate(c); err != nil {
		t.Fatalf("%s names routes wrongly:\n%s", shippedTests, problems(err))
	}
	results := router.RunTests(tf, c)
	if len(results) != len(tf.Tests) {
		t.Fatalf("%d results for %d tests", len(results), len(tf.Tests))
	}
	for _, r := range results {
		if len(r.Failures) > 0 {
			t.Errorf("route test %q (%s:%d) failed:\n  %s", r.Name, shippedTests, r.Line, strings.Join(r.Failures, "\n  "))
		}
	}
	// runTest is what CI and analysts run; it must agree.
	if !t.Failed() {
		if err := runTest([]string{shippedTests}); err != nil {
			t.Errorf("router test %s: %v", shippedTests, err)
		}
	}
}

// labParameters are the parameters lab-results maps; every other
// parameter is a vital sign, charted by nurses (LOINC, SNOMED CT) or sent
// by monitors (MDC).
var labParameters = []string{clinical.WBC, clinical.Bands, clinical.Lactate, clinical.Creatinine, clinical.PaCO2}

// Every code of the reference tables reaches the route meant for it and is
// mapped to its parameter there: an MDC code on device-vitals, a
// laboratory code on lab-results, any other vital-sign code on
// nursing-vitals. This keeps the code lists in the routes' "where"
// conditions in step with the parameter tables.
func TestShippedRoutesEveryCode(t *testing.T) {
	c := loadShipped(t)
	for _, p := range clinical.DefaultParameters() {
		for _, code := range p.Codes {
			wantRoute := "nursing-vitals"
			switch {
			case code.System == clinical.MDC:
				wantRoute = "device-vitals"
			case slices.Contains(labParameters, p.Name):
				wantRoute = "lab-results"
			}
			obx := "OBX|1|NM|" + code.Code + "^^" + code.System + "||1|" + p.Unit + "|||||F"
			if p.Kind == clinical.Coded {
				var answer string
				for a := range p.Answers {
					if answer == "" || a < answer {
						answer = a
					}
				}
				obx = "OBX|1|ST|" + code.Code + "^^" + code.System + "||" + answer + "||||||F"
			}
			t.Run(p.Name+"/"+code.System+"/"+code.Code, func(t *testing.T) {
				got := process(t, c,
					`MSH|^~\&|APP|FAC|AORTA|RVH|20260314120000+0000||ORU^R01^ORU_R01|1|P|2.5.1`,
					`PID|1||RV100234^^^RVH^MR`,
					`OBR|1||F1^APP|X^X^L|||20260314120000+0000`,
					obx)
				if !slices.Equal(got.Routes, []string{wantRoute}) {
					t.Fatalf("routes %v, want [%s]", got.Routes, wantRoute)
				}
				if got.Status != store.Routed || len(got.Events) != 1 || len(got.Warnings) != 0 {
					t.Fatalf("status %s (%s), %d events, warnings %v: want one event", got.Status, got.Error, len(got.Events), got.Warnings)
				}
				if o := got.Events[0].Observation; o == nil || o.Parameter != p.Name {
					t.Errorf("observation %+v, want parameter %s", o, p.Name)
				}
			})
		}
	}
}

// process runs one message (segments joined with CR) through c.
func process(t *testing.T, c *route.Config, segments ...string) store.Processed {
	t.Helper()
	raw := []byte(strings.Join(segments, "\r") + "\r")
	p, err := router.Process(c, store.Work{MessageID: uuid.NewSHA1(uuid.NameSpaceURL, raw), Raw: raw, ReceivedAt: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatalf("process: %v", err)
	}
	return p
}

// routes.yaml tells analysts to set their zone and says what then
// happens; these tests hold the advice true. Changing the shipped
// timezone to Europe/London reads a summer time without an offset as BST.
func TestShippedTimezoneAdvice(t *testing.T) {
	data, err := os.ReadFile(shippedRoutes)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(data, []byte("\ntimezone: UTC\n"), []byte("\ntimezone: Europe/London\n"), 1)
	if bytes.Equal(edited, data) {
		t.Fatalf("%s has no top-level line \"timezone: UTC\"", shippedRoutes)
	}
	c, err := route.Parse("routes.yaml (Europe/London)", edited, registry())
	if err != nil {
		t.Fatalf("edited routes do not load:\n%s", problems(err))
	}
	p := process(t, c,
		`MSH|^~\&|EOBS|RVH|AORTA|RVH|20260715093505||ORU^R01^ORU_R01|TZ1|P|2.5.1`,
		`PID|1||RV200871^^^RVH^MR`,
		`OBR|1|N1^EOBS|N1^EOBS|NEWS2^NEWS2^L|||20260715093000`,
		`OBX|1|NM|8867-4^Heart rate^LN||88|/min|||||F|||20260715093000`,
		`OBX|2|NM|9279-1^Respiratory rate^LN||16|/min|||||F|||20260715103000+0100`,
	)
	if len(p.Events) != 2 {
		t.Fatalf("%d events (%s), want 2", len(p.Events), p.Error)
	}
	want := time.Date(2026, 7, 15, 8, 30, 0, 0, time.UTC)
	if got := p.Events[0].OccurredAt; !got.Equal(want) {
		t.Errorf("OBX-14 without offset in Europe/London: occurred_at %s, want %s", got.UTC().Format(time.RFC3339), want.Format(time.RFC3339))
	}
	if got := p.Events[1].OccurredAt; !got.Equal(time.Date(2026, 7, 15, 9, 30, 0, 0, time.UTC)) {
		t.Errorf("OBX-14 with offset: occurred_at %s, want 2026-07-15T09:30:00Z whatever the zone", got.UTC().Format(time.RFC3339))
	}
}

// routes.yaml says preliminary: true on lab-results records P results;
// routes.test.yaml shows that as shipped they are not.
func TestShippedPreliminaryAdvice(t *testing.T) {
	data, err := os.ReadFile(shippedRoutes)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(data, []byte("    preliminary: false\n"), []byte("    preliminary: true\n"), 1)
	if bytes.Equal(edited, data) {
		t.Fatalf("%s has no line \"    preliminary: false\" (lab-results)", shippedRoutes)
	}
	c, err := route.Parse("routes.yaml (preliminary)", edited, registry())
	if err != nil {
		t.Fatalf("edited routes do not load:\n%s", problems(err))
	}
	msg := []string{
		`MSH|^~\&|LIMS|RVHLAB|AORTA|RVH|20260314100501||ORU^R01^ORU_R01|PRE1|P|2.5.1`,
		`PID|1||RV100234^^^RVH^MR`,
		`OBR|1|PLC5530^EPR|H26-004600^LIMS|FBC^Full blood count^L|||20260314093000||||||||||||||||20260314100500|||P`,
		`OBX|1|NM|26464-8^Leukocytes^LN||15.1|10*9/L|4.0-11.0|H|||P`,
	}
	p := process(t, c, msg...)
	if len(p.Events) != 1 || p.Events[0].Type != "observation.recorded" || p.Events[0].Observation == nil || p.Events[0].Observation.Status != "P" {
		t.Fatalf("preliminary: true: got %d events %+v (%s), want one observation.recorded with status P", len(p.Events), p.Events, p.Error)
	}
	if got := p.Events[0].Observation.Numeric; got != "15.1" {
		t.Errorf("value %q, want 15.1", got)
	}
	if shipped := process(t, loadShipped(t), msg...); len(shipped.Events) != 0 {
		t.Errorf("shipped routes record %d events for a preliminary result, want none", len(shipped.Events))
	}
}
