package h1

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// chunkedCases: an encoded body followed by "NEXT" (the start of whatever
// follows on the connection), and the decoded data, trailer fields and
// error class it must give.
var chunkedCases = []struct {
	name, raw, data, trailer, class string
}{
	{"one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello", "", "ok"},
	{"empty body", "0\r\n\r\n", "", "", "ok"},
	{"several chunks", "3\r\nabc\r\n1\r\nd\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n", "abcd0123456789abcdef", "", "ok"},
	{"upper-case hex", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789", "", "ok"},
	{"leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello", "", "ok"},
	{"16 digits", "0000000000000005\r\nhello\r\n0\r\n\r\n", "hello", "", "ok"},
	{"LF after size lines", "5\nhello\r\n0\n\n", "hello", "", "ok"},
	{"extension", "5;name=value\r\nhello\r\n0;last\r\n\r\n", "hello", "", "ok"},
	{"extension with quoted string", "5;a=\"x y\";b\r\nhello\r\n0\r\n\r\n", "hello", "", "ok"},
	{"whitespace before extension", "5 \t;a=b\r\nhello\r\n0\r\n\r\n", "hello", "", "ok"},
	{"trailer", "5\r\nhello\r\n0\r\nX-Sum: 42\r\nY: a b \r\n\r\n", "hello", `X-Sum="42";Y="a b";`, "ok"},
	{"trailer with LF", "5\r\nhello\r\n0\nX-Sum: 42\n\n", "hello", `X-Sum="42";`, "ok"},
	{"data containing CRLF", "4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n", "", "ok"},

	{"no digits", "\r\nhello\r\n0\r\n\r\n", "", "", "400"},
	{"not hex", "g\r\nhello\r\n0\r\n\r\n", "", "", "400"},
	{"negative", "-5\r\nhello\r\n0\r\n\r\n", "", "", "400"},
	{"0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", "", "", "400"},
	{"plus sign", "+5\r\nhello\r\n0\r\n\r\n", "", "", "400"},
	{"leading space", " 5\r\nhello\r\n0\r\n\r\n", "", "", "400"},
	{"trailing space", "5 \r\nhello\r\n0\r\n\r\n", "", "", "400"},
	{"trailing tab", "5\t\r\nhello\r\n0\r\n\r\n", "", "", "400"},
	{"17 digits", "00000000000000005\r\nhello\r\n0\r\n\r\n", "", "", "400"},
	{"over 2^62", "4000000000000001\r\nhello\r\n0\r\n\r\n", "", "", "400"},
	{"all F", "FFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n", "", "", "400"},
	{"overflow", "1000000000000000000000\r\n", "", "", "400"},
	{"bare CR in size line", "5\r;a\r\nhello\r\n0\r\n\r\n", "", "", "400"},
	{"CR CR LF after size", "5\r\r\nhello\r\n0\r\n\r\n", "", "", "400"},
	{"control byte in extension", "5;a\x01b\r\nhello\r\n0\r\n\r\n", "", "", "400"},
	{"NUL in extension", "5;a\x00\r\nhello\r\n0\r\n\r\n", "", "", "400"},
	{"junk after size", "5x\r\nhello\r\n0\r\n\r\n", "", "", "400"},
	{"data longer than size", "5\r\nhelloX\r\n0\r\n\r\n", "hello", "", "400"},
	{"data shorter than size", "5\r\nhell\r\n0\r\n\r\n", "hell\r", "", "400"},
	{"LF only after data", "5\r\nhello\n0\r\n\r\n", "hello", "", "400"},
	{"CR only after data", "5\r\nhello\r0\r\n\r\n", "hello", "", "400"},
	{"nothing after data", "5\r\nhello0\r\n\r\n", "hello", "", "400"},
	{"trailer obs-fold", "0\r\nX: a\r\n b\r\n\r\n", "", "", "400"},
	{"trailer without colon", "0\r\nbroken\r\n\r\n", "", "", "400"},
	{"trailer space before colon", "0\r\nX : a\r\n\r\n", "", "", "400"},
	{"trailer bare CR", "0\r\nX: a\rb\r\n\r\n", "", "", "400"},
	{"bare CR ends body", "0\r\n\r\r\n", "", "", "400"},
	{"size line too long", "5;" + strings.Repeat("e", maxChunkLine) + "\r\nhello\r\n0\r\n\r\n", "", "", "400"},

	{"empty input", "", "", "", "unexpected-eof"},
	{"truncated size", "5", "", "", "unexpected-eof"},
	{"truncated data", "5\r\nhel", "hel", "", "unexpected-eof"},
	{"truncated before CRLF", "5\r\nhello", "hello", "", "unexpected-eof"},
	{"truncated inside CRLF", "5\r\nhello\r", "hello", "", "unexpected-eof"},
	{"truncated before last chunk", "5\r\nhello\r\n", "hello", "", "unexpected-eof"},
	{"truncated before trailer end", "5\r\nhello\r\n0\r\n", "hello", "", "unexpected-eof"},
	{"truncated inside trailer", "0\r\nX: 1\r\n", "", "", "unexpected-eof"},
}

func TestChunkedBody(t *testing.T) {
	for _, tc := range chunkedCases {
		input := tc.raw
		if tc.class == "ok" {
			input += "NEXT"
		}
		for srcName, src := range sources(input) {
			t.Run(tc.name+"/"+srcName+"/Read", func(t *testing.T) {
				rd := NewReader(src())
				var trailer Header
				data, err := io.ReadAll(rd.BodyChunked(&trailer))
				checkChunked(t, rd, tc.data, tc.trailer, tc.class, data, &trailer, err)
			})
			t.Run(tc.name+"/"+srcName+"/WriteTo", func(t *testing.T) {
				rd := NewReader(src())
				var trailer Header
				var out bytes.Buffer
				_, err := rd.BodyChunked(&trailer).WriteTo(&out)
				checkChunked(t, rd, tc.data, tc.trailer, tc.class, out.Bytes(), &trailer, err)
			})
		}
	}
}

func checkChunked(t *testing.T, rd *Reader, wantData, wantTrailer, wantClass string, data []byte, trailer *Header, err error) {
	t.Helper()
	if got := errClass(err); got != wantClass {
		t.Fatalf("error %s (%v), want %s", got, err, wantClass)
	}
	if wantClass == "400" && !errors.Is(err, ErrMalformed) {
		t.Fatalf("error %v does not wrap ErrMalformed", err)
	}
	if string(data) != wantData && (wantClass == "ok" || len(data) > len(wantData)) {
		t.Fatalf("data %q, want %q", data, wantData)
	}
	if wantClass != "ok" {
		return
	}
	if got := fieldsOf(trailer); got != wantTrailer {
		t.Fatalf("trailer %s, want %s", got, wantTrailer)
	}
	rest, _ := io.ReadAll(rd)
	if string(rest) != "NEXT" {
		t.Fatalf("after the body the connection holds %q, want NEXT", rest)
	}
}

// TestChunkedReportsEndWithLastData checks that when the end of the body is
// buffered, the last Read returns it with io.EOF, so a proxy learns the body
// ended without another call that might block on the network.
func TestChunkedReportsEndWithLastData(t *testing.T) {
	rd := NewReader(strings.NewReader("5\r\nhello\r\n0\r\nT: 1\r\n\r\n"))
	var trailer Header
	buf := make([]byte, 64)
	n, err := rd.BodyChunked(&trailer).Read(buf)
	if n != 5 || err != io.EOF || fieldsOf(&trailer) != `T="1";` {
		t.Fatalf("Read = %d, %v, trailer %s; want 5, EOF, T=1", n, err, fieldsOf(&trailer))
	}
}

func TestChunkedTrailerLimits(t *testing.T) {
	many := "0\r\n" + strings.Repeat("X: y\r\n", 5) + "\r\n"
	cases := []struct {
		name, raw string
		lim       Limits
		class     string
	}{
		{"fields at limit", many, Limits{MaxHeaders: 5}, "ok"},
		{"too many fields", many, Limits{MaxHeaders: 4}, "431"},
		{"section at limit", many, Limits{MaxHeaderBytes: len(many) - 3}, "ok"},
		{"section too large", many, Limits{MaxHeaderBytes: len(many) - 4}, "431"},
		{"endless trailer", "0\r\nX: " + strings.Repeat("y", 64<<10), Limits{}, "431"},
	}
	for _, tc := range cases {
		for srcName, src := range sources(tc.raw) {
			t.Run(tc.name+"/"+srcName, func(t *testing.T) {
				_, _, class := decodeChunked(src(), tc.lim)
				if class != tc.class {
					t.Fatalf("class %s, want %s", class, tc.class)
				}
			})
		}
	}
}

func TestChunkedTrailerDroppedWithoutHeader(t *testing.T) {
	rd := NewReader(strings.NewReader("1\r\nx\r\n0\r\nT: 1\r\n\r\nNEXT"))
	data, err := io.ReadAll(rd.BodyChunked(nil))
	rest, _ := io.ReadAll(rd)
	if err != nil || string(data) != "x" || string(rest) != "NEXT" {
		t.Fatalf("data %q err %v rest %q", data, err, rest)
	}
}

func TestChunkedExtensionFlood(t *testing.T) {
	// One-byte chunks each carrying a kilobyte of extension: the decoder
	// must give up rather than parse 1000 bytes for every byte it returns.
	ext := ";" + strings.Repeat("e", 1000)
	raw := strings.Repeat("1"+ext+"\r\nx\r\n", 100) + "0\r\n\r\n"
	_, _, class := decodeChunked(strings.NewReader(raw), Limits{})
	if class != "400" {
		t.Fatalf("extension flood: %s, want 400", class)
	}
	// The same extensions on large chunks are fine.
	raw = strings.Repeat("1000"+ext+"\r\n"+strings.Repeat("x", 0x1000)+"\r\n", 100) + "0\r\n\r\n"
	data, _, class := decodeChunked(strings.NewReader(raw), Limits{})
	if class != "ok" || len(data) != 100*0x1000 {
		t.Fatalf("extensions on large chunks: %s, %d bytes", class, len(data))
	}
}

func TestChunkedLargeBodyThroughSmallBuffer(t *testing.T) {
	var enc bytes.Buffer
	cw := NewChunkedWriter(&enc)
	var want []byte
	for i := range 50 {
		chunk := bytes.Repeat([]byte{byte('a' + i%26)}, 1000+i*97)
		want = append(want, chunk...)
		if _, err := cw.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := cw.Close(nil); err != nil {
		t.Fatal(err)
	}
	for srcName, src := range sources(enc.String()) {
		rd := NewReader(src())
		got, err := io.ReadAll(rd.BodyChunked(nil))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes, %v; want %d", srcName, len(got), err, len(want))
		}
	}
}

func TestLengthBody(t *testing.T) {
	cases := []struct {
		name, raw string
		n         int64
		data      string
		class     string
		rest      string
	}{
		{"exact", "hello", 5, "hello", "ok", ""},
		{"followed by next message", "helloNEXT", 5, "hello", "ok", "NEXT"},
		{"short", "hel", 5, "hel", "unexpected-eof", ""},
		{"empty input", "", 5, "", "unexpected-eof", ""},
		{"zero length", "NEXT", 0, "", "ok", "NEXT"},
		{"negative length", "NEXT", -1, "", "ok", "NEXT"},
		{"large", strings.Repeat("z", 100<<10) + "NEXT", 100 << 10, strings.Repeat("z", 100<<10), "ok", "NEXT"},
		{"large short", strings.Repeat("z", 10<<10), 100 << 10, strings.Repeat("z", 10<<10), "unexpected-eof", ""},
	}
	for _, tc := range cases {
		for srcName, src := range sources(tc.raw) {
			t.Run(tc.name+"/"+srcName+"/Read", func(t *testing.T) {
				rd := NewReader(src())
				data, err := io.ReadAll(rd.BodyLength(tc.n))
				checkBody(t, rd, data, err, tc.data, tc.class, tc.rest)
			})
			t.Run(tc.name+"/"+srcName+"/WriteTo", func(t *testing.T) {
				rd := NewReader(src())
				var out bytes.Buffer
				_, err := rd.BodyLength(tc.n).WriteTo(&out)
				checkBody(t, rd, out.Bytes(), err, tc.data, tc.class, tc.rest)
			})
		}
	}
}

func checkBody(t *testing.T, rd *Reader, data []byte, err error, wantData, wantClass, wantRest string) {
	t.Helper()
	if errClass(err) != wantClass || string(data) != wantData {
		t.Fatalf("got %d bytes, %v; want %d bytes, %s", len(data), err, len(wantData), wantClass)
	}
	if wantClass == "ok" {
		rest, _ := io.ReadAll(rd)
		if string(rest) != wantRest {
			t.Fatalf("after the body: %q, want %q", rest, wantRest)
		}
	}
}

func TestBodiesPassIOTestReader(t *testing.T) {
	content := strings.Repeat("0123456789", 700)
	var enc bytes.Buffer
	cw := NewChunkedWriter(&enc)
	for i := 0; i < len(content); i += 1234 {
		_, _ = cw.Write([]byte(content[i:min(i+1234, len(content))]))
	}
	_ = cw.Close(nil)
	if err := iotest.TestReader(NewReader(strings.NewReader(content)).BodyLength(int64(len(content))), []byte(content)); err != nil {
		t.Errorf("length body: %v", err)
	}
	if err := iotest.TestReader(NewReader(&enc).BodyChunked(nil), []byte(content)); err != nil {
		t.Errorf("chunked body: %v", err)
	}
	if err := iotest.TestReader(NewReader(strings.NewReader(content)).BodyUntilClose(), []byte(content)); err != nil {
		t.Errorf("until-close body: %v", err)
	}
}

func TestUntilCloseBody(t *testing.T) {
	for srcName, src := range sources("everything until the end") {
		rd := NewReader(src())
		data, err := io.ReadAll(rd.BodyUntilClose())
		if err != nil || string(data) != "everything until the end" {
			t.Fatalf("%s: %q, %v", srcName, data, err)
		}
		var out bytes.Buffer
		rd = NewReader(src())
		if _, err := rd.BodyUntilClose().WriteTo(&out); err != nil || out.String() != "everything until the end" {
			t.Fatalf("%s WriteTo: %q, %v", srcName, out.String(), err)
		}
	}
}

func TestBodyReadErrorPassesThrough(t *testing.T) {
	boom := errors.New("boom")
	rd := NewReader(io.MultiReader(strings.NewReader("hel"), iotest.ErrReader(boom)))
	data, err := io.ReadAll(rd.BodyLength(5))
	if !errors.Is(err, boom) || string(data) != "hel" {
		t.Fatalf("got %q, %v; want hel, boom", data, err)
	}
}

func TestBodyWriteErrorLeavesBodyUnfinished(t *testing.T) {
	boom := errors.New("write failed")
	rd := NewReader(strings.NewReader("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"))
	var req Request
	if err := rd.ReadRequest(&req, Limits{}); err != nil {
		t.Fatal(err)
	}
	body := rd.RequestBody(&req, nil)
	if _, err := body.WriteTo(failingWriter{boom}); !errors.Is(err, boom) {
		t.Fatalf("WriteTo = %v, want the writer's error", err)
	}
	if err := rd.ReadRequest(&req, Limits{}); !errors.Is(err, ErrBodyUnread) {
		t.Fatalf("ReadRequest after a failed write = %v, want ErrBodyUnread", err)
	}
	if data, err := io.ReadAll(body); err != nil || string(data) != "hello" {
		t.Fatalf("reading on after the failed write: %q, %v", data, err)
	}
}

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	deadline := time.Now().Add(10 * time.Second)
	_ = c.SetDeadline(deadline)
	_ = s.SetDeadline(deadline)
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// TestBodySplicesBetweenSockets relays a length body and an until-close
// body from one socket to another through WriteTo, which hands the
// unbuffered part to the kernel; the bytes must arrive intact and the
// framing must be respected.
func TestBodySplicesBetweenSockets(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	for _, mode := range []BodyMode{Length, UntilClose} {
		t.Run(mode.String(), func(t *testing.T) {
			inClient, inServer := tcpPair(t)
			outClient, outServer := tcpPair(t)
			head := "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + itoa(len(body)) + "\r\n\r\n"
			written := make(chan error, 1)
			go func() {
				_, err := inClient.Write(append([]byte(head), body...))
				if err == nil && mode == UntilClose {
					err = inClient.CloseWrite()
				} else if err == nil {
					_, err = inClient.Write([]byte("NEXT"))
				}
				written <- err
			}()
			received := make(chan []byte, 1)
			go func() {
				data, _ := io.ReadAll(outClient)
				received <- data
			}()
			rd := NewReader(inServer)
			var req Request
			if err := rd.ReadRequest(&req, Limits{}); err != nil {
				t.Fatal(err)
			}
			b := rd.RequestBody(&req, nil)
			if mode == UntilClose {
				b = rd.BodyUntilClose()
			}
			n, err := b.WriteTo(outServer)
			if err != nil || n != int64(len(body)) {
				t.Fatalf("WriteTo = %d, %v; want %d", n, err, len(body))
			}
			_ = outServer.CloseWrite()
			if err := <-written; err != nil {
				t.Fatal(err)
			}
			if got := <-received; !bytes.Equal(got, body) {
				t.Fatalf("relayed %d bytes, want %d identical", len(got), len(body))
			}
			if mode == Length {
				rest := make([]byte, 4)
				if _, err := io.ReadFull(rd, rest); err != nil || string(rest) != "NEXT" {
					t.Fatalf("after the body: %q, %v", rest, err)
				}
			}
		})
	}
}

func TestSplicedShortBodyIsUnexpectedEOF(t *testing.T) {
	inClient, inServer := tcpPair(t)
	_, outServer := tcpPair(t)
	go func() {
		_, _ = inClient.Write([]byte("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nshort"))
		_ = inClient.CloseWrite()
	}()
	rd := NewReader(inServer)
	var req Request
	if err := rd.ReadRequest(&req, Limits{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rd.RequestBody(&req, nil).WriteTo(outServer); err != io.ErrUnexpectedEOF {
		t.Fatalf("WriteTo of a short body = %v, want io.ErrUnexpectedEOF", err)
	}
}
