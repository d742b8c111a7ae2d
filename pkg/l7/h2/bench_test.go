package h2

import (
	"testing"

	"github.com/weir-lb/weir/pkg/l7/h1"
	"golang.org/x/net/http2/hpack"
)

// BenchmarkDecodeRequest decodes a browser-like request head into an
// h1.Request, from fields as the HPACK decoder emits them.
func BenchmarkDecodeRequest(b *testing.B) {
	fields, err := hpack.NewDecoder(4096, nil).DecodeFull(encodeFields(
		":method", "GET", ":scheme", "https", ":path", "/static/app.js?v=42", ":authority", "www.example.com",
		"user-agent", "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0",
		"accept", "*/*", "accept-language", "en-US,en;q=0.5", "accept-encoding", "gzip, deflate, br",
		"referer", "https://www.example.com/", "cookie", "session=abc123", "cookie", "theme=dark"))
	if err != nil {
		b.Fatal(err)
	}
	d := &RequestDecoder{MaxBytes: 64 << 10, MaxFields: 100}
	var req h1.Request
	b.ReportAllocs()
	for b.Loop() {
		req.Header.Reset()
		req.Method, req.Target, req.Host = req.Method[:0], req.Target[:0], req.Host[:0]
		d.StartRequest(&req, true)
		for _, f := range fields {
			d.Field(f)
		}
		if _, err := d.FinishRequest(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeResponseHead encodes a typical response head.
func BenchmarkEncodeResponseHead(b *testing.B) {
	names := [][]byte{[]byte("Content-Type"), []byte("Cache-Control"), []byte("Server"), []byte("X-Request-Id")}
	values := [][]byte{[]byte("text/javascript"), []byte("max-age=3600"), []byte("weir"), []byte("0123456789abcdef0123456789abcdef")}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		p := AppendStatus(buf[:0], 200)
		for i := range names {
			p = AppendField(p, names[i], values[i])
		}
		buf = AppendContentLength(p, []byte("12345"))
	}
}
