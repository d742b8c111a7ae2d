package h2

import (
	"bytes"
	"strings"
	"testing"

	"github.com/weir-lb/weir/pkg/l7/h1"
	"golang.org/x/net/http2/hpack"
)

// decodeBlock runs block through an HPACK decoder into d, as the server
// does, and finishes the request.
func decodeBlock(d *RequestDecoder, dec *hpack.Decoder, block []byte) (int, error) {
	if _, err := dec.Write(block); err != nil {
		return 0, err
	}
	if err := dec.Close(); err != nil {
		return 0, err
	}
	return d.FinishRequest()
}

func encodeFields(fields ...string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return buf.Bytes()
}

func newDecoder() (*RequestDecoder, *hpack.Decoder) {
	d := &RequestDecoder{MaxBytes: 1024, MaxFields: 16}
	return d, hpack.NewDecoder(4096, d.Field)
}

func headerString(h *h1.Header) string {
	var b strings.Builder
	for i := 0; i < h.Len(); i++ {
		name, value := h.At(i)
		b.WriteString(string(name) + ": " + string(value) + "\n")
	}
	return b.String()
}

func TestDecodeRequest(t *testing.T) {
	base := []string{":method", "GET", ":scheme", "https", ":path", "/a?b", ":authority", "example.com"}
	with := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }
	tests := []struct {
		name      string
		fields    []string
		endStream bool
		status    int
		bad       string // part of the error; "" for none
		header    string
		length    int64
		chunked   bool
	}{
		{name: "get", fields: base, endStream: true, header: "host: example.com\n"},
		{name: "fields after host", fields: with("accept", "*/*", "te", "trailers"), endStream: true,
			header: "host: example.com\naccept: */*\n"}, // te is hop-by-hop
		{name: "cookies joined", fields: with("cookie", "a=1", "x-y", "z", "cookie", "b=2"), endStream: true,
			header: "host: example.com\nx-y: z\ncookie: a=1; b=2\n"},
		{name: "body of known length", fields: with("content-length", "5"), header: "host: example.com\n", length: 5},
		{name: "body of unknown length", fields: base, header: "host: example.com\n", length: -1, chunked: true},
		{name: "host without authority", fields: []string{":method", "GET", ":scheme", "http", ":path", "/", "host", "h:80"},
			endStream: true, header: "host: h:80\n"},
		{name: "host equal to authority", fields: with("host", "example.com"), endStream: true, header: "host: example.com\n"},
		{name: "grpc", fields: []string{":method", "POST", ":scheme", "http", ":path", "/pkg.Svc/M", ":authority", "a",
			"content-type", "application/grpc", "te", "trailers", "grpc-timeout", "1S"},
			header: "host: a\ncontent-type: application/grpc\ngrpc-timeout: 1S\n", length: -1, chunked: true},
		{name: "no authority", fields: []string{":method", "GET", ":scheme", "http", ":path", "/"}, endStream: true, status: 400},
		{name: "connect", fields: []string{":method", "CONNECT", ":authority", "a:443"}, endStream: true, status: 501},
		{name: "too many fields", fields: with(strings.Split(strings.Repeat("x-a,1,", 20), ",")[:40]...), endStream: true, status: 431},
		{name: "uppercase name", fields: with("X-Up", "1"), bad: "invalid field"},
		{name: "connection field", fields: with("connection", "close"), bad: "connection-specific"},
		{name: "transfer-encoding", fields: with("transfer-encoding", "chunked"), bad: "connection-specific"},
		{name: "te gzip", fields: with("te", "gzip"), bad: "te other"},
		{name: "value with LF", fields: with("x-a", "1\nb: 2"), bad: "invalid field"},
		{name: "edge whitespace", fields: with("x-a", " 1"), bad: "invalid field"},
		{name: "pseudo after regular", fields: append([]string{":method", "GET", "x-a", "1"}, base[2:]...), bad: "pseudo-header after"},
		{name: "pseudo last", fields: with("x-a", "1", ":method", "GET"), bad: "pseudo-header after"},
		{name: "unknown pseudo", fields: with(":protocol", "websocket"), bad: "unknown pseudo"},
		{name: "unknown pseudo first", fields: append([]string{":protocol", "websocket"}, base...), bad: "unknown pseudo"},
		{name: "duplicate path", fields: append([]string{":path", "/x"}, base...), bad: "duplicate :path"},
		{name: "path with space", fields: []string{":method", "GET", ":scheme", "http", ":path", "/a b", ":authority", "a"}, bad: "invalid :path"},
		{name: "absolute path", fields: []string{":method", "GET", ":scheme", "http", ":path", "http://a/", ":authority", "a"}, bad: "invalid :path"},
		{name: "asterisk outside options", fields: []string{":method", "GET", ":scheme", "http", ":path", "*", ":authority", "a"}, endStream: true, bad: "outside OPTIONS"},
		{name: "userinfo", fields: []string{":method", "GET", ":scheme", "http", ":path", "/", ":authority", "u@a"}, bad: "invalid :authority"},
		{name: "host differs", fields: with("host", "other"), bad: "host differs"},
		{name: "duplicate host", fields: []string{":method", "GET", ":scheme", "http", ":path", "/", "host", "a", "host", "b"}, bad: "duplicate host"},
		{name: "conflicting lengths", fields: with("content-length", "5", "content-length", "6"), bad: "invalid content-length"},
		{name: "signed length", fields: with("content-length", "+5"), bad: "invalid content-length"},
		{name: "length without body", fields: with("content-length", "5"), endStream: true, bad: "content-length without"},
		{name: "no method", fields: base[2:], bad: "no :method"},
		{name: "no path", fields: []string{":method", "GET", ":scheme", "http", ":authority", "a"}, bad: "no :scheme or :path"},
	}
	d, dec := newDecoder()
	var req h1.Request
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req.Header.Reset()
			req.Method, req.Target, req.Host, req.Expect100 = req.Method[:0], req.Target[:0], req.Host[:0], false
			d.StartRequest(&req, tc.endStream)
			status, err := decodeBlock(d, dec, encodeFields(tc.fields...))
			switch {
			case tc.bad != "":
				if err == nil || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("error %v, want one saying %q", err, tc.bad)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if status != tc.status {
				t.Fatalf("status %d, want %d", status, tc.status)
			}
			if status != 0 {
				return
			}
			if got := headerString(&req.Header); got != tc.header {
				t.Errorf("header\n%s\nwant\n%s", got, tc.header)
			}
			if req.ContentLength != tc.length || req.Chunked != tc.chunked || req.Minor != 1 || !req.KeepAlive {
				t.Errorf("framing: length %d chunked %v minor %d keep-alive %v", req.ContentLength, req.Chunked, req.Minor, req.KeepAlive)
			}
			if d.Declared() != max(tc.length, -1) && !tc.endStream {
				t.Errorf("declared %d", d.Declared())
			}
		})
	}
}

func TestDecodeTrailers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields []string
		bad    string
		want   string
	}{
		{"grpc status", []string{"grpc-status", "0", "grpc-message", "ok"}, "", "grpc-status: 0\ngrpc-message: ok\n"},
		{"pseudo", []string{":status", "200"}, "pseudo-header in trailers", ""},
		{"content-length", []string{"content-length", "3"}, "not allowed in trailers", ""},
		{"uppercase", []string{"X-A", "1"}, "invalid trailer field", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, dec := newDecoder()
			d.StartTrailers()
			if _, err := dec.Write(encodeFields(tc.fields...)); err != nil {
				t.Fatal(err)
			}
			if err := d.Err(); tc.bad != "" {
				if err == nil || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("error %v, want one saying %q", err, tc.bad)
				}
				return
			} else if err != nil {
				t.Fatal(err)
			}
			if got := headerString(&d.Trailers); got != tc.want {
				t.Errorf("trailers\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// TestDiscardKeepsNothing: a block decoded for the HPACK state only
// touches no request, and the next block starts clean.
func TestDiscardKeepsNothing(t *testing.T) {
	d, dec := newDecoder()
	d.StartDiscard()
	if _, err := dec.Write(encodeFields("X-Bad", "1", ":nonsense", "x")); err != nil {
		t.Fatal(err)
	}
	if d.Err() != nil || d.TooLarge() {
		t.Fatalf("a discarded block was checked: %v", d.Err())
	}
	var req h1.Request
	d.StartRequest(&req, true)
	if status, err := decodeBlock(d, dec, encodeFields(":method", "GET", ":scheme", "http", ":path", "/", ":authority", "a")); status != 0 || err != nil {
		t.Fatalf("status %d, error %v", status, err)
	}
}

// TestDecodingAllocatesNothing feeds decoded fields to a warm decoder:
// the HPACK decoder's own string allocations are not the codec's.
func TestDecodingAllocatesNothing(t *testing.T) {
	d := &RequestDecoder{MaxBytes: 1024, MaxFields: 16}
	fields, err := hpack.NewDecoder(4096, nil).DecodeFull(encodeFields(":method", "POST", ":scheme", "https", ":path", "/x", ":authority", "a.example",
		"content-type", "application/grpc", "cookie", "a=1", "cookie", "b=2", "user-agent", "test"))
	if err != nil {
		t.Fatal(err)
	}
	var req h1.Request
	run := func() {
		req.Header.Reset()
		req.Method, req.Target, req.Host = req.Method[:0], req.Target[:0], req.Host[:0]
		d.StartRequest(&req, false)
		for _, f := range fields {
			d.Field(f)
		}
		if _, err := d.FinishRequest(); err != nil {
			t.Fatal(err)
		}
	}
	run()
	if allocs := testing.AllocsPerRun(100, run); allocs != 0 {
		t.Errorf("decoding a request head allocates %v times", allocs)
	}
}
