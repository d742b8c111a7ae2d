package accesslog

import "unicode/utf8"

// bytesOrString is what a Record's text fields are: request bytes the
// caller owns, or strings weir made.
type bytesOrString interface{ ~[]byte | ~string }

// truncated ends a value cut to its field's bound.
const truncated = "..."

const hexDigits = "0123456789ABCDEF"

// isPlain reports whether b is written as it is, in text and JSON lines
// alike: printable ASCII other than '"' and '\'.
func isPlain(b byte) bool {
	return 0x20 <= b && b < 0x7f && b != '"' && b != '\\'
}

// appendText appends s escaped for a text line, or "-" when s is empty
// (nginx's mark for a missing value), in at most limit bytes.
//
// The bytes escaped, as \xHH, are those nginx escapes in its access log:
// control bytes, which could end the line or rewrite it on a terminal,
// '"' and '\', which could close a quoted field or forge an escape, and
// every byte from 0x7f up, so that a line is ASCII whatever the client
// sent.
func appendText[T bytesOrString](dst []byte, s T, limit int) []byte {
	if len(s) == 0 {
		return append(dst, '-')
	}
	return appendEscaped(dst, s, limit, false)
}

// appendJSON appends s escaped for the inside of a JSON string, in at
// most limit bytes.
//
// Valid UTF-8 is kept, except that control characters are escaped: C0
// and DEL, and also C1 (U+0080 to U+009F) and U+2028/U+2029, which some
// line splitters (Python's splitlines, JavaScript) take for line ends.
// Each byte that is not valid UTF-8 becomes \ufffd, as encoding/json
// decodes it, so that the line is always valid JSON.
func appendJSON[T bytesOrString](dst []byte, s T, limit int) []byte {
	return appendEscaped(dst, s, limit, true)
}

// appendEscaped appends s escaped for JSON or for text. A value that
// would take more than limit bytes is cut between two escapes or
// characters and ends in "...". Runs of plain bytes, most of any real
// value, are copied whole.
func appendEscaped[T bytesOrString](dst []byte, s T, limit int, json bool) []byte {
	start := len(dst)
	mark := start + limit - len(truncated) // the furthest a cut value may reach
	cut := start
	for i := 0; i < len(s); {
		from := len(dst)
		// Copy up to the next byte to escape, and never more than one
		// byte past the limit: that byte is enough to know the value is cut.
		j := i
		for end := min(len(s), i+start+limit+1-len(dst)); j < end && isPlain(s[j]); j++ {
		}
		plain := j > i
		switch {
		case plain:
			dst = append(dst, s[i:j]...)
			i = j
		case json:
			var n int
			dst, n = appendJSONEscape(dst, s[i:])
			i += n
		default:
			b := s[i]
			dst = append(dst, '\\', 'x', hexDigits[b>>4], hexDigits[b&0xf])
			i++
		}
		if len(dst) <= mark {
			cut = len(dst)
		} else if plain && from <= mark {
			cut = mark // a plain run may be cut anywhere
		}
		if len(dst)-start > limit {
			return append(dst[:cut], truncated...)
		}
	}
	return dst
}

// appendJSONEscape appends the JSON form of the character s starts with,
// whose first byte is not plain, and returns how many bytes of s it took.
func appendJSONEscape[T bytesOrString](dst []byte, s T) ([]byte, int) {
	switch b := s[0]; {
	case b == '"' || b == '\\':
		return append(dst, '\\', b), 1
	case b == '\n':
		return append(dst, '\\', 'n'), 1
	case b == '\r':
		return append(dst, '\\', 'r'), 1
	case b == '\t':
		return append(dst, '\\', 't'), 1
	case b < utf8.RuneSelf:
		return appendUnicodeEscape(dst, rune(b)), 1
	}
	r, size := decodeRune(s)
	switch {
	case r == utf8.RuneError && size == 1:
		return append(dst, `\ufffd`...), 1
	case r < 0xa0 || r == '\u2028' || r == '\u2029':
		return appendUnicodeEscape(dst, r), size
	}
	return append(dst, s[:size]...), size
}

// appendUnicodeEscape appends \uXXXX for a rune of the Basic Multilingual
// Plane.
func appendUnicodeEscape(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u',
		hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// decodeRune decodes the UTF-8 sequence at the start of s, as
// utf8.DecodeRune does, for bytes and strings alike: copying at most four
// bytes to the stack spares a conversion that could allocate.
func decodeRune[T bytesOrString](s T) (rune, int) {
	var buf [utf8.UTFMax]byte
	n := copy(buf[:], s)
	return utf8.DecodeRune(buf[:n])
}
