package h1

import (
	"bytes"
	"testing"
)

// TestWordAtATimeValidators compares the eight-bytes-at-a-time validators
// with the plain table lookup, for every byte value at every position of
// lines of every length up to three words.
func TestWordAtATimeValidators(t *testing.T) {
	for _, background := range []byte{'a', '~', 0x80, 0xff, ' '} {
		for n := 1; n <= 24; n++ {
			line := bytes.Repeat([]byte{background}, n)
			for pos := range n {
				for c := range 256 {
					line[pos] = byte(c)
					if got, want := invalidValueByte(line), invalidByte(line, classFieldValue); got != want {
						t.Fatalf("invalidValueByte(%q) = %d, want %d", line, got, want)
					}
					if got, want := invalidTargetByte(line), invalidByte(line, classVisible); got != want {
						t.Fatalf("invalidTargetByte(%q) = %d, want %d", line, got, want)
					}
				}
				line[pos] = background
			}
		}
	}
}

func TestCharClasses(t *testing.T) {
	cases := []struct {
		class uint8
		in    string
		out   string
	}{
		{classToken, "!#$%&'*+-.^_`|~09azAZ", " \t\"(),/:;<=>?@[\\]{}\x00\x7f\x80"},
		{classVisible, "!~/?#[]@%", " \t\x00\x1f\x7f\x80\xff"},
		{classFieldValue, " \t!~\x80\xff", "\x00\r\n\x1f\x7f"},
		{classHost, "aZ09-._~!$&'()*+,;=:[]%", "@/?# \t\"<>\\^`{|}\x80"},
		{classChunkExt, " \t;=\"!~\x80", "\x00\r\n\x7f"},
	}
	for _, tc := range cases {
		for _, c := range []byte(tc.in) {
			if charClasses[c]&tc.class == 0 {
				t.Errorf("class %#x should contain %q", tc.class, c)
			}
		}
		for _, c := range []byte(tc.out) {
			if charClasses[c]&tc.class != 0 {
				t.Errorf("class %#x should not contain %q", tc.class, c)
			}
		}
	}
}
