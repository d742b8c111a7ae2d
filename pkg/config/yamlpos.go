package config

import (
	"bytes"
	"cmp"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// yaml.v3 knows where each syntax error is, but its error text keeps the
// line at most, and sometimes not even that: the problems its reader
// finds in the bytes (invalid UTF-8, control characters) and an alias to
// an unknown anchor come with no position at all. The line it does give
// is not always the problem's either: for a problem inside a construct
// (a quoted string, a flow list) it is the construct's first line, and
// its parser counts lines from 0 where its scanner counts from 1.
//
// So weir finds the position itself, from what the message says: each
// problem yaml.v3 can report names the character it is about (a tab, an
// unclosed "[", the quote that starts an unterminated string, the first
// byte that is not UTF-8, the alias), and syntaxPosition looks for that
// character on the line yaml.v3 gives, or in the whole text when it gives
// none. When the character cannot be found there, the position is the
// first character of that line, and for a problem yaml.v3 reports with no
// line and weir cannot place, the file alone: never a made-up position.

// source is the text of a configuration file, for finding the position
// of a YAML syntax error.
type source struct {
	data []byte
	// starts and ends are the byte offsets where each line starts and
	// where its text ends (before the line break).
	starts, ends []int
}

// utf8BOM is the byte order mark yaml.v3 skips at the start of a file.
var utf8BOM = []byte("\ufeff")

// newSource splits data into lines as YAML does: at LF, CRLF, CR, and
// the Unicode NEL, LINE SEPARATOR and PARAGRAPH SEPARATOR, which yaml.v3
// counts as line breaks too.
func newSource(data []byte) *source {
	s := &source{data: data}
	start := 0
	if bytes.HasPrefix(data, utf8BOM) {
		start = len(utf8BOM)
	}
	s.starts = append(s.starts, start)
	for i := start; i < len(data); {
		if n := breakLen(data[i:]); n > 0 {
			s.ends = append(s.ends, i)
			i += n
			s.starts = append(s.starts, i)
			continue
		}
		i++
	}
	s.ends = append(s.ends, len(data))
	return s
}

// breakLen returns the length of the line break b starts with, or 0.
func breakLen(b []byte) int {
	switch {
	case len(b) == 0:
		return 0
	case b[0] == '\n':
		return 1
	case b[0] == '\r':
		if len(b) > 1 && b[1] == '\n' {
			return 2
		}
		return 1
	case bytes.HasPrefix(b, []byte("\u0085")):
		return 2
	case bytes.HasPrefix(b, []byte("\u2028")), bytes.HasPrefix(b, []byte("\u2029")):
		return 3
	}
	return 0
}

// lines returns the number of lines.
func (s *source) lines() int { return len(s.starts) }

// position returns the line and column of the byte at off, counting from
// 1, the column in characters as yaml.v3 counts it (an invalid byte
// counts as one).
func (s *source) position(off int) (line, col int) {
	i := sort.Search(len(s.starts), func(i int) bool { return s.starts[i] > off }) - 1
	i = max(i, 0)
	start := min(s.starts[i], off)
	return i + 1, utf8.RuneCount(s.data[start:off]) + 1
}

// lineStart returns the offset where line n starts, clamped to the text.
func (s *source) lineStart(n int) int {
	return s.starts[min(max(n, 1), s.lines())-1]
}

// firstChar returns the offset of the first character of line n that is
// not a space or a tab, or the line's start when there is none: the
// fallback position of a problem on line n.
func (s *source) firstChar(n int) int {
	if n > s.lines() {
		return len(s.data)
	}
	start, end := s.starts[n-1], s.ends[n-1]
	for i := start; i < end; i++ {
		if c := s.data[i]; c != ' ' && c != '\t' {
			return i
		}
	}
	return start
}

// visit is called by scan for each byte outside quoted strings and
// comments, and for the quote that opens a string. tokenStart says
// whether the byte may start a YAML token: it follows a line break, a
// space, a tab or a flow indicator. Returning false stops the scan.
type visit func(off int, c byte, tokenStart bool) bool

// scan walks the text from offset from to offset to, skipping quoted
// strings (which may span lines) and comments, as far as a scanner that
// knows nothing of the document's structure can tell.
func (s *source) scan(from, to int, fn visit) {
	data := s.data[:min(to, len(s.data))]
	prev := byte('\n')
	for i := from; i < len(data); i++ {
		c := data[i]
		tokenStart := prev == '\n' || prev == '\r' || prev == ' ' || prev == '\t' || strings.IndexByte(",[]{}", prev) >= 0
		switch {
		case c == '#' && (tokenStart || i == from):
			for i < len(data) && data[i] != '\n' && data[i] != '\r' {
				i++
			}
			c = '\n'
		case (c == '"' || c == '\'') && tokenStart:
			if !fn(i, c, true) {
				return
			}
			i = s.quoteEnd(i)
		default:
			if !fn(i, c, tokenStart) {
				return
			}
		}
		prev = c
	}
}

// quoteEnd returns the offset of the quote closing the string whose
// opening quote is at off, or the end of the text.
func (s *source) quoteEnd(off int) int {
	q := s.data[off]
	for i := off + 1; i < len(s.data); i++ {
		switch c := s.data[i]; {
		case q == '"' && c == '\\':
			i++
		case c == q && q == '\'' && i+1 < len(s.data) && s.data[i+1] == '\'':
			i++ // '' is a quote inside a single-quoted string
		case c == q:
			return i
		}
	}
	return len(s.data)
}

// onLine finds, on line n, the first byte of chars that can start a
// token.
func (s *source) onLine(n int, chars string) (int, bool) {
	if n > s.lines() {
		return 0, false
	}
	found := -1
	s.scan(s.starts[n-1], s.ends[n-1], func(off int, c byte, tokenStart bool) bool {
		if tokenStart && strings.IndexByte(chars, c) >= 0 {
			found = off
			return false
		}
		return true
	})
	return found, found >= 0
}

// locator finds the offending byte of a syntax error, from the line
// yaml.v3 reports and what its message names (detail).
type locator func(s *source, line int, detail string) (int, bool)

// tokenChar locates the first of chars that starts a token on the line.
func tokenChar(chars string) locator {
	return func(s *source, line int, _ string) (int, bool) { return s.onLine(line, chars) }
}

// badTokenStart locates what cannot start a token: a tab where YAML
// wants a token (indentation, or after "-", "?" or ":"), or a reserved
// "@" or "`".
func badTokenStart(s *source, line int, _ string) (int, bool) {
	if line > s.lines() {
		return 0, false
	}
	found := -1
	s.scan(s.starts[line-1], s.ends[line-1], func(off int, c byte, tokenStart bool) bool {
		if c == '\t' || tokenStart && (c == '@' || c == '`') {
			found = off
			return false
		}
		return true
	})
	return found, found >= 0
}

// indentTab locates the first tab in a line's indentation, on the line
// or after it: yaml.v3 reports the line where the construct the tab
// breaks began.
func indentTab(s *source, line int, _ string) (int, bool) {
	for n := max(line, 1); n <= s.lines(); n++ {
		for i := s.starts[n-1]; i < s.ends[n-1]; i++ {
			if c := s.data[i]; c == '\t' {
				return i, true
			} else if c != ' ' {
				break
			}
		}
	}
	return 0, false
}

// valueColon locates the ":" that may not be there: the second value
// indicator on the line ("a: b: c"), or the only one (a key indented
// under a scalar, or after a key too long to be one).
func valueColon(s *source, line int, _ string) (int, bool) {
	if line > s.lines() {
		return 0, false
	}
	var colons []int
	end := s.ends[line-1]
	s.scan(s.starts[line-1], end, func(off int, c byte, _ bool) bool {
		if c == ':' && (off+1 == end || s.data[off+1] == ' ' || s.data[off+1] == '\t') {
			colons = append(colons, off)
		}
		return len(colons) < 2
	})
	if len(colons) == 0 {
		return 0, false
	}
	return colons[len(colons)-1], true
}

// keyStart locates the start of the key on the line, past any "- " or
// "? " indicators.
func keyStart(s *source, line int, _ string) (int, bool) {
	if line > s.lines() {
		return 0, false
	}
	i, end := s.starts[line-1], s.ends[line-1]
	for i < end {
		switch c := s.data[i]; {
		case c == ' ' || c == '\t':
			i++
		case (c == '-' || c == '?') && (i+1 == end || s.data[i+1] == ' ' || s.data[i+1] == '\t'):
			i++
		default:
			return i, true
		}
	}
	return 0, false
}

// maxFlowDepth is yaml.v3's limit on nested flow collections.
const maxFlowDepth = 10000

// tooDeep locates the "[" or "{" that opens one flow collection more
// than yaml.v3 allows, counting from the start of the text.
func tooDeep(s *source, _ int, _ string) (int, bool) {
	depth, found := 0, -1
	s.scan(0, len(s.data), func(off int, c byte, tokenStart bool) bool {
		switch {
		case (c == '[' || c == '{') && tokenStart:
			if depth++; depth > maxFlowDepth {
				found = off
				return false
			}
		case (c == ']' || c == '}') && depth > 0:
			depth--
		}
		return true
	})
	return found, found >= 0
}

// badEscape locates the first invalid escape in the double-quoted string
// that starts on the line, or that string's opening quote.
func badEscape(s *source, line int, _ string) (int, bool) {
	open, ok := s.onLine(line, `"`)
	if !ok {
		return 0, false
	}
	d := s.data
	for i := open + 1; i < len(d) && d[i] != '"'; i++ {
		if d[i] != '\\' {
			continue
		}
		if i+1 == len(d) {
			return i, true
		}
		digits := map[byte]int{'x': 2, 'u': 4, 'U': 8}[d[i+1]]
		switch {
		case digits > 0:
			if i+2+digits > len(d) {
				return i, true
			}
			v, err := strconv.ParseUint(string(d[i+2:i+2+digits]), 16, 32)
			if err != nil || v >= 0xD800 && v <= 0xDFFF || v > utf8.MaxRune {
				return i, true
			}
			i += 1 + digits
		case strings.IndexByte("0abt\tnvfre \"/\\N_LP", d[i+1]) >= 0 || breakLen(d[i+1:]) > 0:
			i++
		default:
			return i, true
		}
	}
	return open, true
}

// alias locates the first use of the alias *name (detail): yaml.v3 reads
// the file in order, so the first use is the one that found no anchor.
func alias(s *source, _ int, name string) (int, bool) {
	found := -1
	s.scan(0, len(s.data), func(off int, c byte, tokenStart bool) bool {
		if c != '*' || !tokenStart || !bytes.HasPrefix(s.data[off+1:], []byte(name)) {
			return true
		}
		after := s.data[off+1+len(name):]
		if len(after) == 0 || after[0] == ' ' || after[0] == '\t' || breakLen(after) > 0 || strings.IndexByte(",[]{}", after[0]) >= 0 {
			found = off
			return false
		}
		return true
	})
	return found, found >= 0
}

// invalidUTF8 locates the first byte that is not UTF-8.
func invalidUTF8(s *source, _ int, _ string) (int, bool) {
	for i := s.starts[0]; i < len(s.data); {
		r, n := utf8.DecodeRune(s.data[i:])
		if r == utf8.RuneError && n <= 1 {
			return i, true
		}
		i += n
	}
	return 0, false
}

// controlChar locates the first character YAML does not allow in a file:
// a control character other than tab and line breaks, or a non-character.
func controlChar(s *source, _ int, _ string) (int, bool) {
	for i := s.starts[0]; i < len(s.data); {
		r, n := utf8.DecodeRune(s.data[i:])
		printable := r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0x7E || r == 0x85 ||
			r >= 0xA0 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= utf8.MaxRune
		if !printable && !(r == utf8.RuneError && n == 1) {
			return i, true
		}
		i += n
	}
	return 0, false
}

// yamlProblem is how to place one of yaml.v3's syntax errors and what to
// suggest.
type yamlProblem struct {
	locate locator
	// lineless problems come from yaml.v3's reader or its decoder, which
	// give no line at all; a scanner or parser problem given without a
	// line is on line 1 (yaml.v3 leaves out line 0).
	lineless bool
	// hint says what to do, in place of the default.
	hint string
}

// Hints for the syntax errors weir can say more about.
const (
	defaultSyntaxHint = `check the indentation here and below, and quote values that contain ": " or start with a special character`
	tabHint           = "YAML indents with spaces only: replace the tab with spaces"
	encodingHint      = "weir reads UTF-8 text: is this a binary file, or one saved in another encoding?"
	controlHint       = "is this a binary file? In a double-quoted string, write a control character as an escape, such as \"\\x01\""
	depthHint         = "nest fewer than 10000 lists and mappings"
	anchorHint        = "define the anchor (&NAME) before an alias (*NAME) uses it, and check the spelling"
	longKeyHint       = "YAML limits a key written on one line to 1024 characters; write a longer key as \"? KEY\", then \": VALUE\" on the next line"
	quoteHint         = "close the string with the same quote that opens it"
)

// yamlProblems maps yaml.v3's problem messages (the message without
// "yaml: line N: ") to where their offending character is.
var yamlProblems = map[string]yamlProblem{
	// Scanner.
	"found character that cannot start any token":                  {locate: badTokenStart},
	"found a tab character that violates indentation":              {locate: indentTab, hint: tabHint},
	"found a tab character where an indentation space is expected": {locate: indentTab, hint: tabHint},
	"mapping values are not allowed in this context":               {locate: valueColon},
	"block sequence entries are not allowed in this context":       {locate: tokenChar("-")},
	"mapping keys are not allowed in this context":                 {locate: tokenChar("?")},
	"could not find expected ':'":                                  {locate: keyStart},
	"found unexpected end of stream":                               {locate: tokenChar(`"'`), hint: quoteHint},
	"found unexpected document indicator":                          {locate: tokenChar(`"'`), hint: quoteHint},
	"found unknown escape character":                               {locate: badEscape},
	"did not find expected hexdecimal number":                      {locate: badEscape},
	"found invalid Unicode character escape code":                  {locate: badEscape},
	"did not find expected alphabetic or numeric character":        {locate: tokenChar("&*")},
	"did not find expected tag URI":                                {locate: tokenChar("!")},
	"did not find expected '!'":                                    {locate: tokenChar("!")},
	"did not find the expected '>'":                                {locate: tokenChar("!")},
	"did not find URI escaped octet":                               {locate: tokenChar("!")},
	"found an incorrect leading UTF-8 octet":                       {locate: tokenChar("!")},
	"found an incorrect trailing UTF-8 octet":                      {locate: tokenChar("!")},
	"found an indentation indicator equal to 0":                    {locate: tokenChar("|>")},
	"did not find expected comment or line break":                  {locate: tokenChar("%|>")},
	"did not find expected whitespace or line break":               {locate: tokenChar("%!")},
	"found unknown directive name":                                 {locate: tokenChar("%")},
	"could not find expected directive name":                       {locate: tokenChar("%")},
	"found unexpected non-alphabetical character":                  {locate: tokenChar("%")},
	"did not find expected digit or '.' character":                 {locate: tokenChar("%")},
	"found extremely long version number":                          {locate: tokenChar("%")},
	"did not find expected version number":                         {locate: tokenChar("%")},
	"did not find expected whitespace":                             {locate: tokenChar("%")},
	"exceeded max depth of " + strconv.Itoa(maxFlowDepth):          {locate: tooDeep, hint: depthHint},
	// Parser.
	"did not find expected ',' or ']'":       {locate: tokenChar("[")},
	"did not find expected ',' or '}'":       {locate: tokenChar("{")},
	"found undefined tag handle":             {locate: tokenChar("!")},
	"found duplicate %YAML directive":        {locate: tokenChar("%")},
	"found incompatible YAML document":       {locate: tokenChar("%"), hint: "weir reads YAML 1.1 and 1.2; remove the %YAML line"},
	"found duplicate %TAG directive":         {locate: tokenChar("%")},
	"did not find expected <stream-start>":   {},
	"did not find expected <document start>": {},
	"did not find expected node content":     {},
	"did not find expected '-' indicator":    {},
	"did not find expected key":              {},
	// Reader.
	"invalid leading UTF-8 octet":                              {locate: invalidUTF8, lineless: true, hint: encodingHint},
	"incomplete UTF-8 octet sequence":                          {locate: invalidUTF8, lineless: true, hint: encodingHint},
	"invalid trailing UTF-8 octet":                             {locate: invalidUTF8, lineless: true, hint: encodingHint},
	"invalid length of a UTF-8 sequence":                       {locate: invalidUTF8, lineless: true, hint: encodingHint},
	"invalid Unicode character":                                {locate: invalidUTF8, lineless: true, hint: encodingHint},
	"control characters are not allowed":                       {locate: controlChar, lineless: true, hint: controlHint},
	"incomplete UTF-16 character":                              {lineless: true, hint: encodingHint},
	"unexpected low surrogate area":                            {lineless: true, hint: encodingHint},
	"incomplete UTF-16 surrogate pair":                         {lineless: true, hint: encodingHint},
	"expected low surrogate area":                              {lineless: true, hint: encodingHint},
	"attempted to go past the end of stream; corrupted value?": {lineless: true},
}

// yamlLine extracts the line yaml.v3 puts in its syntax errors.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parserProblems are the messages of yaml.v3's parser, as opposed to its
// scanner. yaml.v3 reports the line of a parser error counting from 0
// (and a scanner error counting from 1), so these need one added.
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// unknownAnchor matches yaml.v3's message for an alias to no anchor.
var unknownAnchor = regexp.MustCompile(`(?s)^unknown anchor '(.*)' referenced$`)

// syntaxPosition turns one of yaml.v3's syntax errors into a position in
// the file, a message and a hint: the position of the offending character
// when it can be found, else the first character of the line yaml.v3
// gives, else none (Line 0).
func syntaxPosition(src *source, err error) (line, col int, msg, hint string) {
	msg = strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
		if parserProblems[msg] {
			line++
		}
	}
	problem, known := yamlProblems[msg]
	detail := ""
	if m := unknownAnchor.FindStringSubmatch(msg); m != nil {
		detail = m[1]
		problem, known = yamlProblem{locate: alias, lineless: true, hint: anchorHint}, true
		msg = "unknown anchor " + quote(detail) + " referenced"
	}
	if line == 0 && known && !problem.lineless {
		line = 1 // yaml.v3 leaves out line 0, its first
	}
	hint = cmp.Or(problem.hint, defaultSyntaxHint)
	off, found := 0, false
	if problem.locate != nil {
		off, found = problem.locate(src, line, detail)
	}
	switch {
	case found:
		line, col = src.position(off)
	case line > 0:
		line, col = src.position(src.firstChar(min(line, src.lines())))
	default:
		return 0, 0, msg, hint // nothing known: the file alone
	}
	switch {
	case found && off < len(src.data) && src.data[off] == '\t':
		hint = tabHint
	case found && problem.hint == encodingHint:
		msg += fmt.Sprintf(": byte 0x%02x starts no UTF-8 character", src.data[off])
	case found && problem.hint == controlHint:
		r, _ := utf8.DecodeRune(src.data[off:])
		msg += fmt.Sprintf(": %U", r)
	case (msg == "could not find expected ':'" || msg == "mapping values are not allowed in this context") && longKey(src, line):
		hint = longKeyHint
	}
	return line, col, msg, hint
}

// maxKeyLength is YAML's limit on an implicit key, in characters.
const maxKeyLength = 1024

// longKey reports whether line n holds more than maxKeyLength characters
// before its first value indicator: a key YAML does not accept.
func longKey(s *source, n int) bool {
	if n < 1 || n > s.lines() {
		return false
	}
	text := s.data[s.firstChar(n):s.ends[n-1]]
	if i := bytes.Index(text, []byte(": ")); i >= 0 {
		text = text[:i]
	}
	return utf8.RuneCount(text) > maxKeyLength
}
