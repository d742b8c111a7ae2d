package h1

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestAppendFunctions(t *testing.T) {
	cases := []struct {
		got, want string
	}{
		{string(AppendRequestLine([]byte("x"), []byte("GET"), []byte("/p?q"), 1)), "xGET /p?q HTTP/1.1\r\n"},
		{string(AppendRequestLine(nil, []byte("OPTIONS"), []byte("*"), 0)), "OPTIONS * HTTP/1.0\r\n"},
		{string(AppendStatusLine(nil, 1, 200, []byte("OK"))), "HTTP/1.1 200 OK\r\n"},
		{string(AppendStatusLine(nil, 0, 404, nil)), "HTTP/1.0 404 \r\n"},
		{string(AppendField(nil, []byte("Host"), []byte("a:1"))), "Host: a:1\r\n"},
		{string(AppendField(nil, []byte("Empty"), nil)), "Empty: \r\n"},
		{string(AppendContentLength(nil, 1234567890123)), "Content-Length: 1234567890123\r\n"},
		{string(AppendChunkedEncoding(nil)), "Transfer-Encoding: chunked\r\n"},
	}
	for _, tc := range cases {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestChunkedWriter(t *testing.T) {
	var out bytes.Buffer
	cw := NewChunkedWriter(&out)
	for _, p := range []string{"hello", "", strings.Repeat("x", 0x1a)} {
		if n, err := cw.Write([]byte(p)); n != len(p) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", p, n, err)
		}
	}
	var trailer Header
	trailer.Add("X-Sum", "7")
	if err := cw.Close(&trailer); err != nil {
		t.Fatal(err)
	}
	want := "5\r\nhello\r\n1a\r\n" + strings.Repeat("x", 0x1a) + "\r\n0\r\nX-Sum: 7\r\n\r\n"
	if out.String() != want {
		t.Fatalf("encoded %q, want %q", out.String(), want)
	}
	data, tr, class := decodeChunked(&out, Limits{})
	if class != "ok" || string(data) != "hello"+strings.Repeat("x", 0x1a) || tr != `X-Sum="7";` {
		t.Fatalf("decoding our own output: %q %s %s", data, tr, class)
	}

	out.Reset()
	cw.Reset(&out)
	if err := cw.Close(nil); err != nil || out.String() != "0\r\n\r\n" {
		t.Fatalf("empty body encoded as %q, %v", out.String(), err)
	}
}

func TestChunkedWriterReportsDataBytesOnShortWrite(t *testing.T) {
	boom := errors.New("boom")
	cases := []struct {
		limit int
		want  int
	}{{2, 0}, {3, 0}, {5, 2}, {8, 5}, {9, 5}}
	for _, tc := range cases {
		cw := NewChunkedWriter(&limitedWriter{n: tc.limit, err: boom})
		n, err := cw.Write([]byte("hello"))
		if n != tc.want || !errors.Is(err, boom) {
			t.Errorf("writer accepting %d bytes: Write = %d, %v; want %d, boom", tc.limit, n, err, tc.want)
		}
	}
}

// limitedWriter accepts n bytes and then fails.
type limitedWriter struct {
	n   int
	err error
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if len(p) <= l.n {
		l.n -= len(p)
		return len(p), nil
	}
	n := l.n
	l.n = 0
	return n, l.err
}

// TestChunkedWriterOverSocket checks the writev path: each chunk reaches
// the peer intact.
func TestChunkedWriterOverSocket(t *testing.T) {
	client, server := tcpPair(t)
	received := make(chan []byte, 1)
	go func() {
		rd := NewReader(server)
		data, _ := io.ReadAll(rd.BodyChunked(nil))
		received <- data
	}()
	cw := NewChunkedWriter(client)
	var want []byte
	for i := range 20 {
		p := bytes.Repeat([]byte{byte('A' + i)}, 1+i*1000)
		want = append(want, p...)
		if _, err := cw.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := cw.Close(nil); err != nil {
		t.Fatal(err)
	}
	if got := <-received; !bytes.Equal(got, want) {
		t.Fatalf("peer decoded %d bytes, want %d", len(got), len(want))
	}
}

func TestIsHopByHop(t *testing.T) {
	hop := []string{"Connection", "keep-alive", "PROXY-CONNECTION", "te", "Trailer", "transfer-encoding", "upgrade", "Proxy-Authenticate", "proxy-authorization"}
	for _, name := range hop {
		if !IsHopByHop([]byte(name)) {
			t.Errorf("IsHopByHop(%q) = false", name)
		}
	}
	for _, name := range []string{"Host", "Trailers", "Content-Length", "Proxy", "Upgrade-Insecure-Requests", "Tes", ""} {
		if IsHopByHop([]byte(name)) {
			t.Errorf("IsHopByHop(%q) = true", name)
		}
	}
}

func TestConnectionListedAndStripHopByHop(t *testing.T) {
	var h Header
	h.Add("X-Before", "1")
	h.Add("Connection", "X-Secret, , keep-alive")
	h.Add("X-Secret", "s")
	h.Add("Host", "a")
	h.Add("connection", "x-other")
	h.Add("X-Other", "o")
	h.Add("Keep-Alive", "timeout=5")
	h.Add("Transfer-Encoding", "chunked")
	h.Add("Upgrade", "websocket")
	h.Add("X-After", "2")
	for name, want := range map[string]bool{"x-secret": true, "X-OTHER": true, "keep-alive": true, "Host": false, "X-Before": false, "": false} {
		if got := ConnectionListed(&h, []byte(name)); got != want {
			t.Errorf("ConnectionListed(%q) = %t", name, got)
		}
	}
	StripHopByHop(&h)
	if got := fieldsOf(&h); got != `X-Before="1";Host="a";X-After="2";` {
		t.Fatalf("after StripHopByHop: %s", got)
	}
}

func TestStripHopByHopOnParsedRequest(t *testing.T) {
	raw := "GET / HTTP/1.1\r\nX-Drop: d\r\nHost: a\r\nConnection: close, X-Drop\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nAccept: */*\r\n\r\n"
	var req Request
	if err := NewReader(strings.NewReader(raw)).ReadRequest(&req, Limits{}); err != nil {
		t.Fatal(err)
	}
	StripHopByHop(&req.Header)
	if got := fieldsOf(&req.Header); got != `Host="a";Accept="*/*";` {
		t.Fatalf("after StripHopByHop: %s", got)
	}
}

func TestStatusText(t *testing.T) {
	cases := map[int]string{100: "Continue", 200: "OK", 204: "No Content", 304: "Not Modified", 404: "Not Found",
		413: "Content Too Large", 431: "Request Header Fields Too Large", 502: "Bad Gateway", 505: "HTTP Version Not Supported",
		0: "", 99: "", 299: "", 600: "", 999: "", -1: ""}
	for code, want := range cases {
		if got := StatusText(code); got != want {
			t.Errorf("StatusText(%d) = %q, want %q", code, got, want)
		}
	}
	// Every code net/http knows has a reason here too.
	for code := 100; code < 600; code++ {
		if (http.StatusText(code) != "") != (StatusText(code) != "") {
			t.Errorf("StatusText(%d) = %q, net/http has %q", code, StatusText(code), http.StatusText(code))
		}
	}
}
