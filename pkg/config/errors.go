package config

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Position is a place in a configuration file. Line and Col count from 1;
// zero means unknown (the YAML parser reports some syntax errors with a
// line only, or with no position at all).
type Position struct {
	File string
	Line int
	Col  int
}

// String formats the position as FILE:LINE:COL, leaving out the parts that
// are unknown, so that editors and terminals can jump to it.
func (p Position) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
		if p.Col > 0 {
			b.WriteString(":" + strconv.Itoa(p.Col))
		}
	}
	return b.String()
}

// Error is one problem found in a configuration file.
type Error struct {
	File string
	Line int
	Col  int
	// Msg says what is wrong and how to fix it. It starts with the path of
	// the offending key ("services[0].upstream.selection: …").
	Msg string
}

// Error formats the problem as "FILE:LINE:COL: message".
func (e Error) Error() string {
	return Position{File: e.File, Line: e.Line, Col: e.Col}.String() + ": " + e.Msg
}

// Errors is every problem found in a configuration file, in file order.
// Parse and Load return it as *Errors so that a user fixes all the problems
// in one edit instead of one per run.
type Errors []Error

// Error joins the problems, one per line.
func (e *Errors) Error() string {
	lines := make([]string, len(*e))
	for i, err := range *e {
		lines[i] = err.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems as separate errors, so that errors.As finds
// an Error inside an *Errors.
func (e *Errors) Unwrap() []error {
	errs := make([]error, len(*e))
	for i, err := range *e {
		errs[i] = err
	}
	return errs
}

// sortedUnique orders errors by position, keeping the order of discovery
// for errors at the same place, and drops exact repeats (a YAML anchor
// merged into several mappings is checked once per use).
func sortedUnique(errs []Error) Errors {
	slices.SortStableFunc(errs, func(a, b Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	out := make(Errors, 0, len(errs))
	seen := make(map[Error]bool, len(errs))
	for _, e := range errs {
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	return out
}

// quote puts a value from the configuration (or a path) into an error
// message, in Go quotes.
func quote(s string) string { return strconv.Quote(s) }
