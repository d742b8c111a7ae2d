package accesslog

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAppendJSONEscapes(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", ""},
		{"plain /path?q=1", "plain /path?q=1"},
		{`"\`, `\"\\`},
		{"\n\r\t", `\n\r\t`},
		{"\x00\x1f\x7f", `\u0000\u001F\u007F`},
		{"\u0085", `\u0085`},             // NEL: a line end to some readers
		{"\u2028\u2029", `\u2028\u2029`}, // line and paragraph separators
		{"café ☕ 𝄞", "café ☕ 𝄞"},
		{"\xff\xfe", `\ufffd\ufffd`},
		{"\xc3", `\ufffd`},
		{"\xed\xa0\x80", `\ufffd\ufffd\ufffd`}, // a surrogate, invalid in UTF-8
		{"<&>", "<&>"},
	}
	for _, tt := range tests {
		if got := string(appendJSON(nil, tt.in, 1000)); got != tt.want {
			t.Errorf("appendJSON(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if got := string(appendJSON(nil, []byte(tt.in), 1000)); got != tt.want {
			t.Errorf("appendJSON([]byte(%q)) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestCutAtTheBound(t *testing.T) {
	tests := []struct {
		in    string
		limit int
		text  string
		json  string
	}{
		{"abcdefgh", 8, "abcdefgh", "abcdefgh"},                      // fits exactly
		{"abcdefghi", 8, "abcde...", "abcde..."},                     // one over
		{"a\nbcdefgh", 7, `a...`, `a\nb...`},                         // an escape is never split
		{"ééééé", 8, `\xC3...`, "éé..."},                             // nor a character
		{"", 8, "-", ""},                                             // missing, not cut
		{strings.Repeat("\x01", 3), 12, `\x01\x01\x01`, `\u0001...`}, // 12 bytes fit in text
	}
	for _, tt := range tests {
		if got := string(appendText(nil, tt.in, tt.limit)); got != tt.text {
			t.Errorf("appendText(%q, %d) = %s, want %s", tt.in, tt.limit, got, tt.text)
		}
		if got := string(appendJSON(nil, tt.in, tt.limit)); got != tt.json {
			t.Errorf("appendJSON(%q, %d) = %s, want %s", tt.in, tt.limit, got, tt.json)
		}
	}
}

// FuzzEscape checks both escapings on any input: text lines are
// printable ASCII that unescapes to the input, JSON strings decode as
// encoding/json's do, and a value cut to its bound is a prefix of the
// whole escaping.
func FuzzEscape(f *testing.F) {
	for _, v := range hostileValues {
		f.Add([]byte(v.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		text := appendText(nil, in, 1<<30)
		for _, b := range text {
			if b < 0x20 || b >= 0x7f || b == '"' {
				t.Fatalf("raw %#02x in %q", b, text)
			}
		}
		if len(in) > 0 && !bytes.Equal(unescapeText(t, text), in) {
			t.Fatalf("text %q does not unescape to %q", text, in)
		}

		js := appendJSON(nil, in, 1<<30)
		if !utf8.Valid(js) || bytes.ContainsAny(js, "\x00\n\r\u0085\u2028\u2029") {
			t.Fatalf("invalid UTF-8 or a raw line end in %q", js)
		}
		var got string
		if err := json.Unmarshal([]byte(`"`+string(js)+`"`), &got); err != nil {
			t.Fatalf("%q: %v", js, err)
		}
		if want := decodedLikeEncodingJSON(t, string(in)); got != want {
			t.Fatalf("decodes to %q, want %q", got, want)
		}

		for _, c := range []struct {
			cut, whole []byte
		}{{appendText(nil, in, 16), text}, {appendJSON(nil, in, 16), js}} {
			kept, ok := bytes.CutSuffix(c.cut, []byte(truncated))
			if len(c.cut) > 16 || (!bytes.Equal(c.cut, c.whole) && (!ok || !bytes.HasPrefix(c.whole, kept))) {
				t.Fatalf("cut to %q, from %q", c.cut, c.whole)
			}
		}
	})
}

// unescapeText reverses appendText's \xHH escapes.
func unescapeText(t *testing.T, s []byte) []byte {
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		if i+3 >= len(s) || s[i+1] != 'x' {
			t.Fatalf("a bare backslash at %d in %q", i, s)
		}
		b, err := hex.DecodeString(string(s[i+2 : i+4]))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
		i += 3
	}
	return out
}
