package proxyproto

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"
)

// FuzzRead checks that Read never panics, consumes an accepted header
// exactly (up to its CRLF, or the length it declares), and that what it
// accepts is written back as a header it reads the same.
func FuzzRead(f *testing.F) {
	for _, tc := range golden {
		if tc.v1 != "" {
			f.Add([]byte(tc.v1 + "GET /"))
		} else {
			f.Add(unhex(f, tc.v2))
		}
	}
	f.Add(unhex(f, sig+"21 11 0017 7f000001 7f000002 0001 0002 04 0003 616263 01 0002 6832"))
	f.Add([]byte("PROXY UNKNOWN whatever\r\n"))
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		h, err := Read(iotest.OneByteReader(r))
		if err != nil {
			return
		}
		consumed := len(in) - r.Len()
		want := 0
		switch h.Version {
		case V1:
			want = bytes.Index(in, []byte("\r\n")) + 2
		case V2:
			want = 16 + int(in[14])<<8 + int(in[15])
		default:
			t.Fatalf("Read returned version %d", h.Version)
		}
		if consumed != want {
			t.Fatalf("Read consumed %d bytes of %q, the header has %d", consumed, in, want)
		}
		// All at once, Read gives the same.
		if h2, err := Read(bytes.NewReader(in)); err != nil || h2 != h {
			t.Fatalf("Read all at once = %+v, %v; one byte at a time %+v", h2, err, h)
		}
		b, err := h.Append(nil)
		if err != nil {
			t.Fatalf("Append(%+v) of an accepted header: %v", h, err)
		}
		r2 := bytes.NewReader(append(b, "rest"...))
		h2, err := Read(r2)
		if err != nil || h2 != h {
			t.Fatalf("Read(Append(%+v)) = %+v, %v", h, h2, err)
		}
		if left, _ := io.ReadAll(r2); string(left) != "rest" {
			t.Fatalf("Read of %q left %q", b, left)
		}
	})
}
