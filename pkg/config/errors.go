package config

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Position is a place in a configuration file. Line and Col count from 1;
// zero means unknown: a YAML syntax error weir could not place (see
// syntaxPosition) has neither.
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

// maxShownErrors bounds the problems Errors.Error prints: past it, a
// file is likely not a weir configuration at all, and a screenful is
// enough to tell.
const maxShownErrors = 100

// Error joins the problems, one per line: the first maxShownErrors of
// them, then a line counting the others. The slice holds them all.
func (e *Errors) Error() string {
	shown := min(len(*e), maxShownErrors)
	lines := make([]string, shown, shown+1)
	for i, err := range (*e)[:shown] {
		lines[i] = err.Error()
	}
	if more := len(*e) - shown; more > 0 {
		noun := "errors"
		if more == 1 {
			noun = "error"
		}
		lines = append(lines, fmt.Sprintf("%s: … and %d more %s", (*e)[shown].File, more, noun))
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

// maxQuoted is the most of a value from the file an error message shows:
// enough to recognise it, while a 20 MB value cannot flood the terminal.
const maxQuoted = 64

// shorten returns s cut to at most maxQuoted bytes, at a character
// boundary, and whether it cut anything.
func shorten(s string) (string, bool) {
	if len(s) <= maxQuoted {
		return s, false
	}
	i := maxQuoted
	for i > 0 && !utf8.RuneStart(s[i]) && i > maxQuoted-utf8.UTFMax {
		i--
	}
	return s[:i], true
}

// quote is how a value from the file (or any text a user wrote, such as a
// path) goes into an error message: in Go quotes, and when longer than
// maxQuoted bytes, cut, with an ellipsis and the full length:
// "aaaa…" (20971520 bytes).
func quote(s string) string {
	cut, long := shorten(s)
	if !long {
		return strconv.Quote(s)
	}
	return strconv.Quote(cut+"…") + " (" + strconv.Itoa(len(s)) + " bytes)"
}

// clip is quote without the quotes, for values shown bare, such as
// numbers: 1_000_…_000… (100000 bytes).
func clip(s string) string {
	cut, long := shorten(s)
	if !long {
		return s
	}
	return cut + "… (" + strconv.Itoa(len(s)) + " bytes)"
}

// maxMessage bounds one error message, whatever it quotes.
const maxMessage = 2048

// bound is errorAt's guarantee that a message stays short even when it
// holds text this package did not format: lb.ParseAddr's errors, say,
// quote the whole address. It passes every Go-quoted string in msg that
// quote would have shortened through quote, then cuts what is still over
// maxMessage bytes.
func bound(msg string) string {
	if strings.IndexByte(msg, '"') >= 0 {
		var b strings.Builder
		rest := msg
		for {
			i := strings.IndexByte(rest, '"')
			if i < 0 {
				b.WriteString(rest)
				break
			}
			b.WriteString(rest[:i])
			lit, err := strconv.QuotedPrefix(rest[i:])
			if err != nil {
				b.WriteByte('"')
				rest = rest[i+1:]
				continue
			}
			rest = rest[i+len(lit):]
			s, _ := strconv.Unquote(lit)
			if len(s) > maxQuoted && !(strings.HasSuffix(s, "…") && len(s) <= maxQuoted+len("…")) {
				lit = quote(s) // not one of ours: shorten it
			}
			b.WriteString(lit)
		}
		msg = b.String()
	}
	if len(msg) > maxMessage {
		cut := maxMessage
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "… (message cut, " + strconv.Itoa(len(msg)) + " bytes)"
	}
	return msg
}
