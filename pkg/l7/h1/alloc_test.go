package h1

import (
	"bytes"
	"io"
	"testing"
)

// browserRequest is a typical ~400-byte request from a browser.
const browserRequest = "GET /static/js/app.8f3a2c.js?v=20240101 HTTP/1.1\r\n" +
	"Host: www.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0\r\n" +
	"Accept: */*\r\n" +
	"Accept-Language: en-US,en;q=0.5\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Referer: https://www.example.com/\r\n" +
	"Connection: keep-alive\r\n" +
	"Cookie: session=3b1f9a7c2d; theme=dark\r\n" +
	"Sec-Fetch-Dest: script\r\n" +
	"Sec-Fetch-Mode: no-cors\r\n" +
	"Sec-Fetch-Site: same-origin\r\n" +
	"\r\n"

// typicalResponse is a typical response head with a small chunked body and
// a trailer.
const typicalResponse = "HTTP/1.1 200 OK\r\n" +
	"Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n" +
	"Content-Type: application/javascript; charset=utf-8\r\n" +
	"Transfer-Encoding: chunked\r\n" +
	"Cache-Control: public, max-age=31536000, immutable\r\n" +
	"ETag: \"8f3a2c\"\r\n" +
	"Vary: Accept-Encoding\r\n" +
	"Server: upstream\r\n" +
	"\r\n" +
	"10\r\nconsole.log(1);\n\r\n8;ext=1\r\nlet x=2;\r\n0\r\nX-Checksum: abc\r\n\r\n"

// readToEnd reads r to io.EOF through buf without allocating.
func readToEnd(r io.Reader, buf []byte) (int, error) {
	total := 0
	for {
		n, err := r.Read(buf)
		total += n
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func assertNoAllocs(t *testing.T, name string, f func()) {
	t.Helper()
	f() // warm up: grow every buffer to its working size
	if allocs := testing.AllocsPerRun(200, f); allocs != 0 {
		t.Errorf("%s: %.1f allocations per run, want 0", name, allocs)
	}
}

func TestZeroAllocRequestBodyResponse(t *testing.T) {
	reqRaw := []byte("POST /api/items HTTP/1.1\r\nHost: api.example.com\r\nContent-Type: application/json\r\n" +
		"Content-Length: 26\r\nConnection: keep-alive\r\n\r\n{\"name\":\"widget\",\"qty\":12}")
	respRaw := []byte(typicalResponse)
	var src bytes.Reader
	rd := NewReader(&src)
	var req Request
	var resp Response
	var trailer Header
	buf := make([]byte, 256)
	assertNoAllocs(t, "read request, body, response, chunked body", func() {
		src.Reset(reqRaw)
		rd.Reset(&src)
		if err := rd.ReadRequest(&req, Limits{}); err != nil {
			t.Fatal(err)
		}
		if n, err := readToEnd(rd.RequestBody(&req, nil), buf); err != nil || n != 26 {
			t.Fatal(n, err)
		}
		src.Reset(respRaw)
		rd.Reset(&src)
		if err := rd.ReadResponse(&resp, req.Method, Limits{}); err != nil {
			t.Fatal(err)
		}
		if n, err := readToEnd(rd.ResponseBody(&resp, &trailer), buf); err != nil || n != 24 {
			t.Fatal(n, err)
		}
	})
	assertNoAllocs(t, "body WriteTo", func() {
		src.Reset(respRaw)
		rd.Reset(&src)
		if err := rd.ReadResponse(&resp, []byte("GET"), Limits{}); err != nil {
			t.Fatal(err)
		}
		if _, err := rd.ResponseBody(&resp, &trailer).WriteTo(io.Discard); err != nil {
			t.Fatal(err)
		}
	})
}

// TestZeroAllocProxyPath runs what a proxy does with a request head: parse,
// strip hop-by-hop fields, add its own, write the head out, and relay a
// chunked body through a ChunkedWriter.
func TestZeroAllocProxyPath(t *testing.T) {
	raw := []byte(browserRequest)
	var src bytes.Reader
	rd := NewReader(&src)
	var req Request
	out := make([]byte, 0, 4096)
	var sink bytes.Buffer
	sink.Grow(4096)
	cw := NewChunkedWriter(&sink)
	var trailer Header
	trailer.Add("X-Checksum", "abc")
	assertNoAllocs(t, "proxy path", func() {
		src.Reset(raw)
		rd.Reset(&src)
		if err := rd.ReadRequest(&req, Limits{}); err != nil {
			t.Fatal(err)
		}
		StripHopByHop(&req.Header)
		req.Header.Add("X-Forwarded-For", "192.0.2.1")
		req.Header.Set("Host", "backend.internal")
		out = AppendRequestLine(out[:0], req.Method, req.Target, 1)
		out = req.Header.AppendTo(out)
		out = AppendContentLength(out, 0)
		out = append(out, "\r\n"...)
		sink.Reset()
		cw.Reset(&sink)
		if _, err := cw.Write(out[:100]); err != nil {
			t.Fatal(err)
		}
		if err := cw.Close(&trailer); err != nil {
			t.Fatal(err)
		}
	})
}

func TestZeroAllocAppendAndHeader(t *testing.T) {
	dst := make([]byte, 0, 1024)
	method, target, reason := []byte("GET"), []byte("/index.html"), []byte("OK")
	name, value := []byte("Content-Type"), []byte("text/html")
	assertNoAllocs(t, "Append functions", func() {
		dst = AppendRequestLine(dst[:0], method, target, 1)
		dst = AppendStatusLine(dst, 1, 200, reason)
		dst = AppendField(dst, name, value)
		dst = AppendContentLength(dst, 12345)
		dst = AppendChunkedEncoding(dst)
		_ = StatusText(404)
	})

	var h Header
	for _, f := range [][2]string{{"Host", "a"}, {"Accept", "*/*"}, {"Cookie", "x=1"}, {"User-Agent", "t"}} {
		h.Add(f[0], f[1])
	}
	assertNoAllocs(t, "Header Get/Set/Has/Values", func() {
		if v, ok := h.Get("cookie"); !ok || len(v) == 0 {
			t.Fatal("Get")
		}
		h.Set("Cookie", "x=2")
		h.Set("X-New", "1")
		h.Del("X-New")
		if !h.Has("user-agent") || h.Has("absent") {
			t.Fatal("Has")
		}
		for v := range h.Values("accept") {
			_ = v
		}
		for n, v := range h.All() {
			_, _ = n, v
		}
		_ = IsHopByHop(name)
		_ = ConnectionListed(&h, name)
	})
}
