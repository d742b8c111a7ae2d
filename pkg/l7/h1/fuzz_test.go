package h1

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// fuzzLimits are small so that fuzzing reaches the limits quickly.
var fuzzLimits = Limits{MaxHeaderBytes: 1024, MaxHeaders: 16}

// smugglingSeeds are classic request smuggling and desync probes.
var smugglingSeeds = []string{
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nX: y\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-encoding: cow\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\rX: y\r\n\r\nhello",
	"GET / HTTP/1.1\r\nHost: a\r\n\rGET /admin HTTP/1.1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n\r\r\n",
	"GET / HTTP/1.1\nHost: a\n\n",
	"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF1\r\nx\r\n0\r\n\r\n",
}

func FuzzReadRequest(f *testing.F) {
	for _, tc := range requestCases {
		f.Add([]byte(tc.raw))
	}
	for _, s := range smugglingSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(browserRequest))
	f.Fuzz(func(t *testing.T, data []byte) {
		var req Request
		rd := NewReader(bytes.NewReader(data))
		err := rd.ReadRequest(&req, fuzzLimits)
		var slow Request
		slowErr := NewReader(iotest.OneByteReader(bytes.NewReader(data))).ReadRequest(&slow, fuzzLimits)
		checkKnownError(t, err)
		if errClass(err) != errClass(slowErr) {
			t.Fatalf("read boundaries changed the outcome: %v vs %v", err, slowErr)
		}
		if err != nil {
			return
		}
		if a, b := summarizeRequest(&req), summarizeRequest(&slow); a != b {
			t.Fatalf("read boundaries changed the request:\n%s\n%s", a, b)
		}
		checkRequestInvariants(t, &req)
		out := serializeRequest(&req)
		var again Request
		if err := NewReader(bytes.NewReader(out)).ReadRequest(&again, Limits{}); err != nil {
			t.Fatalf("re-parsing %q: %v", out, err)
		}
		if a, b := summarizeRequest(&req), summarizeRequest(&again); a != b {
			t.Fatalf("round trip changed the request:\n%s\n%s", a, b)
		}
		if a, b := fieldsOf(&req.Header), fieldsOf(&again.Header); a != b {
			t.Fatalf("round trip changed the fields:\n%s\n%s", a, b)
		}
		_, err = io.Copy(io.Discard, rd.RequestBody(&req, nil))
		checkKnownError(t, err)
	})
}

// checkKnownError fails unless err is nil or one of the errors the package
// documents.
func checkKnownError(t *testing.T, err error) {
	t.Helper()
	if c := errClass(err); strings.HasPrefix(c, "other") || c == "unread" {
		t.Fatalf("unexpected error: %v", err)
	}
}

func checkRequestInvariants(t *testing.T, req *Request) {
	t.Helper()
	switch {
	case req.Minor != 0 && req.Minor != 1:
		t.Fatalf("minor version %d", req.Minor)
	case req.Chunked && req.ContentLength >= 0:
		t.Fatal("chunked with a Content-Length")
	case req.Minor == 1 && req.Host == nil:
		t.Fatal("HTTP/1.1 without Host")
	case req.Header.Count("Host") > 1:
		t.Fatal("several Host fields")
	case req.BodyMode == Length && req.ContentLength <= 0, req.BodyMode == Chunked && !req.Chunked:
		t.Fatalf("body mode %s with cl=%d chunked=%t", req.BodyMode, req.ContentLength, req.Chunked)
	case !isToken(req.Method) || len(req.Target) == 0:
		t.Fatalf("method %q target %q", req.Method, req.Target)
	}
	checkHeaderValid(t, &req.Header)
}

func checkHeaderValid(t *testing.T, h *Header) {
	t.Helper()
	for name, value := range h.All() {
		if !ValidFieldName(name) || !ValidFieldValue(value) {
			t.Fatalf("invalid field accepted: %q: %q", name, value)
		}
	}
}

var fuzzMethods = []string{"GET", "HEAD", "POST", "CONNECT"}

func FuzzReadResponse(f *testing.F) {
	for _, tc := range responseCases {
		for i, m := range fuzzMethods {
			if m == tc.method {
				f.Add([]byte(tc.raw), uint8(i))
			}
		}
	}
	f.Add([]byte(typicalResponse), uint8(0))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), uint8(0))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n"), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, methodIndex uint8) {
		method := []byte(fuzzMethods[int(methodIndex)%len(fuzzMethods)])
		var resp Response
		rd := NewReader(bytes.NewReader(data))
		err := rd.ReadResponse(&resp, method, fuzzLimits)
		var slow Response
		slowErr := NewReader(iotest.OneByteReader(bytes.NewReader(data))).ReadResponse(&slow, method, fuzzLimits)
		checkKnownError(t, err)
		if errClass(err) != errClass(slowErr) {
			t.Fatalf("read boundaries changed the outcome: %v vs %v", err, slowErr)
		}
		if err != nil {
			return
		}
		if a, b := summarizeResponse(&resp), summarizeResponse(&slow); a != b {
			t.Fatalf("read boundaries changed the response:\n%s\n%s", a, b)
		}
		checkResponseInvariants(t, &resp)
		out := serializeResponse(&resp)
		var again Response
		if err := NewReader(bytes.NewReader(out)).ReadResponse(&again, method, Limits{}); err != nil {
			t.Fatalf("re-parsing %q: %v", out, err)
		}
		if a, b := summarizeResponse(&resp), summarizeResponse(&again); a != b {
			t.Fatalf("round trip changed the response:\n%s\n%s", a, b)
		}
		if a, b := fieldsOf(&resp.Header), fieldsOf(&again.Header); a != b {
			t.Fatalf("round trip changed the fields:\n%s\n%s", a, b)
		}
		_, err = io.Copy(io.Discard, rd.ResponseBody(&resp, nil))
		checkKnownError(t, err)
	})
}

func checkResponseInvariants(t *testing.T, resp *Response) {
	t.Helper()
	switch {
	case resp.Minor != 0 && resp.Minor != 1:
		t.Fatalf("minor version %d", resp.Minor)
	case resp.Status < 100 || resp.Status > 999:
		t.Fatalf("status %d", resp.Status)
	case resp.Chunked && resp.ContentLength >= 0:
		t.Fatal("chunked with a Content-Length")
	case resp.BodyMode == UntilClose && resp.KeepAlive:
		t.Fatal("until-close body on a kept-alive connection")
	case resp.BodyMode == Length && resp.ContentLength <= 0, resp.BodyMode == Chunked && !resp.Chunked:
		t.Fatalf("body mode %s with cl=%d chunked=%t", resp.BodyMode, resp.ContentLength, resp.Chunked)
	}
	checkHeaderValid(t, &resp.Header)
}

func FuzzChunked(f *testing.F) {
	for _, tc := range chunkedCases {
		f.Add([]byte(tc.raw), uint16(3))
	}
	f.Add([]byte("5\r\nhello\r\n0\r\nT: 1\r\n\r\nNEXT"), uint16(1))
	f.Add([]byte("2;a=b\r\nhi\r\n0\r\n\r\n"), uint16(7))
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		fast := decodeAll(bytes.NewReader(data))
		slow := decodeAll(iotest.OneByteReader(bytes.NewReader(data)))
		checkKnownError(t, fast.err)
		if errClass(fast.err) != errClass(slow.err) || fast.trailer != slow.trailer ||
			!bytes.Equal(fast.data, slow.data) || fast.err == nil && !bytes.Equal(fast.rest, slow.rest) {
			t.Fatalf("read boundaries changed the outcome: %v %q vs %v %q", fast.err, fast.data, slow.err, slow.data)
		}
		if fast.err != nil {
			return
		}
		var enc bytes.Buffer
		cw := NewChunkedWriter(&enc)
		size := int(split%64) + 1
		for p := fast.data; len(p) > 0; p = p[min(size, len(p)):] {
			if _, err := cw.Write(p[:min(size, len(p))]); err != nil {
				t.Fatal(err)
			}
		}
		if err := cw.Close(&fast.header); err != nil {
			t.Fatal(err)
		}
		again := decodeAll(&enc)
		if again.err != nil || !bytes.Equal(again.data, fast.data) || again.trailer != fast.trailer {
			t.Fatalf("re-encoding %q: %v %q %s, want %q %s", enc.Bytes(), again.err, again.data, again.trailer, fast.data, fast.trailer)
		}
	})
}

// decoded is the outcome of decoding a chunked body.
type decoded struct {
	data    []byte
	header  Header
	trailer string
	rest    []byte
	err     error
}

func decodeAll(src io.Reader) (d decoded) {
	rd := NewReader(src)
	rd.lim = fuzzLimits
	d.data, d.err = io.ReadAll(rd.BodyChunked(&d.header))
	d.trailer = fieldsOf(&d.header)
	if d.err == nil {
		d.rest, _ = io.ReadAll(rd)
	}
	return d
}

// FuzzShedBetweenRequests reads a stream of pipelined requests twice, once
// shedding the buffer whenever a request and its body are done (as a
// server does when a keep-alive connection goes quiet), and checks that
// shedding changes nothing: the same requests, bodies and final error, so
// that no byte is lost or replayed and no smuggled request appears.
func FuzzShedBetweenRequests(f *testing.F) {
	f.Add([]byte("GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"))
	f.Add([]byte("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: a\r\n\r\n"))
	f.Add([]byte("POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nT: v\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"))
	for _, s := range smugglingSeeds {
		f.Add([]byte(s + s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		plain := readPipelined(data, false)
		shed := readPipelined(data, true)
		if plain != shed {
			t.Fatalf("shedding changed what was read:\n%s\nvs\n%s", plain, shed)
		}
	})
}

// readPipelined summarises every request of data and its body, reading
// one byte at a time so that shedding meets every buffer state, and
// shedding after each request when shed is set.
func readPipelined(data []byte, shed bool) string {
	var out strings.Builder
	rd := NewReader(iotest.OneByteReader(bytes.NewReader(data)))
	var trailer Header
	for range 16 {
		var req Request
		if err := rd.ReadRequest(&req, fuzzLimits); err != nil {
			out.WriteString("end: " + errClass(err))
			return out.String()
		}
		out.WriteString(summarizeRequest(&req))
		body, err := io.ReadAll(rd.RequestBody(&req, &trailer))
		out.WriteString(" body=" + strings.ReplaceAll(string(body), "\n", `\n`) + " " + errClass(err) + "\n")
		if err != nil {
			return out.String()
		}
		if shed {
			rd.Shed()
		}
	}
	return out.String()
}
