package config

import (
	"errors"
	"strings"
	"testing"
)

// TestSyntaxErrorPositions checks that every YAML syntax error carries a
// line and a column, those of the offending character where yaml.v3
// reports only a line or nothing at all: a tab used for indentation,
// flow collections nested too deep, a key over YAML's 1024 characters,
// bytes that are not UTF-8 or are control characters, an alias to an
// anchor never defined.
func TestSyntaxErrorPositions(t *testing.T) {
	deep := strings.Repeat("[", 10001) + strings.Repeat("]", 10001)
	tests := []struct {
		name      string
		yml       string
		line, col int
		says      string // a substring of the message
	}{
		// Tabs.
		{"tab indenting a key", "a:\n\tb: 1\n", 2, 1, "found character that cannot start any token"},
		{"tab on line 1", "\ta: 1\n", 1, 1, "replace the tab"},
		{"tab after the indentation", "a:\n  \tb: 1\n", 2, 3, "cannot start any token"},
		{"tab after a dash", "a:\n-\tb\n", 2, 2, "cannot start any token"},
		{"tab below a plain scalar", "x: 1\na:\n  c: 2\n\tb: 1\n", 4, 1, "tab character that violates indentation"},
		{"tab below the first line", "version: 1\n\tservices: 1\n", 2, 1, "tab character that violates indentation"},
		// Nesting.
		{"deep flow nesting on line 1", "a: " + deep + "\n", 1, 10004, "exceeded max depth of 10000"},
		{"deep flow nesting on line 3", "x: 1\ny: 2\na: " + deep + "\n", 3, 10004, "nest"},
		{"deep flow nesting over lines", "a:\n" + strings.Repeat("  [\n", 10001), 10002, 3, "exceeded max depth"},
		{"brackets in strings do not count", "s: \"" + strings.Repeat("[", 20) + "\"\n# [[[[[\na: " + deep + "\n", 3, 10004, "exceeded max depth"},
		// Long keys.
		{"long key", "x: 1\n" + strings.Repeat("k", 2000) + ": 1\n", 2, 1, "1024 characters"},
		{"long key on line 1", strings.Repeat("k", 2000) + ": 1\n", 1, 2001, "1024 characters"},
		{"long key in a flow mapping", "x: {" + strings.Repeat("k", 2000) + ": 1}\n", 1, 4, "did not find expected ',' or '}'"},
		// Bytes.
		{"invalid UTF-8", "x: 1\ny: \xff\xfe\n", 2, 4, "UTF-8"},
		{"invalid UTF-8 after accents", "x: é\ny: éé\xc3\x28\n", 2, 6, "UTF-8"},
		{"invalid UTF-8 on line 1", "x: \xc3\x28\n", 1, 4, "UTF-8"},
		{"truncated UTF-8 at the end", "x: 1\ny: \xe2\x82", 2, 4, "UTF-8"},
		{"NUL byte", "x: 1\ny: a\x00b\n", 2, 5, "control character"},
		{"binary file", "\x7fELF\x02\x01\x01\x00\x00\x00", 1, 1, "binary"},
		{"control character after CRLF lines", "x: 1\r\ny: 2\r\nz: \x01\r\n", 3, 4, "control character"},
		// Aliases.
		{"unknown alias", "x: 1\na: *nope\n", 2, 4, `unknown anchor "nope"`},
		{"unknown alias on line 1", "a: *nope\n", 1, 4, "define the anchor"},
		{"alias before its anchor", "b: *a\na: &a 1\n", 1, 4, `unknown anchor "a"`},
		{"alias after its name in a comment and a string", "# see *nope\ns: \"*nope\"\na: [1, *nope]\n", 3, 8, `unknown anchor "nope"`},
		{"alias with a longer name first", "a: *nopeno\n", 1, 4, `unknown anchor "nopeno"`},
		// The classics, with the lines yaml.v3 gives and a column now.
		{"unclosed flow list", "a: 1\nb: 2\nc: [1, 2\nd: 4\n", 3, 4, "did not find expected ',' or ']'"},
		{"unclosed flow list on line 1, found at the end", "c: [1, 2\n", 2, 1, "did not find expected ',' or ']'"},
		{"colon in plain value", "a: 1\nb: 2\nc: d: e\n", 3, 5, "mapping values are not allowed"},
		{"over-indented key", "a: 1\nb: 2\n  c: 3\n", 3, 4, "mapping values are not allowed"},
		{"unterminated quote", "a: 1\nb: 2\nc: \"abc\n", 3, 4, "found unexpected end of stream"},
		{"unknown escape", "a: 1\nb: \"x\\qy\"\n", 2, 6, "found unknown escape character"},
		{"at sign", "x: 1\ny: @foo\n", 2, 4, "cannot start any token"},
		{"backtick", "x: 1\ny: \"`\" `foo\n", 2, 8, "cannot start any token"},
		{"block sequence in a mapping", "a: 1\n- b\n", 2, 1, "did not find expected key"},
		{"anchor without a name", "a: 1\nb: & 1\n", 2, 4, "did not find expected alphabetic or numeric character"},
		{"empty tag", "a: !<> 1\n", 1, 4, "did not find expected tag URI"},
		{"YAML 2.0", "%YAML 2.0\n---\na: 1\n", 1, 1, "found incompatible YAML document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("w.yaml", []byte(tt.yml))
			var errs *Errors
			if !errors.As(err, &errs) || len(*errs) != 1 {
				t.Fatalf("want one error, got %.300v", err)
			}
			e := (*errs)[0]
			if e.Line != tt.line || e.Col != tt.col || !strings.HasPrefix(e.Msg, "YAML syntax error: ") || !strings.Contains(e.Msg, tt.says) {
				t.Errorf("got %.300v\nwant a YAML syntax error at w.yaml:%d:%d saying %q", e, tt.line, tt.col, tt.says)
			}
		})
	}
}

// TestSourcePositions checks the byte-offset to line and column mapping
// the syntax error positions rest on: lines end as YAML ends them, and
// columns count characters, as yaml.v3 does.
func TestSourcePositions(t *testing.T) {
	src := newSource([]byte("\ufeffab\r\ncé\rd\n\nx\u2028y"))
	tests := []struct {
		off, line, col int
	}{
		{3, 1, 1},  // after the byte order mark, which yaml.v3 skips
		{4, 1, 2},  // b
		{5, 1, 3},  // the CR of CRLF
		{7, 2, 1},  // c
		{8, 2, 2},  // é
		{10, 2, 3}, // a lone CR ends a line too
		{11, 3, 1}, // d
		{13, 4, 1}, // an empty line
		{14, 5, 1}, // x
		{18, 6, 1}, // y, after a LINE SEPARATOR
		{19, 6, 2}, // the end
	}
	for _, tt := range tests {
		if line, col := src.position(tt.off); line != tt.line || col != tt.col {
			t.Errorf("position(%d) = %d:%d, want %d:%d", tt.off, line, col, tt.line, tt.col)
		}
	}
}
