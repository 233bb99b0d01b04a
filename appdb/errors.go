package appdb

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrUnsafe is wrapped by the Error reported for a file that busmedic will
// not take commands from: writable by group or others, or owned by another
// user. Test for it with errors.Is.
var ErrUnsafe = errors.New("appdb: unsafe rules file")

// Error is one problem found in a rules file.
type Error struct {
	File    string // the file, as given to the loader
	Line    int    // 1-based line, 0 when the problem concerns the whole file
	App     string // id of the [[app]] entry, if known
	Key     string // key such as "grace" or "settings.idle_minutes", if any
	Reason  string // human-readable reason
	Warning bool   // true for a warning, which does not stop loading
	err     error  // wrapped cause, such as ErrUnsafe
}

// Error formats the problem as "FILE:LINE: app "ID": key KEY: REASON",
// leaving out the parts that are unknown.
func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Warning {
		b.WriteString("warning: ")
	}
	if e.App != "" {
		fmt.Fprintf(&b, "app %q: ", e.App)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, "key %s: ", e.Key)
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Unwrap returns the cause, such as ErrUnsafe, if there is one.
func (e Error) Unwrap() error { return e.err }

// Errors is every problem found in one load, sorted by file and line.
type Errors []Error

// Error lists the problems one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap gives errors.Is and errors.As access to each problem.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func (es Errors) sort() {
	slices.SortStableFunc(es, func(a, b Error) int {
		return cmp.Or(
			cmp.Compare(a.File, b.File),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Key, b.Key),
		)
	})
}

// split separates warnings from errors.
func (es Errors) split() (errs, warns Errors) {
	for _, e := range es {
		if e.Warning {
			warns = append(warns, e)
		} else {
			errs = append(errs, e)
		}
	}
	return errs, warns
}

// didYouMean suggests the closest known word to an unknown one.
func didYouMean(word string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(word, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
