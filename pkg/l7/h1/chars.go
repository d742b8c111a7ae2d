package h1

import (
	"bytes"
	"encoding/binary"
)

// Character classes of RFC 9110 and RFC 3986, one bit each in charClasses.
const (
	classToken      = 1 << iota // tchar: the bytes of a token (method, field name)
	classVisible                // VCHAR: 0x21-0x7E, the bytes of a request target
	classFieldValue             // VCHAR, obs-text, SP and HTAB: a field value or reason phrase
	classHost                   // the bytes of uri-host [ ":" port ], IPv6 brackets included
	classChunkExt               // the bytes allowed after ';' on a chunk-size line
)

// charClasses maps each byte to its classes. It is computed once at package
// initialisation and only read afterwards.
var charClasses = buildCharClasses()

func buildCharClasses() [256]uint8 {
	var t [256]uint8
	for c := 0; c < 256; c++ {
		b := byte(c)
		isAlnum := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
		if isAlnum || bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), b) >= 0 {
			t[c] |= classToken
		}
		if 0x21 <= b && b <= 0x7e {
			t[c] |= classVisible | classFieldValue | classChunkExt
		}
		if b >= 0x80 || b == ' ' || b == '\t' {
			t[c] |= classFieldValue | classChunkExt
		}
		if isAlnum || bytes.IndexByte([]byte("-._~!$&'()*+,;=:[]%"), b) >= 0 {
			t[c] |= classHost
		}
	}
	return t
}

// invalidByte returns the index of the first byte of b outside class, or -1.
func invalidByte(b []byte, class uint8) int {
	for i, c := range b {
		if charClasses[c]&class == 0 {
			return i
		}
	}
	return -1
}

// Word-at-a-time constants: a byte of ones, and the high bit of each byte.
const (
	lowBits  = 0x0101010101010101
	highBits = 0x8080808080808080
)

// anyLess reports whether a byte of x is below n (n <= 128). The borrow
// from a byte below n can only mark bytes above it too, so the answer for
// the word is exact even though it cannot say which byte.
func anyLess(x uint64, n byte) bool { return (x-lowBits*uint64(n))&^x&highBits != 0 }

// anyEqual reports whether a byte of x equals c.
func anyEqual(x uint64, c byte) bool { return anyLess(x^(lowBits*uint64(c)), 1) }

// anyGreater reports whether a byte of x is above n (n <= 127).
func anyGreater(x uint64, n byte) bool { return ((x+lowBits*uint64(127-n))|x)&highBits != 0 }

// invalidValueByte is invalidByte(b, classFieldValue), eight bytes at a
// time: field values are most of a head, and in them only control bytes
// (below 0x20, and DEL) can be wrong. A word holding one, or an HTAB, is
// checked byte by byte.
func invalidValueByte(b []byte) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		if !anyLess(x, 0x20) && !anyEqual(x, 0x7f) {
			continue
		}
		if j := invalidByte(b[i:i+8], classFieldValue); j >= 0 {
			return i + j
		}
	}
	if j := invalidByte(b[i:], classFieldValue); j >= 0 {
		return i + j
	}
	return -1
}

// invalidTargetByte is invalidByte(b, classVisible), eight bytes at a time.
func invalidTargetByte(b []byte) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		if anyLess(x, 0x21) || anyGreater(x, 0x7e) {
			break
		}
	}
	if j := invalidByte(b[i:], classVisible); j >= 0 {
		return i + j
	}
	return -1
}

// isToken reports whether b is a non-empty token.
func isToken(b []byte) bool { return len(b) > 0 && invalidByte(b, classToken) < 0 }

// lower maps an ASCII upper-case letter to lower case and leaves any other
// byte alone. Field names and connection options are ASCII, so Unicode case
// folding would be wrong here as well as slow.
func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// equalFold reports whether a and b are equal under ASCII case folding. It is
// generic so that string names compare against parsed bytes without a
// conversion, which would allocate.
func equalFold[A, B string | []byte](a A, b B) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

// isOWS reports whether c is optional whitespace (SP or HTAB).
func isOWS(c byte) bool { return c == ' ' || c == '\t' }

// trimOWS removes leading and trailing SP and HTAB.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && isOWS(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isOWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// cutElement splits a comma-separated list (RFC 9110 §5.6.1) at its first
// comma. It returns the first element without surrounding whitespace, the
// rest of the list, and whether a comma was found (so that "a," yields a
// trailing empty element, which strict callers reject).
func cutElement(list []byte) (elem, rest []byte, more bool) {
	i := bytes.IndexByte(list, ',')
	if i < 0 {
		return trimOWS(list), nil, false
	}
	return trimOWS(list[:i]), list[i+1:], true
}

// listContainsFold reports whether the comma-separated list holds token,
// compared case-insensitively. Empty elements are ignored as RFC 9110
// requires of recipients.
func listContainsFold[T string | []byte](list []byte, token T) bool {
	for {
		elem, rest, more := cutElement(list)
		if len(elem) > 0 && equalFold(elem, token) {
			return true
		}
		if !more {
			return false
		}
		list = rest
	}
}

// clip returns b with its capacity cut to its length, so that a caller who
// appends to a slice handed out by this package reallocates instead of
// overwriting the bytes that follow it in an arena.
func clip(b []byte) []byte { return b[:len(b):len(b)] }
