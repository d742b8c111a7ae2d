package h1

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReleaseAndReuse(t *testing.T) {
	rd := NewReader(strings.NewReader("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"))
	var req Request
	if err := rd.ReadRequest(&req, Limits{}); err != nil {
		t.Fatal(err)
	}
	rd.Release()
	if err := rd.ReadRequest(&req, Limits{}); !errors.Is(err, errReleased) {
		t.Fatalf("ReadRequest after Release = %v, want errReleased", err)
	}
	if _, err := rd.Read(make([]byte, 1)); !errors.Is(err, errReleased) {
		t.Fatalf("Read after Release = %v, want errReleased", err)
	}
	rd.Reset(strings.NewReader("GET /2 HTTP/1.1\r\nHost: a\r\n\r\n"))
	if err := rd.ReadRequest(&req, Limits{}); err != nil || string(req.Target) != "/2" {
		t.Fatalf("after Reset: %v %s", err, req.Target)
	}
	rd.Release()
	rd.Release() // twice is harmless
}

func TestZeroReaderAfterReset(t *testing.T) {
	var rd Reader
	rd.Reset(strings.NewReader("3\r\nabc\r\n0\r\nT: 1\r\n\r\n"))
	var tr Header
	data, err := io.ReadAll(rd.BodyChunked(&tr))
	if err != nil || string(data) != "abc" || fieldsOf(&tr) != `T="1";` {
		t.Fatalf("%q %v %s", data, err, fieldsOf(&tr))
	}
	var zero Body
	if n, err := zero.Read(make([]byte, 4)); n != 0 || err != io.EOF {
		t.Fatalf("zero Body Read = %d, %v; want 0, EOF", n, err)
	}
}

func TestSourceErrorReturnedWithDataIsDeferred(t *testing.T) {
	// DataErrReader returns io.EOF together with the last bytes; the head
	// must still parse, and the EOF must come with the next read.
	rd := NewReader(iotest.DataErrReader(strings.NewReader("GET / HTTP/1.1\r\nHost: a\r\n\r\n")))
	var req Request
	if err := rd.ReadRequest(&req, Limits{}); err != nil {
		t.Fatal(err)
	}
	if err := rd.ReadRequest(&req, Limits{}); err != io.EOF {
		t.Fatalf("second ReadRequest = %v, want io.EOF", err)
	}
}

func TestTimeoutErrorIsNotSticky(t *testing.T) {
	// A deadline expiring mid-head returns the error; a caller extending
	// the deadline and retrying must find the head intact.
	timeout := errors.New("i/o timeout")
	src := &scriptedReader{steps: []scriptStep{
		{data: "GET / HTTP/1.1\r\nHo"},
		{err: timeout},
		{data: "st: a\r\n\r\n"},
	}}
	rd := NewReader(src)
	var req Request
	if err := rd.ReadRequest(&req, Limits{}); !errors.Is(err, timeout) {
		t.Fatalf("first ReadRequest = %v, want the timeout", err)
	}
	if err := rd.ReadRequest(&req, Limits{}); err != nil || string(req.Host) != "a" {
		t.Fatalf("retry = %v host %q", err, req.Host)
	}
}

func TestBrokenSourceIsNotSpunOn(t *testing.T) {
	rd := NewReader(&scriptedReader{}) // always (0, nil)
	var req Request
	if err := rd.ReadRequest(&req, Limits{}); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("ReadRequest over a source returning nothing = %v, want io.ErrNoProgress", err)
	}
	rd = NewReader(badCountReader{})
	if err := rd.ReadRequest(&req, Limits{}); !errors.Is(err, errBadRead) {
		t.Fatalf("ReadRequest over a source returning a bad count = %v, want errBadRead", err)
	}
}

type scriptStep struct {
	data string
	err  error
}

// scriptedReader returns its steps one per Read, then (0, nil) forever.
type scriptedReader struct{ steps []scriptStep }

func (s *scriptedReader) Read(p []byte) (int, error) {
	if len(s.steps) == 0 {
		return 0, nil
	}
	step := s.steps[0]
	s.steps = s.steps[1:]
	return copy(p, step.data), step.err
}

type badCountReader struct{}

func (badCountReader) Read(p []byte) (int, error) { return len(p) + 1, nil }

func TestHeadLargerThanPooledClasses(t *testing.T) {
	value := strings.Repeat("v", 1500<<10)
	raw := "GET / HTTP/1.1\r\nHost: a\r\nX: " + value + "\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n"
	rd := NewReader(strings.NewReader(raw))
	defer rd.Release()
	var req Request
	if err := rd.ReadRequest(&req, Limits{MaxHeaderBytes: 2 << 20}); err != nil {
		t.Fatal(err)
	}
	if v, _ := req.Header.Get("x"); len(v) != len(value) {
		t.Fatalf("value of %d bytes, want %d", len(v), len(value))
	}
	if err := rd.ReadRequest(&req, Limits{}); err != nil || string(req.Target) != "/next" || len(rd.buf) != smallBufSize {
		t.Fatalf("next: %v %s, buffer %d", err, req.Target, len(rd.buf))
	}
}

func TestWriteBufferedTo(t *testing.T) {
	rd := NewReader(strings.NewReader("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\nabcdef"))
	var resp Response
	if err := rd.ReadResponse(&resp, []byte("GET"), Limits{}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if n, err := rd.WriteBufferedTo(&limitedWriter{n: 2, err: boom}); n != 2 || !errors.Is(err, boom) {
		t.Fatalf("WriteBufferedTo to a failing writer = %d, %v", n, err)
	}
	if n, err := rd.WriteBufferedTo(shortWriter{}); n != 1 || err != io.ErrShortWrite {
		t.Fatalf("WriteBufferedTo to a short writer = %d, %v", n, err)
	}
	rest, _ := io.ReadAll(rd)
	if string(rest) != "def" {
		t.Fatalf("left %q, want def", rest)
	}
	if n, err := rd.WriteBufferedTo(shortWriter{}); n != 0 || err != nil {
		t.Fatalf("WriteBufferedTo with nothing buffered = %d, %v", n, err)
	}
}

// shortWriter accepts one byte per call without error, breaking io.Writer.
type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return min(1, len(p)), nil }

func TestBodyModeAndDone(t *testing.T) {
	rd := NewReader(strings.NewReader("abc"))
	b := rd.BodyLength(3)
	if b.Mode() != Length || b.Done() {
		t.Fatalf("before reading: mode %s, done %t", b.Mode(), b.Done())
	}
	if _, err := io.ReadAll(b); err != nil || !b.Done() {
		t.Fatalf("after reading: %v, done %t", err, b.Done())
	}
	names := map[BodyMode]string{NoBody: "none", Length: "length", Chunked: "chunked", UntilClose: "until-close", 9: "invalid"}
	for m, want := range names {
		if m.String() != want {
			t.Errorf("BodyMode(%d).String() = %q, want %q", m, m.String(), want)
		}
	}
}
