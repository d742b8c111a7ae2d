package h1

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// errStatus returns the Status of an *Error, or 0 for any other error.
func errStatus(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// errClass names an error's kind for table comparisons: "ok", "eof",
// "unexpected-eof", "unread", or the status code of an *Error.
func errClass(err error) string {
	switch {
	case err == nil:
		return "ok"
	case err == io.EOF:
		return "eof"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected-eof"
	case errors.Is(err, ErrBodyUnread):
		return "unread"
	case errStatus(err) != 0:
		return fmt.Sprint(errStatus(err))
	}
	return "other: " + err.Error()
}

// summarizeRequest renders every parsed property of req on one line.
func summarizeRequest(req *Request) string {
	up := "<nil>"
	if req.Upgrade != nil {
		up = string(req.Upgrade)
	}
	host := "<nil>"
	if req.Host != nil {
		host = string(req.Host)
	}
	return fmt.Sprintf("%s %s 1.%d host=%s cl=%d chunked=%t ka=%t upgrade=%s expect=%t mode=%s",
		req.Method, req.Target, req.Minor, host, req.ContentLength, req.Chunked, req.KeepAlive, up, req.Expect100, req.BodyMode)
}

// summarizeResponse renders every parsed property of resp on one line.
func summarizeResponse(resp *Response) string {
	up := "<nil>"
	if resp.Upgrade != nil {
		up = string(resp.Upgrade)
	}
	return fmt.Sprintf("1.%d %d %q cl=%d chunked=%t ka=%t upgrade=%s mode=%s",
		resp.Minor, resp.Status, resp.Reason, resp.ContentLength, resp.Chunked, resp.KeepAlive, up, resp.BodyMode)
}

// fieldsOf renders a Header's fields in order.
func fieldsOf(h *Header) string {
	var sb strings.Builder
	for i := 0; i < h.Len(); i++ {
		name, value := h.At(i)
		fmt.Fprintf(&sb, "%s=%q;", name, value)
	}
	return sb.String()
}

// sources returns the ways a test feeds the same input to a Reader: all at
// once, one byte per read, and with the end of input reported together
// with the last data.
func sources(input string) map[string]func() io.Reader {
	return map[string]func() io.Reader{
		"whole":   func() io.Reader { return strings.NewReader(input) },
		"onebyte": func() io.Reader { return iotest.OneByteReader(strings.NewReader(input)) },
		"dataerr": func() io.Reader { return iotest.DataErrReader(strings.NewReader(input)) },
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// endlessReader returns its pattern forever.
type endlessReader struct {
	pattern []byte
	off     int
}

func (e *endlessReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = e.pattern[e.off]
		e.off = (e.off + 1) % len(e.pattern)
	}
	return len(p), nil
}

// serializeRequest writes req back out with the Append functions.
func serializeRequest(req *Request) []byte {
	b := AppendRequestLine(nil, req.Method, req.Target, req.Minor)
	b = req.Header.AppendTo(b)
	return append(b, "\r\n"...)
}

// serializeResponse writes resp back out with the Append functions.
func serializeResponse(resp *Response) []byte {
	b := AppendStatusLine(nil, resp.Minor, resp.Status, resp.Reason)
	b = resp.Header.AppendTo(b)
	return append(b, "\r\n"...)
}

// decodeChunked decodes a chunked body from src through Read, returning the
// data, the trailer fields and the error class.
func decodeChunked(src io.Reader, lim Limits) (data []byte, trailer string, class string) {
	rd := NewReader(src)
	rd.lim = lim.withDefaults()
	var tr Header
	data, err := io.ReadAll(rd.BodyChunked(&tr))
	return data, fieldsOf(&tr), errClass(err)
}

// mustEqualBytes fails t when got and want differ.
func mustEqualBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s = %q, want %q", what, got, want)
	}
}
