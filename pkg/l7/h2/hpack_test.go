package h2

import (
	"bytes"
	"fmt"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// TestAppendInt checks the integer encoding against RFC 7541 Appendix C.1.
func TestAppendInt(t *testing.T) {
	for _, tc := range []struct {
		high byte
		n    uint
		v    uint64
		want []byte
	}{
		{0, 5, 10, []byte{0x0a}},
		{0, 5, 1337, []byte{0x1f, 0x9a, 0x0a}},
		{0, 8, 42, []byte{0x2a}},
		{0x20, 5, 31, []byte{0x3f, 0x00}},
		{0x80, 7, 126, []byte{0xfe}},
		{0x80, 7, 127, []byte{0xff, 0x00}},
	} {
		if got := AppendInt(nil, tc.high, tc.n, tc.v); !bytes.Equal(got, tc.want) {
			t.Errorf("AppendInt(%#x, %d, %d) = % x, want % x", tc.high, tc.n, tc.v, got, tc.want)
		}
	}
}

// TestEncodedFieldsDecode decodes what the encoder appends with
// x/net/http2's decoder: every field comes back, names lowercased.
func TestEncodedFieldsDecode(t *testing.T) {
	long := bytes.Repeat([]byte("x"), 300)
	tests := []struct {
		name    string
		encode  func([]byte) []byte
		want    []hpack.HeaderField
		maxSize uint32
	}{
		{"static status", func(b []byte) []byte { return AppendStatus(b, 200) }, []hpack.HeaderField{{Name: ":status", Value: "200"}}, 4096},
		{"other status", func(b []byte) []byte { return AppendStatus(b, 429) }, []hpack.HeaderField{{Name: ":status", Value: "429"}}, 4096},
		{"every static status", func(b []byte) []byte {
			for _, s := range []int{204, 206, 304, 400, 404, 500} {
				b = AppendStatus(b, s)
			}
			return b
		}, []hpack.HeaderField{{Name: ":status", Value: "204"}, {Name: ":status", Value: "206"}, {Name: ":status", Value: "304"},
			{Name: ":status", Value: "400"}, {Name: ":status", Value: "404"}, {Name: ":status", Value: "500"}}, 4096},
		{"static name", func(b []byte) []byte { return AppendField(b, []byte("Content-Type"), []byte("text/plain")) },
			[]hpack.HeaderField{{Name: "content-type", Value: "text/plain"}}, 4096},
		{"literal name", func(b []byte) []byte { return AppendField(b, []byte("Grpc-Status"), []byte("14")) },
			[]hpack.HeaderField{{Name: "grpc-status", Value: "14"}}, 4096},
		{"long name and value", func(b []byte) []byte { return AppendField(b, bytes.ToUpper(long[:40]), long) },
			[]hpack.HeaderField{{Name: string(long[:40]), Value: string(long)}}, 4096},
		{"empty value", func(b []byte) []byte { return AppendField(b, []byte("x-empty"), nil) },
			[]hpack.HeaderField{{Name: "x-empty", Value: ""}}, 4096},
		{"content-length", func(b []byte) []byte { return AppendContentLength(b, []byte("1234")) },
			[]hpack.HeaderField{{Name: "content-length", Value: "1234"}}, 4096},
		{"table size update", func(b []byte) []byte { return AppendStatus(AppendTableSizeUpdate(b, 0), 200) },
			[]hpack.HeaderField{{Name: ":status", Value: "200"}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []hpack.HeaderField
			dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) { got = append(got, f) })
			dec.SetAllowedMaxDynamicTableSize(tc.maxSize)
			if _, err := dec.Write(tc.encode(nil)); err != nil {
				t.Fatal(err)
			}
			if err := dec.Close(); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("decoded %v, want %v", got, tc.want)
			}
			for _, f := range got {
				if f.Sensitive {
					t.Errorf("%s decoded as never-indexed", f.Name)
				}
			}
		})
	}
}

// TestStaticNameIndex checks every index against the decoder's own
// static table: a field named by index n decodes to that name.
func TestStaticNameIndex(t *testing.T) {
	for _, name := range []string{":authority", "accept-charset", "accept-encoding", "accept-language", "accept-ranges",
		"accept", "access-control-allow-origin", "age", "allow", "authorization", "cache-control", "content-disposition",
		"content-encoding", "content-language", "content-length", "content-location", "content-range", "content-type",
		"cookie", "date", "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since", "if-none-match",
		"if-range", "if-unmodified-since", "last-modified", "link", "location", "max-forwards", "proxy-authenticate",
		"proxy-authorization", "range", "referer", "refresh", "retry-after", "server", "set-cookie",
		"strict-transport-security", "transfer-encoding", "user-agent", "vary", "via", "www-authenticate"} {
		idx := StaticNameIndex([]byte(name))
		if idx == 0 {
			t.Errorf("%s: not indexed", name)
			continue
		}
		b := AppendString(AppendInt(nil, 0, 4, uint64(idx)), "v")
		fields, err := hpack.NewDecoder(4096, nil).DecodeFull(b)
		if err != nil || len(fields) != 1 || fields[0].Name != name {
			t.Errorf("%s: index %d decodes to %v (%v)", name, idx, fields, err)
		}
	}
	if idx := StaticNameIndex([]byte("x-not-there")); idx != 0 {
		t.Errorf("x-not-there indexed as %d", idx)
	}
}

func TestEncodingAllocatesNothing(t *testing.T) {
	buf := make([]byte, 0, 512)
	name, value := []byte("X-Custom-Header"), []byte("some value")
	allocs := testing.AllocsPerRun(100, func() {
		b := AppendStatus(buf[:0], 503)
		b = AppendField(b, name, value)
		b = AppendContentLength(b, []byte("42"))
		buf = b
	})
	if allocs != 0 {
		t.Errorf("encoding a head allocates %v times", allocs)
	}
}
