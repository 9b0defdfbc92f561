package route

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem found in a routes or route test file, at the line
// and column (both 1-based) of the YAML node at fault. Line 0 means the
// problem concerns the whole file.
type Error struct {
	File   string
	Line   int
	Column int
	Reason string
}

// Error formats the problem the way compilers do, so editors and CI logs
// can link to it: "routes.yaml:12:7: unknown key "mach" in route".
func (e *Error) Error() string {
	if e.Line <= 0 {
		return e.File + ": " + e.Reason
	}
	return e.File + ":" + strconv.Itoa(e.Line) + ":" + strconv.Itoa(e.Column) + ": " + e.Reason
}

// Errors is every problem found in a file, sorted by position. Parse,
// Load and LoadTests return it when there is more than one problem, and a
// single *Error otherwise; errors.As finds an *Error in both cases.
type Errors []*Error

// Error lists the problems, one a line.
func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap lets errors.As and errors.Is look at each problem.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// position is a place in a YAML file.
type position struct {
	line, col int
}

func (p position) String() string {
	return strconv.Itoa(p.line) + ":" + strconv.Itoa(p.col)
}

// collector gathers the problems of one file.
type collector struct {
	file string
	errs Errors
	// full is set once maxErrors problems are held; later ones are counted
	// in dropped rather than kept.
	dropped int
}

func (c *collector) errorf(p position, format string, args ...any) {
	if len(c.errs) >= maxErrors {
		c.dropped++
		return
	}
	c.errs = append(c.errs, &Error{File: c.file, Line: p.line, Column: p.col, Reason: fmt.Sprintf(format, args...)})
}

// err returns nil, the one *Error, or the sorted Errors.
func (c *collector) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	es := slices.Clone(c.errs)
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column), strings.Compare(a.Reason, b.Reason))
	})
	es = slices.CompactFunc(es, func(a, b *Error) bool { return *a == *b })
	if c.dropped > 0 {
		es = append(es, &Error{File: c.file, Reason: fmt.Sprintf("%d more problems not shown; fix the ones above first", c.dropped)})
	}
	if len(es) == 1 {
		return es[0]
	}
	return es
}

// suggest returns ` (did you mean "x"?)` when one candidate is close to s,
// or "" when none is. Close means equal but for case, or within an edit
// distance that grows with the length of the word (transpositions count
// as one edit), so "mach" suggests "match" but "id" suggests nothing.
func suggest(s string, candidates []string) string {
	best, bestDist := "", -1
	for _, c := range candidates {
		if strings.EqualFold(s, c) {
			return fmt.Sprintf(" (did you mean %q?)", c)
		}
		d := editDistance(strings.ToLower(s), strings.ToLower(c))
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	limit := 1
	switch n := len(s); {
	case n >= 8:
		limit = 3
	case n >= 4:
		limit = 2
	}
	if bestDist < 0 || bestDist > limit || len(s) <= 2 {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and adjacent transpositions each cost one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		// Long words are never typos of a key; skip the quadratic work.
		if a == b {
			return 0
		}
		return max(len(ra), len(rb))
	}
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

// quoteList formats names for a message: "adt", "observations".
func quoteList(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}
