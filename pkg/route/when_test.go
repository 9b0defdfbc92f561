package route

import (
	"strings"
	"testing"
)

func TestWhenHolds(t *testing.T) {
	news2, qsofa, sirs := builtinScores["news2"], builtinScores["qsofa"], builtinScores["sirs"]
	f := func(total int, risk string, single3 bool) ScoreFacts {
		return ScoreFacts{Total: total, Risk: risk, SingleParameter3: single3}
	}
	tests := []struct {
		spec *scoreSpec
		cond string
		f    ScoreFacts
		want bool
	}{
		// Each operator, at and around its number.
		{news2, "total >= 5", f(4, "low", false), false},
		{news2, "total >= 5", f(5, "medium", false), true},
		{news2, "total >= 5", f(6, "medium", false), true},
		{news2, "total > 5", f(5, "medium", false), false},
		{news2, "total > 5", f(6, "medium", false), true},
		{news2, "total <= 4", f(4, "low", false), true},
		{news2, "total <= 4", f(5, "medium", false), false},
		{news2, "total < 4", f(3, "low", false), true},
		{news2, "total < 4", f(4, "low", false), false},
		{news2, "total == 3", f(3, "low", false), true},
		{news2, "total == 3", f(4, "low", false), false},
		{news2, "total>=7", f(7, "high", false), true},
		{news2, "  total   >=   7  ", f(6, "medium", false), false},
		// single_parameter_3 and risk.
		{news2, "single_parameter_3", f(3, "low-medium", true), true},
		{news2, "single_parameter_3", f(3, "low", false), false},
		{news2, "risk == medium", f(5, "medium", false), true},
		{news2, "risk == medium", f(7, "high", false), false},
		{news2, `risk == "low-medium"`, f(3, "low-medium", true), true},
		{news2, "risk in [medium, high]", f(7, "high", false), true},
		{news2, "risk in [medium,high]", f(5, "medium", false), true},
		{news2, "risk in ['medium', high]", f(3, "low-medium", true), false},
		{qsofa, "risk == positive", f(2, "positive", false), true},
		{qsofa, "risk == positive", f(1, "negative", false), false},
		{sirs, "risk in [met]", f(2, "met", false), true},
		{sirs, "risk == not-met", f(1, "not-met", false), true},
		// and binds tighter than or: a and b or c is (a and b) or c.
		{news2, "single_parameter_3 and total < 5 or total >= 7", f(7, "high", false), true},
		{news2, "single_parameter_3 and total < 5 or total >= 7", f(4, "low-medium", true), true},
		{news2, "single_parameter_3 and total < 5 or total >= 7", f(6, "medium", true), false},
		{news2, "total >= 7 or single_parameter_3 and total < 5", f(6, "medium", true), false},
		{news2, "total >= 7 or single_parameter_3 and total < 5", f(3, "low-medium", true), true},
		// Read as total == 3 or (total == 4 and risk == high): true for 3.
		{news2, "total == 3 or total == 4 and risk == high", f(3, "low", false), true},
		{news2, "total == 3 or total == 4 and risk == high", f(4, "low", false), false},
		{news2, "total >= 1 and total <= 2 and risk == low", f(2, "low", false), true},
		{news2, "total >= 1 and total <= 2 and risk == low", f(3, "low", false), false},
		{news2, "total == 1 or total == 2 or total == 3", f(2, "low", false), true},
		{news2, "total == 1 or total == 2 or total == 3", f(4, "low", false), false},
		// A score this package does not know: its total only.
		{specOf("mews"), "total >= 3", f(3, "", false), true},
		{nil, "risk == anything", f(0, "anything", false), true},
	}
	for _, tt := range tests {
		c, werr := parseWhen(tt.cond, tt.spec)
		if werr != nil {
			t.Errorf("parseWhen(%q): %s at %d", tt.cond, werr.reason, werr.off)
			continue
		}
		if got := c.Holds(tt.f); got != tt.want {
			t.Errorf("%q.Holds(%+v) = %v, want %v", tt.cond, tt.f, got, tt.want)
		}
		if c.String() != strings.TrimSpace(tt.cond) {
			t.Errorf("String() = %q, want %q", c.String(), strings.TrimSpace(tt.cond))
		}
	}
	if (Condition{}).Holds(ScoreFacts{Total: 20}) {
		t.Error("the zero Condition holds")
	}
}

// TestWhenErrors checks each problem's reason and the byte offset it
// points at (the column in the file follows from it; see TestAlertingErrors).
func TestWhenErrors(t *testing.T) {
	news2, qsofa := builtinScores["news2"], builtinScores["qsofa"]
	tests := []struct {
		spec   *scoreSpec
		cond   string
		off    int
		reason string
	}{
		{news2, "", 0, "empty condition: write one such as total >= 5, single_parameter_3 or risk == high, joined by and / or"},
		{news2, "   ", 0, "empty condition: write one such as total >= 5, single_parameter_3 or risk == high, joined by and / or"},
		{news2, "totl >= 5", 0, `unknown word "totl" (did you mean "total"?): a condition is total >= 5, single_parameter_3 or risk == high, joined by and / or`},
		{news2, "Total >= 5", 0, `unknown word "Total" (did you mean "total"?): a condition is total >= 5, single_parameter_3 or risk == high, joined by and / or`},
		{news2, "single_param_3", 0, `unknown word "single_param_3" (did you mean "single_parameter_3"?): a condition is total >= 5, single_parameter_3 or risk == high, joined by and / or`},
		{news2, "news2 >= 5", 0, `"news2": a condition reads the rule's own score; write total >= 5`},
		{news2, "total", 5, "missing operator after total: one of >=, >, <=, <, =="},
		{news2, "total 5", 6, `expected an operator after total (one of >=, >, <=, <, ==), not "5"`},
		{news2, "total = 5", 6, "use == to compare (a single = is not an operator)"},
		{news2, "total => 5", 6, "write >= (not =>)"},
		{news2, "total =< 5", 6, "write <= (not =<)"},
		{news2, "total != 5", 6, "!= is not supported: write total < n or total > n"},
		{news2, "total >== 5", 6, `unknown operator ">==": use one of >=, >, <=, <, ==`},
		{news2, "total >=", 8, "missing number after >="},
		{news2, "total >= five", 9, `expected a whole number after >=, not "five"`},
		{news2, "total >= 5.5", 9, `expected a whole number after >=, not "5.5"`},
		{news2, "total >= -1", 9, "a total is never negative"},
		{news2, "total >= 21", 9, "news2 totals run from 0 to 20"},
		{qsofa, "total >= 4", 9, "qsofa totals run from 0 to 3"},
		{specOf("mews"), "total >= 123456", 9, "total 123456 is too large"},
		{news2, "total >= 5 and", 11, `nothing follows "and"`},
		{news2, "total >= 5 or", 11, `nothing follows "or"`},
		{news2, "and total >= 5", 0, `missing condition before "and"`},
		{news2, "total >= 5 and or total >= 7", 15, `missing condition before "or"`},
		{news2, "total >= 5 AND total <= 6", 11, "write and in lower case"},
		{news2, "total >= 5 && total <= 6", 11, "write and instead of &&"},
		{news2, "total >= 5 || total <= 6", 11, "write or instead of ||"},
		{news2, "(total >= 5)", 0, "parentheses are not used: and binds tighter than or, so a and b or c means (a and b) or c"},
		{news2, "total >= 5 (x)", 11, "parentheses are not used: and binds tighter than or, so a and b or c means (a and b) or c"},
		{news2, "total >= 5 total >= 6", 11, `expected and, or, or the end of the condition, not "total"`},
		{news2, "not single_parameter_3", 0, "not is not supported: compare the other way (total < 5, risk in [low, medium])"},
		{news2, "!single_parameter_3", 0, "not is not supported: compare the other way (total < 5, risk in [low, medium])"},
		{news2, "total >= 5 ; x", 11, `expected and, or, or the end of the condition, not ";"`},
		{news2, "@", 0, `unexpected "@": a condition is total >= 5, single_parameter_3 or risk == high, joined by and / or`},
		{qsofa, "single_parameter_3", 0, "single_parameter_3 applies to news2 only, not to qsofa"},
		{specOf("mews"), "risk == high", 0, `this router knows no risk levels of score "mews": compare its total`},
		{news2, "risk", 4, "missing == or in after risk"},
		{news2, "risk = high", 5, "use == to compare (a single = is not an operator)"},
		{news2, "risk >= high", 5, `expected == or in after risk, not ">="`},
		{news2, "risk == hihg", 8, `unknown news2 risk level "hihg" (did you mean "high"?)`},
		{news2, "risk == positive", 8, `unknown news2 risk level "positive" (known: "low", "low-medium", "medium", "high")`},
		{qsofa, "risk in [positive, met]", 19, `unknown qsofa risk level "met" (known: "positive", "negative")`},
		{news2, "risk ==", 7, "missing risk level after =="},
		{news2, "risk == [high]", 8, `expected a risk level, not "["`},
		{news2, "risk in high", 8, "expected a list in brackets after in, such as [medium, high]"},
		{news2, "risk in []", 9, "empty list: it would never hold"},
		{news2, "risk in [high, high]", 15, `risk "high" is listed twice`},
		{news2, "risk in [high, medium", 21, "missing ] at the end of the list"},
		{news2, "risk in [high medium]", 14, `expected , or ] in the list, not "medium"`},
		{news2, "risk in [high,]", 14, `expected a risk level, not "]"`},
		{news2, `risk == "high`, 8, "missing closing quote"},
	}
	for _, tt := range tests {
		_, werr := parseWhen(tt.cond, tt.spec)
		if werr == nil {
			t.Errorf("parseWhen(%q) succeeded, want %q", tt.cond, tt.reason)
			continue
		}
		if werr.off != tt.off || werr.reason != tt.reason {
			t.Errorf("parseWhen(%q) = %q at %d\nwant            %q at %d", tt.cond, werr.reason, werr.off, tt.reason, tt.off)
		}
	}
}

// TestScoreFacts checks the facts levels are checked against: every
// total of each score, with the risk the clinical reference gives it.
func TestScoreFacts(t *testing.T) {
	tests := []struct {
		score string
		n     int
		want  map[ScoreFacts]bool
	}{
		{"news2", 21 + 18, map[ScoreFacts]bool{
			{Total: 0, Risk: "low"}:                                true,
			{Total: 4, Risk: "low"}:                                true,
			{Total: 3, Risk: "low-medium", SingleParameter3: true}: true,
			{Total: 4, Risk: "low-medium", SingleParameter3: true}: true,
			{Total: 5, Risk: "medium", SingleParameter3: true}:     true,
			{Total: 6, Risk: "medium"}:                             true,
			{Total: 7, Risk: "high", SingleParameter3: true}:       true,
			{Total: 20, Risk: "high"}:                              true,
			{Total: 2, Risk: "low-medium", SingleParameter3: true}: false,
		}},
		{"qsofa", 4, map[ScoreFacts]bool{{Total: 1, Risk: "negative"}: true, {Total: 2, Risk: "positive"}: true, {Total: 3, Risk: "positive"}: true}},
		{"sirs", 5, map[ScoreFacts]bool{{Total: 1, Risk: "not-met"}: true, {Total: 2, Risk: "met"}: true, {Total: 4, Risk: "met"}: true}},
		{"mews", 0, nil},
	}
	for _, tt := range tests {
		facts := specOf(tt.score).facts()
		if len(facts) != tt.n {
			t.Errorf("%s: %d facts, want %d", tt.score, len(facts), tt.n)
		}
		has := map[ScoreFacts]bool{}
		for _, f := range facts {
			has[f] = true
		}
		for f, want := range tt.want {
			if has[f] != want {
				t.Errorf("%s: facts include %+v = %v, want %v", tt.score, f, has[f], want)
			}
		}
	}
}
