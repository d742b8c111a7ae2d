package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

func BenchmarkReadRequest(b *testing.B) {
	raw := []byte(browserRequest)
	var src bytes.Reader
	rd := NewReader(&src)
	var req Request
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(raw)
		rd.Reset(&src)
		if err := rd.ReadRequest(&req, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadRequestPipelined parses 32 pipelined requests from one
// buffer fill, the way a keep-alive connection under load delivers them.
func BenchmarkReadRequestPipelined(b *testing.B) {
	const n = 32
	raw := []byte(strings.Repeat(browserRequest, n))
	var src bytes.Reader
	rd := NewReader(&src)
	var req Request
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(raw)
		rd.Reset(&src)
		for range n {
			if err := rd.ReadRequest(&req, Limits{}); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkNetHTTPReadRequest is the reference point: the same request
// through net/http.
func BenchmarkNetHTTPReadRequest(b *testing.B) {
	raw := []byte(browserRequest)
	var src bytes.Reader
	br := bufio.NewReader(&src)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(raw)
		br.Reset(&src)
		if _, err := http.ReadRequest(br); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadResponse(b *testing.B) {
	raw := []byte("HTTP/1.1 200 OK\r\n" +
		"Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n" +
		"Content-Type: application/json\r\n" +
		"Content-Length: 27\r\n" +
		"Cache-Control: no-store\r\n" +
		"Vary: Accept-Encoding\r\n" +
		"Server: upstream\r\n" +
		"\r\n" +
		`{"name":"widget","qty":12}` + "\n")
	var src bytes.Reader
	rd := NewReader(&src)
	var resp Response
	buf := make([]byte, 512)
	method := []byte("GET")
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(raw)
		rd.Reset(&src)
		if err := rd.ReadResponse(&resp, method, Limits{}); err != nil {
			b.Fatal(err)
		}
		if _, err := readToEnd(rd.ResponseBody(&resp, nil), buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChunked decodes a 64 KiB body sent as 4 KiB chunks, with a
// trailer.
func BenchmarkChunked(b *testing.B) {
	var enc bytes.Buffer
	cw := NewChunkedWriter(&enc)
	chunk := bytes.Repeat([]byte("x"), 4096)
	for range 16 {
		_, _ = cw.Write(chunk)
	}
	var tr Header
	tr.Add("X-Checksum", "abc")
	_ = cw.Close(&tr)
	raw := enc.Bytes()
	var src bytes.Reader
	rd := NewReader(&src)
	var trailer Header
	b.SetBytes(16 * 4096)
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(raw)
		rd.Reset(&src)
		if _, err := rd.BodyChunked(&trailer).WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChunkedSmall decodes the small chunked response body of a
// typical API call, where framing overhead dominates.
func BenchmarkChunkedSmall(b *testing.B) {
	raw := []byte("1b\r\n{\"name\":\"widget\",\"qty\":12}\n\r\n0\r\n\r\n")
	var src bytes.Reader
	rd := NewReader(&src)
	buf := make([]byte, 512)
	b.SetBytes(27)
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(raw)
		rd.Reset(&src)
		if _, err := readToEnd(rd.BodyChunked(nil), buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkChunkedWriter(b *testing.B) {
	chunk := bytes.Repeat([]byte("x"), 4096)
	cw := NewChunkedWriter(io.Discard)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cw.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
}
