package h2

import (
	"strings"
	"testing"

	"github.com/weir-lb/weir/pkg/l7/h1"
	"golang.org/x/net/http2/hpack"
)

// FuzzDecodeHeaderBlock decodes arbitrary HPACK blocks into a request.
// Whatever they hold, decoding must not panic, and a request it accepts
// must be one an HTTP/1.1 upstream reads as the proxy does: a token
// method, a visible-ASCII origin-form target, Host first and equal to
// the authority, valid lowercase names, values without CR, LF or NUL,
// no connection-specific field, and framing that agrees with itself.
func FuzzDecodeHeaderBlock(f *testing.F) {
	f.Add(encodeFields(":method", "GET", ":scheme", "https", ":path", "/", ":authority", "a"), true)
	f.Add(encodeFields(":method", "POST", ":scheme", "http", ":path", "/s/M", ":authority", "a:1",
		"content-type", "application/grpc", "te", "trailers", "content-length", "12"), false)
	f.Add(encodeFields(":method", "GET", ":scheme", "http", ":path", "/", "host", "h", "cookie", "a", "cookie", "b"), true)
	f.Add(encodeFields(":method", "GET", "x", "1", ":path", "/"), false)
	f.Add([]byte{0x3f, 0xe1, 0x1f, 0x82, 0x86, 0x84}, true) // table size update, then indexed fields
	f.Fuzz(func(t *testing.T, block []byte, endStream bool) {
		d := &RequestDecoder{MaxBytes: 4096, MaxFields: 64}
		dec := hpack.NewDecoder(4096, d.Field)
		dec.SetMaxStringLength(d.MaxBytes)
		var req h1.Request
		d.StartRequest(&req, endStream)
		status, err := decodeBlock(d, dec, block)
		if err != nil || status != 0 {
			return
		}
		checkAccepted(t, &req, endStream, d.Declared())
	})
}

func checkAccepted(t *testing.T, req *h1.Request, endStream bool, declared int64) {
	if len(req.Method) == 0 || len(req.Target) == 0 || len(req.Host) == 0 {
		t.Fatalf("accepted without method %q, target %q or host %q", req.Method, req.Target, req.Host)
	}
	for _, c := range req.Target {
		if c <= ' ' || c >= 0x7f {
			t.Fatalf("target %q", req.Target)
		}
	}
	if req.Target[0] != '/' && string(req.Target) != "*" {
		t.Fatalf("target %q not in origin form", req.Target)
	}
	if name, value := req.Header.At(0); string(name) != "host" || string(value) != string(req.Host) {
		t.Fatalf("first field %s: %s, want host: %s", name, value, req.Host)
	}
	for i := 0; i < req.Header.Len(); i++ {
		name, value := req.Header.At(i)
		if !ValidName(string(name)) || !ValidValue(string(value)) {
			t.Fatalf("field %q: %q", name, value)
		}
		switch string(name) {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "content-length":
			t.Fatalf("field %s passed", name)
		case "te":
			if !strings.EqualFold(string(value), "trailers") {
				t.Fatalf("te: %s passed", value)
			}
		case "host":
			if i > 0 {
				t.Fatalf("a second host field: %s", value)
			}
		}
	}
	switch {
	case endStream && (req.ContentLength != 0 || req.Chunked):
		t.Fatalf("a request without a body has length %d, chunked %v", req.ContentLength, req.Chunked)
	case !endStream && declared >= 0 && (req.ContentLength != declared || req.Chunked):
		t.Fatalf("content-length %d read as %d, chunked %v", declared, req.ContentLength, req.Chunked)
	case !endStream && declared < 0 && (req.ContentLength != -1 || !req.Chunked):
		t.Fatalf("a body of unknown length read as length %d, chunked %v", req.ContentLength, req.Chunked)
	}
}
